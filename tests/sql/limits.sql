-- limits.sql: value size limit (4 MiB), max_memory enforced with nothing partially written
-- (SPEC §1 insert / len / memory, §2 "Errors": never a partial write).
.bail off
CREATE VIRTUAL TABLE kv USING feox;
INSERT INTO kv(key, value) VALUES ('v4m', zeroblob(4194304));
SELECT 'value-4MiB', length(value), typeof(value) FROM kv WHERE key = 'v4m';
INSERT INTO kv(key, value) VALUES ('v4m1', zeroblob(4194305));
INSERT INTO kv(key, value) VALUES ('t4m1', printf('%.*c', 4194305, 'x'));
UPDATE kv SET value = zeroblob(4194305) WHERE key = 'v4m';
SELECT 'too-big', (SELECT count(*) FROM kv), (SELECT length(value) FROM kv WHERE key = 'v4m');

-- a small budget: writes past it fail with an error and write nothing
CREATE VIRTUAL TABLE small USING feox(max_memory=100000);
INSERT INTO small(key, value) VALUES ('a', zeroblob(10000));
SELECT 'small-ok', count(*) FROM small;
INSERT INTO small(key, value) VALUES ('big', zeroblob(200000));
SELECT 'small-big', count(*) FROM small;
-- one statement that runs out of budget half way leaves nothing
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
INSERT INTO small(key, value) SELECT 'k' || i, zeroblob(5000) FROM n;
SELECT 'small-multi', count(*), json_extract(feox_stats('small'), '$.len') FROM small;
SELECT 'small-within', json_extract(feox_stats('small'), '$.memory_usage') <= 100000;
-- after deleting, the budget is available again
DELETE FROM small;
INSERT INTO small(key, value) VALUES ('b', zeroblob(50000));
SELECT 'small-reused', count(*) FROM small;
