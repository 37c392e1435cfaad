"""PyTorch glue: OT couplings that feed a user's own flow-matching training loop.

    import torch, otgen, otgen.torch
    y = torch.as_tensor(otgen.load_dataset("digits")[0])
    sd = otgen.SemidiscreteOT(steps=3000, batch_size=256).fit(y.numpy())
    coupling = otgen.torch.SemidiscreteCoupling(y, sd.g, batch_size=256, seed=0)
    for step, (x0, x1) in zip(range(1000), coupling):
        t = torch.rand(len(x0), 1)
        loss = ((model(t, (1 - t) * x0 + t * x1) - (x1 - x0)) ** 2).mean()

Each coupling draws x0 ~ N(0, I) from otgen's counter-based streams and pairs it with data rows by
otgen's C++ samplers; with labels it also yields the class of each pair (for conditional models).
Batch k with seed S uses noise stream (S, noise, k), classes from the data's class weights and the
coupling's draws (S, assign, k) -- the seed rule of docs/ARCHITECTURE.md: the first batch is exactly
what ``otgen sdot assign --n B --seed S [--epsilon E]`` and ``SemidiscreteOT.noise`` / ``sample`` draw.

For torchcfm users, ``SemidiscreteConditionalFlowMatcher`` has the shape of torchcfm's
``ConditionalFlowMatcher``: it takes the user's noise batch and returns ``(t, xt, ut, x1, idx)``::

    FM = otgen.torch.SemidiscreteConditionalFlowMatcher(y, sd.g)
    x0 = torch.randn(256, *y.shape[1:])
    t, xt, ut, x1, idx = FM.sample_location_and_conditional_flow(x0)
    loss = ((model(t, xt) - ut) ** 2).mean()
"""

import numpy as np
import torch

from . import _otgen
from .ot import resolve_epsilon

__all__ = ["SemidiscreteCoupling", "BatchOTCoupling", "IndependentCoupling", "SemidiscreteConditionalFlowMatcher"]


def _as_numpy_f32(y):
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return np.ascontiguousarray(y, dtype=np.float32)


class _CouplingBase:
    def __init__(self, kind, y, labels=None, batch_size=256, seed=0, threads=0, **kw):
        self.y_np = _as_numpy_f32(y)
        self.y = torch.from_numpy(self.y_np)  # shares memory with y_np
        self.labels_np = None if labels is None else np.ascontiguousarray(
            labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels, dtype=np.int64)
        num_classes = 0 if self.labels_np is None else int(self.labels_np.max()) + 1
        self._c = _otgen.make_coupling(kind, self.y_np, labels=self.labels_np, num_classes=num_classes, **kw)
        self.batch_size, self.seed, self.threads = int(batch_size), int(seed), int(threads)
        self.step = 0
        self._class_weights = self._c.class_weights if self.labels_np is not None else None

    @property
    def name(self):
        return self._c.name

    def sample(self, batch_size=None, labels=None):
        """One batch: ``(x0, x1)`` or, for labelled data, ``(x0, x1, label)``. ``labels`` (conditional
        only) fixes the class of each noise row; by default classes are drawn with the data's frequencies."""
        n = self.batch_size if batch_size is None else int(batch_size)
        # Batch k: noise (seed, noise, k), classes from the coupling's class weights, the coupling's
        # draws (seed, assign, k): the first batch is what `otgen sdot assign --n` draws (ARCHITECTURE.md).
        x0_np = _otgen.noise(n, self.y.shape[1], seed=self.seed, step=self.step, threads=self.threads)
        noise_labels = None
        if self.labels_np is not None:
            if labels is None:
                noise_labels = _otgen.noise_classes(self._class_weights, n, seed=self.seed, step=self.step)
            else:
                noise_labels = np.ascontiguousarray(torch.as_tensor(labels).cpu().numpy(), dtype=np.int64)
        target, pair_labels = self._c.sample(x0_np, noise_labels=noise_labels,
                                             seed=_otgen.stream_key(self.seed, "assign", self.step), threads=self.threads)
        self.step += 1
        x0 = torch.from_numpy(x0_np)
        x1 = self.y[torch.from_numpy(target)]
        if pair_labels is None:
            return x0, x1
        return x0, x1, torch.from_numpy(pair_labels)

    def __iter__(self):
        while True:
            yield self.sample()


