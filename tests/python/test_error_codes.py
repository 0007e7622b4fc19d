"""SQLite's own result codes, extended ones included, reach the application: a statement on a feox
table that fails for a reason of SQLite's (a stale WAL snapshot, a database file moved away, a
read-only connection) fails with the code the same statement on a native WITHOUT ROWID table gets
in the same situation. Python's sqlite3 (3.11+) shows the extended code as
e.sqlite_errorcode; it never turns extended result codes on, so sqlite3_step and sqlite3_errcode
give feox only the primary code (SQLITE_BUSY for SQLITE_BUSY_SNAPSHOT): each place that passes
an SQLite failure on must read sqlite3_extended_errcode. I/O errors through a failing VFS:
tests/unit/test_ext_error_codes.c.
"""
import os
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect, connect_uri, skip_unless_built_with

SQLITE_READONLY = 8
SQLITE_LOCKED_SHAREDCACHE = 262
SQLITE_BUSY_SNAPSHOT = 517
SQLITE_READONLY_DBMOVED = 1032


def error_code(con, sql):
    """The extended code sql fails with on con (None if it succeeds)."""
    try:
        con.execute(sql).fetchall()
    except sqlite3.Error as e:
        return e.sqlite_errorcode
    return None


class ErrorCodeCase(TempDirTestCase):
    made = 0

    def make_db(self, journal_mode):
        """A new database self.db with a native table nat and feox tables kv (in the database), ck
        (clock='log') and fkv (a store file), one row each."""
        self.made += 1
        self.db = self.path(f"app{self.made}.db")
        con = connect(self.db)
        con.execute(f"PRAGMA journal_mode = {journal_mode}")
        con.execute("CREATE TABLE nat(k PRIMARY KEY, v) WITHOUT ROWID")
        con.execute("INSERT INTO nat VALUES ('k', 1)")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('k', 1)")
        con.execute("CREATE VIRTUAL TABLE ck USING feox(clock='log')")
        con.execute("INSERT INTO ck(ck, ts) VALUES ('clock', 1000)")
        con.execute("INSERT INTO ck(key, value) VALUES ('k', 1)")
        con.execute(f"CREATE VIRTUAL TABLE fkv USING feox(path='{self.db}.f.feox')")
        con.execute("INSERT INTO fkv(key, value) VALUES ('k', 1)")
        return con


class StaleSnapshotTest(ErrorCodeCase):
    """WAL: a transaction that read before another connection committed cannot write; SQLite
    says SQLITE_BUSY_SNAPSHOT. A writing function on a table the transaction has not used yet
    first connects it with a no-op write (functions.c touch_table), which met that code and
    passed on plain SQLITE_BUSY."""

    WRITES = ["UPDATE nat SET v = v + 1",
              "SELECT feox_incr('kv', 'k', 1)", "SELECT feox_cas('kv', 'k', 1, 5)",
              "SELECT feox_incr('fkv', 'k', 1)", "SELECT feox_patch('fkv', 'k', '[]')",
              "UPDATE kv SET value = value + 1 WHERE key = 'k'",
              "INSERT INTO ck(ck, ts) VALUES ('clock', 5000)"]

    def test_a_table_not_used_yet_in_the_transaction(self):
        con = self.make_db("WAL")
        for sql in self.WRITES:
            with self.subTest(sql=sql):
                reader = connect(self.db, timeout=0)
                reader.execute("BEGIN")
                reader.execute("SELECT v FROM nat").fetchall()  # no feox table connected
                con.execute("UPDATE nat SET v = v + 1")
                self.assertEqual(error_code(reader, sql), SQLITE_BUSY_SNAPSHOT)
                reader.execute("ROLLBACK")
                reader.close()
        con.close()


