-- demo.sql — a five-minute tour of feox: a fast key-value store that lives inside SQLite.
--
--   make demo        (which runs: cd sql && sqlite3 -bail -cmd '.load ../build/feox' :memory: < demo.sql)
--
-- Every feox table has the same four columns:
--   key    TEXT (or BLOB with keytype=blob), the primary key
--   value  any SQL value; it comes back with the type it went in with
--   ttl    seconds until the key expires, or NULL for never (writable)
--   ts     the record's timestamp in nanoseconds (writable, last-writer-wins)
.headers on
.mode box

.print '== 1. Create a store: one virtual table, memory only here'
CREATE VIRTUAL TABLE kv USING feox;

.print '== 2. Sessions that expire: ttl is in seconds'
INSERT INTO kv(key, value, ttl) VALUES
  ('session:alice', 'token-a1', 3600),
  ('session:bob',   'token-b7', 60),
  ('session:carol', 'token-c3', 1);
SELECT key, value,
       CASE WHEN ttl IS NULL THEN 'never' WHEN ttl >= 3000 THEN 'in about an hour'
            WHEN ttl >= 30 THEN 'in about a minute' ELSE 'in a moment' END AS expires
  FROM kv WHERE key GLOB 'session:*' ORDER BY key;
.print "Waiting two seconds for carol's session to expire..."

.shell sleep 2
SELECT key, value FROM kv WHERE key GLOB 'session:*' ORDER BY key;
.print 'Bob is still active: extend his session to an hour (ttl = NULL would make it permanent)'
UPDATE kv SET ttl = 3600 WHERE key = 'session:bob';
SELECT key, (ttl + 59) / 60 AS minutes_left FROM kv WHERE key = 'session:bob';

.print '== 3. A counter: feox_incr(table, key, delta) is atomic and returns the new value'
SELECT feox_incr('kv', 'visits:home', 1) AS visits FROM (VALUES (1), (2), (3));
SELECT key, value, typeof(value) AS type FROM kv WHERE key = 'visits:home';

.print '== 4. A config flag: feox_cas(table, key, expected, new) swaps only if the value is still expected'
INSERT INTO kv(key, value) VALUES ('config:dark_mode', 'off');
SELECT feox_cas('kv', 'config:dark_mode', 'off', 'on') AS first_admin_swapped;
SELECT feox_cas('kv', 'config:dark_mode', 'off', 'on') AS second_admin_swapped;
SELECT value AS dark_mode FROM kv WHERE key = 'config:dark_mode';

.print '== 5. A JSON profile: feox_patch applies an RFC 6902 patch in place, all or nothing'
INSERT INTO kv(key, value) VALUES ('user:ada', '{"name":"Ada","langs":["en"],"visits":0}');
SELECT feox_patch('kv', 'user:ada', '[
  {"op": "replace", "path": "/name",   "value": "Ada Lovelace"},
  {"op": "add",     "path": "/langs/-", "value": "fr"},
  {"op": "remove",  "path": "/visits"}
]') AS profile;
SELECT json_extract(value, '$.name') AS name, json_extract(value, '$.langs[1]') AS second_language
  FROM kv WHERE key = 'user:ada';

.print '== 6. Range queries use the ordered index (keys sort byte by byte)'
INSERT INTO kv(key, value) VALUES
  ('order:2024-01-05', 120), ('order:2024-02-11', 75), ('order:2024-02-28', 310),
  ('order:2024-03-02', 42), ('order:2024-04-19', 99);
SELECT key, value AS amount FROM kv
 WHERE key BETWEEN 'order:2024-02' AND 'order:2024-03~' ORDER BY key DESC;
SELECT count(*) AS orders, sum(value) AS total FROM kv WHERE key GLOB 'order:*';

.print '== 7. EXPLAIN QUERY PLAN shows the index: hash for =, ordered for ranges, a scan otherwise'
EXPLAIN QUERY PLAN SELECT value FROM kv WHERE key = 'user:ada';
EXPLAIN QUERY PLAN SELECT value FROM kv WHERE key GLOB 'order:*' ORDER BY key DESC;
EXPLAIN QUERY PLAN SELECT key FROM kv WHERE value > 100;

.print '== 8. Transactions: ROLLBACK undoes table writes and function calls alike'
BEGIN;
SELECT feox_incr('kv', 'visits:home', 100) AS inside_transaction;
DELETE FROM kv WHERE key GLOB 'order:*';
ROLLBACK;
SELECT (SELECT value FROM kv WHERE key = 'visits:home') AS visits,
       (SELECT count(*) FROM kv WHERE key GLOB 'order:*') AS orders;

.print '== 9. Persistence: a table in a database file keeps its data in that database'
.shell rm -f demo-notes.db demo-notes.db-notes.feox
ATTACH 'demo-notes.db' AS disk;
CREATE VIRTUAL TABLE disk.notes USING feox;
INSERT INTO disk.notes(key, value) VALUES ('note:1', 'written before closing'), ('note:2', 42);
DETACH disk;
.print 'Closed. Files on disk (the records are in shadow tables of demo-notes.db):'
.shell ls demo-notes.db*
ATTACH 'demo-notes.db' AS disk;
SELECT key, value, typeof(value) AS type FROM disk.notes ORDER BY key;
.print 'DROP TABLE removes its shadow tables too:'
DROP TABLE disk.notes;
DETACH disk;
SELECT count(*) AS kv_rows FROM kv;
.shell ls demo-notes.db*
.shell rm -f demo-notes.db
