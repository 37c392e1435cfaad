"""Flow matching from Python: train and sample otgen's C++ models with the CLI's options.

    import otgen.flow
    otgen.flow.train("digits", "runs/sd", coupling="semidiscrete", steps=3000)   # -> run record (dict)
    x = otgen.flow.sample("runs/sd/model.pt", n=1000, solver="euler", steps=4)  # -> (n, d) float32
    model, meta = otgen.flow.load("runs/sd/model.pt")                           # TorchScript + metadata

Training and sampling run the `otgen` executable (LibTorch, no Python in the loop); keyword arguments
are its options with '_' for '-' (``train(..., sd_epsilon=0.0, grad_clip=1.0)``, ``True`` for a flag).
The executable is found from $OTGEN_CLI, then beside this package (the build tree), then on PATH.
Errors in the arguments raise ValueError with the CLI's message. ``model.pt`` is TorchScript:
``model(x, t)`` with x (B, dim) flat and t (B,) returns dx/dt; t = 0 is noise, t = 1 data.
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


def train(data, out, coupling="independent", progress=False, **options):
    """Trains a model on ``data`` (a dataset name or an (N, d) .npy path) into the run folder ``out``
    (model.pt, checkpoint.pt, run.json, record.json) and returns the run record. ``progress=True``
    shows the CLI's progress on stderr."""
    _run(["train", "--data", str(data), "--coupling", coupling, "--out", str(out), *_options(options)]
         + ([] if progress else ["-q"]), progress)
    with open(os.path.join(out, "record.json")) as f:
        return json.load(f)


def resume(out, progress=False, **options):
    """Continues the run in ``out`` from its checkpoint (``steps=`` may raise the total)."""
    _run(["train", "--resume", str(out), *_options(options)] + ([] if progress else ["-q"]), progress)
    with open(os.path.join(out, "record.json")) as f:
        return json.load(f)


def sample(model, n=1000, noise=None, solver="euler", steps=8, seed=0, return_info=False, **options):
    """Samples ``n`` points (or integrates the given ``noise`` rows, (n, dim)) from t = 0 to 1 with
    ``solver`` (euler, midpoint, heun, rk4: ``steps`` fixed steps; dopri5: ``rtol``/``atol``).
    Returns the (n, dim) float32 array, and with ``return_info`` also the CLI's summary (nfe, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.npy")
        args = ["sample", "--model", str(model), "--solver", solver, "--steps", str(steps), "--seed", str(seed),
                "--out", out, *_options(options)]
        if noise is not None:
            noise = np.ascontiguousarray(noise, dtype=np.float32)
            if noise.ndim != 2:
                raise ValueError(f"noise: shape {noise.shape}, expected (n, dim)")
            np.save(os.path.join(tmp, "x0.npy"), noise)
            args += ["--noise", os.path.join(tmp, "x0.npy")]
        else:
            args += ["--n", str(n)]
        info = _run(args)
        x = np.load(out)
    return (x, info) if return_info else x


def load(model):
    """The TorchScript module of a model.pt and its otgen metadata (dict)."""
    import torch

    extra = {"otgen.json": ""}
    m = torch.jit.load(str(model), map_location="cpu", _extra_files=extra)
    return m, json.loads(extra["otgen.json"])
