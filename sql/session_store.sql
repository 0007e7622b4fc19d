-- session_store.sql — a web session store with expiry (TTL).
--   cd sql && sqlite3 -cmd '.load ../build/feox' :memory: < session_store.sql
--
-- Key:   'sess:<token>'          Value: JSON with the user and session data
-- TTL:   idle timeout in seconds; every request "touches" the session to extend it.
-- Expired sessions disappear from every read at once; a background sweeper frees their memory.
.headers on
.mode box
CREATE VIRTUAL TABLE sessions USING feox;

.print '-- log in: create sessions with a 30-minute idle timeout (one with 1 second, to watch it expire)'
INSERT INTO sessions(key, value, ttl) VALUES
  ('sess:9f2c', json_object('user', 'alice', 'cart', json_array()), 1800),
  ('sess:7b1e', json_object('user', 'bob',   'cart', json_array('book')), 1800),
  ('sess:0d44', json_object('user', 'carol', 'cart', json_array()), 1);

.print '-- each request: look the session up by token (a hash lookup)'
SELECT json_extract(value, '$.user') AS user, json_extract(value, '$.cart') AS cart,
       ttl > 1700 AS fresh
  FROM sessions WHERE key = 'sess:7b1e';

.print '-- ... and touch it: reset the idle timeout without rewriting the value'
UPDATE sessions SET ttl = 1800 WHERE key = 'sess:7b1e';

.print '-- store data in the session: an UPDATE that does not assign ttl keeps the expiry'
UPDATE sessions SET value = json_set(value, '$.cart', json_array('book', 'lamp')) WHERE key = 'sess:7b1e';
SELECT json_extract(value, '$.cart') AS cart, ttl BETWEEN 1790 AND 1800 AS ttl_kept
  FROM sessions WHERE key = 'sess:7b1e';

.print '-- "remember me": make a session permanent (ttl = NULL), or shorten it'
UPDATE sessions SET ttl = NULL WHERE key = 'sess:9f2c';

.shell sleep 2
.print "-- two seconds later carol's 1-second session is gone; no cleanup job needed"
SELECT key, json_extract(value, '$.user') AS user,
       CASE WHEN ttl IS NULL THEN 'never' ELSE 'in ' || ((ttl + 59) / 60) || ' min' END AS expires
  FROM sessions ORDER BY key;
SELECT count(*) AS active_sessions FROM sessions;

.print '-- log out: delete the session'
DELETE FROM sessions WHERE key = 'sess:9f2c';
SELECT count(*) AS active_sessions FROM sessions;

.print '-- a stale token: no row, so the app sends the user to the login page'
SELECT count(*) AS found FROM sessions WHERE key = 'sess:0d44';
