"""Database mode's resync (ext/storage_sqlite_load.c, resync_same_version): once another
connection commits more changes than the change feed keeps, a connection compares its cache with
<t>_data instead of reloading. Without max_memory the cache keeps no row seq (no location word,
FEOX_STORAGE_VALUES_BY_KEY), so a cached version and its row are compared by value bytes, tag, ts
and expiry; with max_memory by seq. Checked, in both:

  - rows that differ from the cached version in one of the four only (ts; expiry set, changed
    or removed; INTEGER 1 / TEXT '1' / REAL 1.0 / BLOB x'31'; bytes of the same length; 0.0 and
    -0.0; a delete and re-insert with an older explicit ts) reach the cache; rows rewritten by
    the other connection equal in all four are not sent again without max_memory (they are with
    it: another seq); deleted and new keys;
  - random rounds of this connection's transactions (SAVEPOINT, ROLLBACK TO, ROLLBACK, COMMIT)
    around the other's overflowing commits, which rewrite keys with earlier ts.
After each step the cache reads as the other connection does, and feox_check('kv') (which
compares value, tag, ts and expiry of every cached key with its row) says ok.
"""
import json
import random
import unittest

from feoxtest import TempDirTestCase, connect

MODES = ("", "(max_memory='64MB')")
# More changes than the feed keeps (65536) in one transaction: the feed no longer reaches back.
OVERFLOW = ("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 66000)"
            " INSERT INTO kv(key, value) SELECT printf('pad%06d', i), i FROM c")
UNPAD = "DELETE FROM kv WHERE key BETWEEN 'pad000001' AND 'pad066000'"


