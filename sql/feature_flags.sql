-- feature_flags.sql — feature flags changed safely with compare-and-swap.
--   cd sql && sqlite3 -cmd '.load ../build/feox' :memory: < feature_flags.sql
--
-- Key:   'flag:<name>'     Value: 'on' / 'off', or an INTEGER rollout percentage
-- feox_cas(table, key, expected, new [, ttl]) writes only if the value is still `expected`
-- (same SQL type and bytes) and returns 1, else 0: two admins can never overwrite each other
-- blindly, and no transaction or lock is needed.
.headers on
.mode box
CREATE VIRTUAL TABLE flags USING feox;
INSERT INTO flags(key, value) VALUES
  ('flag:new_checkout', 'off'),
  ('flag:dark_mode', 'on'),
  ('flag:search_v2_rollout', 10);

.print '-- the app reads flags with a hash lookup (or all of them with a prefix scan)'
SELECT substr(key, 6) AS flag, value FROM flags WHERE key GLOB 'flag:*' ORDER BY key;

.print '-- two admins both saw "off" and both try to switch new_checkout on: only one wins'
SELECT feox_cas('flags', 'flag:new_checkout', 'off', 'on') AS admin_1_won,
       feox_cas('flags', 'flag:new_checkout', 'off', 'on') AS admin_2_won;

.print '-- the loser re-reads and decides again'
SELECT value AS new_checkout FROM flags WHERE key = 'flag:new_checkout';

.print '-- widen a rollout from 10% to 50%: the comparison is type-aware'
SELECT feox_cas('flags', 'flag:search_v2_rollout', '10', 50) AS text_10_matches,
       feox_cas('flags', 'flag:search_v2_rollout', 10, 50) AS integer_10_matches;
SELECT value AS rollout, typeof(value) AS type FROM flags WHERE key = 'flag:search_v2_rollout';

.print '-- a temporary kill switch: turn dark_mode off for 10 minutes, after which the key expires'
SELECT feox_cas('flags', 'flag:dark_mode', 'on', 'off', 600) AS switched;
SELECT value, (ttl + 59) / 60 AS minutes_left FROM flags WHERE key = 'flag:dark_mode';

.print '-- CAS on a flag that does not exist returns 0 (create flags with INSERT)'
SELECT feox_cas('flags', 'flag:unknown', 'off', 'on') AS switched;

.print '-- an audit of every change in one transaction: all or nothing'
BEGIN;
SELECT feox_cas('flags', 'flag:new_checkout', 'on', 'off') AS rolled_back_change;
ROLLBACK;
SELECT value AS new_checkout_after_rollback FROM flags WHERE key = 'flag:new_checkout';
