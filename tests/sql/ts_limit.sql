-- ts_limit.sql: ts never wraps. SQL shows ts as a signed 64-bit integer, so automatic timestamps
-- stop at INT64_MAX: after an explicit ts = 9223372036854775807 an automatic write of that key
-- fails with a clear error and changes nothing (issue 11 item 15). An explicit ts cannot exceed
-- INT64_MAX in SQL; a larger one written through the C API is shown as INT64_MAX (see
-- tests/unit/test_ext_sql.c).
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value, ts) VALUES ('a', 1, 9223372036854775807);
INSERT INTO kv(key, value, ts) VALUES ('b', 'doc', 9223372036854775806);
SELECT 'explicit', key, ts FROM kv ORDER BY key;
-- every automatic write of 'a' fails, through the table and through the functions
UPDATE kv SET value = 2 WHERE key = 'a';
UPDATE OR IGNORE kv SET value = 2 WHERE key = 'a';
INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 3);
UPDATE kv SET ttl = 60 WHERE key = 'a';
SELECT feox_incr('kv', 'a', 1);
SELECT feox_cas('kv', 'a', 1, 5);
INSERT OR REPLACE INTO kv(key, value, ts) VALUES ('a', '{}', 9223372036854775807);
SELECT 'unchanged', key, value, ttl, ts FROM kv ORDER BY key;
-- one step below the limit: the automatic timestamp is exactly INT64_MAX, then no further
UPDATE kv SET value = '{"n":1}' WHERE key = 'b';
SELECT feox_patch('kv', 'b', '[{"op":"add","path":"/m","value":2}]');
SELECT 'at-limit', key, value, ts FROM kv WHERE key = 'b';
-- the rows copy into another table, ts and all
CREATE VIRTUAL TABLE kv2 USING feox;
INSERT INTO kv2 SELECT * FROM kv;
SELECT 'copied', key, value, ts FROM kv2 ORDER BY key;
-- an explicit ts beyond INT64_MAX is not an integer to SQL
INSERT INTO kv(key, value, ts) VALUES ('c', 1, 9223372036854775808);
-- DELETE still works, and the key can then be written again with an automatic timestamp
DELETE FROM kv WHERE key = 'a';
INSERT INTO kv(key, value) VALUES ('a', 'again');
SELECT 'rewritten', key, value, ts BETWEEN 1 AND 9223372036854775806 FROM kv WHERE key = 'a';
