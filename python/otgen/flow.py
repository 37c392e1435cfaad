"""Flow matching from Python: train and sample otgen's C++ models with the CLI's options.

    import otgen.flow
    otgen.flow.train("digits", "runs/sd", coupling="semidiscrete", steps=3000)   # -> run record (dict)
    x = otgen.flow.sample("runs/sd/model.pt", n=1000, solver="euler", steps=4)  # -> (n, d) float32
    model, meta = otgen.flow.load("runs/sd/model.pt")                           # TorchScript + metadata

Training and sampling run the `otgen` executable (LibTorch, no Python in the loop); keyword arguments
are its options with '_' for '-' (``train(..., sd_epsilon=0.0, grad_clip=1.0)``, ``True`` for a flag).
The executable is found from $OTGEN_CLI, then beside this package (the build tree), then on PATH.
Errors in the arguments raise ValueError with the CLI's message. ``model.pt`` is TorchScript:
``model(x, t)`` with x (B, dim) flat and t (B,) returns dx/dt; t = 0 is noise, t = 1 data. Conditional
models (``train(..., conditional=True)`` or ``labels=``) take a last argument y (B,) int64 in [0, K],
K the null class; MeanFlow models (``meanflow=True``) take r (B,) after t, the destination time, and
return the average velocity over [t, r]:

    otgen.flow.train("digits", "runs/c", coupling="semidiscrete", conditional=True, steps=3000)
    x, y = otgen.flow.sample("runs/c/model.pt", n=10, classes="all", guidance=2.0, return_labels=True)
    otgen.flow.train("8gaussians", "runs/mf", meanflow=True, time="logit-normal", logit_mean=0.4)
    x = otgen.flow.sample("runs/mf/model.pt", n=1000, steps=1)                     # one step

Weighted SDEs (docs/flow.md): ``sample_sde`` samples the model's SDE twin with Feynman-Kac weights for
a target tilted by a log-reward, tempered, or a guidance product, without retraining:

    x, info = otgen.flow.sample_sde("runs/8g/model.pt", n=2000, tilt="linear:0.3,0.2", return_info=True)
    x = otgen.flow.sample_sde("runs/8g/model.pt", log_reward=lambda x: -((x - 2) ** 2).sum(1))  # autograd
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from ._progress import resolve as resolve_progress

__all__ = ["train", "sample", "sample_sde", "load", "cli_path"]


def cli_path():
    env = os.environ.get("OTGEN_CLI")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    build_tree = os.path.join(here, "..", "..", "otgen")
    if os.path.isfile(build_tree) and os.access(build_tree, os.X_OK):
        return os.path.abspath(build_tree)
    found = shutil.which("otgen")
    if found:
        return found
    raise RuntimeError("the otgen executable was not found: set OTGEN_CLI or install otgen (make install)")


def _options(kwargs):
    args = []
    for key, value in kwargs.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def _progress_event(line):
    """The event of an OTGEN_PROGRESS=json line, or None for any other stderr line."""
    if not line.startswith('{"progress"'):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and {"progress", "step", "total", "metrics"} <= event.keys() else None


def _run_with_callback(cmd, callback):
    """Runs cmd with OTGEN_PROGRESS=json, passing the progress lines of its own loop (labelled as the
    command, e.g. "train"; not those of nested loops such as a coupling's Sinkhorn) to callback;
    -> (rc, stdout, stderr)."""
    env = dict(os.environ, OTGEN_PROGRESS="json")
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as p:
        out = []
        reader = threading.Thread(target=lambda: out.append(p.stdout.read()))  # stdout never blocks the CLI
        reader.start()
        err = []
        try:
            for line in p.stderr:
                event = _progress_event(line)
                if event is None:
                    err.append(line)
                elif event["progress"] == cmd[1]:
                    callback(event["step"], event["total"], event["metrics"])
        except BaseException:
            p.kill()
            raise
        finally:
            reader.join()
        return p.wait(), "".join(out), "".join(err)


def _quiet(progress):
    stderr_on, callback = resolve_progress(progress)
    return [] if stderr_on or callback else ["-q"]


def _run(args, progress=False):
    stderr_on, callback = resolve_progress(progress)
    cmd = [cli_path(), *args]
    if callback is not None:
        code, out, err = _run_with_callback(cmd, callback)
    else:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if stderr_on else subprocess.PIPE, text=True)
        code, out, err = r.returncode, r.stdout, r.stderr
    if code == 2:
        raise ValueError((err or "").strip().splitlines()[-1] if err else "invalid arguments")
    if code != 0:
        raise RuntimeError(f"otgen {args[0]} failed ({code}): {(err or '').strip()}")
    return json.loads(out.strip().splitlines()[-1])


def train(data, out, coupling="independent", progress=False, labels=None, **options):
    """Trains a model on ``data`` (a dataset name or an (N, d) .npy path) into the run folder ``out``
    (model.pt, checkpoint.pt, run.json, record.json) and returns the run record. ``progress``: off by
    default; ``True`` shows the CLI's progress on stderr; a callable ``progress(step, total, metrics)``
    (metrics: ``loss``) or a tqdm bar receives it (otgen._progress). ``labels``: per-point classes of a
    .npy ``data`` (a path, or an (N,) integer array, kept as out/labels.npy); they make the model
    conditional."""
    if labels is not None and not isinstance(labels, (str, os.PathLike)):
        arr = np.asarray(labels)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"labels: shape {arr.shape}, dtype {arr.dtype}, expected an (N,) integer array or a path")
        os.makedirs(out, exist_ok=True)
        labels = os.path.join(out, "labels.npy")
        np.save(labels, arr.astype(np.int64))
    if labels is not None:
        options["labels"] = str(labels)
    _run(["train", "--data", str(data), "--coupling", coupling, "--out", str(out), *_options(options)]
         + _quiet(progress), progress)
    with open(os.path.join(out, "record.json")) as f:
        return json.load(f)


def resume(out, progress=False, **options):
    """Continues the run in ``out`` from its checkpoint (``steps=`` may raise the total)."""
    _run(["train", "--resume", str(out), *_options(options)] + _quiet(progress), progress)
    with open(os.path.join(out, "record.json")) as f:
        return json.load(f)


def sample(model, n=1000, noise=None, solver="euler", steps=8, seed=0, return_info=False, classes=None,
           guidance=None, return_labels=False, **options):
    """Samples ``n`` points (or integrates the given ``noise`` rows, (n, dim)) from t = 0 to 1 with
    ``solver`` (euler, midpoint, heun, rk4: ``steps`` fixed steps; dopri5: ``rtol``/``atol``; MeanFlow
    models: euler takes ``steps`` mean-flow jumps). Conditional models: ``classes`` = a class k, or
    "all" for ``n`` samples of each class in turn; ``guidance`` = w of v_null + w (v_k - v_null).
    Returns the (n, dim) float32 array, then the (n,) labels with ``return_labels``, then the CLI's
    summary (nfe, seconds) with ``return_info``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.npy")
        args = ["sample", "--model", str(model), "--solver", solver, "--steps", str(steps), "--seed", str(seed),
                "--out", out, *_options(options)]
        if classes is not None:
            args += ["--class", str(classes)]
        if guidance is not None:
            args += ["--guidance", str(guidance)]
        if return_labels:
            args += ["--labels-out", os.path.join(tmp, "labels.npy")]
        if noise is not None:
            noise = np.ascontiguousarray(noise, dtype=np.float32)
            if noise.ndim != 2:
                raise ValueError(f"noise: shape {noise.shape}, expected (n, dim)")
            np.save(os.path.join(tmp, "x0.npy"), noise)
            args += ["--noise", os.path.join(tmp, "x0.npy")]
        else:
            args += ["--n", str(n)]
        info = _run(args)
        result = [np.load(out)]
        if return_labels:
            result.append(np.load(os.path.join(tmp, "labels.npy")))
    if return_info:
        result.append(info)
    return result[0] if len(result) == 1 else tuple(result)


def load(model):
    """The TorchScript module of a model.pt and its otgen metadata (dict)."""
    import torch

    extra = {"otgen.json": ""}
    m = torch.jit.load(str(model), map_location="cpu", _extra_files=extra)
    return m, json.loads(extra["otgen.json"])


def _check(cond, name, value, expected):
    if not cond:
        raise ValueError(f"{name}: {value!r}, expected {expected}")


def _reward_fn(fn):
    """A user log-reward -> the sampler's (r, grad, laplacian). ``fn`` takes an (n, d) float64 torch
    tensor and returns r (n,) as a differentiable tensor (gradient and Laplacian by autograd), or
    returns the tuple (r, grad, laplacian) of arrays itself."""
    import torch

    def reward(x):
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        out = fn(xt)
        if isinstance(out, tuple):
            return tuple(np.asarray(o.detach() if hasattr(o, "detach") else o, dtype=np.float64) for o in out)
        if not torch.is_tensor(out) or out.shape != (x.shape[0],):
            raise ValueError(f"log_reward: returned {type(out).__name__} of shape {getattr(out, 'shape', None)}, "
                             f"expected a tensor of shape ({x.shape[0]},) or a tuple (r, grad, laplacian)")
        if not out.requires_grad:
            g = torch.zeros_like(xt)
        else:
            (g,) = torch.autograd.grad(out.sum(), xt, create_graph=True)
        lap = torch.zeros(x.shape[0], dtype=torch.float64)
        if g.requires_grad:
            for j in range(x.shape[1]):
                (h,) = torch.autograd.grad(g[:, j].sum(), xt, retain_graph=True, allow_unused=True)
                if h is not None:
                    lap = lap + h[:, j]
        return out.detach().numpy(), g.detach().numpy(), lap.detach().numpy()

    return reward


def _torch_field(model, label):
    """The sampler's field from a model.pt under torch.jit: velocity, guidance parts and the exact
    divergence (one backward pass per coordinate)."""
    import torch

    m, meta = load(model)
    spec = meta["model"]
    d, K, mf = spec["dim"], spec.get("num_classes", 0), spec.get("meanflow", False)

    def forward(x, t, y):
        n = x.shape[0]
        tt = torch.full((n,), float(t), dtype=torch.float32)
        args = [x, tt] + ([tt] if mf else []) + ([torch.full((n,), int(y), dtype=torch.long)] if K > 0 else [])
        return m(*args)

    own = K if label is None else label

    def field(t, x, divergence, guidance):
        xt = torch.from_numpy(x)
        with torch.no_grad():
            out = ({"v_cond": forward(xt, t, label).numpy(), "v_null": forward(xt, t, K).numpy(), "nfe": 2}
                   if guidance else {"v": forward(xt, t, own).numpy(), "nfe": 1})
        if divergence:
            xg = xt.clone().requires_grad_(True)
            v = forward(xg, t, own)
            div = torch.zeros(x.shape[0], dtype=torch.float64)
            for j in range(d):
                (g,) = torch.autograd.grad(v[:, j].sum(), xg, retain_graph=True)
                div += g[:, j].double()
            out["div"] = div.numpy()
            out["nfe"] += d
        return out

    return field, d, K


def sample_sde(model, n=1000, tilt=None, log_reward=None, temperature=1.0, classes=None, guidance=1.0, steps=100,
               noise=1.0, noise_schedule="sqrt", tilt_drift=0.0, weighted=True, ess_threshold=0.5,
               resample="systematic", final_resample=True, seed=0, return_info=False):
    """Samples the weighted SDE twin of a model (docs/flow.md, "Weighted SDEs"): targets p_1 exp(r)
    (``tilt`` = "linear:a1,...,ad" | "quadratic:k[,m1,...,md]", or ``log_reward`` = a Python callable,
    see below), p_1^temperature, or with ``classes=k`` and ``guidance=w`` the product
    p_1(x|k)^w p_1(x)^(1-w). ``noise`` = S of sigma(t) = S sqrt(1 - t) (``noise_schedule="linear"``:
    S (1 - t)); 0 is the weighted ODE. ``weighted=False`` is the same SDE without weights.

    ``log_reward(x)`` takes an (n, d) float64 torch tensor and returns r (n,) (differentiable: the
    gradient and Laplacian come from autograd) or a tuple (r, grad, laplacian) of arrays. With a
    ``log_reward`` the model runs in Python under torch.jit; otherwise the C++ executable runs it.
    Returns the (n, d) float32 samples (equally weighted unless ``final_resample=False``), then with
    ``return_info`` a dict with log_z, final_ess, nfe, resamples, the log-weights and the trace."""
    _check(isinstance(n, (int, np.integer)) and 1 <= n <= 2 ** 26, "n", n, "an integer in [1, 2^26]")
    _check(isinstance(steps, (int, np.integer)) and steps >= 1, "steps", steps, "an integer >= 1")
    _check(np.isfinite(noise) and noise >= 0, "noise", noise, "a finite number >= 0")
    _check(np.isfinite(temperature) and temperature > 0, "temperature", temperature, "a number > 0")
    _check(np.isfinite(guidance), "guidance", guidance, "a finite number")
    _check(temperature == 1 or guidance == 1, "temperature", temperature, "1 when guidance is not 1")
    _check(0 <= tilt_drift <= 1, "tilt_drift", tilt_drift, "a number in [0, 1]")
    _check(0 <= ess_threshold <= 1, "ess_threshold", ess_threshold, "a number in [0, 1]")
    _check(tilt is None or log_reward is None, "tilt", tilt, "None when log_reward is given")
    _check(tilt_drift == 0 or tilt is not None or log_reward is not None, "tilt_drift", tilt_drift,
           "0 without tilt or log_reward")
    _check(guidance == 1 or classes is not None, "guidance", guidance, "given with classes=k")
    if log_reward is None:
        with tempfile.TemporaryDirectory() as tmp:
            out, logw, rec = (os.path.join(tmp, f) for f in ("x.npy", "logw.npy", "rec.json"))
            args = ["sample", "--model", str(model), "--sde", "--n", str(n), "--steps", str(steps),
                    "--sde-noise", str(noise), "--noise-schedule", noise_schedule, "--temperature", str(temperature),
                    "--tilt-drift", str(tilt_drift), "--ess-threshold", str(ess_threshold), "--resample", resample,
                    "--seed", str(seed), "--out", out, "--logw-out", logw, "--record", rec]
            if tilt is not None:
                args += ["--tilt", str(tilt)]
            if classes is not None:
                args += ["--class", str(classes), "--guidance", str(guidance)]
            if not weighted:
                args.append("--no-weights")
            if not final_resample:
                args.append("--no-final-resample")
            summary = _run(args)
            x = np.load(out)
            with open(rec) as f:
                record = json.load(f)
            info = dict(log_z=summary.get("log_z"), final_ess=summary["final_ess"], nfe=summary["nfe"],
                        resamples=summary["resamples"], logw=np.load(logw),
                        trace={k: np.array([s[k] for s in record["trace"]]) for k in ("t", "ess", "log_z", "resampled", "nfe")})
        return (x, info) if return_info else x
    if not callable(log_reward):
        raise ValueError(f"log_reward: {type(log_reward).__name__}, expected a callable")
    from . import _otgen

    label = None
    if classes is not None:
        _check(isinstance(classes, (int, np.integer)), "classes", classes, "one class k (an integer) with log_reward")
        label = int(classes)
    field, d, K = _torch_field(model, label)
    _check(label is None or (K > 0 and 0 <= label < K), "classes", classes,
           f"a class in [0, {K})" if K > 0 else "None (the model is unconditional)")
    r = _otgen.flow_sde(field, int(n), d, log_reward=_reward_fn(log_reward), steps=int(steps), noise=float(noise),
                        noise_schedule=noise_schedule, temperature=float(temperature), guidance=float(guidance),
                        tilt_drift=float(tilt_drift), weighted=bool(weighted), ess_threshold=float(ess_threshold),
                        resample=resample, final_resample=bool(final_resample), seed=int(seed))
    if not return_info:
        return r["x"]
    return r["x"], dict(log_z=r["log_z"], final_ess=r["final_ess"], nfe=r["nfe"], resamples=r["resamples"],
                        logw=r["logw"], trace=r["trace"])
