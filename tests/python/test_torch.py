"""otgen.torch couplings: the pairs they yield against otgen's own solvers and the example script."""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # python3-torch is installed by make setup
import otgen  # noqa: E402
import otgen.torch  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="module")
def moons():
    y, labels, _ = otgen.load_dataset("moons", n=500, seed=1)
    return y, labels


def test_semidiscrete_coupling_pairs_noise_with_its_assigned_point(moons):
    y, _ = moons
    sd = otgen.SemidiscreteOT(steps=500, batch_size=256, seed=0)
    r = sd.fit(y)
    c = otgen.torch.SemidiscreteCoupling(torch.from_numpy(y), r, batch_size=128, seed=3)
    x0, x1 = c.sample()
    assert x0.shape == (128, 2) and x1.shape == (128, 2)
    np.testing.assert_array_equal(x1.numpy(), y[sd.assign(x0.numpy())])
    again = otgen.torch.SemidiscreteCoupling(y, r.g, batch_size=128, seed=3).sample()
    np.testing.assert_array_equal(again[0].numpy(), x0.numpy())  # seeded


def test_exact_batch_coupling_is_an_optimal_permutation(moons):
    y, _ = moons
    c = otgen.torch.BatchOTCoupling(y, method="exact", batch_size=64, seed=0)
    x0, x1 = c.sample()
    _, best = otgen.exact_assignment(x0.numpy(), x1.numpy())
    paired = 0.5 * ((x0 - x1) ** 2).sum().item()
    assert paired == pytest.approx(best, rel=1e-5)  # the yielded pairing is already optimal


def test_conditional_coupling_keeps_classes(moons):
    y, labels = moons
    for c in [otgen.torch.IndependentCoupling(y, labels=labels, batch_size=100, seed=1),
              otgen.torch.BatchOTCoupling(y, method="exact", labels=labels, batch_size=100, seed=1)]:
        x0, x1, lab = c.sample()
        rows = [np.flatnonzero((y == p).all(1))[0] for p in x1.numpy()]
        np.testing.assert_array_equal(labels[rows], lab.numpy())


def test_example_script_runs():
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(otgen.__file__)))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "sdfm_pytorch.py"), "--steps", "30", "--n", "500",
                        "--fit-steps", "200"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "semidiscrete" in r.stdout and "independent" in r.stdout
