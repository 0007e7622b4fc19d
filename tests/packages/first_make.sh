#!/usr/bin/env bash
# tests/packages/first_make.sh — a first `make` on a machine without the build's Debian packages
# installs them or stops with one line naming `make deps`; it never reaches the compiler.
#
# Usage:  bash tests/packages/first_make.sh   (make package-tests runs it). Nothing is installed or
# removed: a fake dpkg-query reports libcjson-dev as not installed, and make runs with a PATH made
# of that fake, a fake `id` / `apt-get` where the case needs them, and links to the real tools
# (no sudo). Each case builds into its own temporary build directory:
#   1. not root, no sudo:  `make` exits non-zero before compiling anything, printing exactly one
#      line that names `make deps` and libcjson-dev (besides make's own "make: *** ... Error 1");
#   2. root:               `make <one object>` runs apt-get update + apt-get install libcjson-dev
#      (the fake records it) and then compiles the object;
#   3. everything installed (the real dpkg-query), apt-get booby-trapped: the object compiles and
#      apt-get is never run, so a configured machine pays no network cost.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$repo/tests/packages/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL CC

# A bin directory with links to the real tools make and the build need, plus the fakes.
tools() {
    local dir=$1 t
    mkdir -p "$dir"
    for t in make sh bash cc gcc grep sed tr find rm mkdir cat dirname pkg-config as ld ar strip; do
        if command -v "$t" >/dev/null; then ln -sf "$(command -v "$t")" "$dir/$t"; fi
    done
    # gcc finds its own helpers (cc1, collect2) by absolute path; as and ld are linked above.
}
fake_dpkg_missing_cjson() {
    cat >"$1/dpkg-query" <<'SH'
#!/bin/sh
# dpkg-query -W -f='${Status} ${Package}\n' PACKAGE...: every package but libcjson-dev installed
shift 2
status=0
for p; do
    if [ "$p" = libcjson-dev ]; then echo "dpkg-query: no packages found matching $p" >&2; status=1
    else echo "install ok installed $p"; fi
done
exit $status
SH
    chmod +x "$1/dpkg-query"
}
fake_id() {
    printf '#!/bin/sh\n[ "$1" = -u ] && { echo %s; exit 0; }\nexec %s "$@"\n' "$2" "$(command -v id)" >"$1/id"
    chmod +x "$1/id"
}
fake_apt() {
    printf '#!/bin/sh\necho "apt-get $*" >>"%s"\n%s\n' "$2" "$3" >"$1/apt-get"
    chmod +x "$1/apt-get"
}
object=rel/engine/base/alloc.o

echo "== first make: not root and no sudo -> one line naming make deps"
bin="$tmp/bin1"
tools "$bin"
fake_dpkg_missing_cjson "$bin"
fake_id "$bin" 1000
fake_apt "$bin" "$tmp/apt1.log" 'exit 1'
status=0
(cd "$repo" && PATH="$bin" make --no-print-directory B="$tmp/b1" >"$tmp/out1" 2>&1) || status=$?
[ "$status" != 0 ] || fail "make succeeded although libcjson-dev is missing"
# Besides make's own "make: *** [...] Error 1", exactly one line, naming make deps and the package.
grep -v '^make: \*\*\* ' "$tmp/out1" >"$tmp/said1" || true
[ "$(wc -l <"$tmp/said1")" = 1 ] || { cat "$tmp/out1"; fail "expected exactly one line of output"; }
grep -q "make deps" "$tmp/said1" && grep -q "libcjson-dev" "$tmp/said1" ||
    { cat "$tmp/out1"; fail "the line does not name make deps and libcjson-dev"; }
[ -z "$(find "$tmp/b1" -name '*.o' 2>/dev/null)" ] || fail "make compiled before stopping"
[ ! -e "$tmp/apt1.log" ] || fail "apt-get ran without root or sudo"
cat "$tmp/out1"

echo "== first make: root -> apt-get installs the missing package, then the build goes on"
bin="$tmp/bin2"
tools "$bin"
fake_dpkg_missing_cjson "$bin"
fake_id "$bin" 0
fake_apt "$bin" "$tmp/apt2.log" 'exit 0'
(cd "$repo" && PATH="$bin" make --no-print-directory B="$tmp/b2" "$tmp/b2/$object" >"$tmp/out2" 2>&1) ||
    { cat "$tmp/out2"; fail "make as root with a missing package failed"; }
grep -q '^apt-get update' "$tmp/apt2.log" || fail "no apt-get update before installing"
grep -q '^apt-get install .*libcjson-dev' "$tmp/apt2.log" || fail "apt-get install libcjson-dev not run"
! grep -q 'install.*libsqlite3-dev' "$tmp/apt2.log" || fail "apt-get asked for installed packages"
[ -f "$tmp/b2/$object" ] || fail "the object was not built after installing"

echo "== first make: everything installed -> no apt-get"
bin="$tmp/bin3"
tools "$bin"
ln -sf "$(command -v dpkg-query)" "$bin/dpkg-query"
fake_apt "$bin" "$tmp/apt3.log" 'exit 1'
(cd "$repo" && PATH="$bin" make --no-print-directory B="$tmp/b3" "$tmp/b3/$object" >"$tmp/out3" 2>&1) ||
    { cat "$tmp/out3"; fail "make with every package installed failed"; }
[ ! -e "$tmp/apt3.log" ] || fail "apt-get ran although every package is installed"
[ -f "$tmp/b3/$object" ] || fail "the object was not built"
echo "first make: ok"
