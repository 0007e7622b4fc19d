#!/usr/bin/env bash
# tests/sql/valgrind.sh — the loadable extension under valgrind (issue 5 item 10, issue 7 item 5).
#
# Runs the real sqlite3 shell under
#   valgrind --leak-check=full --error-exitcode=1
# with a script that loads and unloads the extension several times (each ".open" closes the
# connection, which disconnects every table, closes the stores, stops their threads and unloads
# feox.so), and on each round exercises memory and file-backed tables: inserts of every type,
# TTL, ranges, IN, LIKE/GLOB, UPDATE/DELETE, the functions, errors, transactions, savepoints,
# reopen of a file store, RENAME and DROP. Any invalid access or definite/possible leak fails.
#   FEOX_EXT  path of the extension without ".so" (default <repo>/$B/feox, B defaulting to
#             "build"; `make B=dir sql-tests` passes B in the environment)
#   ROUNDS    load/unload rounds (default 4)
# Skipped (exit 0, with a message) only when valgrind is not installed.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
ext=${FEOX_EXT:-$repo/${B:-build}/feox}
case "$ext" in /*) ;; *) ext=$(pwd)/$ext ;; esac
rounds=${ROUNDS:-4}
SQLITE3=${SQLITE3:-/usr/bin/sqlite3}
[ -x "$SQLITE3" ] || SQLITE3=$(command -v sqlite3)

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind.sh: SKIPPED: valgrind is not installed (apt-get install valgrind)"
    exit 0
fi
[ -f "$ext.so" ] || { echo "valgrind.sh: extension $ext.so not found (set FEOX_EXT)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/feox-valgrind.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
cd "$work"

# one round: load the extension into a fresh connection and use it
round() {
    cat <<SQL
.bail off
.open --new $work/r$1.db
.load $ext
CREATE VIRTUAL TABLE kv USING feox;
CREATE VIRTUAL TABLE mem USING feox(path=':memory:', max_memory='1MB');
CREATE VIRTUAL TABLE kb USING feox(path='$work/kb$1.feox', keytype='blob', sync='full');
INSERT INTO kv(key, value) VALUES ('i', 1), ('r', 2.5), ('t', 'text'), ('b', x'00ff'), ('n', NULL),
  ('e', ''), ('doc', '{"a":[1,2],"id":9007199254740993}');
INSERT INTO kv(key, value, ttl) VALUES ('ttl', 'x', 60), ('gone', 'x', 1);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300)
INSERT INTO kv(key, value) SELECT printf('k%04d', i), randomblob(i % 50) FROM c;
INSERT INTO kb(key, value) SELECT CAST(key AS BLOB), value FROM kv WHERE key GLOB 'k00*';
INSERT INTO mem(key, value) VALUES ('m', zeroblob(1000));
SELECT count(*), sum(length(value)) FROM kv WHERE key BETWEEN 'k0010' AND 'k0200';
SELECT key FROM kv WHERE key > 'k0290' ORDER BY key DESC LIMIT 3 OFFSET 1;
SELECT key FROM kv WHERE key IN ('i', 'r', 'zz', 5);
SELECT count(*) FROM kv WHERE key LIKE 'K01%';
SELECT count(*) FROM kv WHERE key GLOB 'k02*';
SELECT count(*) FROM kb WHERE key >= x'6b30' AND key < x'6b3031';
UPDATE kv SET value = value || '!' WHERE key GLOB 'k01*';
UPDATE kv SET key = 'moved' WHERE key = 't';
UPDATE kv SET ttl = 30 WHERE key = 'i';
DELETE FROM kv WHERE key < 'k0050' AND key GLOB 'k*';
SELECT feox_incr('kv', 'ctr', 5), feox_incr('kv', 'i', 1);
SELECT feox_cas('kv', 'ctr', 5, 6), feox_cas('kv', 'ctr', 5, 7);
SELECT feox_patch('kv', 'doc', '[{"op":"add","path":"/a/-","value":3},{"op":"remove","path":"/a/0"}]');
SELECT json_extract(feox_stats('kv'), '\$.len') > 0;
SELECT 1 FROM (SELECT feox_flush('kb'));
BEGIN;
INSERT INTO kv(key, value) VALUES ('txn', 1);
SAVEPOINT s;
DELETE FROM kv WHERE key GLOB 'k02*';
SELECT feox_incr('kv', 'ctr', 1);
ROLLBACK TO s;
RELEASE s;
ROLLBACK;
SAVEPOINT sp_outer;
INSERT INTO kv(key, value) VALUES ('sp', 1);
ROLLBACK TO sp_outer;
RELEASE sp_outer;
INSERT INTO kv(key, value) VALUES ('i', 'dup');
INSERT INTO kv(key, value) VALUES (NULL, 1);
INSERT INTO kv(key, value, ttl) VALUES ('neg', 1, -1);
INSERT INTO kv(key, value) VALUES ('a1', 1), ('i', 2), ('a2', 3);
INSERT INTO mem(key, value) VALUES ('big', zeroblob(2000000));
SELECT feox_incr('kv', 'moved', 1);
SELECT feox_patch('kv', 'doc', 'not json');
SELECT feox_patch('kv', 'nokey', '[]');
SELECT feox_incr('nosuch', 'k', 1);
CREATE VIRTUAL TABLE bad USING feox(bogus=1);
CREATE VIRTUAL TABLE bad USING feox(max_memory='lots');
ALTER TABLE kv RENAME TO kv2;
SELECT count(*) FROM kv2;
.open $work/r$1.db
.load $ext
SELECT count(*) FROM kv2;
CREATE VIRTUAL TABLE kb USING feox(path='$work/kb$1.feox', keytype='blob', sync='full');
SELECT count(*) FROM kb;
DROP TABLE kb;
DROP TABLE kv2;
DROP TABLE mem;
SELECT 'round $1 done';
SQL
}

{
    for ((i = 1; i <= rounds; i++)); do round "$i"; done
    echo ".open :memory:"
} > script.sql

echo "valgrind.sh: $rounds load/unload rounds of $(wc -l < script.sql) lines under valgrind"
valgrind --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=99 \
    --log-file="$work/valgrind.log" "$SQLITE3" :memory: < script.sql > "$work/out.txt" 2>&1
rc=$?
done_rounds=$(grep -c '^round [0-9]* done$' "$work/out.txt")
if [ $rc -eq 99 ] || [ $rc -gt 1 ] || [ "$done_rounds" -ne "$rounds" ]; then
    echo "valgrind.sh: FAILED (exit $rc, $done_rounds of $rounds rounds completed)"
    echo "---- shell output (tail) ----"; tail -20 "$work/out.txt"
    echo "---- valgrind log ----"; grep -v '^==[0-9]*== *$' "$work/valgrind.log" | head -150
    exit 1
fi
grep -E 'ERROR SUMMARY|definitely lost|possibly lost' "$work/valgrind.log" | sed 's/^==[0-9]*== /  /'
echo "valgrind.sh: ok"
