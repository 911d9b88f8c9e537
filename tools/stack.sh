#!/bin/sh
# The private Sortie stack: Redis, the sortie-api FastCGI pool and Apache (and
# sortie-pushd once built), on their own ports, in one runtime folder. Used by
# `make run|start|stop` and by every integration test, so all of them start the
# stack the same way.
#
#   tools/stack.sh run     start, print the URL, stop on Ctrl-C
#   tools/stack.sh start   start in the background and print where things are
#   tools/stack.sh stop    stop what `start` started (by the pids it recorded)
#
# A start that fails half-way (a port taken, a server that dies, a config it
# refuses, Ctrl-C) stops what it had started, by pid, and leaves the reason in
# $RUN/start-failed (the step, why, the last lines of that step's logs, and
# the pids it stopped), printed on stderr too; it exits 1. `stop` after that is
# harmless, and the next `start` removes the file.
#   tools/stack.sh pushd-stop | pushd-start   just the push daemon (tests)
#   tools/stack.sh apache-stop | apache-start just Apache (benchmarks)
#   tools/stack.sh api-restart               just the FastCGI pool, which reads
#                                            sortie.conf again (tests)
#
# Environment: BUILD (build folder, default build), PORT (Apache, 8080),
# PUSH_PORT (8081), REDIS_PORT (6390), WORKERS (FastCGI pool size, 8),
# SORTIE_RUN (runtime folder, default /tmp/sortie-<uid>-<PORT>),
# SORTIE_NO_DEMO=1 (skip the demo data), SORTIE_QUIET=1 (print less),
# SORTIE_APACHE_MODE=fcgid (serve the API through mod_fcgid instead of the
# pool: for comparing the two), PUSH_MEMBERS="host:port host:port ..." (Apache
# sends /push/ to these sortie-pushd daemons through mod_proxy_balancer,
# conf/apache/sortie-push-balanced.conf, instead of to PUSH_PORT's alone; the
# stack still starts only the daemon on PUSH_PORT: start the others yourself,
# each with -P PORT, before the first request reaches them).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$here/$BUILD" ;; esac
PORT=${PORT:-8080}
PUSH_PORT=${PUSH_PORT:-8081}
REDIS_PORT=${REDIS_PORT:-6390}
WORKERS=${WORKERS:-8}
RUN=${SORTIE_RUN:-${TMPDIR:-/tmp}/sortie-$(id -u)-$PORT}
APACHE=${APACHE:-/usr/sbin/apache2}

