-- functions.sql: feox_incr, feox_cas, feox_patch, feox_stats, feox_flush (SPEC §2 "Functions"
-- and "Precise rules").
.bail off
CREATE VIRTUAL TABLE kv USING feox;

-- feox_incr: a missing key starts at delta; the result is the new INTEGER
SELECT 'incr', feox_incr('kv', 'visits', 1);
SELECT 'incr', feox_incr('kv', 'visits', 1);
SELECT 'incr', feox_incr('kv', 'visits', 10);
SELECT 'incr', feox_incr('kv', 'visits', -20);
SELECT 'incr-type', typeof(feox_incr('kv', 'visits', 0)), typeof(value), value FROM kv WHERE key = 'visits';
SELECT 'incr-new', feox_incr('kv', 'fresh', 5), feox_incr('kv', 'fresh', 0);
SELECT 'incr-schema', feox_incr('main.kv', 'visits', 100);
-- not deterministic: evaluated once per row
SELECT 'incr-rows', group_concat(feox_incr('kv', 'rows', 1), ' ') FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3);
-- on an INTEGER value written by SQL
INSERT INTO kv(key, value) VALUES ('n', 41);
SELECT 'incr-int', feox_incr('kv', 'n', 1);
-- on an 8-byte BLOB (little-endian i64, the engine's counter format): result stored as INTEGER
INSERT INTO kv(key, value) VALUES ('b8', x'0500000000000000'), ('b8neg', x'feffffffffffffff');
SELECT 'incr-blob8', feox_incr('kv', 'b8', 1), feox_incr('kv', 'b8neg', 1);
SELECT 'incr-blob8-type', key, typeof(value), value FROM kv WHERE key IN ('b8', 'b8neg') ORDER BY key;
-- saturating arithmetic
INSERT INTO kv(key, value) VALUES ('max', 9223372036854775807), ('min', -9223372036854775808);
SELECT 'incr-saturate', feox_incr('kv', 'max', 1), feox_incr('kv', 'min', -1);
-- on a REAL that holds an integer (better-sqlite3 binds every JS number as REAL): counts as that
-- integer; the result is stored as INTEGER
INSERT INTO kv(key, value) VALUES ('hits', 0.0), ('rneg', -3.0), ('rbig', 4.0e18);
SELECT 'incr-real', feox_incr('kv', 'hits', 1), feox_incr('kv', 'hits', 1), feox_incr('kv', 'rneg', 1), feox_incr('kv', 'rbig', 1);
SELECT 'incr-real-type', key, typeof(value), value FROM kv WHERE key IN ('hits', 'rneg', 'rbig') ORDER BY key;
-- in a transaction, ROLLBACK gives the REAL back
INSERT INTO kv(key, value) VALUES ('r2', 7.0);
BEGIN;
SELECT 'incr-real-txn', feox_incr('kv', 'r2', 1);
ROLLBACK;
SELECT 'incr-real-rollback', typeof(value), value FROM kv WHERE key = 'r2';
-- the delta: an integral REAL (or integer text) counts, a fractional one is an error
SELECT 'incr-real-delta', feox_incr('kv', 'hits', 2.0), feox_incr('kv', 'hits', '3');
SELECT feox_incr('kv', 'hits', 0.5);
SELECT feox_incr('kv', 'hits', '1.5');
SELECT feox_incr('kv', 'nokey', 0.5);
SELECT 'incr-real-delta-unchanged', value, (SELECT count(*) FROM kv WHERE key = 'nokey') FROM kv WHERE key = 'hits';
-- any other value is an error and is left unchanged (a fractional REAL, one beyond the i64 range
-- or infinite included)
INSERT INTO kv(key, value) VALUES ('t', 'abc'), ('t5', '5'), ('r', 1.5), ('rhuge', 1.0e19), ('rinf', 1e999), ('nul', NULL), ('b7', x'01020304050607');
SELECT feox_incr('kv', 't', 1);
SELECT feox_incr('kv', 't5', 1);
SELECT feox_incr('kv', 'r', 1);
SELECT feox_incr('kv', 'rhuge', 1);
SELECT feox_incr('kv', 'rinf', 1);
SELECT feox_incr('kv', 'nul', 1);
SELECT feox_incr('kv', 'b7', 1);
-- (Inf spelled out: quote() writes it as Inf up to 3.4x, as 9.0e+999 in newer SQLite)
SELECT 'incr-unchanged', key, typeof(value), iif(value = 9e999, 'Inf', quote(value)) FROM kv WHERE key IN ('t', 't5', 'r', 'rhuge', 'rinf', 'nul', 'b7') ORDER BY key;
-- keeps an existing TTL; a ttl argument sets it
INSERT INTO kv(key, value, ttl) VALUES ('c', 10, 600);
SELECT 'incr-keeps-ttl', feox_incr('kv', 'c', 1), (SELECT ttl BETWEEN 595 AND 600 FROM kv WHERE key = 'c');
SELECT 'incr-sets-ttl', feox_incr('kv', 'c', 1, 30), (SELECT ttl BETWEEN 25 AND 30 FROM kv WHERE key = 'c');
SELECT 'incr-new-ttl', feox_incr('kv', 'c2', 7, 40), (SELECT ttl BETWEEN 35 AND 40 FROM kv WHERE key = 'c2');
SELECT 'incr-no-ttl', feox_incr('kv', 'visits', 1), (SELECT ttl IS NULL FROM kv WHERE key = 'visits');
-- the key is converted like a column key
SELECT 'incr-key-conv', feox_incr('kv', 42, 3), (SELECT typeof(key) FROM kv WHERE key = '42');

-- feox_cas: 1 if swapped, 0 otherwise; compares SQL type and bytes
INSERT INTO kv(key, value) VALUES ('config', 'v1');
SELECT 'cas', feox_cas('kv', 'config', 'v1', 'v2');
SELECT 'cas', feox_cas('kv', 'config', 'v1', 'v3');
SELECT 'cas-value', value FROM kv WHERE key = 'config';
SELECT 'cas-missing', feox_cas('kv', 'nokey', 'v1', 'v2'), (SELECT count(*) FROM kv WHERE key = 'nokey');
INSERT INTO kv(key, value) VALUES ('i5', 5), ('s5', '5'), ('bhi', x'6869');
SELECT 'cas-int-vs-text', feox_cas('kv', 'i5', '5', 'x'), feox_cas('kv', 's5', 5, 'x'), feox_cas('kv', 'bhi', 'hi', 'x');
SELECT 'cas-int', feox_cas('kv', 'i5', 5, 6), feox_cas('kv', 's5', '5', 'five'), feox_cas('kv', 'bhi', x'6869', x'00');
SELECT 'cas-types', key, typeof(value), quote(value) FROM kv WHERE key IN ('i5', 's5', 'bhi') ORDER BY key;
SELECT 'cas-real', feox_cas('kv', 'config', 'v2', 3.25), (SELECT typeof(value) || ' ' || value FROM kv WHERE key = 'config');
SELECT 'cas-real-vs-int', feox_cas('kv', 'config', 3, 'x'), feox_cas('kv', 'config', 3.25, 'v4');
-- an integral REAL is not an INTEGER to cas (feox_incr counts it, cas compares type and bytes)
INSERT INTO kv(key, value) VALUES ('r5', 5.0), ('i6', 6);
SELECT 'cas-real-int', feox_cas('kv', 'r5', 5, 'x'), feox_cas('kv', 'i6', 6.0, 'x'), feox_cas('kv', 'r5', 5.0, 'five'), feox_cas('kv', 'i6', 6, 'six');
-- keeps an existing TTL; a ttl argument sets it
INSERT INTO kv(key, value, ttl) VALUES ('flag', 'off', 600);
SELECT 'cas-keeps-ttl', feox_cas('kv', 'flag', 'off', 'on'), (SELECT ttl BETWEEN 595 AND 600 FROM kv WHERE key = 'flag');
SELECT 'cas-sets-ttl', feox_cas('kv', 'flag', 'on', 'off', 20), (SELECT ttl BETWEEN 15 AND 20 FROM kv WHERE key = 'flag');
SELECT 'cas-fail-keeps-ttl', feox_cas('kv', 'flag', 'on', 'x', 1000), (SELECT ttl BETWEEN 15 AND 20 FROM kv WHERE key = 'flag');

-- feox_patch: returns the patched document and stores it (still TEXT)
INSERT INTO kv(key, value) VALUES ('user:1', '{"name":"Ada","age":36}');
SELECT 'patch-replace', json(feox_patch('kv', 'user:1', '[{"op":"replace","path":"/age","value":37}]'));
SELECT 'patch-add', json(feox_patch('kv', 'user:1', '[{"op":"add","path":"/email","value":"ada@example.com"}]'));
SELECT 'patch-stored', typeof(value), json(value), json_extract(value, '$.age') FROM kv WHERE key = 'user:1';
SELECT 'patch-remove', json(feox_patch('kv', 'user:1', '[{"op":"remove","path":"/email"}]'));
SELECT 'patch-multi', json(feox_patch('kv', 'user:1', '[{"op":"add","path":"/tags","value":[]},{"op":"add","path":"/tags/-","value":"x"},{"op":"copy","from":"/name","path":"/nick"},{"op":"test","path":"/age","value":37}]'));
-- a failing op anywhere: error, document unchanged
SELECT feox_patch('kv', 'user:1', '[{"op":"replace","path":"/age","value":99},{"op":"test","path":"/name","value":"Bob"}]');
SELECT feox_patch('kv', 'user:1', '[{"op":"remove","path":"/nothere"}]');
SELECT feox_patch('kv', 'user:1', 'not json');
SELECT feox_patch('kv', 'user:1', '{"op":"add","path":"/a","value":1}');
SELECT feox_patch('kv', 'nokey', '[]');
SELECT feox_patch('kv', 't', '[{"op":"add","path":"/a","value":1}]');
SELECT 'patch-unchanged', json(value) FROM kv WHERE key = 'user:1';
-- numbers the patch does not touch keep their exact text
INSERT INTO kv(key, value) VALUES ('doc', '{"id":9007199254740993,"big":-9223372036854775807,"n":1}');
SELECT 'patch-bigint', json_extract(feox_patch('kv', 'doc', '[{"op":"replace","path":"/n","value":2}]'), '$.id');
SELECT 'patch-bigint-stored', json_extract(value, '$.id') = 9007199254740993, json_extract(value, '$.big'), json_extract(value, '$.n') FROM kv WHERE key = 'doc';
-- keeps an existing TTL
INSERT INTO kv(key, value, ttl) VALUES ('tdoc', '{"a":1}', 600);
SELECT 'patch-keeps-ttl', json(feox_patch('kv', 'tdoc', '[{"op":"replace","path":"/a","value":2}]')), (SELECT ttl BETWEEN 595 AND 600 FROM kv WHERE key = 'tdoc');

-- feox_stats: a JSON object with at least len, memory_usage, max_memory
SELECT 'stats', json_valid(feox_stats('kv')), json_type(feox_stats('kv')),
       json_extract(feox_stats('kv'), '$.len') = (SELECT count(*) FROM kv),
       json_type(feox_stats('kv'), '$.memory_usage'), json_extract(feox_stats('kv'), '$.memory_usage') > 0,
       json_type(feox_stats('kv'), '$.max_memory');
CREATE VIRTUAL TABLE small USING feox(max_memory='2MB');
INSERT INTO small(key, value) VALUES ('a', 1), ('b', 2);
SELECT 'stats-small', json_extract(feox_stats('small'), '$.len'), json_extract(feox_stats('small'), '$.max_memory');
DELETE FROM small WHERE key = 'a';
SELECT 'stats-after-delete', json_extract(feox_stats('small'), '$.len');
-- feox_flush: no error, in memory mode a no-op
SELECT 'flush' FROM (SELECT feox_flush('kv'));

-- a function writing into the table that is being scanned: every scanned row exactly once
-- (the new keys sort before the cursor), and a two-pass UPDATE calling a function. The outer
-- query uses n: SQLite 3.53 no longer computes a subquery column nobody reads (so feox_incr
-- would not run), 3.40.1 did.
CREATE VIRTUAL TABLE sc USING feox;
INSERT INTO sc(key, value) VALUES ('a', 1), ('b', 2), ('c', 3), ('d', 4), ('e', 5);
SELECT 'scan-write', group_concat(key || ':' || n, ' ') FROM (SELECT key, feox_incr('sc', 'A' || key, 10) AS n FROM sc ORDER BY key);
SELECT 'scan-write-desc', group_concat(key, ' '), sum(n) FROM (SELECT key, feox_incr('sc', 'z' || key, 1) AS n FROM sc WHERE key < 'z' ORDER BY key DESC);
SELECT 'scan-write-after', count(*) FROM sc;
SELECT 'scan-cas', group_concat(key || ':' || swapped, ' ') FROM (SELECT key, feox_cas('sc', 'A' || key, 10, 11) AS swapped FROM sc WHERE key GLOB '[a-e]' ORDER BY key);
DELETE FROM sc WHERE key GLOB 'z*';
UPDATE sc SET value = feox_incr('sc', 'ctr', 1) WHERE key GLOB '[a-e]';
SELECT 'update-with-incr', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM sc WHERE key GLOB '[a-e]' OR key = 'ctr' ORDER BY key);

-- name resolution and argument errors
SELECT feox_incr('nope', 'k', 1);
CREATE TABLE plain(x);
SELECT feox_incr('plain', 'k', 1);
CREATE TABLE plain2(key, value);
SELECT feox_incr('plain2', 'k', 1);
SELECT feox_cas('temp.kv', 'k', 1, 2);
SELECT feox_stats('nope');
SELECT feox_incr('kv', NULL, 1);
SELECT feox_incr('kv', 'visits', 'abc');
SELECT feox_incr('kv');
SELECT 'case-insensitive-name', feox_incr('KV', 'visits', 1);
