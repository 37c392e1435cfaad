"""otgen sdot against POT: the semidiscrete potential equals the target-side dual of the discrete OT
problem between a large noise sample and the data (ot.emd, network simplex), up to POT's convention:
POT's cost |x - y|^2 makes its potentials twice otgen's (|x - y|^2 / 2)."""
import json

import numpy as np
import ot
import pytest


def test_fit_matches_discretised_pot_emd_duals(cli, tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(6, 2)).astype(np.float32) * 1.5
    b = np.array([0.1, 0.25, 0.15, 0.2, 0.2, 0.1])
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "b.npy", b)
    r = cli("sdot", "fit", "--data", tmp_path / "y.npy", "--weights", tmp_path / "b.npy", "--steps", 4000,
            "--batch", 1024, "--optimizer", "adam", "--lr", 0.003, "--lr-final", 1e-5, "--averaging", "polyak",
            "--chi2-every", 4000, "--chi2-threshold", 0, "--target-chi2", 0, "--seed", 1, "--threads", 1, "--quiet",
            "--out", tmp_path / "g.npy")
    assert json.loads(r.stdout)["termination"] == "max_steps"
    g = np.load(tmp_path / "g.npy").astype(np.float64)
    # Independent marginal: a numpy argmax over 2e6 fresh draws puts mass b_j in each cell.
    h = g - 0.5 * (y.astype(np.float64) ** 2).sum(1)
    xs = np.random.default_rng(9).normal(size=(2_000_000, 2))
    m = np.bincount(np.argmax(xs @ y.T.astype(np.float64) + h, axis=1), minlength=6) / len(xs)
    assert 0.5 * np.abs(m - b).sum() < 0.005, m
    # Discretised reference: M noise draws with uniform weights against (y, b), exact OT by POT. Its
    # target duals approximate g up to the discretisation error (~0.05 here at M = 20000).
    M = 20000
    x = np.random.default_rng(1).normal(size=(M, 2))
    C = ot.dist(x, y.astype(np.float64))  # |x - y|^2 (POT's "sqeuclidean")
    _, log = ot.emd(np.full(M, 1.0 / M), b, C, log=True, numItermax=10_000_000)
    v = log["v"] / 2.0  # POT's potentials are twice otgen's
    v -= v.mean()
    assert np.abs(g - v).max() < 0.1, (g, v)
    assert np.abs(v).max() > 0.3  # the comparison has power: g is far from 0


def test_check_reports_marginal_of_zero_potential_on_symmetric_square(cli, tmp_path):
    y = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float32)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "g.npy", np.zeros(4, dtype=np.float32))
    st = json.loads(cli("sdot", "check", "--data", tmp_path / "y.npy", "--potential", tmp_path / "g.npy",
                        "--draws", 40000, "--seed", 3).stdout)
    assert abs(st["chi2"]) < 0.01
    assert st["tv"] < 0.02
    assert st["empty"] == 0
    # A shifted potential moves mass: otgen's chi2 matches the cell masses of an independent numpy argmax
    # over 2e6 draws (the square's norms are equal, so the cells are argmax_j <x, y_j> + g_j).
    g = np.array([0.5, 0, 0, 0], dtype=np.float32)
    np.save(tmp_path / "g1.npy", g)
    st = json.loads(cli("sdot", "check", "--data", tmp_path / "y.npy", "--potential", tmp_path / "g1.npy",
                        "--draws", 200000, "--seed", 4).stdout)
    x = np.random.default_rng(5).normal(size=(2_000_000, 2))
    m = np.bincount(np.argmax(x @ y.T.astype(np.float64) + g, axis=1), minlength=4) / len(x)
    chi2 = np.sum(m ** 2 / 0.25) - 1
    assert chi2 > 0.05
    assert st["chi2"] == pytest.approx(chi2, abs=0.005)
    assert st["tv"] == pytest.approx(0.5 * np.abs(m - 0.25).sum(), abs=0.005)


def test_python_fit_stops_on_the_target_or_the_time_limit_and_says_which():
    import otgen
    y = np.sort(np.random.default_rng(2).normal(size=(40, 1))).astype(np.float32)
    sd = otgen.SemidiscreteOT(seed=1, threads=1, target_chi2=0.02, chi2_every=25, chi2_repeats=8)
    r = sd.fit(y)
    assert r.stopped_by == "target_chi2" and r.converged, r.message
    checks = ~np.isnan(r.history["chi2"])
    upper = r.history["chi2"][checks] + 2 * r.history["chi2_sd"][checks]
    assert upper[-1] <= 0.02 and np.all(upper[:-1] > 0.02), upper
    assert r.resolved["lr"] > 0 and r.resolved["chi2_every"] == 25
    # Independent check with numpy: hard assignments of fresh draws against h = g - y^2 / 2.
    h = r.g.astype(np.float64) - 0.5 * y[:, 0].astype(np.float64) ** 2
    xs = np.random.default_rng(5).normal(size=400_000)
    m = np.bincount(np.argmax(np.outer(xs, y[:, 0]) + h, axis=1), minlength=40) / len(xs)
    assert 40 * (m ** 2).sum() - 1 < 0.03
    t = otgen.SemidiscreteOT(seed=1, threads=1, time_limit=1e-9, target_chi2=0).fit(y)
    assert t.stopped_by == "time_limit" and t.steps == 1 and t.termination == "max_steps"
    with pytest.raises(ValueError, match="target_chi2"):
        otgen.SemidiscreteOT(target_chi2=-1).fit(y)
