"""Database mode's lazy load (ext/storage_sqlite_load.c): a connection's cache of a table's
shadow rows starts partial and fills a chunk at a time, so the first statement is answered at
once. Checked against a native WITHOUT ROWID table holding the same data, in the same database:

  - the first point SELECT on a 200K-row table written by another process is answered right
    while the cache is still partial (feox_stats says so: cache_complete false), and so are
    misses, below the loaded part (answered without SQL: cache_finds_local) and beyond it;
  - point reads, misses, range scans (ascending, descending, LIMIT), count(*) and this
    connection's own writes, interleaved with commits of another process, all while partial;
  - a scan inside a transaction with pending changes, then ROLLBACK;
  - another process commits more changes than the change feed keeps: the cache, complete or
    partial, is compared with the table (only what differs is sent) and stays as it was;
  - a full reload (the table's seq went back) starts a partial cache again; feox_check on a
    partial cache.
No assertion depends on time: the cache is partial because a chunk is at most 8192 rows.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import unittest

from feoxtest import EXT, TempDirTestCase, connect

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
ROWS = 200_000  # even keys k0000000, k0000002, ...: odd ones are misses between present keys

# Another process: creates the tables and fills both with the same rows (argv: db, rows).
CREATE = textwrap.dedent(f"""
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.enable_load_extension(True)
    con.load_extension({EXT!r})
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE VIRTUAL TABLE kv USING feox")
    con.execute("CREATE TABLE nat(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
    rows = [("k%07d" % (2 * i), "v%d" % i if i % 3 else i) for i in range(int(sys.argv[2]))]
    con.execute("BEGIN")
    con.executemany("INSERT INTO kv(key, value) VALUES(?, ?)", rows)
    con.executemany("INSERT INTO nat(key, value) VALUES(?, ?)", rows)
    con.execute("COMMIT")
    con.close()
""")

# Another process that writes on request: one JSON list of [sql, params] per line, run in one
# transaction; answers "ok" (or the error).
WRITER = textwrap.dedent(f"""
    import json, sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
    con.enable_load_extension(True)
    con.load_extension({EXT!r})
    for line in sys.stdin:
        try:
            con.execute("BEGIN IMMEDIATE")
            for sql, params in json.loads(line):
                con.execute(sql, params)
            con.execute("COMMIT")
            print("ok", flush=True)
        except Exception as e:
            con.execute("ROLLBACK")
            print("error: %s" % e, flush=True)
""")


def key(i):
    return "k%07d" % i


class Writer:
    """A second process that commits transactions on both tables."""

    def __init__(self, db):
        self.proc = subprocess.Popen([PY, "-c", WRITER, db], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def commit(self, statements):
        self.proc.stdin.write(json.dumps(statements) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise AssertionError(f"writer: {answer}")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


def both(keys_values, delete=()):
    """Statements writing the same change to kv and nat."""
    out = []
    for k, v in keys_values:
        out.append(["INSERT OR REPLACE INTO kv(key, value) VALUES(?, ?)", [k, v]])
        out.append(["INSERT OR REPLACE INTO nat(key, value) VALUES(?, ?)", [k, v]])
    for k in delete:
        out.append(["DELETE FROM kv WHERE key = ?", [k]])
        out.append(["DELETE FROM nat WHERE key = ?", [k]])
    return out


class LazyLoadTestCase(TempDirTestCase):
    template_dir = None

    @classmethod
    def setUpClass(cls):
        # One 200K-row database for the class, written by another process; each test copies it.
        import tempfile
        cls.template_dir = tempfile.mkdtemp(prefix="feox-lazy-")
        cls.template = os.path.join(cls.template_dir, "t.db")
        subprocess.run([PY, "-c", CREATE, cls.template, str(ROWS)], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.template_dir, True)

    def setUp(self):
        super().setUp()
        self.db = self.path("app.db")
        shutil.copy(self.template, self.db)
        self.rng = random.Random(1313)

    def open(self):
        con = connect(self.db)
        self.addCleanup(con.close)
        return con

    def stats(self, con):
        return json.loads(con.execute("SELECT feox_stats('kv')").fetchone()[0])

    def assert_partial(self, con):
        # feox_stats refreshes too (one more chunk) before it answers: if the cache is partial
        # now, it was partial for every statement before (partial -> complete only, but for a
        # reload, which these tests cause on purpose).
        self.assertFalse(self.stats(con)["cache_complete"])

    def same(self, con, sql, params=()):
        """The same query on kv and nat gives the same rows."""
        got = con.execute(sql.format(t="kv"), params).fetchall()
        want = con.execute(sql.format(t="nat"), params).fetchall()
        self.assertEqual(got, want, f"{sql} {params}")
        return got

    def point(self, con, i):
        return self.same(con, "SELECT key, value FROM {t} WHERE key = ?", (key(i),))

    def test_first_select_answers_while_partial(self):
        con = self.open()
        last = 2 * (ROWS - 1)
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = ?", (key(last),)).fetchall(),
                         [("v%d" % (ROWS - 1),)] if (ROWS - 1) % 3 else [(ROWS - 1,)])
        st = self.stats(con)
        self.assertFalse(st["cache_complete"])
        self.assertEqual(st["cache_reloads"], 0)
        self.assertGreaterEqual(st["cache_finds"], 1)  # read by key from the shadow table
        self.assertLess(st["len"], ROWS)
        # a miss beyond what is loaded asks the table; one below it (key 1, between k0 and k2,
        # loaded with the first chunk) does not
        before = self.stats(con)
        self.assertEqual(self.point(con, last - 1), [])
        self.assertEqual(self.point(con, 1), [])
        after = self.stats(con)
        self.assertFalse(after["cache_complete"])
        self.assertEqual(after["cache_finds_local"] - before["cache_finds_local"], 1)
        self.assertEqual(after["cache_finds"] - before["cache_finds"], 1)
        # present keys everywhere
        for i in (0, 2, 4096 * 2, 50_000 * 2, 150_001 * 2, last):
            self.assertEqual(len(self.point(con, i)), 1)
        self.assert_partial(con)

    def test_scans_as_first_statement(self):
        """Each scan is a fresh connection's first statement: the cache is partial for it."""
        # (query, parameters, the cache is still partial after it: a range without an upper
        # bound loads the rest of the table, as costly as the rest of the load)
        cases = [
            ("SELECT key, value FROM {t} WHERE key BETWEEN ? AND ? ORDER BY key",
             (key(300_000), key(300_500)), True),
            ("SELECT key, value FROM {t} WHERE key >= ? AND key < ? ORDER BY key DESC",
             (key(1000), key(1200)), True),
            ("SELECT key FROM {t} WHERE key < ? ORDER BY key DESC LIMIT 7", (key(20_000),), True),
            ("SELECT key, value FROM {t} WHERE key IN (?, ?, ?) ORDER BY key",
             (key(2), key(3), key(399_998)), True),
            ("SELECT key FROM {t} WHERE key > ? ORDER BY key LIMIT 5", (key(399_990),), False),
            ("SELECT count(*) FROM {t}", (), False),
            ("SELECT count(*), min(key), max(key) FROM {t} WHERE key > ?", (key(123_457),), False),
            ("SELECT key, value FROM {t} ORDER BY key DESC LIMIT 3", (), False),
        ]
        for sql, params, still_partial in cases:
            con = connect(self.db)
            try:
                rows = self.same(con, sql, params)
                self.assertTrue(rows)
                self.assertEqual(self.stats(con)["cache_complete"], not still_partial, sql)
            finally:
                con.close()

    def test_interleaved_with_another_process(self):
        con = self.open()
        writer = Writer(self.db)
        self.addCleanup(writer.close)
        live = set(range(0, 2 * ROWS, 2))
        partial_ops = 0
        for step in range(80):
            op = self.rng.choice(["read", "read", "miss", "other", "other", "own", "range"])
            if step == 70:
                op = "count"
            i = self.rng.randrange(0, 2 * ROWS + 100)
            if op == "read":
                i = self.rng.choice((i - i % 2, 2 * ROWS - 2 - (i % 5000) * 2))
                self.assertEqual(len(self.point(con, i)), 1 if i in live else 0)
            elif op == "miss":
                self.assertEqual(self.point(con, i | 1), [])
            elif op == "other":
                # another process: updates, inserts (odd keys) and deletes, one transaction
                changes = [(key(j), "o%d" % step) for j in (i, i | 1, i + 40_000, 2 * ROWS - 2 - i)
                           if 0 <= j]
                gone = [key(j) for j in (i + 2, i + 4)]
                writer.commit(both(changes, gone))
                live |= {j for j in (i, i | 1, i + 40_000, 2 * ROWS - 2 - i) if j >= 0}
                live -= {i + 2, i + 4}
                for j in (i, i | 1, i + 2, i + 40_000, 2 * ROWS - 2 - i):
                    self.assertEqual(len(self.point(con, j)), 1 if j in live else 0, (step, j))
            elif op == "own":
                con.execute("BEGIN")
                for sql, params in both([(key(i | 1), "own%d" % step)], [key(i + 6)]):
                    con.execute(sql, params)
                con.execute("COMMIT")
                live.add(i | 1)
                live.discard(i + 6)
                self.assertEqual(len(self.point(con, i | 1)), 1)
            elif op == "range":
                self.same(con, "SELECT key, value FROM {t} WHERE key BETWEEN ? AND ? ORDER BY key",
                          (key(i), key(i + 200)))
            elif op == "count":
                self.assertEqual(self.same(con, "SELECT count(*) FROM {t}")[0][0], len(live))
            if not self.stats(con)["cache_complete"]:
                partial_ops += 1
        self.assertGreaterEqual(partial_ops, 3)
        self.assertTrue(self.stats(con)["cache_complete"])  # count(*) finished the load
        self.same(con, "SELECT key, value FROM {t} ORDER BY key")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")

    def test_scan_in_a_transaction_while_partial(self):
        con = self.open()
        self.point(con, 10)
        self.assert_partial(con)
        con.execute("BEGIN")
        for sql, params in both([(key(5), "new"), (key(399_997), "new2")],
                                [key(399_990), key(200_000)]):
            con.execute(sql, params)
        self.same(con, "SELECT key, value FROM {t} WHERE key BETWEEN ? AND ? ORDER BY key",
                  (key(399_900), key(399_999)))
        self.assertEqual(self.same(con, "SELECT count(*) FROM {t}")[0][0], ROWS)
        self.same(con, "SELECT key, value FROM {t} WHERE key > ? ORDER BY key DESC LIMIT 50",
                  (key(199_000),))
        con.execute("ROLLBACK")
        self.assertEqual(self.same(con, "SELECT count(*) FROM {t}")[0][0], ROWS)
        for i in (5, 399_997, 399_990, 200_000):
            self.assertEqual(len(self.point(con, i)), 0 if i % 2 else 1)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")

    def test_functions_and_writes_while_partial(self):
        con = self.open()
        far = key(2 * ROWS - 4)
        con.execute("SELECT feox_incr('kv', ?, 5)", (key(2 * ROWS - 3),))  # a new key
        con.execute("INSERT OR REPLACE INTO nat VALUES(?, 5)", (key(2 * ROWS - 3),))
        self.assertEqual(con.execute("UPDATE kv SET value = 'u' WHERE key = ?", (far,)).rowcount, 1)
        con.execute("UPDATE nat SET value = 'u' WHERE key = ?", (far,))
        with self.assertRaises(Exception):
            con.execute("INSERT INTO kv(key, value) VALUES(?, 'dup')", (key(2 * ROWS - 6),))
        self.assert_partial(con)
        self.same(con, "SELECT key, value FROM {t} WHERE key >= ? ORDER BY key", (key(2 * ROWS - 8),))

    def overflow_feed(self, writer):
        """Another process commits more changes than the feed keeps (65536): 70000 new odd keys,
        two deletes (one early, one late in key order) and an update."""
        writer.commit(both([(key(j), "r") for j in range(1, 2 * 70_000, 2)] + [(key(300_000), "u")],
                           [key(10), key(399_998)]))
        return ROWS + 70_000 - 2

    def check_after_overflow(self, con, total):
        self.assertEqual(self.point(con, 2 * 70_000 - 1), [(key(2 * 70_000 - 1), "r")])
        self.assertEqual(self.point(con, 10), [])
        self.assertEqual(self.point(con, 399_998), [])
        self.assertEqual(self.point(con, 300_000), [(key(300_000), "u")])
        self.same(con, "SELECT key, value FROM {t} WHERE key BETWEEN ? AND ? ORDER BY key",
                  (key(0), key(2_000)))
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        self.assertTrue(self.stats(con)["cache_complete"])
        self.assertEqual(self.same(con, "SELECT count(*) FROM {t}")[0][0], total)
        self.same(con, "SELECT key, value FROM {t} ORDER BY key")

    def test_feed_overflow_on_a_complete_cache(self):
        con = self.open()
        self.assertEqual(self.same(con, "SELECT count(*) FROM {t}")[0][0], ROWS)
        self.assertTrue(self.stats(con)["cache_complete"])
        writer = Writer(self.db)
        self.addCleanup(writer.close)
        total = self.overflow_feed(writer)
        # the next statement compares the cache with the table instead of reloading: it stays
        # complete, and only what differs was sent
        self.assertEqual(self.point(con, 1), [(key(1), "r")])
        st = self.stats(con)
        self.assertEqual((st["cache_resyncs"], st["cache_reloads"]), (1, 0))
        self.assertTrue(st["cache_complete"])
        self.assertEqual(st["cache_resync_rows"], 70_000 + 1 + 2)
        self.check_after_overflow(con, total)

    def test_feed_overflow_on_a_partial_cache(self):
        con = self.open()
        self.point(con, 399_996)  # found beyond the frontier: dropped by the comparison
        self.point(con, 20)
        self.assert_partial(con)
        writer = Writer(self.db)
        self.addCleanup(writer.close)
        total = self.overflow_feed(writer)
        self.assertEqual(self.point(con, 3), [(key(3), "r")])
        st = self.stats(con)
        self.assertEqual((st["cache_resyncs"], st["cache_reloads"]), (1, 0))
        self.assertFalse(st["cache_complete"])
        self.assertEqual(len(self.point(con, 399_996)), 1)
        self.check_after_overflow(con, total)

    def test_reload_starts_partial_again(self):
        """A table whose seq went back (here: its feed emptied by hand) reloads in full: the
        cache starts partial again, through the same lazy load."""
        con = self.open()
        self.assertEqual(self.same(con, "SELECT count(*) FROM {t}")[0][0], ROWS)
        other = connect(self.db)
        self.addCleanup(other.close)
        other.execute("BEGIN")
        other.execute("INSERT INTO kv(key, value) VALUES('k0000001', 'x')")
        other.execute("INSERT INTO nat(key, value) VALUES('k0000001', 'x')")
        other.execute("COMMIT")
        con.execute("SELECT 1 FROM kv WHERE key = 'k0000000'").fetchall()  # at the new seq
        other.execute("DELETE FROM kv_log")  # seq back to 0 (defensive mode is off here)
        other.execute("INSERT INTO kv_data SELECT CAST('k0000003' AS BLOB), 'y', 3, 1, NULL, 1")
        other.execute("INSERT INTO nat VALUES('k0000003', 'y')")
        self.assertEqual(self.point(con, 3), [(key(3), "y")])
        st = self.stats(con)
        self.assertEqual(st["cache_reloads"], 1)
        self.assertFalse(st["cache_complete"])
        self.assertEqual(self.point(con, 1), [(key(1), "x")])
        self.same(con, "SELECT key, value FROM {t} WHERE key BETWEEN ? AND ? ORDER BY key",
                  (key(300_000), key(300_100)))
        self.assert_partial(con)
        self.assertEqual(self.same(con, "SELECT count(*) FROM {t}")[0][0], ROWS + 2)
        self.assertTrue(self.stats(con)["cache_complete"])
        self.same(con, "SELECT key, value FROM {t} ORDER BY key")
        # (feox_check reports the hand-made damage: a row with a seq after the table's)


if __name__ == "__main__":
    unittest.main()
