#!/bin/sh
# make bench: the figures of docs/PERFORMANCE.md, measured on this machine in
# one run. Every load is bounded in count and time and stops by itself; the
# servers run on 127.0.0.1 in a temp folder and are stopped at the end.
#
#   BUILD=build sh bench/run.sh [pushd|nchan|many|fire|rest|wait|redis|presence|all]
#
# presence: connects/s and deliveries/s with push.presence off and on, in the
# same run (bench/presence.sh; BENCH_PRESENCE=2000 subscribers, two tabs a
# user, BENCH_PRESENCE_RATE=10 events/s).
#
# redis: Redis time per fire (bench/rediscost.sh; BENCH_REDIS_FIRES=5000).
#
# nchan: sortie-pushd side by side with nchan and the bare limit server, a
# sweep of publish rates per cell, cores shared and pinned (bench/side.sh,
# which lists its own BENCH_SWEEP_* and BENCH_SIDE_* knobs; about 15 minutes
# with its defaults, the longest part of `all`).
#
# Environment (defaults): BENCH_PORT=19480 (Apache; pushd +1, Redis +2),
# BENCH_SECONDS=10 (per measurement), BENCH_IDLE=5000 (idle connections),
# BENCH_WORKERS=2 (pushd workers), BENCH_MANY=50000 (idle subscribers held
# at once, with BENCH_MANY_WORKERS=4 workers, over BENCH_MANY_TRANSPORTS="sse
# ws"), BENCH_OUT=bench/results (where the raw output goes).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$here/$BUILD" ;; esac
what=${1:-all}
PORT=${BENCH_PORT:-19480}
PUSH_PORT=$((PORT + 1))
REDIS_PORT=$((PORT + 2))
SECS=${BENCH_SECONDS:-10}
IDLE=${BENCH_IDLE:-5000}
WORKERS=${BENCH_WORKERS:-2}
MANY=${BENCH_MANY:-50000}
MANY_WORKERS=${BENCH_MANY_WORKERS:-4}
OUT=${BENCH_OUT:-$here/bench/results}
mkdir -p "$OUT"
RUN=$(mktemp -d "${TMPDIR:-/tmp}/sortie-bench-XXXXXX")
chmod 755 "$RUN"
export SORTIE_RUN="$RUN" PORT PUSH_PORT REDIS_PORT BUILD
export SORTIE_CONF="$RUN/sortie.conf"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$OUT/bench-$stamp.txt"

cleanup() {
  [ -n "${fan_pid:-}" ] && kill "$fan_pid" 2>/dev/null
  SORTIE_QUIET=1 sh "$here/tools/stack.sh" stop >/dev/null 2>&1
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$@" | tee -a "$report"; }

SORTIE_EXTRA_CONF="push.max_conn_per_user = 100000
push.workers = $WORKERS
api.fire_rate_per_min = 1000000
log.level = warn" SORTIE_QUIET=1 SORTIE_NO_DEMO=1 WORKERS=8 \
  sh "$here/tools/stack.sh" start || exit 1

say "# Sortie benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r)"
say "# command: make bench   (BUILD=$BUILD sh bench/run.sh $what; BENCH_SECONDS=$SECS BENCH_IDLE=$IDLE BENCH_WORKERS=$WORKERS)"

token=$("$BUILD/bin/sortie-token" -t 36000 bench-user)

# RSS (KiB) of the push daemon's workers, summed
pushd_rss() {
  master=$(cat "$RUN/pushd.pid")
  total=0
  for p in $(pgrep -P "$master"); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + r))
  done
  echo $total
}

wait_conns_zero() {
  local i=0
  while [ $i -lt 100 ]; do
    c=$(curl -s "http://127.0.0.1:$PUSH_PORT/health" | sed 's/.*"sse":\([0-9]*\),"ws":\([0-9]*\).*/\1 \2/')
    [ "$c" = "0 0" ] && return 0
    sleep 0.2
    i=$((i + 1))
  done
}

