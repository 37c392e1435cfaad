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


# ---- SemidiscreteConditionalFlowMatcher (torchcfm-shaped SD-FM) ------------------------------------

def naive_scores(x0, y, g):
    """float64 scores <x0, y_j> + g_j - |y_j|^2 / 2 (argmax_j = argmax_j g_j - |x0 - y_j|^2 / 2)."""
    x0, y, g = (np.asarray(a, dtype=np.float64) for a in (x0, y, g))
    return x0 @ y.T + g - 0.5 * (y * y).sum(1)


def assert_naive_argmax(idx, x0, y, g, labels=None, x0_labels=None):
    s = naive_scores(x0, y, g)
    if labels is not None:
        s[np.asarray(x0_labels)[:, None] != np.asarray(labels)[None, :]] = -np.inf
    best = s.max(1)
    chosen = s[np.arange(len(idx)), idx]
    # The engine scores in float32: its argmax may differ from the float64 one only on a near-tie.
    gap = best - chosen
    assert (gap <= 1e-4 * (1 + np.abs(best))).all(), f"largest score gap {gap.max()}"
    assert (idx == s.argmax(1)).mean() > 0.99


@pytest.fixture(scope="module")
def digits():
    y, labels, _ = otgen.load_dataset("digits")
    g = np.random.default_rng(5).normal(scale=2.0, size=len(y)).astype(np.float32)
    return y, labels, g


def test_matcher_idx_is_the_semidiscrete_assignment_of_x0(moons):
    y, _ = moons
    sd = otgen.SemidiscreteOT(steps=300, batch_size=256, seed=0)
    r = sd.fit(y)
    fm = otgen.torch.SemidiscreteConditionalFlowMatcher(torch.from_numpy(y), r, seed=1)
    x0 = torch.randn(300, 2, generator=torch.Generator().manual_seed(2))
    t, xt, ut, x1, idx = fm.sample_location_and_conditional_flow(x0)
    np.testing.assert_array_equal(idx.numpy(), sd.assign(x0.numpy()))
    assert_naive_argmax(idx.numpy(), x0.numpy(), y, r.g)
    np.testing.assert_array_equal(x1.numpy(), y[idx.numpy()])


def test_matcher_idx_matches_naive_argmax_on_image_data(digits):
    y, _, g = digits  # 8-bit lattice data (1797 x 64: auto takes the float32 search)
    fm = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g)
    x0 = torch.randn(257, 64, generator=torch.Generator().manual_seed(0))
    idx = fm.sample_location_and_conditional_flow(x0)[4].numpy()
    np.testing.assert_array_equal(idx, otgen._otgen.sdot_assign(y, g, x0.numpy()))
    assert_naive_argmax(idx, x0.numpy(), y, g)


def test_matcher_path_and_velocity_formulas(moons):
    y, _ = moons
    g = np.zeros(len(y), dtype=np.float32)
    fm = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g, seed=3)
    x0 = torch.randn(64, 2, dtype=torch.float64)
    t, xt, ut, x1, idx = fm.sample_location_and_conditional_flow(x0)
    assert t.shape == (64,) and t.dtype == torch.float64 and ((t >= 0) & (t <= 1)).all()
    assert xt.dtype == ut.dtype == x1.dtype == torch.float64 and idx.dtype == torch.int64
    torch.testing.assert_close(xt, (1 - t[:, None]) * x0 + t[:, None] * x1)
    torch.testing.assert_close(ut, x1 - x0)
    # given times are used as they are
    t_in = torch.linspace(0, 1, 64, dtype=torch.float64)
    t2, xt2, _, x12, _ = fm.sample_location_and_conditional_flow(x0, t=t_in)
    assert torch.equal(t2, t_in) and torch.equal(x12, x1)
    torch.testing.assert_close(xt2[0], x0[0])
    torch.testing.assert_close(xt2[-1], x1[-1])
    # scalar t broadcast
    t3 = fm.sample_location_and_conditional_flow(x0, t=0.25)[0]
    assert t3.shape == (64,) and (t3 == 0.25).all()


def test_matcher_sigma_adds_returned_noise(moons):
    y, _ = moons
    fm = otgen.torch.SemidiscreteConditionalFlowMatcher(y, np.zeros(len(y)), sigma=0.1, seed=0)
    x0 = torch.randn(32, 2)
    t, xt, ut, x1, idx, eps = fm.sample_location_and_conditional_flow(x0, return_noise=True)
    assert eps.shape == x0.shape and eps.abs().sum() > 0
    torch.testing.assert_close(xt, (1 - t[:, None]) * x0 + t[:, None] * x1 + 0.1 * eps)
    torch.testing.assert_close(ut, x1 - x0)
    assert len(fm.sample_location_and_conditional_flow(x0)) == 5  # no eps unless asked


def test_matcher_image_shaped_x0_is_flattened_and_reshaped_back(digits):
    y, _, g = digits
    fm = otgen.torch.SemidiscreteConditionalFlowMatcher(y.reshape(-1, 1, 8, 8), g, seed=0)
    x0 = torch.randn(10, 1, 8, 8)
    t, xt, ut, x1, idx = fm.sample_location_and_conditional_flow(x0)
    assert t.shape == (10,) and idx.shape == (10,)
    assert xt.shape == ut.shape == x1.shape == (10, 1, 8, 8)
    np.testing.assert_array_equal(x1.reshape(10, 64).numpy(), y[idx.numpy()])
    np.testing.assert_array_equal(idx.numpy(), otgen._otgen.sdot_assign(y, g, x0.reshape(10, 64).numpy()))
    torch.testing.assert_close(xt, (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * x1)
    # flat data, image-shaped noise: x1 takes x0's shape
    flat = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g)
    assert torch.equal(flat.sample_location_and_conditional_flow(x0)[3], x1)


