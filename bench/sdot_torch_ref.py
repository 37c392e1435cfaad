#!/usr/bin/python3
"""PyTorch reference for the semidiscrete SGD loop (the comparison of `make bench`).

The same algorithm as `otgen sdot fit` (SPEC.md §1), written with plain PyTorch tensors:
fresh noise x ~ N(0, I) each step, scores S = x @ y.T + h with h = g - |y|^2 / 2, then
  eps = 0: counts of argmax_j S_ij (bincount);  eps > 0: column sums of softmax(S / eps + log b),
the SGD ascent step g += lr * (b - counts / B) and an EMA of g. Prints one JSON line with the median
seconds per step (after warm-up) and the thread count.

Usage: sdot_torch_ref.py Y.npy [--batch 1024] [--steps 12] [--epsilon 0] [--threads 2]
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--epsilon", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    y = torch.from_numpy(np.load(a.data).astype(np.float32))
    n, d = y.shape
    b = torch.full((n,), 1.0 / n, dtype=torch.float32)
    log_b = torch.log(b)
    half_norm = 0.5 * (y * y).sum(1)
    g = torch.zeros(n, dtype=torch.float32)
    gbar = g.clone()
    times = []
    with torch.no_grad():
        for step in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            x = torch.randn(a.batch, d)
            S = torch.addmm(g - half_norm, x, y.T)  # (B, n) scores
            if a.epsilon == 0:
                idx = S.argmax(dim=1)
                m = torch.bincount(idx, minlength=n).to(torch.float32)
            else:
                m = torch.softmax(S / a.epsilon + log_b, dim=1).sum(0)
            g += a.lr * (b - m / a.batch)
            gbar.mul_(0.99).add_(g, alpha=0.01)
            dt = time.perf_counter() - t0
            if step >= a.warmup:
                times.append(dt)
    print(json.dumps({"impl": "torch", "torch": torch.__version__, "threads": a.threads, "n": n, "d": d,
                      "batch": a.batch, "epsilon": a.epsilon, "median_seconds_per_step": statistics.median(times),
                      "steps": a.steps}))


if __name__ == "__main__":
    main()