idle_memory() {
  local t=$1 before after fifo i ready per
  wait_conns_zero
  sleep 6 # past the daemon's 5 s memory trim: a clean baseline
  before=$(pushd_rss)
  fifo="$RUN/idle.fifo"
  rm -f "$fifo"
  mkfifo "$fifo"
  "$BUILD/bench/fanout" -p "$PUSH_PORT" -t "$t" -n "$IDLE" -c "market:IDLE" -k "$token" -i \
    <"$fifo" >"$RUN/idle.out" 2>&1 &
  fan_pid=$!
  exec 9>"$fifo"
  i=0
  while ! grep -q '^ready' "$RUN/idle.out" && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
  sleep 6 # past the daemon's 5 s memory trim
  after=$(pushd_rss)
  ready=$(grep '^ready' "$RUN/idle.out")
  exec 9>&-
  wait "$fan_pid" 2>/dev/null
  fan_pid=
  per=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.2f", (a - b) / n }')
  say "idle $t: $IDLE connections, pushd RSS $before KiB -> $after KiB = $per KiB per connection ($ready)"
}

# the events sortie-pushd's workers wrote to clients, all workers together
events_out() {
  curl -s "http://127.0.0.1:$PUSH_PORT/metrics" | awk '$1 == "sortie_pushd_events_out_total" { print $2 }'
}

fanout() {
  local t=$1 n=$2 rate=$3 ch k pub res sent expect out0 out1
  wait_conns_zero
  ch="market:F$(date +%s%N | tail -c 7)"
  "$BUILD/bench/fanout" -p "$PUSH_PORT" -t "$t" -n "$n" -c "$ch" -k "$token" -d $((SECS + 2)) \
    >"$RUN/fan.out" 2>&1 &
  fan_pid=$!
  k=0
  while ! grep -q '^ready' "$RUN/fan.out" && [ $k -lt 600 ]; do sleep 0.2; k=$((k + 1)); done
  out0=$(events_out)
  pub=$("$BUILD/bench/publish" -c "$ch" -r "$rate" -d "$SECS")
  wait "$fan_pid"
  out1=$(events_out)
  fan_pid=
  res=$(grep '^transport=' "$RUN/fan.out")
  got=$(echo "$res" | sed 's/.*received=\([0-9]*\).*/\1/')
  sent=$(echo "$pub" | sed 's/published=\([0-9]*\).*/\1/')
  expect=$((sent * n))
  local per=$((got / SECS))
  # beside what the client read: what the daemon says it wrote to clients
  # meanwhile, and how long the publisher took (the client stops reading
  # SECS + 3 s after it was ready, so a late publisher shows as a loss)
  say "fanout $t: $n subscribers x $rate events/s for ${SECS}s: expected $expect, received $got ($per deliveries/s), $(echo "$res" | sed 's/.*\(dead=[0-9]*\).*\(p50_ms=.*\)/\1 \2/'); daemon wrote $((out1 - out0)); publisher took $(echo "$pub" | sed 's/.*seconds=\([0-9.]*\).*/\1/') s"
}

if [ "$what" = all ] || [ "$what" = pushd ]; then
  say ""
  say "## sortie-pushd ($WORKERS workers), one channel, ~45-byte events"
  idle_memory sse
  idle_memory ws
  fanout sse 1000 100
  fanout ws 1000 100
  fanout sse 5000 10
  fanout ws 5000 10
  fanout sse 10000 10
  fanout ws 10000 10
fi

if [ "$what" = all ] || [ "$what" = nchan ]; then
  sh "$here/bench/side.sh" "$RUN" "$token" | tee -a "$report"
fi

