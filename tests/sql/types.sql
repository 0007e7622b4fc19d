-- types.sql: values keep their SQL type (SPEC §2 "Columns"): INTEGER, REAL, TEXT, BLOB and NULL
-- come back with the type and bytes they went in with; empty TEXT and BLOB are not NULL.
CREATE VIRTUAL TABLE kv USING feox;

-- the schema SQLite sees: key (primary key), value, ttl, ts
SELECT 'schema', name, pk FROM pragma_table_info('kv');

INSERT INTO kv(key, value) VALUES
  ('int', 42),
  ('int_zero', 0),
  ('int_min', -9223372036854775808),
  ('int_max', 9223372036854775807),
  ('real', 3.5),
  ('real_neg', -0.1),
  ('real_big', 1.0e300),
  ('text', 'hello'),
  ('text_utf8', 'héllo wörld ✓'),
  ('text_empty', ''),
  ('text_nul', CAST(x'610062' AS TEXT)),
  ('text_digits', '42'),
  ('blob', x'00ff10'),
  ('blob_empty', x''),
  ('blob_text', CAST('42' AS BLOB)),
  ('null', NULL);

SELECT 'row', key, typeof(value), quote(value), length(value) FROM kv ORDER BY key;

-- exact values, not only their printed form
SELECT 'eq-int_min', value = -9223372036854775808 FROM kv WHERE key = 'int_min';
SELECT 'eq-int_max', value = 9223372036854775807 FROM kv WHERE key = 'int_max';
SELECT 'eq-real_neg', value = -0.1 FROM kv WHERE key = 'real_neg';
SELECT 'eq-real_big', value = 1.0e300 FROM kv WHERE key = 'real_big';
SELECT 'hex-text_nul', hex(value), typeof(value) FROM kv WHERE key = 'text_nul';
SELECT 'hex-text_utf8', hex(value) = hex('héllo wörld ✓') FROM kv WHERE key = 'text_utf8';
SELECT 'empty-not-null', key, value IS NOT NULL FROM kv WHERE key IN ('text_empty', 'blob_empty') ORDER BY key;
SELECT 'null-is-null', value IS NULL FROM kv WHERE key = 'null';

-- integer 42 and text '42' are different values
SELECT 'int-vs-text', count(*) FROM kv WHERE value = 42;
SELECT 'int-vs-text', count(*) FROM kv WHERE value = '42';

-- JSON stored as TEXT works with json_extract
INSERT INTO kv(key, value) VALUES ('user:1', '{"name":"Ada","age":36}');
SELECT 'json', json_extract(value, '$.name'), json_extract(value, '$.age') FROM kv WHERE key = 'user:1';

-- ttl and ts columns: NULL ttl without expiry, ts an INTEGER (ns since the epoch, close to now)
SELECT 'cols', typeof(ttl), typeof(ts), ts > 1600000000000000000,
       abs(ts / 1000000000 - unixepoch()) <= 10 FROM kv WHERE key = 'int';

-- an UPDATE may change the type
UPDATE kv SET value = 7 WHERE key = 'text';
UPDATE kv SET value = 'seven' WHERE key = 'int';
UPDATE kv SET value = NULL WHERE key = 'blob';
UPDATE kv SET value = x'0102' WHERE key = 'null';
UPDATE kv SET value = 2.25 WHERE key = 'text_empty';
SELECT 'updated', key, typeof(value), quote(value) FROM kv
 WHERE key IN ('text', 'int', 'blob', 'null', 'text_empty') ORDER BY key;

-- INSERT ... SELECT copies every type
CREATE VIRTUAL TABLE kv2 USING feox;
INSERT INTO kv2 SELECT key, value, NULL, NULL FROM kv;
SELECT 'copy', count(*) FROM kv2 AS a JOIN kv AS b USING (key)
 WHERE a.value IS b.value AND typeof(a.value) = typeof(b.value);
SELECT 'copy-total', (SELECT count(*) FROM kv2), (SELECT count(*) FROM kv);

-- SELECT * shows all four columns
CREATE VIRTUAL TABLE one USING feox;
INSERT INTO one(key, value) VALUES ('k', 'v');
.headers on
SELECT key, value, ttl, ts > 0 AS ts_set FROM one;
.headers off
