#!/bin/sh
# Runs every test program (unit, the fuzz corpora replayed, integration, then
# browser when present) and ends with two lines: "N skipped", then
# "N passed, N failed". Each integration program starts and stops its own
# world; whatever a crashed program left running is stopped here, by the pids
# its world recorded.
#
# What must run comes from the sources, not from what happens to be built:
# every tests/<suite>/test_*.c is a program that must exist in $BUILD and
# report (as run + skipped) at least as many tests as it has Test( and Theory(
# definitions, exactly as many when it has no ParameterizedTest( (Criterion
# counts each parameter of those as a test); every tests/fuzz/fuzz_*.c is a
# replay program that must run over tests/fuzz/corpus/<name>/ (and
# tests/fuzz/seeds/<name>/ if there is one) without a crash, one test each;
# the browser run must account for every test( in tests/browser/*.test.mjs;
# every tests/pkg/test_*.sh must report each of its `run_check NAME` lines; and
# tests/contract.sh checks the contract table (one test).
# A program that is missing, ends without a report or reports fewer tests
# counts each missing test as failed. A filter that matches nothing fails.
#   BUILD=build sh tests/run.sh [NAME-FILTER]
#   SORTIE_SUITE=faults: tests/faults alone (no replay, no browser)
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
skipped=0
matched=0
failed_names=""
skipped_names=""
log="$SORTIE_TEST_TMP/output.log"
tap="$SORTIE_TEST_TMP/output.tap"
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

wanted() {
  [ -z "$filter" ] && return 0
  case "$1" in *"$filter"*) return 0 ;; esac
  return 1
}

# fail NAME COUNT REASON: COUNT tests of NAME failed for REASON (kept for the end)
fail() {
  failed=$((failed + $2))
  failed_names="$failed_names $1"
  echo "!! $1: $3"
  echo "-- $1: $3" >>"$summary"
}

# the tests a Criterion source defines; parameterized ones count once here
defined() { grep -cE '^[[:space:]]*(Test|Theory|ParameterizedTest)[[:space:]]*\(' "$1"; }
parameterized() { grep -qE '^[[:space:]]*ParameterizedTest[[:space:]]*\(' "$1"; }

