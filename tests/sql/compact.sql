-- compact.sql: feox_compact(tab) rewrites the store file on demand so it holds only live data;
-- the data stays identical, in this process and after a reopen.
.bail off
CREATE VIRTUAL TABLE kv USING feox(path='c.feox');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO kv(key, value) SELECT printf('k%04d', i), zeroblob(500) FROM n;
-- an overwrite storm: five more versions of every row, then half the rows deleted
UPDATE kv SET value = randomblob(500);
UPDATE kv SET value = randomblob(500);
UPDATE kv SET value = randomblob(500);
UPDATE kv SET value = randomblob(500);
UPDATE kv SET value = printf('final %s', key);
DELETE FROM kv WHERE key > 'k1000';
CREATE TEMP TABLE before AS SELECT key, value FROM kv;
SELECT 'flushed', feox_flush('kv');
SELECT 'written', json_extract(feox_stats('kv'), '$.disk_bytes_written') > 5 * 2000 * 500;
SELECT 'compact', feox_compact('kv');
SELECT 'compactions', json_extract(feox_stats('kv'), '$.compactions') >= 1;
SELECT 'small', json_extract(feox_stats('kv'), '$.file_size') <= 2 * 1000 * (500 + 64);
SELECT 'same', (SELECT count(*) FROM kv), (SELECT count(*) FROM before),
       (SELECT count(*) FROM kv JOIN before USING (key, value));
SELECT 'check', feox_check('kv');
CREATE VIRTUAL TABLE m USING feox(path=':memory:');
SELECT 'memory-compact', feox_compact('m');  -- a no-op without a file
SELECT 'not-a-table', feox_compact('nope');
-- reopen
.bail off
CREATE VIRTUAL TABLE kv USING feox(path='c.feox');
SELECT 'reopened', count(*), min(value), max(value) FROM kv;
SELECT 'check', feox_check('kv');
