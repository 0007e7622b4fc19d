-- update_from.sql: every UPDATE form follows the same rules (SPEC "Precise rules"): one that does
-- not assign ts gets an automatic timestamp, one that does not assign ttl keeps the exact expiry
-- instant. UPDATE ... FROM gets the columns it does not assign back as they were read (SQLite
-- reads them without "nochange" there), so a ts equal to the record's own means "not assigned"
-- and a ttl equal to the seconds the row shows keeps the expiry. Messages name the schema of an
-- attached database (issue 11 item 13).
.bail off
CREATE VIRTUAL TABLE kv USING feox;
CREATE TABLE other(k TEXT, v);
INSERT INTO kv(key, value, ttl, ts) VALUES ('a', 1, 100, 1000), ('b', 2, NULL, 1000), ('c', 3, NULL, 1000);
INSERT INTO other VALUES ('a', 'x'), ('b', 'y');

-- assigns value only: automatic ts (newer than 1000), ttl kept, 'c' untouched
UPDATE kv SET value = o.v FROM other o WHERE kv.key = o.k;
SELECT 'from-value', key, value, ttl BETWEEN 95 AND 100, ts > 1000 FROM kv ORDER BY key;
-- the exact expiry is kept: five more UPDATE ... FROM in a row do not lose a second each (rounding
-- to the whole seconds shown would leave about 93 s)
UPDATE kv SET value = o.v || '1' FROM other o WHERE kv.key = o.k;
UPDATE kv SET value = o.v || '2' FROM other o WHERE kv.key = o.k;
UPDATE kv SET value = o.v || '3' FROM other o WHERE kv.key = o.k;
UPDATE kv SET value = o.v || '4' FROM other o WHERE kv.key = o.k;
UPDATE kv SET value = o.v || '5' FROM other o WHERE kv.key = o.k;
SELECT 'from-ttl-kept', key, value, ttl BETWEEN 96 AND 100 FROM kv WHERE key = 'a';
-- assigns ttl only: value kept, new ttl, automatic ts
UPDATE kv SET ttl = 50 FROM other o WHERE kv.key = o.k;
SELECT 'from-ttl', key, value, ttl BETWEEN 45 AND 50 FROM kv WHERE key IN ('a', 'b') ORDER BY key;
-- ttl NULL (or '') removes the expiry
UPDATE kv SET ttl = NULL FROM other o WHERE kv.key = o.k AND o.k = 'a';
SELECT 'from-ttl-null', key, ttl IS NULL FROM kv WHERE key = 'a';
-- an explicit ts from the other table: newer is taken, older is an error (nothing changes) or,
-- under OR IGNORE, skipped
CREATE TABLE stamps(k TEXT, v, ts INTEGER);
INSERT INTO stamps VALUES ('b', 'newer', 9000000000000000000), ('c', 'older', 5);
UPDATE kv SET value = s.v, ts = s.ts FROM stamps s WHERE kv.key = s.k;
UPDATE kv SET value = s.v, ts = s.ts FROM stamps s WHERE kv.key = s.k AND s.k = 'b';
UPDATE OR IGNORE kv SET value = s.v, ts = s.ts FROM stamps s WHERE kv.key = s.k AND s.k = 'c';
SELECT 'from-explicit-ts', key, value, ts FROM kv WHERE key IN ('b', 'c') ORDER BY key;
-- a plain UPDATE assigning ts equal to the record's is still refused
UPDATE kv SET value = 'same', ts = 9000000000000000000 WHERE key = 'b';
-- UPDATE OR REPLACE ... FROM and a key change through FROM
INSERT INTO kv(key, value, ttl) VALUES ('d', 'dee', 300);
CREATE TABLE renames(old TEXT, new TEXT);
INSERT INTO renames VALUES ('d', 'd2');
UPDATE kv SET key = r.new FROM renames r WHERE kv.key = r.old;
SELECT 'from-rename', key, value, ttl BETWEEN 295 AND 300 FROM kv WHERE key IN ('d', 'd2') ORDER BY key;
UPDATE OR REPLACE kv SET value = o.v || '!' FROM other o WHERE kv.key = o.k;
SELECT 'from-or-replace', key, value FROM kv WHERE key IN ('a', 'b') ORDER BY key;
-- subqueries, IN (SELECT ...), and UPDATE OR REPLACE without FROM
UPDATE kv SET value = (SELECT v FROM other WHERE k = kv.key) || 's' WHERE key IN (SELECT k FROM other);
UPDATE OR REPLACE kv SET value = 'r' WHERE key IN (SELECT k FROM other);
SELECT 'subquery', key, value FROM kv WHERE key IN ('a', 'b') ORDER BY key;
-- in a transaction, rolled back
BEGIN;
UPDATE kv SET value = 'tx' FROM other o WHERE kv.key = o.k;
ROLLBACK;
SELECT 'rolled-back', key, value FROM kv WHERE key IN ('a', 'b') ORDER BY key;

-- messages name the schema of an attached database (main tables stay "kv")
ATTACH ':memory:' AS aux;
CREATE VIRTUAL TABLE aux.kv USING feox;
INSERT INTO aux.kv(key, value, ts) VALUES ('k', 1, 100);
INSERT OR REPLACE INTO aux.kv(key, value, ts) VALUES ('k', 2, 100);
INSERT INTO aux.kv(key, value, ttl) VALUES ('t', 1, -1);
INSERT INTO aux.kv(key, value) VALUES (NULL, 1);
UPDATE aux.kv SET ts = 'soon' WHERE key = 'k';
SELECT feox_incr('aux.kv', 'k', 0.5);
SELECT feox_cas('aux.kv', 'k', 1, 2, -5);
SELECT feox_patch('aux.kv', 'k', 'not json');
INSERT OR REPLACE INTO kv(key, value, ts) VALUES ('a', 2, 100);
SELECT feox_incr('main.kv', 'a', 0.5);
