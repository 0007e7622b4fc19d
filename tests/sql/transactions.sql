-- transactions.sql: BEGIN/COMMIT/ROLLBACK and SAVEPOINT/ROLLBACK TO/RELEASE undo changes made
-- through the table and through feox_incr/feox_cas/feox_patch (SPEC §2 "Transactions").
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2), ('c', 3), ('doc', '{"n":1}');
INSERT INTO kv(key, value, ttl) VALUES ('t', 'tv', 600);
CREATE TEMP VIEW dump AS SELECT group_concat(key || '=' || value, ' ') AS rows FROM (SELECT key, value FROM kv ORDER BY key);

BEGIN;
INSERT INTO kv(key, value) VALUES ('d', 4);
UPDATE kv SET value = 20 WHERE key = 'b';
DELETE FROM kv WHERE key = 'c';
UPDATE kv SET key = 'a2' WHERE key = 'a';
SELECT 'incr', feox_incr('kv', 'ctr', 5);
SELECT 'cas', feox_cas('kv', 'b', 20, 'twenty');
SELECT 'patch', json(feox_patch('kv', 'doc', '[{"op":"replace","path":"/n","value":2}]'));
SELECT 'in-txn', rows FROM dump;
ROLLBACK;
SELECT 'rolled-back', rows FROM dump;
SELECT 'types-restored', key, typeof(value) FROM kv WHERE key IN ('a', 'b') ORDER BY key;

-- ttl changes and deletes of keys with a ttl are undone exactly
BEGIN;
UPDATE kv SET ttl = 5 WHERE key = 't';
UPDATE kv SET ttl = 100 WHERE key = 'a';
ROLLBACK;
SELECT 'ttl-restored', key, ttl IS NULL, ttl BETWEEN 595 AND 600 FROM kv WHERE key IN ('a', 't') ORDER BY key;
BEGIN;
DELETE FROM kv WHERE key = 't';
ROLLBACK;
SELECT 'delete-ttl-restored', value, ttl BETWEEN 595 AND 600 FROM kv WHERE key = 't';
BEGIN;
SELECT 'incr-ttl', feox_incr('kv', 'a', 1, 5);
ROLLBACK;
SELECT 'incr-ttl-restored', value, ttl IS NULL FROM kv WHERE key = 'a';
-- and timestamps
INSERT INTO kv(key, value, ts) VALUES ('w', 'v', 1000);
BEGIN;
UPDATE kv SET value = 'v2', ts = 5000 WHERE key = 'w';
ROLLBACK;
SELECT 'ts-restored', value, ts FROM kv WHERE key = 'w';
UPDATE kv SET value = 'v3', ts = 2000 WHERE key = 'w';
SELECT 'ts-after-rollback', value, ts FROM kv WHERE key = 'w';

-- COMMIT keeps everything
BEGIN;
INSERT INTO kv(key, value) VALUES ('e', 5);
SELECT 'incr', feox_incr('kv', 'ctr', 1);
DELETE FROM kv WHERE key = 'w';
COMMIT;
SELECT 'committed', rows FROM dump;

-- the same key changed several times in one transaction comes back to its first state
BEGIN;
UPDATE kv SET value = 'x1' WHERE key = 'a';
DELETE FROM kv WHERE key = 'a';
INSERT INTO kv(key, value, ttl) VALUES ('a', 'x2', 50);
SELECT 'many-incr', feox_incr('kv', 'ctr', 1), feox_incr('kv', 'ctr', 1), feox_incr('kv', 'ctr', 1);
ROLLBACK;
SELECT 'many-restored', key, value, ttl IS NULL FROM kv WHERE key IN ('a', 'ctr') ORDER BY key;

-- savepoints
BEGIN;
INSERT INTO kv(key, value) VALUES ('s1', 1);
SAVEPOINT sp1;
INSERT INTO kv(key, value) VALUES ('s2', 2);
SELECT 'sp-incr', feox_incr('kv', 'ctr', 10);
SAVEPOINT sp2;
DELETE FROM kv WHERE key = 's1';
SELECT 'sp-cas', feox_cas('kv', 'e', 5, 50);
SELECT 'sp2', rows FROM dump;
ROLLBACK TO sp2;
SELECT 'after-rollback-to-sp2', rows FROM dump;
ROLLBACK TO sp1;
SELECT 'after-rollback-to-sp1', rows FROM dump;
INSERT INTO kv(key, value) VALUES ('s3', 3);
RELEASE sp1;
COMMIT;
SELECT 'after-commit', rows FROM dump;
-- ROLLBACK TO keeps the savepoint: it can be rolled back to again
BEGIN;
SAVEPOINT again;
INSERT INTO kv(key, value) VALUES ('g1', 1);
ROLLBACK TO again;
INSERT INTO kv(key, value) VALUES ('g2', 2);
ROLLBACK TO again;
RELEASE again;
COMMIT;
SELECT 'rollback-to-twice', count(*) FROM kv WHERE key GLOB 'g*';
-- a RELEASEd savepoint is still undone by the outer ROLLBACK
BEGIN;
SAVEPOINT inner1;
INSERT INTO kv(key, value) VALUES ('r1', 1);
SELECT 'released-incr', feox_incr('kv', 'ctr', 100);
RELEASE inner1;
ROLLBACK;
SELECT 'released-undone', count(*), (SELECT value FROM kv WHERE key = 'ctr') FROM kv WHERE key = 'r1';

-- SAVEPOINT outside BEGIN opens the transaction; ROLLBACK TO undoes it (xRollbackTo(-1))
SAVEPOINT outer1;
INSERT INTO kv(key, value) VALUES ('o1', 1);
SELECT 'outer-incr', feox_incr('kv', 'octr', 1);
UPDATE kv SET value = 'changed' WHERE key = 'b';
ROLLBACK TO outer1;
SELECT 'outer-rolled-back', (SELECT count(*) FROM kv WHERE key IN ('o1', 'octr')), (SELECT value FROM kv WHERE key = 'b');
INSERT INTO kv(key, value) VALUES ('o2', 2);
RELEASE outer1;
SELECT 'outer-released', count(*) FROM kv WHERE key GLOB 'o*';
-- RELEASE of the outermost savepoint commits
SAVEPOINT outer2;
INSERT INTO kv(key, value) VALUES ('o3', 3);
RELEASE outer2;
ROLLBACK;
SELECT 'outer2-committed', count(*) FROM kv WHERE key = 'o3';

-- errors inside a transaction undo only the failing statement
BEGIN;
INSERT INTO kv(key, value) VALUES ('q1', 1);
SELECT feox_incr('kv', 't', 1);
INSERT INTO kv(key, value) VALUES ('q2', 2), ('q1', 0);
SELECT 'txn-goes-on', group_concat(key, ' ') FROM (SELECT key FROM kv WHERE key GLOB 'q*' ORDER BY key);
COMMIT;
SELECT 'txn-committed', group_concat(key, ' ') FROM (SELECT key FROM kv WHERE key GLOB 'q*' ORDER BY key);

-- a function call in a transaction on a table no statement has touched yet
CREATE VIRTUAL TABLE fresh USING feox;
BEGIN;
SELECT 'fresh-incr', feox_incr('fresh', 'k', 1);
ROLLBACK;
SELECT 'fresh-rolled-back', count(*) FROM fresh;
-- two tables in one transaction
BEGIN;
INSERT INTO fresh(key, value) VALUES ('f', 1);
INSERT INTO kv(key, value) VALUES ('f', 1);
ROLLBACK;
SELECT 'two-tables', (SELECT count(*) FROM fresh), (SELECT count(*) FROM kv WHERE key = 'f');
