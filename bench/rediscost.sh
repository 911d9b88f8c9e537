#!/bin/sh
# Redis time per fire: the fire script (lib/lua/common.lua + fire.lua) run
# N times against a private Redis (AOF on, as conf/redis.conf), one fire per
# user on one signal, through a pipeline, so that only Redis's own work is
# timed: INFO commandstats' usec_per_call of EVALSHA (the script and the
# commands it calls). Beside it, in the same run: the same script at an
# earlier commit (BENCH_FIRE_BASE, default aae2997^: before the fire path was
# trimmed) and a script that only returns (the floor every script pays).
#
#   sh bench/rediscost.sh [N]     (N fires per script, default 5000)
# BENCH_FIRE_USERS=U BENCH_FIRE_SIGNALS=S: fire i is user u(i mod U) on signal
# s(i div U mod S), the shape of the REST benchmark's fires (bench/fire.lua:
# 1000 users, 200 signals), whose users come back with a rate window, a
# trade history and stats; the default is N users once each on one signal.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-5000}
BASE=${BENCH_FIRE_BASE:-aae2997^}
PORT=${BENCH_REDIS_COST_PORT:-19497}
USERS=${BENCH_FIRE_USERS:-$N}
SIGNALS=${BENCH_FIRE_SIGNALS:-1}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sortie-rcost-XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

cat "$here/lib/lua/common.lua" "$here/lib/lua/fire.lua" > "$tmp/fire.lua"
if git -C "$here" cat-file -e "$BASE:lib/lua/fire.lua" 2>/dev/null; then
  { git -C "$here" show "$BASE:lib/lua/common.lua"; git -C "$here" show "$BASE:lib/lua/fire.lua"; } \
    > "$tmp/fire_base.lua"
fi
{ cat "$here/lib/lua/common.lua"; echo "return {201, '{}'}"; } > "$tmp/floor.lua"

# one run: a fresh Redis, the signal, N fires of distinct users; prints
# "usec_per_call commands_per_call"
one() {
  d="$tmp/r"
  rm -rf "$d"
  mkdir -p "$d"
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync everysec --dir "$d" --pidfile "$d/pid" --daemonize yes >/dev/null
  i=0
  while ! redis-cli -p "$PORT" PING >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "redis did not start" >&2; exit 1; }
    sleep 0.05
  done
  r="redis-cli -p $PORT"
  pid=$($r INFO server | tr -d '\r' | sed -n 's/^process_id://p')
  sha=$($r SCRIPT LOAD "$(cat "$1")")
  now=$(date +%s)
  k=0
  while [ $k -lt "$SIGNALS" ]; do
    echo "HSET sortie:signal:sig$k id sig$k status ACTIVE expires_at $((now + 3600)) symbol EURUSD direction BUY entry 1.10000 fire_count 0"
    k=$((k + 1))
  done | $r >/dev/null
  $r CONFIG RESETSTAT >/dev/null
  # the commands, in Redis's own protocol, for redis-cli --pipe
  awk -v sha="$sha" -v n="$N" -v now="$now" -v nu="$USERS" -v ns="$SIGNALS" 'BEGIN {
    for (i = 0; i < n; i++) {
      u = i % nu; s = int(i / nu) % ns
      split("EVALSHA " sha " 0 sortie: 1000 1000000000000 sig" s " u" u " " now " 300 1000000 _ 86400", a, " ")
      a[12] = ""
      printf "*13\r\n"
      for (k = 1; k <= 13; k++) printf "$%d\r\n%s\r\n", length(a[k]), a[k]
    }
  }' > "$d/cmds"
  $r --pipe < "$d/cmds" > "$d/pipe.out" 2>&1
  grep -q "errors: 0" "$d/pipe.out" || { echo "errors in the run: $(tail -1 "$d/pipe.out")" >&2; exit 1; }
  $r INFO commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$N" '
    /^cmdstat_evalsha:/ { us = $7 }
    /^cmdstat_/ && !/^cmdstat_(evalsha|config|script|info)/ { calls += $3 }
    END { printf "%s %.1f\n", us, calls / n }'
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  pid=
}

if [ "$USERS" = "$N" ] && [ "$SIGNALS" = 1 ]; then
  echo "# Redis time per fire, $N fires of distinct users per row (sh bench/rediscost.sh $N)"
else
  echo "# Redis time per fire, $N fires per row, $USERS users over $SIGNALS signals (BENCH_FIRE_USERS=$USERS BENCH_FIRE_SIGNALS=$SIGNALS sh bench/rediscost.sh $N)"
fi
printf '%-34s %14s %16s %10s\n' "script" "us per call" "Redis commands" "ratio"
out=$(one "$tmp/fire.lua") || exit 1
set -- $out
now_us=$1
now_calls=$2
if [ -f "$tmp/fire_base.lua" ]; then
  out=$(one "$tmp/fire_base.lua") || exit 1
  set -- $out
  printf '%-34s %14s %16s %10s\n' "fire.lua at $BASE" "$1" "$2" "1.00"
  base_us=$1
else
  base_us=
fi
ratio=
[ -n "$base_us" ] && ratio=$(awk -v a="$now_us" -v b="$base_us" 'BEGIN { printf "%.2f", a / b }')
printf '%-34s %14s %16s %10s\n' "fire.lua (this tree)" "$now_us" "$now_calls" "${ratio:--}"
out=$(one "$tmp/floor.lua") || exit 1
set -- $out
printf '%-34s %14s %16s %10s\n' "common.lua + return (the floor)" "$1" "$2" "-"
