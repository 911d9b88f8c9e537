#!/bin/sh
# The cost of api.fire_wait_replicas (called by bench/run.sh with a running
# stack): POST /api/fire through Apache with wrk at concurrency 1 and 8, first
# as configured (no WAIT), then with the FastCGI pool restarted with
# api.fire_wait_replicas=1 and one local replica of the stack's Redis, then
# the pool restarted as it was. 4 x SECONDS of load, in the same run, so the
# ratios are what to read.
#   sh bench/wait.sh RUN_DIR SECONDS
set -u
RUN=$1
SECS=$2
here=$(cd "$(dirname "$0")/.." && pwd)
base="http://127.0.0.1:$PORT"
RPORT=$((PORT + 6))
command -v wrk >/dev/null || { echo "wait: wrk is missing (tools/deps.sh --bench)"; exit 1; }

# the replica, in the run folder, stopped by its pid at the end
mkdir -p "$RUN/replica"
redis-server --bind 127.0.0.1 --port "$RPORT" --dir "$RUN/replica" --pidfile "$RUN/replica/redis.pid" \
  --logfile "$RUN/replica/redis.log" --daemonize yes --save '' --appendonly no \
  --replicaof 127.0.0.1 "$REDIS_PORT" >/dev/null || { echo "wait: the replica did not start"; exit 1; }
stop_replica() {
  [ -f "$RUN/replica/redis.pid" ] && kill "$(cat "$RUN/replica/redis.pid")" 2>/dev/null
}
trap stop_replica EXIT
i=0
until redis-cli -p "$RPORT" info replication 2>/dev/null | grep -q '^master_link_status:up'; do
  i=$((i + 1))
  [ $i -gt 100 ] && { echo "wait: the replica did not link (see $RUN/replica/redis.log)"; exit 1; }
  sleep 0.1
done

# the pool, restarted with the given environment (as tools/stack.sh starts it)
pool_restart() {
  p=$(cat "$RUN/api.pid")
  kill "$p" 2>/dev/null
  i=0
  while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  rm -f "$RUN/api.pid"
  env "$@" setsid "$BUILD/cgi-bin/sortie-api" -c "$RUN/sortie.conf" -s "$RUN/api.sock" -n 8 \
    -p "$RUN/api.pid" -m 666 </dev/null >>"$RUN/log/sortie.log" 2>&1 &
  i=0
  until [ -s "$RUN/api.pid" ] && curl -fsS -o /dev/null "$base/health"; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "wait: the pool did not restart"; exit 1; }
    sleep 0.1
  done
}

: > "$RUN/wait-tokens"
i=0
while [ $i -lt 300 ]; do
  "$BUILD/bin/sortie-token" -t 36000 "bw$i" >> "$RUN/wait-tokens"
  i=$((i + 1))
done
svc=$("$BUILD/bin/sortie-token" -r service -t 36000 bench-feed)
# fresh signals w<cell>_0..199 for each cell: every fire is a new (user, signal) pair
make_signals() {
  cell=$1
  k=0
  while [ $k -lt 200 ]; do
    curl -s -o /dev/null -X POST "$base/api/signals" -H "Authorization: Bearer $svc" \
      -H 'Content-Type: application/json' \
      -d "{\"id\":\"w${cell}_$k\",\"symbol\":\"BNCH\",\"direction\":\"BUY\",\"entry\":\"10.00\",\"stop_loss\":\"9.00\",\"take_profit\":\"12.00\",\"ttl\":36000}"
    k=$((k + 1))
  done
}

# one wrk run at concurrency $1 on fresh signals named after $2 -> "req/s p50 p99 non-2xx"
fire_cell() {
  c=$1 t=1
  [ "$c" -gt 1 ] && t=2
  make_signals "$2"
  out=$(BENCH_TOKENS="$RUN/wait-tokens" BENCH_NSIG=200 BENCH_SIGPREFIX="w${cell}_" BENCH_THREADS=$t \
    wrk -t"$t" -c"$c" -d"${SECS}s" --latency -s "$here/bench/fire.lua" "$base/api/fire" 2>&1)
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$rps $p50 $p99 ${bad:-0}"
}

echo ""
echo "## fire with api.fire_wait_replicas=1 (one local replica) vs without, wrk, ${SECS}s per cell"
printf '%-44s %-6s %-10s %-10s %-10s %s\n' what conc req/s p50 p99 non-2xx
for c in 1 8; do eval "off_$c=\"\$(fire_cell $c off$c)\""; done
pool_restart SORTIE_API_FIRE_WAIT_REPLICAS=1
for c in 1 8; do eval "on_$c=\"\$(fire_cell $c on$c)\""; done
pool_restart SORTIE_API_FIRE_WAIT_REPLICAS=0
for c in 1 8; do
  eval "set -- \$off_$c"
  printf '%-44s %-6s %-10s %-10s %-10s %s\n' "fire" "$c" "$1" "$2" "$3" "$4"
  r0=$1
  eval "set -- \$on_$c"
  printf '%-44s %-6s %-10s %-10s %-10s %s\n' "fire with fire_wait_replicas=1 (one local replica)" \
    "$c" "$1" "$2" "$3" "$4"
  echo "  ratio (wait / no wait) at concurrency $c: throughput $(awk -v a="$1" -v b="$r0" \
    'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
done
