#!/bin/sh
# The cost of presence (push.presence; docs/PUSHD.md "Presence"), called by
# bench/run.sh with a running stack. BENCH_PRESENCE=2000 subscribers of half
# as many users (two tabs each, bench/fanout -K) connect to one mission's
# channel, then bench/publish sends BENCH_PRESENCE_RATE=10 events a second to
# them for SECONDS; once with the daemon started again with push.presence = 0,
# once with it on, in the same run (read the ratios). Each line: connects/s
# (all subscribed, from the first connect), deliveries/s, Redis script calls
# and their time (INFO commandstats: every script, presence.lua's included)
# while connecting and over the whole step, and the mission's `watching`
# (GET /api/signals/{id}) at the end of the publishing.
#   sh bench/presence.sh RUN_DIR SECONDS [sse|ws]
set -u
RUN=$1
SECS=$2
T=${3:-sse}
here=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_PRESENCE:-2000}
RATE=${BENCH_PRESENCE_RATE:-10}
TABS=2
USERS=$(( (N + TABS - 1) / TABS ))

svc=$("$BUILD/bin/sortie-token" -r service -t 36000 bench-feed)
sid="pres$(date +%s%N | tail -c 9)"
curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/api/signals" -H "Authorization: Bearer $svc" \
  -H 'Content-Type: application/json' \
  -d "{\"id\":\"$sid\",\"symbol\":\"BNCH\",\"direction\":\"BUY\",\"entry\":\"10.00\",\"stop_loss\":\"9.00\",\"take_profit\":\"12.00\",\"ttl\":36000}"
: >"$RUN/presence-tokens"
i=0
while [ $i -lt $USERS ]; do
  "$BUILD/bin/sortie-token" -t 36000 "pu$i" >>"$RUN/presence-tokens"
  i=$((i + 1))
done

# "calls usec" of every script so far (EVALSHA)
rstat() {
  redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2/p'
}

restart_pushd() {
  SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-stop
  SORTIE_PUSH_PRESENCE=$1 SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-start || exit 1
}

step() {
  local mode=$1 fpid k r0c r0u r1c r1u r2c r2u ready ms res got pub sent watching
  restart_pushd "$2"
  set -- $(rstat)
  r0c=${1:-0} r0u=${2:-0}
  "$BUILD/bench/fanout" -p "$PUSH_PORT" -t "$T" -n "$N" -c "mission:$sid" -K "$RUN/presence-tokens" \
    -d $((SECS + 2)) >"$RUN/presence.out" 2>&1 &
  fpid=$!
  k=0
  while ! grep -q '^ready' "$RUN/presence.out" && [ $k -lt 700 ]; do sleep 0.2; k=$((k + 1)); done
  set -- $(rstat)
  r1c=${1:-0} r1u=${2:-0}
  pub=$("$BUILD/bench/publish" -c "mission:$sid" -r "$RATE" -d "$SECS")
  watching=$(curl -s "http://127.0.0.1:$PORT/api/signals/$sid" | sed -n 's/.*"watching":\([0-9]*\).*/\1/p')
  wait "$fpid"
  set -- $(rstat)
  r2c=${1:-0} r2u=${2:-0}
  ready=$(grep '^ready' "$RUN/presence.out")
  if [ -z "$ready" ]; then
    echo "presence $mode $T: bench/fanout ended without subscribing: $(head -c 300 "$RUN/presence.out")"
    return 1
  fi
  ms=$(echo "$ready" | sed 's/.*connect_ms=\([0-9]*\).*/\1/')
  res=$(grep '^transport=' "$RUN/presence.out")
  got=$(echo "$res" | sed 's/.*received=\([0-9]*\).*/\1/')
  sent=$(echo "$pub" | sed 's/published=\([0-9]*\).*/\1/')
  echo "presence $mode $T: $N subscribers ($USERS users x $TABS tabs): $ready =" \
    "$(awk -v n="$N" -v ms="$ms" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }') connects/s;" \
    "Redis scripts while connecting: $((r1c - r0c)) calls, $((r1u - r0u)) us;" \
    "deliveries: $got of $((sent * N)) = $((got / SECS))/s, $(echo "$res" | sed 's/.*\(dead=[0-9]*\).*\(p50_ms=[0-9]*\).*\(p99_ms=[0-9]*\).*/\1 \2 \3/');" \
    "Redis scripts over the step: $((r2c - r0c)) calls, $((r2u - r0u)) us; watching=${watching:-absent}"
}

echo "## presence: push.presence off, then on; $N subscribers of one mission, $RATE events/s for ${SECS}s"
step off 0
step on 1
# the stack as it was (the configuration's push.presence)
SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-stop
SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-start
