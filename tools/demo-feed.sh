#!/bin/sh
# The demo market feed: every second, a market_update for each demo symbol
# through POST /api/publish, as a real feed would (a random walk, in exact
# decimals: prices are kept as integers of their smallest unit).
# Environment: BUILD, PORT, SORTIE_CONF (set by tools/stack.sh). Runs until
# killed.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$here/build}
base="http://127.0.0.1:${PORT:-8080}"
token=$("$BUILD/bin/sortie-token" -r service -t 86400 demo-feed)
renewed=$(date +%s)

# symbol, price in units, decimals, largest step in units
set -- "AAPL 14575 2 25" "EURUSD 10850 4 6" "BTC-USD 6512300 2 4000"
state=""
for s in "$@"; do state="$state$s;"; done

fmt() { # units decimals -> decimal text
  awk -v u="$1" -v d="$2" 'BEGIN { s = u < 0 ? "-" : ""; if (u < 0) u = -u;
    p = 1; for (i = 0; i < d; i++) p *= 10;
    if (d == 0) printf "%s%d", s, u; else printf "%s%d.%0" d "d", s, int(u / p), u % p }'
}

while :; do
  now=$(date +%s)
  if [ $((now - renewed)) -gt 80000 ]; then
    token=$("$BUILD/bin/sortie-token" -r service -t 86400 demo-feed)
    renewed=$now
  fi
  next=""
  IFS=';'
  for item in $state; do
    [ -n "$item" ] || continue
    IFS=' '
    set -- $item
    sym=$1 units=$2 dec=$3 step=$4
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    delta=$(( r % (2 * step + 1) - step ))
    units=$((units + delta))
    [ $units -lt 1 ] && units=1
    price=$(fmt $units $dec)
    chg=$(fmt $delta $dec)
    [ $delta -ge 0 ] && chg="+$chg"
    curl -s -o /dev/null -X POST "$base/api/publish" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' \
      -d "{\"channel\":\"market:$sym\",\"type\":\"market_update\",\"data\":{\"symbol\":\"$sym\",\"price\":\"$price\",\"change\":\"$chg\"}}"
    next="$next$sym $units $dec $step;"
    IFS=';'
  done
  IFS=' '
  state=$next
  sleep 1
done
