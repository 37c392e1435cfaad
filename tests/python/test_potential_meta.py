"""Potentials carry what they were fitted on (g.npy.json): commands refuse other data, labels, weights or
cost with one line naming the argument, unless --allow-foreign-potential / allow_foreign_potential."""
import json

import numpy as np
import pytest

import otgen


@pytest.fixture
def fitted(cli, tmp_path):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(200, 4)).astype(np.float32)
    labels = rng.integers(0, 2, size=200).astype(np.int64)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "l.npy", labels)
    cli("sdot", "fit", "--data", tmp_path / "y.npy", "--steps", 30, "--batch", 64, "--out", tmp_path / "g.npy", "-q")
    return tmp_path, y, labels


def test_fit_writes_a_sidecar_that_describes_the_data(fitted):
    d, y, _ = fitted
    meta = json.loads((d / "g.npy.json").read_text())
    assert meta["format"] == "otgen.potential/1" and meta["n"] == 200 and meta["d"] == 4
    assert meta["labels_hash"] is None and meta["weights_hash"] is None and meta["cost"] == "sqeuclidean_half"
    assert len(meta["data_hash"]) == 16


def test_other_data_of_the_same_shape_is_refused_and_can_be_forced(cli, fitted):
    d, y, labels = fitted
    other = y.copy()
    other[17, 2] += 1e-3  # one value changed: another data set
    np.save(d / "other.npy", other)
    args = ["sdot", "assign", "--data", d / "other.npy", "--potential", d / "g.npy", "--n", 10, "--out", d / "i.npy"]
    r = cli(*args, check=False)
    assert r.returncode == 2 and "--potential" in r.stderr and "fitted on 200 x 4" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (d / "i.npy").exists()
    cli(*args, "--allow-foreign-potential")
    cli("sdot", "assign", "--data", d / "y.npy", "--potential", d / "g.npy", "--n", 10, "--out", d / "i.npy")
    r = cli("sdot", "check", "--data", d / "y.npy", "--labels", d / "l.npy", "--potential", d / "g.npy",
            "--draws", 256, "--batch", 128, check=False)
    assert r.returncode == 2 and "labels" in r.stderr
    r = cli("sdot", "check", "--data", d / "y.npy", "--potential", d / "g.npy", "--cost", "dot", "--draws", 256,
            "--batch", 128, check=False)
    assert r.returncode == 2 and "cost" in r.stderr
    # Without a sidecar the potential is used as is.
    (d / "g.npy.json").unlink()
    cli(*args)


def test_python_from_potential_checks_the_sidecar(fitted):
    d, y, labels = fitted
    sd = otgen.SemidiscreteOT.from_potential(y, str(d / "g.npy"))
    assert sd.assign(np.zeros((3, 4), np.float32)).shape == (3,)
    other = y + 1
    with pytest.raises(ValueError, match="g = .*fitted on 200 x 4.*allow_foreign_potential=True"):
        otgen.SemidiscreteOT.from_potential(other, str(d / "g.npy"))
    with pytest.raises(ValueError, match="labels"):
        otgen.SemidiscreteOT.from_potential(y, d / "g.npy", labels=labels)
    otgen.SemidiscreteOT.from_potential(other, d / "g.npy", allow_foreign_potential=True)


def test_train_refuses_a_potential_of_other_data(cli, fitted):
    d, y, _ = fitted
    np.save(d / "other.npy", y[::-1].copy())
    if not any(line.split()[:1] == ["train"] for line in cli("--help").stdout.splitlines()):
        pytest.skip("this otgen was built without flow matching (no train command)")
    r = cli("train", "--data", d / "other.npy", "--coupling", "semidiscrete", "--potential", d / "g.npy", "--steps", 2,
            "--out", d / "run", check=False)
    assert r.returncode == 2 and "--potential" in r.stderr and "fitted on" in r.stderr
