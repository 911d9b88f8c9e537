#!/bin/sh
# The Debian package, end to end, on this machine: builds it with `make deb`,
# runs lintian, installs it, checks what postinst made, serves one fire
# through the stock Apache (/usr/sbin/apache2 with /etc/apache2's modules and
# `a2enconf sortie`) to the installed FastCGI pool and sortie-pushd, each
# started as its installed systemd unit would start it, against a Redis of its
# own; reinstalls it and checks the JWT secret stayed; purges it and checks
# that nothing of it is left.
#
# It also serves one fire through the other snippet (sortie-fcgid, mod_fcgid)
# and removes the package before purging it (the snippets are disabled, the
# secret and the user kept).
#
# Each `run_check NAME` line below is one test: it prints "ok - NAME",
# "not ok - NAME: why" (with the log lines that explain it) or
# "ok - NAME # SKIP why", and tests/run.sh counts them. A failed build or
# install stops the checks after it (each then says so). Whatever it started
# or changed is stopped or undone, by pid, however it ends (trap): its own
# Redis, pool, daemon and Apache, the Apache modules and snippet it enabled,
# the package.
#
# Needs root, or sudo without a password; otherwise every check is skipped.
# Skipped too when a package named sortie is already installed (the test
# would purge it). Servers listen on 127.0.0.1 only, on free ports.
#   sh tests/pkg/test_deb.sh            (tests/run.sh runs it)
set -u
here=${SORTIE_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
# (mode 700: only the test and root use it; the servers' output files are
# opened by the test's shell)
T=$(mktemp -d "${SORTIE_TEST_TMP:-${TMPDIR:-/tmp}}/deb-XXXXXX")

failed_step=""   # the check whose failure stops the rest
deb=""
installed=0      # the package is installed by this test
confs_enabled="" # snippets a2enconf enabled for this test
added_www=0      # www-data added to group sortie by this test
mods_enabled=""  # modules a2enmod enabled for this test
made_rundir=""   # /run/<RuntimeDirectory> made by this test
pids=""          # "name pid" lines of the servers started here
sig="" feed="" rport="" pport="" aport=""

SUDO=""
skip_all=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    skip_all="needs root or passwordless sudo (installs and purges a package)"
  fi
fi
if [ -z "$skip_all" ] &&
   [ "$(dpkg-query -W -f='${db:Status-Status}' sortie 2>/dev/null)" != "" ] &&
   [ "$(dpkg-query -W -f='${db:Status-Status}' sortie 2>/dev/null)" != not-installed ]; then
  skip_all="a package named sortie is already on this machine; the test would purge it"
fi

# apt-get, waiting (2 min at most) for another dpkg run on this machine
APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120"

# ---- reporting ----
say() { echo "   $*"; }
# the last lines of each log named, for a failure's report
show() {
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "   --- $f (last 15 lines)"
    tail -n 15 "$f" | sed 's/^/   | /'
  done
}
why=""
bad() { why="$*"; return 1; }

# run_check NAME: runs check_NAME unless an earlier step that the rest needs
# failed; prints the result line
run_check() {
  if [ -n "$skip_all" ]; then
    echo "ok - $1 # SKIP $skip_all"
    return
  fi
  if [ -n "$failed_step" ]; then
    echo "not ok - $1: not run ($failed_step failed)"
    return
  fi
  why=""
  echo "== $1"
  if "check_$1"; then
    echo "ok - $1"
  else
    echo "not ok - $1: ${why:-failed}"
    case "$1" in package_builds | installs) failed_step=$1 ;; esac
  fi
}

# wait_for COMMAND TENTHS: until COMMAND succeeds, at most TENTHS tenths of a
# second (a hang bound, not a measurement)
wait_for() {
  n=0
  while ! eval "$1" >/dev/null 2>&1; do
    n=$((n + 1))
    [ $n -ge "$2" ] && return 1
    sleep 0.1
  done
  return 0
}