# Many idle subscribers at once (DESIGN.md: 50,000 on this 2-core machine;
# issue 11: 100,000 with BENCH_MANY=100000 BENCH_MANY_WORKERS=8).
# A process here may hold 20,000 descriptors, so the daemon runs with more
# workers for this step (at most ~12,500 connections each) and the
# connections come from several client processes (at most 17,000 each),
# each from its own loopback address (one address has only ~28,000 ports
# towards one server port). Beside the daemon's RSS, the kernel's side: its
# slab memory (/proc/meminfo "Slab": the sockets themselves, both ends of each
# connection, and whatever else the machine did meanwhile) and the TCP
# buffers it holds (/proc/net/sockstat "mem"; idle sockets hold none).
tcp_mem_kib() {
  echo "$(awk '/^Slab:/ { print $2 }' /proc/meminfo) $(awk -v pg="$(getconf PAGESIZE)" \
    '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) * pg / 1024 }' /proc/net/sockstat)"
}
many_idle() {
  local t=$1 per procs i j k ready dead conns rss_before rss_after tcp_before tcp_after
  per=17000
  procs=$(( (MANY + per - 1) / per ))
  if [ $procs -gt 6 ]; then # one descriptor of ours per client process: 3 to 8
    say "many idle: BENCH_MANY=$MANY is more than this step holds (102,000)"
    return 1
  fi
  SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-stop
  SORTIE_PUSH_WORKERS=$MANY_WORKERS SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-start || return 1
  sleep 6
  rss_before=$(pushd_rss)
  tcp_before=$(tcp_mem_kib)
  nstat -n >/dev/null 2>&1
  i=0
  while [ $i -lt $procs ]; do
    k=$per
    [ $((i * per + per)) -gt "$MANY" ] && k=$((MANY - i * per))
    rm -f "$RUN/many$i.fifo"
    mkfifo "$RUN/many$i.fifo"
    "$BUILD/bench/fanout" -p "$PUSH_PORT" -t "$t" -n "$k" -c "market:MANY" -k "$token" -i \
      -b "127.0.0.$((i + 2))" <"$RUN/many$i.fifo" >"$RUN/many$i.out" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- &
    eval "many_pid$i=\$!"
    eval "exec $((i + 3))>\"\$RUN/many\$i.fifo\""
    i=$((i + 1))
  done
  j=0
  while [ "$(cat "$RUN"/many*.out 2>/dev/null | grep -c '^ready')" -lt $procs ] && [ $j -lt 900 ]; do
    sleep 0.2
    j=$((j + 1))
  done
  sleep 6
  conns=$(curl -s "http://127.0.0.1:$PUSH_PORT/health" | sed 's/.*"connections":{\([^}]*\)}.*/\1/')
  rss_after=$(pushd_rss)
  tcp_after=$(tcp_mem_kib)
  # subscribed counts the connections that subscribed, dead those that
  # ended, lost those of the dead that had subscribed first
  ready=$(cat "$RUN"/many*.out | awk -F'[ =]' '/^ready/ {s += $3; d += $5; l += $9} END {print s + 0, d + 0, l + 0}')
  set -- $ready
  i=0
  while [ $i -lt $procs ]; do
    eval "exec $((i + 3))>&-"
    eval "wait \$many_pid$i" 2>/dev/null
    i=$((i + 1))
  done
  grep -h 'fanout:' "$RUN"/many*.out | sort | uniq -c | head -5 | tee -a "$report"
  # why connections ended early: the kernel's counters over the step (a full
  # accept queue, resets, aborts) and the daemon's own (refusals, cut-offs)
  say "many idle $t: kernel: $(nstat 2>/dev/null | awk '/ListenOverflows|ListenDrops|EstabResets|AbortOn|DeferAccept/ { printf "%s=%s ", $1, $2 }')"
  say "many idle $t: log: $(awk '$2 != "info" { $1 = ""; $4 = ""; print }' "$RUN/log/sortie.log" 2>/dev/null | cut -c1-90 | sort | uniq -c | sort -rn | head -3 | tr '\n' ';')"
  say "many idle $t: pushd: $(curl -s "http://127.0.0.1:$PUSH_PORT/metrics" | awk '/^sortie_pushd_(refused|slow_consumer)/ { printf "%s=%s ", $1, $2 }')"
  rm -f "$RUN"/many*
  say "many idle $t: $MANY connections from $procs client processes to $MANY_WORKERS workers: subscribed $1 (of which dropped later $3), refused or dropped before subscribing $(($2 - $3)), neither within 120 s $((MANY - $1 - $2 + $3)); pushd /health connections {$conns}; workers' RSS $rss_before KiB -> $rss_after KiB ($(( (rss_after - rss_before) * 1024 / (${1:-0} - ${3:-0} + 1) )) bytes each); kernel slab, TCP buffers (KiB) $tcp_before -> $tcp_after"
  SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-stop
  SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-start
}

