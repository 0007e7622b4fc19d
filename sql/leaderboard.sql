-- leaderboard.sql — a game leaderboard on range scans over ordered keys.
--   cd sql && sqlite3 -cmd '.load ../build/feox' :memory: < leaderboard.sql
--
-- Keys sort byte by byte, so a fixed-width number in the key orders the rows:
--   'rank:<score, 10 digits>:<player>'  ->  the player    (the ordered index: top N, ranges)
--   'player:<player>'                   ->  the score     (the hash index: a player's score)
-- A score change rewrites both keys in one transaction.
.headers on
.mode box
CREATE VIRTUAL TABLE board USING feox;

-- set_score: the old rank key goes, the new one comes, the player's score is replaced
CREATE TEMP TABLE scores(player TEXT, score INTEGER);
INSERT INTO scores VALUES ('ada', 3120), ('grace', 4410), ('linus', 2980), ('margaret', 4410),
  ('dennis', 1500), ('barbara', 3900);
BEGIN;
INSERT INTO board(key, value) SELECT printf('rank:%010d:%s', score, player), player FROM scores;
INSERT INTO board(key, value) SELECT 'player:' || player, score FROM scores;
COMMIT;

.print '-- top 3: the last keys of the rank range, read backwards (ties: by name, descending)'
SELECT value AS player, CAST(substr(key, 6, 10) AS INTEGER) AS score
  FROM board WHERE key GLOB 'rank:*' ORDER BY key DESC LIMIT 3;

.print '-- everyone between 2000 and 4000 points, lowest first'
SELECT value AS player, CAST(substr(key, 6, 10) AS INTEGER) AS score
  FROM board WHERE key >= printf('rank:%010d', 2000) AND key < printf('rank:%010d', 4001)
 ORDER BY key;

.print '-- ada scores 1500 more points'
BEGIN;
DELETE FROM board WHERE key = (SELECT printf('rank:%010d:ada', value) FROM board WHERE key = 'player:ada');
SELECT feox_incr('board', 'player:ada', 1500) AS ada_score;
INSERT INTO board(key, value) SELECT printf('rank:%010d:ada', value), 'ada' FROM board WHERE key = 'player:ada';
COMMIT;

.print "-- the new top 3, and ada's rank: the number of rank keys above hers, plus one"
SELECT value AS player, CAST(substr(key, 6, 10) AS INTEGER) AS score
  FROM board WHERE key GLOB 'rank:*' ORDER BY key DESC LIMIT 3;
SELECT 1 + (SELECT count(*) FROM board
             WHERE key > (SELECT printf('rank:%010d:ada', value) FROM board WHERE key = 'player:ada')
               AND key < 'rank;') AS ada_rank;

.print '-- page 2 of the leaderboard (places 4 to 6): LIMIT/OFFSET on the ordered scan'
SELECT value AS player, CAST(substr(key, 6, 10) AS INTEGER) AS score
  FROM board WHERE key GLOB 'rank:*' ORDER BY key DESC LIMIT 3 OFFSET 3;