free_port() {
  perl -MIO::Socket::INET -e \
    'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0", ReuseAddr => 0)->sockport'
}

# every path named *sortie* in the system's folders (not /tmp, /home, /root:
# other Sortie stacks and checkouts live there; not apt's and man-db's caches)
sortie_paths() {
  $SUDO find /etc /var /run /usr /opt /srv -xdev -name '*sortie*' \
    -not -path '/var/lib/apt/*' -not -path '/var/cache/apt/*' -not -path '/var/cache/man/*' \
    2>/dev/null | sort
}

# the system Apache and Redis that are running (their pid files)
system_running() {
  for pf in /run/apache2/apache2.pid /run/redis/redis-server.pid; do
    if [ -s "$pf" ] && $SUDO kill -0 "$($SUDO cat "$pf")" 2>/dev/null; then echo "$pf"; fi
  done
}

# unit_key UNIT KEY: the value of KEY= in the installed unit (the last one)
unit_key() { sed -n "s/^$2=//p" "/lib/systemd/system/$1" | tail -n 1; }

# ---- cleanup: everything this test started or changed ----
stop_pid() {
  p=$1
  case "$p" in '' | *[!0-9]*) return 0 ;; esac
  $SUDO kill -TERM "$p" 2>/dev/null || return 0
  n=0
  while $SUDO kill -0 "$p" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
  $SUDO kill -KILL "$p" 2>/dev/null || true
}

stop_servers() {
  stop_apache
  echo "$pids" | while read -r _name p; do stop_pid "$p"; done
  pids=""
  if [ -f "$T/redis/redis.pid" ]; then
    stop_pid "$(cat "$T/redis/redis.pid")"
    rm -f "$T/redis/redis.pid"
  fi
  if [ -n "$made_rundir" ]; then
    $SUDO rm -rf "$made_rundir"
    made_rundir=""
  fi
}

restore_apache() {
  for c in $confs_enabled; do
    [ -L "/etc/apache2/conf-enabled/$c.conf" ] && $SUDO a2disconf -q "$c" >/dev/null
  done
  confs_enabled=""
  if [ $added_www = 1 ]; then
    getent group sortie >/dev/null && $SUDO deluser -q www-data sortie >/dev/null
    added_www=0
  fi
  if [ -n "$mods_enabled" ]; then
    # shellcheck disable=SC2086 # module names
    $SUDO a2dismod -q -f $mods_enabled >/dev/null
    # and a2dismod's "disabled by admin" marks, which were not there before
    for m in $mods_enabled; do
      $SUDO rm -f "/var/lib/apache2/module/disabled_by_admin/$m"
    done
    mods_enabled=""
  fi
}

