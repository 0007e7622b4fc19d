-- csv_roundtrip.sql: the shell's CSV export of a feox table imports into a feox table. CSV writes
-- NULL as an empty field and .import inserts every field as TEXT, so an empty string in ttl or ts
-- means NULL (no expiry / an automatic timestamp) and numeric text is a number (SPEC "Precise
-- rules"; issue 11 item 14).
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value, ttl, ts) VALUES
  ('a', 'plain', NULL, 1000),
  ('b', 42, 600, 2000),
  ('c', 'with, comma "and" quotes', NULL, 3000),
  ('d', 3.5, NULL, 4000),
  ('e', '', 60, 5000);
-- export with a header line
.headers on
.mode csv
.once export.csv
SELECT * FROM kv ORDER BY key;
.headers off
.mode list
.shell cat export.csv | sed -E 's/,(599|600),/,TTL,/; s/,(59|60),/,TTL,/'
-- import into another feox table, skipping the header
CREATE VIRTUAL TABLE kv2 USING feox;
.import --csv --skip 1 export.csv kv2
SELECT 'imported', key, value, typeof(value), ttl IS NULL, ttl BETWEEN 1 AND 600, ts FROM kv2 ORDER BY key;
-- ts and ttl came over exactly: the rows compare equal, ttl within a second
SELECT 'same', count(*) FROM kv JOIN kv2 USING (key) WHERE kv.ts = kv2.ts AND (kv.ttl IS NULL) = (kv2.ttl IS NULL) AND abs(coalesce(kv.ttl, 0) - coalesce(kv2.ttl, 0)) <= 1;
-- a CSV file without ts/ttl values (empty fields): automatic timestamps, no expiry
.mode csv
.once plain.csv
SELECT 'x', 1, NULL, NULL UNION ALL SELECT 'y', 'two', NULL, NULL;
.mode list
.shell cat plain.csv
.import --csv plain.csv kv2
SELECT 'plain', key, value, ttl IS NULL, ts > 5000 FROM kv2 WHERE key IN ('x', 'y') ORDER BY key;
-- the same import again: the keys exist (UNIQUE), nothing changes
.import --csv plain.csv kv2
SELECT 'again', count(*) FROM kv2;
-- '' in ttl / ts through SQL: no expiry / automatic, in INSERT and UPDATE
INSERT INTO kv2(key, value, ttl, ts) VALUES ('z', 1, '', '');
SELECT 'empty-insert', ttl IS NULL, ts > 5000 FROM kv2 WHERE key = 'z';
UPDATE kv2 SET ttl = 30 WHERE key = 'z';
UPDATE kv2 SET ttl = '', ts = '' WHERE key = 'z';
SELECT 'empty-update', ttl IS NULL, ts > 5000 FROM kv2 WHERE key = 'z';
-- a blank ttl/ts is not a number: still an error
INSERT INTO kv2(key, value, ttl) VALUES ('w', 1, ' ');
INSERT INTO kv2(key, value, ts) VALUES ('w', 1, 'x');
