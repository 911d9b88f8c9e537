#!/bin/sh
# Sortie side by side with nchan, and with the limit (bench/bare.c): called by
# bench/run.sh (`sh bench/run.sh nchan`, also part of `all`) with its stack
# running. The same load client (bench/fanout) and the same events (28 bytes
# of data, publish time inside, bench/publish) for the three servers, each
# with BENCH_SIDE_WORKERS worker processes:
#   - sortie-pushd, fed through Redis by the publish script;
#   - nchan (Debian's nginx-light + libnginx-mod-nchan), a private nginx from
#     bench/nchan.conf in the run folder, fed by POST;
#   - bench/bare, fed through Redis like sortie-pushd: one write per delivery.
# First the idle memory per subscriber (Sortie and nchan); then, for every
# transport and subscriber count, a sweep of publish rates per server that
# stops at the first step with a loss or p99 >= BENCH_SWEEP_LIMIT_MS; all of
# it twice: cores shared, then servers and Redis pinned to core 0 and the
# client (and its publisher) to core 1. One table at the end.
#
#   sh bench/side.sh RUN_DIR TOKEN
#
# Environment (defaults): BENCH_SIDE_WORKERS=1, BENCH_SWEEP_SECONDS=5 (per
# step), BENCH_SWEEP_SUBS="1000 5000 10000", BENCH_SWEEP_MODES="shared
# pinned", BENCH_SWEEP_TRANSPORTS="sse ws", BENCH_SWEEP_STEPS (deliveries per
# second, see below), BENCH_SWEEP_LIMIT_MS=100, BENCH_SWEEP_RETRY=1 (a step
# that failed on p99 alone, under 1.5 times the limit, is run once more before
# it ends the sweep), BENCH_SIDE_IDLE (idle
# connections, BENCH_IDLE or 5000; 0 skips the idle step). From bench/run.sh:
# BUILD, PORT (nchan on +7, bare on +8), PUSH_PORT, REDIS_PORT, SORTIE_CONF.
set -u
RUN=$1
TOKEN=$2
here=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_SIDE_WORKERS:-1}
STEP_S=${BENCH_SWEEP_SECONDS:-5}
SUBS=${BENCH_SWEEP_SUBS:-1000 5000 10000}
MODES=${BENCH_SWEEP_MODES:-shared pinned}
TRANSPORTS=${BENCH_SWEEP_TRANSPORTS:-sse ws}
LIMIT=${BENCH_SWEEP_LIMIT_MS:-100}
RETRY=${BENCH_SWEEP_RETRY:-1}
IDLE_N=${BENCH_SIDE_IDLE:-${BENCH_IDLE:-5000}}
# deliveries a second: each step's rate is this / subscribers
STEPS=${BENCH_SWEEP_STEPS:-20000 50000 100000 200000 300000 500000 1000000}
NPORT=$((PORT + 7))
BPORT=$((PORT + 8))
NDIR="$RUN/nchan"
NGINX=${NGINX:-/usr/sbin/nginx}
ncpu=$(nproc)
all_cpus="0-$((ncpu - 1))"
t_start=$(date +%s)

# the nchan module: where Debian puts it
module=""
for m in /usr/lib/nginx/modules/ngx_nchan_module.so /usr/share/nginx/modules/ngx_nchan_module.so; do
  [ -f "$m" ] && { module=$m; break; }
done
have_nchan=1
if [ ! -x "$NGINX" ] || [ -z "$module" ]; then
  have_nchan=0
  echo "side: nginx or its nchan module is missing (tools/deps.sh --bench installs nginx-light"
  echo "side: and libnginx-mod-nchan); the nchan column is left empty"
fi

pid_of() { [ -s "$1" ] && cat "$1"; }
kids() { pgrep -P "$1" | tr '\n' ',' | sed 's/,$//'; }

# stops the process of pidfile $1 (TERM, then KILL after 5 s) and waits for it
stop_pidfile() {
  p=$(pid_of "$1") || return 0
  kill -TERM "$p" 2>/dev/null
  i=0
  while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$p" 2>/dev/null
  rm -f "$1"
}

redis_pid=$(pid_of "$RUN/redis/redis.pid")