# the folders of a2enmod's and a2enconf's records that they (or the package's
# remove) made, once empty: after the purge, which removes the package's marks
tidy_apache_state() {
  for d in /var/lib/apache2/conf/*_by_* /var/lib/apache2/module/*_by_*; do
    [ -d "$d" ] && ! grep -qxF "$d" "$T/apache-state-before" 2>/dev/null && $SUDO rmdir "$d" 2>/dev/null
  done
  return 0
}

cleanup() {
  stop_servers
  restore_apache
  if [ $installed = 1 ]; then
    $APT purge -y -q sortie >/dev/null 2>&1
  fi
  tidy_apache_state
  $SUDO rm -rf "$T"
}
trap 'cleanup' EXIT
trap 'exit 130' INT TERM

# ---- the checks ----

check_package_builds() {
  if ! make -C "$here" --no-print-directory deb BUILD="$T/build" >"$T/make-deb.log" 2>&1; then
    show "$T/make-deb.log" "$T/build/deb/build.log"
    bad "make deb failed"
    return
  fi
  deb=$(tail -n 1 "$T/make-deb.log")
  say "built $deb"
  case "$deb" in "$T/build/deb/sortie_"*_*.deb) ;; *) bad "make deb's last line is not the .deb in \$BUILD/deb/: $deb"; return ;; esac
  [ -f "$deb" ] || bad "$deb does not exist"
}

check_lintian_is_clean() {
  # an override must say why: each paragraph of an overrides file starts with
  # a comment
  for f in "$here"/debian/*.lintian-overrides; do
    [ -f "$f" ] || continue
    u=$(awk 'NF == 0 { said = 0; next } /^#/ { said = 1; next } !said { print FILENAME ":" FNR ": " $0 }' "$f")
    [ -z "$u" ] || { echo "$u"; bad "a lintian override without a comment that explains it"; return; }
  done
  # (as root lintian says it would rather not be; it runs all the same)
  lintian --fail-on error,warning "$deb" >"$T/lintian.log" 2>&1
  rc=$?
  grep -v 'running with root privileges' "$T/lintian.log" | sed 's/^/   /'
  [ $rc = 0 ] || bad "lintian reports errors or warnings that debian/sortie.lintian-overrides does not explain (exit $rc)"
}

check_installs() {
  # what the package holds, and which of its directories were there before
  dpkg-deb -c "$deb" | awk '{ print substr($6, 2) }' | sed 's|/$||' | grep . >"$T/contents"
  while read -r p; do [ -d "$p" ] && echo "$p"; done <"$T/contents" >"$T/dirs-before"
  ls /etc/systemd/system/*.wants 2>/dev/null >"$T/wants-before"
  system_running >"$T/running-before"
  ls -d /var/lib/apache2/*/*_by_* 2>/dev/null >"$T/apache-state-before"
  sortie_paths >"$T/named-before"
  $APT install -y -q --no-install-recommends "$deb" >"$T/install.log" 2>&1
  rc=$?
  st=$(dpkg-query -W -f='${db:Status-Status}' sortie 2>/dev/null)
  [ "$st" = not-installed ] || [ -z "$st" ] || installed=1
  if [ $rc != 0 ] || [ "$st" != installed ]; then
    show "$T/install.log"
    bad "apt-get install of $deb failed (exit $rc, status ${st:-none})"
    return
  fi
  dpkg -L sortie >"$T/files"
  say "installed: $(wc -l <"$T/files") paths"
}

check_secret_generated() {
  s=/etc/sortie/jwt.secret
  getent passwd sortie >/dev/null || { bad "postinst made no user sortie"; return; }
  $SUDO test -f $s || { bad "postinst made no $s"; return; }
  got=$($SUDO stat -c '%U:%G %a' $s)
  [ "$got" = "root:sortie 640" ] || { bad "$s is $got, not root:sortie 640"; return; }
  n=$($SUDO cat $s | wc -c)
  [ "$n" -ge 32 ] || { bad "$s holds $n bytes, fewer than the 32 HS256 needs"; return; }
  $SUDO sha256sum $s >"$T/secret.sum"
  say "$s: $got, $n bytes"
}

check_units_are_sandboxed() {
  for u in sortie-api.service sortie-pushd.service sortie-expire.service sortie-expire.timer; do
    f=/lib/systemd/system/$u
    [ -f "$f" ] || { bad "$f is not installed"; return; }
    # systemd's own reading of the file: an unknown key or a bad value
    # is reported on stderr (the exit status stays 0)
    out=$(systemd-analyze verify "$f" 2>&1)
    [ -z "$out" ] || { echo "$out" | sed 's/^/   /'; bad "systemd-analyze verify $u complains"; return; }
    case $u in *.timer) continue ;; esac
    for k in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
      User=sortie ReadWritePaths=/var/log/sortie; do
      grep -qx "$k" "$f" || { bad "$u lacks $k"; return; }
    done
    # systemd's exposure score (0 safest, 10 unsandboxed): at most 2.5
    systemd-analyze security --offline=true --threshold=25 "$f" >"$T/security.log" 2>&1 ||
      { grep 'Overall exposure' "$T/security.log" | sed 's/^/   /'; bad "$u: exposure above 2.5"; return; }
    say "$u: $(grep -o 'Overall exposure level.*' "$T/security.log")"
  done
}

