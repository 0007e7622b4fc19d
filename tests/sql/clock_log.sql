-- clock_log.sql: clock='log', the deterministic mode for statement replication
-- (ext/logical_clock.c), and feox_json_patch(doc, patch) (ext/json_function.c): what is
-- accepted, and every error with its message.
-- db: test.db
.bail off
-- where it cannot apply: a store file, an in-memory database, a name that is a column's
CREATE VIRTUAL TABLE f USING feox(path='f.feox', clock='log');
ATTACH ':memory:' AS mem;
CREATE VIRTUAL TABLE mem.m USING feox(clock='log');
CREATE VIRTUAL TABLE value USING feox(clock='log');
CREATE VIRTUAL TABLE b USING feox(clock='sundial');
CREATE VIRTUAL TABLE b USING feox(clock='log', clock='wall');
CREATE VIRTUAL TABLE w USING feox(clock='wall');
INSERT INTO w(w, ts) VALUES('clock', 1);
SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name;

CREATE VIRTUAL TABLE kv USING feox(clock='log');
-- no clock yet: rows and automatic ts (1, then previous + 1) work; a ttl does not
INSERT INTO kv(key, value) VALUES('a', 1);
UPDATE kv SET value = value + 1 WHERE key = 'a';
INSERT INTO kv(key, value, ttl) VALUES('b', 1, 10);
SELECT 'no clock', key, value, ttl, ts FROM kv;
-- the clock: ns since the Unix epoch, applied as max
INSERT INTO kv(kv, ts) VALUES('clock', 1767225600000000000);
INSERT INTO kv(kv, ts) VALUES('clock', 1000);
SELECT 'meta', name, value FROM kv_meta WHERE name = 'clock';
INSERT INTO kv(key, value, ttl) VALUES('b', 1, 10);
UPDATE kv SET value = value + 1 WHERE key = 'a';
SELECT 'clock', key, value, ttl, ts FROM kv ORDER BY key;
SELECT 'expires', CAST(key AS TEXT), expires FROM kv_data ORDER BY key;
-- the command rows' errors
INSERT INTO kv(kv, ts) VALUES('clock', NULL);
INSERT INTO kv(kv, ts) VALUES('clock', -1);
INSERT INTO kv(kv, ts) VALUES('clock', 'soon');
INSERT INTO kv(kv, key, ts) VALUES('clock', 'a', 1);
INSERT INTO kv(kv, ts) VALUES('sweep', 5);
INSERT INTO kv(kv) VALUES('vacuum');
UPDATE kv SET kv = 'clock' WHERE key = 'a';
-- expiry follows the clock: hidden, kept until a sweep
INSERT INTO kv(kv, ts) VALUES('clock', 1767225611000000000);
SELECT 'expired', key FROM kv ORDER BY key;
SELECT 'stored', count(*) FROM kv_data;
INSERT INTO kv(kv) VALUES('sweep');
SELECT 'swept', count(*) FROM kv_data;
-- the writing functions are refused (a SELECT is not replicated); the DML forms work
SELECT feox_incr('kv', 'a', 1);
SELECT feox_cas('kv', 'a', 3, 4);
SELECT feox_patch('kv', 'a', '[]');
SELECT feox_sweep('kv');
SELECT 'compact', feox_compact('kv'), feox_check('kv');
UPDATE kv SET value = 4 WHERE key = 'a' AND value = 3;
SELECT 'cas', changes(), value FROM kv WHERE key = 'a';

-- feox_json_patch(doc, patch)
SELECT 'patch', feox_json_patch('{"a":1,"n":9007199254740993}', '[{"op":"replace","path":"/a","value":[2]}]');
SELECT 'patch-null', feox_json_patch(NULL, '[]') IS NULL, feox_json_patch('{}', NULL) IS NULL;
SELECT feox_json_patch('{"a":1', '[]');
SELECT feox_json_patch('{}', '{"op":"add"}');
SELECT feox_json_patch('{"a":1}', '[{"op":"test","path":"/a","value":2}]');
SELECT feox_json_patch('{"a":1}', '[{"op":"remove","path":"/b"}]');
SELECT feox_json_patch('{"a":1}', '[{"op":"jump","path":"/a"}]');
SELECT feox_json_patch('{}');
INSERT INTO kv(key, value) VALUES('doc', '{"n":1}');
UPDATE kv SET value = feox_json_patch(value, '[{"op":"test","path":"/n","value":2}]') WHERE key = 'doc';
UPDATE kv SET value = feox_json_patch(value, '[{"op":"add","path":"/m","value":2}]') WHERE key = 'doc';
SELECT 'doc', value FROM kv WHERE key = 'doc';
