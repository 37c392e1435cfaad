"""The seed rule (docs/ARCHITECTURE.md): one seed gives the same noise, classes and samples in the CLI,
the Python module and otgen.torch."""
import numpy as np
import pytest

import otgen

torch = pytest.importorskip("torch")
import otgen.torch  # noqa: E402


@pytest.fixture
def problem(tmp_path):
    rng = np.random.default_rng(5)
    y = rng.normal(size=(300, 3)).astype(np.float32)
    g = (0.3 * rng.normal(size=300)).astype(np.float32)
    labels = rng.integers(0, 3, size=300).astype(np.int64)
    w = rng.uniform(0.2, 1.0, size=300)
    w /= w.sum()
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "g.npy", g)
    np.save(tmp_path / "l.npy", labels)
    np.save(tmp_path / "w.npy", w)
    return y, g, labels, w


@pytest.mark.parametrize("epsilon", [0.0, 0.4])
def test_cli_python_and_torch_draw_the_same_noise_and_pairs(cli, tmp_path, problem, epsilon):
    y, g, _, _ = problem
    cli("sdot", "assign", "--data", tmp_path / "y.npy", "--potential", tmp_path / "g.npy", "--n", 64, "--seed", 7,
        "--epsilon", epsilon, "--noise-out", tmp_path / "x.npy", "--out", tmp_path / "idx.npy", "--threads", 2)
    x_cli, idx_cli = np.load(tmp_path / "x.npy"), np.load(tmp_path / "idx.npy")

    sd = otgen.SemidiscreteOT.from_potential(y, g, epsilon=epsilon)
    x_py = sd.noise(64, seed=7)
    np.testing.assert_array_equal(x_py, x_cli)
    idx_py = sd.sample(x_py, seed=7) if epsilon > 0 else sd.assign(x_py)
    np.testing.assert_array_equal(idx_py, idx_cli)
    # The CLI with the drawn noise given back as --noise: the same indices.
    cli("sdot", "assign", "--data", tmp_path / "y.npy", "--potential", tmp_path / "g.npy", "--noise", tmp_path / "x.npy",
        "--seed", 7, "--epsilon", epsilon, "--out", tmp_path / "idx2.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "idx2.npy"), idx_cli)

    x0, x1 = otgen.torch.SemidiscreteCoupling(y, g, epsilon=epsilon, batch_size=64, seed=7).sample()
    np.testing.assert_array_equal(x0.numpy(), x_cli)
    np.testing.assert_array_equal(x1.numpy(), y[idx_cli])
    fm = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g, epsilon=epsilon, seed=7)
    np.testing.assert_array_equal(fm.match(torch.from_numpy(x_cli)).numpy(), idx_cli)


def test_conditional_noise_classes_follow_the_weights_everywhere(cli, tmp_path, problem):
    y, g, labels, w = problem
    cli("sdot", "assign", "--data", tmp_path / "y.npy", "--potential", tmp_path / "g.npy", "--labels", tmp_path / "l.npy",
        "--weights", tmp_path / "w.npy", "--n", 50, "--seed", 3, "--noise-out", tmp_path / "x.npy",
        "--noise-labels-out", tmp_path / "xl.npy", "--out", tmp_path / "idx.npy")
    x_cli, xl_cli, idx_cli = (np.load(tmp_path / f) for f in ("x.npy", "xl.npy", "idx.npy"))
    sd = otgen.SemidiscreteOT.from_potential(y, g, weights=w, labels=labels)
    x_py, xl_py = sd.noise(50, seed=3)
    np.testing.assert_array_equal(x_py, x_cli)
    np.testing.assert_array_equal(xl_py, xl_cli)
    np.testing.assert_array_equal(sd.assign(x_py, labels=xl_py), idx_cli)
    x0, x1, l1 = otgen.torch.SemidiscreteCoupling(y, g, labels=labels, weights=w, batch_size=50, seed=3).sample()
    np.testing.assert_array_equal(x0.numpy(), x_cli)
    np.testing.assert_array_equal(l1.numpy(), xl_cli)
    np.testing.assert_array_equal(x1.numpy(), y[idx_cli])


def test_noise_classes_have_the_weights_law():
    # 20000 classes drawn with weights (0.5, 0, 0.2, 0.3): frequencies within 5 sd, class 1 never.
    w = np.array([0.5, 0.0, 0.2, 0.3])
    k = otgen._otgen.noise_classes(w, 20000, seed=11)
    f = np.bincount(k, minlength=4) / 20000
    assert f[1] == 0
    np.testing.assert_allclose(f, w, atol=5 * np.sqrt(0.25 / 20000))
    with pytest.raises(ValueError, match="class_weights"):
        otgen._otgen.noise_classes(np.zeros(3), 5)


def test_from_potential_refuses_a_potential_of_another_size(problem):
    y, g, _, _ = problem
    with pytest.raises(ValueError, match=r"g: shape \(299,\)"):
        otgen.SemidiscreteOT.from_potential(y, g[:-1])
