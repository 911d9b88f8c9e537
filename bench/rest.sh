#!/bin/sh
# The REST half of `make bench` (called by bench/run.sh with a running stack):
# wrk against the same Apache at concurrency 8, 32 and 128 for
#   static   a file Apache serves itself (the floor)
#   hello    a bare FastCGI program (pool of 8, mod_proxy_fcgi)
#   hello+r  the same plus one EVALSHA
#   fire     POST /api/fire, everything (JWT, JSON, validation, the Lua script)
#   flask    the same fire by the seed's stack: Flask + redis-py under gunicorn
#            (bench/peer/fire_flask.py), proxied by the same Apache
# then fire again with the API served through mod_fcgid instead of the pool,
# which is how the shipped configuration was chosen (DESIGN.md's note).
#   sh bench/rest.sh RUN_DIR SECONDS
set -u
RUN=$1
SECS=$2
here=$(cd "$(dirname "$0")/.." && pwd)
base="http://127.0.0.1:$PORT"
command -v wrk >/dev/null || { echo "rest: wrk is missing (tools/deps.sh --bench)"; exit 1; }
[ -x /usr/bin/gunicorn ] || { echo "rest: gunicorn is missing (tools/deps.sh --bench)"; exit 1; }

# the baselines, behind the same Apache
"$BUILD/bench/hello" -s "$RUN/hello.sock" -n 8 & h1=$!
"$BUILD/bench/hello" -s "$RUN/hello-r.sock" -n 8 -r & h2=$!
# the seed's stack, Flask + redis-py under gunicorn (bench/peer), 8 workers
# like the pool, doing the same fire (same checks, same Lua script)
FLASK_PORT=$((PORT + 5))
/usr/bin/gunicorn -w 8 -b "127.0.0.1:$FLASK_PORT" --chdir "$here/bench/peer" \
  --log-level warning fire_flask:app >"$RUN/gunicorn.log" 2>&1 & h3=$!
trap 'kill $h1 $h2 $h3 2>/dev/null' EXIT
mkdir -p "$RUN/apache/extra"
cat > "$RUN/apache/extra/bench.conf" <<EOC
ProxyPass "/bench/hello-redis" "unix:$RUN/hello-r.sock|fcgi://hello-r/"
ProxyPass "/bench/hello" "unix:$RUN/hello.sock|fcgi://hello/"
ProxyPass "/bench/flask/" "http://127.0.0.1:$FLASK_PORT/"
EOC
SORTIE_QUIET=1 sh "$here/tools/stack.sh" apache-stop
SORTIE_QUIET=1 sh "$here/tools/stack.sh" apache-start || exit 1
sleep 0.5

# users and signals for the fires
: > "$RUN/tokens"
i=0
while [ $i -lt 1000 ]; do
  "$BUILD/bin/sortie-token" -t 36000 "bu$i" >> "$RUN/tokens"
  i=$((i + 1))
done
svc=$("$BUILD/bin/sortie-token" -r service -t 36000 bench-feed)
run=0
make_signals() {
  run=$((run + 1))
  local k=0
  while [ $k -lt 200 ]; do
    curl -s -o /dev/null -X POST "$base/api/signals" -H "Authorization: Bearer $svc" \
      -H 'Content-Type: application/json' \
      -d "{\"id\":\"b${run}_$k\",\"symbol\":\"BNCH\",\"direction\":\"BUY\",\"entry\":\"10.00\",\"stop_loss\":\"9.00\",\"take_profit\":\"12.00\",\"ttl\":36000}"
    k=$((k + 1))
  done
  export BENCH_TOKENS="$RUN/tokens" BENCH_NSIG=200 BENCH_SIGPREFIX="b${run}_"
}

# CPU time (clock ticks, user + system) used so far by process $1 and its
# children (a pool's or Apache's workers)
ticks() {
  local total=0 t
  [ -n "$1" ] || { echo 0; return; }
  # the parent counts with its reaped children (cutime, cstime): a worker
  # that exits between two readings still counts
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0)
  for pid in $(pgrep -P "$1"); do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo $total
}
HZ=$(getconf CLK_TCK)

