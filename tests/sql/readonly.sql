-- readonly.sql: on a read-only connection every function that changes a store fails with
-- SQLITE_READONLY and SQLite's own message, exactly as an INSERT into the table does, and the
-- store is unchanged afterwards; feox_flush, feox_stats and feox_check stay allowed (SPEC §2
-- "Read-only"). Read-only here: the shell's -readonly, a mode=ro URI, PRAGMA query_only.
-- (A read-only database file is tested in tests/python/test_readonly.py: root may write any file.)
-- db: test.db
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value, ttl, ts) VALUES ('n', 1, NULL, 1000), ('c', 'v1', NULL, 1000), ('doc', '{"a":1}', 600, 1000), ('r', 2.0, NULL, 1000);
-- reopen
-- sqlite3 -readonly: each statement in its own process (the shell stops at the first error)
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT feox_incr('kv', 'n', 1)" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT feox_incr('kv', 'new', 1)" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT feox_incr('kv', 'r', 1, 60)" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT feox_cas('kv', 'c', 'v1', 'v2')" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT feox_cas('kv', 'c', 'other', 'v2')" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT feox_patch('kv', 'doc', json_array(json_object('op', 'add', 'path', '/b', 'value', 2)))" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT feox_compact('kv')" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT feox_sweep('kv')" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "BEGIN; SELECT feox_incr('kv', 'n', 1); COMMIT" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "INSERT INTO kv(key, value) VALUES ('x', 1)" 2>&1 || true
.shell "$SQLITE3" -readonly -cmd ".load $FEOX_EXT" test.db "SELECT 'ro-allowed', feox_flush('kv'), feox_check('kv'), length(feox_stats('kv')) > 0" 2>&1 || true
-- a mode=ro URI
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" "file:test.db?mode=ro" "SELECT feox_incr('kv', 'n', 1)" 2>&1 || true
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" "file:test.db?mode=ro" "SELECT feox_cas('kv', 'c', 'v1', 'v2')" 2>&1 || true
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" "file:test.db?mode=ro" "SELECT feox_compact('kv')" 2>&1 || true
-- an attached read-only database, named as schema.table
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" :memory: "ATTACH 'file:test.db?mode=ro' AS ro; SELECT feox_incr('ro.kv', 'n', 1)" 2>&1 || true
.bail off
-- PRAGMA query_only on this (writable) connection
PRAGMA query_only = 1;
SELECT feox_incr('kv', 'n', 1);
SELECT feox_incr('kv', 'new', 1);
SELECT feox_cas('kv', 'c', 'v1', 'v2');
SELECT feox_cas('kv', 'c', 'other', 'v2');
SELECT feox_patch('kv', 'doc', '[{"op":"add","path":"/b","value":2}]');
SELECT feox_compact('kv');
INSERT INTO kv(key, value) VALUES ('x', 1);
-- once per row in one statement, and inside a transaction
SELECT feox_incr('kv', 'n', 1) FROM (SELECT 1 UNION ALL SELECT 2);
BEGIN;
SELECT feox_incr('kv', 'n', 1);
ROLLBACK;
SELECT 'qo-allowed', feox_flush('kv'), feox_check('kv'), json_extract(feox_stats('kv'), '$.len');
PRAGMA query_only = 0;
-- nothing changed, in any of the above
SELECT 'unchanged', key, quote(value), ttl > 0, ts FROM kv ORDER BY key;
-- writable again
SELECT 'writable', feox_incr('kv', 'n', 1), feox_cas('kv', 'c', 'v1', 'v2');