# Fire to client: 100 subscribers (or $3) on a signal's mission channel, 10 fires a
# second over REST through Apache for 3 x BENCH_SECONDS; each fire timed from the request written
# to its fire_count_update read by every subscriber (bench/firelat.c).
firelat() {
  local t=$1 via=$2 n=${3:-100} sid pport prefix res
  wait_conns_zero
  sid="lat$(date +%s%N | tail -c 9)"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/api/signals" -H "Authorization: Bearer $svc" \
    -H 'Content-Type: application/json' \
    -d "{\"id\":\"$sid\",\"symbol\":\"BNCH\",\"direction\":\"BUY\",\"entry\":\"10.00\",\"stop_loss\":\"9.00\",\"take_profit\":\"12.00\",\"ttl\":36000}"
  if [ "$via" = apache ]; then pport=$PORT prefix=/push; else pport=$PUSH_PORT prefix=; fi
  res=$("$BUILD/bench/firelat" -a "$PORT" -p "$pport" ${prefix:+-q $prefix} -t "$t" -n "$n" \
    -s "$sid" -k "$token" -u "$RUN/fire-users" -r 10 -d $((SECS * 3)) 2>&1 | tail -1)
  say "fire-to-client $t ($via, $n subscribers): $res"
}

if [ "$what" = all ] || [ "$what" = many ]; then
  say ""
  say "## $MANY idle subscribers at once"
  for t in ${BENCH_MANY_TRANSPORTS:-sse ws}; do
    many_idle "$t"
  done
fi

if [ "$what" = all ] || [ "$what" = fire ]; then
  svc=$("$BUILD/bin/sortie-token" -r service -t 36000 bench-feed)
  : > "$RUN/fire-users"
  i=0
  while [ $i -lt $((SECS * 30)) ]; do
    "$BUILD/bin/sortie-token" -t 36000 "fl$i" >> "$RUN/fire-users"
    i=$((i + 1))
  done
  say ""
  say "## fire to client: 100 subscribers, 10 fires/s over REST (POST /api/fire through Apache)"
  say "## deliver = fire request written -> fire_count_update read; answer = the same fire's 201 read"
  for via in direct apache; do
    firelat sse $via
    firelat ws $via
  done
  # what one more hop costs per subscriber: Apache holds each proxied stream
  # in a thread of its own, which wakes for every event; with a tenth of the
  # subscribers, the same fires
  firelat sse apache 10
  firelat ws apache 10
fi

if [ "$what" = all ] || [ "$what" = rest ]; then
  sh "$here/bench/rest.sh" "$RUN" "$SECS" | tee -a "$report"
fi

if [ "$what" = all ] || [ "$what" = wait ]; then
  sh "$here/bench/wait.sh" "$RUN" "$SECS" | tee -a "$report"
fi

if [ "$what" = all ] || [ "$what" = redis ]; then
  say ""
  sh "$here/bench/rediscost.sh" "${BENCH_REDIS_FIRES:-5000}" | tee -a "$report"
fi

if [ "$what" = all ] || [ "$what" = presence ]; then
  say ""
  for t in sse ws; do
    wait_conns_zero
    sh "$here/bench/presence.sh" "$RUN" "$SECS" "$t" | tee -a "$report"
  done
fi

echo ""
echo "raw results: $report"
