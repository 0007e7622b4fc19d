-- conflicts.sql: SQL's conflict semantics (SPEC §2 "Conflicts are SQL's") and statement
-- atomicity (a failing multi-row statement leaves nothing).
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('a', 1);
INSERT INTO kv(key, value) VALUES ('a', 2);
SELECT 'dup-kept', value FROM kv WHERE key = 'a';

INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 3);
SELECT 'or-replace', value FROM kv WHERE key = 'a';
REPLACE INTO kv(key, value) VALUES ('a', 4), ('b', 5);
SELECT 'replace', key, value FROM kv ORDER BY key;
INSERT OR IGNORE INTO kv(key, value) VALUES ('a', 99), ('c', 6);
SELECT 'or-ignore', key, value FROM kv ORDER BY key;
-- RETURNING also lists a row OR IGNORE skipped (SQLite runs a virtual table's RETURNING for every
-- row it hands to xUpdate; README "Statements"): 'a' keeps 4, changes() counts only 'd'
INSERT OR IGNORE INTO kv(key, value) VALUES ('a', 98), ('d', 7) RETURNING 'returning', key, value;
SELECT 'returning-changes', changes();
SELECT 'returning-kept', key, value FROM kv WHERE key IN ('a', 'd') ORDER BY key;
DELETE FROM kv WHERE key = 'd';
-- REPLACE without a ttl clears the existing one; with a ttl sets it
INSERT INTO kv(key, value, ttl) VALUES ('e', 1, 100);
INSERT OR REPLACE INTO kv(key, value) VALUES ('e', 2);
SELECT 'replace-clears-ttl', value, ttl IS NULL FROM kv WHERE key = 'e';
REPLACE INTO kv(key, value, ttl) VALUES ('e', 3, 500);
SELECT 'replace-sets-ttl', value, ttl BETWEEN 495 AND 500 FROM kv WHERE key = 'e';
DELETE FROM kv WHERE key = 'e';

-- a duplicate in the middle of a multi-row INSERT: nothing of the statement stays
INSERT INTO kv(key, value) VALUES ('m1', 1), ('a', 2), ('m2', 3);
SELECT 'multi-row', count(*) FROM kv WHERE key GLOB 'm*';
-- a duplicate inside the same statement
INSERT INTO kv(key, value) VALUES ('d1', 1), ('d2', 2), ('d1', 3);
SELECT 'self-dup', count(*) FROM kv WHERE key GLOB 'd*';
-- a NULL key in the middle of INSERT ... SELECT
INSERT INTO kv(key, value) SELECT column1, column2 FROM (VALUES ('n1', 1), (NULL, 2), ('n2', 3));
SELECT 'null-middle', count(*) FROM kv WHERE key GLOB 'n*';
-- a negative ttl in the middle
INSERT INTO kv(key, value, ttl) VALUES ('t1', 1, 10), ('t2', 2, -1), ('t3', 3, 10);
SELECT 'ttl-middle', count(*) FROM kv WHERE key GLOB 't*';
-- REPLACE that fails half way restores what it replaced
REPLACE INTO kv(key, value) VALUES ('a', 'new'), ('r1', 1), (NULL, 2);
SELECT 'replace-middle', key, value FROM kv WHERE key IN ('a', 'r1');

-- inside BEGIN: the failing statement is undone, the transaction goes on
BEGIN;
INSERT INTO kv(key, value) VALUES ('x1', 1);
INSERT INTO kv(key, value) VALUES ('m1', 1), ('a', 2), ('m2', 3);
SELECT 'in-txn', group_concat(key, ' ') FROM (SELECT key FROM kv WHERE key IN ('x1', 'm1', 'm2') ORDER BY key);
COMMIT;
SELECT 'committed', group_concat(key, ' ') FROM (SELECT key FROM kv WHERE key IN ('x1', 'm1', 'm2') ORDER BY key);

-- OR FAIL keeps the rows before the failing one; OR ABORT keeps none
INSERT OR FAIL INTO kv(key, value) VALUES ('f1', 1), ('a', 2), ('f2', 3);
SELECT 'or-fail', group_concat(key, ' ') FROM (SELECT key FROM kv WHERE key GLOB 'f*' ORDER BY key);
INSERT OR ABORT INTO kv(key, value) VALUES ('g1', 1), ('a', 2), ('g2', 3);
SELECT 'or-abort', count(*) FROM kv WHERE key GLOB 'g*';
-- OR ROLLBACK ends the whole transaction
BEGIN;
INSERT INTO kv(key, value) VALUES ('y1', 1);
INSERT OR ROLLBACK INTO kv(key, value) VALUES ('y2', 1), ('a', 2), ('y3', 3);
SELECT 'or-rollback', count(*) FROM kv WHERE key GLOB 'y*';
COMMIT;

-- UPSERT is refused by SQLite for every virtual table
INSERT INTO kv(key, value) VALUES ('a', 1) ON CONFLICT(key) DO UPDATE SET value = excluded.value;

SELECT 'final', key, value FROM kv ORDER BY key;
