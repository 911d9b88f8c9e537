#!/bin/sh
# Checks tests/CONTRACT.md, the table that maps every documented behaviour to
# the test that checks it, against the tests and the docs, so that it cannot
# rot:
#   - every row names at least one test, and every test it names exists:
#     `test_x.c:suite::name` is a Test(suite, name / Theory / ParameterizedTest
#     in tests/*/test_x.c; `x.test.mjs:title` is that exact title in
#     tests/browser/x.test.mjs; `fuzz_x.c` is a fuzz target (its corpus is
#     replayed by tests/run.sh); `test_x.sh:name` is a `run_check name` line
#     of a shell test tests/*/test_x.sh;
#   - nothing documented is missing from it: every endpoint heading of
#     docs/API.md and docs/PUSHD.md, every problem slug of API.md's error
#     table, every close code of PUSHD.md's table, every metric PUSHD.md names,
#     and every configuration key lib/cfg.c reads has a row of its kind.
# Prints what is wrong, then "contract: N rows, N test references, N problems";
# exits 1 when there is a problem.
#   sh tests/contract.sh [REPO]
set -u
here=${1:-$(cd "$(dirname "$0")/.." && pwd)}
table="$here/tests/CONTRACT.md"
problems=0
bad() { echo "contract: $*"; problems=$((problems + 1)); }

if [ ! -f "$table" ]; then
  bad "$table is missing"
  echo "contract: 0 rows, 0 test references, $problems problems"
  exit 1
fi

kinds="endpoint status problem header field event message close config signal metric command page behaviour"
tab=$(printf '\t')
# one line per table row: LINE<TAB>KIND<TAB>ITEM<TAB>TESTS<TAB>DOC (the header and
# separator rows left out; a row of another shape is reported)
rows=$(awk -F'|' -v kinds="$kinds" '
  BEGIN { n = split(kinds, k, " "); for (i = 1; i <= n; i++) ok[k[i]] = 1 }
  /^\|/ {
    if ($0 ~ /^\|[ -:|]*$/) next
    kind = $2; gsub(/^ +| +$/, "", kind)
    if (kind == "kind") next
    if (NF != 6 || !(kind in ok)) { printf "%d\tBAD\t%s\t\n", NR, $0; next }
    printf "%d\t%s\t%s\t%s\t%s\n", NR, kind, $3, $5, $4
  }' "$table")

nrows=0
nrefs=0
# test references, one per line: LINE<TAB>REF
refs=$(echo "$rows" | while IFS="$tab" read -r line kind item tests _doc; do
  [ -n "$line" ] || continue
  if [ "$kind" = BAD ]; then
    echo "$line${tab}!BAD $item"
    continue
  fi
  found=0
  # the backticked parts of the test column
  rest=$tests
  while :; do
    case "$rest" in *'`'*'`'*) ;; *) break ;; esac
    rest=${rest#*\`}
    ref=${rest%%\`*}
    rest=${rest#*\`}
    echo "$line$tab$ref"
    found=1
  done
  [ $found = 1 ] || echo "$line${tab}!NONE"
done)

resolve() { # REF: 0 when the test it names exists
  case "$1" in
    fuzz_*.c)
      [ -f "$here/tests/fuzz/$1" ] ;;
    *.c:*::*)
      file=${1%%:*}
      rest=${1#*:}
      suite=${rest%%::*}
      name=${rest#*::}
      for f in "$here"/tests/*/"$file"; do
        [ -f "$f" ] && grep -qE "^[[:space:]]*(Test|Theory|ParameterizedTest)[[:space:]]*\([[:space:]]*$suite[[:space:]]*,[[:space:]]*$name[[:space:]]*[,)]" "$f" && return 0
      done
      return 1 ;;
    test_*.sh:*)
      # a check of a shell test: a `run_check NAME` line in tests/*/test_x.sh
      file=${1%%:*}
      name=${1#*:}
      for f in "$here"/tests/*/"$file"; do
        [ -f "$f" ] && grep -qx "run_check $name" "$f" && return 0
      done
      return 1 ;;
    *.mjs:*)
      file=${1%%:*}
      title=${1#*:}
      [ -f "$here/tests/browser/$file" ] && grep -qF -- "$title" "$here/tests/browser/$file" ;;
    *) return 1 ;;
  esac
}

while IFS="$tab" read -r line ref; do
  [ -n "$line" ] || continue
  case "$ref" in
    '!BAD '*) bad "line $line: not a row of | kind | item | doc | test | with a known kind: ${ref#!BAD }"; continue ;;
    '!NONE') bad "line $line: names no test"; continue ;;
  esac
  nrefs=$((nrefs + 1))
  resolve "$ref" || bad "line $line: no such test: $ref"
done <<EOF
$refs
EOF
nrows=$(echo "$rows" | grep -c .)

# has KIND TEXT [DOC]: a row of that kind whose item contains TEXT (and whose
# doc column names DOC)
has() {
  echo "$rows" | awk -F'\t' -v k="$1" -v t="$2" -v d="${3:-}" \
    '$2 == k && index($3, t) && index($5, d) { f = 1 } END { exit !f }'
}

# endpoints: the `METHOD /path` of every heading (the query left out)
for doc in API.md PUSHD.md; do
  grep -E '^#{2,4} ' "$here/docs/$doc" | grep -oE '`(GET|POST|PUT|PATCH|DELETE) /[^]`?[]*' | tr -d '`' |
    while read -r ep; do
      has endpoint "$ep" "$doc" || echo "endpoint $ep ($doc)"
    done
done >"${TMPDIR:-/tmp}/contract.$$"
# problem slugs: the backticked words of the error table's second column
awk -F'|' '$2 ~ /^ *[0-9][0-9][0-9] *$/ { print $3 }' "$here/docs/API.md" | grep -oE '`[a-z-]+`' | tr -d '`' |
  while read -r slug; do
    has problem "\`$slug\`" || echo "problem $slug (API.md)"
  done >>"${TMPDIR:-/tmp}/contract.$$"
# close codes: the first column of PUSHD.md's close-code table
awk -F'|' '$2 ~ /^ *[0-9][0-9][0-9][0-9] *$/ { gsub(/ /, "", $2); print $2 }' "$here/docs/PUSHD.md" |
  while read -r code; do
    has close "$code" || echo "close code $code (PUSHD.md)"
  done >>"${TMPDIR:-/tmp}/contract.$$"
# metrics PUSHD.md names
grep -oE 'sortie_pushd_[a-z_]+' "$here/docs/PUSHD.md" | sort -u |
  while read -r m; do
    has metric "$m" || echo "metric $m (PUSHD.md)"
  done >>"${TMPDIR:-/tmp}/contract.$$"
# configuration keys lib/cfg.c reads
sed -n 's/^[[:space:]]*[SI]("\([a-z_]*\.[a-z_]*\)".*/\1/p' "$here/lib/cfg.c" |
  while read -r key; do
    has config "\`$key\`" || echo "config key $key (lib/cfg.c)"
  done >>"${TMPDIR:-/tmp}/contract.$$"
while read -r what; do
  [ -n "$what" ] && bad "no row for the $what"
done <"${TMPDIR:-/tmp}/contract.$$"
rm -f "${TMPDIR:-/tmp}/contract.$$"

echo "contract: $nrows rows, $nrefs test references, $problems problems"
[ $problems -eq 0 ]
