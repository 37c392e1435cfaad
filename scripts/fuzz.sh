#!/usr/bin/env bash
# Runs each libFuzzer target given as an argument for $FUZZ_SECONDS seconds, one after the other, from
# its committed seed corpus fuzz/corpus/<target>/ (inputs it finds go to $FUZZ_BUILD/corpus/<target>/,
# crashes to $FUZZ_BUILD/crashes/). Prints one line per target: executions, coverage, crashes.
# Exits 1 if any target crashed (its log: $FUZZ_BUILD/<target>.log).
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
status=0
for t in "$@"; do
  mkdir -p "$FUZZ_BUILD/corpus/$t" "$FUZZ_BUILD/crashes"
  log="$FUZZ_BUILD/$t.log"
  "$FUZZ_BUILD/fuzz/$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=10 \
    -artifact_prefix="$FUZZ_BUILD/crashes/$t-" "$FUZZ_BUILD/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  crashes=$(ls "$FUZZ_BUILD/crashes" | grep -c "^$t-" || true)
  echo "$t: ${FUZZ_SECONDS} s, ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}, crashes ${crashes} (exit $rc, log $log)"
  [ "$rc" -ne 0 ] && status=1
done
exit $status
