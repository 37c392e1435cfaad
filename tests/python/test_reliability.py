"""Hostile sizes and files from Python (docs/RELIABILITY.md): each raises ValueError naming the argument
(and for sizes the bytes needed) before anything is allocated -- never MemoryError (std::bad_alloc)."""
import os
import struct

import numpy as np
import pytest

import otgen


def npy_header(dict_text, data_bytes):
    header = dict_text
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * data_bytes


def test_npy_header_claiming_two_to_the_forty_elements_is_a_value_error_naming_file_and_sizes(tmp_path):
    path = tmp_path / "big.npy"
    b = npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }", 0)
    path.write_bytes(b + b"\0" * (193 - len(b)))
    with pytest.raises(ValueError, match=r"1099511627776 float32 elements \(4398046511104 bytes\), the file holds 65"):
        otgen.load_dataset("npy", path=str(path))
    with pytest.raises(ValueError, match=str(path)):
        otgen.load_dataset("npy", path=str(path))


def test_truncated_npy_body_is_a_value_error(tmp_path):
    path = tmp_path / "short.npy"
    np.save(path, np.zeros((10, 3), np.float32))
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"30 float32 elements \(120 bytes\), the file holds 116 data bytes"):
        otgen.load_dataset("npy", path=str(path))


def test_huge_label_file_is_a_value_error(tmp_path):
    np.save(tmp_path / "y.npy", np.zeros((4, 2), np.float32))
    np.save(tmp_path / "l.npy", np.array([0, 1, 10**12, 2], np.int64))
    with pytest.raises(ValueError, match=r"labels_path .*1000000000001 classes"):
        otgen.load_dataset("npy", path=str(tmp_path / "y.npy"), labels_path=str(tmp_path / "l.npy"))


def test_generator_size_beyond_memory_is_a_value_error_naming_n():
    with pytest.raises(ValueError, match=r"invalid n = 1000000000000: .*need 16000000000000 bytes"):
        otgen.load_dataset("moons", n=10**12)


def test_wfr_particles_and_dim_beyond_memory_are_value_errors():
    with pytest.raises(ValueError, match=r"invalid particles = 1000000000000: .*need 48000000000000 bytes"):
        otgen.wfr.sample("doublewell", sampler="ula", n_particles=10**12, steps=1)
    with pytest.raises(ValueError, match=r"invalid dim = 1000000000: .*d x d covariance"):
        otgen.wfr.sample("gaussian", dim=10**9, sampler="ula", steps=1)


def test_semidiscrete_batch_beyond_memory_is_a_value_error_naming_batch_size():
    y = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"invalid batch_size = 1000000000000: .*need 44000000000000 bytes"):
        otgen.SemidiscreteOT(batch_size=10**12, steps=1).fit(y)
    solver = otgen.SemidiscreteOT(steps=2, batch_size=16)
    solver.fit(y)
    with pytest.raises(ValueError, match=r"invalid batch = 1000000000000: .*need 44000000000000 bytes"):
        solver.check(batch=10**12, repeats=1)


@pytest.mark.parametrize("labels, fragment", [
    ([0, 1, 10**12], r"invalid labels = largest label 1000000000000: .*1000000000001 classes"),
    ([0, -1, 1], r"invalid labels = -1: expected labels >= 0 \(entry 1\)"),
    ([0, 2**63 - 1, 1], r"labels below 2\^63 - 1"),
])
def test_hostile_labels_are_value_errors(labels, fragment):
    y = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=fragment):
        otgen.SemidiscreteOT(steps=1, batch_size=8).fit(y, labels=np.array(labels, np.int64))


def test_batch_ot_sizes_beyond_memory_are_value_errors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200000, 1)).astype(np.float32)
    y = rng.normal(size=(200000, 1)).astype(np.float32)
    with pytest.raises(ValueError, match=r"invalid x = 200000 points: .*need 160000000000 bytes"):
        otgen.exact_assignment(x, y)
    with pytest.raises(ValueError, match=r"invalid mode = dense: .*200000 x 200000 float matrix"):
        otgen.sinkhorn(x, y, epsilon=1.0, mode="dense")


def test_ctrl_c_ends_a_semidiscrete_fit_with_keyboard_interrupt():
    # Without the signal check the fit runs to its 60 s time limit and returns normally.
    import signal
    import threading
    y = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    sd = otgen.SemidiscreteOT(steps=10**8, target_chi2=0, chi2_every=0, time_limit=60.0, threads=1)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sd.fit(y)
    finally:
        timer.cancel()


# One input policy (otgen/core/npy.h): the CLI's .npy reader converts every real dtype the way the Python
# module converts arrays (numpy's astype is the reference), and both refuse the same things.
POLICY_DTYPES = ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8", "|i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8",
                 "|u1", "<u2", ">u4", "<u8"]


def policy_values(dtype):
    v = np.array([[0, 1, -2], [3, 100, -7], [12, 5, 9], [-1, 2, 3]], np.float64)
    if np.dtype(dtype).kind == "u":
        v = np.abs(v)
    if np.dtype(dtype).kind == "f":
        v = v / 8 + 0.3
    return v.astype(dtype)