def test_matcher_is_deterministic_for_a_seed(digits):
    y, labels, g = digits
    x0 = torch.randn(50, 64, generator=torch.Generator().manual_seed(9))
    lab0 = torch.arange(50) % 10
    for eps in (0.0, 0.5):
        runs = []
        for _ in range(2):
            fm = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g, epsilon=eps, labels=labels, sigma=0.05, seed=4)
            runs.append([fm.sample_location_and_conditional_flow(x0, return_noise=True, y0_labels=lab0)
                         for _ in range(2)])
        for a, b in zip(runs[0], runs[1]):
            for u, v in zip(a, b):
                assert torch.equal(u, v)
        assert not torch.equal(runs[0][0][0], runs[0][1][0])  # fresh t every call
    other = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g, seed=5).sample_location_and_conditional_flow(x0)
    assert not torch.equal(other[0], runs[0][0][0])


def test_matcher_soft_epsilon_samples_near_the_argmax(digits):
    y, _, g = digits
    x0 = torch.randn(200, 64, generator=torch.Generator().manual_seed(1))
    hard = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g).match(x0).numpy()
    tiny = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g, epsilon=1e-6, seed=2).match(x0).numpy()
    np.testing.assert_array_equal(tiny, hard)
    soft = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g, epsilon=50.0, seed=2).match(x0).numpy()
    assert (soft != hard).mean() > 0.5


def test_matcher_conditional_matches_within_the_noise_class(digits):
    y, labels, g = digits
    fm = otgen.torch.SemidiscreteConditionalFlowMatcher(torch.from_numpy(y), g, labels=torch.from_numpy(labels))
    x0 = torch.randn(100, 64, generator=torch.Generator().manual_seed(3))
    lab0 = torch.arange(100) % 10
    t, xt, ut, x1, idx, y1 = fm.sample_location_and_conditional_flow(x0, y0_labels=lab0)
    assert torch.equal(y1, lab0) and torch.equal(torch.from_numpy(labels)[idx], lab0)
    assert_naive_argmax(idx.numpy(), x0.numpy(), y, g, labels, lab0.numpy())
    # without noise classes: the unconditional map, with the class of each match returned
    *_, idx_u, y1_u = fm.sample_location_and_conditional_flow(x0)
    np.testing.assert_array_equal(idx_u.numpy(), otgen._otgen.sdot_assign(y, g, x0.numpy()))
    assert torch.equal(y1_u, torch.from_numpy(labels)[idx_u])


def test_matcher_weights_mask_zero_weight_points(moons):
    y, _ = moons
    w = np.ones(len(y))
    w[::2] = 0
    w /= w.sum()
    fm = otgen.torch.SemidiscreteConditionalFlowMatcher(y, np.zeros(len(y)), weights=w)
    idx = fm.match(torch.randn(500, 2)).numpy()
    assert (idx % 2 == 1).all()


def test_matcher_errors_name_the_argument(moons):
    y, labels = moons
    g = np.zeros(len(y), dtype=np.float32)
    M = otgen.torch.SemidiscreteConditionalFlowMatcher
    with pytest.raises(ValueError, match="g: shape"):
        M(y, g[:-1])
    with pytest.raises(ValueError, match="y: non-finite"):
        M(np.where(np.arange(len(y))[:, None] == 7, np.nan, y), g)
    with pytest.raises(ValueError, match="y: shape"):
        M(y[:, 0], g)
    with pytest.raises(ValueError, match="g: non-finite"):
        M(y, np.full(len(y), np.nan))
    with pytest.raises(ValueError, match="epsilon"):
        M(y, g, epsilon=-1)
    with pytest.raises(ValueError, match="sigma"):
        M(y, g, sigma=float("nan"))
    with pytest.raises(ValueError, match="labels: shape"):
        M(y, g, labels=labels[:-1])
    with pytest.raises(ValueError, match="weights"):
        M(y, g, weights=np.ones(3) / 3)
    fm = M(y, g)
    with pytest.raises(ValueError, match="x0: shape"):
        fm.sample_location_and_conditional_flow(torch.randn(4, 3))
    with pytest.raises(ValueError, match="x0: shape"):
        fm.sample_location_and_conditional_flow(torch.randn(4))
    bad = torch.randn(4, 2)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="x0: non-finite value .* row 2"):
        fm.sample_location_and_conditional_flow(bad)
    with pytest.raises(ValueError, match="x0: .*Tensor"):
        fm.sample_location_and_conditional_flow(np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="t: shape"):
        fm.sample_location_and_conditional_flow(torch.randn(4, 2), t=torch.rand(5))
    with pytest.raises(ValueError, match="chooses x1 itself"):  # torchcfm habit: (x0, x1)
        fm.sample_location_and_conditional_flow(torch.randn(4, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="t: values outside"):
        fm.sample_location_and_conditional_flow(torch.randn(4, 2), t=torch.tensor([0.1, 0.2, float("nan"), 0.3]))
    with pytest.raises(ValueError, match="y0_labels: given"):
        fm.sample_location_and_conditional_flow(torch.randn(4, 2), y0_labels=torch.zeros(4, dtype=torch.int64))
    fmc = M(y, g, labels=labels)
    with pytest.raises(ValueError, match="y0_labels: shape"):
        fmc.sample_location_and_conditional_flow(torch.randn(4, 2), y0_labels=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"y0_labels: label 7"):
        fmc.sample_location_and_conditional_flow(torch.randn(4, 2), y0_labels=torch.tensor([0, 1, 7, 0]))
