#!/usr/bin/env python3
"""Conditional generation and MeanFlow benchmarks (issue 13), all through otgen's CLI:

  conditional  class-conditional MLPs on the 8x8 digits with I-FM, class-wise OT-FM (exact) and SD-FM
               (one potential per class); samples of each class at guidance 0 / 1 / 2 / 4 are classified
               by an independent classifier (scikit-learn logistic regression trained on the real
               digits); the rate of samples classified as their class, and the per-class energy distance.
  meanflow     8 Gaussians: one-step models (MeanFlow) with I-, OT- and SD- couplings against flow models
               at Euler 1 / 2 / 4 (energy distance to fresh data); the digits at 1 and 2 steps.
  cost         a MeanFlow step over a flow-matching step with the same model (steps/s medians).

    /usr/bin/python3 bench/flow_cond_bench.py build/otgen [--quick] [--only conditional|meanflow|cost]
        [--json docs/results/flow_cond.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flow_bench import ENV, cpu_flags, cpu_model, otgen_train  # noqa: E402


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return r.stdout


def energy(cli, x, ref):
    return json.loads(run([cli, "eval", "--samples", x, "--reference", ref, "--metrics", "energy"]))["energy"]


def sample(cli, model, out, steps, n, seed=3, solver="euler", extra=()):
    return json.loads(run([cli, "sample", "--model", model, "--n", str(n), "--solver", solver, "--steps", str(steps),
                           "--seed", str(seed), "--out", out, *extra]))


def conditional_part(a, res, tmp, q):
    from sklearn.linear_model import LogisticRegression

    cli = a.cli
    y, lab = os.path.join(tmp, "digits.npy"), os.path.join(tmp, "digits-labels.npy")
    run([cli, "data", "export", "--dataset", "digits", "--out", y, "--labels-out", lab])
    X, L = np.load(y), np.load(lab)
    # The independent judge: logistic regression on the real digits (held-out accuracy reported).
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(X))
    tr, te = perm[: int(0.8 * len(X))], perm[int(0.8 * len(X)):]
    clf = LogisticRegression(max_iter=2000).fit(X[tr], L[tr])
    res["classifier_test_accuracy"] = float(clf.score(X[te], L[te]))
    clf = LogisticRegression(max_iter=2000).fit(X, L)
    print(f"-- conditional digits; judge: logistic regression, held-out accuracy {res['classifier_test_accuracy']:.3f}")
    g = os.path.join(tmp, "digits-g-classes.npy")
    run([cli, "sdot", "fit", "--data", y, "--labels", lab, "--steps", "3000", "--batch", "1024", "--lr", "100",
         "--lr-final", "0.1", "--chi2-every", "250", "--chi2-threshold", "0.02", "--seed", "1", "-q", "--out", g])
    steps = "500" if q else "6000"
    per_class_ref = {k: os.path.join(tmp, f"ref-{k}.npy") for k in range(10)}
    for k, path in per_class_ref.items():
        np.save(path, X[L == k])
    out = {}
    for c in ["independent", "exact", "semidiscrete"]:
        run_dir = os.path.join(tmp, f"c-{c}")
        extra = ["--potential", g] if c == "semidiscrete" else []
        run([cli, "train", "--data", "digits", "--conditional", "--coupling", c, *extra, "--steps", steps,
             "--seed", "2", "-q", "--out", run_dir])
        rows = {}
        for w in [0.0, 1.0, 2.0, 4.0]:
            xs, ls = os.path.join(tmp, "xc.npy"), os.path.join(tmp, "lc.npy")
            n = 100 if q else 200
            info = sample(cli, os.path.join(run_dir, "model.pt"), xs, 8, n,
                          extra=["--class", "all", "--guidance", str(w), "--labels-out", ls])
            xc, lc = np.load(xs), np.load(ls)
            acc = float((clf.predict(xc) == lc).mean())
            per = []
            for k in range(10):
                np.save(os.path.join(tmp, "xk.npy"), xc[lc == k])
                per.append(energy(cli, os.path.join(tmp, "xk.npy"), per_class_ref[k]))
            rows[str(w)] = {"accuracy": acc, "per_class_energy_mean": float(np.mean(per)),
                            "per_class_energy": per, "nfe": info["nfe"]}
        out[c] = rows
        print(f"{c:<13}" + "".join(f"  w={w}: {r['accuracy']:.3f} (energy/class {r['per_class_energy_mean']:.3f})"
                                  for w, r in rows.items()), flush=True)
    res["conditional"] = {"steps": int(steps), "solver": "euler 8", "samples_per_class": 100 if q else 200,
                          "couplings": out}


def meanflow_part(a, res, tmp, q):
    cli = a.cli
    print("-- MeanFlow vs flow matching: 8 Gaussians (4096 points), MLP 3x128, batch 256")
    y8, ref = os.path.join(tmp, "8g.npy"), os.path.join(tmp, "8g-ref.npy")
    run([cli, "data", "export", "--dataset", "8gaussians", "--n", "4096", "--seed", "1", "--out", y8])
    run([cli, "data", "export", "--dataset", "8gaussians", "--n", "4096", "--seed", "99", "--out", ref])
    g8 = os.path.join(tmp, "8g-g.npy")
    run([cli, "sdot", "fit", "--data", y8, "--steps", "10000", "--batch", "1024", "--chi2-every", "1000",
         "--chi2-threshold", "0.01", "--seed", "1", "-q", "--out", g8])
    steps = "500" if q else "3000"
    table = {}
    for kind in ["flow", "meanflow"]:
        for c in ["independent", "exact", "semidiscrete"]:
            run_dir = os.path.join(tmp, f"m-{kind}-{c}")
            extra = (["--potential", g8] if c == "semidiscrete" else []) + (["--meanflow"] if kind == "meanflow" else [])
            run([cli, "train", "--data", y8, "--coupling", c, *extra, "--steps", steps, "--seed", "2", "-q",
                 "--out", run_dir])
            row = {}
            for st in [1, 2, 4]:
                x = os.path.join(tmp, "x.npy")
                sample(cli, os.path.join(run_dir, "model.pt"), x, st, 4096)
                row[f"euler{st}"] = energy(cli, x, ref)
            table[f"{kind}-{c}"] = row
            print(f"{kind:<9}{c:<13}" + "".join(f"  {k} {v:.4f}" for k, v in row.items()), flush=True)
    res["meanflow_8gaussians"] = {"steps": int(steps), "table": table,
                                  "sd_mf_1step_over_ifm_euler4": table["meanflow-semidiscrete"]["euler1"]
                                  / table["flow-independent"]["euler4"]}
    print(f"   SD-MF at 1 step / I-FM at Euler 4: {res['meanflow_8gaussians']['sd_mf_1step_over_ifm_euler4']:.3f} "
          f"(target <= 1)")

    print("-- MeanFlow on the digits (1797 x 64), MLP 3x128, batch 256; energy distance to the data")
    y, lab = os.path.join(tmp, "digits.npy"), os.path.join(tmp, "digits-labels.npy")
    run([cli, "data", "export", "--dataset", "digits", "--out", y, "--labels-out", lab])
    gd = os.path.join(tmp, "digits-g.npy")
    run([cli, "sdot", "fit", "--data", y, "--steps", "1500", "--batch", "1024", "--lr", "100", "--lr-final", "0.1",
         "--chi2-every", "125", "--chi2-threshold", "0.02", "--seed", "1", "-q", "--out", gd])
    steps = "500" if q else "6000"
    digits = {}
    for kind in ["flow", "meanflow"]:
        for c in ["independent", "exact", "semidiscrete"]:
            run_dir = os.path.join(tmp, f"d-{kind}-{c}")
            extra = (["--potential", gd] if c == "semidiscrete" else []) + (["--meanflow"] if kind == "meanflow" else [])
            run([cli, "train", "--data", y, "--coupling", c, *extra, "--steps", steps, "--seed", "2", "-q",
                 "--out", run_dir])
            row = {}
            for st in [1, 2, 4]:
                x = os.path.join(tmp, "x.npy")
                sample(cli, os.path.join(run_dir, "model.pt"), x, st, 1797)
                row[f"euler{st}"] = energy(cli, x, y)
            digits[f"{kind}-{c}"] = row
            print(f"{kind:<9}{c:<13}" + "".join(f"  {k} {v:.4f}" for k, v in row.items()), flush=True)
    res["meanflow_digits"] = {"steps": int(steps), "table": digits}


def cost_part(a, res, tmp, q, reps):
    cli = a.cli
    print("-- cost of a MeanFlow step over a flow-matching step, same model (alternating runs, medians)")
    y8 = os.path.join(tmp, "8g.npy")
    run([cli, "data", "export", "--dataset", "8gaussians", "--n", "4096", "--seed", "1", "--out", y8])
    rows = []
    for name, data, extra in [("mlp 3x128, 8 Gaussians, batch 256", y8, []),
                              ("mlp 3x128, digits, batch 256", "digits", []),
                              ("unet 694k, fashion-mnist, batch 32", "fashion-mnist", ["--model", "unet", "--batch", "32"])]:
        unet = "--model" in extra
        steps, win = ((6, 2) if q else (24, 6)) if unet else ((300, 100) if q else (1500, 100))
        fm, mf = [], []
        for k in range(reps):
            fm.append(otgen_train(cli, os.path.join(tmp, "cost-fm"), data, steps, win, extra)["steps_per_second"])
            mf.append(otgen_train(cli, os.path.join(tmp, "cost-mf"), data, steps, win, extra + ["--meanflow"])
                      ["steps_per_second"])
        row = {"case": name, "flow_steps_per_second": fm, "meanflow_steps_per_second": mf,
               "ratio": statistics.median(fm) / statistics.median(mf)}
        rows.append(row)
        print(f"{name:<36} FM {statistics.median(fm):8.2f} steps/s, MF {statistics.median(mf):8.2f} steps/s: "
              f"a MeanFlow step costs {row['ratio']:.2f}x (target <= 2.5x)", flush=True)
    res["cost"] = rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cli")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="")
    ap.add_argument("--only", choices=["conditional", "meanflow", "cost"], default=None)
    a = ap.parse_args()
    res = {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(), "load_before": os.getloadavg()}
    print(f"== {res['cpu']}, {res['cores']} cores, flags {res['cpu_flags']}, load {res['load_before']}")
    with tempfile.TemporaryDirectory() as tmp:
        if a.only in (None, "conditional"):
            conditional_part(a, res, tmp, a.quick)
        if a.only in (None, "meanflow"):
            meanflow_part(a, res, tmp, a.quick)
        if a.only in (None, "cost"):
            cost_part(a, res, tmp, a.quick, 1 if a.quick else a.repeats)
    res["load_after"] = os.getloadavg()
    if a.json:
        prev = {}
        if a.only and os.path.exists(a.json):
            with open(a.json) as f:
                prev = json.load(f)
        prev.update(res)
        with open(a.json + ".tmp", "w") as f:
            json.dump(prev, f, indent=2)
        os.replace(a.json + ".tmp", a.json)
        print(f"recorded in {a.json}")


if __name__ == "__main__":
    main()
