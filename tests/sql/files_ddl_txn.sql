-- files_ddl_txn.sql: DROP, RENAME and CREATE follow SQLite's transaction (issue 11 item 6). A
-- rolled-back DROP (ROLLBACK, ROLLBACK TO) or RENAME leaves the table with all its data; a
-- rolled-back CREATE leaves no file; files change only once the schema change has committed.
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
CREATE VIRTUAL TABLE kv USING feox;
COMMIT;
SELECT 'dropped-committed', count(*) FROM sqlite_schema WHERE name = 'kv';
.shell ls | LC_ALL=C sort
-- DROP then CREATE of the same name, each committed: a new, empty store
CREATE VIRTUAL TABLE kv USING feox;
SELECT 'recreated', count(*) FROM kv;
INSERT INTO kv(key, value) VALUES ('new', 1);
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