check_logrotate_rules_parse() {
  # -d: reads the rules and says what it would do, changes nothing
  $SUDO logrotate -d /etc/logrotate.d/sortie >"$T/logrotate.log" 2>&1 ||
    { show "$T/logrotate.log"; bad "logrotate refuses /etc/logrotate.d/sortie"; return; }
  if grep -qi 'error' "$T/logrotate.log"; then
    grep -i error "$T/logrotate.log" | sed 's/^/   /'
    bad "logrotate reports errors in /etc/logrotate.d/sortie"
    return
  fi
  grep -q 'rotating pattern: /var/log/sortie/\*.log' "$T/logrotate.log" ||
    { show "$T/logrotate.log"; bad "logrotate does not see /var/log/sortie/*.log"; }
}

# start_unit UNIT LOG ENV...: runs the installed unit's ExecStart as its
# User, Group and SupplementaryGroups (with its RuntimeDirectory and UMask), as
# systemd would, in the background; ENV (VAR=value) points it at the test's
# Redis and ports. Records the pid.
start_unit() {
  u=$1 log=$2
  shift 2
  exe=$(unit_key "$u" ExecStart)
  user=$(unit_key "$u" User)
  group=$(unit_key "$u" Group)
  supp=$(unit_key "$u" SupplementaryGroups | tr ' ' ',')
  rd=$(unit_key "$u" RuntimeDirectory)
  mask=$(unit_key "$u" UMask)
  [ -n "$exe" ] && [ -n "$user" ] || { bad "$u has no ExecStart or User"; return 1; }
  if [ -n "$rd" ]; then
    [ -e "/run/$rd" ] && { bad "/run/$rd exists already (a Sortie running here?)"; return 1; }
    $SUDO install -d -o "$user" -g "${group:-$user}" -m "$(unit_key "$u" RuntimeDirectoryMode)" "/run/$rd"
    made_rundir="/run/$rd"
  fi
  groups="--clear-groups"
  [ -n "$supp" ] && groups="--groups=$supp"
  say "$u: $exe (as $user:${group:-$user}${supp:+, +$supp})"
  # shellcheck disable=SC2086 # the unit's command line, split as systemd does for plain words
  $SUDO setsid sh -c 'umask "$1"; shift; exec "$@"' sh "${mask:-0022}" \
    setpriv --reuid="$user" --regid="${group:-$user}" $groups --inh-caps=-all \
    env "$@" $exe </dev/null >>"$log" 2>&1 &
  pids="$pids
$u $!"
  return 0
}

# start_apache [ARG...]: the stock Apache, /etc/apache2's modules and
# conf-enabled (with the package's snippet), apache2.conf as it is but for its
# Listen (ports.conf, replaced by 127.0.0.1:$aport) and its sites; pid file,
# logs and runtime files in $T/apache. ARGs go to apache2 (-c directives).
start_apache() {
  mkdir -p "$T/apache/run" "$T/apache/lock" "$T/apache/log"
  sed -e 's/^Include ports.conf$/Listen 127.0.0.1:'"$aport"'/' \
      -e '/^IncludeOptional sites-enabled/d' /etc/apache2/apache2.conf >"$T/apache/apache2.conf"
  echo "ServerName 127.0.0.1" >>"$T/apache/apache2.conf"
  cat >"$T/apache/run.sh" <<EOF
. /etc/apache2/envvars
export APACHE_PID_FILE=$T/apache/run/apache2.pid APACHE_RUN_DIR=$T/apache/run \
  APACHE_LOCK_DIR=$T/apache/lock APACHE_LOG_DIR=$T/apache/log
exec /usr/sbin/apache2 -d /etc/apache2 -f $T/apache/apache2.conf \
  -C "Define SORTIE_PUSH_ADDR 127.0.0.1:$pport" "\$@"
EOF
  $SUDO sh "$T/apache/run.sh" -k start "$@" >"$T/apache/start.log" 2>&1 ||
    { show "$T/apache/start.log" "$T/apache/log/error.log"; bad "the stock Apache did not start"; return 1; }
  wait_for "test -s '$T/apache/run/apache2.pid'" 100 ||
    { show "$T/apache/start.log" "$T/apache/log/error.log"; bad "the stock Apache wrote no pid file"; return 1; }
}

