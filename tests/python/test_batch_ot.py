"""otgen ot exact / sinkhorn against POT and scipy (through the CLI).

POT's "sqeuclidean" cost is ||x - y||^2 = 2 * ours, so its transport costs are twice ours and the same
entropic plan is POT's at reg = 2 * epsilon.
"""
import json
import os

import numpy as np
import ot
import pytest
from scipy.optimize import linear_sum_assignment


def write(tmp_path, name, arr):
    p = os.path.join(tmp_path, name)
    np.save(p, np.ascontiguousarray(arr))
    return p


def half_sq(x, y):
    return 0.5 * ((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1)


@pytest.mark.parametrize("solver", ["jv", "network-simplex"])
def test_exact_matches_pot_emd_and_scipy(cli, tmp_path, solver):
    rng = np.random.default_rng(0)
    n, d = 150, 8
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.standard_normal((n, d)) * 1.5 + 0.5).astype(np.float32)
    out = os.path.join(tmp_path, "perm.npy")
    r = cli("ot", "exact", "--source", write(tmp_path, "x.npy", x), "--target", write(tmp_path, "y.npy", y),
            "--out", out, "--solver", solver)
    info = json.loads(r.stdout)
    perm = np.load(out)
    assert perm.dtype == np.int64 and sorted(perm.tolist()) == list(range(n))
    C = half_sq(x, y)
    ours = C[np.arange(n), perm].sum()
    assert info["total_cost"] == pytest.approx(ours, rel=1e-9)
    M = ot.dist(x.astype(np.float64), y.astype(np.float64))  # ||x - y||^2
    pot_total = n * ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n), M) / 2
    rows, cols = linear_sum_assignment(C)
    assert ours == pytest.approx(pot_total, rel=1e-6)
    assert ours == pytest.approx(C[rows, cols].sum(), rel=1e-6)


def test_sinkhorn_matches_pot_sinkhorn_log(cli, tmp_path):
    rng = np.random.default_rng(1)
    n, m, d = 90, 70, 5
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.standard_normal((m, d)) + 1.0).astype(np.float32)
    eps = 0.3
    f_path, g_path = os.path.join(tmp_path, "f.npy"), os.path.join(tmp_path, "g.npy")
    r = cli("ot", "sinkhorn", "--source", write(tmp_path, "x.npy", x), "--target", write(tmp_path, "y.npy", y),
            "--epsilon", eps, "--tol", 1e-9, "--out-f", f_path, "--out-g", g_path)
    info = json.loads(r.stdout)
    assert info["termination"] == "converged"
    assert info["marginal_error"] <= 1e-9
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    M = ot.dist(x.astype(np.float64), y.astype(np.float64))
    P, log = ot.sinkhorn(a, b, M, 2 * eps, method="sinkhorn_log", stopThr=1e-12, numItermax=100000, log=True)
    pot_cost = float((P * M).sum())
    assert 2 * info["cost"] == pytest.approx(pot_cost, rel=1e-5)
    assert 2 * info["cost"] == pytest.approx(float(ot.sinkhorn2(a, b, M, 2 * eps, method="sinkhorn_log",
                                                               stopThr=1e-12, numItermax=100000)), rel=1e-5)
    # POT: P = diag(u) K diag(v), reg * log u_i = 2 (f_i + eps log a_i) up to a constant shared with v.
    f, g = np.load(f_path), np.load(g_path)
    f_pot = 2 * eps * log["log_u"] / 2 - eps * np.log(a)
    g_pot = 2 * eps * log["log_v"] / 2 - eps * np.log(b)
    shift = g_pot.mean()
    np.testing.assert_allclose(g, g_pot - shift, atol=2e-5)
    np.testing.assert_allclose(f, f_pot + shift, atol=2e-5)
    # Our plan from (f, g), rebuilt in double, has the marginals a and b. (The solver's matrix holds
    # float32 inner products, relative rounding ~6e-8 * |<x, y>| / eps ~ 1e-6 here.)
    Pours = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - half_sq(x, y)) / eps)
    np.testing.assert_allclose(Pours.sum(0), b, rtol=1e-5)
    np.testing.assert_allclose(Pours.sum(1), a, rtol=1e-5)


