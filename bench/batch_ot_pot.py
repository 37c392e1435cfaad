"""POT / scipy anchors for the batch OT benchmark (scripts/bench_batch_ot.sh).

usage: batch_ot_pot.py exact|sinkhorn|lsa X.npy Y.npy [eps_rel tol]
Prints one JSON line. Times include building the cost matrix (ot.dist, float64), as for otgen.
"""
import json
import sys
import time

import numpy as np
import ot
from scipy.optimize import linear_sum_assignment


def main():
    what, xp, yp = sys.argv[1:4]
    x = np.load(xp).astype(np.float64)
    y = np.load(yp).astype(np.float64)
    n, m = len(x), len(y)
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    t0 = time.perf_counter()
    M = ot.dist(x, y)  # ||x - y||^2 = 2 * our cost
    if what == "exact":
        G = ot.emd(a, b, M, numItermax=10_000_000)
        secs = time.perf_counter() - t0
        print(json.dumps({"what": what, "n": n, "seconds": secs, "mean_cost": float((G * M).sum()) / 2,
                          "nnz": int((G > 0).sum())}))
    elif what == "lsa":
        r, c = linear_sum_assignment(M)
        secs = time.perf_counter() - t0
        print(json.dumps({"what": what, "n": n, "seconds": secs, "mean_cost": float(M[r, c].mean()) / 2}))
    else:
        eps_rel, tol = float(sys.argv[4]), float(sys.argv[5])
        eps = eps_rel * (M / 2).std()  # our epsilon; POT's reg is twice it
        G, log = ot.sinkhorn(a, b, M, 2 * eps, method="sinkhorn_log", stopThr=tol, numItermax=100000, log=True)
        secs = time.perf_counter() - t0
        err = float(np.abs(G.sum(1) - a).sum() + np.abs(G.sum(0) - b).sum())
        print(json.dumps({"what": what, "n": n, "seconds": secs, "cost": float((G * M).sum()) / 2,
                          "iterations": int(log["niter"]), "marginal_error_l1_both": err,
                          "row_error": float(np.abs(G.sum(1) - a).sum()), "col_error": float(np.abs(G.sum(0) - b).sum()),
                          "epsilon": eps}))


if __name__ == "__main__":
    main()