class MovedDatabaseTest(ErrorCodeCase):
    """Rollback journal: the database file renamed or removed while a connection has it open;
    its next write fails with SQLITE_READONLY_DBMOVED. The logical clock's write
    (logical_clock.c run_sql) passed on plain SQLITE_READONLY."""

    WRITES = ["UPDATE nat SET v = v + 1",
              "UPDATE kv SET value = value + 1 WHERE key = 'k'",
              "SELECT feox_incr('kv', 'k', 1)",
              "INSERT INTO ck(ck, ts) VALUES ('clock', 5000)",
              "UPDATE ck SET value = 2 WHERE key = 'k'"]

    def test_a_write_after_the_file_moved(self):
        for how in ("rename", "unlink"):
            for sql in self.WRITES:
                with self.subTest(how=how, sql=sql):
                    con = self.make_db("DELETE")
                    con.execute("SELECT count(*) FROM kv").fetchall()
                    if how == "rename":
                        os.rename(self.db, self.db + ".moved")
                    else:
                        os.unlink(self.db)
                    code = error_code(con, sql)
                    con.close()
                    self.assertEqual(code, SQLITE_READONLY_DBMOVED)


@skip_unless_built_with("shared cache", "OMIT_SHARED_CACHE")
class SharedCacheTest(ErrorCodeCase):
    """Shared cache: while one connection's transaction writes, another connection's writes (and
    its reads of what is being written) fail with SQLITE_LOCKED_SHAREDCACHE."""

    def test_a_write_while_another_connection_of_the_cache_writes(self):
        for journal_mode in ("DELETE", "WAL"):
            self.make_db(journal_mode).close()
            uri = f"file:{self.db}?cache=shared"
            for sql in ["UPDATE nat SET v = v + 1", "UPDATE kv SET value = 2 WHERE key = 'k'",
                        "SELECT feox_incr('kv', 'k', 1)", "SELECT feox_cas('kv', 'k', 1, 5)",
                        "INSERT INTO ck(ck, ts) VALUES ('clock', 5000)"]:
                for opening in ("", "BEGIN"):
                    with self.subTest(journal_mode=journal_mode, sql=sql, opening=opening):
                        writer = connect_uri(uri, timeout=0)
                        other = connect_uri(uri, timeout=0)
                        writer.execute("BEGIN")
                        writer.execute("UPDATE kv SET value = value + 1 WHERE key = 'k'")
                        writer.execute("SAVEPOINT s")  # kv's change reaches kv_data
                        if opening:
                            other.execute(opening)
                        code = error_code(other, sql)
                        other.close()
                        writer.close()
                        self.assertEqual(code, SQLITE_LOCKED_SHAREDCACHE)


class ReadOnlyConnectionTest(ErrorCodeCase):
    """mode=ro and PRAGMA query_only: every write, native or feox, in autocommit, inside BEGIN
    and inside a SAVEPOINT, fails with SQLITE_READONLY (SQLite's own code there: no extended
    part); feox_check still works."""

    WRITES = ["UPDATE nat SET v = v + 1", "UPDATE kv SET value = value + 1 WHERE key = 'k'",
              "SELECT feox_incr('kv', 'k', 1)", "SELECT feox_incr('fkv', 'k', 1)",
              "SELECT feox_sweep('kv')", "SELECT feox_compact('kv')",
              "INSERT INTO ck(ck, ts) VALUES ('clock', 5000)"]

    def test_writes_are_refused_as_natively(self):
        self.make_db("WAL").close()
        for how in ("mode=ro", "query_only"):
            for opening in ("", "BEGIN", "SAVEPOINT a"):
                for sql in self.WRITES:
                    with self.subTest(how=how, opening=opening, sql=sql):
                        if how == "mode=ro":
                            con = connect_uri(f"file:{self.db}?mode=ro")
                        else:
                            con = connect(self.db)
                            con.execute("PRAGMA query_only = 1")
                        if opening:
                            con.execute(opening)
                        self.assertEqual(error_code(con, sql), SQLITE_READONLY)
                        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(),
                                         ("ok",))
                        con.close()


if __name__ == "__main__":
    unittest.main()