def test_relative_epsilon_and_online_mode(cli, tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = rng.standard_normal((48, 3)).astype(np.float32)
    xs, ys = write(tmp_path, "x.npy", x), write(tmp_path, "y.npy", y)
    dense = json.loads(cli("ot", "sinkhorn", "--source", xs, "--target", ys, "--epsilon", 0.1, "--relative-epsilon",
                           "--tol", 1e-6, "--mode", "dense").stdout)
    online = json.loads(cli("ot", "sinkhorn", "--source", xs, "--target", ys, "--epsilon", 0.1, "--relative-epsilon",
                            "--tol", 1e-6, "--mode", "online").stdout)
    assert dense["epsilon"] == pytest.approx(0.1 * half_sq(x, y).std(), rel=1e-5)
    assert dense["mode"] == "dense" and online["mode"] == "online"
    assert online["cost"] == pytest.approx(dense["cost"], rel=1e-4)


@pytest.mark.parametrize("args,fragment", [
    (["exact", "--target", "Y"], "as many points"),
    (["exact", "--target", "missing.npy"], "--target: cannot open 'missing.npy'"),
    (["sinkhorn", "--target", "Y", "--epsilon", "0"], "epsilon"),
    (["sinkhorn", "--target", "Y", "--epsilon", "0.1", "--tol", "-1"], "tol"),
])
def test_bad_input_exits_2_with_one_line(cli, tmp_path, args, fragment):
    x = write(tmp_path, "x.npy", np.zeros((4, 2), np.float32))
    y = write(tmp_path, "y.npy", np.ones((3, 2), np.float32))
    missing = os.path.join(tmp_path, "missing.npy")
    full = ["ot", args[0], "--source", x] + [y if a == "Y" else missing if a == "missing.npy" else a for a in args[1:]]
    if args[0] == "exact":
        full += ["--out", os.path.join(tmp_path, "p.npy")]
    r = cli(*full, check=False)
    assert r.returncode == 2
    assert fragment.replace("missing.npy", missing) in r.stderr and r.stderr.count("\n") == 1


def test_couple_exact_pairs_are_a_batch_permutation_and_beat_independent(cli, tmp_path):
    rng = np.random.default_rng(3)
    data = (rng.standard_normal((400, 6)) + 2.0).astype(np.float32)
    labels = (np.arange(400) % 4).astype(np.int64)
    noise = rng.standard_normal((96, 6)).astype(np.float32)
    d, l, z = write(tmp_path, "d.npy", data), write(tmp_path, "l.npy", labels), write(tmp_path, "z.npy", noise)
    out = os.path.join(tmp_path, "idx.npy")
    costs = {}
    for c in ["independent", "exact", "sinkhorn", "semidiscrete"]:
        info = json.loads(cli("ot", "couple", "--coupling", c, "--data", d, "--labels", l, "--noise", z,
                              "--out", out, "--seed", 5, "--epsilon", 0 if c == "semidiscrete" else 0.05).stdout)
        idx = np.load(out)
        assert idx.shape == (96,) and idx.min() >= 0 and idx.max() < 400
        costs[c] = info["mean_pair_cost"]
        assert info["mean_pair_cost"] == pytest.approx(half_sq(noise, data)[np.arange(96), idx].mean(), rel=1e-6)
        if c == "exact":
            assert len(set(idx.tolist())) == 96
            # optimal for the drawn batch: scipy on the same 96 data points agrees
            C = half_sq(noise, data[np.sort(idx)])
            r, k = linear_sum_assignment(C)
            assert info["mean_pair_cost"] == pytest.approx(C[r, k].mean(), rel=1e-6)
        if c == "semidiscrete":  # g = 0: the nearest data point in the score <x, y> - |y|^2/2
            S = noise.astype(np.float64) @ data.T.astype(np.float64) - 0.5 * (data.astype(np.float64) ** 2).sum(1)
            np.testing.assert_array_equal(idx, S.argmax(1))
    assert costs["exact"] < costs["independent"]


def test_epsilon_means_one_thing_in_every_command_and_in_python(cli, tmp_path):
    """docs/batch_ot.md#epsilon: a given epsilon is absolute, --relative-epsilon / relative_epsilon=True
    makes it a multiple of std(C), and none given is 0.05 x std(C) -- in ot sinkhorn, ot couple, train,
    otgen.sinkhorn and otgen.torch.BatchOTCoupling alike."""
    import otgen
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (3 * rng.standard_normal((40, 3))).astype(np.float32)
    std = half_sq(x, y).std()
    xs, ys = write(tmp_path, "x.npy", x), write(tmp_path, "y.npy", y)

    def cli_eps(*extra):
        return json.loads(cli("ot", "sinkhorn", "--source", xs, "--target", ys, *extra).stdout)["epsilon"]

    assert cli_eps() == pytest.approx(0.05 * std, rel=1e-5)
    assert cli_eps("--epsilon", 0.05) == pytest.approx(0.05)
    assert cli_eps("--epsilon", 0.2, "--relative-epsilon") == pytest.approx(0.2 * std, rel=1e-5)
    assert otgen.sinkhorn(x, y).epsilon == pytest.approx(0.05 * std, rel=1e-5)
    assert otgen.sinkhorn(x, y, epsilon=0.05).epsilon == pytest.approx(0.05)
    assert otgen.sinkhorn(x, y, epsilon=0.2, relative_epsilon=True).epsilon == pytest.approx(0.2 * std, rel=1e-5)

    # --relative-epsilon belongs to Sinkhorn only: a semidiscrete epsilon is the fit's, absolute.
    r = cli("ot", "couple", "--coupling", "semidiscrete", "--data", ys, "--noise", xs, "--relative-epsilon", check=False)
    assert r.returncode == 2 and "--relative-epsilon" in r.stderr

    # train records what it used: not given = 0.05 relative; given = absolute unless --relative-epsilon.
    for extra, eps, rel in [([], 0.05, True), (["--sinkhorn-epsilon", 0.3], 0.3, False),
                            (["--sinkhorn-epsilon", 0.3, "--relative-epsilon"], 0.3, True)]:
        run = os.path.join(tmp_path, f"run{len(extra)}")
        cli("train", "--data", ys, "--coupling", "sinkhorn", "--batch", 16, "--steps", 1, "--width", 8, "--depth", 1,
            "-q", "--out", run, *extra)
        with open(os.path.join(run, "run.json")) as f:
            info = json.load(f)
        assert (info["sinkhorn_epsilon"], info["relative_epsilon"]) == (pytest.approx(eps), rel)

    torch = pytest.importorskip("torch")
    import otgen.torch as ot_torch

    def pairs(**kw):
        c = ot_torch.BatchOTCoupling(y, method="sinkhorn", batch_size=32, seed=3, **kw)
        return torch.cat([c.sample()[1] for _ in range(4)])

    default = pairs()
    assert torch.equal(default, pairs(epsilon=0.05, relative_epsilon=True))
    assert not torch.equal(default, pairs(epsilon=1e4))  # absolute 1e4: nearly independent draws