# Apache and what is left of its process group (mod_fcgid's process manager
# and programs): it leads its group since it made itself a daemon
stop_apache() {
  [ -f "$T/apache/run/apache2.pid" ] || return 0
  ap=$($SUDO cat "$T/apache/run/apache2.pid")
  stop_pid "$ap"
  case "$ap" in '' | *[!0-9]*) ;; *) $SUDO sh -c 'kill -KILL -$1' sh "$ap" 2>/dev/null ;; esac
  $SUDO rm -f "$T/apache/run/apache2.pid"
}

# post URL TOKEN BODY OUT [HEADER]: the HTTP status of a JSON POST; the body in OUT
post() {
  curl -s -o "$4" -w '%{http_code}' --max-time 10 -X POST "$1" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' ${5:+-H "$5"} -d "$3"
}

check_fires_end_to_end() {
  rport=$(free_port) pport=$(free_port) aport=$(free_port)
  [ -n "$rport" ] && [ -n "$pport" ] && [ -n "$aport" ] || { bad "no free port"; return; }
  say "ports: redis $rport, pushd $pport, apache $aport"
  env="SORTIE_REDIS_HOST=127.0.0.1 SORTIE_REDIS_PORT=$rport SORTIE_PUSH_PORT=$pport SORTIE_PUSH_LISTEN=127.0.0.1"

  # Redis, with the configuration the package ships
  mkdir -p "$T/redis"
  redis-server /usr/share/sortie/conf/redis.conf --port "$rport" --bind 127.0.0.1 --dir "$T/redis" \
    --pidfile "$T/redis/redis.pid" --logfile "$T/redis/redis.log" --daemonize yes \
    --appendonly no >"$T/redis/start.log" 2>&1 ||
    { show "$T/redis/start.log"; bad "redis-server did not start"; return; }
  wait_for "timeout 2 redis-cli -p $rport ping | grep -q PONG" 100 ||
    { show "$T/redis/redis.log"; bad "redis did not answer on $rport"; return; }

  # the pool and the daemon, as their units run them
  # shellcheck disable=SC2086 # VAR=value words
  start_unit sortie-api.service "$T/api.out" $env || return
  sock=$(unit_key sortie-api.service ExecStart | sed -n 's/.* -s \([^ ]*\).*/\1/p')
  wait_for "$SUDO test -S '$sock'" 100 ||
    { show "$T/api.out" /var/log/sortie/sortie.log; bad "the pool made no socket $sock"; return; }
  # shellcheck disable=SC2086
  start_unit sortie-pushd.service "$T/pushd.out" $env || return
  wait_for "curl -fsS --max-time 2 http://127.0.0.1:$pport/health" 100 ||
    { show "$T/pushd.out" /var/log/sortie/sortie.log; bad "sortie-pushd did not serve /health on $pport"; return; }

  # the stock Apache: /etc/apache2's modules and conf-enabled (with the
  # package's snippet), apache2.conf as it is but for its Listen (ports.conf)
  # and its sites; pid file, logs and runtime files in here
  for m in proxy proxy_fcgi proxy_http proxy_wstunnel headers alias mime authz_host; do
    if [ ! -e "/etc/apache2/mods-enabled/$m.load" ]; then
      $SUDO a2enmod -q "$m" >/dev/null || { bad "a2enmod $m failed"; return; }
      mods_enabled="$m $mods_enabled"
    fi
  done
  $SUDO a2enconf -q sortie >/dev/null || { bad "a2enconf sortie failed"; return; }
  confs_enabled="sortie"
  [ -L /etc/apache2/conf-enabled/sortie.conf ] || { bad "a2enconf made no conf-enabled/sortie.conf"; return; }
  start_apache || return
  # /health through Apache: the snippet, the pool, Redis
  wait_for "curl -fsS --max-time 2 http://127.0.0.1:$aport/health | grep -q '\"redis\":\"ok\"'" 100 ||
    { show "$T/apache/log/error.log" /var/log/sortie/sortie.log; bad "no healthy /health through Apache on $aport"; return; }

  api=http://127.0.0.1:$aport
  feed=$($SUDO sortie-token -r service deb-feed) && alice=$($SUDO sortie-token deb-alice) ||
    { bad "sortie-token could not mint tokens"; return; }
  sig="deb-$$-$(date +%s)"
  code=$(post "$api/api/signals" "$feed" \
    '{"id":"'"$sig"'","symbol":"EURUSD","direction":"BUY","entry":"1.0850","stop_loss":"1.0800","take_profit":"1.0950","ttl":3600,"title":"deb test","briefing":"one fire"}' \
    "$T/create.json")
  [ "$code" = 201 ] || { cat "$T/create.json"; bad "POST /api/signals through Apache: $code, not 201"; return; }
  # the cursor to follow the mission from: the stream gets the fire's event
  # from history or live, whichever way it comes
  curl -s --max-time 10 "$api/api/missions/$sig" -H "Authorization: Bearer $alice" >"$T/mission.json"
  cur=$(sed -n 's/.*"cursor":"\([^"]*\)".*/\1/p' "$T/mission.json")
  [ -n "$cur" ] || { cat "$T/mission.json"; bad "GET /api/missions/$sig gave no cursor"; return; }
  # a subscriber through Apache's /push/ (the snippet's proxy) to sortie-pushd
  curl -s -N --max-time 60 "$api/push/events?channels=mission:$sig&cursor=$cur&token=$alice" \
    >"$T/sse.out" 2>&1 &
  pids="$pids
sse $!"
  code=$(post "$api/api/fire" "$alice" '{"signal_id":"'"$sig"'","timestamp":'"$(date +%s)"'}' \
    "$T/fire.json" "Idempotency-Key: $sig")
  [ "$code" = 201 ] || { cat "$T/fire.json"; bad "POST /api/fire through Apache: $code, not 201"; return; }
  grep -q '"fire_count":1[,}]' "$T/fire.json" || { cat "$T/fire.json"; bad "the fire's answer has no fire_count 1"; return; }
  say "fired: $(cat "$T/fire.json")"
  wait_for "grep -q '\"type\":\"fire_count_update\".*\"count\":1[,}]' '$T/sse.out'" 300 ||
    { show "$T/sse.out" "$T/apache/log/error.log" /var/log/sortie/sortie.log
      bad "the subscriber on /push/events got no fire_count_update with count 1"; return; }
  say "the subscriber got: $(grep '"type":"fire_count_update"' "$T/sse.out" | head -n 1)"
  # the servers log where the package says, as its user
  $SUDO grep -q '\[pool\].* workers on ' /var/log/sortie/sortie.log 2>/dev/null ||
    { bad "the pool wrote no start line to /var/log/sortie/sortie.log"; return; }
  $SUDO grep -q '\[pushd\]' /var/log/sortie/sortie.log ||
    bad "sortie-pushd wrote nothing to /var/log/sortie/sortie.log"
}

