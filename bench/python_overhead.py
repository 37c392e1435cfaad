#!/usr/bin/env python3
"""Python call overhead: otgen's semidiscrete assign from Python vs the same call from C++.

Python side: the call SemidiscreteOT.assign makes, on a map prepared once (otgen._otgen.SdotMap: data
validated, |y|^2 and the int8 screen built); C++ side: sdot_assign on a map after sdot_prepare.

Same inputs (Fashion-MNIST 60000 x 784, 1024 N(0, I) draws, g = 0), same thread count (2), same run:
the C++ benchmark and the Python timing alternate `rounds` times and the medians are compared.
Usage: python_overhead.py BUILD_DIR [rounds]
"""

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

build = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
sys.path.insert(0, os.path.join(build, "python"))
import otgen  # noqa: E402

y, _, _ = otgen.load_dataset("fashion-mnist")
x = np.random.default_rng(0).standard_normal((1024, y.shape[1])).astype(np.float32)
g = np.zeros(y.shape[0], dtype=np.float32)
prepared = otgen._otgen.SdotMap(y, g, check_y=False, threads=2)
prepared.assign(x, threads=2)  # warm-up

py_times, cpp_times = [], []
for _ in range(rounds):
    for _ in range(3):
        t0 = time.perf_counter()
        prepared.assign(x, threads=2)
        py_times.append(time.perf_counter() - t0)
    out = subprocess.run([os.path.join(build, "bench", "python_overhead_bench"), "--benchmark_format=json"],
                         capture_output=True, text=True, check=True).stdout
    cpp_times += [b["real_time"] / 1e3 for b in json.loads(out)["benchmarks"] if b["run_type"] == "iteration"]
py, cpp = statistics.median(py_times), statistics.median(cpp_times)
print(f"assign 1024 x 60000 x 784, 2 threads: Python median {py * 1e3:.1f} ms, C++ median {cpp * 1e3:.1f} ms, "
      f"ratio {py / cpp:.3f} (target <= 1.05); {len(py_times)} + {len(cpp_times)} timings")
