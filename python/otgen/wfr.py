"""Wasserstein-Fisher-Rao particle samplers (SPEC.md §4) for a target pi ~ exp(-V).

Samplers: ``ula``, ``mala`` (baselines), ``birth-death`` (Lu-Lu-Nolen jumps, KDE density),
``wfr`` (Feynman-Kac weights + ESS-triggered resampling), ``smc-wfr`` (Crucinio-Pathiraja),
``tempered-smc`` (geometric path, fixed or adaptive schedule).
"""

import numpy as np

from . import _otgen
from ._progress import resolve as _resolve_progress

__all__ = ["sample", "WfrResult", "left_well_mass"]


class WfrResult(dict):
    """``x`` (N, d) float32 particles, ``logw`` (N,) normalised log-weights (uniform, -log N, for
    the unweighted samplers), ``trace`` (dict of per-step arrays: time, ess, resampled, grad_evals, seconds,
    log_z, lambda), ``steps``, ``resamplings``, ``grad_evals``, ``seconds``, ``log_z``,
    ``termination``, ``message``. Keys are also attributes."""

    __getattr__ = dict.__getitem__

    @property
    def weights(self):
        w = np.exp(self["logw"] - self["logw"].max())
        return w / w.sum()

    def __repr__(self):
        n, d = self["x"].shape
        return (f"WfrResult(particles={n}, d={d}, steps={self['steps']}, resamplings={self['resamplings']}, "
                f"seconds={self['seconds']:.3g}, termination={self['termination']!r})")


def sample(target, sampler="smc-wfr", n_particles=300, step=0.005, steps=1000, init="gaussian", seed=0, H=6.0,
           dim=None, beta=None, bandwidth=None, bandwidth_rule=None, ess_threshold=None,
           resample=None, adaptive=None, mala_moves=None, moves=None, threads=0, progress=False):
    """Run a WFR sampler.

    Parameters
    ----------
    target : str or object
        A built-in name (``doublewell`` with ``H``, ``gaussian`` with ``dim``, ``mixture4-lln``,
        ``mixture4-cp``, ``mixture20d``) or an object with batched ``log_prob(x) -> (n,)`` and
        ``grad_log_prob(x) -> (n, d)`` on float64 (n, d) arrays (then ``dim`` is required).
    init : str or array
        ``"gaussian"``, ``"point:<x>"``, ``"mode:<K>"`` (component K, 1-based, of a mixture), or an
        (N, d) array of starting points.
    beta, bandwidth, bandwidth_rule, ess_threshold, resample, adaptive, mala_moves, moves :
        None (the default) is the sampler's default: ``beta`` 1, ``bandwidth_rule`` "silverman",
        ``resample`` "systematic", ``mala_moves`` True, ``moves`` 1, ``ess_threshold`` 0.5 (smc-wfr:
        resample every step). Setting one the chosen sampler does not use raises ValueError: ``beta``
        and the bandwidths are for birth-death and wfr, ``ess_threshold`` and ``resample`` for wfr,
        smc-wfr and tempered-smc, ``adaptive``, ``mala_moves`` and ``moves`` for tempered-smc.
    progress : bool, callable or tqdm-like bar
        Off by default; ``True``: on stderr; ``progress(step, total, metrics)`` (metrics: ``ess``, and
        ``lambda`` for tempered SMC) or a tqdm bar (see ``otgen._progress``).
    """
    stderr, callback = _resolve_progress(progress)
    if not isinstance(target, str) and dim is None:
        raise ValueError("dim: None, expected the dimension of a Python target")
    if not isinstance(init, str):
        init = np.asarray(init, dtype=np.float32)
        if init.ndim == 2:
            n_particles = init.shape[0]
    return WfrResult(_otgen.wfr_sample(target, dim=1 if dim is None else int(dim), H=H, sampler=sampler,
                                       n_particles=n_particles, step=step, steps=steps, init=init, beta=beta,
                                       bandwidth=bandwidth, bandwidth_rule=bandwidth_rule,
                                       ess_threshold=ess_threshold, resample=resample, adaptive=adaptive,
                                       mala_moves=mala_moves, moves=moves, seed=seed, threads=threads,
                                       progress=stderr, callback=callback))


def left_well_mass(result, H=6.0, tilt=0.5):
    """Weighted mass of the particles left of the barrier top of V = H (x^2 - 1)^2 + tilt x."""
    return _otgen.double_well_left_mass(result["x"], result["logw"], H, tilt)
