"""Semidiscrete optimal transport: fit the dual potential once, then pair any fresh noise with data.

Maths (SPEC.md §1), cost ``c(x, y) = |x - y|^2 / 2`` by default::

    f_g(x) = -eps log sum_j b_j exp((g_j - c(x, y_j)) / eps)     (hard max at eps = 0)
    F(g)   = E_{x ~ N(0, I)}[f_g(x)] + <b, g>                     concave in g
    dF/dg  = b - E_x[s(x)],  s(x)_j = softmax_j(log b_j + (g_j - c(x, y_j)) / eps)

``fit`` runs stochastic gradient ascent on F with fresh noise every step and returns an averaged
(EMA or Polyak) potential, centred. POT and OTT-JAX use ``|x - y|^2``: their epsilon and potentials
are twice otgen's.
"""

import math
import os

import numpy as np

from . import _otgen
from ._progress import resolve as _resolve_progress
from .ot import warn_unless_converged

__all__ = ["SemidiscreteOT", "SemidiscreteResult"]


def _float32_points(a, name):
    """float32 C-contiguous view of a real array (no copy when it already is); ValueError otherwise."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name}: dtype {a.dtype} is not supported, expected a real numeric array")
    return np.ascontiguousarray(a, dtype=np.float32)


class SemidiscreteResult:
    """The outcome of :meth:`SemidiscreteOT.fit`.

    Attributes
    ----------
    g : ndarray (N,) float32
        The averaged potential, centred (per class for per-class conditioning).
    history : dict of ndarray
        ``step, chi2, chi2_sd, tv, tv_bound, loss, lr, epsilon, seconds``; ``chi2``/``chi2_sd``/``tv``/
        ``tv_bound`` are NaN between checks (``tv_bound``: eps = 0 only, see :meth:`SemidiscreteOT.check`).
    converged : bool
        A chi2 stopping rule was met.
    termination : str
        ``converged``, ``max_steps`` or ``numerical_failure`` (``loaded`` for
        :meth:`SemidiscreteOT.from_potential`); ``message`` says more.
    stopped_by : str
        The rule that ended the run: ``target_chi2``, ``chi2_threshold``, ``steps``, ``time_limit`` or
        ``numerical_failure``.
    resolved : dict
        What the automatic defaults resolved to: ``init``, ``lr``, ``lr_final``, ``gap_scale``,
        ``lr_scale``, ``chi2_every``, ``chi2_repeats``.
    epsilon : float
        The absolute epsilon used; ``reference_cost_std`` is std(C) when epsilon was relative.
    int8_screen : bool
        The eps = 0 searches used the exact int8 screen (data on an 8-bit lattice, AVX-512 VNNI).
    engine : str
        The path of the eps = 0 searches: ``vnni`` (int8 screen), ``avx512bf16`` (bf16 screen) or
        ``fp32``; ``fp32`` at eps > 0 (softmax sums). See ``engine=`` of :class:`SemidiscreteOT`.
    pca_basis : ndarray (K, d) float32 or None
        PCA-reduced matching (``pca=K``): the orthonormal basis the potential was fitted in.
    """

    def __init__(self, d):
        self.g = d["g"]
        self.history = d["history"]
        self.termination = d["termination"]
        self.message = d["message"]
        self.epsilon = d["epsilon"]
        self.steps = d["steps"]
        self.chi2 = d["chi2"]
        self.reference_cost_std = d["reference_cost_std"]
        self.int8_screen = d["int8_screen"]
        self.engine = d["engine"]
        self.seconds = d["seconds"]
        self.stopped_by = d["stopped_by"]
        self.resolved = d["resolved"]
        self.pca_basis = d.get("pca_basis")

    @property
    def converged(self):
        return self.termination == "converged"

    def __repr__(self):
        chi2 = "None" if self.chi2 is None else f"{self.chi2:.4g}"
        return (f"SemidiscreteResult(N={self.g.shape[0]}, steps={self.steps}, chi2={chi2}, "
                f"termination={self.termination!r}, epsilon={self.epsilon:.4g}, seconds={self.seconds:.3g})")


class SemidiscreteOT:
    """Semidiscrete OT solver between N(0, I_d) noise and a weighted point cloud.

    Parameters
    ----------
    epsilon : float
        Entropic regularisation (0 = unregularised, hard assignment). With ``relative_epsilon`` it is a
        multiple of std(C) over a reference batch (1024 noise draws x up to 4096 points).
    batch_size, steps : int
        Noise draws per step; maximum number of steps.
    optimizer : {"sgd", "adam"}
    lr, lr_final, schedule : step size at step 0 and at the end (``constant``, ``linear``, ``cosine``).
        ``None`` (default) = automatic, from the data (docs/semidiscrete.md, "Automatic defaults").
    averaging : {"poly", "ema", "polyak", "none"}
        The returned iterate (the last one is noisy); ``poly_gamma`` / ``ema_decay`` / ``polyak_start``.
    init : {"auto", "zero", "half-norm", "gaussian"}
        The starting potential when no ``g0`` is given.
    target_chi2 : float
        Default 0.01: stop at the first check where chi2 + 2 sd <= target_chi2 (0 = no target).
    time_limit : float
        Stop after this many seconds (0 = none).
    chi2_every, chi2_repeats, chi2_threshold : the checks: chi2 of the averaged g on ``chi2_repeats``
        fresh batches every ``chi2_every`` steps (``None`` = automatic); also stop when the estimate
        alone is <= chi2_threshold (0 = never).
    warmup_delta, warmup_steps : epsilon warm-up from eps + delta down to eps.
    cost : {"sqeuclidean_half", "dot"}
    class_penalty : float
        With labels: beta of the augmented cost c + beta [k != l]; inf = one potential per class.
    seed, threads : reproducibility (same seed and threads = same bits) and parallelism (0 = all cores).
    progress : bool, callable or tqdm-like bar
        Default off. ``True``: progress on stderr (a bar on a terminal, else a line every few seconds);
        ``progress(step, total, metrics)`` (metrics: ``chi2`` once measured) or a tqdm bar: see
        ``otgen._progress``. ``fit(..., progress=...)`` overrides it for one fit.
    int8_screen : bool
        Default True: eps = 0 searches on data on an 8-bit lattice (images) use the exact int8 screen
        when the CPU has AVX-512 VNNI (about 4x faster); False turns it off.
    engine : {"auto", "fp32", "vnni", "avx512bf16", "amx"}
        The eps = 0 argmax path (docs/scores.md). Default ``auto``: the int8 screen for 8-bit lattice
        data with N d >= 2^17 or on OpenBLAS's slow fallback kernels (smaller sets are faster in float32
        otherwise; ``vnni`` screens any size), else for d >= 32 the exact bf16 screen: on AMX-BF16 tiles
        (``amx``) when the CPU has them, else with AVX512-BF16 (``avx512bf16``) where OpenBLAS runs
        non-FMA kernels (faster there), else float32. The screens return the argmax of the scores
        evaluated in double. A path the CPU lacks raises ValueError naming ``engine``.
    pca : int or None
        PCA-reduced matching (docs/semidiscrete.md): fit and pair in the span of the top ``pca``
        principal directions of the data (1 <= pca <= d; the covariance weighted by ``weights``). The
        noise stays d-dimensional: every call projects it. None or 0 = the full space.

    Under mpirun (a build with MPI), ``fit``, ``assign``, ``sample`` and ``check`` shard the data by rows
    across the ranks: every rank passes the same whole arrays and gets the whole result, equal to one
    process's; every rank must make these calls in the same order (docs/dist.md, "Python under mpirun").
    """

    def __init__(self, epsilon=0.0, batch_size=1024, steps=10000, optimizer="sgd", lr=None, seed=0, threads=0,
                 progress=False, cost="sqeuclidean_half", class_penalty=math.inf, target_chi2=0.01, time_limit=0.0,
                 pca=None, **options):
        if pca is not None and (isinstance(pca, bool) or int(pca) != pca or pca < 0):
            raise ValueError(f"pca: {pca!r}, expected None or an integer in [1, d] (the number of principal directions)")
        # Types and names are checked by the C++ option table at fit(): no silent int() / float() here.
        self.options = dict(epsilon=epsilon, batch_size=batch_size, steps=steps, optimizer=optimizer, lr=lr,
                            cost=cost, class_penalty=class_penalty, target_chi2=target_chi2, time_limit=time_limit,
                            pca=0 if pca is None else int(pca), **options)
        self.seed, self.threads, self.progress = int(seed), int(threads), progress
        self.y = self.weights = self.labels = self.result = None
        self._prepared = None

    def __repr__(self):
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"SemidiscreteOT({opts}, seed={self.seed})"

    def fit(self, y, weights=None, labels=None, g0=None, progress=None):
        """Fit the potential for target points ``y`` (N, d) with weights ``weights`` (N,; default uniform,
        must sum to 1; zeros are masked) and optional class ``labels`` (N,) int. ``g0`` warm-starts;
        ``progress`` (default: the constructor's) as in the class docstring.
        Returns a :class:`SemidiscreteResult`; the solver keeps it for :meth:`assign` and friends."""
        self.y = _float32_points(y, "y")  # kept (once converted) for assign / sample / check
        if self.options["pca"] > (self.y.shape[1] if self.y.ndim == 2 else 1):
            raise ValueError(f"pca: {self.options['pca']}, expected an integer in [1, d] = [1, {self.y.shape[1]}] "
                             "(the data's dimension)")
        self.weights, self.labels = weights, labels
        self._prepared = None
        stderr, callback = _resolve_progress(self.progress if progress is None else progress)
        self.result = SemidiscreteResult(_otgen.sdot_fit(self.y, weights, labels, g0, self.options, self.seed,
                                                         self.threads, stderr, callback))
        if self.result.termination == "numerical_failure":  # the step limit is a normal stop here
            warn_unless_converged("SemidiscreteOT.fit", self.result.termination, self.result.message)
        return self.result

    # The fitted map, prepared once for every later call: the data are not re-scanned for NaN (fit()
    # validated them), |y|^2 and the int8 screen of 8-bit image data are built once.
    def _map(self):
        if self.result is None:
            raise ValueError("SemidiscreteOT: call fit(y) first")
        if self._prepared is None:
            self._prepared = _otgen.SdotMap(
                y=self.y, g=self.result.g, weights=self.weights, labels=self.labels, epsilon=self.result.epsilon,
                cost=self.options["cost"], class_penalty=self.options["class_penalty"], check_y=False,
                threads=self.threads, int8_screen=self.options.get("int8_screen", True),
                engine=self.options.get("engine", "auto"), pca_basis=self.result.pca_basis)
        return self._prepared

    @property
    def int8_screen(self):
        """Whether the eps = 0 searches of the fitted map use the exact int8 screen (data on an 8-bit
        lattice, AVX-512 VNNI CPU)."""
        return self._map().int8_screen

    @property
    def engine(self):
        """The path of the fitted map's searches: ``vnni``, ``amx``, ``avx512bf16`` or ``fp32`` (see ``engine=``)."""
        return self._map().engine

    def assign(self, x, labels=None):
        """Index of the data point each noise row ``x`` (n, d) is paired with: ``argmax_j g_j - c(x, y_j)``
        (the eps = 0 map). ``labels``: the class of each noise row for conditional maps."""
        return self._map().assign(x=x, x_labels=labels, threads=self.threads)

    def sample(self, x, seed=0, labels=None):
        """Draw ``j ~ s(x)`` per row by Gumbel-max (eps > 0; equals :meth:`assign` at eps = 0). Depends on
        ``seed`` only, not on the thread count: the draws of ``otgen sdot assign --noise X --epsilon E
        --seed S`` (stream (seed, assign, 0), docs/ARCHITECTURE.md)."""
        return self._map().assign(x=x, x_labels=labels, sample=True, seed=_otgen.stream_key(int(seed), "assign"),
                                  threads=self.threads)

    def noise(self, n, seed=0):
        """``n`` draws of N(0, I) (n, d) float32, and for a conditional map their classes drawn with the
        class weights: ``x`` or ``(x, labels)``. The noise of ``otgen sdot assign --n N --seed S``."""
        self._map()
        x = _otgen.noise(int(n), self.y.shape[1], seed=int(seed), threads=self.threads)
        if self.labels is None:
            return x
        return x, _otgen.noise_classes(self._class_weights(), int(n), seed=int(seed))

    def _class_weights(self):
        labels = np.asarray(self.labels, dtype=np.int64)
        b = np.full(len(labels), 1.0 / len(labels)) if self.weights is None else np.asarray(self.weights, np.float64)
        return np.bincount(labels, weights=b, minlength=int(labels.max()) + 1)

    @classmethod
    def from_potential(cls, y, g, weights=None, labels=None, epsilon=0.0, **options):
        """A solver holding a potential fitted elsewhere (``otgen sdot fit --out g.npy``), without refitting:
        ``y`` (N, d), ``g`` (N,) or the path of its .npy, and the ``weights`` / ``labels`` / ``epsilon`` it
        was fitted with; the other keyword arguments are those of the constructor (``cost``,
        ``class_penalty``, ``threads``...). A path's sidecar ``g.npy.json`` (written by the CLI's fit) must
        describe this data, labels, weights and cost, else ValueError (``allow_foreign_potential=True``
        skips the check). A potential fitted with ``--pca K`` brings its basis: the sidecar names it and
        ``g.npy.pca.npy`` beside it is read (ValueError naming ``g`` when it is missing or differs);
        for an array ``g``, pass ``pca_basis=`` (K, d)."""
        allow_foreign = bool(options.pop("allow_foreign_potential", False))
        basis = options.pop("pca_basis", None)
        sd = cls(epsilon=epsilon, **options)
        sd.y = _float32_points(y, "y")
        if isinstance(g, (str, os.PathLike)):  # a .npy, checked against its sidecar g.npy.json if any
            path, g = os.fspath(g), np.load(g)
            if not allow_foreign:
                _otgen.check_potential_meta(path, sd.y, labels, weights, float(epsilon), sd.options["cost"],
                                            sd.options["class_penalty"])
            if basis is None:
                basis = _otgen.read_potential_basis(path, sd.y.shape[1] if sd.y.ndim == 2 else 1)
        g = np.ascontiguousarray(g, dtype=np.float32)
        if g.shape != (sd.y.shape[0],):
            raise ValueError(f"g: shape {g.shape}, expected ({sd.y.shape[0]},): one value per point of y")
        if not np.all(np.isfinite(g)):
            raise ValueError("g: non-finite values, expected a finite potential")
        sd.weights, sd.labels = weights, labels
        sd.result = SemidiscreteResult({"g": g, "epsilon": float(epsilon), "history": {}, "steps": 0, "chi2": None,
                                        "reference_cost_std": None, "int8_screen": False, "engine": None,
                                        "seconds": 0.0,
                                        "termination": "loaded", "message": "loaded with from_potential",
                                        "stopped_by": "loaded", "resolved": {},
                                        "pca_basis": None if basis is None else np.ascontiguousarray(basis, np.float32)})
        sd._map()  # validates y, weights and labels against g now
        return sd

    def topk(self, x, k, labels=None):
        """The ``k`` best data indices per noise row, best first: (n, k) int64."""
        return self._map().assign(x=x, x_labels=labels, k=k, threads=self.threads)

    def check(self, batch=1024, repeats=16, seed=1):
        """Marginal check on fresh noise: dict with ``chi2`` (unbiased, SPEC.md §1), ``tv``, ``tv_floor``
        (eps = 0: the TV of a perfect potential's sample of the same size), ``chi2_sd`` and ``tv_bound``
        (eps = 0: the estimate's standard deviation, and 0.5 sqrt(chi2 + 2 chi2_sd) >= TV of the true
        marginal), ``min_ratio``, ``max_ratio``, ``empty``, ``draws``."""
        return self._map().check(batch=batch, repeats=repeats, seed=seed, threads=self.threads)

def _options_section():
    """The constructor's option list, generated from the C++ option table (otgen/ot/sdot_options.h) that
    also generates the CLI's `sdot fit` flags and the run record: every option, spelled one way."""
    lines = ["", "    All options", "    -----------",
             "    Generated from the option table shared with the CLI (``otgen sdot fit --help``): keyword, the CLI",
             "    flag, the default (``auto`` = None: from the data), and what it does.", ""]
    for o in _otgen.sdot_options():
        default = "None (auto)" if o["auto"] and o["default"] == "auto" else o["default"]
        kind = f"one of {o['choices']}" if o["choices"] else o["kind"]
        lines.append(f"    ``{o['name']}`` ({kind}; CLI ``{o['flag']}``; default {default})")
        lines.append(f"        {o['help']}")
    return "\n".join(lines) + "\n"


SemidiscreteOT.__doc__ += _options_section()
