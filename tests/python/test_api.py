"""The Python API against the CLI (same seeds, same bits) and independent references (faiss, scipy, POT)."""

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.spatial

import otgen


def gaussian(n, d, seed, shift=0.0):
    return (shift + np.random.default_rng(seed).standard_normal((n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def digits():
    x, labels, _ = otgen.load_dataset("digits", n=300, shuffle=True, seed=2)
    return x, labels


def test_semidiscrete_fit_equals_cli_bit_for_bit(cli, tmp_path, digits):
    y, _ = digits
    np.save(tmp_path / "y.npy", y)
    cli("sdot", "fit", "--data", tmp_path / "y.npy", "--steps", 200, "--batch", 128, "--seed", 3, "--threads", 1,
        "--chi2-every", 100, "--out", tmp_path / "g.npy", "--quiet")
    r = otgen.SemidiscreteOT(steps=200, batch_size=128, seed=3, threads=1, chi2_every=100).fit(y)
    np.testing.assert_array_equal(r.g, np.load(tmp_path / "g.npy"))
    assert r.history["step"].shape == r.history["chi2"].shape
    assert "SemidiscreteResult(N=300" in repr(r)


def test_semidiscrete_assign_matches_faiss_and_cli(cli, tmp_path, digits):
    faiss = pytest.importorskip("faiss")  # python3-faiss is installed by make setup
    y, _ = digits
    sd = otgen.SemidiscreteOT(steps=300, batch_size=128, seed=1)
    r = sd.fit(y)
    x = gaussian(200, 64, 5)
    idx = sd.assign(x)
    # eps = 0 map: argmax_j <x, y_j> + g_j - |y_j|^2/2 = inner-product search on [x; 1] . [y; h]
    h = r.g - 0.5 * (y.astype(np.float64) ** 2).sum(1)
    index = faiss.IndexFlatIP(65)
    index.add(np.hstack([y, h[:, None].astype(np.float32)]))
    _, ref = index.search(np.hstack([x, np.ones((200, 1), np.float32)]), 1)
    assert (idx == ref[:, 0]).mean() > 0.99  # float32 near-ties may differ
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "g.npy", r.g)
    np.save(tmp_path / "x.npy", x)
    cli("sdot", "assign", "--data", tmp_path / "y.npy", "--potential", tmp_path / "g.npy", "--noise", tmp_path / "x.npy",
        "--out", tmp_path / "idx.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "idx.npy"), idx)
    assert sd.topk(x, 4)[:, 0].tolist() == idx.tolist()


def test_semidiscrete_int8_screen_is_the_float64_argmax_on_lattice_data(digits):
    # The digits are on a 17-level lattice: the screen (forced: engine vnni) is used, and its assignment is the exact argmax of
    # the scores evaluated in float64 (numpy), not only up to float32 near-ties.
    if not otgen._otgen.int8_screen_supported():
        pytest.skip("no AVX-512 VNNI on this CPU")
    y, _ = digits
    sd = otgen.SemidiscreteOT(steps=300, batch_size=128, seed=1, engine="vnni")
    r = sd.fit(y)
    assert r.int8_screen and sd.int8_screen
    x = gaussian(3000, 64, 6)
    h = r.g.astype(np.float64) - 0.5 * (y.astype(np.float64) ** 2).sum(1)
    ref = np.argmax(x.astype(np.float64) @ y.T.astype(np.float64) + h, axis=1)
    np.testing.assert_array_equal(sd.assign(x), ref)
    plain = otgen.SemidiscreteOT(steps=300, batch_size=128, seed=1, int8_screen=False)
    plain.fit(y)
    assert not plain.int8_screen
    assert (plain.assign(x) == ref).mean() > 0.99  # float32 scores: near-ties may differ
    g_sd = otgen.SemidiscreteOT(steps=50, batch_size=64, seed=1)
    g_sd.fit(gaussian(100, 3, 1))
    assert not g_sd.int8_screen  # not lattice data


def test_engine_paths_bf16_screen_is_the_float64_argmax_and_bad_engines_raise(digits):
    # Non-lattice float data: the bf16 screen, on each kernel the CPU has (avx512bf16: vdpbf16ps; amx:
    # AMX-BF16 tiles), gives numpy's float64 argmax exactly; the path that ran is reported; a path the
    # CPU lacks is a ValueError naming engine.
    y = digits[0] + gaussian(*digits[0].shape, 9) * 1e-3
    x = gaussian(500, 64, 6)
    h = gaussian(len(y), 1, 7)[:, 0]
    ref = np.argmax(x.astype(np.float64) @ y.T.astype(np.float64) + h.astype(np.float64), axis=1)
    features = set(otgen.scores.cpu_features().split())
    needs = {"avx512bf16": {"avx512_bf16"}, "amx": {"avx512_bf16", "amx_bf16"}}
    for engine, need in needs.items():
        if not need <= features:
            with pytest.raises(ValueError, match="invalid engine = '" + engine + "'"):
                otgen.scores.row_argmax(x, y, h, engine=engine)
            with pytest.raises(ValueError, match="engine"):
                otgen.SemidiscreteOT(steps=5, engine=engine).fit(y)
            continue
        idx, _ = otgen.scores.row_argmax(x, y, h, engine=engine)
        np.testing.assert_array_equal(idx, ref)
        ti, _ = otgen.scores.row_topk(x, y, 3, h, engine=engine)
        np.testing.assert_array_equal(ti[:, 0], ref)
        assert otgen.scores.argmax_engine(64, engine) == engine
        sd = otgen.SemidiscreteOT(steps=100, batch_size=128, seed=1, engine=engine)
        r = sd.fit(y)
        assert r.engine == engine and sd.engine == engine
        # The prepared map's packed columns serve assign: numpy's float64 argmax of the map's scores.
        hm = r.g.astype(np.float64) - 0.5 * (y.astype(np.float64) ** 2).sum(1)
        np.testing.assert_array_equal(sd.assign(x), np.argmax(x.astype(np.float64) @ y.T.astype(np.float64) + hm, axis=1))
    # auto: amx where the CPU has it, else the vdpbf16ps screen only by OpenBLAS's kernels, else fp32.
    if needs["amx"] <= features:
        assert otgen.scores.argmax_engine(64) == "amx"
    else:
        assert otgen.scores.argmax_engine(64) in ("avx512bf16", "fp32")
    assert otgen.scores.argmax_engine(31) == "fp32"
    idx32, _ = otgen.scores.row_argmax(x, y, h, engine="fp32")
    assert (idx32 == ref).mean() > 0.99  # float32 scores: near-ties may differ
    assert otgen.SemidiscreteOT(steps=20, engine="fp32").fit(y).engine == "fp32"
    with pytest.raises(ValueError, match="invalid engine = 'bf16'"):
        otgen.scores.row_argmax(x, y, engine="bf16")
    with pytest.raises(ValueError, match="engine"):
        otgen.SemidiscreteOT(steps=5, engine="bf16").fit(y)

def test_semidiscrete_check_and_soft_sampling(digits):
    y, _ = digits
    sd = otgen.SemidiscreteOT(epsilon=0.5, steps=400, batch_size=256, seed=2)
    sd.fit(y)
    c = sd.check(batch=512, repeats=4)
    assert set(c) >= {"chi2", "tv", "min_ratio", "max_ratio", "empty", "draws"}
    x = gaussian(64, 64, 3)
    a, b = sd.sample(x, seed=7), sd.sample(x, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sd.sample(x, seed=8))


def test_exact_assignment_matches_scipy_and_pot():
    ot = pytest.importorskip("ot")
    x, y = gaussian(60, 5, 1), gaussian(60, 5, 2, 0.5)
    perm, cost = otgen.exact_assignment(x, y)
    assert sorted(perm.tolist()) == list(range(60))
    C = 0.5 * scipy.spatial.distance.cdist(x.astype(np.float64), y.astype(np.float64), "sqeuclidean")
    r, c = scipy.optimize.linear_sum_assignment(C)
    assert cost == pytest.approx(C[r, c].sum(), rel=1e-5)
    assert cost / 60 == pytest.approx(ot.emd2(np.full(60, 1 / 60), np.full(60, 1 / 60), C), rel=1e-5)


def test_sinkhorn_matches_pot():
    ot = pytest.importorskip("ot")
    x, y = gaussian(80, 3, 3), gaussian(70, 3, 4, 0.3)
    C = 0.5 * scipy.spatial.distance.cdist(x.astype(np.float64), y.astype(np.float64), "sqeuclidean")
    res = otgen.sinkhorn(x, y, epsilon=0.5, tol=1e-7)
    assert res.converged and res.marginal_error <= 1e-7
    a, b = np.full(80, 1 / 80), np.full(70, 1 / 70)
    # POT given our cost matrix directly uses our convention (no factor 2).
    P = ot.sinkhorn(a, b, C, reg=0.5, method="sinkhorn_log", stopThr=1e-10, numItermax=100000)
    assert res.transport_cost == pytest.approx((P * C).sum(), rel=1e-4)


class StandardNormal:
    def log_prob(self, x):
        return -0.5 * (x**2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)

    def grad_log_prob(self, x):
        return -x


def test_wfr_python_target_equals_builtin():
    a = otgen.wfr.sample(StandardNormal(), dim=1, sampler="ula", n_particles=64, step=0.05, steps=50, seed=4)
    b = otgen.wfr.sample("gaussian", dim=1, sampler="ula", n_particles=64, step=0.05, steps=50, seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.x.shape == (64, 1) and a.steps == 50


def test_wfr_double_well_smc_wfr_finds_the_left_well():
    res = otgen.wfr.sample("doublewell", H=4, sampler="smc-wfr", n_particles=300, step=0.005, steps=1000,
                           init="point:1.0", seed=0)
    assert otgen.wfr.left_well_mass(res, H=4) == pytest.approx(0.7181, abs=0.06)  # ULA stays near 0.33


def test_wfr_bad_python_target_is_value_error():
    class Bad(StandardNormal):
        def log_prob(self, x):
            return np.zeros(3)

    with pytest.raises(ValueError, match="log_prob"):
        otgen.wfr.sample(Bad(), dim=1, sampler="ula", n_particles=10, steps=2)
    with pytest.raises(ValueError, match="dim"):
        otgen.wfr.sample(StandardNormal(), sampler="ula")
    with pytest.raises(ValueError):
        otgen.wfr.sample("nope")


@pytest.mark.parametrize("call", [
    lambda y: otgen.SemidiscreteOT(steps=10).fit(y.astype(np.complex64)),
    lambda y: otgen.SemidiscreteOT(steps=10).fit(np.where(y > 0.9, np.nan, y)),
    lambda y: otgen.SemidiscreteOT(steps=10).fit(y, weights=np.full(len(y), 0.5)),
    lambda y: otgen.SemidiscreteOT(steps=0).fit(y),
    lambda y: otgen.SemidiscreteOT(steps=10, nonsense=1).fit(y),
    lambda y: otgen.exact_assignment(y[:5], y[:6]),
    lambda y: otgen.sinkhorn(y[:5], y[:6], epsilon=-1.0),
])
def test_bad_inputs_raise_value_error(call, digits):
    with pytest.raises(ValueError):
        call(digits[0])


def test_assign_with_mismatched_dimension_is_value_error(digits):
    sd = otgen.SemidiscreteOT(steps=20, batch_size=64)
    sd.fit(digits[0])
    with pytest.raises(ValueError, match="dimension"):
        sd.assign(gaussian(5, 3, 0))
