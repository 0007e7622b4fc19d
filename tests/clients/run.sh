#!/usr/bin/env bash
# tests/clients/run.sh — feox through the SQLite bindings of Tcl, Ruby and PHP (Debian's tcl +
# libsqlite3-tcl, ruby + ruby-sqlite3, php-cli + php-sqlite3; make deps-test installs them).
#
# Usage:  bash tests/clients/run.sh [tcl|ruby|php ...]     (make client-tests runs all three)
#   FEOX_EXT  path of the extension without ".so" (default <repo>/$B/feox, B defaulting to "build")
#
# Each language's script (feox_test.tcl, feox_test.rb, feox_test.php) runs in a fresh temporary
# directory: a database file in WAL and in rollback-journal mode, types, writes, the functions,
# TTL, ranges, transactions (the binding's own helper included), other processes writing at the
# same time (exact totals), exit without close, a read-only connection, busy_timeout. A language
# whose interpreter or binding is missing is skipped with a line saying so (the run still
# passes); any failure fails the run.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
ext=${FEOX_EXT:-$repo/${B:-build}/feox}
case "$ext" in /*) ;; *) ext=$PWD/$ext ;; esac
[ -f "$ext.so" ] || { echo "client tests: $ext.so not found (make all, or set FEOX_EXT)" >&2; exit 1; }

have_tcl() { command -v tclsh >/dev/null && echo 'package require sqlite3' | tclsh >/dev/null 2>&1; }
have_ruby() { command -v ruby >/dev/null && ruby -e 'require "sqlite3"' >/dev/null 2>&1; }
have_php() {
    command -v php >/dev/null &&
        php -r 'exit(class_exists("SQLite3") && function_exists("pcntl_fork") ? 0 : 1);' >/dev/null 2>&1
}

# The command that runs one language's script, without its last argument (the scratch directory).
command_tcl=(tclsh "$here/feox_test.tcl" "$ext")
command_ruby=(ruby "$here/feox_test.rb" "$ext")
command_php=(php -d "sqlite3.extension_dir=$(dirname "$ext")" "$here/feox_test.php" "$ext")

languages=("$@")
[ ${#languages[@]} -gt 0 ] || languages=(tcl ruby php)
failed=0
for lang in "${languages[@]}"; do
    case "$lang" in tcl | ruby | php) ;; *) echo "client tests: unknown language $lang" >&2; exit 2 ;; esac
    if ! "have_$lang"; then
        echo "== $lang: skipped (interpreter or SQLite binding not installed; make deps-test)"
        continue
    fi
    echo "== $lang"
    dir=$(mktemp -d "${TMPDIR:-/tmp}/feox-client-$lang.XXXXXX")
    declare -n command="command_$lang"
    if ! timeout 300 "${command[@]}" "$dir"; then
        echo "client tests: $lang FAILED (files kept in $dir)" >&2
        failed=1
        continue
    fi
    rm -rf "$dir"
done
exit $failed
