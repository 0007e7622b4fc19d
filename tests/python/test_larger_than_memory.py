"""Larger than memory in database mode (issue 13 item 8): a table with max_memory far below its
data (2 MB for 20 MB of values) keeps its keys and metadata in each connection's cache and reads
the values that do not fit back from <t>_data by key (ext/db_mode.c, "Larger than memory").

Checked: one transaction and autocommit writes of 20 MB commit; every value reads back exactly by
point SELECT and by scan, from this connection, a second one (fed by the change feed) and after
reopening; feox_patch and UPDATE on values that were evicted; ROLLBACK of a transaction that
overwrote them brings every old value back; feox_stats' memory_usage stays within max_memory
throughout, and feox_check agrees with the shadow table.
"""
import hashlib
import json
import os
import random
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect

BUDGET = 2_000_000
N = 2000
SIZE = 10_000  # 2000 x 10 KB = 20 MB of values


def value_of(i, generation=0):
    return hashlib.sha256(f"{i}/{generation}".encode()).digest() * (SIZE // 32) + bytes(SIZE % 32)


class LargerThanMemoryTest(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.db = self.path("big.db")
        con = connect(self.db)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute(f"CREATE VIRTUAL TABLE kv USING feox(max_memory={BUDGET})")
        con.close()

    def stats(self, con):
        return json.loads(con.execute("SELECT feox_stats('kv')").fetchone()[0])

    def assertWithinBudget(self, con, msg=""):
        s = self.stats(con)
        self.assertLessEqual(s["memory_usage"], BUDGET, msg)
        return s

    def assertAllValues(self, con, expected, msg=""):
        """Every key by point SELECT and by a scan, and nothing else in the table."""
        keys = list(expected)
        random.Random(7).shuffle(keys)
        for k in keys:
            got = con.execute("SELECT value FROM kv WHERE key = ?", (k,)).fetchone()
            self.assertIsNotNone(got, f"{msg}: {k} missing")
            self.assertEqual(got[0], expected[k], f"{msg}: {k}")
        scanned = dict(con.execute("SELECT key, value FROM kv"))
        self.assertEqual(scanned.keys(), expected.keys(), msg)
        self.assertTrue(all(scanned[k] == v for k, v in expected.items()), msg)

    def fill(self, con):
        expected = {f"k{i:05d}": value_of(i) for i in range(N)}
        con.execute("BEGIN")
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)", expected.items())
        con.execute("COMMIT")
        return expected

    def test_twenty_megabytes_in_two_read_back_everywhere(self):
        con = connect(self.db)
        other = connect(self.db)
        self.assertEqual(other.execute("SELECT count(*) FROM kv").fetchone(), (0,))
        expected = self.fill(con)
        s = self.assertWithinBudget(con, "after the transaction")
        self.assertGreater(s["disk_bytes_written"], 10 * BUDGET)
        self.assertAllValues(con, expected, "writer")
        self.assertWithinBudget(con, "writer after reading everything")
        # another connection hears the transaction through the feed, within its own budget
        self.assertAllValues(other, expected, "second connection")
        self.assertWithinBudget(other, "second connection")
        # autocommit writes too
        for i in range(0, N, 7):
            expected[f"k{i:05d}"] = value_of(i, 1)
            con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)",
                        (f"k{i:05d}", expected[f"k{i:05d}"]))
        self.assertWithinBudget(con, "after autocommit writes")
        con.close()
        other.close()
        # reopened: the cache loads lazily (keys and metadata, and at most half the budget of
        # values); reading everything completes it
        con = connect(self.db)
        s = self.assertWithinBudget(con, "after reopening")
        self.assertLessEqual(s["len"], N)
        self.assertAllValues(con, expected, "reopened")
        s = self.assertWithinBudget(con, "reopened, after reading everything")
        self.assertEqual(s["len"], N)
        self.assertTrue(s["cache_complete"])
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        con.close()

    def test_functions_and_updates_on_values_that_left_memory(self):
        con = connect(self.db)
        docs = {f"d{i:05d}": json.dumps({"n": i, "pad": "x" * SIZE}) for i in range(N)}
        con.execute("BEGIN")
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)", docs.items())
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)",
                        [(f"c{i}", i) for i in range(50)])
        con.execute("COMMIT")
        self.assertWithinBudget(con)
        # the first documents were evicted long ago: patch every 50th
        for i in range(0, N, 50):
            con.execute("SELECT feox_patch('kv', ?, ?)",
                        (f"d{i:05d}", json.dumps([{"op": "replace", "path": "/n", "value": -i}])))
            docs[f"d{i:05d}"] = json.dumps({"n": -i, "pad": "x" * SIZE}, separators=(",", ":"))
        for i in range(50):
            self.assertEqual(con.execute("SELECT feox_incr('kv', ?, 5)", (f"c{i}",)).fetchone(),
                             (i + 5,))
        self.assertWithinBudget(con, "after the functions")
        for i in range(0, N, 50):
            got = con.execute("SELECT value FROM kv WHERE key = ?", (f"d{i:05d}",)).fetchone()[0]
            self.assertEqual(json.loads(got)["n"], -i)
        # called by a running write statement (no savepoint per call): 20 MB rewritten in one
        # statement still fits, and the values read back
        con.execute("CREATE TABLE ks(k)")
        con.executemany("INSERT INTO ks VALUES (?)", [(k,) for k in docs])
        con.execute("CREATE TABLE results(r)")
        con.execute("INSERT INTO results SELECT feox_patch('kv', k, "
                    "'[{\"op\":\"add\",\"path\":\"/m\",\"value\":1}]') IS NOT NULL FROM ks")
        self.assertEqual(con.execute("SELECT count(*), sum(r) FROM results").fetchone(), (N, N))
        self.assertWithinBudget(con, "after a statement of patches")
        for k in list(docs)[::97]:
            self.assertEqual(json.loads(
                con.execute("SELECT value FROM kv WHERE key = ?", (k,)).fetchone()[0])["m"], 1)
            docs[k] = json.dumps(dict(json.loads(docs[k]), m=1))
        # an UPDATE that reads every value (most of them from the table) and rewrites it
        con.execute("UPDATE kv SET value = value || '!' WHERE key GLOB 'd*'")
        self.assertWithinBudget(con, "after UPDATE")
        rows = dict(con.execute("SELECT key, value FROM kv WHERE key GLOB 'd*'"))
        self.assertEqual(len(rows), N)
        for k, v in rows.items():
            self.assertTrue(v.endswith("!"), k)
            self.assertEqual(json.loads(v[:-1])["n"], json.loads(docs[k])["n"], k)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        con.close()

    def test_rollback_brings_back_values_that_left_memory(self):
        con = connect(self.db)
        expected = self.fill(con)
        con.execute("BEGIN")
        for i in range(N):
            con.execute("UPDATE kv SET value = ? WHERE key = ?", (value_of(i, 2), f"k{i:05d}"))
        con.execute("DELETE FROM kv WHERE key < 'k00100'")
        con.execute("INSERT INTO kv(key, value) VALUES ('new', ?)", (value_of(-1),))
        self.assertWithinBudget(con, "inside the transaction")
        con.execute("SAVEPOINT s")
        con.execute("UPDATE kv SET value = x'00' WHERE key >= 'k01900'")
        con.execute("ROLLBACK TO s")
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'k01950'").fetchone(),
                         (value_of(1950, 2),))
        con.execute("ROLLBACK")
        self.assertWithinBudget(con, "after ROLLBACK")
        self.assertAllValues(con, expected, "after ROLLBACK")
        self.assertWithinBudget(con, "after ROLLBACK, everything read")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        fresh = connect(self.db)
        self.assertAllValues(fresh, expected, "a fresh connection")
        fresh.close()
        con.close()


