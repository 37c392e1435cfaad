"""otgen: optimal-transport generative modelling, from Python.

The compiled core (C++) does the work; this package gives it a numpy/PyTorch face. Arrays are
float32 row-major ``(n, d)``; float32 C-contiguous inputs are used without a copy, other real dtypes are
converted once. Invalid input raises ``ValueError`` with otgen's message, which names the argument,
the value and what was expected.

Conventions (see SPEC.md): time runs from noise (t = 0) to data (t = 1); the default cost is
``c(x, y) = |x - y|^2 / 2`` -- POT and OTT-JAX use ``|x - y|^2``, so their epsilon and potentials
are twice otgen's.
"""

from . import _otgen
from . import metrics, wfr
from ._otgen import __version__, dataset_names
from .ot import SinkhornResult, exact_assignment, sinkhorn
from .semidiscrete import SemidiscreteOT, SemidiscreteResult

__all__ = ["__version__", "dataset_names", "load_dataset", "metrics", "scores", "wfr", "SemidiscreteOT",
           "SemidiscreteResult", "exact_assignment", "sinkhorn", "SinkhornResult"]


def load_dataset(name, n=0, seed=0, shuffle=False, test_split=False, path="", labels_path=""):
    """Load or generate a dataset.

    Parameters
    ----------
    name : str
        One of :func:`dataset_names`: ``fashion-mnist`` (60000 x 784), ``digits`` (1797 x 64), ``npy``
        (``path`` and optional ``labels_path``), or a seeded 2-D generator (``8gaussians``, ``moons``,
        ``checkerboard``, ``spirals``, ``gaussian-mixture``).
    n : int
        Number of points: the first ``n`` of a real dataset (after a seeded shuffle if ``shuffle``), or
        ``n`` draws of a generator (default 1000). 0 = all / default.
    seed : int
        Seed of the generators and of the shuffle.

    Returns
    -------
    x : ndarray (n, d) float32
        Points; images are scaled to [-1, 1].
    labels : ndarray (n,) int64 or None
    num_classes : int
    """
    return _otgen.load_dataset(name, n=n, seed=seed, shuffle=shuffle, test_split=test_split, path=path,
                               labels_path=labels_path)


class _Scores:
    """The score engine: fused reductions over ``S_ij = <x_i, y_j> + h_j`` (never storing S).

    ``row_argmax(x, y, h=None, engine="auto")`` -> (index int64, value float32): the maximum inner
    product search; ``engine`` picks the path (``auto|fp32|vnni|avx512bf16|amx``, docs/scores.md; the
    screens return the argmax of the scores in double). ``argmax_engine(d, engine, m)``: the path taken
    for m columns (default a large set);
    ``cpu_features()``: what this CPU offers.
    ``row_logsumexp(x, y, h=None, scale=1, log_b=None)`` -> ``log sum_j exp(scale S_ij + log_b_j)``.
    ``row_topk(x, y, k, h=None, engine="auto")`` -> (index, value), each (n, k), best first.
    ``softmax_column_sums(x, y, h=None, scale=1, log_b=None)`` -> (column sums of the row softmax of
    ``scale S_ij + log_b_j`` (m,) float64, row log-sum-exp (n,)): the semidiscrete gradient.
    ``row_gumbel_argmax(x, y, h=None, scale=1, log_b=None, seed=0)`` -> one draw per row from that
    softmax (Gumbel-max keyed by (seed, i, j): independent of threads).
    ``kernel_row_logsumexp(x, y, alpha, log_w=None)`` -> ``log sum_j exp(log_w_j - alpha |x_i - y_j|^2)``.
    ``h_j = -inf`` or ``log_b_j = -inf`` masks column j.
    """

    row_argmax = staticmethod(_otgen.row_argmax)
    argmax_engine = staticmethod(_otgen.argmax_engine)
    cpu_features = staticmethod(_otgen.cpu_features)
    row_topk = staticmethod(_otgen.row_topk)
    row_logsumexp = staticmethod(_otgen.row_logsumexp)
    softmax_column_sums = staticmethod(_otgen.softmax_column_sums)
    row_gumbel_argmax = staticmethod(_otgen.row_gumbel_argmax)
    kernel_row_logsumexp = staticmethod(_otgen.kernel_row_logsumexp)


scores = _Scores()
