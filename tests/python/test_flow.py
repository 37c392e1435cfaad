"""otgen's flow models seen from Python: model.pt runs under torch.jit.load with the C++ outputs, equals
the independent eager PyTorch definition of the architecture (bench/flow_models_ref.py), and
otgen.flow trains and samples through the CLI."""

import json
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import otgen.flow  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import flow_models_ref as M  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny MLP run on 2-D data and a tiny U-Net run on 8x8 images (a few steps each)."""
    d = tmp_path_factory.mktemp("flow")
    rng = np.random.default_rng(0)
    np.save(d / "y2.npy", rng.normal(size=(300, 2)).astype(np.float32) * 2)
    np.save(d / "img.npy", np.tanh(rng.normal(size=(100, 64))).astype(np.float32))
    otgen.flow.train(str(d / "y2.npy"), str(d / "mlp"), steps=30, batch=64, width=32, depth=2, seed=1)
    otgen.flow.train(str(d / "img.npy"), str(d / "unet"), model="unet", channels=8, mults="1,2", groups=4,
                     steps=5, batch=16, seed=2)
    return d


@pytest.mark.parametrize("run", ["mlp", "unet"])
def test_torchscript_model_matches_the_cpp_velocity(runs, run):
    path = str(runs / run / "model.pt")
    extra = {"otgen.json": ""}
    m = torch.jit.load(path, _extra_files=extra)
    meta = json.loads(extra["otgen.json"])
    d = meta["model"]["dim"]
    assert meta["format"] == "otgen.flow/1" and meta["parameters"] == sum(p.numel() for p in m.parameters())
    x0 = np.random.default_rng(3).normal(size=(37, d)).astype(np.float32)
    np.save(runs / "x0.npy", x0)
    # One Euler step from t = 0 in C++ is x0 + v(0, x0).
    x1 = otgen.flow.sample(path, noise=x0, solver="euler", steps=1)
    with torch.no_grad():
        v = m(torch.from_numpy(x0), torch.zeros(37)).numpy()
    np.testing.assert_allclose(x1 - x0, v, atol=1e-6 * max(1.0, np.abs(v).max()))
    # Three Euler steps: the same trajectory in Python.
    x3 = otgen.flow.sample(path, noise=x0, solver="euler", steps=3)
    x = torch.from_numpy(x0)
    with torch.no_grad():
        for k in range(3):
            x = x + m(x, torch.full((37,), k / 3)) / 3
    np.testing.assert_allclose(x3, x.numpy(), atol=1e-5 * max(1.0, np.abs(x3).max()))


def reference_name(name, levels, mlp):
    """otgen's parameter name -> the eager reference's (bench/flow_models_ref.py)."""
    base, kind = name.rsplit("_", 1)
    kind = {"w": "weight", "b": "bias"}[kind]
    fixed = {"t1": "time1", "t2": "time2", "in": "conv_in", "out_gn": "out_norm", "out": "out_conv", "mid": "mid"}
    part = {"gn1": "norm1", "c1": "conv1", "t": "temb", "gn2": "norm2", "c2": "conv2", "skip": "skip"}
    if mlp:
        return f"layers.{base[1:]}.{kind}" if base != "out" else f"out.{kind}"
    if base in fixed:
        return f"{fixed[base]}.{kind}"
    if base.startswith("down"):
        return f"downsample.{base[4:]}.{kind}"
    if base.startswith("up"):
        return f"upsample.{levels - 1 - int(base[2:])}.{kind}"
    block, sub = base.split("_", 1)
    if block == "mid":
        return f"mid.{part[sub]}.{kind}"
    i = int(block[1:])
    return (f"down.{i}" if block[0] == "d" else f"up.{levels - 1 - i}") + f".{part[sub]}.{kind}"


def test_torchscript_models_equal_the_eager_reference_architecture(runs):
    for run, eager in [("mlp", M.MLP(2, width=32, depth=2)), ("unet", M.UNet(8, channels=1, C=8, mults=(1, 2), groups=4))]:
        scripted = torch.jit.load(str(runs / run / "model.pt"))
        assert M.count_parameters(eager) == sum(p.numel() for p in scripted.parameters())
        ref = dict(eager.named_parameters())
        with torch.no_grad():
            for name, p in scripted.named_parameters():
                target = ref.pop(reference_name(name, 2, run == "mlp"))
                assert target.shape == p.shape, name
                target.copy_(p)
        assert not ref, f"reference parameters not in otgen's model: {list(ref)}"
        d = 2 if run == "mlp" else 64
        x = torch.randn(11, d, generator=torch.Generator().manual_seed(4))
        for t in (0.0, 0.37, 1.0):
            tt = torch.full((11,), t)
            diff = M.max_abs_difference(eager, scripted, tt, x, call=lambda o, t, x: o(x, t))
            assert diff < 1e-5, (run, t, diff)


def test_sample_reports_nfe_and_dopri5_is_adaptive(runs):
    path = str(runs / "mlp" / "model.pt")
    x, info = otgen.flow.sample(path, n=50, solver="rk4", steps=3, seed=1, return_info=True)
    assert x.shape == (50, 2) and info["nfe"] == 12
    x_again = otgen.flow.sample(path, n=50, solver="rk4", steps=3, seed=1)
    np.testing.assert_array_equal(x, x_again)
    _, loose = otgen.flow.sample(path, n=50, solver="dopri5", rtol=1e-2, atol=1e-2, return_info=True)
    _, tight = otgen.flow.sample(path, n=50, solver="dopri5", rtol=1e-6, atol=1e-6, return_info=True)
    assert tight["nfe"] > loose["nfe"] > 0


def test_errors_are_value_errors_naming_the_option(runs, tmp_path):
    with pytest.raises(ValueError, match="--solver"):
        otgen.flow.sample(str(runs / "mlp" / "model.pt"), n=3, solver="rk5")
    with pytest.raises(ValueError, match="--model"):
        otgen.flow.sample(str(tmp_path / "missing.pt"), n=3)
    with pytest.raises(ValueError, match="--coupling"):
        otgen.flow.train(str(runs / "y2.npy"), str(tmp_path / "r"), coupling="magic", steps=3)
    with pytest.raises(ValueError, match="noise"):
        otgen.flow.sample(str(runs / "mlp" / "model.pt"), noise=np.zeros((3, 5), np.float32))


@pytest.fixture(scope="module")
def cond_runs(tmp_path_factory):
    """Tiny conditional (MLP, U-Net) and MeanFlow (unconditional and conditional MLP) runs."""
    d = tmp_path_factory.mktemp("cond")
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, size=300)
    y = rng.normal(size=(300, 2)).astype(np.float32) + 3 * labels[:, None].astype(np.float32)
    np.save(d / "y.npy", y)
    np.save(d / "img.npy", np.tanh(rng.normal(size=(90, 64))).astype(np.float32))
    otgen.flow.train(str(d / "y.npy"), str(d / "cmlp"), labels=labels, steps=20, batch=64, width=32, depth=2)
    otgen.flow.train(str(d / "img.npy"), str(d / "cunet"), labels=labels[:90], model="unet", channels=8,
                     mults="1,2", groups=4, steps=3, batch=16)
    otgen.flow.train(str(d / "y.npy"), str(d / "mf"), meanflow=True, steps=20, batch=64, width=32, depth=2)
    otgen.flow.train(str(d / "y.npy"), str(d / "cmf"), str("semidiscrete"), labels=labels, meanflow=True, steps=10,
                     batch=64, width=32, depth=2, fit_steps=200)
    return d


@pytest.mark.parametrize("run", ["cmlp", "cunet", "mf", "cmf"])
def test_conditional_and_meanflow_torchscript_match_the_cpp_sampler(cond_runs, run):
    path = str(cond_runs / run / "model.pt")
    m, meta = otgen.flow.load(path)
    spec = meta["model"]
    K, mf, d = spec["num_classes"], spec["meanflow"], spec["dim"]
    assert K == (3 if run.startswith("c") else 0) and mf == ("mf" in run)
    x0 = np.random.default_rng(4).normal(size=(12, d)).astype(np.float32)
    xt = torch.from_numpy(x0)
    zeros, ones = torch.zeros(12), torch.ones(12)

    def net(y):  # one Euler step from t = 0: v(0, x) for flows, the jump u(x, 0, 1) for MeanFlow models
        args = [xt, zeros] + ([ones] if mf else []) + ([torch.full((12,), y, dtype=torch.int64)] if K else [])
        with torch.no_grad():
            return m(*args).numpy()

    tol = lambda v: 2e-6 * max(1.0, np.abs(v).max())  # noqa: E731
    if K == 0:
        v = net(None)
        np.testing.assert_allclose(otgen.flow.sample(path, noise=x0, steps=1) - x0, v, atol=tol(v))
        return
    vu, vc = net(K), net(1)
    # No class: the null class; class 1 at guidance 1, 0 and 3.
    np.testing.assert_allclose(otgen.flow.sample(path, noise=x0, steps=1) - x0, vu, atol=tol(vu))
    for w, want in [(1.0, vc), (0.0, vu), (3.0, vu + 3.0 * (vc - vu))]:
        x1, info = otgen.flow.sample(path, noise=x0, steps=1, classes=1, guidance=w, return_info=True)
        np.testing.assert_allclose(x1 - x0, want, atol=4 * tol(want))
        assert info["nfe"] == (2 if w == 3.0 else 1)
    x, lab = otgen.flow.sample(path, n=4, classes="all", steps=2, return_labels=True)
    assert x.shape == (12, d) and lab.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_conditional_errors_are_value_errors(cond_runs, tmp_path):
    with pytest.raises(ValueError, match="--class"):
        otgen.flow.sample(str(cond_runs / "cmlp" / "model.pt"), n=3, classes=7)
    with pytest.raises(ValueError, match="--class"):
        otgen.flow.sample(str(cond_runs / "mf" / "model.pt"), n=3, classes=0)
    with pytest.raises(ValueError, match="labels"):
        otgen.flow.train(str(cond_runs / "y.npy"), str(tmp_path / "bad"), labels=np.zeros((3, 2)))
