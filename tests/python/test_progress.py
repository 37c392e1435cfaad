"""The progress= keyword of the long calls: off by default, a callable sees increasing steps with the
metrics of the C++ loop (chi2, ess, loss), a tqdm-compatible bar is advanced, an exception in the
callback ends the run. OTGEN_PROGRESS_INTERVAL=0 makes every step an event (no timing in the tests)."""

import numpy as np
import pytest

import otgen


@pytest.fixture
def every_step(monkeypatch):
    monkeypatch.setenv("OTGEN_PROGRESS_INTERVAL", "0")


def small_fit():
    y = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    return y, otgen.SemidiscreteOT(steps=30, batch_size=64, lr=1.0, chi2_every=10, chi2_threshold=0, threads=1)


def test_fit_callback_sees_every_step_and_the_chi2_of_the_history(every_step, capfd):
    y, sd = small_fit()
    calls = []
    res = sd.fit(y, progress=lambda step, total, metrics: calls.append((step, total, dict(metrics))))
    assert [c[0] for c in calls] == list(range(1, 31)) + [30]  # every step, then the end
    assert all(c[1] == 30 for c in calls)
    assert all("chi2" not in c[2] for c in calls[:9])
    h = res.history
    for step in (10, 20, 30):
        assert calls[step - 1][2]["chi2"] == h["chi2"][list(h["step"]).index(step)]
    assert capfd.readouterr().err == ""  # a callback, not stderr


def test_fit_shows_nothing_by_default(every_step, capfd):
    y, sd = small_fit()
    sd.fit(y)
    assert capfd.readouterr().err == ""


def test_fit_progress_true_writes_log_lines_to_a_piped_stderr(every_step, capfd):
    y, sd = small_fit()
    sd.fit(y, progress=True)
    lines = [l for l in capfd.readouterr().err.splitlines() if l.startswith("sdot fit: step ")]
    assert len(lines) == 31 and lines[0].startswith("sdot fit: step 1/30 (")
    assert "steps/s, eta" in lines[-1] and ", chi2 " in lines[-1]


class FakeTqdm:
    def __init__(self):
        self.n, self.total, self.postfix = 0, None, None

    def update(self, k):
        assert k > 0
        self.n += k

    def set_postfix(self, d, refresh=True):
        self.postfix = dict(d)


def test_a_tqdm_compatible_bar_is_advanced_to_the_last_step(every_step):
    y, sd = small_fit()
    bar = FakeTqdm()
    sd.fit(y, progress=bar)
    assert (bar.n, bar.total) == (30, 30) and "chi2" in bar.postfix


def test_an_exception_in_the_callback_ends_the_fit():
    y, sd = small_fit()

    def stop(step, total, metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sd.fit(y, progress=stop)
    with pytest.raises(ValueError, match="progress: 3"):
        sd.fit(y, progress=3)


def test_wfr_sample_callback_sees_the_ess(every_step):
    calls = []
    r = otgen.wfr.sample("doublewell", sampler="wfr", n_particles=50, steps=20, threads=1,
                         progress=lambda step, total, metrics: calls.append((step, total, dict(metrics))))
    assert [c[0] for c in calls] == list(range(1, 21)) + [20]
    assert calls[-1][2]["ess"] == pytest.approx(r.trace["ess"][-1])


def test_flow_train_callback_gets_the_cli_progress(every_step, tmp_path):
    pytest.importorskip("torch")
    import otgen.flow

    np.save(tmp_path / "y.npy", np.random.default_rng(1).normal(size=(100, 2)).astype(np.float32))
    calls = []
    otgen.flow.train(str(tmp_path / "y.npy"), str(tmp_path / "run"), steps=12, batch=32, width=16, depth=2,
                     progress=lambda step, total, metrics: calls.append((step, total, dict(metrics))))
    steps = [c[0] for c in calls]
    assert steps == sorted(steps) and steps[-1] == 12 and len(steps) >= 12
    assert all(c[1] == 12 and np.isfinite(c[2]["loss"]) for c in calls)
