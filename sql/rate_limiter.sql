-- rate_limiter.sql — a fixed-window rate limiter: at most 5 requests per client per minute.
--   cd sql && sqlite3 -cmd '.load ../build/feox' :memory: < rate_limiter.sql
--
-- Key:   'rl:<client>:<minute number>'      Value: the INTEGER request count
-- feox_incr(table, key, 1, 60) creates the counter at 1 with a 60-second TTL, or increments it
-- atomically (safe from many connections and threads); each window's key expires on its own,
-- so there is nothing to clean up.
.headers on
.mode box
CREATE VIRTUAL TABLE limits USING feox;

-- the current window, computed once so that this example prints the same thing every time
CREATE TEMP TABLE now_window AS SELECT unixepoch() / 60 AS minute;

.print '-- alice sends 7 requests in one minute: the first 5 pass, the rest are refused'
WITH requests AS MATERIALIZED (
  SELECT value AS request, feox_incr('limits', 'rl:alice:' || minute, 1, 60) AS hits
    FROM generate_series(1, 7), now_window)
SELECT request, hits, CASE WHEN hits <= 5 THEN 'allowed' ELSE '429 Too Many Requests' END AS answer
  FROM requests;

.print '-- bob has his own counter'
SELECT feox_incr('limits', 'rl:bob:' || minute, 1, 60) AS bob_hits FROM now_window;

.print '-- the counters: INTEGER values that expire with their window'
SELECT substr(key, 4, instr(substr(key, 4), ':') - 1) AS client, value AS hits,
       typeof(value) AS type, ttl BETWEEN 1 AND 60 AS expires_within_a_minute
  FROM limits ORDER BY key;

.print '-- a refused request can be given back (e.g. the request failed before doing work)'
SELECT feox_incr('limits', 'rl:alice:' || minute, -1) AS alice_hits FROM now_window;

.print '-- an admin resets a client: delete every window of that client (a prefix range scan)'
DELETE FROM limits WHERE key GLOB 'rl:alice:*';
SELECT count(*) AS alice_windows FROM limits WHERE key GLOB 'rl:alice:*';
