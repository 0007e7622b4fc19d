"""Database mode: how a write of a key that already has a row reaches <t>_data. The backend
rewrites such a row in place with an UPDATE when neither the row nor the new version has an
expiry, and uses INSERT OR REPLACE otherwise (ext/storage_sqlite.c write_row); either way the
row must end up exactly as INSERT OR REPLACE would leave it. Checked after every step of mixed
sequences (type changes, TTL set, kept and cleared, explicit ts, feox_incr, BEGIN, SAVEPOINT and
ROLLBACK TO, a key deleted and written again in one transaction): every column of the row
(value and its type, tag, ts, expires, seq), the expiry index, the feed (the row's seq is its
key's last feed row), what a second connection reads, feox_check, and the change count
SQLite reports for the user's statement.
"""
import unittest

from feoxtest import TempDirTestCase, connect


def data_rows(con):
    return con.execute("SELECT key, value, typeof(value), tag, ts, expires, seq FROM kv_data "
                       "ORDER BY key").fetchall()


class OverwriteTest(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.db = self.path("app.db")
        self.con = connect(self.db)
        self.con.execute("PRAGMA journal_mode = WAL")
        self.con.execute("CREATE VIRTUAL TABLE kv USING feox")
        self.other = connect(self.db)
        self.addCleanup(self.other.close)
        self.addCleanup(self.con.close)

    def check(self, msg):
        con = self.con
        rows = data_rows(con)
        for key, value, vtype, tag, ts, expires, seq in rows:
            last = con.execute("SELECT max(seq) FROM kv_log WHERE key = ?", (key,)).fetchone()[0]
            self.assertEqual(seq, last, f"{msg}: {key!r} seq against its last feed row")
            self.assertEqual({1: "integer", 2: "real", 3: "text", 4: "blob", 5: "null"}[tag],
                             vtype, f"{msg}: {key!r} tag and value type")
        # the expiry index holds exactly the rows with an expiry
        indexed = con.execute("SELECT key FROM kv_data INDEXED BY kv_data_expires "
                              "WHERE expires IS NOT NULL ORDER BY key").fetchall()
        self.assertEqual(indexed, [(r[0],) for r in rows if r[5] is not None], msg)
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok", msg)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok", msg)
        mine = con.execute("SELECT key, value, typeof(value), ts FROM kv ORDER BY key").fetchall()
        theirs = self.other.execute(
            "SELECT key, value, typeof(value), ts FROM kv ORDER BY key").fetchall()
        self.assertEqual(mine, theirs, msg)
        shadow = [(k.decode(), v, t, ts) for k, v, t, _, ts, _, _ in rows]
        self.assertEqual(mine, shadow, msg)
        return rows

    def row(self, key):
        return self.con.execute("SELECT value, typeof(value), tag, ts, expires FROM kv_data "
                                "WHERE key = CAST(? AS BLOB)", (key,)).fetchone()

    def test_autocommit_overwrites_keep_every_column(self):
        con = self.con
        steps = [
            ("INSERT INTO kv(key, value) VALUES ('a', 1)", None),
            ("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 2)", (2, "integer", 1)),
            ("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 'two')", ("two", "text", 3)),
            ("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 2.5)", (2.5, "real", 2)),
            ("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', x'0102')", (b"\x01\x02", "blob", 4)),
            ("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', NULL)", (None, "null", 5)),
            ("UPDATE kv SET value = 7 WHERE key = 'a'", (7, "integer", 1)),
            ("INSERT OR REPLACE INTO kv(key, value, ttl) VALUES ('a', 8, 3600)", (8, "integer", 1)),
            ("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 9)", (9, "integer", 1)),
            ("UPDATE kv SET ttl = 3600 WHERE key = 'a'", (9, "integer", 1)),
            ("UPDATE kv SET value = 10 WHERE key = 'a'", (10, "integer", 1)),
            ("UPDATE kv SET value = 11, ttl = 0 WHERE key = 'a'", (11, "integer", 1)),
        ]
        had_expiry = [False, False, False, False, False, False, False, True, False, True, True,
                      False]
        last_ts = None
        for (sql, want), expiring in zip(steps, had_expiry):
            cur = con.execute(sql)
            self.assertEqual(cur.rowcount, 1, sql)
            self.check(sql)
            value, vtype, tag, ts, expires = self.row("a")
            if want is not None:
                self.assertEqual((value, vtype, tag), want, sql)
            self.assertEqual(expires is not None, expiring, sql)
            if last_ts is not None:
                self.assertGreater(ts, last_ts, sql)
            last_ts = ts
        con.execute("INSERT OR REPLACE INTO kv(key, value, ts) VALUES ('a', 12, ?)",
                    (last_ts + 1000,))
        self.assertEqual(self.row("a")[3], last_ts + 1000)
        self.check("explicit ts")

    def test_feox_incr_and_many_keys(self):
        con = self.con
        con.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
                    "INSERT INTO kv(key, value) SELECT 'k' || i, i FROM n")
        for i in range(1, 301, 7):
            self.assertEqual(con.execute("SELECT feox_incr('kv', ?, 5)", (f"k{i}",)).fetchone()[0],
                             i + 5)
        for i in range(2, 301, 11):
            con.execute("INSERT OR REPLACE INTO kv(key, value, ttl) VALUES (?, 100, 60)",
                        (f"k{i}",))
        for i in range(2, 301, 22):
            # the first clears the expiry (from a row with one), the second keeps none
            self.assertEqual(con.execute("SELECT feox_incr('kv', ?, 1, 0)", (f"k{i}",))
                             .fetchone()[0], 101)
            self.assertEqual(con.execute("SELECT feox_incr('kv', ?, 1)", (f"k{i}",))
                             .fetchone()[0], 102)
            self.assertIsNone(self.row(f"k{i}")[4])
        rows = self.check("after incr and ttl")
        self.assertEqual(len(rows), 300)

    def test_transactions_savepoints_and_delete_then_write(self):
        con = self.con
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2), ('c', 3)")
        con.execute("BEGIN")
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 10)")
        con.execute("DELETE FROM kv WHERE key = 'b'")
        con.execute("INSERT INTO kv(key, value) VALUES ('b', 'again')")
        con.execute("SAVEPOINT s")
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 11)")
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('c', 30)")
        con.execute("ROLLBACK TO s")
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('c', 31)")
        con.execute("DELETE FROM kv WHERE key = 'c'")
        con.execute("SAVEPOINT t")
        con.execute("INSERT INTO kv(key, value) VALUES ('c', 32)")
        con.execute("RELEASE t")
        con.execute("SELECT feox_incr('kv', 'a', 1)")
        con.execute("COMMIT")
        self.check("after COMMIT")
        got = con.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
        self.assertEqual(got, [("a", 11), ("b", "again"), ("c", 32)])
        con.execute("BEGIN")
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', 99)")
        con.execute("ROLLBACK")
        self.check("after ROLLBACK")
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'a'").fetchone()[0], 11)


if __name__ == "__main__":
    unittest.main()