# one wrk run -> "req/s p50 p99 non2xx" (and, in $cpu, the CPU µs per request
# of Apache, of the FastCGI pool whose master is $APP, and of Redis)
measure() {
  local c=$1 url=$2 script=${3:-}
  local out a0 f0 r0 a1 f1 r1
  local apache redis
  apache=$(cat "$RUN/apache/httpd.pid")
  redis=$(redis-cli -p "$REDIS_PORT" info server | awk -F: '/^process_id:/ {print $2 + 0}')
  a0=$(ticks "$apache") f0=$(ticks "$APP") r0=$(ticks "$redis")
  if [ -n "$script" ]; then
    out=$(wrk -t2 -c"$c" -d"${SECS}s" --latency -s "$script" "$url" 2>&1)
  else
    out=$(wrk -t2 -c"$c" -d"${SECS}s" --latency "$url" 2>&1)
  fi
  local rps p50 p99 bad
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  a1=$(ticks "$apache") f1=$(ticks "$APP") r1=$(ticks "$redis")
  cpu=$(awk -v n="$rps" -v s="$SECS" -v hz="$HZ" -v a=$((a1 - a0)) -v f=$((f1 - f0)) -v r=$((r1 - r0)) \
    'BEGIN { q = n * s; if (q < 1) q = 1; printf "%.0f %.0f %.0f", a * 1e6 / hz / q, f * 1e6 / hz / q, r * 1e6 / hz / q }')
  echo "$rps $p50 $p99 ${bad:-0}"
}

echo ""
echo "## REST through Apache (event MPM), wrk -t2, ${SECS}s per cell: requests/s, p50, p99, non-2xx,"
echo "## and CPU µs per request spent in Apache, in the FastCGI program and in Redis"
printf '%-22s %-6s %-10s %-10s %-10s %-8s %s\n' what conc req/s p50 p99 non-2xx "cpu apache/app/redis"
for c in 8 32 128; do
  for what in static hello hello+r fire flask; do
    case $what in
      static) APP=; measure "$c" "$base/static/mission.css" > "$RUN/m" ;;
      hello) APP=$h1; measure "$c" "$base/bench/hello" > "$RUN/m" ;;
      hello+r) APP=$h2; measure "$c" "$base/bench/hello-redis" > "$RUN/m" ;;
      fire) make_signals; APP=$(cat "$RUN/api.pid"); measure "$c" "$base/api/fire" "$here/bench/fire.lua" > "$RUN/m" ;;
      flask) make_signals; APP=$h3; export BENCH_PATH=/bench/flask/api/fire
        measure "$c" "$base/bench/flask/api/fire" "$here/bench/fire.lua" > "$RUN/m"
        unset BENCH_PATH ;;
    esac
    set -- $(cat "$RUN/m") $cpu
    printf '%-22s %-6s %-10s %-10s %-10s %-8s %s/%s/%s\n' "$what" "$c" "$1" "$2" "$3" "$4" "$5" "$6" "$7"
  done
done

# the same fires with mod_fcgid instead of the pool (processes capped at 16)
SORTIE_QUIET=1 sh "$here/tools/stack.sh" apache-stop
SORTIE_APACHE_MODE=fcgid SORTIE_QUIET=1 sh "$here/tools/stack.sh" apache-start || exit 1
for c in 8 32 128; do
  make_signals
  curl -s -o /dev/null "$base/api/signals/b${run}_0/fire-count" # start the first processes
  APP=
  r=$(measure "$c" "$base/api/fire" "$here/bench/fire.lua")
  set -- $r
  printf '%-22s %-6s %-10s %-10s %-10s %s\n' "fire (mod_fcgid)" "$c" "$1" "$2" "$3" "$4"
done
SORTIE_QUIET=1 sh "$here/tools/stack.sh" apache-stop
SORTIE_QUIET=1 sh "$here/tools/stack.sh" apache-start