# the other snippet: the same Apache with sortie-fcgid instead of sortie, the
# per-endpoint programs started by mod_fcgid as www-data (in group sortie, as
# the snippet says), a second user's fire on the same signal
check_fires_through_fcgid() {
  [ -n "$sig" ] && [ -n "$feed" ] || { bad "no signal (fires_end_to_end failed)"; return; }
  stop_apache
  $SUDO a2disconf -q sortie >/dev/null
  if [ ! -e /etc/apache2/mods-enabled/fcgid.load ]; then
    $SUDO a2enmod -q fcgid >/dev/null || { bad "a2enmod fcgid failed"; return; }
    mods_enabled="fcgid $mods_enabled"
  fi
  $SUDO a2enconf -q sortie-fcgid >/dev/null || { bad "a2enconf sortie-fcgid failed"; return; }
  confs_enabled="$confs_enabled sortie-fcgid"
  if ! id -nG www-data | tr ' ' '\n' | grep -qx sortie; then
    $SUDO adduser -q www-data sortie >/dev/null || { bad "adduser www-data sortie failed"; return; }
    added_www=1
  fi
  # the programs' environment, pointed at the test's Redis
  start_apache -c "FcgidInitialEnv SORTIE_REDIS_PORT $rport" || return
  wait_for "curl -fsS --max-time 5 http://127.0.0.1:$aport/health | grep -q '\"redis\":\"ok\"'" 150 ||
    { show "$T/apache/log/error.log"; bad "no healthy /health through mod_fcgid on $aport"; return; }
  bob=$($SUDO sortie-token deb-bob) || { bad "sortie-token could not mint a token"; return; }
  code=$(post "http://127.0.0.1:$aport/api/fire" "$bob" '{"signal_id":"'"$sig"'","timestamp":'"$(date +%s)"'}' \
    "$T/fire2.json")
  [ "$code" = 201 ] || { cat "$T/fire2.json"; show "$T/apache/log/error.log"; bad "POST /api/fire through mod_fcgid: $code, not 201"; return; }
  grep -q '"fire_count":2[,}]' "$T/fire2.json" || { cat "$T/fire2.json"; bad "the second fire's answer has no fire_count 2"; return; }
  say "fired through mod_fcgid: $(cat "$T/fire2.json")"
  # the programs log to Apache's error log (the snippet empties log.file):
  # a refused request is logged at info
  code=$(post "http://127.0.0.1:$aport/api/fire" "" '{}' "$T/fire3.json")
  [ "$code" = 401 ] || { bad "POST /api/fire without a token through mod_fcgid: $code, not 401"; return; }
  wait_for "grep -q 'info \[http\].* POST /api/fire 401' '$T/apache/log/error.log'" 100 ||
    { show "$T/apache/log/error.log"; bad "the fcgid program's log line is not in Apache's error log"; return; }
  # and do not try /var/log/sortie, which www-data may not write
  if grep -q 'cannot open log file' "$T/apache/log/error.log"; then
    grep 'cannot open log file' "$T/apache/log/error.log" | head -n 3 | sed 's/^/   | /'
    bad "the fcgid programs try log.file (the snippet should empty it)"
  fi
}

