"""PRAGMA integrity_check and quick_check with feox tables.

SQLite 3.44 and newer run a virtual table's xIntegrity (module version 4) in both pragmas: feox
answers with what feox_check(tab) finds (the engine's check, and in database mode the cache
compared with <table>_data), one line naming the table. Debian's SQLite 3.40.1 does not call it,
so the tests that need it skip there; run them on a newer SQLite with `make test-sqlite-latest`
(tests/sqlite_latest/run.sh), or by hand:
    LD_LIBRARY_PATH=<dir with a newer libsqlite3.so.0> /usr/bin/python3 -m unittest test_integrity_check
What runs everywhere: the version 4 module loads and every mode passes both pragmas.
"""
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect

CALLS_XINTEGRITY = sqlite3.sqlite_version_info >= (3, 44, 0)
NEEDS_344 = unittest.skipUnless(CALLS_XINTEGRITY, "SQLite < 3.44 does not call xIntegrity "
                                "(make test-sqlite-latest runs this on a newer SQLite)")


class IntegrityCheckTest(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.con = connect(self.path("t.db"))
        self.addCleanup(self.con.close)
        self.con.execute("CREATE VIRTUAL TABLE kv USING feox")
        self.con.execute("CREATE VIRTUAL TABLE mem USING feox(path=':memory:')")
        self.con.execute(f"CREATE VIRTUAL TABLE f USING feox(path='{self.path('f.feox')}')")
        for table in ("kv", "mem", "f"):
            self.con.execute(f"INSERT INTO {table}(key, value) VALUES ('a', 1), ('b', 2)")

    def pragma(self, sql):
        return [row[0] for row in self.con.execute(sql)]

    def test_every_mode_passes(self):
        for pragma in ("integrity_check", "quick_check"):
            self.assertEqual(self.pragma(f"PRAGMA {pragma}"), ["ok"])
            for table in ("kv", "mem", "f"):
                self.assertEqual(self.pragma(f"PRAGMA {pragma}({table})"), ["ok"])

    @NEEDS_344
    def test_a_cache_that_differs_from_the_shadow_table_is_reported(self):
        # A hand edit of the shadow table, without a row in the change feed: the cache of this
        # connection still holds the value it loaded.
        self.con.execute("UPDATE kv_data SET value = 99 WHERE key = CAST('a' AS BLOB)")
        line = "feox table main.kv: cache and shadow table differ at key x'61' (value, tag, ts or expiry)"
        for pragma in ("integrity_check", "quick_check", "integrity_check(kv)"):
            self.assertEqual(self.pragma(f"PRAGMA {pragma}"), [line])
        self.assertEqual(self.pragma("PRAGMA integrity_check(mem)"), ["ok"])
        self.assertEqual(self.con.execute("SELECT feox_check('kv')").fetchone()[0],
                         line[len("feox table main.kv: "):])

    @NEEDS_344
    def test_a_damaged_row_is_reported(self):
        self.con.execute("INSERT INTO kv_data VALUES (x'', 1, 1, 1, NULL, 100)")
        lines = self.pragma("PRAGMA integrity_check")
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("feox table main.kv: kv_data: a key is not a BLOB"),
                        lines)
        self.con.execute("DELETE FROM kv_data WHERE key = x''")
        self.assertEqual(self.pragma("PRAGMA integrity_check"), ["ok"])

    @NEEDS_344
    def test_an_attached_schema_is_named(self):
        self.con.execute("ATTACH ? AS aux", (self.path("aux.db"),))
        self.con.execute("CREATE VIRTUAL TABLE aux.kv USING feox")
        self.con.execute("INSERT INTO aux.kv(key, value) VALUES ('z', 1)")
        self.con.execute("UPDATE aux.kv_data SET ts = 5")
        self.assertEqual(self.pragma("PRAGMA aux.integrity_check"),
                         ["feox table aux.kv: cache and shadow table differ at key x'7a' "
                          "(value, tag, ts or expiry)"])
        self.assertEqual(self.pragma("PRAGMA main.integrity_check"), ["ok"])


if __name__ == "__main__":
    unittest.main()
