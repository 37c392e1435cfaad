"""A straight numpy port of SMC-WFR (Crucinio-Pathiraja), the speed reference for otgen's samplers.

Per step, as in SPEC.md §4 and the authors' Python code: (1) systematic resampling, (2) ULA move
m_j = X_j + gamma grad log pi(X_j), X'_j = m_j + sqrt(2 gamma) xi, (3) log-weights
(1 - e^{-gamma}) (log pi(X'_i) - LSE_j(-|X'_i - m_j|^2 / (4 gamma))) with scipy's cdist and logsumexp.
The target is a Gaussian mixture with full covariances, evaluated in a vectorised way.

Usage: smc_wfr_numpy.py --target mixture4-lln --particles 500 --step 0.01 --steps 1000 --seed 1 --out run/
writes run/x.npy, run/logw.npy and prints the wall time of the sampling loop in seconds.
"""
import argparse
import os
import time

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

MIXTURES = {
    "mixture4-lln": (
        np.array([1, 1, 1, 1]) / 4,
        np.array([[0, 8], [0, 2], [-3, 5], [3, 5]], dtype=float),
        np.array([np.diag([1.2, 0.01]), np.diag([1.2, 0.01]), np.diag([0.01, 2]), np.diag([0.01, 2])]),
    ),
}


class Mixture:
    def __init__(self, weights, means, covs):
        self.logw = np.log(weights)
        self.means = means
        self.prec = np.linalg.inv(covs)
        self.logdet = np.linalg.slogdet(covs)[1]
        self.d = means.shape[1]

    def logp_grad(self, x):
        diff = x[:, None, :] - self.means[None, :, :]              # (N, K, d)
        pd = np.einsum("kab,nkb->nka", self.prec, diff)            # (N, K, d)
        quad = np.sum(diff * pd, axis=2)                           # (N, K)
        lk = self.logw - 0.5 * self.logdet - 0.5 * quad - 0.5 * self.d * np.log(2 * np.pi)
        lp = logsumexp(lk, axis=1)
        r = np.exp(lk - lp[:, None])
        grad = -np.sum(r[:, :, None] * pd, axis=1)
        return lp, grad

    def sample(self, n, rng, component=None):
        k = np.full(n, component) if component is not None else rng.choice(len(self.logw), n, p=np.exp(self.logw))
        out = np.empty((n, self.d))
        for j in range(n):
            out[j] = rng.multivariate_normal(self.means[k[j]], np.linalg.inv(self.prec[k[j]]))
        return out


def systematic(w, rng):
    n = len(w)
    u = (np.arange(n) + rng.uniform()) / n
    return np.minimum(np.searchsorted(np.cumsum(w), u), n - 1)


def smc_wfr(target, x, gamma, steps, rng):
    n = x.shape[0]
    logw = np.full(n, -np.log(n))
    for _ in range(steps):
        x = x[systematic(np.exp(logw), rng)]
        _, grad = target.logp_grad(x)
        m = x + gamma * grad
        x = m + np.sqrt(2 * gamma) * rng.standard_normal(x.shape)
        lp, _ = target.logp_grad(x)
        lmix = logsumexp(-cdist(x, m, "sqeuclidean") / (4 * gamma), axis=1)
        logw = (1 - np.exp(-gamma)) * (lp - lmix)
        logw -= logsumexp(logw)
    return x, logw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="mixture4-lln")
    ap.add_argument("--particles", type=int, default=500)
    ap.add_argument("--step", type=float, default=0.01)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--mode", type=int, default=1, help="start component (1-based)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    target = Mixture(*MIXTURES[a.target])
    x0 = target.sample(a.particles, rng, component=a.mode - 1)
    t0 = time.perf_counter()
    x, logw = smc_wfr(target, x0, a.step, a.steps, rng)
    dt = time.perf_counter() - t0
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        np.save(os.path.join(a.out, "x.npy"), x.astype(np.float32))
        np.save(os.path.join(a.out, "logw.npy"), logw)
    print(f"{dt:.4f}")


if __name__ == "__main__":
    main()
