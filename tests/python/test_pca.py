"""PCA-reduced semidiscrete matching (docs/semidiscrete.md, "PCA-reduced matching") from Python: the basis
against numpy's eigendecomposition, K = d and data inside a K-dim subspace against the full fit, the
CLI's basis file picked up by from_potential, and the refusals."""
import os
import shutil

import numpy as np
import pytest

import otgen


def spread(n, d, seed):
    """Points with distinct spreads along seeded orthonormal directions (distinct eigenvalues)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return ((rng.normal(size=(n, d)) * (3.0 / (1 + np.arange(d)))) @ q.T).astype(np.float32)


def short(**kw):
    return otgen.SemidiscreteOT(steps=300, batch_size=256, chi2_every=0, lr=0.5, lr_final=0.05, seed=7, threads=1,
                                **kw)


def test_basis_is_numpys_top_eigenvectors_up_to_sign():
    y = spread(80, 7, 1)
    b = np.random.default_rng(2).uniform(0.2, 1.0, size=80)
    b /= b.sum()
    for weights, cov in ((None, np.cov(y.astype(np.float64).T)),
                         (b, np.cov(y.astype(np.float64).T, aweights=b, bias=True))):
        sd = otgen.SemidiscreteOT(pca=3, steps=5, chi2_every=0)
        U = sd.fit(y, weights=weights).pca_basis
        assert U.shape == (3, 7) and U.dtype == np.float32
        w, V = np.linalg.eigh(cov)
        ref = V[:, ::-1][:, :3].T  # top 3, decreasing
        np.testing.assert_allclose(np.abs(np.sum(U * ref, axis=1)), 1.0, atol=1e-5)
        np.testing.assert_allclose(U @ U.T, np.eye(3), atol=1e-5)


def test_k_equals_d_reproduces_the_full_fit():
    y = spread(12, 5, 3)
    full, red = short(), short(pca=5)
    rf, rp = full.fit(y), red.fit(y)
    assert rf.pca_basis is None and rp.pca_basis.shape == (5, 5)
    assert np.max(np.abs(rf.g - rp.g)) <= 1e-4 * np.max(np.abs(rf.g))
    x = full.noise(3000, seed=4)
    np.testing.assert_array_equal(full.assign(x), red.assign(x))


def test_data_in_a_subspace_give_the_full_fits_pairs():
    # y = a Q^T + c: the centred data span Q, so |x - y_j|^2 = |Ux - Uy_j|^2 + a term without j.
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(10, 3)))
    y = (spread(15, 3, 6) @ q.T + 0.3 * rng.normal(size=10)).astype(np.float32)
    full, red = short(init="zero"), short(init="zero", pca=3)
    rf, rp = full.fit(y), red.fit(y)
    assert np.max(np.abs(rf.g - rp.g)) <= 1e-4 * np.max(np.abs(rf.g))
    x = rng.normal(size=(3000, 10)).astype(np.float32)
    np.testing.assert_array_equal(full.assign(x), red.assign(x))
    # The pairs are the full-space argmax of g_j - |x - y_j|^2 / 2 (a naive numpy reference).
    cost = 0.5 * ((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(red.assign(x), np.argmax(rf.g[None, :] - cost, axis=1))


def test_sample_topk_check_and_noise_take_full_dimensional_noise():
    y = spread(40, 6, 8)
    sd = otgen.SemidiscreteOT(pca=2, epsilon=0.3, steps=400, chi2_every=0, seed=1)
    sd.fit(y)
    x = sd.noise(500, seed=2)
    assert x.shape == (500, 6)
    z, U = x @ sd.result.pca_basis.T, sd.result.pca_basis
    # The same map in the projected space, from arrays: the pairs of U x against U y.
    ref = otgen.SemidiscreteOT.from_potential(y @ U.T, sd.result.g, epsilon=0.3)
    np.testing.assert_array_equal(sd.sample(x, seed=3), ref.sample(z.astype(np.float32), seed=3))
    np.testing.assert_array_equal(sd.topk(x, 3), ref.topk(z.astype(np.float32), 3))
    assert np.isfinite(sd.check(batch=1024, repeats=2)["chi2"])
    with pytest.raises(ValueError, match="noise"):
        sd.assign(z.astype(np.float32))  # projected noise is not the map's input


def test_bad_pca_is_a_value_error_naming_pca():
    y = spread(10, 4, 9)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="pca"):
            otgen.SemidiscreteOT(pca=bad)
    with pytest.raises(ValueError, match=r"pca.*\[1, 4\]"):
        otgen.SemidiscreteOT(pca=5).fit(y)


def test_from_potential_picks_up_the_cli_basis_and_refuses_a_missing_or_foreign_one(cli, tmp_path):
    y = spread(30, 6, 10)
    np.save(tmp_path / "y.npy", y)
    g = str(tmp_path / "g.npy")
    cli("sdot", "fit", "--data", tmp_path / "y.npy", "--pca", 3, "--steps", 200, "--chi2-every", 0, "--quiet",
        "--out", g)
    U = np.load(g + ".pca.npy")
    assert U.shape == (3, 6)
    sd = otgen.SemidiscreteOT.from_potential(y, g)
    np.testing.assert_array_equal(sd.result.pca_basis, U)
    cli("sdot", "assign", "--data", tmp_path / "y.npy", "--potential", g, "--n", 300, "--seed", 4, "--quiet",
        "--out", tmp_path / "i.npy", "--noise-out", tmp_path / "x.npy")
    np.testing.assert_array_equal(sd.assign(np.load(tmp_path / "x.npy")), np.load(tmp_path / "i.npy"))
    shutil.copy(g + ".pca.npy", tmp_path / "keep.npy")
    np.save(g + ".pca.npy", U[::-1].copy())  # another basis of the right shape
    with pytest.raises(ValueError, match=r"^invalid g = .*content hash"):
        otgen.SemidiscreteOT.from_potential(y, g)
    os.remove(g + ".pca.npy")
    with pytest.raises(ValueError, match=r"^invalid g = .*missing"):
        otgen.SemidiscreteOT.from_potential(y, g)


def test_torch_matcher_pairs_through_the_basis_of_a_pca_result():
    torch = pytest.importorskip("torch")
    import otgen.torch as ot_torch

    y = spread(25, 6, 12)
    sd = otgen.SemidiscreteOT(pca=2, steps=200, chi2_every=0, seed=3)
    res = sd.fit(y)
    fm = ot_torch.SemidiscreteConditionalFlowMatcher(y, res)
    x = sd.noise(400, seed=5)
    np.testing.assert_array_equal(fm.match(torch.from_numpy(x)).numpy(), sd.assign(x))


def test_train_uses_the_basis_beside_a_pca_potential_and_refuses_a_missing_one(cli, tmp_path):
    if cli("train", "--help", check=False).returncode != 0:
        pytest.skip("this otgen was built without flow matching")
    y = spread(64, 4, 13)
    np.save(tmp_path / "y.npy", y)
    g = str(tmp_path / "g.npy")
    cli("sdot", "fit", "--data", tmp_path / "y.npy", "--pca", 2, "--steps", 100, "--chi2-every", 0, "--quiet",
        "--out", g)
    train = ["train", "--data", tmp_path / "y.npy", "--coupling", "semidiscrete", "--potential", g, "--steps", 2,
             "--batch", 16, "--quiet"]
    cli(*train, "--out", tmp_path / "run")
    os.remove(g + ".pca.npy")
    r = cli(*train, "--out", tmp_path / "run2", check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "invalid --potential" in r.stderr and "missing" in r.stderr
