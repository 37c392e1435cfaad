#!/usr/bin/env bash
# Flow-matching benchmarks (issue 12): otgen's trainer vs the same loop in eager PyTorch, semidiscrete
# coupling overhead, bf16 vs fp32, and the 8 Gaussians quality target. Records docs/results/flow.json
# (summarised by hand in docs/results/flow.md). FLOW_BENCH_ARGS="--quick" for a smoke run.
set -euo pipefail
BUILD=${BUILD:-build}
echo "== uptime: $(uptime)"
PYTHONPATH="$BUILD/python" /usr/bin/python3 bench/flow_bench.py "$BUILD/otgen" --json docs/results/flow.json ${FLOW_BENCH_ARGS:-}