cleanup() {
  [ -n "${fan_pid:-}" ] && kill "$fan_pid" 2>/dev/null
  stop_pidfile "$NDIR/nginx.pid"
  stop_pidfile "$RUN/bare.pid"
  [ -n "$redis_pid" ] && taskset -a -p -c "$all_cpus" "$redis_pid" >/dev/null 2>&1
  # sortie-pushd as bench/run.sh started it
  if [ "${pushd_changed:-0}" = 1 ]; then
    SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-stop
    SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-start
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # $1 port: up to 10 s for an HTTP answer of any kind
  i=0
  until [ "$(curl -s -m 1 -o /dev/null -w "%{http_code}" "http://127.0.0.1:$1/" 2>/dev/null)" != 000 ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && return 1
    sleep 0.1
  done
}

# ---- the three servers, each with W workers ----
pushd_changed=1
start_pushd() {
  SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-stop
  SORTIE_PUSH_WORKERS=$W SORTIE_QUIET=1 sh "$here/tools/stack.sh" pushd-start || exit 1
  pushd_pid=$(pid_of "$RUN/pushd.pid")
}

start_nchan() {
  stop_pidfile "$NDIR/nginx.pid"
  mkdir -p "$NDIR"
  sed -e "s|@MODULE@|$module|" -e "s|@WORKERS@|$W|" -e "s|@DIR@|$NDIR|g" -e "s|@PORT@|$NPORT|" \
    "$here/bench/nchan.conf" > "$NDIR/nginx.conf"
  setsid "$NGINX" -p "$NDIR" -c "$NDIR/nginx.conf" </dev/null >>"$NDIR/stderr.log" 2>&1 &
  if ! wait_port "$NPORT"; then
    echo "side: nchan did not start (see $NDIR/error.log, $NDIR/stderr.log)"
    have_nchan=0
  fi
  nchan_pid=$(pid_of "$NDIR/nginx.pid")
}

start_bare() {
  # the Redis pub/sub channel of market:BARE, as Sortie's publish script names it
  prefix=$(awk -F' *= *' '$1 == "redis.prefix" {print $2}' "$SORTIE_CONF")
  setsid "$BUILD/bench/bare" -p "$BPORT" -r "$REDIS_PORT" -c "${prefix:-sortie:}ch:market:BARE" -w "$W" \
    -P "$RUN/bare.pid" </dev/null >"$RUN/bare.log" 2>&1 &
  wait_port "$BPORT" || { echo "side: bench/bare did not start (see $RUN/bare.log)"; exit 1; }
  bare_pid=$(pid_of "$RUN/bare.pid")
}

# the sum of the VmRSS (KiB) of a master's workers
workers_rss() {
  t=0
  for p in $(pgrep -P "$1"); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    t=$((t + ${r:-0}))
  done
  echo $t
}

wait_sortie_idle() {
  i=0
  while [ $i -lt 100 ]; do
    c=$(curl -s "http://127.0.0.1:$PUSH_PORT/health" | sed 's/.*"sse":\([0-9]*\),"ws":\([0-9]*\).*/\1 \2/')
    [ "$c" = "0 0" ] && return 0
    sleep 0.2
    i=$((i + 1))
  done
}

# fanout's arguments for server $1 on a fresh channel $2 (sets fan_args, pub_args)
server_args() {
  case $1 in
    sortie)
      fan_args="-p $PUSH_PORT -s sortie -c market:$2 -k $TOKEN -C $(kids "$pushd_pid") -R $redis_pid"
      pub_args="$BUILD/bench/publish -c market:$2" ;;
    nchan)
      fan_args="-p $NPORT -s nchan -c $2 -C $(kids "$nchan_pid") -R $redis_pid"
      pub_args="$BUILD/bench/publish -n $NPORT -c $2" ;;
    bare)
      fan_args="-p $BPORT -s bare -c BARE -C $(kids "$bare_pid") -R $redis_pid"
      pub_args="$BUILD/bench/publish -c market:BARE" ;;
  esac
}

