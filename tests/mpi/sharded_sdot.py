"""Sharded semidiscrete OT under mpirun against the single process (docs/dist.md).

Runs `otgen sdot fit | assign | check` on one process and under `mpirun -np K` on the same files, and
asserts: fit g within 1e-5 relative (and reports whether it is bit-identical), assign indices identical,
check JSON identical (chi2 included: the column sums are gathered and summed in the single-process
order), eps > 0 samples identical; the sidecars equal; on float data (direct path and SGEMM) and on
8-bit lattice data (the int8 screen). eps > 0 fit and check within stated tolerances (check_soft).
N is not divisible by K. A bad input on one rank only makes every rank exit 2 with one message.
Usage: sharded_sdot.py --cli build/otgen --np K
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile

import numpy as np

from mpirun import MPIRUN, run


def both(cli, K, args, outs, tmp):
    """Runs args on one process and on K ranks; `outs` are the output flags, renamed per run."""
    single, sharded = list(args), list(args)
    for flag in outs:
        i = args.index(flag)
        single[i + 1] = str(tmp / f"1_{pathlib.Path(args[i + 1]).name}")
        sharded[i + 1] = str(tmp / f"{K}_{pathlib.Path(args[i + 1]).name}")
    a = run([cli] + single)
    b = run(MPIRUN + ["-np", str(K), cli] + sharded)
    return a, b, [pathlib.Path(single[args.index(f) + 1]) for f in outs], [pathlib.Path(sharded[args.index(f) + 1]) for f in outs]


def dataset(tmp, name, n, d, seed):
    r = np.random.default_rng(seed)
    y = (r.standard_normal((n, d)) * 0.7 + 0.3).astype(np.float32)
    if name == "lattice":  # 8-bit images: the int8 screen (when the CPU has AVX-512 VNNI)
        y = (r.integers(0, 256, (n, d)) / 127.5 - 1).astype(np.float32)
    w = r.uniform(0.5, 1.5, n)
    w[n // 2] = 0.0  # a masked point
    w /= w.sum()
    np.save(tmp / f"{name}_y.npy", y)
    np.save(tmp / f"{name}_b.npy", w)
    return str(tmp / f"{name}_y.npy"), str(tmp / f"{name}_b.npy")


def check_fit_assign_check(cli, K, tmp, name, n, d, init):
    y, b = dataset(tmp, name, n, d, seed=n)
    assert n % K != 0
    common = ["--data", y, "--weights", b, "-q", "--threads", "1"]
    fit = ["sdot", "fit"] + common + ["--steps", "200", "--batch", "256", "--seed", "7", "--init", init,
                                      "--chi2-every", "100", "--chi2-repeats", "8", "--out", f"g_{name}.npy", "--record", f"rec_{name}.json"]
    a, bb, (g1p, r1p), (gKp, rKp) = both(cli, K, fit, ["--out", "--record"], tmp)
    g1, gK = np.load(g1p), np.load(gKp)
    assert g1.shape == gK.shape == (n,)
    rel = float(np.max(np.abs(g1 - gK)) / np.max(np.abs(g1)))
    assert rel <= 1e-5, f"{name}: fit g differs by {rel:.3g} relative"
    print(f"{name} (N={n}, d={d}, init {init}, np {K}): fit g max relative difference {rel:.3g}, "
          f"bit-identical {np.array_equal(g1, gK)}, int8 screen {json.loads(a.stdout)['int8_screen']}")
    s1, sK = json.loads(a.stdout), json.loads(bb.stdout)
    for key in ("steps", "chi2", "init", "lr", "stopped_by", "gap_scale", "int8_screen"):
        assert s1[key] == sK[key], f"{name}: fit summary {key}: {s1[key]} vs {sK[key]}"
    assert json.loads(pathlib.Path(str(g1p) + ".json").read_text()) == json.loads(pathlib.Path(str(gKp) + ".json").read_text())
    hist1 = [h["chi2"] for h in json.loads(r1p.read_text())["history"]]
    histK = [h["chi2"] for h in json.loads(rKp.read_text())["history"]]
    assert hist1 == histK, f"{name}: chi2 history {hist1} vs {histK}"

    g = str(g1p)
    # assign at eps = 0: identical indices
    assign = ["sdot", "assign", "--data", y, "--weights", b, "--potential", g, "--n", "3001", "--seed", "11",
              "--threads", "1", "--out", f"idx_{name}.npy"]
    _, _, (i1,), (iK,) = both(cli, K, assign, ["--out"], tmp)
    assert np.array_equal(np.load(i1), np.load(iK)), f"{name}: assign indices differ"
    # sample at eps > 0 (Gumbel keys by global column): identical
    sample = assign[:-1] + [f"sidx_{name}.npy", "--epsilon", "0.05"]
    _, _, (s1p,), (sKp,) = both(cli, K, sample, ["--out"], tmp)
    assert np.array_equal(np.load(s1p), np.load(sKp)), f"{name}: eps > 0 samples differ"
    assert not np.array_equal(np.load(s1p), np.load(i1))  # the draw is not the argmax
    # check: every figure identical
    check = ["sdot", "check", "--data", y, "--weights", b, "--potential", g, "--draws", "8192", "--batch", "4096",
             "--seed", "5", "-q", "--threads", "1"]
    c1 = json.loads(run([cli] + check).stdout)
    cK = json.loads(run(MPIRUN + ["-np", str(K), cli] + check).stdout)
    assert c1 == cK, f"{name}: check {c1} vs {cK}"
    return y, b, g


def check_soft(cli, K, tmp, y, b):
    """eps > 0: fit g within 1e-5 relative; check figures within 1e-6 relative. Each row's log-sum-exp is
    merged over the ranks (one more rescaling than one process), so a soft row s_ij, kept in float as on
    one process, can differ by an ulp; the fit's single-process column sums come from the engine's
    float softmax."""
    fit = ["sdot", "fit", "--data", y, "--weights", b, "-q", "--threads", "1", "--epsilon", "0.2", "--steps", "60",
           "--batch", "128", "--seed", "9", "--init", "zero", "--chi2-every", "30", "--chi2-repeats", "4",
           "--out", "gs.npy"]
    _, _, (g1p,), (gKp,) = both(cli, K, fit, ["--out"], tmp)
    g1, gK = np.load(g1p), np.load(gKp)
    rel = float(np.max(np.abs(g1 - gK)) / np.max(np.abs(g1)))
    assert rel <= 1e-5, f"eps > 0 fit g differs by {rel:.3g} relative"
    check = ["sdot", "check", "--data", y, "--weights", b, "--potential", str(g1p), "--epsilon", "0.2",
             "--draws", "2000", "--batch", "500", "--seed", "5", "-q", "--threads", "1"]
    c1 = json.loads(run([cli] + check).stdout)
    cK = json.loads(run(MPIRUN + ["-np", str(K), cli] + check).stdout)
    for key in ("chi2", "tv", "min_ratio", "max_ratio"):
        assert abs(c1[key] - cK[key]) <= 1e-6 * abs(c1[key]), f"eps > 0 check {key}: {c1[key]!r} vs {cK[key]!r}"
    d = max(abs(c1[k] - cK[k]) / abs(c1[k]) for k in ("chi2", "tv", "min_ratio", "max_ratio"))
    print(f"np {K}: eps > 0 fit g max relative difference {rel:.3g}; check figures max relative difference {d:.3g}")


def check_bad_input(cli, K, tmp, y, b, g):
    n = np.load(y).shape[0]
    w = np.load(b)
    w[n - 2] = np.nan  # in the last rank's rows only
    bad = tmp / "bad_b.npy"
    np.save(bad, w)
    short = tmp / "short_g.npy"
    np.save(short, np.load(g)[:-1])
    cases = [
        (["sdot", "fit", "--data", y, "--weights", str(bad), "--steps", "5", "--out", str(tmp / "x.npy")], "--weights"),
        (["sdot", "check", "--data", y, "--weights", b, "--potential", str(short), "--allow-foreign-potential"],
         "--potential"),
        (["sdot", "fit", "--data", y, "--optimizer", "newton", "--out", str(tmp / "x.npy")], "--optimizer"),
        (["sdot", "assign", "--data", y, "--potential", g, "--n", "10", "--cost", "l1", "--out", str(tmp / "i.npy")],
         "--cost"),
        (["sdot", "assign", "--data", y, "--weights", str(bad), "--potential", g, "--n", "10", "--out",
          str(tmp / "i.npy")], "--weights"),
    ]
    for args, named in cases:
        p = run(MPIRUN + ["-np", str(K), cli] + args, expect=2)
        lines = [l for l in p.stderr.splitlines() if l.startswith("otgen:")]
        assert len(lines) == 1 and named in lines[0], f"{args[:2]}: expected one message naming {named}:\n{p.stderr}"
        if "nan" in lines[0]:
            assert f"at index {n - 2}" in lines[0], lines[0]  # the global index
        assert "MPI_ABORT" not in p.stderr, p.stderr
        assert not (tmp / "x.npy").exists() and not (tmp / "i.npy").exists()
    print(f"np {K}: bad input on one rank -> exit 2, one message: {lines[0]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--np", type=int, required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        # d = 5: the engine's direct path; d = 24: SGEMM. N = 1001 (auto init: candidates) and 1003.
        y, b, g = check_fit_assign_check(a.cli, a.np, tmp, "direct", 1001, 5, "auto")
        check_fit_assign_check(a.cli, a.np, tmp, "gemm", 1003, 24, "gaussian")
        check_fit_assign_check(a.cli, a.np, tmp, "lattice", 1001, 132, "zero")  # N d >= 2^17: auto screens
        check_soft(a.cli, a.np, tmp, y, b)
        check_bad_input(a.cli, a.np, tmp, y, b, g)
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
