#!/usr/bin/env bash
# Demo: batch OT on a 2-D toy (noise -> 8 Gaussians): exact assignment, Sinkhorn, and the couplings.
set -euo pipefail
OTGEN=${OTGEN:-build/otgen}
OUT=${OUT:-out/demo}
D="$OUT/batch_ot"
mkdir -p "$D"
"$OTGEN" data export --dataset 8gaussians --n 512 --seed 1 --out "$D/y.npy" >/dev/null
/usr/bin/python3 -c "import numpy as np; np.save('$D/x.npy', np.random.default_rng(2).standard_normal((512, 2)).astype(np.float32))"
echo "== otgen ot exact (512 noise points -> 512 points of 8gaussians)"
"$OTGEN" ot exact --source "$D/x.npy" --target "$D/y.npy" --out "$D/perm.npy"
echo "== otgen ot sinkhorn (eps = 0.05 std(C))"
"$OTGEN" ot sinkhorn -q --source "$D/x.npy" --target "$D/y.npy" --epsilon 0.05 --relative-epsilon \
  --out-f "$D/f.npy" --out-g "$D/g.npy"
echo "== otgen ot couple: mean pair cost of each coupling"
for c in independent exact sinkhorn; do
  "$OTGEN" ot couple -q --coupling $c --data "$D/y.npy" --noise "$D/x.npy" --seed 3
done