class SemidiscreteCoupling(_CouplingBase):
    """Pairs fresh noise with data through a fitted semidiscrete potential ``g`` (``SemidiscreteOT``):
    argmax at ``epsilon = 0``, Gumbel-max sampling from s(x) at ``epsilon > 0``. Cost O(B N d) per
    batch with no quadratic-in-B term: the batch size is free."""

    def __init__(self, y, g, epsilon=0.0, labels=None, weights=None, batch_size=256, seed=0, threads=0):
        g = g.g if hasattr(g, "g") else g
        super().__init__("semidiscrete", y, labels, batch_size, seed, threads, g=np.asarray(g, dtype=np.float32),
                         weights=weights, epsilon=float(epsilon))


class BatchOTCoupling(_CouplingBase):
    """Minibatch OT: each batch of noise is matched with an equally large random batch of data by exact
    assignment (``method="exact"``, a permutation) or Sinkhorn (``method="sinkhorn"``, one partner per
    row drawn from the plan's row). ``epsilon`` is absolute, a multiple of std(C) of each batch pair with
    ``relative_epsilon=True``, and 0.05 x std(C) when None (the default), as everywhere in otgen."""

    def __init__(self, y, method="exact", labels=None, epsilon=None, relative_epsilon=False,
                 round_to_permutation=False, batch_size=256, seed=0, threads=0):
        epsilon, relative_epsilon = resolve_epsilon(epsilon, relative_epsilon)
        super().__init__(method, y, labels, batch_size, seed, threads, epsilon=epsilon,
                         relative_epsilon=relative_epsilon, round_to_permutation=round_to_permutation)


class IndependentCoupling(_CouplingBase):
    """Independent pairs: noise with uniformly drawn data rows (I-FM)."""

    def __init__(self, y, labels=None, batch_size=256, seed=0, threads=0):
        super().__init__("independent", y, labels, batch_size, seed, threads)