@pytest.mark.parametrize("dtype", POLICY_DTYPES)
def test_cli_and_python_read_every_real_dtype_as_numpy_converts_it(tmp_path, dtype):
    import subprocess
    arr = policy_values(dtype)
    np.save(tmp_path / "y.npy", arr)
    expected = arr.astype(np.float32)
    cli = os.environ.get("OTGEN_CLI", "build/otgen")
    r = subprocess.run([cli, "data", "export", "--dataset", "npy", "--data", str(tmp_path / "y.npy"),
                        "--out", str(tmp_path / "out.npy")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from_cli = np.load(tmp_path / "out.npy")
    from_file = otgen.load_dataset("npy", path=str(tmp_path / "y.npy"))[0]
    from_array = otgen.SemidiscreteOT(steps=1, target_chi2=0, chi2_every=0).fit(arr).g  # accepted as is
    assert from_cli.dtype == np.float32 and np.array_equal(from_cli, expected)
    assert np.array_equal(from_file, expected)
    assert from_array.shape == (4,)
    if np.dtype(dtype).kind in "iu":  # integer files are labels too, converted to int64
        labels = np.abs(arr[:, 0]).astype(dtype)
        np.save(tmp_path / "l.npy", labels)
        _, l, _ = otgen.load_dataset("npy", path=str(tmp_path / "y.npy"), labels_path=str(tmp_path / "l.npy"))
        assert l.dtype == np.int64 and np.array_equal(l, labels.astype(np.int64))


def test_cli_and_python_refuse_the_same_inputs(tmp_path):
    import subprocess
    cli = os.environ.get("OTGEN_CLI", "build/otgen")
    for name, arr in [("bool", np.ones((4, 2), bool)), ("complex", np.ones((4, 2), np.complex64)),
                      ("text", np.array([["a", "b"]] * 4))]:
        np.save(tmp_path / f"{name}.npy", arr)
        r = subprocess.run([cli, "data", "export", "--dataset", "npy", "--data", str(tmp_path / f"{name}.npy"),
                            "--out", str(tmp_path / "out.npy")], capture_output=True, text=True)
        assert r.returncode == 2 and "is not supported" in r.stderr, r.stderr
        with pytest.raises(ValueError, match="not supported"):
            otgen.SemidiscreteOT(steps=1).fit(arr)
    # Float labels are refused by both; 1-D points are n points of dimension 1 in both.
    np.save(tmp_path / "y.npy", np.zeros((4, 2), np.float32))
    np.save(tmp_path / "lf.npy", np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="integer"):
        otgen.load_dataset("npy", path=str(tmp_path / "y.npy"), labels_path=str(tmp_path / "lf.npy"))
    with pytest.raises(ValueError):
        otgen.SemidiscreteOT(steps=1).fit(np.zeros((4, 2), np.float32), labels=np.zeros(4, np.float32))
    np.save(tmp_path / "y1.npy", np.arange(5, dtype=np.float32))
    assert otgen.load_dataset("npy", path=str(tmp_path / "y1.npy"))[0].shape == (5, 1)
    assert otgen.SemidiscreteOT(steps=1, target_chi2=0, chi2_every=0).fit(np.arange(5.0)).g.shape == (5,)


def test_sinkhorn_that_stops_short_or_fails_is_never_silent():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 2)).astype(np.float32), rng.normal(size=(40, 2)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="sinkhorn: max_steps"):
        r = otgen.sinkhorn(x, y, epsilon=0.01, max_iterations=2, eps_scaling=False)
    assert r.termination == "max_steps"
    with pytest.warns(RuntimeWarning, match="sinkhorn: numerical_failure: the plan's cost is not finite"):
        r = otgen.sinkhorn(x, y, epsilon=1e-300, max_iterations=50)
    assert r.termination == "numerical_failure"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert otgen.sinkhorn(x, y, epsilon=0.5).termination == "converged"


def test_wfr_dim_on_a_fixed_dimension_target_is_a_value_error():
    with pytest.raises(ValueError, match=r"invalid dim = 3: expected 1 \(doublewell has a fixed dimension"):
        otgen.wfr.sample("doublewell", "ula", dim=3, steps=2)
    assert otgen.wfr.sample("mixture4-lln", "ula", dim=2, steps=2, n_particles=10) is not None


def test_wfr_option_the_sampler_does_not_use_is_a_value_error():
    with pytest.raises(ValueError, match=r"invalid beta = given: expected it only with the birth-death, wfr samplers \(ula does not use it\)"):
        otgen.wfr.sample("doublewell", "ula", beta=2.0, steps=2)
    with pytest.raises(ValueError, match=r"invalid moves = given: expected it only with the tempered-smc samplers"):
        otgen.wfr.sample("doublewell", "smc-wfr", moves=3, steps=2)
    with pytest.raises(ValueError, match=r"invalid resample = given: .*\(mala does not use it\)"):
        otgen.wfr.sample("doublewell", "mala", resample="stratified", steps=2)
    # None is "not given": the sampler's defaults, the same result as leaving the keywords out
    a = otgen.wfr.sample("doublewell", "tempered-smc", n_particles=40, steps=5, seed=2)
    b = otgen.wfr.sample("doublewell", "tempered-smc", n_particles=40, steps=5, seed=2, moves=1, mala_moves=True,
                         resample="systematic", ess_threshold=0.5, adaptive=False)
    assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["logw"], b["logw"])
