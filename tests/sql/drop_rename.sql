-- drop_rename.sql: DROP TABLE and ALTER TABLE ... RENAME of memory tables (SPEC §2 "Where the
-- data lives"); files are covered by persist_*.sql.
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2);
-- DROP then CREATE again with the same name: a new, empty store
DROP TABLE kv;
SELECT * FROM kv;
SELECT feox_incr('kv', 'a', 1);
CREATE VIRTUAL TABLE kv USING feox;
SELECT 'recreated', count(*) FROM kv;
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2);
-- RENAME keeps the data; functions follow the new name
ALTER TABLE kv RENAME TO kv2;
SELECT 'renamed', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv2 ORDER BY key);
SELECT 'renamed-incr', feox_incr('kv2', 'a', 10);
SELECT feox_incr('kv', 'a', 1);
INSERT INTO kv2(key, value) VALUES ('c', 3);
UPDATE kv2 SET value = 20 WHERE key = 'b';
DELETE FROM kv2 WHERE key = 'c';
-- the old name is free again and independent of the renamed table
CREATE VIRTUAL TABLE kv USING feox;
SELECT 'old-name', count(*) FROM kv;
INSERT INTO kv(key, value) VALUES ('z', 26);
SELECT 'independent', (SELECT count(*) FROM kv), (SELECT count(*) FROM kv2);
-- rename twice, and inside a transaction
ALTER TABLE kv2 RENAME TO kv3;
BEGIN;
ALTER TABLE kv3 RENAME TO kv4;
INSERT INTO kv4(key, value) VALUES ('t', 1);
COMMIT;
SELECT 'kv4', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv4 ORDER BY key);
SELECT 'kv4-incr', feox_incr('kv4', 'a', 1);
-- a table in an attached in-memory database
ATTACH ':memory:' AS aux;
CREATE VIRTUAL TABLE aux.kv USING feox;
INSERT INTO aux.kv(key, value) VALUES ('aux', 1);
SELECT 'aux', (SELECT count(*) FROM aux.kv), (SELECT count(*) FROM main.kv), feox_incr('aux.kv', 'aux', 1);
DROP TABLE aux.kv;
DROP TABLE kv4;
DROP TABLE kv;
SELECT 'left', count(*) FROM sqlite_schema;
