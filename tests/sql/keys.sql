-- keys.sql: key type and conversion (SPEC §2 "Columns" and "Precise rules"): keytype=text
-- (default) or blob; other types are converted to the key type, also in WHERE; NULL and empty
-- keys are errors; keys up to 100 KiB.
.bail off
CREATE VIRTUAL TABLE kv USING feox;

-- numbers become their text form
INSERT INTO kv(key, value) VALUES (5, 'five'), (2.5, 'two and a half'), (x'6162', 'blob ab');
SELECT 'stored', typeof(key), key, value FROM kv ORDER BY key;
SELECT 'eq-int', value FROM kv WHERE key = 5;
SELECT 'eq-text', value FROM kv WHERE key = '5';
SELECT 'eq-real', value FROM kv WHERE key = 2.5;
SELECT 'eq-blob', value FROM kv WHERE key = x'6162';
-- ... but only where the table answers the comparison: one SQLite evaluates itself follows
-- SQLite's rule (a text never equals a blob); numbers convert alike in both (TEXT affinity)
SELECT 'eq-blob-or', count(*) FROM kv WHERE key = x'6162' OR value = 'none';
SELECT 'eq-blob-expr', key = x'6162' FROM kv WHERE key = 'ab';
SELECT 'eq-int-or', value FROM kv WHERE key = 5 OR value = 'none';
-- an operand of numeric affinity (a CAST to a number, an INTEGER column): SQLite compares as
-- numbers, the table compares the key with the number's text; canonical keys are found alike
CREATE TABLE num(n INTEGER);
INSERT INTO num VALUES (5);
INSERT INTO kv(key, value) VALUES ('05', 'zero five');
SELECT 'numeric-cast', group_concat(value, ', ') FROM kv WHERE key = CAST('5' AS INTEGER);
SELECT 'numeric-join', group_concat(value, ', ') FROM num JOIN kv ON kv.key = num.n;
SELECT 'numeric-by-sqlite', group_concat(value, ', ') FROM (SELECT value FROM kv CROSS JOIN num ON kv.key = num.n ORDER BY value);
DELETE FROM kv WHERE key = '05';
DROP TABLE num;
SELECT 'in-mixed', value FROM kv WHERE key IN (5, 'ab', 7) ORDER BY value;
SELECT 'in-one', value FROM kv WHERE key IN (5);
-- the integer 5 and the text '5' are the same key
INSERT INTO kv(key, value) VALUES ('5', 'dup');
SELECT 'after-dup', value FROM kv WHERE key = 5;
UPDATE kv SET value = 'FIVE' WHERE key = 5;
SELECT 'updated', value FROM kv WHERE key = '5';
DELETE FROM kv WHERE key = 2.5;
SELECT 'deleted', count(*) FROM kv WHERE key = '2.5';

-- text ordering is byte order (BINARY): upper case before lower case, prefixes first
CREATE VIRTUAL TABLE ord USING feox;
INSERT INTO ord(key, value) VALUES ('b', 1), ('a', 2), ('B', 3), ('aa', 4), ('é', 5), ('10', 6),
  ('2', 7), ('1', 8), ('20', 9), ('3', 10);
SELECT 'order', group_concat(key, ' ') FROM (SELECT key FROM ord ORDER BY key);
SELECT 'order-desc', group_concat(key, ' ') FROM (SELECT key FROM ord ORDER BY key DESC);
-- numeric bounds are converted to text: '10' <= key < '3'
SELECT 'num-range', group_concat(key, ' ') FROM (SELECT key FROM ord WHERE key >= 10 AND key < 3 ORDER BY key);

-- NULL key: an error, nothing written
INSERT INTO kv(key, value) VALUES (NULL, 'x');
SELECT 'null-key', count(*) FROM kv;
UPDATE kv SET key = NULL WHERE key = '5';
SELECT 'null-key-update', key, value FROM kv WHERE key = '5';
-- empty key: an error (the engine's invalid key)
INSERT INTO kv(key, value) VALUES ('', 'x');
INSERT INTO kv(key, value) VALUES (x'', 'x');
SELECT 'empty-key', count(*) FROM kv;
-- NULL compares to nothing
SELECT 'where-null', count(*) FROM kv WHERE key = NULL;
SELECT 'where-is-null', count(*) FROM kv WHERE key IS NULL;
SELECT 'where-gt-null', count(*) FROM kv WHERE key > NULL;
SELECT 'where-in-null', count(*) FROM kv WHERE key IN (NULL, '5');

-- 100 KiB keys are fine, one byte more is not
INSERT INTO kv(key, value) VALUES (printf('%.*c', 102400, 'k'), 'big key');
SELECT 'big-key', length(key), value FROM kv WHERE key = printf('%.*c', 102400, 'k');
SELECT 'big-key-range', count(*) FROM kv WHERE key > 'k' AND key < 'l';
INSERT INTO kv(key, value) VALUES (printf('%.*c', 102401, 'k'), 'too big');
SELECT 'too-big-key', count(*) FROM kv WHERE length(key) > 102400;

-- keytype=blob: keys are BLOBs; other types become their bytes
CREATE VIRTUAL TABLE kb USING feox(keytype='blob');
INSERT INTO kb(key, value) VALUES (x'0001', 'a'), ('text', 'b'), (7, 'c'), (x'ff', 'd'), (x'00', 'e');
SELECT 'blob-keys', typeof(key), hex(key), value FROM kb ORDER BY key;
SELECT 'blob-eq-text', value FROM kb WHERE key = 'text';
SELECT 'blob-eq-blob', value FROM kb WHERE key = x'74657874';
SELECT 'blob-eq-int', value FROM kb WHERE key = 7;
SELECT 'blob-range', group_concat(value, ' ') FROM (SELECT value FROM kb WHERE key >= x'00' AND key < x'0100' ORDER BY key);
SELECT 'blob-desc', group_concat(value, ' ') FROM (SELECT value FROM kb ORDER BY key DESC);
INSERT INTO kb(key, value) VALUES (CAST('text' AS BLOB), 'dup');
INSERT INTO kb(key, value) VALUES (NULL, 'x');
SELECT 'blob-count', count(*) FROM kb;
-- bad keytype
CREATE VIRTUAL TABLE kbad USING feox(keytype='integer');
