"""The engine's argmax paths on this CPU (docs/scores.md, "Engine paths"): where the bf16 screen on AMX
tiles beats float32 (auto's kAmxMinWork rule), and one semidiscrete fit step on Fashion-MNIST per path.

Part 1: assign 1024 noise rows (a fit step's search) to N Fashion-MNIST images cut to their first d
pixels, as 8-bit lattice data (fp32, the int8 screen's VNNI and AMX kinds) and as non-lattice float data
(+ 1e-3 N(0, 1): fp32, the bf16 screen on AMX tiles), through a prepared map (its screen packed once).
Part 2: 300 eps = 0 fit steps on Fashion-MNIST (chi2 checks off) per path; ms per step.
Paths this CPU lacks are left out. Medians of --reps; 2 threads.

    PYTHONPATH=build/python /usr/bin/python3 bench/screen_paths.py [--reps 7] [--steps 300]
"""
import argparse
import os
import time

import numpy as np
import otgen

GRID_N = (1797, 4096, 10000, 60000)
GRID_D = (32, 64, 128, 784)
ROWS = 1024


def supported(engine):
    try:
        otgen.scores.argmax_engine(64, engine)
        otgen.scores.row_argmax(np.zeros((1, 40), np.float32), np.zeros((1, 40), np.float32), engine=engine)
        return True
    except ValueError:
        return False


def assign_ms(y, engine, x, reps, **kw):
    m = otgen.SemidiscreteOT.from_potential(y, np.zeros(len(y), np.float32), engine=engine, threads=2, **kw)
    m.assign(x[:64])  # prepares the map and its screen
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        m.assign(x)
        t.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(t)), m.engine


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--steps", type=int, default=300)
    a = ap.parse_args()
    y_all, _, _ = otgen.load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    lattice = [e for e in ("fp32", "vnni", "amx") if supported(e)]
    floats = [e for e in ("fp32", "amx", "auto") if e == "auto" or supported(e)]
    model = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"argmax paths, {ROWS} x N x d, 2 threads; {model}, {os.cpu_count()} cores; {otgen.scores.cpu_features()}; "
          f"median of {a.reps} (ms); auto takes amx for float data from N d > 2^18 = 262144")
    print("| N | d | N d | " + " | ".join(f"lattice {e}" for e in lattice) + " | " +
          " | ".join(f"float {e}" for e in floats) + " |")
    print("| --- " * (3 + len(lattice) + len(floats)) + "|")
    for N in GRID_N:
        rows = rng.permutation(len(y_all))[:N]
        for d in GRID_D:
            y = np.ascontiguousarray(y_all[rows][:, :d])
            yf = y + (1e-3 * rng.standard_normal(y.shape)).astype(np.float32)
            x = rng.standard_normal((ROWS, d), dtype=np.float32)
            cells = [f"{assign_ms(y, e, x, a.reps)[0]:.1f}" for e in lattice]
            for e in floats:
                ms, ran = assign_ms(yf, e, x, a.reps)
                cells.append(f"{ms:.1f}" + (f" ({ran})" if e == "auto" else ""))
            print(f"| {N} | {d} | {N * d} | " + " | ".join(cells) + " |", flush=True)

    print(f"\nFashion-MNIST fit, {a.steps} eps = 0 steps (default batch), chi2 checks off, 2 threads")
    print("| path | int8 screen | ms / step |")
    print("| --- | --- | --- |")
    runs = [dict(engine=e) for e in lattice] + ([dict(engine="amx", int8_screen=False)] if "amx" in lattice else [])
    for kw in runs:
        sd = otgen.SemidiscreteOT(steps=a.steps, seed=1, threads=2, chi2_every=0, **kw)
        t0 = time.perf_counter()
        r = sd.fit(y_all)
        ms = 1e3 * (time.perf_counter() - t0) / a.steps
        print(f"| {r.engine} | {r.int8_screen} | {ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
