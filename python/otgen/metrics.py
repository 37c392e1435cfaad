"""Sample-quality metrics between two point clouds ``x`` (n, d) and ``y`` (m, d).

All pairwise sums run on otgen's score engine (threads: ``threads=0`` uses every core).
:func:`evaluate` is ``otgen eval`` (the same metrics, keys and bootstrap intervals) from Python.
"""

import json

import numpy as np

from . import _otgen

__all__ = ["energy_distance", "mmd", "mmd_per_bandwidth", "median_distance", "sliced_w2", "mean_marginal_w1",
           "frechet_distance", "fd_pca", "pca_basis", "exact_w2", "precision_recall", "bootstrap_indices",
           "evaluate", "METRICS"]

#: The metric names of :func:`evaluate` (and of ``otgen eval --metrics``).
METRICS = ("energy", "mmd", "sw2", "w1", "fd", "fd-pca", "fd-features", "w2", "prd")


def energy_distance(x, y, threads=0):
    r"""Energy distance :math:`2 E|X - Y| - E|X - X'| - E|Y - Y'|`.

    The within-sample terms are U-statistics, so the estimate is unbiased (and may be slightly
    negative for equal distributions). Needs at least 2 points on each side.
    """
    return _otgen.energy_distance(x, y, threads=threads)


def mmd(x, y, gamma=1.0, biased=False, threads=0):
    r"""Squared maximum mean discrepancy with the Gaussian kernel.

    :math:`k(a, b) = \sum_k \exp(-\gamma_k |a - b|^2)` (``gamma`` a number or a list of numbers, as in
    scikit-learn's ``rbf_kernel``). ``biased=True`` gives the V-statistic
    :math:`\overline{K_{xx}} + \overline{K_{yy}} - 2 \overline{K_{xy}}` with the diagonals kept (the
    figure Crucinio and Pathiraja report, with ``gamma=1``); the default is the unbiased U-statistic.
    """
    gammas = [float(g) for g in np.atleast_1d(gamma)]
    return _otgen.mmd2(x, y, gammas, biased=biased, threads=threads)


def sliced_w2(x, y, projections=128, seed=0):
    """Sliced 2-Wasserstein distance: sqrt of the mean, over ``projections`` seeded random unit
    directions, of the exact 1-D W2^2 between the projected samples (any sizes n, m)."""
    return _otgen.sliced_w2(x, y, projections=projections, seed=seed)


def mean_marginal_w1(x, y):
    """Mean over coordinates of the exact 1-D W1 between the marginals of ``x`` and ``y``."""
    return _otgen.mean_marginal_w1(x, y)


def frechet_distance(x, y):
    r"""Frechet distance between Gaussians fitted to ``x`` and ``y`` (covariances with 1/(n-1)):
    :math:`|\mu_x - \mu_y|^2 + \mathrm{tr}(S_x + S_y - 2 (S_x^{1/2} S_y S_x^{1/2})^{1/2})`.

    Pass features (e.g. a PCA projection or a small classifier's embedding) for an FID-like score
    without an Inception network."""
    return _otgen.frechet_distance(x, y)


def pca_basis(train, dim=None):
    """The PCA basis of a training set ``train`` (N, d): the top ``dim`` eigenvectors of its float64
    covariance (1/(N-1)), by decreasing variance, each signed so its largest-magnitude entry is
    positive. ``dim=None`` is ``min(d, 64, N - 1)``; otherwise ``1 <= dim <= min(d, N - 1)``.

    Returns ``(mean (d,), components (dim, d), variances (dim,), total_variance)``.
    """
    return _otgen.pca_basis(train, dim)


def fd_pca(x, y, train, dim=None):
    """Frechet distance between ``x`` and ``y`` projected (in float64) on the PCA basis of ``train``
    (see :func:`pca_basis`): an FID-like score in a fixed feature space without Inception."""
    return _otgen.frechet_distance_pca(x, y, train, dim)


def exact_w2(x, y, max_points=2048, seed=0, threads=0):
    """Exact W2 between ``k = min(n, m, max_points)`` seeded random points of each set, matched by the
    exact assignment. Returns ``(w2, k)``."""
    return _otgen.exact_w2(x, y, max_points=max_points, seed=seed, threads=threads)


