#!/usr/bin/env bash
# make bench, semidiscrete part (run by scripts/bench.sh with $BUILD set):
#  1. per-step cost of `SemidiscreteOT::fit` at batch 1024 on Fashion-MNIST vs one engine gradient call
#     (Google Benchmark, medians of 5 repetitions), eps = 0 and eps = 0.5;
#  2. the same SGD loop in PyTorch (bench/sdot_torch_ref.py), same data, batch and threads, same run;
#  3. digits (1797 x 64) convergence to chi2 <= 0.02 at eps = 0 and at relative eps = 0.01 (+ plot);
#  4. with SDOT_BENCH_FMNIST=1 only (about an hour on 2 cores): Fashion-MNIST eps = 0 to chi2 <= 0.05.
# Results are printed and kept in $OUT (default out/bench/semidiscrete); docs/results/semidiscrete.md
# records them with the date and the machine load.
set -euo pipefail
BUILD=${BUILD:-build}
OUT=${OUT:-out/bench/semidiscrete}
THREADS=${THREADS:-2}
PY=/usr/bin/python3
OTGEN="$BUILD/otgen"
mkdir -p "$OUT"
echo "machine: $(nproc) cores, load $(uptime | sed 's/.*load average: //'), threads $THREADS, $(date -u +%FT%TZ)"

"$OTGEN" data export --dataset fashion-mnist --out "$OUT/fmnist.npy" > /dev/null
"$OTGEN" data export --dataset digits --out "$OUT/digits.npy" > /dev/null

echo "== 1. per-step cost (batch 1024, Fashion-MNIST 60000 x 784)"
OMP_NUM_THREADS=$THREADS "$BUILD/bench/semidiscrete_bench" --benchmark_format=json --benchmark_out="$OUT/steps.json" \
  --benchmark_out_format=json > /dev/null
echo "== 2. PyTorch reference loop (same data, batch, threads)"
$PY bench/sdot_torch_ref.py "$OUT/fmnist.npy" --threads "$THREADS" --epsilon 0 > "$OUT/torch_eps0.json"
$PY bench/sdot_torch_ref.py "$OUT/fmnist.npy" --threads "$THREADS" --epsilon 0.5 > "$OUT/torch_eps05.json"
$PY - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
b = json.load(open(f"{out}/steps.json"))["benchmarks"]
med = {r["run_name"]: r for r in b if r.get("aggregate_name") == "median"}
def ms(name, key="real_time"):
    return med[name][key]
def step(mode):  # per-step cost: the fit's setup cancels in the difference
    return (ms(f"BM_FitSteps/{mode}/11/iterations:1/repeats:5/real_time")
            - ms(f"BM_FitSteps/{mode}/1/iterations:1/repeats:5/real_time")) / 10
def opt(name):
    return ms(name) if name in med else None
arg, soft = ms("BM_EngineArgmax/iterations:3/repeats:5/real_time"), ms("BM_EngineSoftmaxSums/iterations:3/repeats:5/real_time")
fit0, fit1, fit2 = step(0), step(1), step(2)
scr = opt("BM_ScreenArgmax/0/iterations:3/repeats:5/real_time")
scr_conv = opt("BM_ScreenArgmax/1/iterations:3/repeats:5/real_time")
fit3 = step(3) if scr_conv else None
t0 = json.load(open(f"{out}/torch_eps0.json"))["median_seconds_per_step"] * 1e3
t1 = json.load(open(f"{out}/torch_eps05.json"))["median_seconds_per_step"] * 1e3
if scr:
    print(f"eps = 0  : int8 screen argmax {scr:6.1f} ms | fit step {fit0:8.1f} ms | ratio {fit0/scr:5.3f} (target <= 1.15)")
    print(f"           float32 row_argmax {arg:6.1f} ms | screen is {arg/scr:5.2f}x faster")
if scr_conv:
    print(f"eps = 0, converged g: screen {scr_conv:6.1f} ms | fit step {fit3:8.1f} ms | ratio {fit3/scr_conv:5.3f} (target <= 1.15)")
print(f"eps = 0, float32: row_argmax {arg:8.1f} ms | fit step {fit2:8.1f} ms | ratio {fit2/arg:5.3f} (target <= 1.15)")
print(f"eps = 0.5: engine softmax_sums {soft:6.1f} ms | fit step {fit1:8.1f} ms | ratio {fit1/soft:5.3f} (target <= 1.15)")
print(f"PyTorch loop eps = 0  : {t0:8.1f} ms/step -> otgen {t0/fit0:5.2f}x faster (target >= 2); float32 only {t0/fit2:5.2f}x")
print(f"PyTorch loop eps = 0.5: {t1:8.1f} ms/step -> otgen {t1/fit1:5.2f}x faster")
PY

