#!/bin/sh
# The one dependency step: installs, with apt-get, only the Debian packages that are
# missing, without letting their system services start. Called by `make run`,
# `make test` and .ci/run; safe to run again and again.
#
#   tools/deps.sh            build + run + test packages (groff-base: test_man
#                            renders each man page to catch roff mistakes; the
#                            pages themselves are built without it)
#   tools/deps.sh --browser  also Chromium, playwright-core and React (browser tests)
#   tools/deps.sh --deb      also what `make deb` and its test need (debhelper,
#                            dpkg-dev, lintian; logrotate, whose -d checks the
#                            package's rules; systemd, whose systemd-analyze
#                            checks its units: present on any Debian machine
#                            but a container, and nothing is started)
#   tools/deps.sh --bench    also what the benchmarks need (wrk; Flask, redis-py
#                            and gunicorn for the peer of bench/peer/; nginx-light
#                            and its nchan module, run privately by bench/nchan.sh)
set -eu

PKGS="make gcc clang pkg-config libc6-dev
libfcgi-dev libfcgi-bin libhiredis-dev libjson-c-dev libjwt-dev libssl-dev
libmicrohttpd-dev libwslay-dev
apache2 libapache2-mod-fcgid redis-server
libcriterion-dev libcurl4-openssl-dev curl ca-certificates
groff-base"

want_browser=0
want_bench=0
want_deb=0
for a in "$@"; do
  case "$a" in
    --browser) want_browser=1 ;;
    --bench) want_bench=1 ;;
    --deb) want_deb=1 ;;
    *) echo "deps.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
[ $want_browser = 1 ] && PKGS="$PKGS chromium nodejs npm"
[ $want_deb = 1 ] && PKGS="$PKGS debhelper dpkg-dev lintian logrotate systemd"
[ $want_bench = 1 ] && PKGS="$PKGS wrk procps python3-flask python3-redis python3-jwt gunicorn nginx-light libnginx-mod-nchan"

missing=""
for p in $PKGS; do
  # a package counts as present only when dpkg says it is fully installed
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing="$missing $p"
done
# nodejs may come from elsewhere than Debian (a newer build that bundles npm)
if [ $want_browser = 1 ] && command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -vx 'nodejs\|npm' | tr '\n' ' ')
fi

if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps.sh: need root or sudo to install:$missing" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "deps.sh: installing:$missing"
  # Refuse service starts while installing: apache2 and redis-server must not be
  # left running as system services. Remove the guard however we leave.
  prc=/usr/sbin/policy-rc.d
  had_prc=0
  [ -e $prc ] && had_prc=1
  if [ $had_prc = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee $prc >/dev/null
    $SUDO chmod 755 $prc
    trap '$SUDO rm -f '"$prc" EXIT INT TERM
  fi
  # The package lists may be missing or stale on a fresh machine.
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; then
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
  fi
fi

if [ $want_browser = 1 ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  # npm install (package-lock.json's versions) when a module the browser tests
  # use is missing: playwright-core; React for docs/CLIENT.md's hook example
  for m in playwright-core react react-dom; do
    if [ -f "$here/tests/browser/package.json" ] && [ ! -d "$here/tests/browser/node_modules/$m" ]; then
      (cd "$here/tests/browser" && npm install --no-audit --no-fund --loglevel=error)
      break
    fi
  done
fi
exit 0
