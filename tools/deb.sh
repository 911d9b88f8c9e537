#!/bin/sh
# `make deb`: builds the Debian package (debian/, debhelper) from a copy of the
# source in a temporary folder, so that nothing in the checkout (build/ and
# the rest) is read or written by the package build, and puts what
# dpkg-buildpackage made (the .deb, the -dbgsym .deb, .buildinfo, .changes)
# and its log in $BUILD/deb/. Prints the path of the .deb on its last line.
#   BUILD=build sh tools/deb.sh
# DEB_JOBS (default 2) compile jobs.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$here/$BUILD" ;; esac
out="$BUILD/deb"
log="$out/build.log"

# what building needs, and nothing else (no tests, docs, benchmarks, git)
SRC="Makefile README.md INSTALL cgi-bin conf debian lib man pushd tools www"

for t in dpkg-buildpackage dh; do
  command -v $t >/dev/null || { echo "deb: $t is missing: run sh tools/deps.sh --deb" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/sortie-deb-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/sortie"
# shellcheck disable=SC2086 # a fixed list of names without spaces
(cd "$here" && tar -cf - $SRC) | tar -xf - -C "$work/sortie"

echo "deb: building in $work/sortie (log: $log)"
if ! (cd "$work/sortie" && dpkg-buildpackage -b -us -uc -j"${DEB_JOBS:-2}") >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "deb: dpkg-buildpackage failed (the whole log: $log)" >&2
  exit 1
fi
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
deb=$(ls "$out"/sortie_*.deb)
echo "$deb"
