-- files_ddl_txn.sql: DROP, RENAME and CREATE follow SQLite's transaction (issue 11 item 6). A
-- rolled-back DROP (ROLLBACK, ROLLBACK TO) or RENAME leaves the table with all its data; a
-- rolled-back CREATE leaves no file; files change only once the schema change has committed.
-- kv and t are tables of the previous release, whose records are in their default files
-- "<db>-<table>.feox" (the only tables this release still names a file after): each is created
-- with that file as path, and the path is taken out of the schema text before the next session.
-- (db_ddl_txn.sql does the same steps in database mode, the default for new tables.)
-- Sessions: see run.sh.
-- db: test.db
.bail off
CREATE VIRTUAL TABLE kv USING feox(path='test.db-kv.feox');
CREATE VIRTUAL TABLE mem USING feox(path=':memory:');
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2);
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = substr(sql, 1, instr(sql, '(path=') - 1)
 WHERE sql LIKE '%USING feox(path=''test.db-%';
PRAGMA writable_schema = OFF;
-- reopen
.bail off
INSERT INTO mem(key, value) VALUES ('m', 1);
BEGIN;
DROP TABLE kv;
DROP TABLE mem;
ROLLBACK;
SELECT 'drop-rolled-back', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
SELECT 'mem-drop-rolled-back', group_concat(key, ' ') FROM mem;
SAVEPOINT s;
DROP TABLE kv;
ROLLBACK TO s;
RELEASE s;
SELECT 'rollback-to', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
BEGIN;
ALTER TABLE kv RENAME TO kv2;
SELECT 'in-txn-renamed', count(*) FROM kv2;
ALTER TABLE mem RENAME TO mem2;
ROLLBACK;
SELECT 'rename-rolled-back', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
SELECT 'mem-rename-rolled-back', group_concat(key, ' ') FROM mem;
.shell ls | LC_ALL=C sort
-- SAVEPOINT around a RENAME: the old name finds its data inside the same transaction
BEGIN;
SAVEPOINT r;
ALTER TABLE kv RENAME TO kv3;
ROLLBACK TO r;
SELECT 'rename-rollback-to', count(*) FROM kv;
COMMIT;
-- a rolled-back CREATE leaves no file
BEGIN;
CREATE VIRTUAL TABLE newt USING feox;
INSERT INTO newt(key, value) VALUES ('x', 1);
ROLLBACK;
SELECT 'after-create-rollback', count(*) FROM kv;
.shell ls | LC_ALL=C sort
-- a name dropped in the open transaction cannot be created again before COMMIT
BEGIN;
DROP TABLE kv;
CREATE VIRTUAL TABLE kv USING feox(path='test.db-kv.feox');
COMMIT;
SELECT 'dropped-committed', count(*) FROM sqlite_schema WHERE name = 'kv';
.shell ls | LC_ALL=C sort
-- DROP then CREATE of the same name, each committed: a new, empty store
CREATE VIRTUAL TABLE kv USING feox(path='test.db-kv.feox');
SELECT 'recreated', count(*) FROM kv;
INSERT INTO kv(key, value) VALUES ('new', 1);
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = substr(sql, 1, instr(sql, '(path=') - 1)
 WHERE sql LIKE '%USING feox(path=''test.db-%';
PRAGMA writable_schema = OFF;
-- reopen
.bail off
-- a committed RENAME moves the file with the table
BEGIN;
ALTER TABLE kv RENAME TO kv2;
INSERT INTO kv2(key, value) VALUES ('in-txn', 2);
COMMIT;
SELECT 'renamed', group_concat(key, ' ') FROM kv2;
.shell ls | LC_ALL=C sort
-- reopen
.bail off
SELECT 'kv2-after-reopen', group_concat(key, ' ') FROM kv2;
SELECT 'mem-after-reopen', count(*) FROM mem;
.shell ls | LC_ALL=C sort
-- several changes of one table in one transaction
CREATE VIRTUAL TABLE t USING feox(path='test.db-t.feox');
INSERT INTO t(key, value) VALUES ('a', 1);
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = substr(sql, 1, instr(sql, '(path=') - 1)
 WHERE sql LIKE '%USING feox(path=''test.db-%';
PRAGMA writable_schema = OFF;
-- reopen
.bail off
CREATE VIRTUAL TABLE m USING feox(path=':memory:');
INSERT INTO m(key, value) VALUES ('a', 1);
BEGIN;
ALTER TABLE t RENAME TO t2;
DROP TABLE t2;
ALTER TABLE m RENAME TO m2;
DROP TABLE m2;
ROLLBACK;
SELECT 'rename-drop-rolled-back', (SELECT count(*) FROM t), (SELECT count(*) FROM m);
BEGIN;
ALTER TABLE t RENAME TO t2;
ALTER TABLE t2 RENAME TO t3;
ROLLBACK;
SELECT 'rename-rename-rolled-back', count(*) FROM t;
BEGIN;
ALTER TABLE t RENAME TO t2;
ALTER TABLE t2 RENAME TO t;
COMMIT;
SELECT 'rename-and-back', count(*) FROM t;
BEGIN;
ALTER TABLE t RENAME TO t2;
SAVEPOINT s;
DROP TABLE t2;
ROLLBACK TO s;
COMMIT;
SELECT 'drop-rolled-back-to-rename-kept', count(*) FROM t2;
BEGIN;
ALTER TABLE t2 RENAME TO t3;
ALTER TABLE t3 RENAME TO t4;
COMMIT;
SELECT 'rename-rename-committed', count(*) FROM t4;
.shell ls | LC_ALL=C sort
BEGIN;
ALTER TABLE t4 RENAME TO t5;
DROP TABLE t5;
COMMIT;
SELECT 'rename-drop-committed', count(*) FROM sqlite_schema WHERE name GLOB 't*';
-- reopen
.bail off
.shell ls | LC_ALL=C sort
