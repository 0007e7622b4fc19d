-- persist_default.sql: with no path, a table in a file database (main or attached) persists in
-- that database, in shadow tables <table>_data, _log, _meta and the index <table>_data_expires
-- (no file is made); a relative path is relative to the database file's directory;
-- path=':memory:' is memory only; functions find a table no statement has touched yet;
-- ALTER TABLE ... RENAME keeps the data (also across
-- reopen); DROP TABLE removes the shadow tables and every file; a second process reads the same
-- table while this one has it open (a store file, by contrast, is held by one process:
-- files_exact.sql). Sessions: see run.sh.
-- db: test.db
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 'two'), ('c', 3.5);
CREATE VIRTUAL TABLE mem USING feox(path=':memory:');
INSERT INTO mem(key, value) VALUES ('m', 1);
.shell mkdir sub
ATTACH 'sub/other.db' AS o;
CREATE VIRTUAL TABLE o.def USING feox;
CREATE VIRTUAL TABLE o.rel USING feox(path='rel.feox');
INSERT INTO o.def(key, value) VALUES ('d', 'in other.db');
INSERT INTO o.rel(key, value) VALUES ('r', 'relative');
.shell ls sub/rel.feox; ls test.db-kv.feox sub/other.db-def.feox 2>/dev/null || echo 'no default store files'
SELECT 'shadow', group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE name LIKE 'kv%' ORDER BY name);
SELECT 'shadow-other', group_concat(name, ' ') FROM (SELECT name FROM o.sqlite_schema WHERE name LIKE 'def%' ORDER BY name);
-- reopen
.bail off
-- a function is the first thing to touch the table in this process
SELECT 'incr-first', feox_incr('kv', 'ctr', 1);
SELECT 'data', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
SELECT 'mem-empty', count(*) FROM mem;
ATTACH 'sub/other.db' AS o;
SELECT 'other', (SELECT value FROM o.def WHERE key = 'd'), (SELECT value FROM o.rel WHERE key = 'r');
SELECT 'other-incr', feox_incr('o.def', 'n', 2);
-- another process reads the same table while this one has it open
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" test.db "SELECT count(*) FROM kv" 2>&1 || true
ALTER TABLE kv RENAME TO kv2;
SELECT 'renamed', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv2 ORDER BY key);
SELECT 'renamed-incr', feox_incr('kv2', 'ctr', 1);
SELECT feox_incr('kv', 'ctr', 1);
-- a new table may take the old name: it is a different, empty store
CREATE VIRTUAL TABLE kv USING feox;
SELECT 'new-kv', count(*) FROM kv;
INSERT INTO kv(key, value) VALUES ('new', 1);
-- reopen
.bail off
SELECT 'kv2-after-reopen', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv2 ORDER BY key);
SELECT 'kv-after-reopen', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
ATTACH 'sub/other.db' AS o;
SELECT 'other-after-reopen', (SELECT value FROM o.def WHERE key = 'n');
DROP TABLE kv2;
DROP TABLE kv;
DROP TABLE mem;
DROP TABLE o.def;
DROP TABLE o.rel;
DETACH o;
-- reopen
-- the last DROP's file goes when the connection closes (its DROP has committed by then)
.shell ls . sub
