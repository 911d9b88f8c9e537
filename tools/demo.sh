#!/bin/sh
# Loads the demo mission into a running stack through the REST API (as a
# `service` would) and prints the URL of its page with a demo user's token.
# Environment: BUILD, PORT, SORTIE_CONF (all set by tools/stack.sh).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$here/build}
PORT=${PORT:-8080}
base="http://127.0.0.1:$PORT"
svc=$("$BUILD/bin/sortie-token" -r service -t 600 demo-feed)

create() {
  curl -s -o /dev/null -w '%{http_code}' -X POST "$base/api/signals" \
    -H "Authorization: Bearer $svc" -H 'Content-Type: application/json' \
    -d '{"id":"'"$1"'","symbol":"AAPL","direction":"BUY","entry":"145.75",
         "stop_loss":"140.00","take_profit":"160.00","ttl":86400,
         "title":"Apple: breakout above 145",
         "briefing":"Buy the breakout above the 145 resistance.\nStop below the 140 support, target the 160 gap."}'
}

id=demo
code=$(create "$id")
if [ "$code" = 409 ]; then
  # kept from an earlier run: reuse it while it is live, else make a fresh one
  if ! curl -fsS "$base/api/signals/$id" | grep -q '"status":"ACTIVE"'; then
    id="demo-$(date +%s)"
    code=$(create "$id")
  else
    code=201
  fi
fi
[ "$code" = 201 ] || { echo "demo: could not create the demo signal (HTTP $code)" >&2; exit 1; }

user=$("$BUILD/bin/sortie-token" -r user -t 86400 alice)
echo "Demo mission ($id), as user alice:"
echo "  $base/mission/$id?token=$user"
