-- ttl_ts.sql: the ttl and ts columns (SPEC §2 "Columns" and "Precise rules").
-- ttl: remaining whole seconds or NULL; NULL or 0 = no expiry; negative = error; an UPDATE that
-- does not assign ttl keeps the exact expiry instant. ts: ns timestamp; explicit writes must be
-- strictly newer (older or equal = error, skipped under OR IGNORE); automatic ones always are.
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value, ttl) VALUES ('s', 'v', 60);
SELECT 'ttl60', typeof(ttl), ttl BETWEEN 58 AND 60 FROM kv WHERE key = 's';
INSERT INTO kv(key, value, ttl) VALUES ('n', 'v', NULL), ('z', 'v', 0), ('p', 'v', 3600);
SELECT 'no-expiry', key, ttl IS NULL FROM kv WHERE key IN ('n', 'z') ORDER BY key;
INSERT INTO kv(key, value, ttl) VALUES ('neg', 'v', -1);
SELECT 'neg', count(*) FROM kv WHERE key = 'neg';

-- UPDATE ttl: set, persist with NULL or 0, negative is an error
UPDATE kv SET ttl = 3600 WHERE key = 'n';
SELECT 'set', ttl BETWEEN 3598 AND 3600 FROM kv WHERE key = 'n';
UPDATE kv SET ttl = -5 WHERE key = 'n';
SELECT 'set-neg', ttl BETWEEN 3598 AND 3600 FROM kv WHERE key = 'n';
UPDATE kv SET ttl = NULL WHERE key = 'n';
SELECT 'persist-null', ttl IS NULL FROM kv WHERE key = 'n';
UPDATE kv SET ttl = 0 WHERE key = 'p';
SELECT 'persist-zero', ttl IS NULL FROM kv WHERE key = 'p';
-- the value is untouched by a ttl-only UPDATE
SELECT 'value-kept', value FROM kv WHERE key IN ('n', 'p');

-- an UPDATE that does not assign ttl keeps the exact expiry: 30 updates do not drift
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
UPDATE kv SET value = value || '.' WHERE key = 's';
SELECT 'no-drift', length(value), ttl BETWEEN 58 AND 60 FROM kv WHERE key = 's';
-- changing the key also keeps the expiry
UPDATE kv SET key = 's2' WHERE key = 's';
SELECT 'rename-keeps', ttl BETWEEN 58 AND 60 FROM kv WHERE key = 's2';
-- a plain INSERT (after DELETE) has no ttl
DELETE FROM kv WHERE key = 's2';
INSERT INTO kv(key, value) VALUES ('s2', 'v');
SELECT 'insert-no-ttl', ttl IS NULL FROM kv WHERE key = 's2';
-- ttl constraints are evaluated by SQLite on the column
SELECT 'where-ttl', group_concat(key, ' ') FROM (SELECT key FROM kv WHERE ttl IS NOT NULL ORDER BY key);

-- ts: explicit timestamps, strictly newer wins
INSERT INTO kv(key, value, ts) VALUES ('w', 'v1', 1000);
SELECT 'ts-explicit', ts, typeof(ts) FROM kv WHERE key = 'w';
UPDATE kv SET value = 'v2', ts = 2000 WHERE key = 'w';
SELECT 'ts-newer', value, ts FROM kv WHERE key = 'w';
UPDATE kv SET value = 'old', ts = 1500 WHERE key = 'w';
SELECT 'ts-older', value, ts FROM kv WHERE key = 'w';
UPDATE kv SET value = 'same', ts = 2000 WHERE key = 'w';
SELECT 'ts-equal', value, ts FROM kv WHERE key = 'w';
UPDATE OR IGNORE kv SET value = 'old', ts = 1500 WHERE key = 'w';
SELECT 'ts-ignore', value, ts FROM kv WHERE key = 'w';
REPLACE INTO kv(key, value, ts) VALUES ('w', 'old', 1);
SELECT 'ts-replace-older', value, ts FROM kv WHERE key = 'w';
REPLACE INTO kv(key, value, ts) VALUES ('w', 'v3', 3000);
SELECT 'ts-replace-newer', value, ts FROM kv WHERE key = 'w';
-- OR IGNORE over several rows: the older one is skipped, the newer one applied
INSERT INTO kv(key, value, ts) VALUES ('x', 'x1', 1000);
UPDATE OR IGNORE kv SET value = 'both', ts = 2500 WHERE key IN ('w', 'x');
SELECT 'ts-ignore-rows', key, value, ts FROM kv WHERE key IN ('w', 'x') ORDER BY key;
-- without OR IGNORE the whole statement fails and changes nothing
UPDATE kv SET value = 'both2', ts = 2800 WHERE key IN ('w', 'x');
SELECT 'ts-abort-rows', key, value, ts FROM kv WHERE key IN ('w', 'x') ORDER BY key;
-- a failing multi-row statement restores the timestamps of the rows it had already changed
INSERT INTO kv(key, value, ts) VALUES ('sa', 'v', 1000), ('sb', 'v', 1000);
UPDATE kv SET value = 'v2', ts = CASE key WHEN 'sa' THEN 5000 ELSE 500 END WHERE key >= 'sa' AND key <= 'sb';
SELECT 'ts-statement-rollback', key, value, ts FROM kv WHERE key IN ('sa', 'sb') ORDER BY key;
UPDATE kv SET value = 'v3', ts = 2000 WHERE key = 'sa';
SELECT 'ts-after-statement-rollback', value, ts FROM kv WHERE key = 'sa';
-- an UPDATE that does not assign ts gets an automatic one, newer than the explicit one
UPDATE kv SET value = 'auto' WHERE key = 'w';
SELECT 'ts-auto', value, ts > 3000, abs(ts / 1000000000 - unixepoch()) <= 10 FROM kv WHERE key = 'w';
-- automatic timestamps grow on every write
CREATE TEMP TABLE snap AS SELECT ts FROM kv WHERE key = 'w';
UPDATE kv SET value = 'auto2' WHERE key = 'w';
SELECT 'ts-grows', kv.ts > snap.ts FROM kv, snap WHERE key = 'w';
-- after an explicit ts in the future, plain writes still succeed (and stay newer)
UPDATE kv SET ts = 9000000000000000000 WHERE key = 'w';
UPDATE kv SET value = 'after-future' WHERE key = 'w';
SELECT 'ts-future', value, ts > 9000000000000000000 FROM kv WHERE key = 'w';
UPDATE kv SET value = 'x', ts = 8000000000000000000 WHERE key = 'w';
SELECT 'ts-future-kept', value FROM kv WHERE key = 'w';
