-- files_exact.sql: feox removes or renames exactly the store files it created and nothing else
-- (issue 11 items 1, 3, 8): a path that is a prefix of other files (the database itself, the
-- user's data.csv), default file names of tables whose names hold '.', '-', '/', quotes, spaces,
-- '%' and non-ASCII, a table whose store file went missing, and tables with files are not usable
-- from triggers and views (SQLITE_VTAB_DIRECTONLY). The default file names are those of tables
-- of the previous release (a new table without path lives in the database): they are made by
-- creating the table with its default file as path and taking the path out of the schema text
-- before the next session. Sessions: see run.sh.
-- db: app.db
.bail off
CREATE TABLE native(x);
INSERT INTO native VALUES ('kept');
.shell echo csv > data.csv; echo sql > data-backup.sql; echo txt > data.txt
CREATE VIRTUAL TABLE kv USING feox(path='app');
CREATE VIRTUAL TABLE d USING feox(path='data');
INSERT INTO kv(key, value) VALUES ('a', 1);
INSERT INTO d(key, value) VALUES ('k', 'v');
DROP TABLE kv;
DROP TABLE d;
SELECT 'native', x FROM native;
-- an existing file that is not a feox store is refused untouched, and its name is said once
CREATE VIRTUAL TABLE t USING feox(path='data.txt');
SELECT 'no-t', count(*) FROM sqlite_schema WHERE name = 't';
-- a /proc file (the engine names it by its resolved /proc/<pid> path) and a directory
CREATE VIRTUAL TABLE t USING feox(path='/proc/self/mem');
CREATE VIRTUAL TABLE t USING feox(path='/');
-- a table of an attached database is named with its schema
ATTACH 'aux.db' AS aux;
CREATE VIRTUAL TABLE aux.t USING feox(path='data.txt');
DETACH aux;
.shell rm aux.db
-- reopen
.bail off
-- the database, data.csv, data-backup.sql and data.txt are untouched; the stores are gone
.shell ls | LC_ALL=C sort
.shell cat data.csv data-backup.sql data.txt
SELECT 'native-after-reopen', x FROM native;
INSERT INTO native VALUES ('still writable');
SELECT 'native-count', count(*) FROM native;
-- default file names: one file per table, whatever its name
CREATE VIRTUAL TABLE a USING feox(path='app.db-a.feox');
CREATE VIRTUAL TABLE "a.feox" USING feox(path='app.db-a.feox.feox');
CREATE VIRTUAL TABLE "a-b" USING feox(path='app.db-a-b.feox');
CREATE VIRTUAL TABLE "x/y" USING feox(path='app.db-x%2Fy.feox');
CREATE VIRTUAL TABLE "../up" USING feox(path='app.db-..%2Fup.feox');
CREATE VIRTUAL TABLE "it's ""q""" USING feox(path='app.db-it''s "q".feox');
CREATE VIRTUAL TABLE "sp ace" USING feox(path='app.db-sp ace.feox');
CREATE VIRTUAL TABLE "héllo" USING feox(path='app.db-héllo.feox');
CREATE VIRTUAL TABLE "100%" USING feox(path='app.db-100%25.feox');
INSERT INTO a VALUES ('name', 'a', NULL, NULL);
INSERT INTO "a.feox" VALUES ('name', 'a.feox', NULL, NULL);
INSERT INTO "a-b" VALUES ('name', 'a-b', NULL, NULL);
INSERT INTO "x/y" VALUES ('name', 'x/y', NULL, NULL);
INSERT INTO "../up" VALUES ('name', '../up', NULL, NULL);
INSERT INTO "it's ""q""" VALUES ('name', 'it''s "q"', NULL, NULL);
INSERT INTO "sp ace" VALUES ('name', 'sp ace', NULL, NULL);
INSERT INTO "héllo" VALUES ('name', 'héllo', NULL, NULL);
INSERT INTO "100%" VALUES ('name', '100%', NULL, NULL);
.shell ls | LC_ALL=C sort
.shell ls .. | grep -c 'up\.feox' || true
DROP TABLE a;
DROP TABLE "x/y";
-- make the tables above previous-release tables (no path in their CREATE text, records in their
-- default file "<db>-<table>.feox"): the only tables this release still names a file after
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = substr(sql, 1, instr(sql, '(path=') - 1)
 WHERE sql LIKE '%USING feox(path=''app.db-%';
PRAGMA writable_schema = OFF;
-- reopen
.bail off
.shell ls | LC_ALL=C sort
SELECT 'a.feox', value FROM "a.feox";
SELECT 'a-b', value FROM "a-b";
SELECT '../up', value FROM "../up";
SELECT 'quotes', value FROM "it's ""q""";
SELECT 'sp ace', value FROM "sp ace";
SELECT 'héllo', value FROM "héllo";
SELECT '100%', value FROM "100%";
-- another process cannot open a store this one holds; the message says its cause once (item 17)
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" app.db "SELECT * FROM [a-b]" 2>&1 || true
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" app.db "SELECT feox_incr('a-b', 'n', 1)" 2>&1 || true
-- RENAME moves exactly the store file, not files that merely start with its name
CREATE VIRTUAL TABLE r USING feox(path='app.db-r.feox');
INSERT INTO r VALUES ('k', 'r', NULL, NULL);
-- make the tables above previous-release tables (no path in their CREATE text, records in their
-- default file "<db>-<table>.feox"): the only tables this release still names a file after
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = substr(sql, 1, instr(sql, '(path=') - 1)
 WHERE sql LIKE '%USING feox(path=''app.db-%';
PRAGMA writable_schema = OFF;
-- reopen
.bail off
.shell echo bak > app.db-r.feox.bak; echo notes > app.db-r.feox-notes
ALTER TABLE r RENAME TO r2;
SELECT 'r2', value FROM r2;
.shell ls app.db-r* | LC_ALL=C sort
DROP TABLE r2;
-- a table whose store file is missing reports it and does not create an empty store; DROP works
CREATE VIRTUAL TABLE gone USING feox(path='app.db-gone.feox');
INSERT INTO gone VALUES ('k', 1, NULL, NULL);
-- make the tables above previous-release tables (no path in their CREATE text, records in their
-- default file "<db>-<table>.feox"): the only tables this release still names a file after
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = substr(sql, 1, instr(sql, '(path=') - 1)
 WHERE sql LIKE '%USING feox(path=''app.db-%';
PRAGMA writable_schema = OFF;
-- reopen
.bail off
.shell mv app.db-gone.feox gone.bak
SELECT * FROM gone;
INSERT INTO gone VALUES ('k2', 2, NULL, NULL);
SELECT feox_incr('gone', 'n', 1);
.shell ls app.db-gone.feox 2>/dev/null || echo 'not re-created'
-- the file is back: the table finds it without reconnecting
.shell mv gone.bak app.db-gone.feox
SELECT 'gone-is-back', key, value FROM gone;
DROP TABLE gone;
SELECT 'gone-dropped', count(*) FROM sqlite_schema WHERE name = 'gone';
-- triggers and views cannot use a table that has a file; a memory table stays usable
CREATE VIRTUAL TABLE f USING feox(path='f.feox');
CREATE VIRTUAL TABLE m USING feox(path=':memory:');
CREATE TABLE log(x);
CREATE TRIGGER log_f AFTER INSERT ON log BEGIN INSERT INTO f(key, value) VALUES (new.x, 1); END;
CREATE VIEW fv AS SELECT key FROM f;
INSERT INTO log VALUES ('via-trigger');
SELECT * FROM fv;
SELECT 'f-direct', count(*) FROM f;
DROP TRIGGER log_f;
CREATE TRIGGER log_m AFTER INSERT ON log BEGIN INSERT INTO m(key, value) VALUES (new.x, 1); END;
INSERT INTO log VALUES ('via-trigger');
SELECT 'm-from-trigger', key FROM m;
