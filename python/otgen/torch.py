"""PyTorch glue: OT couplings that feed a user's own flow-matching training loop.

    import torch, otgen, otgen.torch
    y = torch.as_tensor(otgen.load_dataset("digits")[0])
    sd = otgen.SemidiscreteOT(steps=3000, batch_size=256).fit(y.numpy())
    coupling = otgen.torch.SemidiscreteCoupling(y, sd.g, batch_size=256, seed=0)
    for step, (x0, x1) in zip(range(1000), coupling):
        t = torch.rand(len(x0), 1)
        loss = ((model(t, (1 - t) * x0 + t * x1) - (x1 - x0)) ** 2).mean()

Each coupling draws x0 ~ N(0, I) with its own seeded torch.Generator and pairs it with data rows by
otgen's C++ samplers; with labels it also yields the class of each pair (for conditional models).
"""

import numpy as np
import torch

from . import _otgen

__all__ = ["SemidiscreteCoupling", "BatchOTCoupling", "IndependentCoupling"]


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
        self.generator = torch.Generator().manual_seed(self.seed)
        self.step = 0
        if self.labels_np is not None:
            counts = np.bincount(self.labels_np, minlength=num_classes)
            self._class_probs = torch.as_tensor(counts / counts.sum(), dtype=torch.float64)

    @property
    def name(self):
        return self._c.name

    def sample(self, batch_size=None, labels=None):
        """One batch: ``(x0, x1)`` or, for labelled data, ``(x0, x1, label)``. ``labels`` (conditional
        only) fixes the class of each noise row; by default classes are drawn with the data's frequencies."""
        n = self.batch_size if batch_size is None else int(batch_size)
        x0 = torch.randn(n, self.y.shape[1], generator=self.generator)
        noise_labels = None
        if self.labels_np is not None:
            if labels is None:
                labels = torch.multinomial(self._class_probs, n, replacement=True, generator=self.generator)
            noise_labels = np.ascontiguousarray(torch.as_tensor(labels).cpu().numpy(), dtype=np.int64)
        target, pair_labels = self._c.sample(x0.numpy(), noise_labels=noise_labels,
                                             seed=self.seed * 1_000_003 + self.step, threads=self.threads)
        self.step += 1
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
    row drawn from the plan's row; ``epsilon`` relative to std(C) by default)."""

    def __init__(self, y, method="exact", labels=None, epsilon=0.05, relative_epsilon=True,
                 round_to_permutation=False, batch_size=256, seed=0, threads=0):
        super().__init__(method, y, labels, batch_size, seed, threads, epsilon=float(epsilon),
                         relative_epsilon=relative_epsilon, round_to_permutation=round_to_permutation)


class IndependentCoupling(_CouplingBase):
    """Independent pairs: noise with uniformly drawn data rows (I-FM)."""

    def __init__(self, y, labels=None, batch_size=256, seed=0, threads=0):
        super().__init__("independent", y, labels, batch_size, seed, threads)
