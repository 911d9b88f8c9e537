#!/bin/sh
# Runs every tests/browser/*.test.mjs with Node's test runner, one file at a
# time (each starts its own stack and Chromium), and ends with one line:
# "N passed, N failed". Needs node, npm install here (playwright-core, react) and
# Debian's chromium (SORTIE_CHROMIUM to use another binary); whatever is
# missing is reported, and its tests count as failed, never as passed.
#   sh tests/browser/run.sh [NAME-FILTER]     (BUILD=... to pick the build folder)
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$repo/build}
case "$BUILD" in /*) ;; *) BUILD="$repo/$BUILD" ;; esac
export BUILD
chromium=${SORTIE_CHROMIUM:-/usr/bin/chromium}
filter=${1:-}

files=""
for f in "$here"/*.test.mjs; do
  [ -f "$f" ] || continue
  [ -n "$filter" ] && case "$(basename "$f")" in *"$filter"*) ;; *) continue ;; esac
  files="$files $f"
done
if [ -z "$files" ]; then
  echo "browser: no test file matches '${filter}'"
  echo "0 passed, 1 failed"
  exit 1
fi

# every test the files declare, to count as failed when the tests cannot run
declared() {
  n=$(cat $files | grep -cE "^[[:space:]]*test\(")
  [ "$n" -gt 0 ] || n=1
  echo "$n"
}
cannot_run() {
  echo "browser: $1"
  echo "browser: the browser tests did not run; they count as failed"
  echo "0 passed, $(declared) failed"
  exit 1
}

command -v node >/dev/null 2>&1 || cannot_run "node is missing (apt-get install nodejs npm)"
[ -x "$chromium" ] || cannot_run "$chromium is missing (apt-get install chromium)"
for m in playwright-core react react-dom; do
  [ -f "$here/node_modules/$m/package.json" ] ||
    cannot_run "node_modules/$m is missing: run 'npm ci' (or npm install) in tests/browser"
done
for b in cgi-bin/sortie-api bin/sortie-token bin/sortie-pushd; do
  [ -x "$BUILD/$b" ] || cannot_run "$BUILD/$b is missing: run make first"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sortie-browser-XXXXXX")
chmod 755 "$tmp"
# the worlds (stacks) go under SORTIE_TEST_TMP; any a killed test file left
# running is stopped here, by the pids it recorded (tests/run.sh does the same)
[ -n "${SORTIE_TEST_TMP:-}" ] || export SORTIE_TEST_TMP="$tmp"
cleanup() {
  for w in "$SORTIE_TEST_TMP"/world-browser-*; do
    [ -d "$w" ] || continue
    SORTIE_RUN="$w" SORTIE_QUIET=1 sh "$repo/tools/stack.sh" stop >/dev/null 2>&1 || true
    rm -rf "$w"
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the spec reporter, shown as it goes and kept for the counts; the whole run is
# bounded, each file and test too (--test-force-exit: a file ends with its tests)
cd "$here" || exit 1
{
  timeout -k 10 1200 node --test --test-concurrency=1 --test-timeout=280000 --test-force-exit \
    --test-reporter=spec $files 2>&1
  echo $? > "$tmp/rc"
} | tee "$tmp/out"
rc=$(cat "$tmp/rc" 2>/dev/null || echo 1)

count() { sed -n "s/^ℹ $1 \([0-9][0-9]*\)\$/\1/p" "$tmp/out" | tail -n 1; }
pass=$(count pass); fail=$(count fail); cancelled=$(count cancelled)
pass=${pass:-0}; fail=${fail:-0}; cancelled=${cancelled:-0}
failed=$((fail + cancelled))
if [ -z "$(count tests)" ]; then
  echo "browser: the test runner gave no report (exit $rc)"
  failed=$((failed + 1))
elif [ "$rc" -ne 0 ] && [ $failed -eq 0 ]; then
  echo "browser: the test runner exited with $rc though no test failed"
  failed=1
fi
echo "$pass passed, $failed failed"
[ $failed -eq 0 ]
