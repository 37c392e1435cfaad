"""otgen.metrics against numpy / scipy / POT references: Frechet distance in a PCA basis, the MMD
median heuristic and per-bandwidth values, exact W2, precision/recall, the bootstrap of evaluate, and
ValueErrors that name the Python arguments."""

import json
import re

import numpy as np
import ot
import pytest
import scipy.linalg
import scipy.spatial

import otgen


def frechet_numpy(a, b):
    """FD of fitted Gaussians with scipy.linalg.sqrtm (the FID formula)."""
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = scipy.linalg.sqrtm(sa @ sb).real
    return float(((ma - mb) ** 2).sum() + np.trace(sa + sb - 2 * covmean))


def pca_numpy(train, k):
    t = train.astype(np.float64)
    w, v = np.linalg.eigh(np.cov(t, rowvar=False))
    order = np.argsort(w)[::-1][:k]
    return t.mean(0), v[:, order].T, w[order]


@pytest.mark.parametrize("n,m,d,k,N", [(300, 200, 6, 3, 500), (150, 400, 20, 20, 100), (80, 90, 12, 5, 40)])
def test_fd_pca_matches_numpy_pca_and_scipy_sqrtm(n, m, d, k, N):
    rng = np.random.default_rng(d)
    a = rng.normal(size=(d, d))
    train = (rng.normal(size=(N, d)) @ a).astype(np.float32)
    x = (rng.normal(size=(n, d)) @ a + 0.3).astype(np.float32)
    y = (rng.normal(size=(m, d)) @ (1.2 * a)).astype(np.float32)
    mean, comp, var = pca_numpy(train, k)
    ref = frechet_numpy((x - mean) @ comp.T, (y - mean) @ comp.T)
    assert otgen.metrics.fd_pca(x, y, train, dim=k) == pytest.approx(ref, rel=1e-7)
    m_, c_, v_, total = otgen.metrics.pca_basis(train, dim=k)
    np.testing.assert_allclose(m_, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(v_, var, rtol=1e-9)
    assert total == pytest.approx(np.trace(np.cov(train.astype(np.float64), rowvar=False)), rel=1e-12)
    # Same directions up to sign; otgen's sign: the largest-magnitude entry is positive.
    np.testing.assert_allclose(np.abs((c_ * comp).sum(1)), 1.0, atol=1e-8)
    assert (c_[np.arange(k), np.abs(c_).argmax(1)] > 0).all()
    if k == d:  # a complete basis: the plain Frechet distance
        assert otgen.metrics.fd_pca(x, y, train, dim=k) == pytest.approx(frechet_numpy(x, y), rel=1e-7)


def test_fd_pca_default_dim_and_identical_sets():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(50, 100)).astype(np.float32)
    x = rng.normal(size=(60, 100)).astype(np.float32)
    assert otgen.metrics.pca_basis(train)[1].shape == (49, 100)  # min(d, 64, N - 1)
    assert otgen.metrics.pca_basis(rng.normal(size=(500, 100)))[1].shape == (64, 100)
    assert abs(otgen.metrics.fd_pca(x, x, train)) < 1e-10


