-- files_shared.sql: two tables that name one store file (issue 11 item 4). A second table
-- whose options differ fails and names the option; DROP of one table never destroys data the
-- other still shows: not while the other has the store open in this process, nor when the
-- other table of the schema names the file (a conservative check: its CREATE statement
-- mentions the file's name). Only the table that created the file removes it. Sessions: see
-- run.sh.
-- db: app.db
.bail off
CREATE VIRTUAL TABLE a USING feox(path='x.feox', sync='full');
CREATE VIRTUAL TABLE b USING feox(path='x.feox', sync='off');
CREATE VIRTUAL TABLE b USING feox(path='x.feox', sync='full', max_memory='1MB');
CREATE VIRTUAL TABLE b USING feox(path='x.feox', sync='full', keytype=blob);
CREATE VIRTUAL TABLE b USING feox(path='x.feox', sync='full', ttl_sweep_interval=10);
CREATE VIRTUAL TABLE b USING feox(path='x.feox', sync='full', flush_interval=5);
SELECT 'no-b', count(*) FROM sqlite_schema WHERE name = 'b';
CREATE VIRTUAL TABLE b USING feox(path='x.feox', sync='full');
INSERT INTO a(key, value) VALUES ('k', 'written through a');
SELECT 'b-sees', value FROM b;
-- reopen
.bail off
-- b is not open in this process: the schema check keeps the file
DROP TABLE a;
-- reopen
.bail off
.shell ls | LC_ALL=C sort
SELECT 'b-after-drop-a', value FROM b;
-- a again, sharing b's open store: DROP of a keeps the file b has open
CREATE VIRTUAL TABLE a USING feox(path='x.feox', sync='full');
INSERT INTO a(key, value) VALUES ('k2', 'written through a again');
DROP TABLE a;
SELECT 'b-after-second-drop', group_concat(key, ' ') FROM b;
-- reopen
.bail off
SELECT 'b-after-reopen', group_concat(key, ' ') FROM b;
-- b did not create the file: its DROP leaves it (a leftover file is harmless)
DROP TABLE b;
-- reopen
.shell ls | LC_ALL=C sort
-- two tables of the schema already disagree (created while the other was not open): the second
-- to be used reports the option, and can still be dropped
.bail off
.shell rm -f x.feox
CREATE VIRTUAL TABLE p USING feox(path='y.feox', sync='full');
-- reopen
.bail off
CREATE VIRTUAL TABLE q USING feox(path='y.feox', sync='off');
-- reopen
.bail off
SELECT 'p', count(*) FROM p;
SELECT 'q', count(*) FROM q;
DROP TABLE q;
SELECT 'p-after-drop-q', count(*) FROM p;