say() { [ "${SORTIE_QUIET:-0}" = 1 ] || echo "$@"; }
die() { echo "stack: $*" >&2; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# waits up to $2 tenths of a second for command $1 to succeed; gives up at once
# when process $3 (if given) has ended
wait_for() {
  n=0
  while ! eval "$1" >/dev/null 2>&1; do
    n=$((n + 1))
    [ $n -ge "$2" ] && return 1
    if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 0
}

# health checks: a port held by something that never answers must not hang us
health() { curl -fsS --max-time 2 "http://127.0.0.1:$1/health"; }

# ---- a start that fails stops what it started ----
# set while do_start runs; step is what it is doing (named in start-failed)
starting=0
step=""
# "name pid" lines: every process this start launched or found in a pid file it
# had its servers write, so that what it started can be stopped and named
started=""

note_pid() {
  [ -n "$2" ] || return 0
  case "$started" in *" $2
"*) return 0 ;; esac
  started="$started$1 $2
"
}

# notes the pid in pid file $2 as server $1's
note_pidfile() {
  [ -s "$2" ] && note_pid "$1" "$(cat "$2" 2>/dev/null)"
  return 0
}

# fail STEP MESSAGE LOG...: a server did not start. Outside a full start (the
# single-server verbs), just says so; inside one, stops what the start started,
# writes $RUN/start-failed and exits 1.
fail() {
  f_step=$1 f_why=$2
  shift 2
  if [ "$starting" != 1 ]; then
    die "$f_why (see $*)"
  fi
  start_failed "$f_step" "$f_why" "$@"
}

start_failed() {
  starting=0
  trap - EXIT INT TERM HUP
  sf_step=$1 sf_why=$2
  shift 2
  # whatever wrote a pid file by now is this start's (stale ones were removed)
  note_pidfile feed "$RUN/feed.pid"
  note_pidfile apache "$RUN/apache/httpd.pid"
  note_pidfile pushd "$RUN/pushd.pid"
  note_pidfile api "$RUN/api.pid"
  note_pidfile redis "$RUN/redis/redis.pid"
  stop_pid "$RUN/feed.pid"
  stop_pid "$RUN/apache/httpd.pid"
  stop_pid "$RUN/pushd.pid"
  stop_pid "$RUN/api.pid"
  stop_pid "$RUN/redis/redis.pid"
  # and those that died or hung before writing theirs
  echo "$started" | while read -r name p; do
    if [ -n "$p" ]; then stop_proc "$p"; fi
  done
  rm -f "$RUN/api.sock"
  out="$RUN/start-failed"
  {
    echo "step: $sf_step"
    echo "why: $sf_why"
    echo "when: $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
    for l in "$@"; do
      [ -s "$l" ] || continue
      echo "log: $l (its last 15 lines)"
      tail -n 15 "$l" | sed 's/^/  /'
    done
    echo "$started" | while read -r name p; do
      [ -n "$p" ] || continue
      if kill -0 "$p" 2>/dev/null; then
        echo "still running: $name $p"
      else
        echo "stopped: $name $p"
      fi
    done
  } >"$out.tmp" 2>/dev/null
  mv -f "$out.tmp" "$out"
  echo "stack: the start failed at step $sf_step: $sf_why" >&2
  echo "stack: what it had started is stopped; the reason is in $out:" >&2
  sed 's/^/  /' "$out" >&2
  exit 1
}

# the EXIT trap of do_start: a command that failed (set -e) or a signal
start_exit() {
  rc=$1
  [ "$starting" = 1 ] || return 0
  [ "$rc" != 0 ] || rc=1
  why="a command failed (exit $rc)"
  [ "${interrupted:-0}" = 1 ] && why="interrupted by a signal"
  start_failed "$step" "$why" "$RUN/log/sortie.log" "$RUN/log/pushd.log" \
    "$RUN/log/apache-error.log" "$RUN/log/redis.log"
}

# kills the process in pidfile $1 (TERM, then KILL after 5 s) and waits for
# it; then whatever is left of its process group (each server here leads its
# own group: an orphaned child, like mod_fcgid's process manager, would keep
# the port)
stop_pid() {
  f=$1
  [ -f "$f" ] || return 0
  stop_proc "$(cat "$f" 2>/dev/null)"
  rm -f "$f"
}

# the same for process $1
stop_proc() {
  p=$1
  case "$p" in '' | *[!0-9]*) return 0 ;; esac
  pg=$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    n=0
    while kill -0 "$p" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  fi
  if [ "$pg" = "$p" ] && pgrep -g "$pg" >/dev/null 2>&1; then
    # (a negative pid is the group; dash's kill takes no "--")
    kill -TERM "-$pg" 2>/dev/null || true
    sleep 0.5
    kill -KILL "-$pg" 2>/dev/null || true
  fi
  return 0
}

