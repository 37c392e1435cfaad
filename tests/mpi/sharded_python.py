"""The Python module under mpirun against the single process (docs/dist.md, "Python").

Runs this file once as one process and once under `mpirun -np K` (every rank passes the whole arrays;
the semidiscrete calls shard the data by rows), and asserts: fit g within 1e-5 relative of one
process, assign indices identical, eps > 0 samples identical, check identical; every rank returns
the same results; on float data and on 8-bit lattice data (the int8 screen); N not divisible by K.
Calls that cannot shard raise ValueError on every rank (conditional fits, top k).
Usage: sharded_python.py --np K            (the driver; PYTHONPATH must reach the otgen package)
       sharded_python.py --child OUT.npz   (one run: writes its results, rank by rank)
"""
import argparse
import os
import sys
import tempfile

import numpy as np

from mpirun import MPIRUN, run
N, D = 601, 12


def data(kind):
    r = np.random.default_rng(5)
    if kind == "lattice":  # 8-bit images: the int8 screen where the CPU has one
        return (r.integers(0, 256, (N, 64)) / 127.5 - 1).astype(np.float32)
    return (r.standard_normal((N, D)) * 0.7 + 0.3).astype(np.float32)


def child(out):
    import otgen
    rank, size = otgen._otgen.world_rank(), otgen._otgen.world_size()
    res = {"size": np.array(size)}
    w = np.random.default_rng(6).uniform(0.5, 1.5, N)
    w[N // 2] = 0.0  # a masked point
    w /= w.sum()
    features = set(otgen.scores.cpu_features().split())
    screen = "amx" if {"amx_int8", "amx_bf16"} <= features else "vnni" if "avx512_vnni" in features else "auto"
    for kind in ("float", "lattice"):
        y = data(kind)
        engine = screen if kind == "lattice" else "auto"  # the int8 screen at this small size: forced
        sd = otgen.SemidiscreteOT(steps=150, batch_size=256, seed=7, threads=1, init="zero", engine=engine)
        r = sd.fit(y, weights=w)
        x = np.random.default_rng(8).standard_normal((500, y.shape[1])).astype(np.float32)
        res[kind + "_g"] = r.g
        res[kind + "_assign"] = sd.assign(x)
        res[kind + "_check"] = np.array([sd.check(batch=256, repeats=2, seed=3)[k] for k in ("chi2", "tv", "draws")])
        soft = otgen.SemidiscreteOT.from_potential(y, r.g, weights=w, epsilon=0.5, threads=1)
        res[kind + "_sample"] = soft.sample(x, seed=9)
        res[kind + "_engine"] = np.array(sd.engine)
    # What does not shard says so, on every rank alike.
    labels = np.arange(N) % 3
    for name, call in (("labels", lambda: otgen.SemidiscreteOT(steps=5, init="zero").fit(data("float"), labels=labels)),
                       ("topk", lambda: sd.topk(x, 2))):
        try:
            call()
            res["raised_" + name] = np.array(False)
        except ValueError:
            res["raised_" + name] = np.array(True)
    np.savez(f"{out}.rank{rank}.npz", **res)


def driver(K):
    with tempfile.TemporaryDirectory() as tmp:
        one, many = os.path.join(tmp, "one"), os.path.join(tmp, "many")
        for cmd in ([sys.executable, __file__, "--child", one],
                    MPIRUN + ["-np", str(K), sys.executable, __file__, "--child", many]):
            run(cmd, timeout=240)
        a = np.load(one + ".rank0.npz")
        ranks = [np.load(f"{many}.rank{k}.npz") for k in range(K)]
        assert int(a["size"]) == 1 and all(int(b["size"]) == K for b in ranks)
        for b in ranks:
            for key in a.files:
                if key == "size":
                    continue
                if key.endswith("_g"):
                    scale = np.abs(a[key]).max() + 1e-30
                    err = np.abs(a[key] - b[key]).max() / scale
                    assert err <= 1e-5, f"{key}: relative difference {err:.3g} > 1e-5"
                elif key.startswith("raised_"):  # one process runs them; K ranks refuse them (ValueError)
                    assert not a[key] and b[key], key
                else:
                    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        print(f"python under mpirun -np {K}: fit, assign, sample, check equal one process "
              f"(engines {a['float_engine']}, {a['lattice_engine']})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.child:
        child(a.child)
    else:
        assert N % a.np != 0
        driver(a.np)


if __name__ == "__main__":
    main()
