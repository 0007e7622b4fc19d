-- expiry.sql: an expired key is absent on every path (SPEC §1 TTL, §2): point lookup, IN, range,
-- count, feox_stats len, UPDATE, DELETE, INSERT (no conflict), feox_cas, feox_patch, feox_incr.
-- One short wait: keys get ttl = 1 and the test sleeps 2.2 s (expired when now > expiry).
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('live', 'stays');
INSERT INTO kv(key, value, ttl) VALUES
  ('e1', 'v', 1), ('e2', 'v', 1), ('e3', 'v', 1), ('e4', 10, 1), ('e5', '{"a":1}', 1),
  ('e6', 'v', 1), ('e7', 'v', 1), ('e8', 'v', 1);
SELECT 'before', count(*) FROM kv;
.shell sleep 2.2
SELECT 'count', count(*) FROM kv;
SELECT 'scan', group_concat(key, ' ') FROM (SELECT key FROM kv ORDER BY key);
SELECT 'scan-desc', group_concat(key, ' ') FROM (SELECT key FROM kv ORDER BY key DESC);
SELECT 'eq', count(*) FROM kv WHERE key = 'e1';
SELECT 'in', count(*) FROM kv WHERE key IN ('e1', 'e2', 'live');
SELECT 'range', count(*) FROM kv WHERE key BETWEEN 'e' AND 'f';
SELECT 'glob', count(*) FROM kv WHERE key GLOB 'e*';
SELECT 'stats-len', json_extract(feox_stats('kv'), '$.len');
UPDATE kv SET value = 'revived' WHERE key = 'e1';
SELECT 'update', changes();
DELETE FROM kv WHERE key = 'e2';
SELECT 'delete', changes();
INSERT INTO kv(key, value) VALUES ('e3', 'new');
SELECT 'insert', value, ttl IS NULL FROM kv WHERE key = 'e3';
SELECT 'incr', feox_incr('kv', 'e4', 5);
SELECT 'cas', feox_cas('kv', 'e6', 'v', 'w');
SELECT 'cas-after', count(*) FROM kv WHERE key = 'e6';
SELECT 'patch', feox_patch('kv', 'e5', '[{"op":"replace","path":"/a","value":2}]');
SELECT 'final', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
