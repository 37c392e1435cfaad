"""Weighted SDEs on a trained flow (issue 20): 8 Gaussians, a linear tilt, a temperature and a
guidance product, against the closed forms of the data's mixture. Trains the models with the otgen
CLI, samples with `otgen sample --sde`, and writes docs/results/flow_sde.json and the PNGs.

    /usr/bin/python3 bench/flow_sde_bench.py --cli build/otgen --out docs/results
"""

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np


def run(cli, args):
    r = subprocess.run([cli, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"otgen {' '.join(args)} failed: {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def eight_means():
    a = 2 * np.pi * np.arange(8) / 8
    return np.stack([4 * np.cos(a), 4 * np.sin(a)], 1)


def shares(x, means):
    k = ((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    return np.bincount(k, minlength=len(means)) / len(x), k


def tv(a, b):
    return 0.5 * float(np.abs(a - b).sum())


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default="build/otgen")
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--steps", type=int, default=3000, help="training steps")
    ap.add_argument("--n", type=int, default=2000, help="particles")
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    means, s = eight_means(), 0.3
    tmp = tempfile.mkdtemp(prefix="otgen_sde_")
    res = {"cpu": cpu_model(), "cores": os.cpu_count(), "particles": a.n, "train_steps": a.steps, "cases": {}}
    common = ["--batch", "256", "--steps", str(a.steps), "--n", "8192", "--seed", "1", "-q"]
    run(a.cli, ["train", "--data", "8gaussians", "--coupling", "semidiscrete", "--out", f"{tmp}/u", *common])
    run(a.cli, ["train", "--data", "8gaussians", "--coupling", "semidiscrete", "--conditional", "--out", f"{tmp}/c",
                *common])
    model, cmodel = f"{tmp}/u/model.pt", f"{tmp}/c/model.pt"

    def sample(m, extra, seed, name):
        out = f"{tmp}/{name}_{seed}.npy"
        t0 = time.perf_counter()
        summ = run(a.cli, ["sample", "--model", m, "--n", str(a.n), "--seed", str(seed), "--out", out, *extra])
        summ["wall"] = time.perf_counter() - t0
        return np.load(out), summ

    # (1) linear tilt: exact mode weights ∝ exp(a . mu_k), Z = mean_k exp(a . mu_k + s^2 |a|^2 / 2).
    av = np.array([0.35, 0.2])
    exact = np.exp(means @ av) / np.exp(means @ av).sum()
    logz = float(np.log(np.mean(np.exp(means @ av + 0.5 * s * s * av @ av))))
    tilt = ["--tilt", "linear:0.35,0.2"]
    variants = {
        "ode (untilted)": ["--solver", "euler", "--steps", "100"],
        "sde, no weights (untilted)": ["--sde", "--no-weights"],
        "sde + reward drift, no weights": ["--sde", *tilt, "--tilt-drift", "1", "--no-weights"],
        "weighted sde": ["--sde", *tilt],
        "weighted sde + reward drift": ["--sde", *tilt, "--tilt-drift", "1"],
        "weighted ode (noise 0)": ["--sde", *tilt, "--sde-noise", "0"],
    }
    case = {"exact_shares": exact.tolist(), "exact_log_z": logz, "variants": {}}
    pictures = {}
    for name, extra in variants.items():
        tvs, lz, ess, secs, nfe = [], [], [], [], 0
        for seed in range(1, a.seeds + 1):
            rec = f"{tmp}/rec.json"
            x, summ = sample(model, extra + (["--record", rec] if "--sde" in extra and "--no-weights" not in extra else []),
                             seed, "tilt")
            tvs.append(tv(shares(x, means)[0], exact))
            secs.append(summ["wall"])
            nfe = summ["nfe"]
            if "log_z" in summ:
                lz.append(summ["log_z"])
                with open(rec) as f:
                    ess.append([st["ess"] for st in json.load(f)["trace"]])
            if seed == 1:
                pictures[name] = x
        v = {"mode_tv_median": float(np.median(tvs)), "mode_tv": tvs, "seconds_median": float(np.median(secs)), "nfe": nfe}
        if lz:
            v["log_z_mean"], v["log_z_std"] = float(np.mean(lz)), float(np.std(lz, ddof=1))
            v["ess_trace_seed1"] = ess[0]
        case["variants"][name] = v
    res["cases"]["tilt"] = case

    # (2) temperature 2: each component N(mu_k, s^2) becomes ~N(mu_k, s^2 / 2), weights stay equal.
    temp = {}
    for name, extra in {"ode": ["--solver", "euler", "--steps", "100"],
                        "weighted sde, T = 2": ["--sde", "--temperature", "2", "--noise-schedule", "linear"],
                        "sde, T = 2, no weights": ["--sde", "--temperature", "2", "--noise-schedule", "linear", "--no-weights"]}.items():
        x, summ = sample(model, extra, 1, "temp")
        sh, k = shares(x, means)
        within = np.sqrt(np.mean(((x - means[k]) ** 2).sum(1) / 2))
        temp[name] = {"within_mode_std": float(within), "mode_tv_uniform": tv(sh, np.full(8, 1 / 8)), "nfe": summ["nfe"],
                      "seconds": summ["wall"]}
        pictures["temperature: " + name] = x
    temp["exact_within_mode_std"] = s / np.sqrt(2)
    res["cases"]["temperature"] = temp

    # (3) guidance w = 3 as the product p(x|y)^w p(x)^(1-w): for well-separated modes it is ~N(mu_y, s^2).
    guid = {}
    for name, extra in {"cfg ode, w = 3": ["--class", "0", "--guidance", "3", "--solver", "euler", "--steps", "100"],
                        "weighted sde product, w = 3": ["--sde", "--class", "0", "--guidance", "3"]}.items():
        x, summ = sample(cmodel, extra, 1, "guid")
        sh, k = shares(x, means)
        within = np.sqrt(np.mean(((x - means[0]) ** 2).sum(1) / 2))
        guid[name] = {"share_of_class_mode": float(sh[0]), "std_about_class_mean": float(within), "nfe": summ["nfe"],
                      "seconds": summ["wall"]}
        pictures["guidance: " + name] = x
    guid["exact_std"] = s
    res["cases"]["guidance"] = guid

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "flow_sde.json"), "w") as f:
        json.dump(res, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        names = list(pictures)
        cols = 4
        rows = (len(names) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows))
        for ax in axes.flat:
            ax.axis("off")
        for ax, name in zip(axes.flat, names):
            ax.axis("on")
            x = pictures[name]
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
            ax.scatter(means[:, 0], means[:, 1], s=20, c="k", marker="x")
            ax.set_title(name, fontsize=9)
            ax.set_xlim(-6, 6), ax.set_ylim(-6, 6), ax.set_aspect("equal")
            ax.set_xlabel("x1"), ax.set_ylabel("x2")
        fig.suptitle(f"Weighted SDEs on a trained SD-FM model of 8 Gaussians ({a.n} particles; tilt a = (0.35, 0.2))")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "flow_sde.png"), dpi=80)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name in ("weighted sde", "weighted sde + reward drift", "weighted ode (noise 0)"):
            ax.plot(np.linspace(0, 1, len(case["variants"][name]["ess_trace_seed1"])), case["variants"][name]["ess_trace_seed1"], label=name)
        ax.set_xlabel("t"), ax.set_ylabel("ESS / n (before resampling)"), ax.set_title("ESS along the tilted runs (seed 1)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "flow_sde_ess.png"), dpi=80)
    except ImportError:
        pass
    print(json.dumps({k: {n: (v.get("mode_tv_median") if isinstance(v, dict) else v) for n, v in c.get("variants", c).items()}
                      for k, c in res["cases"].items()}, indent=1))


if __name__ == "__main__":
    main()
