#!/bin/sh
# Runs every test program (unit, then integration, then browser when present)
# and ends with one line: "N passed, N failed". Each integration program starts
# and stops its own world; whatever a crashed program left running is stopped
# here, by the pids its world recorded.
#   BUILD=build sh tests/run.sh [NAME-FILTER]
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$here/$BUILD" ;; esac
filter=${1:-}
export SORTIE_REPO="$here" BUILD
SORTIE_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sortie-test-XXXXXX")
chmod 755 "$SORTIE_TEST_TMP"
export SORTIE_TEST_TMP
if [ "${SORTIE_SAN:-0}" = 1 ]; then
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$here/tests/lsan.supp:print_suppressions=0"
fi

passed=0
failed=0
failed_names=""
log="$SORTIE_TEST_TMP/output.log"
summary="$SORTIE_TEST_TMP/failures.log"

cleanup_worlds() {
  for w in "$SORTIE_TEST_TMP"/world-*; do
    [ -d "$w" ] || continue
    SORTIE_RUN="$w" SORTIE_QUIET=1 sh "$here/tools/stack.sh" stop >/dev/null 2>&1 || true
    rm -rf "$w"
  done
}
trap 'cleanup_worlds; rm -rf "$SORTIE_TEST_TMP"' EXIT
trap 'exit 130' INT TERM

run_one() {
  bin=$1
  name=$(basename "$bin")
  [ -n "$filter" ] && case "$name" in *"$filter"*) ;; *) return ;; esac
  echo "== $name"
  # Criterion: -j2 (two cores), a per-test timeout; the whole program is bounded too
  timeout -k 10 900 "$bin" -j2 --timeout 120 --full-stats >"$log" 2>&1
  rc=$?
  cat "$log"
  syn=$(grep 'Synthesis:' "$log" | tail -n 1)
  if [ -n "$syn" ]; then
    t=$(echo "$syn" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
    p=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    passed=$((passed + p))
    failed=$((failed + t - p))
    if [ "$t" != "$p" ]; then
      failed_names="$failed_names $name"
      # kept for the end of the run: a CI log is often read from its tail
      { echo "-- $name"
        grep -E -A4 'Assertion Failed|\[FAIL\]|Unexpected signal' "$log" | head -n 60
      } >>"$summary"
    fi
  else
    echo "!! $name ended without a report (exit $rc)"
    { echo "-- $name ended without a report (exit $rc); its last lines:"
      tail -n 20 "$log"
    } >>"$summary"
    failed=$((failed + 1))
    failed_names="$failed_names $name"
  fi
  if [ -d "$SORTIE_TEST_TMP/san-reports" ]; then
    echo "!! $name: sanitizer reports in the servers' logs:"
    grep -rhE -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$SORTIE_TEST_TMP/san-reports" | head -n 60
    rm -rf "$SORTIE_TEST_TMP/san-reports"
    failed=$((failed + 1))
    failed_names="$failed_names $name(san)"
  fi
  if [ $rc -ne 0 ] && [ -n "$syn" ] && [ "$t" = "$p" ]; then
    # all tests passed but the program failed (e.g. a sanitizer report at exit)
    echo "!! $name exited with $rc"
    failed=$((failed + 1))
    failed_names="$failed_names $name"
  fi
  cleanup_worlds
}

# SORTIE_SUITE=faults: the fault tests (tests/faults) alone, no browser
if [ "${SORTIE_SUITE:-}" = faults ]; then
  progs="$BUILD/tests/faults/test_*"
else
  progs="$BUILD/tests/unit/test_* $BUILD/tests/integration/test_*"
fi
for bin in $progs; do
  case "$bin" in *.d|*.o) continue ;; esac
  [ -x "$bin" ] && run_one "$bin"
done

# browser tests (tests/browser), when their runner is there
if [ "${SORTIE_SUITE:-}" != faults ] && [ -f "$here/tests/browser/run.sh" ] &&
   { [ -z "$filter" ] || [ "$filter" = browser ]; }; then
  echo "== browser"
  out=$(sh "$here/tests/browser/run.sh" 2>&1)
  echo "$out"
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -n "$line" ]; then
    passed=$((passed + ${line%% passed*}))
    f=${line#*, }
    failed=$((failed + ${f%% failed}))
    if [ "${f%% failed}" != 0 ]; then
      failed_names="$failed_names browser"
      { echo "-- browser"
        echo "$out" | grep -E -A6 '^ *✖' | head -n 60
      } >>"$summary"
    fi
  else
    failed=$((failed + 1))
    failed_names="$failed_names browser"
  fi
fi

if [ -n "$failed_names" ]; then
  [ -s "$summary" ] && { echo "== what failed"; cat "$summary"; }
  echo "failed in:$failed_names"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
