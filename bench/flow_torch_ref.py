#!/usr/bin/python3
"""PyTorch reference for otgen's flow-matching trainer: the eager "torchcfm style" loop.

Same model (bench/flow_models_ref.py), same loop, threads, batch and dtype as otgen's C++ trainer:

    x0 = randn(B, d);  x1 = data[randint(N)]  (independent)  or  y[argmax_j <x0, y_j> + g_j - |y_j|^2 / 2]
                                              (semidiscrete: otgen.torch.SemidiscreteConditionalFlowMatcher)
    t ~ U[0, 1];  x_t = (1 - t) x0 + t x1;  loss = mean_b sum_d (v(t, x_t) - (x1 - x0))^2
    Adam(lr 1e-3, betas 0.9 / 0.999, no weight decay); EMA 0.999 of the weights when --eval

Reports training steps/s (median over windows of --window steps after --warmup steps), the final loss
and, with --eval (MLP only), the energy distance of 4096 samples (EMA weights; Euler 1/2/4/8 steps and RK4
32 steps = 128 NFE) to 4096 fresh data points. One JSON object on stdout (and in --json).

Data: 8gaussians here is radius 4, std 0.3, 4096 training points, generated in numpy (otgen's built-in
`8gaussians` is radius 2, std 0.2 and the Python loader does not expose `gaussian-mixture` means);
--save-data writes the exact training set for `otgen ... --data npy`. Fresh evaluation points use
seed + 1 (8gaussians) or a seeded sample of the data (digits / fashion-mnist / npy).

Timing: run on a quiet machine (the record keeps the load average before and after, and the OMP_* /
OPENBLAS_* environment). With another busy process on the 2 cores, OpenMP's default spin-waiting made
this loop 10-20x slower (about 10 steps/s instead of ~200 for the MLP with OMP_WAIT_POLICY=PASSIVE).

    PYTHONPATH=build/python /usr/bin/python3 bench/flow_torch_ref.py --model mlp --data 8gaussians \
        --coupling semidiscrete --potential g.npy --batch 256 --steps 2000 --threads 2 --eval --json out.json
"""
import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flow_models_ref  # noqa: E402

import otgen  # noqa: E402
import otgen.torch  # noqa: E402


def eight_gaussians(n, seed, radius=4.0, std=0.3):
    """n points of the 8-Gaussian mixture: means radius * (cos 2 pi k / 8, sin 2 pi k / 8), k uniform."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 8, size=n)
    a = 2 * np.pi * k / 8
    means = radius * np.stack([np.cos(a), np.sin(a)], 1)
    return (means + std * rng.standard_normal((n, 2))).astype(np.float32)


def load_data(a):
    """(train (N, d) float32, fresh evaluation points (n_eval, d) or None, description)."""
    if a.data == "8gaussians":
        n = a.n or 4096
        return (eight_gaussians(n, a.seed), eight_gaussians(a.eval_points, a.seed + 1),
                f"8 Gaussians radius 4 std 0.3 (numpy, seed {a.seed}; eval seed {a.seed + 1})")
    if a.data.endswith(".npy") or a.data == "npy":
        path = a.data if a.data.endswith(".npy") else a.data_path
        if not path:
            raise SystemExit("--data npy needs --data-path FILE.npy")
        x, _, _ = otgen.load_dataset("npy", path=path)
        desc = f"npy {path}"
    else:
        x, _, _ = otgen.load_dataset(a.data, n=a.n, seed=a.seed, shuffle=a.n > 0)
        desc = f"{a.data} (otgen.load_dataset, n={len(x)})"
    rng = np.random.default_rng(a.seed + 1)
    fresh = x[rng.choice(len(x), size=min(a.eval_points, len(x)), replace=False)]
    return np.ascontiguousarray(x, dtype=np.float32), fresh, desc + "; eval points: a seeded sample of the data"


def energy_distance(x, y, threads):
    """2 E|X - Y| - E|X - X'| - E|Y - Y'| (U-statistics): otgen's, else float64 numpy."""
    if hasattr(otgen, "metrics") and hasattr(otgen.metrics, "energy_distance"):
        return float(otgen.metrics.energy_distance(np.ascontiguousarray(x, np.float32),
                                                   np.ascontiguousarray(y, np.float32), threads=threads))
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def mean_dist(a, b, within):
        s = 0.0
        for i in range(0, len(a), 512):
            d2 = (a[i:i + 512, None, :] - b[None, :, :]) ** 2
            s += np.sqrt(d2.sum(-1)).sum()
        n = len(a) * len(b) - (len(a) if within else 0)  # zero diagonal dropped for the U-statistic
        return s / n

    return 2 * mean_dist(x, y, False) - mean_dist(x, x, True) - mean_dist(y, y, True)


