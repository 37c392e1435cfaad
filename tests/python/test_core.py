import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import scipy.special
import scipy.stats

import otgen


def gaussian(n, d, seed, shift=0.0, scale=1.0):
    return (shift + scale * np.random.default_rng(seed).standard_normal((n, d))).astype(np.float32)


def test_import_and_version():
    assert otgen.__version__.startswith("0.")
    assert "fashion-mnist" in otgen.dataset_names()


def test_datasets_match_cli_export(cli, tmp_path):
    x, labels, k = otgen.load_dataset("digits")
    assert x.shape == (1797, 64) and x.dtype == np.float32 and k == 10
    assert labels.dtype == np.int64 and labels.shape == (1797,)
    assert x.min() == -1.0 and x.max() == 1.0
    cli("data", "export", "--dataset", "moons", "--n", 300, "--seed", 4, "--out", tmp_path / "m.npy")
    m, ml, _ = otgen.load_dataset("moons", n=300, seed=4)
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), m)


def test_fashion_mnist_shape():
    x, labels, k = otgen.load_dataset("fashion-mnist", n=1000)
    assert x.shape == (1000, 784) and k == 10 and labels.shape == (1000,)


def test_row_argmax_matches_numpy_and_accepts_float64():
    x, y = gaussian(50, 7, 1), gaussian(300, 7, 2)
    h = np.random.default_rng(3).standard_normal(300).astype(np.float32)
    idx, val = otgen.scores.row_argmax(x, y, h)
    s = x.astype(np.float64) @ y.T.astype(np.float64) + h
    np.testing.assert_array_equal(idx, s.argmax(axis=1))
    np.testing.assert_allclose(val, s.max(axis=1), rtol=1e-5, atol=1e-5)
    idx64, _ = otgen.scores.row_argmax(x.astype(np.float64), y.astype(np.float64), h.astype(np.float64))
    np.testing.assert_array_equal(idx64, idx)


def test_row_logsumexp_matches_scipy():
    x, y = gaussian(20, 3, 4), gaussian(100, 3, 5)
    log_b = np.log(np.full(100, 1 / 100, dtype=np.float32))
    lse = otgen.scores.row_logsumexp(x, y, scale=2.0, log_b=log_b)
    ref = scipy.special.logsumexp(2.0 * (x.astype(np.float64) @ y.T) + log_b, axis=1)
    np.testing.assert_allclose(lse, ref, rtol=1e-5)


def test_metrics_against_numpy_and_scipy():
    x, y = gaussian(80, 3, 6), gaussian(60, 3, 7, shift=0.4)
    dxy = scipy.spatial.distance.cdist(x, y)
    dxx = scipy.spatial.distance.cdist(x, x)
    dyy = scipy.spatial.distance.cdist(y, y)
    energy = 2 * dxy.mean() - dxx.sum() / (80 * 79) - dyy.sum() / (60 * 59)
    assert otgen.metrics.energy_distance(x, y) == pytest.approx(energy, rel=1e-6)
    kxx, kyy, kxy = np.exp(-dxx**2), np.exp(-dyy**2), np.exp(-dxy**2)
    assert otgen.metrics.mmd(x, y, gamma=1.0, biased=True) == pytest.approx(kxx.mean() + kyy.mean() - 2 * kxy.mean(), rel=1e-6)
    u = np.random.default_rng(8).standard_normal((40, 1)).astype(np.float32)
    v = np.random.default_rng(9).standard_normal((70, 1)).astype(np.float32) * 2
    assert otgen.metrics.mean_marginal_w1(u, v) == pytest.approx(scipy.stats.wasserstein_distance(u[:, 0], v[:, 0]), rel=1e-6)
    sx, sy = np.cov(x.T.astype(np.float64)), np.cov(y.T.astype(np.float64))
    fd = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(sx + sy - 2 * scipy.linalg.sqrtm(sx @ sy).real)
    assert otgen.metrics.frechet_distance(x, y) == pytest.approx(fd, rel=1e-5)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (np.zeros((4, 3), dtype=np.complex64), "dtype"),
        (np.zeros((2, 2, 3), dtype=np.float32), "2-D"),
        (np.array([["a", "b"]]), "dtype"),
        (np.array([[np.nan, 1.0]], dtype=np.float32), "finite"),
        (np.zeros((4, 5), dtype=np.float32), "dimension"),
    ],
)
def test_bad_inputs_raise_value_error(bad, fragment):
    with pytest.raises(ValueError, match=fragment):
        otgen.scores.row_argmax(bad, gaussian(5, 3, 1))


def test_unknown_dataset_is_value_error():
    with pytest.raises(ValueError, match="fashion-mnist"):
        otgen.load_dataset("nope")


def test_engine_reducers_match_numpy():
    x, y = gaussian(30, 5, 11), gaussian(200, 5, 12)
    h = np.random.default_rng(13).standard_normal(200).astype(np.float32)
    s = x.astype(np.float64) @ y.T.astype(np.float64) + h
    idx, val = otgen.scores.row_topk(x, y, 3, h)
    np.testing.assert_array_equal(idx, np.argsort(-s, axis=1)[:, :3])
    np.testing.assert_allclose(val, -np.sort(-s, axis=1)[:, :3], rtol=1e-5, atol=1e-5)
    cols, lse = otgen.scores.softmax_column_sums(x, y, h, scale=0.5)
    p = scipy.special.softmax(0.5 * s, axis=1)
    np.testing.assert_allclose(cols, p.sum(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(lse, scipy.special.logsumexp(0.5 * s, axis=1), rtol=1e-5)
    d2 = ((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(otgen.scores.kernel_row_logsumexp(x, y, 0.3),
                               scipy.special.logsumexp(-0.3 * d2, axis=1), rtol=1e-4, atol=1e-4)


def test_gumbel_argmax_frequencies_follow_the_softmax():
    y = gaussian(4, 2, 14)
    x = np.zeros((20000, 2), dtype=np.float32)
    log_b = np.log(np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32))
    idx = otgen.scores.row_gumbel_argmax(x, y, log_b=log_b, seed=5)
    counts = np.bincount(idx, minlength=4)
    chi2 = ((counts - 20000 * np.exp(log_b)) ** 2 / (20000 * np.exp(log_b))).sum()
    assert chi2 < 16.3  # 3 dof: p = 0.001
    np.testing.assert_array_equal(idx, otgen.scores.row_gumbel_argmax(x, y, log_b=log_b, seed=5, threads=1))
