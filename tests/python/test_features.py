"""otgen features train / extract and eval's fd-features: the trained classifier's accuracy, the
cache, the TorchScript export against Python's torch, and the Frechet distance in its features
against a scipy reference."""
import json
import os

import numpy as np
import pytest
import scipy.linalg

import otgen

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import cli_path
    import subprocess
    d = tmp_path_factory.mktemp("features")
    path = str(d / "f.pt")
    r = subprocess.run([cli_path(), "features", "train", "--data", "digits", "--steps", "150", "--batch", "64",
                        "--threads", "1", "--seed", "3", "--out", path], capture_output=True, text=True)
    if r.returncode == 2 and "no such subcommand" in (r.stderr + r.stdout).lower():
        pytest.skip("this otgen was built without flow matching")
    assert r.returncode == 0, r.stderr
    return d, path, json.loads(r.stdout)


def frechet(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s = scipy.linalg.sqrtm(ca @ cb).real
    return float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * s))


def test_the_classifier_learns_the_digits_and_records_how_it_was_made(trained):
    _, path, meta = trained
    assert meta["test_accuracy"] > 0.85 and meta["train_points"] + meta["test_points"] == 1797
    assert meta["architecture"] == "cnn" and meta["image_side"] == 8 and meta["feature_dim"] == 128
    assert meta["cached"] is False and os.path.getsize(path) > 0


def test_a_second_run_reuses_the_cache_and_another_recipe_is_refused(cli, trained):
    _, path, _ = trained
    r = cli("features", "train", "--data", "digits", "--steps", 150, "--batch", 64, "--threads", 1, "--seed", 3,
            "--out", path)
    assert json.loads(r.stdout)["cached"] is True
    r = cli("features", "train", "--data", "digits", "--steps", 151, "--batch", 64, "--seed", 3, "--out", path,
            check=False)
    assert r.returncode == 2 and "--out" in r.stderr and "--force" in r.stderr


def test_torchscript_export_runs_in_python_torch_with_the_cli_features(cli, trained):
    d, path, meta = trained
    y, labels, _ = otgen.load_dataset("digits")
    np.save(d / "y.npy", y[:300])
    cli("features", "extract", "--model", path, "--data", d / "y.npy", "--out", d / "fy.npy", "--threads", 1)
    m = torch.jit.load(path)
    with torch.no_grad():
        f = m.features(torch.from_numpy(y[:300])).numpy()
        acc = (m(torch.from_numpy(y)).argmax(1).numpy() == labels).mean()
    np.testing.assert_allclose(np.load(d / "fy.npy"), f, rtol=1e-5, atol=1e-5)
    assert f.shape == (300, 128) and (f >= 0).all()  # post-ReLU
    assert acc > 0.85


def test_fd_features_matches_scipy_and_orders_corruptions(cli, trained):
    d, path, _ = trained
    y, _, _ = otgen.load_dataset("digits")
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    a, b = y[perm[:800]], y[perm[800:1600]]
    noisy = np.clip(a + rng.normal(scale=0.6, size=a.shape), -1, 1).astype(np.float32)
    np.save(d / "a.npy", a), np.save(d / "b.npy", b), np.save(d / "noisy.npy", noisy)
    cli("features", "extract", "--model", path, "--data", d / "a.npy", "--out", d / "fa.npy")
    cli("features", "extract", "--model", path, "--data", d / "b.npy", "--out", d / "fb.npy")

    def fd(samples, *extra):
        r = cli("eval", "--samples", samples, "--reference", d / "b.npy", "--metrics", "fd-features,energy",
                "--features", path, "--format", "json", *extra)
        return json.loads(r.stdout)

    same = fd(d / "a.npy", "--bootstrap", 20)
    ref = frechet(np.load(d / "fa.npy"), np.load(d / "fb.npy"))
    assert same["frechet_features"] == pytest.approx(ref, rel=1e-3, abs=1e-6)
    lo, hi = same["frechet_features_ci"]  # resampling with duplicates inflates a Frechet distance:
    assert 0 < lo < hi                    # the percentile interval need not contain the estimate
    assert "energy" in same and same["features"]["feature_dim"] == 128
    worse = fd(d / "noisy.npy")
    assert worse["frechet_features"] > 5 * same["frechet_features"]
    # otgen.metrics.evaluate runs the same net with Python's torch: the same numbers.
    py = otgen.metrics.evaluate(a, b, metrics="fd-features,energy", features=path, bootstrap=20)
    assert py["frechet_features"] == pytest.approx(same["frechet_features"], rel=1e-5)
    assert py["frechet_features_ci"] == pytest.approx(same["frechet_features_ci"], rel=1e-4)
    assert py["energy"] == same["energy"]
    with pytest.raises(ValueError, match="features"):
        otgen.metrics.evaluate(a, b, metrics="fd-features")


def test_fd_features_needs_its_model_and_the_model_needs_the_metric(cli, trained, tmp_path):
    d, path, _ = trained
    y, _, _ = otgen.load_dataset("digits")
    np.save(tmp_path / "y.npy", y[:100])
    r = cli("eval", "--samples", tmp_path / "y.npy", "--reference", tmp_path / "y.npy", "--metrics", "fd-features",
            check=False)
    assert r.returncode == 2 and "--features" in r.stderr
    r = cli("eval", "--samples", tmp_path / "y.npy", "--reference", tmp_path / "y.npy", "--metrics", "energy",
            "--features", path, check=False)
    assert r.returncode == 2 and "--metrics" in r.stderr
    np.save(tmp_path / "wrong.npy", np.zeros((10, 5), np.float32))
    r = cli("eval", "--samples", tmp_path / "wrong.npy", "--reference", tmp_path / "wrong.npy", "--metrics",
            "fd-features", "--features", path, check=False)
    assert r.returncode == 2 and "--samples" in r.stderr and "64" in r.stderr
    r = cli("eval", "--samples", tmp_path / "y.npy", "--reference", tmp_path / "y.npy", "--metrics", "fd-features",
            "--features", tmp_path / "y.npy", check=False)
    assert r.returncode == 2 and "--features" in r.stderr