# ---- idle memory: RSS of the workers before and after IDLE_N idle subscribers ----
idle_rss() { # $1 server, $2 transport: sets before, after
  srv=$1
  # a fresh server each time: nginx keeps the memory a former step grew
  case $srv in
    sortie) start_pushd; master=$pushd_pid ;;
    nchan) start_nchan; master=$nchan_pid ;;
  esac
  sleep 6 # past sortie-pushd's 5 s memory trim: a clean baseline, the same wait for both
  before=$(workers_rss "$master")
  server_args "$srv" "I$(date +%s%N | tail -c 7)"
  rm -f "$RUN/idle.fifo"
  mkfifo "$RUN/idle.fifo"
  # shellcheck disable=SC2086
  "$BUILD/bench/fanout" $fan_args -t "$2" -n "$IDLE_N" -i <"$RUN/idle.fifo" >"$RUN/idle.out" 2>&1 &
  fan_pid=$!
  exec 9>"$RUN/idle.fifo"
  i=0
  while ! grep -q '^ready' "$RUN/idle.out" && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
  sleep 6
  after=$(workers_rss "$master")
  ready=$(grep '^ready' "$RUN/idle.out")
  exec 9>&-
  wait "$fan_pid" 2>/dev/null
  fan_pid=
  echo "idle $srv $2: $IDLE_N connections ($ready), workers' RSS $before KiB -> $after KiB"
}

servers="sortie"
[ $have_nchan = 1 ] && servers="$servers nchan"
servers="$servers bare"

echo ""
echo "## side by side: sortie-pushd, nchan and the bare limit, $W worker(s) each, one channel, 28-byte events"
if [ "$IDLE_N" -gt 0 ]; then
  for t in sse ws; do
    for srv in sortie nchan; do
      [ $srv = nchan ] && [ $have_nchan = 0 ] && continue
      idle_rss $srv $t
      eval "idle_${srv}_$t=\$(awk -v a=$after -v b=$before -v n=$IDLE_N 'BEGIN { printf \"%.2f\", (a - b) / n }')"
    done
  done
fi

# ---- the sweeps ----
start_pushd
[ $have_nchan = 1 ] && start_nchan
start_bare

pin() { # $1 cpu list: the servers' processes (every thread) and Redis
  for p in $redis_pid $pushd_pid $(pgrep -P "$pushd_pid") ${nchan_pid:-} \
           $( [ -n "${nchan_pid:-}" ] && pgrep -P "$nchan_pid") $bare_pid $(pgrep -P "$bare_pid"); do
    taskset -a -p -c "$1" "$p" >/dev/null 2>&1
  done
}

steps_csv=$(echo $STEPS | tr ' ' ',')
echo ""
echo "sweep: steps of ${STEP_S}s at $STEPS deliveries/s (rate = deliveries / subscribers), stop at the"
echo "first step with a loss, a dropped subscriber or p99 >= ${LIMIT} ms; a cell's figure is the last step that passed"
for mode in $MODES; do
  if [ "$mode" = pinned ]; then
    pin 0
    client="taskset -c 1"
  else
    pin "$all_cpus"
    client=""
  fi
  for t in $TRANSPORTS; do
    for n in $SUBS; do
      for srv in $servers; do
        [ $srv = sortie ] && wait_sortie_idle
        ch="$(echo $srv | cut -c1 | tr a-z A-Z)$(date +%s%N | tail -c 9)"
        server_args $srv "$ch"
        out="$RUN/sweep-$mode-$t-$n-$srv.out"
        # shellcheck disable=SC2086
        $client "$BUILD/bench/fanout" $fan_args -t "$t" -n "$n" -d "$STEP_S" -L "$LIMIT" -T "$RETRY" -S "$steps_csv" \
          -- $pub_args >"$out" 2>&1 &
        fan_pid=$!
        wait "$fan_pid"
        fan_pid=
        sed "s/^/$mode /" "$out" | grep -v '^[a-z]* ready' >>"$RUN/side.log"
        best=$(sed -n 's/^sweep .*best_deliveries=\([0-9]*\).*/\1/p' "$out")
        last=$(grep '^step ' "$out" | tail -1)
        why=$(echo "$last" | sed -n 's/.*failed=\([a-z_0-9]*\).*/\1/p')
        p99=$(echo "$last" | sed -n 's/.*p99_ms=\([0-9]*\).*/\1/p')
        [ -z "$best" ] && why=$(grep -m1 'fanout:\|failed=' "$out" | cut -c1-60)
        eval "best_${mode}_${t}_${n}_$srv=\${best:-0}"
        eval "why_${mode}_${t}_${n}_$srv=\"\${why:-none}\" p99_${mode}_${t}_${n}_$srv=\${p99:-}"
        # what the step that ended the sweep cost: server, Redis, client, publisher CPU
        cpu=$(echo "$last" | sed -n 's/.*p99_ms=\([0-9]*\).*server_cpu=\([0-9]*%\) redis_cpu=\([0-9]*%\) client_cpu=\([0-9]*%\) publisher_cpu=\([0-9]*%\) net_drops=\([0-9]*\) tcp_retrans=\([0-9]*\).*/p99 \1 ms; cpu srv \2 redis \3 client \4 pub \5; drops \6 retrans \7/p')
        printf '%-7s %-4s %6s %-7s best %8s deliveries/s; ended by %-18s (%s)\n' "$mode" "$t" "$n" "$srv" \
          "${best:-0}" "${why:-none}" "$cpu"
      done
    done
  done
