-- files_owner.sql: a store file records the database file and table that created it, and DROP
-- removes it only from that table (issue 11 item 5). A copy of the database (cp app.db app2.db)
-- shares explicit paths with the original; dropping the copy's table must not destroy the
-- original's data. def is a previous-release table (no path, records in its default file
-- app.db-def.feox: made by creating it with that path and taking the path out of the schema
-- text); a new table without path lives in the database, and a copy carries its records.
-- Sessions: see run.sh.
-- db: app.db
.bail off
CREATE VIRTUAL TABLE kv USING feox(path='shared.feox');
CREATE VIRTUAL TABLE def USING feox(path='app.db-def.feox');
INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2);
INSERT INTO def(key, value) VALUES ('d', 'default');
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = 'CREATE VIRTUAL TABLE def USING feox' WHERE name = 'def';
PRAGMA writable_schema = OFF;
-- reopen
.bail off
.shell cp app.db app2.db
-- the copy: its explicit-path table opens the original's file; dropping it leaves the file
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" app2.db "SELECT 'copy-sees', count(*) FROM kv; DROP TABLE kv; SELECT 'copy-dropped', count(*) FROM sqlite_schema WHERE name = 'kv';" 2>&1
-- the copy's default-path table has no file of its own: it says so, and DROP works
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" app2.db "SELECT count(*) FROM def" 2>&1 || true
.shell "$SQLITE3" -cmd ".load $FEOX_EXT" app2.db "DROP TABLE def; SELECT 'copy-def-dropped';" 2>&1
.shell ls | LC_ALL=C sort
SELECT 'original', group_concat(key || '=' || value, ' ') FROM (SELECT key, value FROM kv ORDER BY key);
SELECT 'original-def', value FROM def;
-- the original's DROP removes its files
DROP TABLE kv;
DROP TABLE def;
-- reopen
.shell ls | LC_ALL=C sort
