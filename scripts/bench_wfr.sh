#!/usr/bin/env bash
# WFR sampler benchmarks (issue 6): double-well table, mixture4-lln MMD, speed vs a numpy SMC-WFR port.
# Results are recorded by hand in docs/results/wfr.md. WFR_BENCH_ARGS="--quick" for a smoke run.
set -euo pipefail
BUILD=${BUILD:-build}
echo "== uptime: $(uptime)"
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/wfr_bench.py "$BUILD/otgen" ${WFR_BENCH_ARGS:-}
