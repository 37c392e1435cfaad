#!/usr/bin/env bash
# Conditional generation and MeanFlow benchmarks (issue 13): guided class-conditional digits judged by
# an independent classifier, one-step MeanFlow models against flow models, and the cost of a MeanFlow
# step. Records docs/results/flow_cond.json (summarised in docs/results/flow_cond.md).
# FLOW_COND_BENCH_ARGS="--quick" for a smoke run.
set -euo pipefail
BUILD=${BUILD:-build}
echo "== uptime: $(uptime)"
PYTHONPATH="$BUILD/python" /usr/bin/python3 bench/flow_cond_bench.py "$BUILD/otgen" --json docs/results/flow_cond.json \
  ${FLOW_COND_BENCH_ARGS:-}
