#!/usr/bin/env bash
# tests/packages/node_package.sh — the feox npm tarball installs next to better-sqlite3 and works.
#
# Usage:  B=<build dir> bash tests/packages/node_package.sh   (make node-package-test runs it after
# make node-package). Checks that the tarball holds package/feox.so, makes a scratch npm project in
# a temporary directory with the tarball and better-sqlite3@^12 (kept in <B>/node-deps between runs,
# see lib.sh) and runs tests/packages/node_app.js there (transactions, typed values, feox_incr from
# worker_threads with exact totals), then tests/packages/node_processes.js (feox and native counters
# from child processes and a worker_thread in deferred and immediate transactions, WAL and
# rollback journal, one child killed with SIGKILL inside a transaction).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${B:-build}
case "$build" in /*) ;; *) build="$repo/$build" ;; esac
source "$repo/tests/packages/lib.sh"

tgz=$(find_one "$build/node" 'feox-*.tgz')
listing=$(tar tzf "$tgz")
for f in package/package.json package/index.js package/feox.so; do
    grep -qx "$f" <<<"$listing" || fail "no $f in $tgz" # no pipe: grep -q may stop reading early
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make_feox_node_project "$tmp/project" "$tgz" "$build"
cp "$repo/tests/packages/node_app.js" "$repo/tests/packages/node_processes.js" "$tmp/project/"
mkdir "$tmp/data"
echo "== node package: app in a scratch npm project"
(cd "$tmp/project" && node node_app.js "$tmp/data")
echo "== node package: counters from child processes and a worker_thread"
(cd "$tmp/project" && node node_processes.js "$tmp/data")