class ResyncByContentTest(TempDirTestCase):
    def open_pair(self, options):
        db = self.path("t.db")
        a = connect(db, timeout=5)
        b = connect(db, timeout=5)
        for c in (a, b):
            self.addCleanup(c.close)
        a.execute("PRAGMA journal_mode=WAL")
        a.execute("CREATE VIRTUAL TABLE kv USING feox" + options)
        return a, b

    def stats(self, con):
        return json.loads(con.execute("SELECT feox_stats('kv')").fetchone()[0])

    def view(self, con):
        return con.execute("SELECT key, value, typeof(value), ts, ttl IS NULL FROM kv"
                           " ORDER BY key").fetchall()

    def assert_coherent(self, a, b, what):
        self.assertEqual(self.view(a), self.view(b), what)
        self.assertEqual(a.execute("SELECT feox_check('kv')").fetchone()[0], "ok", what)

    def test_rows_differing_in_one_field(self):
        base = {"ts": "x", "ttl_set": "x", "ttl_changed": "x", "ttl_dropped": "x", "int_txt": 1,
                "txt_int": "1", "int_real": 1, "real_int": 1.0, "txt_blob": "1", "blob_txt": b"1",
                "bytes": "abc", "zero": 0.0, "older": "o", "gone": "g", "keep": "k",
                "s_txt": "s", "s_int": 7, "s_real": 2.5, "s_blob": b"\x00b", "s_empty": "",
                "s_negz": -0.0}
        ttl = {"ttl_changed": 1000, "ttl_dropped": 1000}
        # (value, ts offset, ttl) rewritten by b after a delete (no tombstones: any ts goes)
        redo = {"ts": ("x", 1, None), "ttl_set": ("x", 0, 1000), "ttl_changed": ("x", 0, 2000),
                "ttl_dropped": ("x", 0, None), "int_txt": ("1", 0, None),
                "txt_int": (1, 0, None), "int_real": (1.0, 0, None), "real_int": (1, 0, None),
                "txt_blob": (b"1", 0, None), "blob_txt": ("1", 0, None),
                "bytes": ("abd", 0, None), "zero": (-0.0, 0, None), "older": ("o", -1000, None)}
        same = [k for k in base if k.startswith("s_")]
        for options in MODES:
            with self.subTest(options=options):
                self.setUp()
                a, b = self.open_pair(options)
                for k, v in base.items():
                    a.execute("INSERT INTO kv(key, value, ttl) VALUES(?, ?, ?)", (k, v, ttl.get(k)))
                ts = dict(a.execute("SELECT key, ts FROM kv"))
                self.assertTrue(self.stats(a)["cache_complete"])
                b.execute("BEGIN IMMEDIATE")
                b.execute(OVERFLOW)
                for k, (v, dt, t) in list(redo.items()) + [(k, (base[k], 0, None)) for k in same]:
                    b.execute("DELETE FROM kv WHERE key = ?", (k,))
                    b.execute("INSERT INTO kv(key, value, ts, ttl) VALUES(?, ?, ?, ?)",
                              (k, v, ts[k] + dt, t))
                b.execute("DELETE FROM kv WHERE key = 'gone'")
                b.execute("INSERT INTO kv(key, value) VALUES('new', 'n')")
                b.execute(UNPAD)
                b.execute("COMMIT")
                self.assert_coherent(a, b, options)
                st = self.stats(a)
                self.assertEqual((st["cache_resyncs"], st["cache_reloads"]), (1, 0))
                # every changed row, the delete and the new key; rows equal in all four are sent
                # again only where versions are compared by seq
                sent = len(redo) + 2 + (len(same) if options else 0)
                self.assertEqual(st["cache_resync_rows"], sent, options)
                self.assertEqual(a.execute("SELECT value, typeof(value) FROM kv WHERE key IN"
                                           " ('int_txt', 'zero', 'older') ORDER BY key").fetchall(),
                                 [("1", "text"), ("o", "text"), (-0.0, "real")])
                a.close()
                b.close()

    def write(self, rng, con, k, seen_ts):
        """Delete k, or write it: a new ts, or one it had before (after a delete)."""
        values = [1, "1", 1.0, b"1", "abc", "abd", "", 0.0, -0.0, 2**40, "x" * 300]
        op = rng.random()
        if op < 0.2:
            con.execute("DELETE FROM kv WHERE key = ?", (k,))
            return
        v, ttl = rng.choice(values), rng.choice([None, None, 1000])
        if op < 0.6 and seen_ts.get(k):
            con.execute("DELETE FROM kv WHERE key = ?", (k,))
            con.execute("INSERT INTO kv(key, value, ttl, ts) VALUES(?, ?, ?, ?)",
                        (k, v, ttl, rng.choice(seen_ts[k])))
        else:
            con.execute("INSERT OR REPLACE INTO kv(key, value, ttl) VALUES(?, ?, ?)", (k, v, ttl))
        seen_ts.setdefault(k, []).append(
            con.execute("SELECT ts FROM kv WHERE key = ?", (k,)).fetchone()[0])

    def test_transactions_around_resyncs(self):
        keys = ["k%02d" % i for i in range(12)]
        for options in MODES:
            with self.subTest(options=options):
                self.setUp()
                rng = random.Random(62)
                seen_ts = {}
                a, b = self.open_pair(options)
                for k in keys:
                    self.write(rng, a, k, seen_ts)
                for rnd in range(4):
                    a.execute("BEGIN")
                    for _ in range(rng.randrange(4)):
                        self.write(rng, a, rng.choice(keys), seen_ts)
                    a.execute("SAVEPOINT s1")
                    for _ in range(1 + rng.randrange(3)):
                        self.write(rng, a, rng.choice(keys), seen_ts)
                    if rng.random() < 0.5:
                        a.execute("ROLLBACK TO s1")
                    a.execute("RELEASE s1")
                    a.execute("COMMIT" if rng.random() < 0.6 else "ROLLBACK")
                    self.assert_coherent(a, b, f"{options} round {rnd}, a")
                    b.execute("BEGIN IMMEDIATE")
                    b.execute(OVERFLOW)
                    for _ in range(1 + rng.randrange(5)):
                        self.write(rng, b, rng.choice(keys), seen_ts)
                    b.execute(UNPAD)
                    b.execute("COMMIT")
                    # the transaction that first sees b's commit writes, and takes some back
                    a.execute("BEGIN")
                    self.write(rng, a, rng.choice(keys), seen_ts)
                    a.execute("SAVEPOINT s2")
                    self.write(rng, a, rng.choice(keys), seen_ts)
                    a.execute("ROLLBACK TO s2")
                    a.execute("COMMIT" if rnd % 2 else "ROLLBACK")
                    self.assert_coherent(a, b, f"{options} round {rnd}, b")
                self.assertEqual(self.stats(a)["cache_resyncs"], 4)
                a.close()
                b.close()


if __name__ == "__main__":
    unittest.main()
