"""otgen wfr against scipy quadrature: the double well's normaliser and left-well mass."""
import json
import math

import numpy as np
from scipy import integrate, optimize


def V(x, H):
    return H * (x * x - 1) ** 2 + 0.5 * x


def test_left_well_mass_and_tempered_smc_log_z_match_scipy_quadrature(cli, tmp_path):
    H = 2.0
    xs = optimize.brentq(lambda x: 4 * H * x * (x * x - 1) + 0.5, -0.5, 0.5)  # barrier top
    left = integrate.quad(lambda x: math.exp(-V(x, H)), -np.inf, xs)[0]
    right = integrate.quad(lambda x: math.exp(-V(x, H)), xs, np.inf)[0]
    log_z = math.log(left + right)
    est = []
    for seed in range(1, 21):  # log Z-hat has a skewed law: enough runs for a fair standard error
        out = tmp_path / f"run{seed}"
        cli("wfr", "--target", "doublewell", "--H", H, "--sampler", "tempered-smc", "--adaptive",
            "--particles", 2000, "--step", 0.05, "--moves", 3, "--steps", 500, "--init", "gaussian",
            "--seed", seed, "--quiet", "--out", out)
        doc = json.loads((out / "trace.json").read_text())
        s = doc["summary"]
        assert s["termination"] == "converged"
        assert doc["trace"][-1]["lambda"] == 1.0
        assert abs(s["left_well_mass_exact"] - left / (left + right)) < 1e-6
        est.append(s["log_z"])
        x = np.load(out / "x.npy")[:, 0]
        w = np.exp(np.load(out / "logw.npy"))
        assert abs(w.sum() - 1) < 1e-9
    est = np.array(est)
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert se < 0.02
    assert abs(est.mean() - log_z) < 4 * se, (est, log_z)


def test_left_well_mass_of_weighted_particles_matches_a_numpy_sum():
    import pytest
    import otgen
    H, tilt = 3.0, 0.7
    barrier = optimize.brentq(lambda x: 4 * H * x * (x * x - 1) + tilt, -0.5, 0.5)  # V'(x) = 0 between the wells
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1.2, size=(400, 1)).astype(np.float32)
    logw = rng.normal(0, 2, size=400)
    w = np.exp(logw - logw.max())
    want = w[x[:, 0] < barrier].sum() / w.sum()
    res = {"x": x, "logw": logw}
    assert otgen.wfr.left_well_mass(res, H=H, tilt=tilt) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="logw"):
        otgen.wfr.left_well_mass({"x": x, "logw": logw[:-1]}, H=H, tilt=tilt)
    with pytest.raises(ValueError):
        otgen.wfr.left_well_mass({"x": np.zeros((4, 2), np.float32), "logw": np.zeros(4)})
