"""WFR sampler benchmarks (SPEC.md §4, issue 6), driven through the otgen CLI.

  1. Double well V = H (x^2-1)^2 + 0.5 x, N = 300, all particles at x = +1, dt = 0.005, t = 5,
     H in {2, 4, 6, 8}: weighted left-well mass (mean +- std over seeds) of ULA, birth-death, weighted
     WFR and SMC-WFR against the exact mass (quadrature).
  2. mixture4-lln, N = 500, gamma = 0.01, 1000 steps, start in mode 1: biased MMD^2 with kernel
     exp(-|x - y|^2) against N exact draws, for SMC-WFR and birth-death (KDE h = gamma).
  3. Wall time per 1000 steps at N = 500 in 2-D for every sampler against bench/smc_wfr_numpy.py (a
     straight numpy port of SMC-WFR), measured in the same run.

Usage: wfr_bench.py OTGEN_CLI [--seeds 5] [--quick]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smc_wfr_numpy as ref  # noqa: E402


def run(cli, out, *args, threads=1):
    cmd = [cli, "wfr", "--quiet", "--out", out, *map(str, args)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.path.join(out, "trace.json")) as f:
        doc = json.load(f)
    # CPU seconds of the whole process (start-up and file writing included)
    doc["cpu_seconds"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    x = np.load(os.path.join(out, "x.npy")).astype(np.float64)
    w = np.exp(np.load(os.path.join(out, "logw.npy")))
    return doc, x, w / w.sum()


def mmd2(x, w, y):
    """Biased MMD^2 with k(a, b) = exp(-|a - b|^2) between weighted particles (x, w) and draws y."""
    def k(a, b):
        d2 = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T
        return np.exp(-np.maximum(d2, 0))
    v = np.full(len(y), 1 / len(y))
    return float(w @ k(x, x) @ w - 2 * w @ k(x, y) @ v + v @ k(y, y) @ v)


def fmt(vals):
    return f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals) if len(vals) > 1 else 0:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer seeds and H values (smoke run)")
    ap.add_argument("--only", choices=["doublewell", "lln", "cp", "speed"], default=None, help="one section")
    a = ap.parse_args()
    seeds = list(range(1, (2 if a.quick else a.seeds) + 1))
    tmp = tempfile.mkdtemp(prefix="otgen_wfr_bench_")
    print(f"machine: {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}; seeds {seeds}")

    want = lambda part: a.only is None or a.only == part  # noqa: E731
    if want("doublewell"):
        double_well(a, seeds, tmp)
    if want("lln"):
        mixture_lln(a, seeds, tmp)
    if want("cp"):
        mixture_cp(a, seeds, tmp)
    if want("speed"):
        speed(a, tmp)
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


def double_well(a, seeds, tmp):
    samplers = [("ula", []), ("birth-death", ["--bandwidth", "0.1"]), ("birth-death (Silverman)", []),
                ("wfr", ["--bandwidth", "0.1"]), ("smc-wfr", [])]
    Hs = [2, 6] if a.quick else [2, 4, 6, 8]
    print("\n## Double well: weighted left-well mass at t = 5 (N = 300, start x = +1, dt = 0.005)\n")
    print("| H | exact | " + " | ".join(s for s, _ in samplers) + " |")
    print("|---" * (len(samplers) + 2) + "|")
    for H in Hs:
        cells, exact = [], None
        for name, extra in samplers:
            vals = []
            for s in seeds:
                doc, _, _ = run(a.cli, os.path.join(tmp, "dw"), "--target", "doublewell", "--H", H, "--sampler",
                                name.split(" ")[0], "--particles", 300, "--step", 0.005, "--time", 5,
                                "--init", "point:1.0", "--seed", s, *extra)
                vals.append(doc["summary"]["left_well_mass"])
                exact = doc["summary"]["left_well_mass_exact"]
            cells.append(fmt(vals))
        print(f"| {H} | {exact:.4f} | " + " | ".join(cells) + " |", flush=True)



def mixture_lln(a, seeds, tmp):
    print("\n## mixture4-lln: biased MMD^2, kernel exp(-|x-y|^2), vs 500 exact draws (N = 500, gamma = 0.01, "
          "1000 steps, start mode 1)\n")
    target = ref.Mixture(*ref.MIXTURES["mixture4-lln"])
    print("| sampler | MMD^2 (mean ± std) | seconds / 1000 steps |")
    print("|---|---|---|")
    # birth-death bandwidths: the Silverman rule (default); h = 7.07, i.e. the authors' sklearn
    # rbf_kernel(X, X, 0.01) = exp(-0.01 |x - y|^2) ("h = gamma" in their code); h = 0.01 read literally.
    for label, name, extra in [("smc-wfr", "smc-wfr", []), ("wfr (Silverman)", "wfr", []),
                               ("birth-death (Silverman)", "birth-death", []),
                               ("birth-death h = 7.07 (authors' rbf 0.01)", "birth-death", ["--bandwidth", "7.0711"]),
                               ("birth-death h = 0.01", "birth-death", ["--bandwidth", "0.01"])]:
        vals, secs = [], []
        for s in seeds:
            doc, x, w = run(a.cli, os.path.join(tmp, "m4"), "--target", "mixture4-lln", "--sampler", name,
                            "--particles", 500, "--step", 0.01, "--steps", 1000, "--init", "mode:1", "--seed", s,
                            *extra)
            y = target.sample(500, np.random.default_rng(1000 + s))
            vals.append(mmd2(x, w, y))
            secs.append(doc["summary"]["seconds"])
        print(f"| {label} | {statistics.mean(vals):.4f} ± {statistics.stdev(vals) if len(vals) > 1 else 0:.4f} | "
              f"{statistics.median(secs):.3f} |", flush=True)



def speed(a, tmp):
    target = ref.Mixture(*ref.MIXTURES["mixture4-lln"])
    # 3. speed vs the numpy port, same run: the repetitions interleave the reference and otgen runs so
    # that a change of machine load hits both
    print("\n## Speed: wall time per 1000 steps, N = 500, mixture4-lln (2-D), median of 3 interleaved runs\n")
    configs = [(name, th) for name in ("ula", "mala", "birth-death", "wfr", "smc-wfr", "tempered-smc")
               for th in (1, 2)]
    t_np, c_np, secs, cpus = [], [], {c: [] for c in configs}, {c: [] for c in configs}
    for rep in range(3):
        rng = np.random.default_rng(rep)
        x0 = target.sample(500, rng, component=0)
        t0, c0 = time.perf_counter(), time.process_time()
        ref.smc_wfr(target, x0, 0.01, 1000, rng)
        t_np.append(time.perf_counter() - t0)
        c_np.append(time.process_time() - c0)
        for name, th in configs:
            doc, _, _ = run(a.cli, os.path.join(tmp, "sp"), "--target", "mixture4-lln", "--sampler", name,
                            "--particles", 500, "--step", 0.01, "--steps", 1000, "--init", "mode:1",
                            "--seed", rep + 1, threads=th)
            secs[(name, th)].append(doc["summary"]["seconds"])
            cpus[(name, th)].append(doc["cpu_seconds"])
    ref_t, ref_c = statistics.median(t_np), statistics.median(c_np)
    print(f"numpy SMC-WFR port: wall {ref_t:.3f} s (runs: {', '.join(f'{v:.2f}' for v in t_np)}), "
          f"CPU {ref_c:.3f} s\n")
    print("| sampler | threads | wall s / 1000 steps | wall speed-up | CPU s (whole process) | CPU speed-up |")
    print("|---|---|---|---|---|---|")
    for name, th in configs:
        m, c = statistics.median(secs[(name, th)]), statistics.median(cpus[(name, th)])
        print(f"| {name} | {th} | {m:.3f} | {ref_t / m:.1f}x | {c:.3f} | {ref_c / c:.1f}x |", flush=True)

def mixture_cp(a, seeds, tmp):
    """mixture4-cp: start N(0, I), N = 300, gamma = 0.2, 4000 steps; mean marginal W1 against exact draws."""
    from scipy.stats import wasserstein_distance
    w_ = np.array([1 / 3, 1 / 6, 1 / 3, 1 / 6])
    ms = np.array([[3, 3], [9, 10], [2, 2], [10, 4]], dtype=float)
    c, b = 0.8377, 0.6701
    S = np.array([0.7 * np.array([[1, -c], [-c, 1]]), 0.7 * np.array([[1, c], [c, 1]]),
                  0.7 * np.array([[1, -c], [-c, 1]]), 2 * np.array([[1, -b], [-b, 1]])])
    target = ref.Mixture(w_, ms, S)
    print("\n## mixture4-cp: mean marginal W1 vs 10000 exact draws (N = 300, gamma = 0.2, 4000 steps, "
          "start N(0, I))\n")
    print("| sampler | marginal W1 (mean ± std) | seconds |")
    print("|---|---|---|")
    for label, name, extra in [("smc-wfr", "smc-wfr", []), ("birth-death (Silverman)", "birth-death", []),
                               ("ula", "ula", [])]:
        vals, secs = [], []
        for s in seeds:
            doc, x, w = run(a.cli, os.path.join(tmp, "cp"), "--target", "mixture4-cp", "--sampler", name,
                            "--particles", 300, "--step", 0.2, "--steps", 4000, "--init", "gaussian", "--seed", s,
                            *extra)
            y = target.sample(10000, np.random.default_rng(2000 + s))
            vals.append(np.mean([wasserstein_distance(x[:, k], y[:, k], u_weights=w) for k in range(2)]))
            secs.append(doc["summary"]["seconds"])
        print(f"| {label} | {fmt(vals)} | {statistics.median(secs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
