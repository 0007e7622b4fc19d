-- ranges.sql: range queries on the ordered index (SPEC §2 "Query planning"): <, <=, >, >=,
-- BETWEEN, every order of ANDed bounds, GLOB and LIKE prefixes, ORDER BY key [DESC],
-- LIMIT/OFFSET with and without ORDER BY, IN lists, OR, NULL bounds, joins, bound parameters.
-- Results must be right whatever the plan.
CREATE VIRTUAL TABLE r USING feox;
INSERT INTO r(key, value) VALUES ('a', 1), ('b', 2), ('c', 3), ('d', 4), ('e', 5), ('f', 6), ('g', 7);
.mode list
.separator |
-- one bound
SELECT 'lt', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key < 'c' ORDER BY key);
SELECT 'le', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key <= 'c' ORDER BY key);
SELECT 'gt', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key > 'e' ORDER BY key);
SELECT 'ge', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key >= 'e' ORDER BY key);
SELECT 'lt-first', count(*) FROM r WHERE key < 'a';
SELECT 'gt-last', count(*) FROM r WHERE key > 'g';
SELECT 'rev-lt', group_concat(key, ' ') FROM (SELECT key FROM r WHERE 'c' > key ORDER BY key);
SELECT 'rev-ge', group_concat(key, ' ') FROM (SELECT key FROM r WHERE 'e' <= key ORDER BY key);
-- two bounds, both orders, all strict/inclusive combinations
SELECT 'between', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key BETWEEN 'b' AND 'd' ORDER BY key);
SELECT 'between-rev', count(*) FROM r WHERE key BETWEEN 'd' AND 'b';
SELECT 'gt-le', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key > 'b' AND key <= 'e' ORDER BY key);
SELECT 'le-gt', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key <= 'e' AND key > 'b' ORDER BY key);
SELECT 'ge-lt', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key >= 'b' AND key < 'e' ORDER BY key);
SELECT 'lt-ge', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key < 'e' AND key >= 'b' ORDER BY key);
SELECT 'gt-lt', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key > 'b' AND key < 'e' ORDER BY key);
SELECT 'lt-gt', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key < 'e' AND key > 'b' ORDER BY key);
SELECT 'ge-le', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key >= 'b' AND key <= 'e' ORDER BY key);
SELECT 'le-ge', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key <= 'e' AND key >= 'b' ORDER BY key);
SELECT 'equal-bounds', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key >= 'c' AND key <= 'c');
SELECT 'empty-bounds', count(*) FROM r WHERE key > 'c' AND key < 'c';
SELECT 'crossed', count(*) FROM r WHERE key > 'e' AND key < 'b';
SELECT 'redundant', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key > 'a' AND key > 'c' AND key < 'g' AND key < 'f' ORDER BY key);
SELECT 'redundant2', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key >= 'c' AND key > 'c' AND key <= 'f' AND key < 'f' ORDER BY key);
SELECT 'absent-bounds', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key > 'bb' AND key < 'dd' ORDER BY key);
SELECT 'with-eq', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key > 'a' AND key = 'c');
SELECT 'eq-out-of-range', count(*) FROM r WHERE key < 'b' AND key = 'c';
SELECT 'ne', count(*) FROM r WHERE key <> 'c';
SELECT 'not-between', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key NOT BETWEEN 'b' AND 'f' ORDER BY key);
-- NULL bounds match nothing
SELECT 'null-lt', count(*) FROM r WHERE key < NULL;
SELECT 'null-between', count(*) FROM r WHERE key BETWEEN 'a' AND NULL;
SELECT 'null-sub', count(*) FROM r WHERE key > (SELECT NULL);
SELECT 'not-null', count(*) FROM r WHERE key IS NOT NULL;

-- ORDER BY key DESC, with and without bounds
SELECT 'desc', group_concat(key, ' ') FROM (SELECT key FROM r ORDER BY key DESC);
SELECT 'desc-range', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key >= 'c' ORDER BY key DESC);
SELECT 'desc-range2', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key < 'f' AND key > 'b' ORDER BY key DESC);
SELECT 'asc-then-value', group_concat(key, ' ') FROM (SELECT key FROM r ORDER BY key, value DESC);
SELECT 'by-value-desc', group_concat(key, ' ') FROM (SELECT key FROM r ORDER BY value DESC);

