#!/bin/bash
# 1 rank x 1 thread vs 2 ranks x 1 thread (mpirun, run as root in a container: --allow-run-as-root), the
# Fashion-MNIST fit step, alternating; run it on an idle machine (docs/dist.md).
# Usage: bench/dist_fit_bench.sh BUILD_DIR FM_NPY (FM_NPY from `otgen data export --dataset fashion-mnist`).
set -e
O=$(realpath "${1:-build}")/otgen
FM=$(realpath "${2:-fm.npy}")
cd "$(mktemp -d)"
F="sdot fit --data $FM --steps 20 --batch 1024 --init zero --lr 1 --chi2-every 0 --threads 1 -q --seed 1"
for screen in float32 int8; do
  X=""; [ $screen = float32 ] && X="--no-int8-screen"
  for rep in 1 2 3; do
    s=$(date +%s.%N); $O $F $X --out p1.npy > o1.json; e=$(date +%s.%N); t1=$(echo "$e - $s" | bc)
    s=$(date +%s.%N); mpirun --allow-run-as-root --oversubscribe -q -np 2 $O $F $X --out p2.npy > o2.json; e=$(date +%s.%N); t2=$(echo "$e - $s" | bc)
    same=$(cmp -s p1.npy p2.npy && echo identical || echo DIFFERENT)
    f1=$(/usr/bin/python3 -c "import json;print(json.loads(open('o1.json').read().strip().splitlines()[-1])['seconds'])"); f2=$(/usr/bin/python3 -c "import json;print(json.loads(open('o2.json').read().strip().splitlines()[-1])['seconds'])")
    echo "$screen rep $rep fit-seconds 1rank $f1 2ranks $f2 load $(cut -d' ' -f1 /proc/loadavg) 1rank ${t1}s 2ranks ${t2}s g $same"
  done
done
