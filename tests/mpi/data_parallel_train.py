"""Data-parallel flow training under mpirun against the single process (docs/dist.md, "Data-parallel training").

Runs `otgen train` on one process and under `mpirun -np K` with the same options and seed, and asserts:
the EMA model's weights (model.pt, read with python3-torch) within 1e-4 of each tensor's scale of one process's, the
loss curve within 1e-5 relative, the record names K ranks, rank 0 alone wrote the run folder; for an
MLP with the independent coupling, a conditional MeanFlow MLP (the JVP path) and the semidiscrete
coupling fitted first (its potential identical); batch not divisible by K. A batch smaller than K
ends every rank with exit 2, one message and no run folder.
Usage: data_parallel_train.py --cli build/otgen --np K
"""
import argparse
import json
import os
import tempfile

import numpy as np
import torch

from mpirun import MPIRUN, run


def weights(path):
    return {k: v.detach().numpy() for k, v in torch.jit.load(path).state_dict().items()}


def compare(cli, K, tmp, name, args):
    one, many = os.path.join(tmp, name + "_1"), os.path.join(tmp, name + "_K")
    common = ["train"] + args + ["--seed", "3", "--threads", "1", "-q"]
    run([cli] + common + ["--out", one], timeout=240)
    run(MPIRUN + ["-np", str(K), cli] + common + ["--out", many], timeout=240)
    wa, wb = weights(os.path.join(one, "model.pt")), weights(os.path.join(many, "model.pt"))
    assert wa.keys() == wb.keys()
    for k in wa:
        # The summed gradients differ from one process's in the last bits (the sum order), and Adam's
        # normalised step turns that into up to ~2e-5 of a tensor's scale in 12 steps (measured); a wrong
        # split of the batch or a missing sum moves the weights by O(1) of it.
        err = np.abs(wa[k] - wb[k]).max() / (np.abs(wa[k]).max() + 1e-12)
        assert err <= 1e-4, f"{name}: {k} relative difference {err:.3g} > 1e-4"
    ra = json.load(open(os.path.join(one, "record.json")))
    rb = json.load(open(os.path.join(many, "record.json")))
    la = np.array([h["loss"] for h in ra["result"]["history"]])
    lb = np.array([h["loss"] for h in rb["result"]["history"]])
    assert la.shape == lb.shape and np.allclose(la, lb, rtol=1e-5, atol=0), f"{name}: loss curves {la} vs {lb}"
    assert rb["ranks"] == K and "ranks" not in ra
    assert sorted(os.listdir(one)) == sorted(os.listdir(many)), (os.listdir(one), os.listdir(many))
    if os.path.exists(os.path.join(one, "potential.npy")):
        assert np.array_equal(np.load(os.path.join(one, "potential.npy")), np.load(os.path.join(many, "potential.npy")))
    print(f"{name}: {K} ranks equal one process (weights, loss curve)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--np", type=int, default=2)
    a = ap.parse_args()
    K, batch = a.np, 100
    assert batch % K != 0 or K == 2  # 100 rows: 50 + 50 on 2 ranks, 34 + 33 + 33 on 3
    with tempfile.TemporaryDirectory() as tmp:
        compare(a.cli, K, tmp, "mlp", ["--data", "8gaussians", "--steps", "30", "--batch", str(batch)])
        compare(a.cli, K, tmp, "meanflow", ["--data", "digits", "--conditional", "--meanflow", "--steps", "12",
                                            "--batch", str(batch)])
        compare(a.cli, K, tmp, "semidiscrete", ["--data", "digits", "--coupling", "semidiscrete", "--fit-steps", "100",
                                                "--steps", "12", "--batch", str(batch)])
        bad = os.path.join(tmp, "bad")
        p = run(MPIRUN + ["-np", str(K), a.cli, "train", "--data", "8gaussians", "--steps", "3", "--batch", str(K - 1),
                          "--out", bad], expect=2, timeout=240)
        assert p.stderr.count("invalid --batch") == 1, p.stderr
        assert not os.path.exists(bad)
        print("a batch smaller than the ranks: exit 2, one message, no run folder")


if __name__ == "__main__":
    main()
