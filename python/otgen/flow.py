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
"""

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

__all__ = ["train", "sample", "load", "cli_path"]


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


def _run(args, progress=False):
    r = subprocess.run([cli_path(), *args], stdout=subprocess.PIPE,
                       stderr=None if progress else subprocess.PIPE, text=True)
    if r.returncode == 2:
        raise ValueError((r.stderr or "").strip().splitlines()[-1] if r.stderr else "invalid arguments")
    if r.returncode != 0:
        raise RuntimeError(f"otgen {args[0]} failed ({r.returncode}): {(r.stderr or '').strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def train(data, out, coupling="independent", progress=False, labels=None, **options):
    """Trains a model on ``data`` (a dataset name or an (N, d) .npy path) into the run folder ``out``
    (model.pt, checkpoint.pt, run.json, record.json) and returns the run record. ``progress=True``
    shows the CLI's progress on stderr. ``labels``: per-point classes of a .npy ``data`` (a path, or an
    (N,) integer array, kept as out/labels.npy); they make the model conditional."""
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
         + ([] if progress else ["-q"]), progress)
    with open(os.path.join(out, "record.json")) as f:
        return json.load(f)


def resume(out, progress=False, **options):
    """Continues the run in ``out`` from its checkpoint (``steps=`` may raise the total)."""
    _run(["train", "--resume", str(out), *_options(options)] + ([] if progress else ["-q"]), progress)
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