do_stop() {
  [ -d "$RUN" ] || { say "nothing running in $RUN"; return 0; }
  stop_pid "$RUN/feed.pid"
  stop_pid "$RUN/apache/httpd.pid"
  stop_pid "$RUN/pushd.pid"
  stop_pid "$RUN/api.pid"
  # servers a test started beside the stack (a replica, sentinels)
  for f in "$RUN"/extra/*.pid; do stop_pid "$f"; done
  stop_pid "$RUN/redis/redis.pid"
  rm -f "$RUN/api.sock"
  if [ -f "$RUN/start-failed" ]; then
    say "stopped the stack in $RUN (its last start failed: $RUN/start-failed says why)"
  else
    say "stopped the stack in $RUN"
  fi
}

write_conf() {
  cat > "$RUN/sortie.conf" <<EOF
# written by tools/stack.sh for the private stack in $RUN
redis.host = 127.0.0.1
redis.port = $REDIS_PORT
jwt.secret_file = $RUN/jwt.secret
api.www_root = $RUN/www
log.file = $RUN/log/sortie.log
push.port = $PUSH_PORT
push.origins = http://127.0.0.1:$PORT,http://localhost:$PORT
EOF
  if [ -n "${SORTIE_EXTRA_CONF:-}" ]; then
    printf '%s\n' "$SORTIE_EXTRA_CONF" >> "$RUN/sortie.conf"
  fi
}

start_apache() {
  as_root=""
  [ "$(id -u)" = 0 ] && as_root="-D SORTIE_AS_ROOT"
  mode=""
  if [ "${SORTIE_APACHE_MODE:-pool}" = fcgid ]; then
    mode="-D SORTIE_FCGID"
    mkdir -p "$RUN/apache/fcgid" "$RUN/cgi-bin"
    cp "$BUILD"/cgi-bin/*.fcgi "$RUN/cgi-bin/"
    if [ "$(id -u)" = 0 ]; then
      # mod_fcgid runs the programs as Apache's user: let it read what they need
      chown www-data "$RUN/apache/fcgid"
      chgrp www-data "$RUN/jwt.secret" && chmod 640 "$RUN/jwt.secret"
    fi
  fi
  balanced=""
  if [ -n "${PUSH_MEMBERS:-}" ]; then
    balanced="-D SORTIE_PUSH_BALANCED"
    : > "$RUN/apache/push-members.conf"
    for m in $PUSH_MEMBERS; do
      echo "Use SortiePushMember $m" >> "$RUN/apache/push-members.conf"
    done
  fi
  SORTIE_PUSH_MEMBERS="$RUN/apache/push-members.conf" \
  SORTIE_RUN="$RUN" SORTIE_PORT="$PORT" SORTIE_WWW="$RUN/www" SORTIE_CONF_DIR="$here/conf" \
    SORTIE_API_SOCKET="$RUN/api.sock" SORTIE_PUSH_ADDR="127.0.0.1:$PUSH_PORT" \
    "$APACHE" -d "$RUN/apache" -f "$here/conf/apache/httpd.conf" $as_root $mode $balanced -k start \
    >"$RUN/log/apache-start.log" 2>&1 ||
    fail apache "apache did not start" "$RUN/log/apache-start.log" "$RUN/log/apache-error.log"
  note_pidfile apache "$RUN/apache/httpd.pid"
  wait_for "health $PORT" 100 ||
    fail apache "apache did not serve /health on port $PORT" "$RUN/log/apache-start.log" \
      "$RUN/log/apache-error.log"
}

# the FastCGI pool
start_api() {
  setsid "$BUILD/cgi-bin/sortie-api" -c "$RUN/sortie.conf" -s "$RUN/api.sock" -n "$WORKERS" \
    -p "$RUN/api.pid" -m 666 </dev/null >>"$RUN/log/sortie.log" 2>&1 &
  api_pid=$!
  note_pid api "$api_pid"
  wait_for "test -S '$RUN/api.sock' && test -s '$RUN/api.pid'" 100 "$api_pid" ||
    fail api "the FastCGI pool did not start" "$RUN/log/sortie.log"
  note_pidfile api "$RUN/api.pid"
}

start_pushd() {
  [ -x "$BUILD/bin/sortie-pushd" ] || return 0
  setsid "$BUILD/bin/sortie-pushd" -c "$RUN/sortie.conf" -p "$RUN/pushd.pid" \
    </dev/null >>"$RUN/log/pushd.log" 2>&1 &
  pushd_pid=$!
  note_pid pushd "$pushd_pid"
  wait_for "health $PUSH_PORT" 100 "$pushd_pid" ||
    fail pushd "sortie-pushd did not serve /health on port $PUSH_PORT" "$RUN/log/pushd.log"
  note_pidfile pushd "$RUN/pushd.pid"
}

do_start() {
  for b in "$BUILD/cgi-bin/sortie-api" "$BUILD/bin/sortie-token"; do
    [ -x "$b" ] || die "$b is missing: run make first"
  done
  command -v redis-server >/dev/null || die "redis-server is missing: run tools/deps.sh"
  [ -x "$APACHE" ] || die "$APACHE is missing: run tools/deps.sh"
  if pid_alive "$RUN/apache/httpd.pid" || pid_alive "$RUN/api.pid"; then
    die "a stack is already running in $RUN (stop it with: make stop PORT=$PORT)"
  fi

  mkdir -p "$RUN/log" "$RUN/apache" "$RUN/redis"
  # from here on, a failure stops what this start started (start_failed)
  rm -f "$RUN/start-failed"
  for f in "$RUN/feed.pid" "$RUN/apache/httpd.pid" "$RUN/pushd.pid" "$RUN/api.pid" \
    "$RUN/redis/redis.pid"; do
    pid_alive "$f" || rm -f "$f"
  done
  rm -f "$RUN/api.sock"
  starting=1
  step=setup
  trap 'start_exit $?' EXIT
  trap 'interrupted=1; exit 130' INT TERM HUP
  # Apache's workers run as www-data when started by root: they must reach the
  # page assets and the pool's socket in here.
  chmod 755 "$RUN"
  umask 077
  [ -s "$RUN/jwt.secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n' > "$RUN/jwt.secret"
  umask 022
  write_conf
  rm -rf "$RUN/www"
  cp -R "$here/www" "$RUN/www"
  export SORTIE_CONF="$RUN/sortie.conf"

  # Redis
  step=redis
  redis-server "$here/conf/redis.conf" --port "$REDIS_PORT" --dir "$RUN/redis" \
    --pidfile "$RUN/redis/redis.pid" --logfile "$RUN/log/redis.log" --daemonize yes \
    >"$RUN/log/redis-start.log" 2>&1 ||
    fail redis "redis-server did not start" "$RUN/log/redis-start.log" "$RUN/log/redis.log"
  wait_for "timeout 2 redis-cli -p $REDIS_PORT ping | grep -q PONG" 100 ||
    fail redis "redis did not answer on port $REDIS_PORT" "$RUN/log/redis-start.log" \
      "$RUN/log/redis.log"
  note_pidfile redis "$RUN/redis/redis.pid"

  step=api
  start_api
  step=pushd
  start_pushd
  step=apache
  start_apache
  step=demo
  if [ "${SORTIE_NO_DEMO:-0}" != 1 ]; then
    BUILD="$BUILD" PORT="$PORT" SORTIE_CONF="$RUN/sortie.conf" sh "$here/tools/demo.sh" > "$RUN/demo.txt"
    # the demo market feed: prices move on the page
    BUILD="$BUILD" PORT="$PORT" SORTIE_CONF="$RUN/sortie.conf" \
      setsid sh "$here/tools/demo-feed.sh" </dev/null >>"$RUN/log/feed.log" 2>&1 &
    echo $! > "$RUN/feed.pid"
  fi
  starting=0
  trap - EXIT INT TERM HUP
}

print_where() {
  say ""
  say "Sortie is running (runtime folder $RUN)"
  say "  Apache (REST API + mission page)  http://127.0.0.1:$PORT/"
  [ -x "$BUILD/bin/sortie-pushd" ] && say "  sortie-pushd                      http://127.0.0.1:$PUSH_PORT/"
  say "  Redis                             127.0.0.1:$REDIS_PORT"
  say "  config      $RUN/sortie.conf   (export SORTIE_CONF=$RUN/sortie.conf)"
  say "  logs        $RUN/log/"
  say "  tokens      SORTIE_CONF=$RUN/sortie.conf $BUILD/bin/sortie-token -r user alice"
  if [ -f "$RUN/demo.txt" ] && [ "${SORTIE_NO_DEMO:-0}" != 1 ]; then
    say ""
    say "$(cat "$RUN/demo.txt")"
  fi
}

case "${1:-}" in
  start)
    do_start
    print_where
    ;;
  stop)
    do_stop
    ;;
  pushd-stop)
    stop_pid "$RUN/pushd.pid"
    ;;
  pushd-start)
    SORTIE_CONF="$RUN/sortie.conf"
    start_pushd
    ;;
  apache-stop)
    stop_pid "$RUN/apache/httpd.pid"
    ;;
  apache-start)
    start_apache
    ;;
  api-restart)
    stop_pid "$RUN/api.pid"
    rm -f "$RUN/api.sock"
    start_api
    ;;
  run)
    do_start
    trap 'echo; do_stop; exit 0' INT TERM
    print_where
    say ""
    say "Press Ctrl-C to stop."
    while :; do sleep 3600 & wait $! || true; done
    ;;
  *)
    echo "usage: tools/stack.sh run|start|stop" >&2
    exit 2
    ;;
esac
