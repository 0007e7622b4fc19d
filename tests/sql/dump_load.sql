-- dump_load.sql: dumping a store with plain SQL and loading it back (issue 8 item 2):
-- ".mode insert" writes INSERT statements, INSERT ... SELECT copies between tables; every
-- value type survives.
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('i', 42), ('r', 2.5), ('t', 'it''s'), ('b', x'00ff'), ('n', NULL),
  ('e', ''), ('eb', x''), ('j', '{"a":1}');
INSERT INTO kv(key, value, ttl) VALUES ('ttl', 'x', 3600);
-- the dump, as a user would write it: key, value and the remaining ttl
.mode insert restored
SELECT key, value, ttl, NULL FROM kv WHERE key <> 'ttl' ORDER BY key;
.mode list
.output dump.sql
.mode insert restored
SELECT key, value, ttl, NULL FROM kv ORDER BY key;
.output stdout
.mode list
-- load it into a new table
CREATE VIRTUAL TABLE restored USING feox;
.read dump.sql
SELECT 'same', count(*) FROM kv JOIN restored AS r USING (key)
 WHERE kv.value IS r.value AND typeof(kv.value) = typeof(r.value);
SELECT 'ttl', ttl BETWEEN 3500 AND 3600 FROM restored WHERE key = 'ttl';
-- INSERT ... SELECT between feox tables, and into a native table and back
CREATE TABLE native(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO native SELECT key, value FROM kv;
CREATE VIRTUAL TABLE back USING feox;
INSERT INTO back(key, value) SELECT key, value FROM native;
SELECT 'round-trip', count(*) FROM kv JOIN back AS r USING (key)
 WHERE kv.value IS r.value AND typeof(kv.value) = typeof(r.value);