def precision_recall(x_real, x_fake, k=3, threads=0):
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls; returns
    ``(precision, recall)``."""
    return _otgen.precision_recall(x_real, x_fake, k=k, threads=threads)


def median_distance(x, y, per_side=500):
    """The RBF median heuristic of :func:`evaluate`: the median nonzero pairwise distance within at most
    ``per_side`` evenly spaced rows of ``x`` and of ``y`` pooled (1 if all are 0)."""
    return _otgen.median_distance(x, y, per_side=per_side)


def mmd_per_bandwidth(x, y, gamma, threads=0):
    """Unbiased MMD^2 for each ``gamma`` separately (they sum to ``mmd(x, y, gamma)``)."""
    gammas = [float(g) for g in np.atleast_1d(gamma)]
    return np.asarray(_otgen.mmd2_per_bandwidth(x, y, gammas, threads=threads))


def bootstrap_indices(n, seed, replicate, side):
    """Row indices (int64, length ``n``) of bootstrap replicate ``replicate`` of a set of ``n`` rows:
    ``side`` 0 for the samples, 1 for the reference. Drawn with replacement; a replicate with fewer
    than 2 distinct rows is redrawn. The resampling :func:`evaluate` uses."""
    return _otgen.bootstrap_indices(n, seed, replicate, side)


def evaluate(samples, reference, metrics=("energy", "mmd", "sw2"), pca_data=None, pca_dim=None, bootstrap=0,
             projections=256, max_points=2048, k=3, mmd_scales=(0.5, 1.0, 2.0), level=0.95,
             return_replicates=False, seed=0, threads=0, features=None):
    """``otgen eval`` from Python: a dict with the same keys as its JSON.

    ``metrics``: names from :data:`METRICS` (a list, or a comma-separated string). ``fd-pca`` needs
    ``pca_data``, the (N, d) training set whose PCA basis is the feature space (``pca_dim`` components,
    default ``min(d, 64, N - 1)``). ``fd-features`` needs ``features``, a feature net written by
    ``otgen features train`` (run here with torch.jit: ``frechet_features``, its interval and a
    ``features`` summary, as the CLI reports them). ``mmd`` uses bandwidths ``sigma = mmd_scales x``
    the median distance (:func:`median_distance`), reported as ``mmd_bandwidths`` and ``mmd_gammas``.
    ``bootstrap=R > 0`` adds ``<key>_ci = [lo, hi]``, the ``level`` percentile interval of R replicates
    (both sets resampled with replacement, see :func:`bootstrap_indices`), for every metric except
    ``w2`` and ``prd``; ``return_replicates=True`` also returns the replicate values
    (``bootstrap_replicates``). Invalid arguments raise ValueError naming them.
    """
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    metrics = [str(m) for m in metrics]
    scales = [float(s) for s in np.atleast_1d(mmd_scales)]
    with_features = "fd-features" in metrics
    if with_features != (features is not None):
        raise ValueError("features: None, expected a feature net .pt (otgen features train) for fd-features"
                         if with_features else "metrics: expected fd-features among them when features= is given")
    rest = [m for m in metrics if m != "fd-features"]

    def run(a, b, names):
        return json.loads(_otgen.evaluate(a, b, names, pca_data, pca_dim, int(bootstrap), int(projections),
                                          int(max_points), int(k), scales, float(level), bool(return_replicates),
                                          int(seed), int(threads)))

    doc = run(samples, reference, rest) if rest else {}
    if with_features:
        fs, fr, info = _features_of(features, samples, reference)
        pca_data, pca_dim = None, None
        f = run(fs, fr, ["fd"])
        for key in ("n", "m", "seed", "bootstrap"):
            if key in f and key not in doc:
                doc[key] = f[key]
        doc["d"] = int(np.shape(samples)[1])
        doc["frechet_features"] = f["frechet"]
        if "frechet_ci" in f:
            doc["frechet_features_ci"] = f["frechet_ci"]
        doc["features"] = info
    return doc


def _features_of(path, samples, reference):
    """The feature net's features of both sets (float32), and the summary eval reports."""
    import torch
    try:
        extra = {"otgen.json": ""}
        net = torch.jit.load(str(path), _extra_files=extra)
        meta = json.loads(extra["otgen.json"])
    except Exception as e:  # noqa: BLE001 - torch raises several types for unreadable files
        raise ValueError(f"features: '{path}', expected a feature net written by otgen features train ({e})") from None
    if meta.get("format") != "otgen.features/1":
        raise ValueError(f"features: '{path}', expected a feature net (format otgen.features/1)")
    out = []
    for name, x in (("samples", samples), ("reference", reference)):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != meta["dim"]:
            raise ValueError(f"{name}: shape {x.shape}, expected (n, {meta['dim']}): the feature net's input dimension")
        with torch.no_grad():
            out.append(np.concatenate([net.features(torch.from_numpy(x[i:i + 1024])).numpy()
                                       for i in range(0, len(x), 1024)]).astype(np.float32))
    info = {"model": str(path), "feature_dim": meta["feature_dim"], "dataset": meta.get("dataset", ""),
            "test_accuracy": meta.get("test_accuracy", 0.0)}
    return out[0], out[1], info