def _check_points(a, name):
    """(n, *shape) real, finite tensor or array -> (float32 numpy (n, D) C-contiguous, shape)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if not (a.is_floating_point() or a.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
            raise ValueError(f"{name}: dtype {a.dtype} is not supported, expected a real tensor")
        a = a.to(torch.float32).numpy()
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name}: dtype {a.dtype} is not supported, expected a real array")
    if a.ndim < 2:
        raise ValueError(f"{name}: shape {tuple(a.shape)}, expected (n, d) or (n, *shape) with at least 2 dimensions")
    if a.shape[0] < 1 or a[0].size < 1:
        raise ValueError(f"{name}: shape {tuple(a.shape)}, expected at least one row of dimension >= 1")
    flat = np.ascontiguousarray(a.reshape(a.shape[0], -1), dtype=np.float32)
    if not np.isfinite(flat).all():
        bad = int(np.flatnonzero(~np.isfinite(flat).all(1))[0])
        raise ValueError(f"{name}: non-finite value (NaN or inf) in row {bad}, expected finite values")
    return flat, tuple(a.shape[1:])


def _check_labels(a, name, n, num_classes=None):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name}: shape {tuple(a.shape)}, expected ({n},): one class per row")
    if a.dtype.kind not in "iu" and not (a.dtype.kind == "f" and np.all(a == np.round(a))):
        raise ValueError(f"{name}: dtype {a.dtype}, expected integer class labels")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if n and a.min() < 0:
        raise ValueError(f"{name}: label {int(a.min())}, expected classes >= 0")
    if num_classes is not None and n and a.max() >= num_classes:
        raise ValueError(f"{name}: label {int(a.max())}, expected a class of the data, in [0, {num_classes})")
    return a


class SemidiscreteConditionalFlowMatcher:
    """Semidiscrete flow matching (SD-FM) with the interface of torchcfm's ``ConditionalFlowMatcher``.

    torchcfm pairs a given ``x1`` batch with noise; SD-FM instead matches each noise row with the data
    point its fitted semidiscrete potential assigns it to, so the matcher owns the data ``y`` and chooses
    ``x1`` itself. Swap::

        FM = torchcfm.ConditionalFlowMatcher(sigma=0.0)
        t, xt, ut = FM.sample_location_and_conditional_flow(x0, x1)
    for::

        FM = otgen.torch.SemidiscreteConditionalFlowMatcher(y, sd.g)   # sd = SemidiscreteOT().fit(y)
        t, xt, ut, x1, idx = FM.sample_location_and_conditional_flow(x0)

    Parameters
    ----------
    y : tensor or array (N, d) or (N, *shape)
        The data (the discrete target). Image-shaped data are flattened; x0 must have the same per-row
        size and x1 comes back in x0's shape.
    g : array (N,) or SemidiscreteResult
        The fitted potential (``SemidiscreteOT.fit``; per class when fitted with labels).
    epsilon : float
        0: ``idx = argmax_j g_j - |x0 - y_j|^2 / 2`` (the map ``SemidiscreteOT.assign``); > 0: ``idx``
        drawn from ``softmax_j(log b_j + (g_j - |x0 - y_j|^2 / 2) / epsilon)`` by Gumbel-max.
    weights : array (N,), optional
        Target weights b (sum 1; zeros never matched); uniform by default.
    labels : array (N,) int, optional
        Data classes. Then :meth:`sample_location_and_conditional_flow` also returns the class of each
        x1, and ``y0_labels`` (the class of each noise row) matches noise of class k only inside class k
        (needed when ``g`` was fitted per class). Without ``y0_labels`` the match runs over all data.
    sigma : float
        torchcfm's constant noise level: ``x_t = (1 - t) x0 + t x1 + sigma * eps``, eps ~ N(0, I).
    seed : int
        Seeds the torch generator that draws t (and eps) and the Gumbel-max keys (epsilon > 0): the
        same seed and call sequence give the same batches.
    threads : int
        Threads of otgen's matching (0 = all cores).
    pca_basis : array (K, d), optional
        PCA-reduced matching (``SemidiscreteOT(pca=K)``): noise is matched through its projection on
        this basis; taken from ``g`` when ``g`` is the result of a PCA fit.
    """

    def __init__(self, y, g, epsilon=0.0, weights=None, labels=None, sigma=0.0, seed=0, threads=0, pca_basis=None):
        self.y_np, self.shape = _check_points(y, "y")
        self.y = torch.from_numpy(self.y_np)  # (N, D) float32, shares memory with y_np
        n = self.y_np.shape[0]
        if pca_basis is None:  # a SemidiscreteResult of a PCA fit carries its basis
            pca_basis = getattr(g, "pca_basis", None)
        g = np.asarray(g.g if hasattr(g, "g") else g, dtype=np.float32)
        if g.shape != (n,):
            raise ValueError(f"g: shape {g.shape}, expected ({n},): one potential value per data point")
        if not np.isfinite(g).all():
            raise ValueError(f"g: non-finite value at index {int(np.flatnonzero(~np.isfinite(g))[0])}, expected finite")
        if not (np.isfinite(epsilon) and epsilon >= 0):
            raise ValueError(f"epsilon: {epsilon}, expected a finite number >= 0")
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma: {sigma}, expected a finite number >= 0")
        if weights is not None:
            weights = np.asarray(weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else weights,
                                 dtype=np.float64)
            if weights.shape != (n,):
                raise ValueError(f"weights: shape {weights.shape}, expected ({n},): one weight per data point")
        self.labels_np, self.num_classes = None, 0
        if labels is not None:
            self.labels_np = _check_labels(labels, "labels", n)
            self.num_classes = int(self.labels_np.max()) + 1
            self.labels = torch.from_numpy(self.labels_np)
        self.g, self.epsilon, self.sigma = g, float(epsilon), float(sigma)
        self.seed, self.threads = int(seed), int(threads)
        self._c = _otgen.make_coupling("semidiscrete", self.y_np, labels=self.labels_np, num_classes=self.num_classes,
                                       g=g, weights=weights, epsilon=self.epsilon, pca_basis=pca_basis)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.calls = 0

    def match(self, x0, y0_labels=None):
        """Data index of each noise row: ``idx`` (B,) int64 tensor (see ``epsilon``). ``x0`` (B, d) or
        (B, *shape); ``y0_labels`` (B,) the class of each noise row (labelled data only)."""
        x0_np, shape = _check_points(x0, "x0")
        if x0_np.shape[1] != self.y_np.shape[1]:
            raise ValueError(f"x0: shape {(x0_np.shape[0],) + shape}, expected rows of the data's size "
                             f"{self.y_np.shape[1]} (data row shape {self.shape})")
        nl = None
        if y0_labels is not None:
            if self.labels_np is None:
                raise ValueError("y0_labels: given, but the matcher has no data labels (pass labels= to it)")
            nl = _check_labels(y0_labels, "y0_labels", x0_np.shape[0], self.num_classes)
        target, _ = self._c.sample(x0_np, noise_labels=nl, seed=_otgen.stream_key(self.seed, "assign", self.calls),
                                   threads=self.threads)
        self.calls += 1
        return torch.from_numpy(target)

    def _time(self, t, x0):
        B = x0.shape[0]
        if t is None:
            return torch.rand(B, generator=self.generator).to(device=x0.device, dtype=x0.dtype)
        t = torch.as_tensor(t)
        if t.ndim == 0:
            t = t.expand(B)
        if t.shape != (B,):
            hint = " (this matcher chooses x1 itself: call it with x0 only)" if t.ndim >= 2 else ""
            raise ValueError(f"t: shape {tuple(t.shape)}, expected ({B},) or a scalar{hint}")
        if not t.is_floating_point():
            t = t.to(torch.float32)
        if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
            raise ValueError("t: values outside [0, 1] (or NaN), expected times in [0, 1]")
        return t.to(device=x0.device, dtype=x0.dtype)

    def sample_location_and_conditional_flow(self, x0, t=None, return_noise=False, y0_labels=None):
        """Match the noise batch ``x0`` with data and draw a point on each straight path.

        Parameters
        ----------
        x0 : tensor (B, d) or (B, *shape), floating
            Noise (e.g. ``torch.randn``); any device, computations in its dtype.
        t : tensor (B,) or scalar, optional
            Times in [0, 1]; drawn ~ U[0, 1] from the matcher's generator when omitted.
        return_noise : bool
            Also return eps (as torchcfm does).
        y0_labels : tensor (B,) int, optional
            Class of each noise row (labelled matchers): x1 is matched inside that class.

        Returns
        -------
        ``(t, xt, ut, x1, idx)``; labelled matchers add ``y1`` (the class of x1) after ``idx``;
        ``return_noise`` appends ``eps``. ``t`` (B,), ``xt = (1 - t) x0 + t x1 + sigma eps``,
        ``ut = x1 - x0`` and ``x1 = y[idx]`` in x0's shape, dtype and device; ``idx`` (B,) int64 (CPU).
        """
        if not isinstance(x0, torch.Tensor):
            raise ValueError(f"x0: {type(x0).__name__}, expected a torch.Tensor (B, d) or (B, *shape)")
        if not x0.is_floating_point():
            raise ValueError(f"x0: dtype {x0.dtype}, expected a floating tensor")
        idx = self.match(x0, y0_labels)
        t = self._time(t, x0)
        x1 = self.y[idx].reshape(x0.shape).to(device=x0.device, dtype=x0.dtype)
        tb = t.reshape((-1,) + (1,) * (x0.ndim - 1))
        xt = (1 - tb) * x0 + tb * x1
        eps = None
        if self.sigma > 0 or return_noise:
            eps = torch.randn(x0.shape, generator=self.generator).to(device=x0.device, dtype=x0.dtype)
            if self.sigma > 0:
                xt = xt + self.sigma * eps
        ut = x1 - x0
        out = (t, xt, ut, x1, idx)
        if self.labels_np is not None:
            out = out + (self.labels[idx],)
        if return_noise:
            out = out + (eps,)
        return out
