"""Weighted SDEs from Python (otgen.flow.sample_sde, _otgen.flow_sde): Python log-rewards through
autograd against closed forms on exact fields, and the Python (torch.jit) and C++ paths of a trained
model against each other."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import otgen  # noqa: E402
import otgen.flow  # noqa: E402
from otgen import _otgen  # noqa: E402


def eight_means():
    a = 2 * np.pi * np.arange(8) / 8
    return np.stack([4 * np.cos(a), 4 * np.sin(a)], 1)


def shares(x, means):
    k = ((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    return np.bincount(k, minlength=len(means)) / len(x)


def test_autograd_quadratic_reward_on_an_exact_gaussian_matches_the_closed_form():
    # N(mu, s^2 I) tilted by -(k/2)|x - m|^2 is N(v (mu / s^2 + k m), v I), 1/v = 1/s^2 + k.
    mu, s, k, m = np.array([1.0, -0.5]), 0.6, 2.0, np.array([-1.0, 1.0])
    field = _otgen.gaussian_mixture_field(mu[None], [1.0], [s])
    reward = otgen.flow._reward_fn(lambda x: -0.5 * k * ((x - torch.tensor(m)) ** 2).sum(1))
    r = _otgen.flow_sde(field, 20000, 2, log_reward=reward, steps=200, seed=3)
    v = 1 / (1 / s**2 + k)
    np.testing.assert_allclose(r["x"].mean(0), v * (mu / s**2 + k * m), atol=0.02)
    assert abs(r["x"].var(0).mean() - v) < 0.1 * v
    logz = sum(np.log(np.sqrt(v) / s) - 0.5 * k * (mu[c] - m[c]) ** 2 / (1 + k * s * s) for c in range(2))
    assert abs(r["log_z"] - logz) < 0.05
    # The same reward given as (r, grad, laplacian) by hand gives the same particles.
    def by_hand(x):
        e = x - m
        return -0.5 * k * (e**2).sum(1), -k * e, np.full(len(x), -2 * k)
    r2 = _otgen.flow_sde(field, 20000, 2, log_reward=by_hand, steps=200, seed=3)
    np.testing.assert_allclose(r2["x"], r["x"], atol=1e-5)


def test_python_reward_equals_the_built_in_tilt_on_eight_gaussians():
    means = eight_means()
    field = _otgen.gaussian_mixture_field(means, np.ones(8), np.full(8, 0.3))
    a = np.array([0.35, 0.2])
    py = _otgen.flow_sde(field, 4000, 2, log_reward=otgen.flow._reward_fn(lambda x: x @ torch.tensor(a)), seed=1)
    cpp = _otgen.flow_sde(field, 4000, 2, tilt="linear:0.35,0.2", seed=1)
    exact = np.exp(means @ a) / np.exp(means @ a).sum()
    for r in (py, cpp):
        assert 0.5 * np.abs(shares(r["x"], means) - exact).sum() < 0.05
    assert abs(py["log_z"] - cpp["log_z"]) < 1e-6
    assert len(py["trace"]["ess"]) == 100 and py["nfe"] == 100


def test_bad_arguments_raise_value_error():
    field = _otgen.gaussian_mixture_field(np.zeros((1, 2)), [1.0], [1.0])
    with pytest.raises(ValueError, match="log_reward"):
        _otgen.flow_sde(field, 10, 2, log_reward=lambda x: np.zeros(3))
    with pytest.raises(ValueError, match="tilt"):
        _otgen.flow_sde(field, 10, 2, log_reward=lambda x: (np.zeros(10), np.zeros((10, 2)), np.zeros(10)),
                        tilt="linear:1,1")
    with pytest.raises(ValueError, match="noise_schedule"):
        _otgen.flow_sde(field, 10, 2, noise_schedule="cosine")
    with pytest.raises(ValueError, match="guidance"):
        _otgen.flow_sde(field, 10, 2, guidance=2.0)  # not a conditional field


@pytest.fixture(scope="module")
def model8(tmp_path_factory):
    d = tmp_path_factory.mktemp("sde")
    otgen.flow.train("8gaussians", str(d / "run"), steps=300, batch=256, width=64, depth=2, seed=1, n=4096)
    return str(d / "run" / "model.pt")


def test_cpp_and_python_paths_of_a_trained_model_agree(model8):
    a = "0.35,0.2"
    x_cpp, info = otgen.flow.sample_sde(model8, n=3000, tilt="linear:" + a, seed=2, return_info=True)
    w = np.array([0.35, 0.2])
    x_py, info_py = otgen.flow.sample_sde(model8, n=3000, log_reward=lambda x: x @ torch.tensor(w), seed=2,
                                          return_info=True)
    means = eight_means()
    s_cpp, s_py = shares(x_cpp, means), shares(x_py, means)
    assert 0.5 * np.abs(s_cpp - s_py).sum() < 0.06
    assert abs(info["log_z"] - info_py["log_z"]) < 0.05
    # Both move mass towards the tilt: the untilted model's shares are near uniform.
    exact = np.exp(means @ w) / np.exp(means @ w).sum()
    assert 0.5 * np.abs(s_cpp - exact).sum() < 0.5 * np.abs(np.full(8, 1 / 8) - exact).sum()
    assert info["logw"].shape == (3000,) and info["trace"]["ess"].shape[0] == 100
    with pytest.raises(ValueError, match="temperature"):
        otgen.flow.sample_sde(model8, n=10, temperature=0)
    with pytest.raises(ValueError, match="--tilt"):
        otgen.flow.sample_sde(model8, n=10, tilt="linear:1")
    with pytest.raises(ValueError, match="classes"):
        otgen.flow.sample_sde(model8, n=10, classes=1, log_reward=lambda x: x.sum(1))