check_secret_kept_on_reinstall() {
  [ -s "$T/secret.sum" ] || { bad "no secret recorded at install (secret_generated failed)"; return; }
  $APT install -y -q --reinstall --no-install-recommends "$deb" >"$T/reinstall.log" 2>&1 ||
    { show "$T/reinstall.log"; bad "apt-get install --reinstall failed"; return; }
  $SUDO sha256sum -c --quiet "$T/secret.sum" >/dev/null 2>&1 ||
    { bad "the reinstall replaced /etc/sortie/jwt.secret"; return; }
  got=$($SUDO stat -c '%U:%G %a' /etc/sortie/jwt.secret)
  [ "$got" = "root:sortie 640" ] || bad "after the reinstall the secret is $got"
}

# apt remove: the programs go, the snippets are disabled (Apache would not
# start with them: they include files the removal deletes), the secret, the
# configuration and the user stay
# the package's snippets enabled in Apache, by name
enabled_snippets() {
  for l in /etc/apache2/conf-enabled/sortie*.conf; do
    [ -L "$l" ] && printf '%s ' "${l##*/}"
  done
  return 0
}

check_remove_keeps_secret_and_disables_snippets() {
  stop_servers
  enabled=$(enabled_snippets)
  [ -n "$enabled" ] || { bad "no sortie snippet was enabled before the remove (an earlier check failed)"; return; }
  $APT remove -y -q sortie >"$T/remove.log" 2>&1 ||
    { show "$T/remove.log"; bad "apt-get remove sortie failed"; return; }
  st=$(dpkg-query -W -f='${db:Status-Status}' sortie 2>/dev/null)
  [ "$st" = config-files ] || { bad "after the remove the package is '$st', not config-files"; return; }
  [ ! -e /usr/bin/sortie-api ] || { bad "/usr/bin/sortie-api is still there"; return; }
  left=$(enabled_snippets)
  [ -z "$left" ] || { bad "the remove left enabled: $left"; return; }
  say "disabled by the remove: $enabled"
  $SUDO sha256sum -c --quiet "$T/secret.sum" >/dev/null 2>&1 || { bad "the remove changed or removed the secret"; return; }
  [ -f /etc/sortie/sortie.conf ] || { bad "the remove deleted /etc/sortie/sortie.conf"; return; }
  getent passwd sortie >/dev/null || bad "the remove deleted the user sortie"
}

