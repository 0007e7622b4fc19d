-- db_ddl_txn.sql: database mode (a table without path in a file database keeps its records in
-- shadow tables <t>_data, <t>_log, <t>_meta): CREATE, DROP and RENAME create, drop and rename
-- them inside the user's transaction (issue 13 item 1), so a ROLLBACK (or ROLLBACK TO) undoes
-- them with the table, and no file is ever made. The same steps as files_ddl_txn.sql (file
-- mode); "tables" lists the schema, ".shell ls" shows that no store file appears.
-- Sessions: see run.sh.
-- db: test.db
.bail off
CREATE VIRTUAL TABLE kv USING feox;
CREATE VIRTUAL TABLE mem USING feox(path=':memory:');
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2);
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
SELECT 'tables', group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name);
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
SELECT 'tables', group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name);
-- a name dropped in the open transaction can be created again at once (no file is involved)
BEGIN;
DROP TABLE kv;
CREATE VIRTUAL TABLE kv USING feox;
COMMIT;
SELECT 'dropped-committed', count(*) FROM sqlite_schema WHERE name = 'kv';
.shell ls | LC_ALL=C sort
SELECT 'tables', group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name);
-- DROP then CREATE of the same name: a new, empty table
SELECT 'recreated', count(*) FROM kv;
INSERT INTO kv(key, value) VALUES ('new', 1);
-- a committed RENAME moves the file with the table
BEGIN;
ALTER TABLE kv RENAME TO kv2;
INSERT INTO kv2(key, value) VALUES ('in-txn', 2);
COMMIT;
SELECT 'renamed', group_concat(key, ' ') FROM kv2;
.shell ls | LC_ALL=C sort
SELECT 'tables', group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name);
-- reopen
.bail off
SELECT 'kv2-after-reopen', group_concat(key, ' ') FROM kv2;
SELECT 'mem-after-reopen', count(*) FROM mem;
.shell ls | LC_ALL=C sort
SELECT 'tables', group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name);
-- several changes of one table in one transaction
CREATE VIRTUAL TABLE t USING feox;
CREATE VIRTUAL TABLE m USING feox(path=':memory:');
INSERT INTO t(key, value) VALUES ('a', 1);
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
SELECT 'tables', group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name);
BEGIN;
ALTER TABLE t4 RENAME TO t5;
DROP TABLE t5;
COMMIT;
SELECT 'rename-drop-committed', count(*) FROM sqlite_schema WHERE name GLOB 't*';
-- reopen
.bail off
.shell ls | LC_ALL=C sort
SELECT 'tables', group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name);
