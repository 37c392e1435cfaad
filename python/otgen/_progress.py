"""The ``progress=`` keyword of the long calls (SemidiscreteOT.fit, otgen.flow.train, otgen.wfr.sample).

``False`` / ``None`` (the default): nothing. ``True``: otgen's own progress on stderr, as in the CLI (a
bar on a terminal, else a line every OTGEN_PROGRESS_INTERVAL seconds, default 5). A callable:
``progress(step, total, metrics)`` with ``metrics`` a dict such as ``{"chi2": 0.01}`` or ``{"loss": 0.3}``,
called at most every 0.1 s and once at the end (the step may then repeat). A tqdm-compatible bar
(an object with ``update`` and ``n``, e.g. ``tqdm.tqdm()``): advanced to the step, its total set and the
metrics shown with ``set_postfix``; the caller closes it.
"""

__all__ = ["resolve"]


class _TqdmAdapter:
    def __init__(self, bar):
        self.bar = bar

    def __call__(self, step, total, metrics):
        bar = self.bar
        if total and getattr(bar, "total", None) != total:
            bar.total = total
        if metrics and hasattr(bar, "set_postfix"):
            bar.set_postfix(metrics, refresh=False)
        if step > bar.n:
            bar.update(step - bar.n)


def resolve(progress, name="progress"):
    """``progress`` -> (stderr: bool, callback or None); ValueError for anything else."""
    if progress is None or progress is False:
        return False, None
    if progress is True:
        return True, None
    if hasattr(progress, "update") and hasattr(progress, "n"):
        return False, _TqdmAdapter(progress)
    if callable(progress):
        return False, progress
    raise ValueError(f"{name}: {progress!r}, expected True, False, a callable progress(step, total, metrics) "
                     "or a tqdm-compatible bar")