class ValuesReadOnlyWhenAskedTest(TempDirTestCase):
    """A scan reads a value that left memory back from <t>_data only when the statement asks for
    that value: count(*), SELECT key, key ranges and metadata read none (feox_stats' disk_reads,
    the rows the backend looked up, stays put), and a value whose read-back fails fails only the
    statements that ask for it, with the backend's own code and message naming the table."""

    KEYS = 200

    def setUp(self):
        super().setUp()
        self.db = self.path("cold.db")
        con = connect(self.db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(max_memory=200000)")
        con.execute("BEGIN")
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)",
                        [(f"k{i:04d}", bytes([i]) * 5000) for i in range(self.KEYS)])
        con.execute("COMMIT")
        con.close()
        self.con = connect(self.db)  # its cache loads 1 MB of values within 200 KB: most cold
        self.addCleanup(self.con.close)

    def disk_reads(self):
        return json.loads(self.con.execute("SELECT feox_stats('kv')").fetchone()[0])["disk_reads"]

    KEY_ONLY = [("SELECT count(*) FROM kv", [(KEYS,)]),
                ("SELECT count(*) FROM kv WHERE key < 'k0100'", [(100,)]),
                ("SELECT key FROM kv WHERE key >= 'k0198'", [("k0198",), ("k0199",)]),
                ("SELECT key FROM kv WHERE key > 'k0001' ORDER BY key DESC LIMIT 1", [("k0199",)]),
                ("SELECT key, ts > 0, ttl FROM kv WHERE key BETWEEN 'k0150' AND 'k0150'",
                 [("k0150", 1, None)])]

    def assertKeyOnlyStatementsWork(self):
        for sql, want in self.KEY_ONLY:
            self.assertEqual(self.con.execute(sql).fetchall(), want, sql)
        self.assertEqual(len(self.con.execute("SELECT key FROM kv").fetchall()), self.KEYS)

    def test_statements_that_ask_no_value_read_none(self):
        self.con.execute("SELECT count(*) FROM kv").fetchall()  # the cache is loaded
        before = self.disk_reads()
        self.assertKeyOnlyStatementsWork()
        self.assertEqual(self.disk_reads(), before)
        # asked for, the values are read back (exactly)
        got = self.con.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
        self.assertEqual(got, [(f"k{i:04d}", bytes([i]) * 5000) for i in range(self.KEYS)])
        self.assertGreater(self.disk_reads(), before + self.KEYS // 2)

    def test_a_failing_read_back_fails_only_the_statements_asking_for_it(self):
        self.con.execute("SELECT count(*) FROM kv").fetchall()
        # a hand edit (no change feed row) shortens every stored value: reading one back fails
        ed = sqlite3.connect(self.db, isolation_level=None)
        ed.execute("UPDATE kv_data SET value = x'00'")
        ed.close()
        self.assertKeyOnlyStatementsWork()
        for sql in ("SELECT key, value FROM kv", "SELECT length(value) FROM kv WHERE key >= 'k0000'",
                    "SELECT value FROM kv ORDER BY key DESC"):
            with self.assertRaises(sqlite3.DatabaseError) as cm:
                self.con.execute(sql).fetchall()
            self.assertEqual(cm.exception.sqlite_errorname, "SQLITE_CORRUPT", sql)
            self.assertEqual(str(cm.exception),
                             "feox: kv: a value's length differs from the cached record's", sql)
        # point reads of a value that left memory say the same (k0150: past the resident half)
        for sql in ("SELECT value FROM kv WHERE key = 'k0150'",
                    "SELECT value FROM kv WHERE key IN ('k0150', 'k0151')",
                    "SELECT feox_incr('kv', 'k0150', 1)",
                    # a compare-and-swap whose expected value has the stored type and length
                    # (one of another type or length fails without reading the value back)
                    "SELECT feox_cas('kv', 'k0150', zeroblob(5000), 2)",
                    # writes that keep the value read it back too (and say the same)
                    "UPDATE kv SET ttl = 100 WHERE key = 'k0150'",
                    "UPDATE kv SET key = 'moved' WHERE key = 'k0150'"):
            with self.assertRaises(sqlite3.DatabaseError) as cm:
                self.con.execute(sql).fetchall()
            self.assertEqual((cm.exception.sqlite_errorname, str(cm.exception)),
                             ("SQLITE_CORRUPT",
                              "feox: kv: a value's length differs from the cached record's"), sql)
        # an expected value of another type cannot match: answered without reading the value
        self.assertEqual(self.con.execute("SELECT feox_cas('kv', 'k0150', 1, 2)").fetchall(),
                         [(0,)])
        self.assertKeyOnlyStatementsWork()  # the failures left nothing behind


if __name__ == "__main__":
    unittest.main()