-- LIMIT / OFFSET
SELECT 'limit-asc', group_concat(key, ' ') FROM (SELECT key FROM r ORDER BY key LIMIT 2);
SELECT 'limit-desc', group_concat(key, ' ') FROM (SELECT key FROM r ORDER BY key DESC LIMIT 2);
SELECT 'offset-asc', group_concat(key, ' ') FROM (SELECT key FROM r ORDER BY key LIMIT 2 OFFSET 2);
SELECT 'offset-desc', group_concat(key, ' ') FROM (SELECT key FROM r ORDER BY key DESC LIMIT 2 OFFSET 2);
SELECT 'limit-range', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key > 'b' ORDER BY key LIMIT 3 OFFSET 1);
SELECT 'limit-range-desc', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key > 'b' ORDER BY key DESC LIMIT 3 OFFSET 1);
SELECT 'offset-past-end', count(*) FROM (SELECT key FROM r ORDER BY key LIMIT 5 OFFSET 10);
SELECT 'limit-zero', count(*) FROM (SELECT key FROM r LIMIT 0);
SELECT 'limit-negative', count(*) FROM (SELECT key FROM r LIMIT -1 OFFSET 2);
-- without ORDER BY the order is unspecified: check the count and the set
SELECT 'limit-noorder', count(*) FROM (SELECT key FROM r LIMIT 3 OFFSET 2);
SELECT 'limit-noorder-tail', count(*) FROM (SELECT key FROM r LIMIT 10 OFFSET 5);
SELECT 'limit-noorder-range', count(*), min(key) > 'b' FROM (SELECT key FROM r WHERE key > 'b' LIMIT 2 OFFSET 1);
-- LIMIT with a constraint the table cannot use (it must not stop early)
SELECT 'limit-unindexed', group_concat(key, ' ') FROM (SELECT key FROM r WHERE value > 3 ORDER BY key LIMIT 2);
SELECT 'limit-unindexed2', count(*) FROM (SELECT key FROM r WHERE value % 2 = 0 LIMIT 2);
SELECT 'limit-order-value', group_concat(key, ' ') FROM (SELECT key FROM r ORDER BY value DESC LIMIT 2);
SELECT 'limit-ne', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key <> 'a' ORDER BY key LIMIT 2);

-- IN lists and OR
SELECT 'in', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key IN ('c', 'a', 'zz', 'c') ORDER BY key);
SELECT 'in-desc', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key IN ('g', 'a', 'c', 'e') ORDER BY key DESC);
SELECT 'in-limit', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key IN ('a', 'c', 'e', 'g') ORDER BY key LIMIT 2 OFFSET 1);
SELECT 'in-empty', count(*) FROM r WHERE key IN ();
SELECT 'in-sub', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key IN (SELECT 'b' UNION SELECT 'f') ORDER BY key);
SELECT 'in-and-range', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key IN ('a', 'c', 'e') AND key > 'b' ORDER BY key);
SELECT 'not-in', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key NOT IN ('a', 'b', 'c') ORDER BY key);
SELECT 'or-eq', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key = 'c' OR key = 'e' ORDER BY key);
SELECT 'or-range', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key < 'b' OR key > 'f' ORDER BY key);
SELECT 'or-limit', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key = 'e' OR key = 'c' ORDER BY key LIMIT 1);
SELECT 'or-limit-desc', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key < 'c' OR key >= 'f' ORDER BY key DESC LIMIT 3);
SELECT 'or-mixed', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key = 'd' OR value > 6 OR key <= 'a' ORDER BY key);

-- prefixes: GLOB is case-sensitive, LIKE is not (unless case_sensitive_like)
CREATE VIRTUAL TABLE p USING feox;
INSERT INTO p(key, value) VALUES ('user', 0), ('user:001', 1), ('user:002', 2), ('user:010', 3),
  ('user:1x', 4), ('USER:9', 5), ('usera', 6), ('user;', 7), ('uses', 8), ('us', 9);
SELECT 'glob', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key GLOB 'user:*' ORDER BY key);
SELECT 'glob-0', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key GLOB 'user:0*' ORDER BY key);
SELECT 'glob-all', count(*) FROM p WHERE key GLOB '*';
SELECT 'glob-inner', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key GLOB 'u*r:00?' ORDER BY key);
SELECT 'glob-class', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key GLOB 'user:[01]*' ORDER BY key);
SELECT 'glob-exact', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key GLOB 'user' ORDER BY key);
SELECT 'glob-desc', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key GLOB 'user*' ORDER BY key DESC);
SELECT 'like', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key LIKE 'user:%' ORDER BY key);
SELECT 'like-under', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key LIKE 'user:00_' ORDER BY key);
SELECT 'like-upper', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key LIKE 'USER:%' ORDER BY key);
SELECT 'like-escape', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key LIKE 'user:0%' ESCAPE '\' ORDER BY key);
PRAGMA case_sensitive_like = ON;
SELECT 'like-cs', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key LIKE 'user:%' ORDER BY key);
SELECT 'like-cs-upper', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key LIKE 'USER:%' ORDER BY key);
PRAGMA case_sensitive_like = OFF;
SELECT 'collate-nocase', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key = 'USER:001' COLLATE NOCASE ORDER BY key);
SELECT 'collate-nocase-range', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key >= 'USER:' COLLATE NOCASE AND key < 'USER:1' COLLATE NOCASE ORDER BY key);

-- joins: the feox table on either side
SELECT 'join', group_concat(t.k || '=' || r.value, ' ') FROM (SELECT 'b' AS k UNION ALL SELECT 'd' UNION ALL SELECT 'zz') AS t JOIN r ON r.key = t.k;
SELECT 'join-range', count(*) FROM r AS x JOIN r AS y ON y.key > x.key;
SELECT 'left-join', group_concat(t.k || '=' || ifnull(r.value, 'none'), ' ') FROM (SELECT 'a' AS k UNION ALL SELECT 'q') AS t LEFT JOIN r ON r.key = t.k;

-- bound parameters
.parameter set :lo 'b'
.parameter set :hi 'd'
SELECT 'param', group_concat(key, ' ') FROM (SELECT key FROM r WHERE key BETWEEN :lo AND :hi ORDER BY key);
SELECT 'param-eq', value FROM r WHERE key = :hi;
.parameter set :pat 'user:0%'
SELECT 'param-like', group_concat(key, ' ') FROM (SELECT key FROM p WHERE key LIKE :pat ORDER BY key);
.parameter clear
