"""bench/flow_models_ref.py (the reference networks otgen's C++ models must equal) and a smoke run of
bench/flow_torch_ref.py (the eager PyTorch flow-matching loop)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import flow_models_ref as M  # noqa: E402


def test_parameter_counts():
    assert M.count_parameters(M.MLP(2)) == 37762  # (2+32)*128+128 + 2*(128*128+128) + 128*2+2
    assert M.count_parameters(M.UNet(28)) == 694561
    assert M.count_parameters(M.UNet(8)) == 694561  # convolutions: independent of the side
    assert len(M.parameter_table(M.MLP(2))) == 8


def test_sinusoidal_embedding_formula():
    t = torch.tensor([0.0, 0.3, 1.0])
    e = M.SinusoidalEmbedding(32)(t).numpy().astype(np.float64)
    half = 16
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
    a = 1000.0 * np.array([0.0, 0.3, 1.0])[:, None] * freqs[None, :]
    np.testing.assert_allclose(e, np.concatenate([np.sin(a), np.cos(a)], 1), atol=2e-4)
    assert e.shape == (3, 32)


@pytest.mark.parametrize("side", [8, 28])
def test_unet_maps_flat_images_to_flat_velocities(side):
    torch.manual_seed(0)
    u = M.UNet(side)
    x = torch.randn(3, side * side)
    v = u(torch.rand(3), x)
    assert v.shape == (3, side * side) and torch.isfinite(v).all()
    v.sum().backward()
    assert all(p.grad is not None for p in u.parameters())


def test_mlp_forward_equals_its_definition():
    torch.manual_seed(1)
    m = M.MLP(3)
    t, x = torch.rand(5), torch.randn(5, 3)
    h = torch.cat([x, M.SinusoidalEmbedding(32)(t)], 1)
    for lin in m.layers:
        h = torch.nn.functional.silu(lin(h))
    torch.testing.assert_close(m(t, x), m.out(h))


# A TorchScript MLP written the way otgen's C++ side builds one (register_parameter + define, other names).
TS_MLP_SOURCE = '''
def forward(self, t, x):
    half = 16
    k = torch.arange(half, dtype=torch.float32)
    freqs = torch.exp(k * (-9.210340371976184 / half))
    a = 1000.0 * t.reshape(-1, 1) * freqs.reshape(1, -1)
    h = torch.cat([x, torch.sin(a), torch.cos(a)], 1)
    h = torch.ops.aten.silu(torch.addmm(self.b0, h, self.w0.t()))
    h = torch.ops.aten.silu(torch.addmm(self.b1, h, self.w1.t()))
    h = torch.ops.aten.silu(torch.addmm(self.b2, h, self.w2.t()))
    return torch.addmm(self.b3, h, self.w3.t())
'''


class ScriptedMLP(torch.jit.ScriptModule):
    def __init__(self, d, width=128, emb=32):
        super().__init__()
        for i, (a, b) in enumerate([(d + emb, width), (width, width), (width, width), (width, d)]):
            setattr(self, f"w{i}", nn.Parameter(torch.randn(b, a) / math.sqrt(a)))
            setattr(self, f"b{i}", nn.Parameter(torch.randn(b)))
        self.define(TS_MLP_SOURCE)


def test_copy_torchscript_weights_by_order_reproduces_the_scripted_model(tmp_path):
    torch.manual_seed(2)
    path = str(tmp_path / "model.pt")
    torch.jit.save(ScriptedMLP(2), path)
    eager = M.MLP(2)
    pairs = M.copy_torchscript_weights(eager, path)
    assert pairs[0] == ("layers.0.weight", "w0") and len(pairs) == 8
    scripted = torch.jit.load(path)
    t, x = torch.rand(64), torch.randn(64, 2)
    assert M.max_abs_difference(eager, scripted, t, x) < 1e-5


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_copy_torchscript_weights_by_name_and_shape_errors():
    torch.manual_seed(3)
    src = M.UNet(8)
    traced = torch.jit.trace(src, (torch.rand(2), torch.randn(2, 64)))
    dst = M.UNet(8)
    M.copy_torchscript_weights(dst, traced, by="name")
    t, x = torch.rand(4), torch.randn(4, 64)
    assert M.max_abs_difference(dst, src, t, x) == 0.0
    with pytest.raises(ValueError, match="shape"):
        M.copy_torchscript_weights(M.MLP(3), torch.jit.script(ScriptedMLP(2)), by="order")
    with pytest.raises(ValueError, match="parameters"):
        M.copy_torchscript_weights(M.UNet(8), torch.jit.script(ScriptedMLP(2)))


def run_script(*args, tmp_path):
    out = str(tmp_path / "out.json")
    env = dict(os.environ)
    import otgen
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(otgen.__file__))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "flow_torch_ref.py"), *args, "--json", out],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        return json.load(f)


def test_flow_torch_ref_smoke_mlp_with_eval(tmp_path):
    rec = run_script("--model", "mlp", "--data", "8gaussians", "--steps", "15", "--warmup", "5", "--window", "5",
                     "--batch", "64", "--eval", "--eval-points", "128", tmp_path=tmp_path)
    assert rec["parameters"] == 37762 and rec["n"] == 4096 and rec["d"] == 2
    assert len(rec["window_steps_per_second"]) == 2 and rec["steps_per_second"] > 0
    assert math.isfinite(rec["final_loss"])
    res = rec["eval"]["results"]
    assert [res[k]["nfe"] for k in ("euler_1", "euler_2", "euler_4", "euler_8", "rk4_32")] == [1, 2, 4, 8, 128]
    assert all(math.isfinite(v["energy_distance"]) for v in res.values())


def test_flow_torch_ref_smoke_unet_semidiscrete_bf16(tmp_path):
    g = tmp_path / "g.npy"
    rec = run_script("--model", "unet", "--data", "digits", "--coupling", "semidiscrete", "--fit-steps", "50",
                     "--save-potential", str(g), "--steps", "3", "--warmup", "1", "--window", "5", "--batch", "8",
                     "--dtype", "bf16", tmp_path=tmp_path)
    assert rec["parameters"] == 694561 and rec["d"] == 64 and rec["partial_window_steps"] == 2
    assert np.load(g).shape == (1797,)
    assert math.isfinite(rec["final_loss"])
