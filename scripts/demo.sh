#!/usr/bin/env bash
# make demo: the main jobs on the embedded default data (extended by each layer as it lands).
set -euo pipefail
BUILD=${BUILD:-build}
OTGEN="$BUILD/otgen"
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
echo "== otgen $($OTGEN --version)"
