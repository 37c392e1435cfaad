"""The sharded fit's scaling model (docs/dist.md, "Scaling model"): per-rank compute per step vs the
rank's column count, and the collectives' cost per step vs the rank count, both measured here; then
the model's time per step and memory per rank for N up to 10^7 points and K up to 64 ranks.

Part 1 (one process, 1 thread = one rank's share): `SemidiscreteOT.fit`, eps = 0, batch 1024, 30
steps after 5 warm-up steps, chi2 checks off, on N_local columns of (a) Fashion-MNIST images (784-d,
8-bit: the int8 screen) and (b) Gaussian points in 500-d (the paper's ImageNet PCA size; float data:
the bf16 screen or fp32, as auto picks). Fit: t(N_local) = a + b N_local (least squares).
Part 2 (`mpirun -np K`, oversubscribed on this machine, 1 thread a rank): `otgen sdot fit` on N = 64 K
points in 2-d, where the search is negligible: (seconds per step at K) - (at 1) = the collectives.

    PYTHONPATH=build/python /usr/bin/python3 bench/dist_scaling.py build/otgen
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import otgen

B, STEPS = 1024, 30


def step_ms(y, **kw):
    sd = otgen.SemidiscreteOT(steps=5, batch_size=B, seed=1, threads=1, chi2_every=0, init="zero", lr=1.0, **kw)
    sd.fit(y)  # warm-up: packing, first steps
    sd = otgen.SemidiscreteOT(steps=STEPS, batch_size=B, seed=1, threads=1, chi2_every=0, init="zero", lr=1.0, **kw)
    t0 = time.perf_counter()
    r = sd.fit(y)
    return 1e3 * (time.perf_counter() - t0) / STEPS, r.engine


def collectives_ms(cli, K, tmp):
    y = np.random.default_rng(0).standard_normal((64 * K, 2)).astype(np.float32)
    path = os.path.join(tmp, f"tiny{K}.npy")
    np.save(path, y)
    cmd = [cli, "sdot", "fit", "--data", path, "--steps", "400", "--batch", str(B), "--init", "zero", "--lr", "1",
           "--chi2-every", "0", "--threads", "1", "-q", "--seed", "1", "--out", os.path.join(tmp, f"g{K}.npy")]
    if K > 1:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(K)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    return 1e3 * summary["seconds"] / summary["steps"]


def main():
    cli = sys.argv[1] if len(sys.argv) > 1 else "build/otgen"
    fm, _, _ = otgen.load_dataset("fashion-mnist")
    gauss = np.random.default_rng(1).standard_normal((80000, 500)).astype(np.float32)
    model = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"== per-rank compute, 1 thread, batch {B}; {model}; {otgen.scores.cpu_features()}")
    fits = {}
    for name, y, sizes in (("fashion-mnist 784-d (int8)", fm, (15000, 30000, 60000)),
                           ("gaussian 500-d (float)", gauss, (20000, 40000, 80000))):
        pts = []
        for n in sizes:
            ms, engine = step_ms(np.ascontiguousarray(y[:n]))
            pts.append((n, ms))
            print(f"  {name:<28} N_local {n:>6}: {ms:8.1f} ms/step ({engine})", flush=True)
        n, t = np.array(pts).T
        b, a = np.polyfit(n, t, 1)
        fits[name] = (a, b)
        print(f"  {name:<28} t = {a:.1f} ms + {b * 1e3:.3f} ms per 1000 columns")
    print("== collectives per step (oversubscribed: an upper bound on a real network)")
    with tempfile.TemporaryDirectory() as tmp:
        base = collectives_ms(cli, 1, tmp)
        comm = {1: 0.0}
        for K in (2, 4, 8):
            comm[K] = max(0.0, collectives_ms(cli, K, tmp) - base)
            print(f"  K = {K}: +{comm[K]:.2f} ms/step over one process ({base:.2f} ms)", flush=True)
    # Beyond 8 ranks: the allreduce of B (value, index) pairs grows like log2 K (recursive doubling).
    per_level = max(comm[8] / 3, 1e-3)
    print("== model: ms per step (compute of N/K columns + collectives), 500-d float data")
    a, b = fits["gaussian 500-d (float)"]
    Ns, Ks = (10**5, 10**6, 1_281_167, 10**7), (1, 8, 64)
    print("| N | " + " | ".join(f"K = {K}" for K in Ks) + " |")
    print("| --- " * (1 + len(Ks)) + "|")
    for N in Ns:
        row = [a + b * N / K + per_level * np.log2(K) for K in Ks]
        print(f"| {N} | " + " | ".join(f"{v:.0f}" for v in row) + " |")
    print("memory per rank ~ N/K x (4 d bytes of float32 data + 2 d of bf16 columns + ~40 bytes of per-point state)")


if __name__ == "__main__":
    main()
