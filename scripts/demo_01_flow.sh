#!/usr/bin/env bash
# make demo, flow-matching part (the main job): on the 8 Gaussians (2-D) and the 8x8 digits, fit the
# semidiscrete potential, train I-FM, OT-FM (exact batch OT) and SD-FM with the same model and steps,
# sample each with Euler 1/2/4/8 and Dopri5 from the same noise, and print the energy distance to
# held-out data per NFE. Writes a side-by-side PNG of the 2-D samples at Euler 2 and digit grids.
# Gets $OTGEN and $OUT. FLOW_STEPS (default 3000 / 2000) shortens or lengthens the training.
set -euo pipefail
D="$OUT/flow"
mkdir -p "$D"
STEPS_2D=${FLOW_STEPS:-3000}
STEPS_DIGITS=${FLOW_STEPS:-2000}

# Prints a JSON line from stdin through a Python format string: fmt '{steps} steps'.
fmt() { /usr/bin/python3 -c 'import json, sys; print(sys.argv[1].format(**json.loads(sys.stdin.read())))' "$1"; }

run_dataset() {  # name, data.npy, held-out.npy, steps, batch, extra train options, sdot fit options
  local name=$1 data=$2 ref=$3 steps=$4 batch=$5 train_opts=$6 fit_opts=$7
  echo "-- $name: semidiscrete potential (eps = 0)"
  "$OTGEN" sdot fit --data "$data" $fit_opts --seed 1 -q --out "$D/$name-g.npy" --record "$D/$name-fit.json" |
    fmt "   {steps} steps, chi2 {chi2:.4f}, {seconds:.1f} s"
  for c in independent exact semidiscrete; do
    local extra=""
    [ "$c" = semidiscrete ] && extra="--potential $D/$name-g.npy"
    "$OTGEN" train --data "$data" --coupling "$c" $extra --steps "$steps" --batch "$batch" $train_opts --seed 2 -q \
      --out "$D/$name-$c" |
      fmt "   train $c: loss {loss:.3f}, {steps_per_second:.0f} steps/s, drawing pairs {coupling_fraction:.1%} of the time"
  done
  local n
  n=$(/usr/bin/python3 -c "import numpy as np; print(len(np.load('$ref')))")
  for c in independent exact semidiscrete; do
    for s in 1 2 4 8; do
      "$OTGEN" sample --model "$D/$name-$c/model.pt" --n "$n" --solver euler --steps $s --seed 3 \
        --out "$D/$name-$c-euler$s.npy" > "$D/$name-$c-euler$s.json"
    done
    "$OTGEN" sample --model "$D/$name-$c/model.pt" --n "$n" --solver dopri5 --rtol 1e-5 --atol 1e-5 --seed 3 \
      --out "$D/$name-$c-dopri5.npy" > "$D/$name-$c-dopri5.json"
    for s in euler1 euler2 euler4 euler8 dopri5; do
      "$OTGEN" eval --samples "$D/$name-$c-$s.npy" --reference "$ref" --metrics energy > "$D/$name-$c-$s-eval.json"
    done
  done
  /usr/bin/python3 - "$D" "$name" <<'PY'
import json, sys
d, name = sys.argv[1], sys.argv[2]
cols = ["euler1", "euler2", "euler4", "euler8", "dopri5"]
nfe = {c: json.load(open(f"{d}/{name}-semidiscrete-{c}.json"))["nfe"] for c in cols}
print(f"   energy distance to held-out data ({name}; lower is better)")
print("   " + f"{'coupling':<14}" + "".join(f"{'NFE ' + str(nfe[c]):>11}" for c in cols))
rows = {}
for cp, label in [("independent", "I-FM"), ("exact", "OT-FM"), ("semidiscrete", "SD-FM")]:
    rows[label] = [json.load(open(f"{d}/{name}-{cp}-{c}-eval.json"))["energy"] for c in cols]
    print("   " + f"{label:<14}" + "".join(f"{v:>11.4f}" for v in rows[label]))
print("   " + f"{'SD / I':<14}" + "".join(f"{s / i:>11.2f}" if i > 0 else f"{'-':>11}"
                                       for s, i in zip(rows["SD-FM"], rows["I-FM"])))
PY
}

