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
    with pytest.raises(ValueError, match=r"--labels .*1000000000001 classes"):
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
