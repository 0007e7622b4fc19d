-- create_options.sql: CREATE VIRTUAL TABLE ... USING feox(...) and every option (SPEC §2, issue 5
-- item 2): path, max_memory (bytes, 'MB' = 10^6, 'MiB' = 2^20), sync, keytype, the TTL sweeper
-- interval (ttl_sweep_interval, ms) and flush_interval (ms); quoted or bare values. Unknown
-- options and bad values fail with a message naming the table and the option, and create nothing.
.bail off
CREATE VIRTUAL TABLE t_default USING feox;
CREATE VIRTUAL TABLE t_empty_args USING feox();
CREATE VIRTUAL TABLE t_mem USING feox(path=':memory:');
CREATE VIRTUAL TABLE t_path USING feox(path='t.feox');
CREATE VIRTUAL TABLE t_path_dq USING feox(path="dq.feox");
CREATE VIRTUAL TABLE t_mm_mb USING feox(max_memory='512MB');
CREATE VIRTUAL TABLE t_mm_mib USING feox(max_memory='512MiB');
CREATE VIRTUAL TABLE t_mm_gib USING feox(max_memory='1GiB');
CREATE VIRTUAL TABLE t_mm_kb USING feox(max_memory='64kb');
CREATE VIRTUAL TABLE t_mm_bytes USING feox(max_memory=1048576);
CREATE VIRTUAL TABLE t_mm_zero USING feox(max_memory=0);
CREATE VIRTUAL TABLE t_sync_off USING feox(path='off.feox', sync='off');
CREATE VIRTUAL TABLE t_sync_normal USING feox(path='normal.feox', sync=normal);
CREATE VIRTUAL TABLE t_sync_full USING feox(path='full.feox', sync='FULL');
CREATE VIRTUAL TABLE t_text USING feox(keytype='text');
CREATE VIRTUAL TABLE t_blob USING feox(keytype=blob);
CREATE VIRTUAL TABLE t_sweep USING feox(ttl_sweep_interval=50);
CREATE VIRTUAL TABLE t_nosweep USING feox(ttl_sweep_interval=0);
CREATE VIRTUAL TABLE t_flush USING feox(path='flush.feox', flush_interval=10);
CREATE VIRTUAL TABLE t_all USING feox(path = 'all.feox', max_memory = '8MB', sync = 'full',
  keytype = 'blob', ttl_sweep_interval = 100, flush_interval = 20);
SELECT 'created', count(*) FROM sqlite_schema WHERE name GLOB 't_*' AND sql GLOB '*USING feox*';
-- every table works
INSERT INTO t_all(key, value) VALUES ('k', 'v');
SELECT 't_all', typeof(key), value FROM t_all;
INSERT INTO t_sync_full(key, value) VALUES ('k', 'v');
SELECT 't_sync_full', value FROM t_sync_full;
-- max_memory as feox_stats sees it
SELECT 'max_memory', json_extract(feox_stats('t_mm_mb'), '$.max_memory'),
       json_extract(feox_stats('t_mm_mib'), '$.max_memory'),
       json_extract(feox_stats('t_mm_gib'), '$.max_memory'),
       json_extract(feox_stats('t_mm_kb'), '$.max_memory'),
       json_extract(feox_stats('t_mm_bytes'), '$.max_memory'),
       json_extract(feox_stats('t_mm_zero'), '$.max_memory'),
       json_extract(feox_stats('t_all'), '$.max_memory');
-- keytype as the key column shows it
INSERT INTO t_text(key, value) VALUES (x'6869', 1);
INSERT INTO t_blob(key, value) VALUES ('hi', 1);
SELECT 'keytype', (SELECT typeof(key) FROM t_text), (SELECT typeof(key) FROM t_blob);
-- store files exist for the tables with a path, and only for them
.shell ls

-- errors: the message names the table and the option; nothing is created
CREATE VIRTUAL TABLE bad1 USING feox(bogus=1);
CREATE VIRTUAL TABLE bad2 USING feox(max_memory='lots');
CREATE VIRTUAL TABLE bad3 USING feox(max_memory='-5');
CREATE VIRTUAL TABLE bad4 USING feox(max_memory='12XB');
CREATE VIRTUAL TABLE bad5 USING feox(sync='sometimes');
CREATE VIRTUAL TABLE bad6 USING feox(keytype='integer');
CREATE VIRTUAL TABLE bad7 USING feox(ttl_sweep_interval='soon');
CREATE VIRTUAL TABLE bad8 USING feox(ttl_sweep_interval=-1);
CREATE VIRTUAL TABLE bad9 USING feox(flush_interval='x');
CREATE VIRTUAL TABLE bad10 USING feox(path='');
CREATE VIRTUAL TABLE bad11 USING feox(path);
CREATE VIRTUAL TABLE bad12 USING feox(sync='off', sync='full');
CREATE VIRTUAL TABLE bad13 USING feox(path='nodir/x.feox');
SELECT 'not-created', count(*) FROM sqlite_schema WHERE name GLOB 'bad*';
-- the virtual table cannot be created twice, and the module is not eponymous
CREATE VIRTUAL TABLE t_default USING feox;
SELECT * FROM feox;
