#!/usr/bin/env bash
# make bench: runs every scripts/bench_<topic>.sh (each prints its table and where it recorded it).
set -euo pipefail
BUILD=${BUILD:-build}
export BUILD
echo "== machine: $(nproc) cores; load: $(uptime | sed 's/.*load average: //')"
for s in scripts/bench_*.sh; do
  [ -e "$s" ] || continue
  echo "== $s"
  bash "$s"
done