echo "== flow matching: I-FM vs OT-FM vs SD-FM (MLP 3 x 128, the same steps and seed)"
"$OTGEN" data export --dataset 8gaussians --n 4096 --seed 1 --out "$D/8g.npy" > /dev/null
"$OTGEN" data export --dataset 8gaussians --n 2000 --seed 7 --out "$D/8g-heldout.npy" > /dev/null
run_dataset 8g "$D/8g.npy" "$D/8g-heldout.npy" "$STEPS_2D" 256 "" \
  "--steps 10000 --batch 1024 --chi2-every 1000 --chi2-threshold 0.01"
"$OTGEN" plot --points "$D/8g-independent-euler2.npy,$D/8g-exact-euler2.npy,$D/8g-semidiscrete-euler2.npy" \
  --titles "I-FM (Euler 2),OT-FM (Euler 2),SD-FM (Euler 2)" --reference "$D/8g-heldout.npy" \
  --title "8 Gaussians: samples after 2 Euler steps (grey: held-out data)" --out "$D/8g-euler2.png" > /dev/null
echo "   plot: $D/8g-euler2.png"

# Digits: 1797 images; the held-out reference is the data itself (the model is judged on the data set).
"$OTGEN" data export --dataset digits --out "$D/digits.npy" > /dev/null
run_dataset digits "$D/digits.npy" "$D/digits.npy" "$STEPS_DIGITS" 256 "" \
  "--steps 1500 --batch 1024 --lr 100 --lr-final 0.1 --chi2-every 125 --chi2-repeats 8 --chi2-threshold 0.02"
for c in independent semidiscrete; do
  "$OTGEN" sample --model "$D/digits-$c/model.pt" --n 64 --solver euler --steps 2 --seed 3 --out "$D/digits-$c-grid.npy" \
    --png "$D/digits-$c-euler2.png" > /dev/null
done
echo "   grids: $D/digits-independent-euler2.png, $D/digits-semidiscrete-euler2.png"

# One-step models (MeanFlow) and class-conditional digits with guidance.
echo "== MeanFlow (one-step models) on the 8 Gaussians: energy distance at 1 and 2 steps"
for c in independent semidiscrete; do
  extra=""
  [ "$c" = semidiscrete ] && extra="--potential $D/8g-g.npy"
  "$OTGEN" train --data "$D/8g.npy" --coupling "$c" $extra --meanflow --steps "$STEPS_2D" --seed 2 -q \
    --out "$D/8g-mf-$c" > /dev/null
  line="   $c MeanFlow:"
  for s in 1 2; do
    "$OTGEN" sample --model "$D/8g-mf-$c/model.pt" --n 2000 --steps $s --seed 3 --out "$D/8g-mf-$c-$s.npy" > /dev/null
    e=$("$OTGEN" eval --samples "$D/8g-mf-$c-$s.npy" --reference "$D/8g-heldout.npy" --metrics energy | fmt "{energy:.4f}")
    line="$line  $s step(s) $e"
  done
  echo "$line"
done
echo "== class-conditional digits (SD-FM, one potential per class), guidance 2, Euler 8"
"$OTGEN" data export --dataset digits --out "$D/digits.npy" --labels-out "$D/digits-labels.npy" > /dev/null
"$OTGEN" sdot fit --data "$D/digits.npy" --labels "$D/digits-labels.npy" --steps 3000 --batch 1024 --lr 100 \
  --lr-final 0.1 --chi2-every 250 --chi2-threshold 0.02 --seed 1 -q --out "$D/digits-g-classes.npy" > /dev/null
"$OTGEN" train --data digits --conditional --coupling semidiscrete --potential "$D/digits-g-classes.npy" \
  --steps "$STEPS_DIGITS" --seed 2 -q --out "$D/digits-cond" > /dev/null
"$OTGEN" sample --model "$D/digits-cond/model.pt" --class all --n 10 --guidance 2 --steps 8 --seed 3 \
  --out "$D/digits-cond.npy" --png "$D/digits-cond.png" | fmt "   {n} samples, NFE {nfe}: $D/digits-cond.png (one row per class)"
