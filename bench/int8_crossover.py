"""Where the int8 screen pays (docs/scores.md, "When the screen is used"): assign 1024 noise rows (a fit step's batch) to N
Fashion-MNIST images cut to their first d pixels (8-bit lattice data) with the float32 engine and with
the int8 screen, N x d over a grid. The float32 side runs at its best setting: OpenBLAS's own kernels
and OPENBLAS_CORETYPE=SkylakeX (a child process), whichever is faster for each cell.

    PYTHONPATH=build/python /usr/bin/python3 bench/int8_crossover.py [--reps 5]
"""
import argparse, json, os, subprocess, sys, time
import numpy as np
import otgen

GRID_N = (1797, 4096, 10000, 60000)
GRID_D = (32, 64, 128, 256, 784)
ROWS = 1024  # the fit's default batch: one gradient step's search


def measure(engine, reps):
    y_all, _, _ = otgen.load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    out = {}
    for N in GRID_N:
        rows = rng.permutation(len(y_all))[:N]
        for d in GRID_D:
            y = np.ascontiguousarray(y_all[rows][:, :d])
            x = rng.standard_normal((ROWS, d), dtype=np.float32)
            m = otgen.SemidiscreteOT.from_potential(y, np.zeros(N, np.float32), engine=engine, threads=2)
            m.assign(x[:64])  # prepares the map (and the screen)
            t = []
            for _ in range(reps):
                t0 = time.perf_counter()
                m.assign(x)
                t.append(time.perf_counter() - t0)
            out[f"{N}x{d}"] = float(np.median(t))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a.child, a.reps)))
        return
    def child(engine, env):
        r = subprocess.run([sys.executable, __file__, "--reps", str(a.reps), "--child", engine],
                           env={**os.environ, **env}, capture_output=True, text=True, check=True)
        return json.loads(r.stdout)
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    os.environ.clear(), os.environ.update(base)
    vnni = child("vnni", {})
    fp32 = {"default": child("fp32", {}), "SkylakeX": child("fp32", {"OPENBLAS_CORETYPE": "SkylakeX"})}
    model = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"int8 screen vs float32 search, {ROWS} x N x d, 2 threads; {model}, {os.cpu_count()} cores; "
          f"median of {a.reps}; auto screens from N d >= 2^17 = 131072 (any size on OpenBLAS's fallback kernels)")
    print("| N | d | N d | fp32 ms (best kernels) | int8 screen ms | screen / fp32 | auto |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for N in GRID_N:
        for d in GRID_D:
            k = f"{N}x{d}"
            best = min(fp32["default"][k], fp32["SkylakeX"][k])
            auto = "screen" if N * d >= 1 << 17 else "fp32"
            print(f"| {N} | {d} | {N * d} | {best * 1e3:.1f} | {vnni[k] * 1e3:.1f} | {vnni[k] / best:.2f} | {auto} |")


if __name__ == "__main__":
    main()
