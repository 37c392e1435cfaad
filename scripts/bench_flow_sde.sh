#!/usr/bin/env bash
# Weighted SDEs on trained flow models (issue 20): a tilted, a tempered and a guidance-product target on
# the 8 Gaussians against closed forms. Records docs/results/flow_sde.json and the PNGs beside it
# (summarised in docs/results/flow_sde.md).
set -euo pipefail
BUILD=${BUILD:-build}
echo "== uptime: $(uptime)"
/usr/bin/python3 bench/flow_sde_bench.py --cli "$BUILD/otgen" --out docs/results ${FLOW_SDE_BENCH_ARGS:-}
