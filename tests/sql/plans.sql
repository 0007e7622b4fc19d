-- plans.sql: EXPLAIN QUERY PLAN shows which index a query uses (SPEC §2 "Query planning"):
-- equality and IN use the hash index; ranges, GLOB and LIKE prefixes (when case-sensitive) the
-- ordered index; ORDER BY key is consumed (no "USE TEMP B-TREE FOR ORDER BY"); everything
-- else is a full scan; NOCASE comparisons are never used by the index.
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2);
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key = 'a';
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key IN ('a', 'b');
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key > 'a';
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key BETWEEN 'a' AND 'b';
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key <= 'b' AND key > 'a';
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key GLOB 'user:*';
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key LIKE 'user:%';
EXPLAIN QUERY PLAN SELECT * FROM kv ORDER BY key;
EXPLAIN QUERY PLAN SELECT * FROM kv ORDER BY key DESC;
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key >= 'a' ORDER BY key DESC LIMIT 10;
EXPLAIN QUERY PLAN SELECT * FROM kv ORDER BY key LIMIT 5 OFFSET 2;
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE value = 1;
EXPLAIN QUERY PLAN SELECT * FROM kv;
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key = 'A' COLLATE NOCASE;
EXPLAIN QUERY PLAN SELECT * FROM kv ORDER BY value;
PRAGMA case_sensitive_like = ON;
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key LIKE 'user:%';
PRAGMA case_sensitive_like = OFF;
-- a join drives the lookup from the other side
CREATE TABLE ids(k TEXT);
EXPLAIN QUERY PLAN SELECT * FROM ids JOIN kv ON kv.key = ids.k;
-- UPDATE and DELETE by key use the hash index too
EXPLAIN QUERY PLAN UPDATE kv SET value = 3 WHERE key = 'a';
EXPLAIN QUERY PLAN DELETE FROM kv WHERE key < 'b';
-- a statement that uses no value scans rows without values
EXPLAIN QUERY PLAN SELECT count(*) FROM kv;
EXPLAIN QUERY PLAN SELECT key, ts, ttl FROM kv WHERE key > 'a' ORDER BY key DESC;
EXPLAIN QUERY PLAN SELECT key FROM kv WHERE value > 1;