@torch.no_grad()
def integrate(model, x0, method, steps):
    """dx/dt = v(t, x) from t = 0 to 1 with fixed steps; returns (x1, NFE)."""
    x, h, nfe = x0.clone(), 1.0 / steps, 0
    B = len(x)

    def v(t, z):
        nonlocal nfe
        nfe += 1
        return model(torch.full((B,), t), z)

    for k in range(steps):
        t = k * h
        if method == "euler":
            x = x + h * v(t, x)
        elif method == "rk4":
            k1 = v(t, x)
            k2 = v(t + h / 2, x + h / 2 * k1)
            k3 = v(t + h / 2, x + h / 2 * k2)
            k4 = v(t + h, x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        else:
            raise ValueError(method)
    return x, nfe


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["mlp", "unet"], default="mlp")
    ap.add_argument("--data", default="8gaussians", help="8gaussians | digits | fashion-mnist | npy | FILE.npy")
    ap.add_argument("--data-path", default="", help="the (N, d) float file for --data npy")
    ap.add_argument("--n", type=int, default=0, help="training points (0: 4096 for 8gaussians, all otherwise)")
    ap.add_argument("--coupling", choices=["independent", "semidiscrete"], default="independent")
    ap.add_argument("--potential", default="", help="g.npy fitted on exactly this training set (semidiscrete)")
    ap.add_argument("--fit-steps", type=int, default=0,
                    help="without --potential: fit g here with otgen.SemidiscreteOT for this many steps")
    ap.add_argument("--save-potential", default="", help="write the (fitted) potential here")
    ap.add_argument("--save-data", default="", help="write the training set (float32 .npy) here")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    ap.add_argument("--window", type=int, default=20, help="steps per timing window")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--bf16-mode", choices=["autocast", "pure"], default="autocast",
                    help="bf16: autocast (fp32 master weights, bf16 matmuls/convs) or pure (bf16 weights)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--eval", action="store_true", help="MLP: energy distance of EMA samples (Euler 1/2/4/8, RK4 32)")
    ap.add_argument("--eval-points", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the JSON record here")
    a = ap.parse_args()
    if a.eval and a.model != "mlp":
        raise SystemExit("--eval: only for --model mlp (no sample-quality metric for images here)")
    if a.steps < 1 or a.batch < 1 or a.window < 1 or a.warmup < 0:
        raise SystemExit("--steps, --batch, --window must be >= 1 and --warmup >= 0")

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    load_before = os.getloadavg()
    y_np, fresh, data_desc = load_data(a)
    if a.save_data:
        np.save(a.save_data, y_np)
    N, d = y_np.shape
    y = torch.from_numpy(y_np)

    matcher, potential_desc = None, None
    if a.coupling == "semidiscrete":
        if a.potential:
            g = np.load(a.potential).astype(np.float32)
            potential_desc = a.potential
        elif a.fit_steps > 0:
            sd = otgen.SemidiscreteOT(steps=a.fit_steps, batch_size=1024, lr=1.0, lr_final=0.01, seed=a.seed,
                                      threads=a.threads)
            r = sd.fit(y_np)
            g = r.g
            potential_desc = f"fitted here: {r!r}, check {sd.check(repeats=4)}"
        else:
            raise SystemExit("--coupling semidiscrete needs --potential g.npy (or --fit-steps N)")
        if a.save_potential:
            np.save(a.save_potential, g)
        matcher = otgen.torch.SemidiscreteConditionalFlowMatcher(y, g, seed=a.seed, threads=a.threads)

    torch.manual_seed(a.seed)
    model = flow_models_ref.build_model(a.model, d)
    params = flow_models_ref.count_parameters(model)
    pure_bf16 = a.dtype == "bf16" and a.bf16_mode == "pure"
    autocast = a.dtype == "bf16" and a.bf16_mode == "autocast"
    if pure_bf16:
        model = model.to(torch.bfloat16)
        y = y.to(torch.bfloat16)
    xdtype = torch.bfloat16 if pure_bf16 else torch.float32
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), weight_decay=0.0)
    ema = None
    if a.eval:
        ema = copy.deepcopy(model).float()
        for p in ema.parameters():
            p.requires_grad_(False)
        ema_params = list(ema.parameters())
    gen = torch.Generator().manual_seed(a.seed + 12345)
    print(f"model {a.model}: {params} parameters; data {data_desc}: N={N}, d={d}; coupling {a.coupling}; "
          f"batch {a.batch}, {a.steps} steps, {a.threads} threads, {a.dtype}"
          + (f" ({a.bf16_mode})" if a.dtype == "bf16" else ""), file=sys.stderr)

    losses, window_rates = [], []
    total = a.steps
    t_window = None
    t_start = time.perf_counter()
    for step in range(total):
        if step >= a.warmup and (step - a.warmup) % a.window == 0:
            now = time.perf_counter()
            if t_window is not None:
                window_rates.append(a.window / (now - t_window))
            t_window = now
        # one training step: pairs, path point, loss, backward, Adam (+ EMA)
        x0 = torch.randn(a.batch, d, generator=gen)
        if matcher is None:
            x1 = y[torch.randint(0, N, (a.batch,), generator=gen)]
            t = torch.rand(a.batch, generator=gen)
        else:
            t, _, _, x1, _ = matcher.sample_location_and_conditional_flow(x0)
        x0 = x0.to(xdtype)
        x1 = x1.to(xdtype)
        tb = t[:, None].to(xdtype)
        xt = (1 - tb) * x0 + tb * x1
        ut = x1 - x0
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            v = model(t, xt)
        loss = ((v.float() - ut.float()) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            dk = min(a.ema, (1 + step) / (10 + step))  # EMA warm-up, as otgen's trainer
            with torch.no_grad():
                for pe, p in zip(ema_params, model.parameters()):
                    pe.mul_(dk).add_(p.detach().float(), alpha=1 - dk)
        losses.append(loss.item())
    now = time.perf_counter()
    partial = None
    if t_window is not None and total > a.warmup:
        done = (total - a.warmup) % a.window
        if done == 0:
            window_rates.append(a.window / (now - t_window))
        elif not window_rates:  # fewer steps than one window: report the partial one, flagged
            partial = done
            window_rates.append(done / (now - t_window))
    train_seconds = now - t_start

    rec = {
        "impl": "torch-eager", "torch": torch.__version__, "python": platform.python_version(),
        "model": a.model, "parameters": params, "data": data_desc, "n": N, "d": d,
        "coupling": a.coupling, "potential": potential_desc, "batch": a.batch, "steps": a.steps,
        "warmup": a.warmup, "window": a.window, "threads": a.threads, "dtype": a.dtype,
        "bf16_mode": a.bf16_mode if a.dtype == "bf16" else None, "seed": a.seed, "lr": a.lr,
        "ema_in_timed_loop": ema is not None,
        "steps_per_second": statistics.median(window_rates) if window_rates else None,
        "window_steps_per_second": window_rates, "partial_window_steps": partial,
        "final_loss": losses[-1], "final_loss_mean_last_window": float(np.mean(losses[-a.window:])),
        "train_seconds": train_seconds, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "torch_threads": torch.get_num_threads(),
        "env": {k: os.environ[k] for k in sorted(os.environ)
                if k.startswith(("OMP_", "OPENBLAS_", "MKL_", "KMP_", "GOMP_", "DNNL_", "ONEDNN_"))},
    }
    if a.eval:
        noise = torch.randn(a.eval_points, d, generator=torch.Generator().manual_seed(a.seed + 777))
        ev = {}
        for method, steps in [("euler", 1), ("euler", 2), ("euler", 4), ("euler", 8), ("rk4", 32)]:
            x, nfe = integrate(ema, noise, method, steps)
            ev[f"{method}_{steps}"] = {"nfe": nfe, "energy_distance": energy_distance(x.numpy(), fresh, a.threads)}
        rec["eval"] = {"samples": a.eval_points, "reference_points": len(fresh), "weights": f"EMA {a.ema}",
                       "metric": "energy distance (U-statistic)", "results": ev}
    out = json.dumps(rec, indent=1)
    print(out)
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            f.write(out + "\n")
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
