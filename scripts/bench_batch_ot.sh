#!/usr/bin/env bash
# Batch OT benchmark (issue 5): exact assignment and Sinkhorn vs POT on Gaussian noise vs Fashion-MNIST
# (d = 784), and the coupling cost per training pair vs batch size. Prints JSON lines and a summary;
# docs/results/batch_ot.md records a run. Times include the cost matrix for both sides, not file reads.
# Env: BUILD (build dir), QUICK=1 (skip n = 16384 and the POT Sinkhorn run), TIMEOUT (s per run).
set -euo pipefail
BUILD=${BUILD:-build}
OTGEN="$BUILD/otgen"
PY=/usr/bin/python3
DIR="$BUILD/bench_batch_ot"
TIMEOUT=${TIMEOUT:-600}
mkdir -p "$DIR"
echo "== batch OT: $(nproc) cores, load $(uptime | sed 's/.*load average: //'), $(date -u +%FT%TZ)"

# Data: the first n of a seeded shuffle of Fashion-MNIST train; noise N(0, I) with numpy seed 0.
[ -f "$DIR/fm.npy" ] || "$OTGEN" data export --dataset fashion-mnist --shuffle --seed 1 --out "$DIR/fm.npy" >/dev/null
$PY - "$DIR" <<'PYEOF'
import os, sys
import numpy as np
d = sys.argv[1]
y = np.load(os.path.join(d, "fm.npy"))
rng = np.random.default_rng(0)
for n in (256, 1024, 4096, 16384):
    if not os.path.exists(os.path.join(d, f"x{n}.npy")):
        np.save(os.path.join(d, f"x{n}.npy"), rng.standard_normal((n, y.shape[1])).astype(np.float32))
        np.save(os.path.join(d, f"y{n}.npy"), np.ascontiguousarray(y[:n]))
PYEOF

run() {  # run <label> <command...>: prints "<label> <json>" or "<label> timeout"
  local label=$1; shift
  local out
  if out=$(timeout "$TIMEOUT" "$@" 2>/dev/null | tail -1); then echo "$label $out"; else echo "$label {\"timeout\": $TIMEOUT}"; fi
}

echo "== exact assignment (otgen JV, cost matrix by the engine) vs POT ot.emd (ot.dist + network simplex)"
for n in 1024 4096; do
  reps=3; [ "$n" -gt 1024 ] && reps=1
  for r in $(seq $reps); do
    run "exact-otgen n=$n" "$OTGEN" ot exact --source "$DIR/x$n.npy" --target "$DIR/y$n.npy" --out "$DIR/perm.npy"
    run "exact-pot n=$n" $PY bench/batch_ot_pot.py exact "$DIR/x$n.npy" "$DIR/y$n.npy"
  done
done

echo "== Sinkhorn n = 4096, eps = 0.01 std(C), tol 1e-4 (L1 marginal error)"
run "sinkhorn-otgen n=4096" "$OTGEN" ot sinkhorn -q --source "$DIR/x4096.npy" --target "$DIR/y4096.npy" \
  --epsilon 0.01 --relative-epsilon --tol 1e-4
if [ "${QUICK:-0}" != 1 ]; then
  # POT stops on the L2 norm of the column error; tol / sqrt(n) makes its L1 error <= tol too.
  run "sinkhorn-pot n=4096" $PY bench/batch_ot_pot.py sinkhorn "$DIR/x4096.npy" "$DIR/y4096.npy" 0.01 1.5625e-6
fi

echo "== coupling cost per training pair vs n: otgen ot couple (Coupling::sample only; data set = 60000 Fashion-MNIST)"
echo "   exact = batch OT by JV; sinkhorn = batch OT, eps 0.05 std(C), tol 1e-3, row draws; semidiscrete = argmax over all 60000"
sizes="256 1024 4096 16384"; [ "${QUICK:-0}" = 1 ] && sizes="256 1024 4096"
for n in $sizes; do
  for c in independent exact sinkhorn semidiscrete; do
    eps=0.05; [ $c = semidiscrete ] && eps=0
    run "table-$c n=$n" "$OTGEN" ot couple -q --coupling $c --epsilon $eps --data "$DIR/fm.npy" --noise "$DIR/x$n.npy"
  done
done
echo "== load after: $(uptime | sed 's/.*load average: //')"
