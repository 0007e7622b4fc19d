#!/usr/bin/env bash
# tests/sql/run.sh — golden SQL tests through the real sqlite3 shell, and the sql/ recipes.
#
# Usage:  bash tests/sql/run.sh [NAME ...]        (make sql-tests runs it with no arguments)
#   FEOX_EXT  path of the extension without ".so" (default <repo>/$B/feox, B defaulting to
#             "build"; `make B=dir sql-tests` passes B in the environment)
#   SQLITE3   the shell to run (default /usr/bin/sqlite3 if present, else sqlite3 on PATH)
#   NAME      run only tests/sql/NAME.sql and/or sql/NAME.sql
#
# 1. Golden tests: every tests/sql/NAME.sql that has a tests/sql/NAME.expected.
#    - Runs in a fresh, empty temporary directory (the current directory of the shell), so
#      relative store paths such as path='t.feox' land there, ".shell ls" lists only the files
#      the test made, and nothing leaks between tests. FEOX_EXT is exported (absolute), so a
#      test may start a second process with .shell "$SQLITE3" -cmd ".load $FEOX_EXT" ...
#    - The file is split into sessions at lines that are exactly "-- reopen". Each session is a
#      separate process:   sqlite3 -bail -cmd ".load $FEOX_EXT" DB < session
#      so everything a session leaves in files must survive the process exit. Between two
#      sessions the line "-- reopen" is written to the output, so the .expected mirrors the .sql.
#      Shell settings such as ".bail off" do not carry over: each session sets its own.
#    - DB is ":memory:" unless the file has a line "-- db: FILE" (e.g. "-- db: test.db"), in
#      which case every session opens that database file in the temporary directory.
#    - stdout and stderr are compared together with NAME.expected (diff -u). Files that test
#      errors say ".bail off" first. Three normalisations keep outputs stable when the .sql is
#      edited: "Parse error near line N:" becomes "Parse error:" (same for "Runtime error"),
#      the temporary directory's path is written as "$TMPDIR", and the idxNum in EXPLAIN QUERY
#      PLAN lines ("VIRTUAL TABLE INDEX 25:ordered scan key>?") becomes "N": it is an internal
#      bitmask, the idxStr after the colon is the readable plan that the tests pin.
# 2. Recipes: sql/NAME.sql (demo.sql included) that have sql/expected/NAME.expected. Each runs the
#    way a user runs it and the way `make demo` runs demo.sql, from a copy of sql/ in a temporary
#    directory next to a "build/feox.so" link to $FEOX_EXT.so:
#      cd <tmp>/sql && sqlite3 -bail -cmd '.load ../build/feox' :memory: < NAME.sql
#    and stdout+stderr (same normalisations) must equal sql/expected/NAME.expected.
#    A recipe without an expected output fails the run: every recipe is checked.
#
# Exit status: 0 when every file matches, 1 otherwise (each difference is printed).
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
ext=${FEOX_EXT:-$repo/${B:-build}/feox}
case "$ext" in /*) ;; *) ext=$(pwd)/$ext ;; esac
if [ -z "${SQLITE3:-}" ]; then
    if [ -x /usr/bin/sqlite3 ]; then SQLITE3=/usr/bin/sqlite3; else SQLITE3=sqlite3; fi
fi
command -v "$SQLITE3" >/dev/null || { echo "run.sh: $SQLITE3 not found" >&2; exit 1; }
[ -f "$ext.so" ] || { echo "run.sh: extension $ext.so not found (set FEOX_EXT)" >&2; exit 1; }

export FEOX_EXT=$ext SQLITE3
work=$(mktemp -d "${TMPDIR:-/tmp}/feox-sqltest.XXXXXX") || exit 1
work=$(cd "$work" && pwd -P) # the canonical path, as the extension reports it in messages
trap 'rm -rf "$work"' EXIT

want() { # want NAME: is NAME selected by the command line (no arguments = all)?
    [ ${#selected[@]} -eq 0 ] && return 0
    local s
    for s in "${selected[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}
selected=("$@")

normalise() { # normalise DIR: stable error prefixes, temp dir hidden
    sed -E -e 's/^(Parse|Runtime) error near line [0-9]+:/\1 error:/' -e "s|$1|\$TMPDIR|g" \
        -e 's/(VIRTUAL TABLE INDEX )[0-9]+:/\1N:/'
}

pass=0
fail=0
report() { # report NAME EXPECTED ACTUAL
    if diff -u --label "$2" --label "actual" "$2" "$3"; then
        pass=$((pass + 1)); echo "ok   $1"
    else
        fail=$((fail + 1)); echo "FAIL $1"
    fi
}

# ---- 1. golden tests -----------------------------------------------------------------------------
for sql in "$here"/*.sql; do
    [ -e "$sql" ] || continue
    name=$(basename "$sql" .sql)
    want "$name" || continue
    expected="$here/$name.expected"
    [ -f "$expected" ] || continue
    dir="$work/$name"
    mkdir -p "$dir/sessions" "$dir/cwd"
    db=$(sed -n 's/^-- db: *\([^ ]*\) *$/\1/p' "$sql" | head -1)
    db=${db:-:memory:}
    # split into sessions at "-- reopen" lines
    awk -v out="$dir/sessions/s" '
        BEGIN { n = 1 }
        $0 == "-- reopen" { n++; next }
        { print > (out n ".sql") }
        END { for (i = 1; i <= n; i++) printf "" >> (out i ".sql") }' "$sql"
    : > "$dir/actual.raw"
    n=$(ls "$dir/sessions" | wc -l)
    for ((i = 1; i <= n; i++)); do
        [ $i -gt 1 ] && echo "-- reopen" >> "$dir/actual.raw"
        (cd "$dir/cwd" && "$SQLITE3" -bail -cmd ".load $ext" "$db" < "../sessions/s$i.sql" \
            >> ../actual.raw 2>&1)
    done
    normalise "$dir/cwd" < "$dir/actual.raw" > "$dir/actual"
    report "tests/sql/$name.sql" "$expected" "$dir/actual"
done

# ---- 2. recipes and the demo ---------------------------------------------------------------------
mkdir -p "$work/recipes/build"
ln -s "$ext.so" "$work/recipes/build/feox.so"
for sql in "$repo"/sql/*.sql; do
    [ -e "$sql" ] || continue
    name=$(basename "$sql" .sql)
    want "$name" || continue
    expected="$repo/sql/expected/$name.expected"
    if [ ! -f "$expected" ]; then
        fail=$((fail + 1)); echo "FAIL sql/$name.sql: no sql/expected/$name.expected"; continue
    fi
    rm -rf "$work/recipes/sql"
    mkdir -p "$work/recipes/sql"
    cp "$sql" "$work/recipes/sql/"
    (cd "$work/recipes/sql" && "$SQLITE3" -bail -cmd '.load ../build/feox' :memory: \
        < "$name.sql" > ../actual.raw 2>&1)
    normalise "$work/recipes" < "$work/recipes/actual.raw" > "$work/recipes/actual"
    report "sql/$name.sql" "$expected" "$work/recipes/actual"
done

echo "sql tests: $pass passed, $fail failed"
[ $fail -eq 0 ]