echo "== 2b. realistic eps = 0 steps: warm start from a converged Fashion-MNIST potential, against PyTorch"
# A converged potential crowds the top of every row, which is the int8 screen's hardest case; the
# synthetic g of step 1 is not. Three alternating pairs; otgen's s/step from its run record (steps
# 100 -> 300, so data loading and setup are excluded).
G_REF=docs/results/fmnist_g_eps0.npy
if [ -f "$G_REF" ]; then
  for pair in 1 2 3; do
    "$OTGEN" sdot fit --data "$OUT/fmnist.npy" --init "$G_REF" --steps 300 --batch 1024 --optimizer adam --lr 0.01 \
      --lr-final 0.01 --chi2-every 0 --seed $pair --threads "$THREADS" --quiet --out "$OUT/g_warm.npy" \
      --record "$OUT/warm_$pair.json" > /dev/null
    $PY bench/sdot_torch_ref.py "$OUT/fmnist.npy" --threads "$THREADS" --epsilon 0 > "$OUT/torch_warm_$pair.json"
  done
  $PY - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for pair in (1, 2, 3):
    h = {r["step"]: r["seconds"] for r in json.load(open(f"{out}/warm_{pair}.json"))["history"]}
    ours = (h[300] - h[100]) / 200
    torch = json.load(open(f"{out}/torch_warm_{pair}.json"))["median_seconds_per_step"]
    print(f"pair {pair}: otgen {ours * 1e3:7.1f} ms/step (int8 screen, converged g) | PyTorch {torch * 1e3:7.1f} ms/step"
          f" -> otgen {torch / ours:5.2f}x faster (target >= 2)")
PY
fi

echo "== 3. digits convergence (batch 1024; stop at chi2 <= 0.02)"
"$OTGEN" sdot fit --data "$OUT/digits.npy" --steps 3000 --batch 1024 --lr 100 --lr-final 0.1 --chi2-every 125 \
  --chi2-repeats 8 --chi2-threshold 0.02 --seed 1 --threads "$THREADS" --quiet --out "$OUT/digits_g0.npy" \
  --record "$OUT/digits_eps0.json"
"$OTGEN" sdot check --data "$OUT/digits.npy" --potential "$OUT/digits_g0.npy" --draws 262144 --seed 2 --threads "$THREADS"
EPS=$("$OTGEN" sdot fit --data "$OUT/digits.npy" --epsilon 0.01 --relative-epsilon --steps 3000 --batch 1024 \
  --lr 100 --lr-final 0.1 --chi2-every 125 --chi2-repeats 8 --chi2-threshold 0.02 --seed 1 --threads "$THREADS" \
  --quiet --out "$OUT/digits_g001.npy" --record "$OUT/digits_eps001.json" | tee /dev/stderr |
  $PY -c 'import json,sys; print(json.load(sys.stdin)["epsilon"])')
"$OTGEN" sdot check --data "$OUT/digits.npy" --potential "$OUT/digits_g001.npy" --epsilon "$EPS" --draws 65536 \
  --seed 2 --threads "$THREADS"
$PY bench/sdot_plot.py "$OUT/digits.png" "$OUT/digits_eps0.json" "$OUT/digits_eps001.json" \
  --title "digits 1797 x 64: eps = 0 and relative eps = 0.01" || true

if [ "${SDOT_BENCH_FMNIST:-0}" = 1 ]; then
  echo "== 4. Fashion-MNIST eps = 0 convergence (stop at chi2 <= 0.05)"
  "$OTGEN" sdot fit --data "$OUT/fmnist.npy" --init half-norm --steps 1500 --batch 1024 --optimizer adam --lr 0.5 \
    --lr-final 0.02 --chi2-every 150 --chi2-repeats 8 --chi2-threshold 0.05 --seed 1 --threads "$THREADS" --quiet \
    --out "$OUT/fmnist_g0.npy" --record "$OUT/fmnist_eps0.json"
  "$OTGEN" sdot check --data "$OUT/fmnist.npy" --potential "$OUT/fmnist_g0.npy" --draws 65536 --seed 2 \
    --threads "$THREADS"
  $PY bench/sdot_plot.py "$OUT/fmnist.png" "$OUT/fmnist_eps0.json" --title "Fashion-MNIST 60000 x 784, eps = 0" || true
fi