check_purge_is_clean() {
  stop_servers
  restore_apache
  $APT purge -y -q sortie >"$T/purge.log" 2>&1 ||
    { show "$T/purge.log"; bad "apt-get purge sortie failed"; return; }
  installed=0
  tidy_apache_state
  left=""
  # every path the package had, but directories that were there before it
  while read -r p; do
    [ "$p" = /. ] && continue
    [ -e "$p" ] || [ -L "$p" ] || continue
    grep -qxF "$p" "$T/dirs-before" && continue
    left="$left $p"
  done <"$T/files"
  for p in /etc/sortie /var/log/sortie /run/sortie /etc/apache2/conf-enabled/sortie.conf \
    /etc/apache2/conf-available/sortie.conf /etc/logrotate.d/sortie; do
    [ -e "$p" ] || [ -L "$p" ] && case " $left " in *" $p "*) ;; *) left="$left $p" ;; esac
  done
  # Apache's and systemd's records of the snippets and units
  for p in /var/lib/apache2/conf/*/sortie* /var/lib/systemd/deb-systemd-helper-enabled/sortie* \
    /var/lib/systemd/deb-systemd-helper-masked/sortie* /etc/systemd/system/sortie* \
    /etc/systemd/system/*.wants/sortie*; do
    [ -e "$p" ] || [ -L "$p" ] && left="$left $p"
  done
  # and whatever a maintainer script made outside the package's list
  for p in $(sortie_paths | comm -13 "$T/named-before" -); do
    case " $left " in *" $p "*) ;; *) left="$left $p" ;; esac
  done
  getent passwd sortie >/dev/null && left="$left user:sortie"
  getent group sortie >/dev/null && left="$left group:sortie"
  [ -z "$left" ] || { bad "left after the purge:$left"; return; }
  # no system service enabled or started on the way
  ls /etc/systemd/system/*.wants 2>/dev/null | diff "$T/wants-before" - >/dev/null ||
    { bad "the set of enabled systemd units changed"; return; }
  system_running | diff "$T/running-before" - >/dev/null ||
    { bad "a system Apache or Redis was started: $(system_running)"; return; }
  say "nothing left of $(wc -l <"$T/files") paths, the user, the secret, the logs, the snippet"
}

# one run at a time on a machine: the package, /run/sortie and Apache's
# configuration are the machine's
# (read-only, so any user may take it whoever made it)
if [ -z "$skip_all" ]; then
  lock=/tmp/sortie-test-deb.lock
  [ -e $lock ] || (umask 0 && : >>$lock)
  exec 9<$lock
  flock -w 900 9 || skip_all="another test_deb held $lock for 15 minutes"
fi

run_check package_builds
run_check lintian_is_clean
run_check installs
run_check secret_generated
run_check units_are_sandboxed
run_check logrotate_rules_parse
run_check fires_end_to_end
run_check fires_through_fcgid
run_check secret_kept_on_reinstall
run_check remove_keeps_secret_and_disables_snippets
run_check purge_is_clean
