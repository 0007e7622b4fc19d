"""A table in the database under the pragmas that change how SQLite writes pages, each compared
with a native twin table written by the same statements on the same connection.

For every journal mode (OFF, MEMORY, TRUNCATE, PERSIST, DELETE, WAL) and the smallest and largest
page sizes (512 and 65536 bytes), with a page cache of one page or none (so that a large
transaction spills pages to the file before it ends), memory-mapped I/O on or off, and temporary
files in memory or on disk:
- a transaction of 3000 rows of 300 bytes and an UPDATE, rolled back: both tables as before BEGIN;
- a multi-row INSERT that fails on a duplicate key in autocommit: nothing of it stays;
- the same transaction committed, then a SAVEPOINT rolled back inside another one;
(with journal_mode=OFF, where SQLite's ROLLBACK and ROLLBACK TO are undefined, only the failing
statement and the commits);
and afterwards both tables are equal on this connection, on a new one and after a reopen, and
feox_check and PRAGMA integrity_check say 'ok'.
"""
import unittest

from feoxtest import TempDirTestCase, connect

NATIVE = "CREATE TABLE nt(key TEXT PRIMARY KEY, value, ttl, ts) WITHOUT ROWID"
MANY = ("WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000) "
        "SELECT 'k' || i, printf('%0300d', i) FROM g")
SETTINGS = (
    # (journal_mode, page_size, other pragmas)
    ("off", 512, ("cache_size=0", "mmap_size=0")),
    ("memory", 512, ("cache_size=1", "mmap_size=268435456")),
    ("truncate", 65536, ("cache_size=0", "temp_store=FILE")),
    ("persist", 65536, ("cache_size=1", "temp_store=MEMORY")),
    ("delete", 512, ("cache_size=1", "mmap_size=268435456")),
    ("wal", 65536, ("cache_size=0", "mmap_size=268435456")),
    ("wal", 512, ("cache_size=1", "temp_store=FILE")),
)


def table_rows(con, table):
    return con.execute(f"SELECT key, value, typeof(value) FROM {table} ORDER BY key").fetchall()


class WritePragmas(TempDirTestCase):
    def open(self, path, journal_mode, pragmas):
        con = connect(path)
        for pragma in pragmas:
            con.execute(f"PRAGMA {pragma}")
        self.assertEqual(con.execute(f"PRAGMA journal_mode={journal_mode}").fetchone(),
                         (journal_mode,))
        return con

    def assert_twins_equal(self, con):
        self.assertEqual(table_rows(con, "kv"), table_rows(con, "nt"))

    def run_setting(self, journal_mode, page_size, pragmas):
        path = self.path(f"{journal_mode}-{page_size}.db")
        con = connect(path)
        con.execute(f"PRAGMA page_size={page_size}")
        con.execute(NATIVE)  # the first page written fixes the page size
        con.close()
        con = self.open(path, journal_mode, pragmas)
        self.assertEqual(con.execute("PRAGMA page_size").fetchone(), (page_size,))
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        for t in ("kv", "nt"):
            con.execute(f"INSERT INTO {t}(key, value) VALUES ('a', 1), ('b', 'two')")
        if journal_mode != "off":
            con.execute("BEGIN")
            for t in ("kv", "nt"):
                con.execute(f"INSERT INTO {t}(key, value) {MANY}")
                con.execute(f"UPDATE {t} SET value = 99 WHERE key = 'a'")
            con.execute("ROLLBACK")
            self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (2,))
            self.assert_twins_equal(con)
        for t in ("kv", "nt"):
            with self.assertRaisesRegex(Exception, f"UNIQUE constraint failed: {t}.key"):
                con.execute(f"INSERT INTO {t}(key, value) VALUES ('z', 1), ('a', 5)")
        self.assert_twins_equal(con)
        con.execute("BEGIN")
        for t in ("kv", "nt"):
            con.execute(f"INSERT INTO {t}(key, value) {MANY}")
        con.execute("COMMIT")
        con.execute("BEGIN")
        for t in ("kv", "nt"):
            con.execute(f"UPDATE {t} SET value = length(value) WHERE key < 'k2'")
        if journal_mode != "off":  # there ROLLBACK TO is undefined too
            con.execute("SAVEPOINT s")
            for t in ("kv", "nt"):
                con.execute(f"DELETE FROM {t} WHERE key > 'k5'")
            con.execute("ROLLBACK TO s")
        con.execute("COMMIT")
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (3002,))
        self.assert_twins_equal(con)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        other = connect(path)
        self.assert_twins_equal(other)
        self.assertEqual(table_rows(other, "kv"), table_rows(con, "kv"))
        other.close()
        con.close()
        again = self.open(path, journal_mode, pragmas)
        self.assert_twins_equal(again)
        self.assertEqual(again.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        self.assertEqual(again.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        again.close()

    def test_every_journal_mode_and_page_size(self):
        for journal_mode, page_size, pragmas in SETTINGS:
            with self.subTest(journal_mode=journal_mode, page_size=page_size, pragmas=pragmas):
                self.run_setting(journal_mode, page_size, pragmas)


if __name__ == "__main__":
    unittest.main()
