#!/usr/bin/env bash
# make demo: the main jobs on the embedded default data (extended by each layer as it lands).
set -euo pipefail
BUILD=${BUILD:-build}
OTGEN="$BUILD/otgen"
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
echo "== $($OTGEN --version)"
# Each layer adds scripts/demo_<topic>.sh; they run in name order with $OTGEN and $OUT set.
export OTGEN OUT BUILD
for s in scripts/demo_*.sh; do
  [ -e "$s" ] || continue
  bash "$s"
done
