-- update_delete.sql: UPDATE of value, key (SPEC §2: "UPDATE may change the key"), conflicts on the
-- new key, statement atomicity, and DELETE by key, by ranges and of everything.
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2), ('c', 3), ('d', 4), ('e', 5);
UPDATE kv SET value = value * 10 WHERE key = 'b';
SELECT 'changes', changes();
UPDATE kv SET value = 'x' || value WHERE key >= 'c';
SELECT 'changes', changes();
SELECT 'values', key, typeof(value), value FROM kv ORDER BY key;
-- no row matches: nothing happens, no error
UPDATE kv SET value = 0 WHERE key = 'nope';
SELECT 'changes', changes();

-- change the key
UPDATE kv SET key = 'z' WHERE key = 'a';
SELECT 'renamed', key, value FROM kv WHERE key IN ('a', 'z');
-- onto an existing key: UNIQUE error, both rows unchanged
UPDATE kv SET key = 'b' WHERE key = 'z';
SELECT 'rename-dup', key, value FROM kv WHERE key IN ('b', 'z') ORDER BY key;
-- OR REPLACE replaces the row that held the new key
UPDATE OR REPLACE kv SET key = 'b' WHERE key = 'z';
SELECT 'rename-replace', key, value FROM kv WHERE key IN ('b', 'z') ORDER BY key;
-- OR IGNORE skips
UPDATE OR IGNORE kv SET key = 'c' WHERE key = 'b';
SELECT 'rename-ignore', key, value FROM kv WHERE key IN ('b', 'c') ORDER BY key;
-- a NULL or empty new key is an error and changes nothing
UPDATE kv SET key = NULL WHERE key = 'b';
UPDATE kv SET key = '' WHERE key = 'b';
SELECT 'rename-null', key, value FROM kv WHERE key = 'b';
-- change key and value together, keeping the ttl
INSERT INTO kv(key, value, ttl) VALUES ('t', 'tv', 1000);
UPDATE kv SET key = 't2', value = 'tv2' WHERE key = 't';
SELECT 'rename-ttl', key, value, ttl BETWEEN 995 AND 1000 FROM kv WHERE key GLOB 't*';
DELETE FROM kv WHERE key = 't2';
-- swap-like rename of many rows: every key gets a prefix
UPDATE kv SET key = 'p:' || key;
SELECT 'prefixed', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
UPDATE kv SET key = substr(key, 3);

-- a multi-row UPDATE failing in the middle changes nothing:
-- c is updated first (ascending scan), then d -> b collides
UPDATE kv SET value = 'y', key = CASE key WHEN 'd' THEN 'b' ELSE key END WHERE key >= 'c';
SELECT 'update-atomic', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
-- the same, with the failing row first in a descending scan
UPDATE kv SET value = 'y', key = CASE key WHEN 'e' THEN 'b' ELSE key END WHERE key >= 'c';
SELECT 'update-atomic2', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);

-- DELETE
CREATE VIRTUAL TABLE kd USING feox;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12)
INSERT INTO kd(key, value) SELECT printf('k%02d', i), i FROM n;
DELETE FROM kd WHERE key = 'k01';
SELECT 'del-eq', changes();
DELETE FROM kd WHERE key = 'nope';
SELECT 'del-missing', changes();
DELETE FROM kd WHERE key < 'k03';
SELECT 'del-lt', changes();
DELETE FROM kd WHERE key BETWEEN 'k05' AND 'k06';
SELECT 'del-between', changes();
DELETE FROM kd WHERE key > 'k10';
SELECT 'del-gt', changes();
DELETE FROM kd WHERE key IN ('k03', 'k08', 'zz');
SELECT 'del-in', changes();
DELETE FROM kd WHERE value % 2 = 0;
SELECT 'del-value', changes();
SELECT 'left', group_concat(key, ' ') FROM (SELECT key FROM kd ORDER BY key);
DELETE FROM kd;
SELECT 'del-all', changes(), (SELECT count(*) FROM kd);
-- deleted keys can be inserted again
INSERT INTO kd(key, value) VALUES ('k01', 'again');
SELECT 'reinsert', key, value FROM kd;
