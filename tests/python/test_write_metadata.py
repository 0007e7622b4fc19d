"""The ttl and ts a write leaves, in each of the three modes (in the database, a store file,
memory), and after a reopen where the mode keeps data: the ttl argument of feox_incr, feox_cas
and feox_patch (absent or NULL keeps the expiry, 0 removes it, n > 0 sets it to n seconds from
now; a refused write changes nothing), and a delete that leaves no timestamp floor (FeoxDB's
"no tombstones": after a delete, an insert with any explicit ts is accepted)."""
import os
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect

MODES = ("database", "store file", "memory")
DOC = '{"a":1}'
PATCH = '[{"op":"replace","path":"/a","value":2}]'


class WriteMetadataTest(TempDirTestCase):
    def open(self, mode):
        """A connection and the CREATE for the mode's table kv (the same database on reopen)."""
        if mode == "memory":
            return connect(), "CREATE VIRTUAL TABLE kv USING feox"
        con = connect(self.path("app.db"))
        if mode == "database":
            return con, "CREATE VIRTUAL TABLE IF NOT EXISTS kv USING feox"
        return con, "CREATE VIRTUAL TABLE IF NOT EXISTS kv USING feox(path='%s')" % self.path(
            "kv.feox")

    def reopen(self, mode, con):
        """con closed and a new connection to the same table (memory: the same connection)."""
        if mode == "memory":
            return con
        con.close()
        con, create = self.open(mode)
        con.execute(create)
        return con

    def ttl(self, con, key):
        return con.execute("SELECT ttl FROM kv WHERE key = ?", (key,)).fetchone()[0]

    def assert_ttl_near(self, con, key, seconds):
        got = self.ttl(con, key)
        self.assertIsNotNone(got, key)
        self.assertTrue(seconds - 5 <= got <= seconds, (key, got, seconds))

    def test_functions_ttl_argument(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                con, create = self.open(mode)
                con.execute(create)
                con.executemany("INSERT INTO kv(key, value, ttl) VALUES (?, ?, 600)",
                                [("n", 1), ("n0", 1), ("nn", 1), ("c", "on"), ("c0", "on"),
                                 ("cf", "on"), ("d", DOC), ("d0", DOC), ("dn", DOC)])
                con.execute("INSERT INTO kv(key, value) VALUES ('dp', ?)", (DOC,))
                self.assertEqual(con.execute(
                    "SELECT feox_incr('kv', 'n', 1, 60), feox_incr('kv', 'n0', 1, 0),"
                    " feox_incr('kv', 'nn', 1, NULL), feox_incr('kv', 'new', 5, 30)").fetchone(),
                    (2, 2, 2, 5))
                self.assertEqual(con.execute(
                    "SELECT feox_cas('kv', 'c', 'on', 'off', 60), feox_cas('kv', 'c0', 'on', 'off', 0),"
                    " feox_cas('kv', 'cf', 'no', 'off', 60)").fetchone(), (1, 1, 0))
                con.execute("SELECT feox_patch('kv', 'd', ?, 60), feox_patch('kv', 'd0', ?, 0),"
                            " feox_patch('kv', 'dn', ?), feox_patch('kv', 'dp', ?, 45)",
                            (PATCH, PATCH, PATCH, PATCH)).fetchall()
                for _ in range(2):  # as written, then as the mode keeps it
                    for key in ("n", "c", "d"):
                        self.assert_ttl_near(con, key, 60)
                    for key in ("n0", "c0", "d0"):
                        self.assertIsNone(self.ttl(con, key), key)
                    for key in ("nn", "cf", "dn"):
                        self.assert_ttl_near(con, key, 600)
                    self.assert_ttl_near(con, "new", 30)
                    self.assert_ttl_near(con, "dp", 45)
                    self.assertEqual(con.execute(
                        "SELECT key, value FROM kv WHERE key IN ('n', 'cf', 'd', 'dp')"
                        " ORDER BY key").fetchall(),
                        [("cf", "on"), ("d", '{"a":2}'), ("dp", '{"a":2}'), ("n", 2)])
                    con = self.reopen(mode, con)
                self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
                con.execute("DROP TABLE kv")
                con.close()

    def test_bad_ttl_argument_changes_nothing(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                con, create = self.open(mode)
                con.execute(create)
                con.execute("INSERT INTO kv(key, value, ttl) VALUES ('n', 1, 600), ('d', ?, 600)",
                            (DOC,))
                for sql in ("SELECT feox_incr('kv', 'n', 1, -1)",
                            "SELECT feox_cas('kv', 'n', 1, 2, 1.5)",
                            "SELECT feox_patch('kv', 'd', '%s', 'soon')" % PATCH):
                    with self.assertRaises(sqlite3.DatabaseError) as cm:
                        con.execute(sql).fetchall()
                    self.assertIn("kv", str(cm.exception))
                    self.assertIn("ttl", str(cm.exception))
                self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                                 [("d", DOC), ("n", 1)])
                self.assert_ttl_near(con, "n", 600)
                self.assert_ttl_near(con, "d", 600)
                con.execute("DROP TABLE kv")
                con.close()

    def test_delete_leaves_no_timestamp_floor(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                con, create = self.open(mode)
                con.execute(create)
                con.execute("INSERT INTO kv(key, value, ts) VALUES ('k', 'first', 500)")
                with self.assertRaises(sqlite3.DatabaseError):
                    con.execute("UPDATE kv SET value = 'stale', ts = 400 WHERE key = 'k'")
                con.execute("DELETE FROM kv WHERE key = 'k'")
                # older than the deleted version: accepted, as in FeoxDB
                con.execute("INSERT INTO kv(key, value, ts) VALUES ('k', 'again', 150)")
                for _ in range(2):
                    self.assertEqual(con.execute("SELECT value, ts FROM kv WHERE key = 'k'")
                                     .fetchall(), [("again", 150)])
                    con = self.reopen(mode, con)
                # and the floor of the new version holds again
                with self.assertRaises(sqlite3.DatabaseError):
                    con.execute("UPDATE kv SET value = 'stale', ts = 150 WHERE key = 'k'")
                self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
                con.execute("DROP TABLE kv")
                con.close()
                if mode != "memory":
                    self.assertEqual(sorted(os.listdir(self.dir)), ["app.db"])


if __name__ == "__main__":
    unittest.main()
