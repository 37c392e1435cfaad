"""Batch (minibatch) optimal transport between two point clouds, cost ``|x - y|^2 / 2``."""

import warnings

from . import _otgen

__all__ = ["exact_assignment", "sinkhorn", "SinkhornResult"]


def exact_assignment(x, y, solver="jv", threads=0):
    r"""Optimal assignment between ``x`` (n, d) and ``y`` (n, d) with uniform weights.

    Minimises :math:`\sum_i |x_i - y_{\sigma(i)}|^2 / 2` over permutations (dense Jonker-Volgenant, or
    LEMON's network simplex with ``solver="network_simplex"``).

    Returns
    -------
    perm : ndarray (n,) int64
        A permutation: row i is matched to ``y[perm[i]]`` (never duplicates).
    cost : float
        The optimal total cost.
    """
    return _otgen.exact_assignment(x, y, solver=solver, threads=threads)


class SinkhornResult(dict):
    """Sinkhorn output: ``f``, ``g`` (potentials in otgen's convention; POT's are twice these),
    ``epsilon`` (absolute), ``iterations``, ``stages``, ``marginal_error`` (L1 of the rows),
    ``transport_cost`` (<P, C>), ``dual_objective``, ``termination``, ``message``. Keys are also
    attributes."""

    __getattr__ = dict.__getitem__

    @property
    def converged(self):
        return self["termination"] == "converged"

    def __repr__(self):
        return (f"SinkhornResult(iterations={self['iterations']}, marginal_error={self['marginal_error']:.3g}, "
                f"transport_cost={self['transport_cost']:.6g}, epsilon={self['epsilon']:.4g}, "
                f"termination={self['termination']!r})")


#: Sinkhorn's epsilon when none is given, everywhere (CLI and Python): 0.05 x std(C).
DEFAULT_RELATIVE_EPSILON = 0.05


def resolve_epsilon(epsilon, relative_epsilon):
    """One meaning of ``epsilon`` everywhere (docs/batch_ot.md#epsilon): a given epsilon is absolute, or a
    multiple of std(C) with ``relative_epsilon=True``; ``None`` is 0.05 x std(C). -> (epsilon, relative)."""
    if epsilon is None:
        return DEFAULT_RELATIVE_EPSILON, True
    return float(epsilon), bool(relative_epsilon)


def sinkhorn(x, y, epsilon=None, a=None, b=None, relative_epsilon=False, tol=1e-4, max_iterations=10000,
             check_every=1, eps_scaling=True, mode="auto", threads=0):
    r"""Entropic OT by log-domain Sinkhorn between ``x`` (n, d) with weights ``a`` and ``y`` (m, d) with
    weights ``b`` (uniform when None), cost :math:`C_{ij} = |x_i - y_j|^2 / 2`.

    Alternates :math:`f_i = -\varepsilon\,\mathrm{LSE}_j((g_j - C_{ij})/\varepsilon + \log b_j)` and the
    same for g, with epsilon scaling and warm starts, until the L1 row-marginal error is <= ``tol``.
    ``epsilon`` is absolute; ``relative_epsilon=True`` makes it a multiple of std(C); ``None`` (default)
    is 0.05 x std(C), as in the CLI. ``mode="online"`` never stores C.
    """
    epsilon, relative_epsilon = resolve_epsilon(epsilon, relative_epsilon)
    result = SinkhornResult(_otgen.sinkhorn(x, y, a=a, b=b, epsilon=epsilon, relative_epsilon=relative_epsilon, tol=tol,
                                          max_iterations=max_iterations, check_every=check_every,
                                          eps_scaling=eps_scaling, mode=mode, threads=threads))
    warn_unless_converged("sinkhorn", result.termination, result.message)
    return result


def warn_unless_converged(what, termination, message):
    """Never silent: a RuntimeWarning when a solver stopped before its tolerance ("max_steps") or on a
    non-finite value ("numerical_failure"); the result is still returned (docs/RELIABILITY.md)."""
    if termination in ("max_steps", "numerical_failure"):
        warnings.warn(f"{what}: {termination}: {message}", RuntimeWarning, stacklevel=3)
