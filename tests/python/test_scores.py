"""The score engine against independent references: Faiss exact inner-product search and scipy."""
import numpy as np
import pytest
import scipy.special

import otgen


def test_sdot_assign_matches_faiss_flat_ip_on_fashion_mnist(cli, tmp_path):
    faiss = pytest.importorskip("faiss")
    y, _, _ = otgen.load_dataset("fashion-mnist", n=3000, shuffle=True, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((257, y.shape[1]), dtype=np.float32)
    g = rng.standard_normal(y.shape[0]) * 5.0
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "g.npy", g)
    cli("sdot", "assign", "--data", tmp_path / "y.npy", "--potential", tmp_path / "g.npy",
        "--noise", tmp_path / "x.npy", "--out", tmp_path / "idx.npy")
    idx = np.load(tmp_path / "idx.npy")
    assert idx.dtype == np.int64 and idx.shape == (257,)
    # Faiss on augmented vectors [x; 1] . [y; h], h = g - |y|^2 / 2.
    h = (g - 0.5 * (y.astype(np.float64) ** 2).sum(1)).astype(np.float32)
    index = faiss.IndexFlatIP(y.shape[1] + 1)
    index.add(np.hstack([y, h[:, None]]))
    _, ref = index.search(np.hstack([x, np.ones((257, 1), np.float32)]), 2)
    # Exact double scores decide; near-ties (float rounding) may differ.
    s = x.astype(np.float64) @ y.astype(np.float64).T + (g - 0.5 * (y.astype(np.float64) ** 2).sum(1))
    top2 = np.sort(s, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-3
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(idx[clear], ref[clear, 0])
    np.testing.assert_array_equal(idx[clear], s.argmax(1)[clear])


def test_row_logsumexp_matches_scipy_with_masked_columns():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 17), dtype=np.float32)
    y = rng.standard_normal((1500, 17), dtype=np.float32)
    h = rng.standard_normal(1500).astype(np.float32)
    h[::7] = -np.inf
    log_b = np.log(rng.dirichlet(np.ones(1500))).astype(np.float32)
    for scale in (1e-3, 0.5, 30.0):
        lse = otgen.scores.row_logsumexp(x, y, h=h, scale=scale, log_b=log_b, threads=2)
        s = x.astype(np.float64) @ y.astype(np.float64).T + h
        ref = scipy.special.logsumexp(scale * s + log_b, axis=1)
        np.testing.assert_allclose(lse, ref, rtol=2e-6, atol=2e-5 * max(1.0, scale))
