-- db_options.sql: a table in the database (no path, file database) is as durable as the database
-- and runs no background thread, so the store-file options sync, flush_interval and
-- ttl_sweep_interval are refused at CREATE with a message naming the option (never silently
-- ignored); with path= they keep their meaning; keytype and max_memory apply to every mode.
-- db: test.db
.bail off
CREATE VIRTUAL TABLE a USING feox(sync='full');
CREATE VIRTUAL TABLE b USING feox(flush_interval=50);
CREATE VIRTUAL TABLE c USING feox(ttl_sweep_interval=0);
CREATE VIRTUAL TABLE d USING feox(keytype='blob');
CREATE VIRTUAL TABLE f USING feox(path='f.feox', sync='full', flush_interval=50);
SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name;
INSERT INTO d VALUES (x'01', 'one', NULL, NULL);
INSERT INTO f VALUES ('k', 'v', NULL, NULL);
SELECT hex(key), value FROM d;
SELECT key, value FROM f;
