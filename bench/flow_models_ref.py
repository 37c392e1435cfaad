#!/usr/bin/python3
"""Reference velocity networks v(t, x) for the flow-matching comparison (eager PyTorch).

otgen's C++ models are built to equal these, parameter for parameter; `copy_torchscript_weights` loads
the weights of otgen's exported model.pt (torch.jit.load) into them so the two can be compared
numerically (`max_abs_difference`). Both networks take ``t`` (B,) and a flat ``x`` (B, D) and return
(B, D); time 0 is noise, 1 is data.

Definitions (the contract otgen's models follow):

- emb(t, E): half = E / 2, freqs_k = exp(-ln(10000) k / half) for k = 0..half-1, a = 1000 t freqs,
  emb = cat(sin(a), cos(a)), computed in float32.
- MLP(d, width=128, depth=3, E=32): h = silu(L1(cat(x, emb(t, E)))), L1: d + E -> width; depth - 1
  more silu(Linear(width, width)); out Linear(width, d). d = 2: 37762 parameters.
- UNet(side, channels=1, C=32, mults=(1, 2, 2), groups=8), see `UNet`.

nn.Linear / nn.Conv2d / nn.GroupNorm default initialisation; GroupNorm runs in float32 (`GroupNorm32`). Parameters are registered in forward
order (`parameter_table` lists names and shapes), which is the order `copy_torchscript_weights` uses
when the names differ.

    /usr/bin/python3 bench/flow_models_ref.py      # prints the parameter counts
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SinusoidalEmbedding", "MLP", "GroupNorm32", "ResBlock", "UNet", "build_model", "count_parameters", "parameter_table",
           "copy_torchscript_weights", "max_abs_difference"]


class SinusoidalEmbedding(nn.Module):
    """emb(t, E) = cat(sin(1000 t freqs), cos(1000 t freqs)), freqs_k = exp(-ln(10000) k / (E / 2))."""

    def __init__(self, dim):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim: {dim}, expected an even embedding size >= 2")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)  # not a parameter, not in state_dict

    def forward(self, t):
        a = 1000.0 * t.reshape(-1, 1).to(torch.float32) * self.freqs[None, :]
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class MLP(nn.Module):
    """h = silu(L1(cat(x, emb(t)))); depth - 1 hidden silu(Linear(width, width)); out Linear(width, d)."""

    def __init__(self, d, width=128, depth=3, emb_dim=32):
        super().__init__()
        self.d = d
        self.time = SinusoidalEmbedding(emb_dim)
        self.layers = nn.ModuleList([nn.Linear(d + emb_dim, width)] +
                                    [nn.Linear(width, width) for _ in range(depth - 1)])
        self.out = nn.Linear(width, d)

    def forward(self, t, x):
        h = torch.cat([x, self.time(t).to(x.dtype)], dim=1)
        for layer in self.layers:
            h = F.silu(layer(h))
        return self.out(h)


class GroupNorm32(nn.GroupNorm):
    """nn.GroupNorm evaluated in float32 (input and affine cast up, result cast back to the input dtype):
    the same in fp32, and it keeps bf16 runs (autocast or bf16 weights) working and stable; torch 1.13's
    CPU autocast would otherwise feed bf16 activations to fp32 affine weights."""

    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)


class ResBlock(nn.Module):
    """h = conv3x3(silu(GN(cin)(x))) + Linear(temb_dim, cout)(silu(temb))[:, :, None, None];
    h = conv3x3(silu(GN(cout)(h))); out = h + (conv1x1(x) if cin != cout else x).
    Parameter order: norm1, conv1, temb, norm2, conv2, skip."""

    def __init__(self, cin, cout, temb_dim, groups=8):
        super().__init__()
        self.norm1 = GroupNorm32(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout)
        self.norm2 = GroupNorm32(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class UNet(nn.Module):
    """UNet(side, channels=1, C=32, mults=(1, 2, 2), groups=8) on flat images x (B, channels*side*side).

    temb = Linear(4C, 4C)(silu(Linear(C, 4C)(emb(t, C)))); each ResBlock sees silu(temb).
    h = conv_in 3x3 (channels -> C).
    Down, level i with ch_i = C mults[i]: h = ResBlock(prev, ch_i)(h); push h to skips; if not the last
      level, h = conv3x3 stride 2 padding 1 (ch_i -> ch_i).
    Mid: ResBlock(ch_last, ch_last).
    Up, i = last..0: h = ResBlock(ch_h + ch_i, ch_i)(cat(h, skip_i)); if i > 0,
      h = conv3x3(nearest-upsample of h to the size of skip_{i-1}) (ch_i -> ch_i)  (x2 for even sides:
      28 -> 14 -> 7 -> 14 -> 28, 8 -> 4 -> 2 -> 4 -> 8).
    Out: conv3x3(silu(GN(C)(h))) (C -> channels).
    Parameter order: time1, time2, conv_in, down (res_0, downsample_0, res_1, ...), mid, up (res_last,
    upsample_last, ..., res_0), out_norm, out_conv.
    """

    def __init__(self, side, channels=1, C=32, mults=(1, 2, 2), groups=8):
        super().__init__()
        self.side, self.channels, self.C = side, channels, C
        self.time = SinusoidalEmbedding(C)
        self.time1 = nn.Linear(C, 4 * C)
        self.time2 = nn.Linear(4 * C, 4 * C)
        self.conv_in = nn.Conv2d(channels, C, 3, padding=1)
        chs = [C * m for m in mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = C
        for i, ch in enumerate(chs):
            self.down.append(ResBlock(prev, ch, 4 * C, groups))
            self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1) if i + 1 < len(chs) else nn.Identity())
            prev = ch
        self.mid = ResBlock(prev, prev, 4 * C, groups)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(chs))):
            self.up.append(ResBlock(prev + chs[i], chs[i], 4 * C, groups))
            self.upsample.append(nn.Conv2d(chs[i], chs[i], 3, padding=1) if i > 0 else nn.Identity())
            prev = chs[i]
        self.out_norm = GroupNorm32(groups, C, eps=1e-5)
        self.out_conv = nn.Conv2d(C, channels, 3, padding=1)

    def forward(self, t, x):
        B = x.shape[0]
        h = x.reshape(B, self.channels, self.side, self.side)
        temb = self.time2(F.silu(self.time1(self.time(t).to(x.dtype))))
        temb_act = F.silu(temb)
        h = self.conv_in(h)
        skips = []
        for res, down in zip(self.down, self.downsample):
            h = res(h, temb_act)
            skips.append(h)
            h = down(h)
        h = self.mid(h, temb_act)
        levels = len(skips)
        for k, (res, up) in enumerate(zip(self.up, self.upsample)):
            i = levels - 1 - k
            h = res(torch.cat([h, skips[i]], dim=1), temb_act)
            if i > 0:
                h = up(F.interpolate(h, size=skips[i - 1].shape[-2:], mode="nearest"))
        h = self.out_conv(F.silu(self.out_norm(h)))
        return h.reshape(B, -1)


def build_model(kind, d, side=None, channels=1):
    """``mlp``: MLP(d); ``unet``: UNet(side, channels) with d = channels * side^2 (side inferred from a
    square single-channel d when omitted)."""
    if kind == "mlp":
        return MLP(d)
    if kind == "unet":
        if side is None:
            side = math.isqrt(d // channels)
        if channels * side * side != d:
            raise ValueError(f"d: {d}, expected channels * side^2 for the UNet (channels={channels}, side={side})")
        return UNet(side, channels)
    raise ValueError(f"model: {kind!r}, expected 'mlp' or 'unet'")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def parameter_table(model):
    """[(name, shape)] in registration (= forward) order."""
    return [(n, tuple(p.shape)) for n, p in model.named_parameters()]


def copy_torchscript_weights(eager, scripted, by="auto"):
    """Copy the parameters of a TorchScript module (``torch.jit.load(path)``, or a path) into ``eager``.

    ``by="name"``: the two modules have the same parameter names; ``by="order"``: the i-th parameter of
    each, in registration order; ``"auto"``: by name when the name sets agree, else by order. Every
    shape must match (no transposes, no partial copies): a ValueError lists the first mismatch.
    Returns [(eager name, scripted name)] as copied.
    """
    if isinstance(scripted, str):
        scripted = torch.jit.load(scripted, map_location="cpu")
    src = list(scripted.named_parameters())
    dst = list(eager.named_parameters())
    if by == "auto":
        by = "name" if {n for n, _ in src} == {n for n, _ in dst} else "order"
    if by == "name":
        src_by_name = dict(src)
        missing = [n for n, _ in dst if n not in src_by_name]
        if missing or len(src) != len(dst):
            raise ValueError(f"scripted: parameter names differ from the eager model's (missing {missing[:5]}, "
                             f"{len(src)} vs {len(dst)} parameters); try by='order'")
        pairs = [(n, p, n, src_by_name[n]) for n, p in dst]
    elif by == "order":
        if len(src) != len(dst):
            raise ValueError(f"scripted: {len(src)} parameters, expected {len(dst)} like the eager model "
                             f"({count_parameters(eager)} values); eager order: {parameter_table(eager)[:6]} ...")
        pairs = [(dn, dp, sn, sp) for (dn, dp), (sn, sp) in zip(dst, src)]
    else:
        raise ValueError(f"by: {by!r}, expected 'auto', 'name' or 'order'")
    for dn, dp, sn, sp in pairs:
        if tuple(dp.shape) != tuple(sp.shape):
            raise ValueError(f"scripted: parameter {sn!r} has shape {tuple(sp.shape)}, expected "
                             f"{tuple(dp.shape)} for eager {dn!r} (copy {by})")
    with torch.no_grad():
        for dn, dp, sn, sp in pairs:
            dp.copy_(sp.detach().to(dp.dtype))
    return [(dn, sn) for dn, _, sn, _ in pairs]


@torch.no_grad()
def max_abs_difference(eager, other, t, x, call=None):
    """max |eager(t, x) - other(t, x)| (``call(other, t, x)`` when otgen's signature differs)."""
    a = eager(t, x)
    b = call(other, t, x) if call is not None else other(t, x)
    return (a - b.reshape(a.shape)).abs().max().item()


if __name__ == "__main__":
    torch.manual_seed(0)
    for name, m in [("MLP(d=2)", MLP(2)), ("MLP(d=64)", MLP(64)), ("MLP(d=784)", MLP(784)),
                    ("UNet(side=28)", UNet(28)), ("UNet(side=8)", UNet(8))]:
        print(f"{name:<14} {count_parameters(m):>9} parameters in {len(parameter_table(m))} tensors")