done
pin "$all_cpus"

# ---- the table ----
echo ""
echo "raw step lines:"
cat "$RUN/side.log"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
echo ""
echo "latency-bounded ceiling: deliveries/s of the last step with no loss and p99 < ${LIMIT} ms"
echo "($W worker(s) each; '<$(echo $STEPS | cut -d' ' -f1) (p99 N)' = even the first step failed, with that p99 in ms;"
echo "the ratio is then that of the first step's p99s, marked p99: below 1 is Sortie's shorter tail;"
echo "'>=N' = no step failed, the ceiling is past the last step)"
row() { printf '| %-9s | %-11s | %-6s | %-17s | %-17s | %-12s | %-17s | %-11s |\n' "$@"; }
row transport subscribers cores Sortie nchan "Sortie÷nchan" bare "Sortie÷bare"
printf '|%s|\n' "-----------|-------------|--------|-------------------|-------------------|--------------|-------------------|-------------"
first=$(echo $STEPS | cut -d' ' -f1)
cell() {
  eval "v=\${best_$1:-} p=\${p99_$1:-} w=\${why_$1:-}"
  if [ -z "$v" ]; then echo "-"
  elif [ "$v" = 0 ]; then echo "<$first (p99 $p)"
  elif [ "$w" = none ]; then echo ">=$v" # no step failed: the ceiling is past the last step
  else echo "$v"; fi
}
# a ratio of two cells: of their ceilings (a bound when one of them is one),
# or of their first step's p99s when neither passed it
cratio() {
  a=${1#>=} b=${2#>=}
  case "$1|$2" in
    "<"*"|<"*) ratio "$(echo "$1" | sed 's/.*p99 \([0-9]*\).*/\1/')" "$(echo "$2" | sed 's/.*p99 \([0-9]*\).*/\1/')" |
                 sed 's/^[0-9]/p99 &/' ;;
    "<"*) echo "<$(ratio "$first" "$b")" ;;
    *"|<"*) echo ">$(ratio "$a" "$first")" ;;
    ">="*"|>="*) echo "-" ;;
    ">="*) echo ">=$(ratio "$a" "$b")" ;;
    *"|>="*) echo "<=$(ratio "$a" "$b")" ;;
    *) ratio "$a" "$b" ;;
  esac
}
for t in $TRANSPORTS; do
  for n in $SUBS; do
    for mode in $MODES; do
      s=$(cell "${mode}_${t}_${n}_sortie")
      nc=$(cell "${mode}_${t}_${n}_nchan")
      b=$(cell "${mode}_${t}_${n}_bare")
      row "$t" "$n" "$mode" "$s" "$nc" "$(cratio "$s" "$nc")" "$b" "$(cratio "$s" "$b")"
    done
  done
done
if [ "$IDLE_N" -gt 0 ]; then
  echo ""
  echo "idle memory per subscriber ($IDLE_N idle connections, workers' RSS after - before, / connections):"
  printf '| %-9s | %-10s | %-10s | %-12s |\n' transport "Sortie KiB" "nchan KiB" "Sortie÷nchan"
  printf '|%s|\n' "-----------|------------|------------|--------------"
  for t in sse ws; do
    eval "s=\${idle_sortie_$t:-} n=\${idle_nchan_$t:-}"
    printf '| %-9s | %-10s | %-10s | %-12s |\n' "$t" "$s" "${n:--}" "$(ratio "$s" "$n")"
  done
fi
echo ""
echo "side by side took $(( $(date +%s) - t_start )) s (sweep steps of ${STEP_S}s, up to $RETRY retry of a near miss)"
