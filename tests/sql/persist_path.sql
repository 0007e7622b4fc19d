-- persist_path.sql: a table with path= keeps its data in that file across processes (SPEC §2
-- "Where the data lives"). Each "-- reopen" starts a new sqlite3 process (see run.sh); the
-- database is :memory:, so every session declares the table again over the same file.
.bail off
CREATE VIRTUAL TABLE kv USING feox(path='t.feox');
INSERT INTO kv(key, value) VALUES ('int', 42), ('real', 2.5), ('text', 'héllo'), ('blob', x'00ff'),
  ('null', NULL), ('empty_text', ''), ('empty_blob', x''), ('json', '{"a":[1,2]}');
INSERT INTO kv(key, value, ttl) VALUES ('ttl', 'expires later', 3600);
INSERT INTO kv(key, value, ts) VALUES ('ts', 'explicit ts', 123456789);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
INSERT INTO kv(key, value) SELECT printf('row:%04d', i), i FROM n;
DELETE FROM kv WHERE key BETWEEN 'row:0101' AND 'row:0200';
UPDATE kv SET value = 'overwritten' WHERE key = 'row:0001';
SELECT 'incr', feox_incr('kv', 'counter', 7);
-- every sync mode persists once the store is closed
CREATE VIRTUAL TABLE s_off USING feox(path='off.feox', sync='off');
CREATE VIRTUAL TABLE s_normal USING feox(path='normal.feox', sync='normal');
CREATE VIRTUAL TABLE s_full USING feox(path='full.feox', sync='full');
INSERT INTO s_off(key, value) VALUES ('k', 'off');
INSERT INTO s_normal(key, value) VALUES ('k', 'normal');
INSERT INTO s_full(key, value) VALUES ('k', 'full');
-- a memory table makes no file
CREATE VIRTUAL TABLE m USING feox(path=':memory:');
INSERT INTO m(key, value) VALUES ('k', 'gone after exit');
.shell ls t.feox off.feox normal.feox full.feox
.shell ls | grep -c memory || true
-- reopen
.bail off
CREATE VIRTUAL TABLE kv USING feox(path='t.feox');
SELECT 'types', key, typeof(value), quote(value) FROM kv WHERE key NOT GLOB 'row:*' ORDER BY key;
SELECT 'ttl', ttl BETWEEN 3500 AND 3600 FROM kv WHERE key = 'ttl';
SELECT 'ts', ts FROM kv WHERE key = 'ts';
SELECT 'rows', count(*), min(key), max(key) FROM kv WHERE key GLOB 'row:*';
SELECT 'deleted', count(*) FROM kv WHERE key BETWEEN 'row:0101' AND 'row:0200';
SELECT 'overwritten', value FROM kv WHERE key = 'row:0001';
SELECT 'stats-len', json_extract(feox_stats('kv'), '$.len'), (SELECT count(*) FROM kv);
CREATE VIRTUAL TABLE s_off USING feox(path='off.feox', sync='off');
CREATE VIRTUAL TABLE s_normal USING feox(path='normal.feox', sync='normal');
CREATE VIRTUAL TABLE s_full USING feox(path='full.feox', sync='full');
SELECT 'sync', (SELECT value FROM s_off), (SELECT value FROM s_normal), (SELECT value FROM s_full);
-- more changes, made durable with feox_flush before the process ends
SELECT 'incr', feox_incr('kv', 'counter', 1);
DELETE FROM kv WHERE key GLOB 'row:0[5-9]*';
INSERT OR REPLACE INTO kv(key, value) VALUES ('text', 'replaced');
UPDATE kv SET key = 'renamed' WHERE key = 'int';
UPDATE kv SET ttl = NULL WHERE key = 'ttl';
SELECT 'flushed' FROM (SELECT feox_flush('kv'));
-- reopen
.bail off
CREATE VIRTUAL TABLE kv USING feox(path='t.feox');
SELECT 'counter', value FROM kv WHERE key = 'counter';
SELECT 'rows', count(*) FROM kv WHERE key GLOB 'row:*';
SELECT 'replaced', value FROM kv WHERE key = 'text';
SELECT 'renamed', (SELECT count(*) FROM kv WHERE key = 'int'), (SELECT value FROM kv WHERE key = 'renamed');
SELECT 'persisted-ttl', ttl IS NULL FROM kv WHERE key = 'ttl';
-- DROP TABLE removes the store file once the DROP is known to be committed: at the
-- connection's next use of feox, or (here) when the connection closes (file_actions.c)
CREATE VIRTUAL TABLE s_off USING feox(path='off.feox', sync='off');
CREATE VIRTUAL TABLE s_normal USING feox(path='normal.feox', sync='normal');
CREATE VIRTUAL TABLE s_full USING feox(path='full.feox', sync='full');
DROP TABLE kv;
DROP TABLE s_off;
DROP TABLE s_normal;
DROP TABLE s_full;
.shell ls
SELECT 'dropped';
-- reopen
.shell ls
SELECT 'all-removed';
