#!/usr/bin/env bash
# The load stage of `make test` (issue 16, docs/RELIABILITY.md): the concurrency-sensitive tests
# (tests/load/concurrency.filter, both tracking modes) run again and again while `hetmm load`
# makes memory churn beside them, for a bounded time; then `hetmm stress` in each tracking mode
# under the same load. A data race that needs memory activity around it (other processes
# mapping, faulting, forking; khugepaged; compaction) gets its chance here.
#
# Usage: scripts/test-under-load.sh BUILD [SECONDS] [PASSES]
#   SECONDS  time budget for the repetitions (default 150); a pass that starts runs to its end
#   PASSES   stop after this many passes even within the budget (default 0: no limit)
set -euo pipefail
build="$1"
budget="${2:-150}"
max_passes="${3:-0}"
here="$(cd "$(dirname "$0")/.." && pwd)"
filter="$(grep -v '^#' "$here/tests/load/concurrency.filter" | grep -v '^$' | paste -sd: -)"
tests="$build/hetmm_tests"
hetmm="$build/hetmm"
log="$(mktemp)"

"$hetmm" load --seconds $((budget + 600)) --quiet &
load=$!
stop_load() {
  kill -TERM "$load" 2>/dev/null || true
  wait "$load" 2>/dev/null || true
  rm -f "$log"
}
trap stop_load EXIT

count="$("$tests" --gtest_filter="$filter" --gtest_list_tests | grep -c '^  ')"
start=$SECONDS
passes=0
while (( SECONDS - start < budget )) && (( max_passes == 0 || passes < max_passes )); do
  if ! "$tests" --gtest_filter="$filter" --gtest_brief=1 > "$log" 2>&1; then
    tail -n 60 "$log"
    echo "load stage: FAILED in pass $((passes + 1)) (of $count tests, under hetmm load)"
    exit 1
  fi
  passes=$((passes + 1))
done
echo "load stage: $passes passes of $count concurrency-sensitive tests in $((SECONDS - start)) s" \
     "under hetmm load, no failure"

seed=1
for mode in userfaultfd mprotect; do
  if ! "$hetmm" --tracking "$mode" stress --seconds 20 --seed "$seed" > "$log" 2>&1; then
    cat "$log"
    echo "load stage: hetmm stress ($mode) FAILED under hetmm load"
    exit 1
  fi
  tail -n 3 "$log"
  seed=$((seed + 1000))
done
echo "$((passes * count)) passed, 0 failed"