run_one() {
  src=$1
  name=$(basename "$src" .c)
  bin="$BUILD/tests/$(basename "$(dirname "$src")")/$name"
  wanted "$name" || return
  matched=$((matched + 1))
  want=$(defined "$src")
  atleast=$want
  [ "$atleast" -gt 0 ] || atleast=1
  echo "== $name"
  if [ ! -x "$bin" ]; then
    fail "$name" "$atleast" "$bin is not built; its $want tests count as failed"
    return
  fi
  # Criterion: -j2 (two cores), a per-test timeout; the whole program is bounded too.
  # The TAP file names the skipped tests, which the synthesis line leaves out.
  rm -f "$tap"
  # a program with suppressions of its own (tests/lsan/NAME.supp) under make san
  lsan=${LSAN_OPTIONS:-}
  if [ "${SORTIE_SAN:-0}" = 1 ] && [ -f "$here/tests/lsan/$name.supp" ]; then
    lsan="suppressions=$here/tests/lsan/$name.supp:print_suppressions=0"
  fi
  LSAN_OPTIONS=$lsan timeout -k 10 900 "$bin" -j2 --timeout 120 --full-stats --tap="$tap" >"$log" 2>&1
  rc=$?
  cat "$log"
  syn=$(grep 'Synthesis:' "$log" | tail -n 1)
  if [ -n "$syn" ]; then
    t=$(echo "$syn" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
    p=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    s=$(grep -cE '^ok .* # SKIP' "$tap" 2>/dev/null)
    s=${s:-0}
    passed=$((passed + p))
    failed=$((failed + t - p))
    if [ "$s" -gt 0 ]; then
      skipped=$((skipped + s))
      skipped_names="$skipped_names $name($s)"
      grep -E '^ok .* # SKIP' "$tap" | sed 's/^ok - /   skipped: /'
    fi
    if [ "$t" != "$p" ]; then
      failed_names="$failed_names $name"
      # kept for the end of the run: a CI log is often read from its tail
      { echo "-- $name"
        grep -E -A4 'Assertion Failed|\[FAIL\]|Unexpected signal' "$log" | head -n 60
      } >>"$summary"
    fi
    if [ $((t + s)) -lt "$want" ]; then
      fail "$name" $((want - t - s)) "ran $t and skipped $s tests, but $src defines $want"
    elif [ $((t + s)) -gt "$want" ] && ! parameterized "$src"; then
      fail "$name" 1 "reported $((t + s)) tests, more than the $want Test( counted in $src: tests/run.sh miscounts them"
    fi
  else
    fail "$name" "$atleast" "ended without a report (exit $rc); its $want tests count as failed"
    { echo "   its last lines:"; tail -n 20 "$log"; } >>"$summary"
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

# a fuzz target built with tests/fuzz/replay.c as main(), over its corpus: one test
run_replay() {
  src=$1
  name=$(basename "$src" .c)
  bin="$BUILD/tests/fuzz/$name"
  wanted "$name" || return
  matched=$((matched + 1))
  echo "== $name (corpus replay)"
  if [ ! -x "$bin" ]; then
    fail "$name" 1 "$bin is not built"
    return
  fi
  dirs="$here/tests/fuzz/corpus/${name#fuzz_}"
  [ -d "$here/tests/fuzz/seeds/${name#fuzz_}" ] && dirs="$dirs $here/tests/fuzz/seeds/${name#fuzz_}"
  # shellcheck disable=SC2086 # two folders at most, no spaces in the repository's paths
  timeout -k 10 300 "$bin" $dirs >"$log" 2>&1
  rc=$?
  n=$(sed -n 's/^.*: \([0-9][0-9]*\) inputs replayed.*/\1/p' "$log" | tail -n 1)
  head -n 200 "$log"
  if [ $rc -eq 0 ] && [ "${n:-0}" -gt 0 ]; then
    passed=$((passed + 1))
  else
    fail "$name" 1 "the corpus replay failed (exit $rc, ${n:-no} inputs replayed)"
    # the input that failed and what the sanitizer or the target said of it
    grep -E 'died on input|SUMMARY: |runtime error:|ERROR: |returned|no input|: .*: ' "$log" |
      head -n 12 >>"$summary"
  fi
}

# a shell test (tests/pkg/test_*.sh): each `run_check NAME` line in it is one
# test, reported as "ok - NAME", "not ok - NAME: why" or "ok - NAME # SKIP why"
run_sh() {
  src=$1
  name=$(basename "$src" .sh)
  wanted "$name" || return
  matched=$((matched + 1))
  want=$(grep -cE '^run_check [a-z_]+$' "$src")
  echo "== $name"
  timeout -k 10 900 sh "$src" >"$log" 2>&1
  rc=$?
  cat "$log"
  p=$(grep -cE '^ok - [a-z_]+$' "$log")
  s=$(grep -cE '^ok - [a-z_]+ # SKIP' "$log")
  f=$(grep -cE '^not ok - [a-z_]+' "$log")
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$s" -gt 0 ]; then
    skipped=$((skipped + s))
    skipped_names="$skipped_names $name($s)"
  fi
  if [ "$f" -gt 0 ]; then
    failed_names="$failed_names $name"
    { echo "-- $name"; grep -E '^not ok - ' "$log"; } >>"$summary"
  fi
  if [ $((p + s + f)) -lt "$want" ]; then
    fail "$name" $((want - p - s - f)) "reported $((p + s + f)) of the $want checks $src defines (exit $rc)"
  elif [ $rc -ne 0 ] && [ "$f" = 0 ]; then
    fail "$name" 1 "exited with $rc"
  fi
}

# SORTIE_SUITE=faults: the fault tests (tests/faults) alone, no replay, no browser
if [ "${SORTIE_SUITE:-}" = faults ]; then
  suites="faults"
else
  suites="unit integration"
fi
for suite in $suites; do
  for src in "$here"/tests/"$suite"/test_*.c; do
    [ -f "$src" ] && run_one "$src"
  done
  if [ "$suite" = unit ]; then
    for src in "$here"/tests/fuzz/fuzz_*.c; do
      [ -f "$src" ] && run_replay "$src"
    done
  fi
done

if [ "${SORTIE_SUITE:-}" != faults ]; then
  for src in "$here"/tests/pkg/test_*.sh; do
    [ -f "$src" ] && run_sh "$src"
  done
fi

# the contract table (tests/CONTRACT.md) names a test for every documented
# behaviour, and every test it names exists: one test
if [ "${SORTIE_SUITE:-}" != faults ] && wanted contract; then
  matched=$((matched + 1))
  echo "== contract"
  if sh "$here/tests/contract.sh" "$here"; then
    passed=$((passed + 1))
  else
    fail contract 1 "tests/CONTRACT.md is incomplete or names a test that does not exist (above)"
  fi
fi

# browser tests (tests/browser), when their runner is there
if [ "${SORTIE_SUITE:-}" != faults ] && [ -f "$here/tests/browser/run.sh" ] &&
   { [ -z "$filter" ] || [ "$filter" = browser ]; }; then
  matched=$((matched + 1))
  echo "== browser"
  out=$(sh "$here/tests/browser/run.sh" 2>&1)
  echo "$out"
  # every test( the files declare must be passed, failed or skipped
  want=$(cat "$here"/tests/browser/*.test.mjs | grep -cE '^[[:space:]]*(test|it)(\.(skip|todo|only))?\(')
  bskip=0
  for k in skipped todo; do
    v=$(echo "$out" | sed -n "s/^ℹ $k \([0-9][0-9]*\)\$/\1/p" | tail -n 1)
    bskip=$((bskip + ${v:-0}))
  done
  if [ "$bskip" -gt 0 ]; then
    skipped=$((skipped + bskip))
    skipped_names="$skipped_names browser($bskip)"
  fi
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -n "$line" ]; then
    bpass=${line%% passed*}
    f=${line#*, }
    bfail=${f%% failed}
    passed=$((passed + bpass))
    failed=$((failed + bfail))
    if [ "$bfail" != 0 ]; then
      failed_names="$failed_names browser"
      { echo "-- browser"
        echo "$out" | grep -E -A6 '^ *✖' | head -n 60
      } >>"$summary"
    fi
    got=$((bpass + bfail + bskip))
    if [ "$got" -lt "$want" ]; then
      fail browser $((want - got)) "$bpass passed, $bfail failed and $bskip skipped, but tests/browser/*.test.mjs declare $want"
    fi
  else
    [ "$want" -gt 0 ] || want=1
    fail browser "$want" "the browser runner gave no count; its $want tests count as failed"
  fi
fi

if [ "$matched" -eq 0 ]; then
  fail "${filter:-(all)}" 1 "no test program matches '$filter'"
fi

if [ -n "$failed_names" ]; then
  [ -s "$summary" ] && { echo "== what failed"; cat "$summary"; }
  echo "failed in:$failed_names"
fi
[ -n "$skipped_names" ] && echo "skipped in:$skipped_names"
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