def test_median_distance_and_mmd_per_bandwidth_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(700, 3)).astype(np.float32)
    y = (rng.normal(size=(600, 3)) + 1).astype(np.float32)
    rows = np.concatenate([x[np.arange(500) * 700 // 500], y[np.arange(500) * 600 // 500]]).astype(np.float64)
    dist = scipy.spatial.distance.pdist(rows)
    dist = np.sort(dist[dist > 0])
    assert otgen.metrics.median_distance(x, y) == dist[len(dist) // 2]
    gammas = [0.1, 0.5, 2.0]
    per = otgen.metrics.mmd_per_bandwidth(x, y, gammas)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for g, v in zip(gammas, per):
        kxx = np.exp(-g * scipy.spatial.distance.cdist(x64, x64, "sqeuclidean"))
        kyy = np.exp(-g * scipy.spatial.distance.cdist(y64, y64, "sqeuclidean"))
        kxy = np.exp(-g * scipy.spatial.distance.cdist(x64, y64, "sqeuclidean"))
        n, m = len(x), len(y)
        ref = (kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean()
        assert v == pytest.approx(ref, abs=1e-6)
    assert per.sum() == pytest.approx(otgen.metrics.mmd(x, y, gamma=gammas), abs=1e-12)


def test_exact_w2_matches_pot_and_precision_recall_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = (rng.normal(size=(120, 4)) * 1.5 + 0.2).astype(np.float32)
    c = scipy.spatial.distance.cdist(x.astype(np.float64), y.astype(np.float64), "sqeuclidean")
    w2, k = otgen.metrics.exact_w2(x, y)
    assert k == 120
    assert w2 == pytest.approx(np.sqrt(ot.emd2(np.full(120, 1 / 120), np.full(120, 1 / 120), c)), rel=1e-5)
    real, fake, kk = x, y[:90], 3
    d_rr = scipy.spatial.distance.cdist(real, real)
    d_ff = scipy.spatial.distance.cdist(fake, fake)
    r_real = np.sort(d_rr, 1)[:, kk]  # column 0 is the point itself
    r_fake = np.sort(d_ff, 1)[:, kk]
    d_fr = scipy.spatial.distance.cdist(fake, real)
    precision = (d_fr <= r_real[None, :]).any(1).mean()
    recall = (d_fr.T <= r_fake[None, :]).any(1).mean()
    assert otgen.metrics.precision_recall(real, fake, k=kk) == pytest.approx((precision, recall), abs=1e-12)


def energy_excluding_copies(x, ix, y, iy):
    """Energy distance of the resamples x[ix], y[iy] whose within terms skip pairs of one source row."""
    def within(p, idx):
        d = scipy.spatial.distance.cdist(p[idx], p[idx])
        keep = idx[:, None] != idx[None, :]
        return d[keep].mean()
    xy = scipy.spatial.distance.cdist(x[ix], y[iy]).mean()
    return 2 * xy - within(x, ix) - within(y, iy)


def test_evaluate_bootstrap_replicates_and_intervals_against_numpy():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 3)).astype(np.float32)
    y = (rng.normal(size=(70, 3)) * 1.3 + 0.5).astype(np.float32)
    train = rng.normal(size=(200, 3)).astype(np.float32)
    res = otgen.metrics.evaluate(x, y, metrics=["energy", "fd", "fd-pca", "w2"], pca_data=train, pca_dim=2,
                                 bootstrap=40, return_replicates=True, seed=9)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    mean, comp, _ = pca_numpy(train, 2)
    reps = res["bootstrap_replicates"]
    for r in range(40):
        ix = otgen.metrics.bootstrap_indices(80, 9, r, 0)
        iy = otgen.metrics.bootstrap_indices(70, 9, r, 1)
        assert len(np.unique(ix)) >= 2
        assert reps["energy"][r] == pytest.approx(energy_excluding_copies(x64, ix, y64, iy), abs=1e-6)
        assert reps["frechet"][r] == pytest.approx(frechet_numpy(x64[ix], y64[iy]), rel=1e-7)
        zx, zy = (x64[ix] - mean) @ comp.T, (y64[iy] - mean) @ comp.T  # the training basis, fixed
        assert reps["frechet_pca"][r] == pytest.approx(frechet_numpy(zx, zy), rel=1e-7)
    for key in ("energy", "frechet", "frechet_pca"):
        lo, hi = np.quantile(reps[key], [(1 - 0.95) / 2, (1 + 0.95) / 2])
        assert res[key + "_ci"] == pytest.approx([lo, hi], rel=1e-12)
        assert res[key + "_ci"][0] < res[key] < res[key + "_ci"][1]
    assert "w2_ci" not in res and res["bootstrap"]["no_interval"] == ["w2"]
    same = otgen.metrics.evaluate(x, y, metrics="energy,fd", bootstrap=40, seed=9)
    other = otgen.metrics.evaluate(x, y, metrics="energy,fd", bootstrap=40, seed=10)
    assert same["energy_ci"] == res["energy_ci"] and same["frechet_ci"] == res["frechet_ci"]
    assert other["energy_ci"] != res["energy_ci"]


def test_evaluate_equals_the_cli_json(cli, tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(150, 4)).astype(np.float32)
    y = (rng.normal(size=(120, 4)) + 0.3).astype(np.float32)
    t = rng.normal(size=(300, 4)).astype(np.float32)
    for name, a in (("x", x), ("y", y), ("t", t)):
        np.save(tmp_path / f"{name}.npy", a)
    metrics = "energy,mmd,sw2,w1,fd,fd-pca,w2,prd"
    out = tmp_path / "eval.json"
    r = cli("eval", "--samples", tmp_path / "x.npy", "--reference", tmp_path / "y.npy", "--metrics", metrics,
            "--pca-data", tmp_path / "t.npy", "--pca-dim", 3, "--bootstrap", 20, "--seed", 2, "--out", out)
    doc = json.loads(r.stdout)
    assert json.loads(out.read_text()) == doc
    py = otgen.metrics.evaluate(x, y, metrics=metrics, pca_data=t, pca_dim=3, bootstrap=20, seed=2)
    for key in ("samples", "reference", "pca_data"):
        doc.pop(key)
    assert py == doc


def test_value_errors_name_the_python_arguments():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    t = rng.normal(size=(30, 3)).astype(np.float32)
    t4 = rng.normal(size=(30, 4)).astype(np.float32)
    ev = otgen.metrics.evaluate
    cases = [
        (lambda: otgen.metrics.fd_pca(x, x, t4), "invalid x = dimension 3"),
        (lambda: otgen.metrics.fd_pca(x, x, t, dim=0), "invalid dim = 0"),
        (lambda: otgen.metrics.fd_pca(x, x, t, dim=4), "invalid dim = 4"),
        (lambda: otgen.metrics.fd_pca(x, x, t[:1]), "invalid train"),
        (lambda: otgen.metrics.fd_pca(x, x, np.full((5, 3), np.nan)), "train"),
        (lambda: ev(x, x, metrics=["fd-pca"]), "invalid pca_data = None"),
        (lambda: ev(x, x, metrics=["fd-pca"], pca_data=t4), "invalid pca_data = points of dimension 4"),
        (lambda: ev(x, x, metrics=["fd-pca"], pca_data=t, pca_dim=0), "invalid pca_dim = 0"),
        (lambda: ev(x, x, pca_data=t), "invalid pca_data"),
        (lambda: ev(x, x, bootstrap=-1), "invalid bootstrap = -1"),
        (lambda: ev(x, x, metrics="energy,fid"), "invalid metrics = 'fid'"),
        (lambda: ev(x, t4), "invalid reference = points of dimension 4"),
        (lambda: ev(x[:1], x), "invalid samples = 1 points"),
        (lambda: ev(x, x, metrics=["prd"], k=30), "invalid k = 30"),
        (lambda: ev(x, x, mmd_scales=[0.5, -1]), "invalid mmd_scales = -1"),
        (lambda: otgen.metrics.exact_w2(x, x, max_points=0), "max_points"),
        (lambda: otgen.metrics.precision_recall(x, x[:3], k=3), "x_fake"),
        (lambda: otgen.metrics.bootstrap_indices(1, 0, 0, 0), "at least 2"),
        (lambda: ev(x * np.float32(1e30), x), "invalid samples = values up to"),
    ]
    for fn, fragment in cases:
        with pytest.raises(ValueError, match=re.escape(fragment)):
            fn()
