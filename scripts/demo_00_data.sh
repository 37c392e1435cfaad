#!/usr/bin/env bash
# Demo part 0: the embedded datasets and their summaries.
set -euo pipefail
echo "== datasets (otgen data info)"
for ds in fashion-mnist digits 8gaussians moons checkerboard spirals; do
  "$OTGEN" data info --dataset "$ds"
done
"$OTGEN" data export --dataset digits --out "$OUT/digits.npy" --labels-out "$OUT/digits_labels.npy" >/dev/null
echo "wrote $OUT/digits.npy and $OUT/digits_labels.npy"
