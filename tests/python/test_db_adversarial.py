"""Adversarial checks of tables in the database (and, where the same engine path serves them, store
files), each kept because it once caught a bug:

  - overwriting a key when max_memory is reached: the eviction that makes room must not pick the
    very version being replaced (it was made cold and retired by the evictor, then retired again
    by the writer: a use-after-free that crashed the process within a few hundred writes);
  - a seeded random differential: several connections of one process interleave transactions,
    savepoints, failing statements, range DML and the writing functions on a feox table and on a
    native mirror table in the same transactions; every connection's view of both must agree at
    every step (read committed both ways), and feox_check must pass. Run with and without a small
    max_memory (values up to 70 KB; with 100 KB this crashed on the eviction bug above, seed 201).
    The seed is printed on failure.
  - shadow tables edited by hand (defensive mode off) into rows no write makes: an empty key, a
    value over 4 MiB, a seq at the end of its range (the next write overflowed it):
    every statement, feox_check included, fails with SQLITE_CORRUPT and a message naming the
    damaged shadow table, and the table works again once the row is repaired.

Crashing scenarios run in a child process, so a crash is reported as a failed test.
"""
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import unittest

from feoxtest import EXT, TempDirTestCase, connect

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

OVERWRITE_AT_BUDGET = textwrap.dedent("""
    import json, random, sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.enable_load_extension(True)
    con.load_extension(sys.argv[2])
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE VIRTUAL TABLE kv USING feox(" + sys.argv[3] + ")")
    rng = random.Random(1)
    for i in range(300):
        a, b = rng.randbytes(45000), rng.randbytes(45000)
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', ?), ('b', ?)", (a, b))
        # 'a' grows past the budget: room must come from 'b', never from the 'a' being replaced
        a = rng.randbytes(60000)
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', ?)", (a,))
        got = dict(con.execute("SELECT key, value FROM kv"))
        assert got == {"a": a, "b": b}, i
    stats = json.loads(con.execute("SELECT feox_stats('kv')").fetchone()[0])
    assert stats["memory_usage"] <= 100000, stats
    print(con.execute("SELECT feox_check('kv')").fetchone()[0])
""")


class OverwriteAtBudgetTest(TempDirTestCase):
    def run_child(self, options):
        proc = subprocess.run([PY, "-c", OVERWRITE_AT_BUDGET, self.path("app.db"), EXT, options],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, f"{options}: {proc.stderr[-2000:]}")
        self.assertEqual(proc.stdout.strip(), "ok")

    def test_in_the_database(self):
        self.run_child("max_memory=100000")

    def test_store_file(self):
        self.run_child(f"path='{self.path('kv.feox')}', max_memory=100000")


class Differential:
    """One seeded run: connections interleave random operations, each applied to kv (feox) and m
    (native) in one savepoint, so both must succeed or fail together and always read equal."""

    NKEYS = 60

    def __init__(self, test, db, seed, connections=4):
        self.test, self.db, self.seed = test, db, seed
        self.rng = random.Random(seed)
        self.cons = [self.connect() for _ in range(connections)]

    def connect(self):
        return connect(self.db, timeout=0.0)

    def fail(self, step, what):
        self.test.fail(f"seed {self.seed} step {step}: {what}")

    def key(self):
        return "k%03d" % self.rng.randrange(self.NKEYS)

    def value(self):
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return rng.randrange(-5, 100)
        if r < 0.45:
            return rng.random() * 100
        if r < 0.6:
            return "t" * rng.randrange(0, 50)
        if r < 0.75:
            return rng.randbytes(rng.randrange(0, 20))
        if r < 0.8:
            return None
        return rng.randbytes(rng.choice([3000, 30000, 70000]))

    @staticmethod
    def views(con):
        feox = con.execute("SELECT key, value, typeof(value), ttl IS NOT NULL FROM kv "
                           "ORDER BY key").fetchall()
        mirror = con.execute("SELECT key, value, typeof(value), has_ttl FROM m "
                             "ORDER BY key").fetchall()
        return feox, mirror

    def both(self, step, con, feox_sql, mirror_sql, args, mirror_args=None):
        con.execute("SAVEPOINT op")
        errors = []
        for sql, a in ((feox_sql, args), (mirror_sql, args if mirror_args is None else mirror_args)):
            try:
                con.execute(sql, a)
                errors.append(None)
            except sqlite3.Error as e:
                errors.append(e)
                if not con.in_transaction:
                    # SQLite rolled the whole transaction back (SQLITE_FULL: over max_memory),
                    # the native table's changes with it
                    self.test.assertIn("memory limit exceeded", str(e), f"seed {self.seed}")
                    return
        tolerated = any(e is not None and ("locked" in str(e) or "memory limit" in str(e))
                        for e in errors)
        if not tolerated and (errors[0] is None) != (errors[1] is None):
            self.fail(step, f"{feox_sql}: feox {errors[0]!r}, native {errors[1]!r}")
        if errors[0] is not None or errors[1] is not None:
            con.execute("ROLLBACK TO op")
        con.execute("RELEASE op")

    def function_call(self, con, sql, args, mirror):
        """A writing function in a savepoint; mirror(result) repeats its effect on m."""
        con.execute("SAVEPOINT op")
        try:
            mirror(con.execute(sql, args).fetchone()[0])
            con.execute("RELEASE op")
        except sqlite3.Error:
            if con.in_transaction:  # else SQLite rolled it all back (over max_memory)
                con.execute("ROLLBACK TO op")
                con.execute("RELEASE op")

    def step(self, step):
        rng = self.rng
        i = rng.randrange(len(self.cons))
        con = self.cons[i]
        r = rng.random()
        if r < 0.06:
            if not con.in_transaction:
                con.execute(rng.choice(["BEGIN", "BEGIN IMMEDIATE"]))
        elif r < 0.12:
            if con.in_transaction:
                con.execute("COMMIT")
        elif r < 0.15:
            if con.in_transaction:
                con.execute("ROLLBACK")
        elif r < 0.18:
            con.execute("SAVEPOINT s1")
            if rng.random() < 0.5:
                con.execute("ROLLBACK TO s1")
            if rng.random() < 0.5:
                con.execute("RELEASE s1")
        elif r < 0.20:
            try:
                con.execute("ROLLBACK TO s1")
            except sqlite3.OperationalError:
                pass  # no such savepoint
        elif r < 0.35:
            k, v, ttl = self.key(), self.value(), rng.choice([None, None, 1000])
            self.both(step, con, "INSERT OR REPLACE INTO kv(key, value, ttl) VALUES (?, ?, ?)",
                      "INSERT OR REPLACE INTO m VALUES (?, ?, ?)", (k, v, ttl),
                      (k, v, ttl is not None))
        elif r < 0.42:
            rows = [(self.key(), self.value()) for _ in range(rng.randrange(1, 5))]
            flat = [x for row in rows for x in row]
            verb = rng.choice(["INSERT", "INSERT OR IGNORE", "INSERT OR REPLACE"])
            self.both(step, con,
                      f"{verb} INTO kv(key, value) VALUES " + ",".join("(?, ?)" for _ in rows),
                      f"{verb} INTO m VALUES " + ",".join("(?, ?, 0)" for _ in rows), flat)
        elif r < 0.50:
            k, v = self.key(), self.value()
            self.both(step, con, "UPDATE kv SET value = ? WHERE key = ?",
                      "UPDATE m SET value = ? WHERE key = ?", (v, k))
        elif r < 0.53:
            self.both(step, con, "UPDATE kv SET key = ? WHERE key = ?",
                      "UPDATE m SET key = ? WHERE key = ?", (self.key(), self.key()))
        elif r < 0.58:
            lo, hi = sorted([self.key(), self.key()])
            self.both(step, con, "DELETE FROM kv WHERE key BETWEEN ? AND ?",
                      "DELETE FROM m WHERE key BETWEEN ? AND ?", (lo, hi))
        elif r < 0.62:
            self.both(step, con, "DELETE FROM kv WHERE key = ?", "DELETE FROM m WHERE key = ?",
                      (self.key(),))
        elif r < 0.66:
            k = self.key()
            self.both(step, con, "UPDATE kv SET value = ? WHERE key >= ? AND key < ?",
                      "UPDATE m SET value = ? WHERE key >= ? AND key < ?",
                      (rng.randrange(1, 5), k, k + "z"))
        elif r < 0.72:
            k = self.key()

            def mirror_incr(result):
                if con.execute("SELECT 1 FROM m WHERE key = ?", (k,)).fetchone():
                    con.execute("UPDATE m SET value = ? WHERE key = ?", (result, k))
                else:
                    con.execute("INSERT INTO m VALUES (?, ?, 0)", (k, result))
            self.function_call(con, "SELECT feox_incr('kv', ?, ?)", (k, rng.randrange(-3, 4)),
                               mirror_incr)
        elif r < 0.76:
            k, new = self.key(), self.value()
            current = con.execute("SELECT value FROM m WHERE key = ?", (k,)).fetchone()
            expected = current[0] if current and rng.random() < 0.7 else self.value()

            def mirror_cas(swapped):
                if swapped:
                    con.execute("UPDATE m SET value = ? WHERE key = ?", (new, k))
            self.function_call(con, "SELECT feox_cas('kv', ?, ?, ?)", (k, expected, new),
                               mirror_cas)
        elif r < 0.80:
            feox, mirror = self.views(con)
            if feox != mirror:
                self.fail(step, f"connection {i} reads differently: feox only "
                          f"{sorted(set(feox) - set(mirror))[:3]!r}, native only "
                          f"{sorted(set(mirror) - set(feox))[:3]!r}")
        elif r < 0.81:
            con.close()
            self.cons[i] = self.connect()
        elif r < 0.83:
            check = con.execute("SELECT feox_check('kv')").fetchone()[0]
            if check != "ok":
                self.fail(step, f"feox_check: {check}")
        elif r < 0.86:
            k = self.key()
            a = con.execute("SELECT count(*) FROM kv WHERE key > ?", (k,)).fetchone()
            b = con.execute("SELECT count(*) FROM m WHERE key > ?", (k,)).fetchone()
            if a != b:
                self.fail(step, f"count(*) after {k}: feox {a}, native {b}")
        else:
            k = self.key()
            a = con.execute("SELECT value, typeof(value) FROM kv WHERE key = ?", (k,)).fetchall()
            b = con.execute("SELECT value, typeof(value) FROM m WHERE key = ?", (k,)).fetchall()
            if a != b:
                self.fail(step, f"connection {i} reads {k}: feox {a!r}, native {b!r}")

    def run(self, steps):
        for step in range(steps):
            try:
                self.step(step)
            except sqlite3.OperationalError as e:
                if "locked" not in str(e):
                    raise AssertionError(f"seed {self.seed} step {step}: {e}") from e
        for con in self.cons:
            if con.in_transaction:
                con.execute("COMMIT")
        for i, con in enumerate(self.cons):
            feox, mirror = self.views(con)
            self.test.assertEqual(feox, mirror, f"seed {self.seed}: connection {i} at the end")
            self.test.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
            con.close()


class DifferentialTest(TempDirTestCase):
    def run_seeds(self, options, seeds, steps=2000):
        for seed in seeds:
            db = self.path(f"diff-{seed}.db")
            con = connect(db)
            con.execute("PRAGMA journal_mode = WAL")
            con.execute(f"CREATE VIRTUAL TABLE kv USING feox{options}")
            con.execute("CREATE TABLE m(key TEXT PRIMARY KEY, value, has_ttl)")
            con.close()
            with self.subTest(options=options, seed=seed):
                Differential(self, db, seed).run(steps)

    def test_connections_interleaved(self):
        self.run_seeds("", range(1, 6))

    def test_connections_interleaved_past_max_memory(self):
        self.run_seeds("(max_memory=300000)", range(100, 103))
        # values up to 70 KB in 100 KB: writes evict all the time, some fail (the whole
        # transaction is rolled back, as SQLite does for SQLITE_FULL)
        self.run_seeds("(max_memory=100000)", range(200, 206))


class DamagedShadowTableTest(TempDirTestCase):
    # (edit, what a statement says, what feox_check reports, repair)
    EDITS = [
        ("UPDATE kv_data SET key = X'' WHERE key = CAST('k1' AS BLOB)",
         "a row of kv_data is damaged: a key of 0 bytes",
         "kv_data: a key is not a BLOB of 1 to 102400 bytes (x'')",
         "UPDATE kv_data SET key = CAST('k1' AS BLOB) WHERE key = X''"),
        ("UPDATE kv_data SET value = zeroblob(4194305) WHERE key = CAST('k1' AS BLOB)",
         "a row of kv_data is damaged: a value of 4194305 bytes",
         "kv_data: key x'6b31': value longer than the largest feox value",
         "UPDATE kv_data SET value = 1 WHERE key = CAST('k1' AS BLOB)"),
        ("UPDATE kv_log SET seq = 9223372036854775807 WHERE seq = (SELECT max(seq) FROM kv_log)",
         "the seq in kv_log or kv_meta is damaged",
         "the seq in kv_log or kv_meta is damaged (out of range)",
         "UPDATE kv_log SET seq = (SELECT max(seq) FROM kv_data) WHERE seq = 9223372036854775807"),
        ("UPDATE kv_meta SET value = 7 WHERE name = 'format'",
         "the shadow tables are not format 1",
         "the shadow tables are not format 1",
         "UPDATE kv_meta SET value = 1 WHERE name = 'format'"),
    ]
    STATEMENTS = ["SELECT count(*) FROM kv", "SELECT value FROM kv WHERE key = 'k2'",
                  "INSERT INTO kv(key, value) VALUES ('new', 1)", "SELECT feox_incr('kv', 'c', 1)"]

    def make(self, name, edit):
        path = self.path(name)
        con = connect(path)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)", [(f"k{i}", i) for i in range(5)])
        con.execute(edit)  # python's sqlite3 leaves SQLITE_DBCONFIG_DEFENSIVE off
        con.close()
        return path

    def test_rows_no_write_makes_are_named_and_refused(self):
        for n, (edit, said, found, repair) in enumerate(self.EDITS):
            with self.subTest(edit=edit):
                path = self.make(f"d{n}.db", edit)
                con = connect(path)  # the first use connects the table: damage must not stop that
                self.assertIn(found, con.execute("SELECT feox_check('kv')").fetchone()[0])
                for sql in self.STATEMENTS:
                    with self.assertRaises(sqlite3.DatabaseError) as cm:
                        con.execute(sql).fetchall()
                    self.assertIn(f"feox: kv: {said}", str(cm.exception), sql)
                    self.assertIn(cm.exception.sqlite_errorname,
                                  ("SQLITE_CORRUPT", "SQLITE_NOTADB"), sql)
                # repaired under the same connection: the table works again at once
                con.execute(repair)
                self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
                self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'k2'").fetchone(),
                                 (2,))
                con.execute("INSERT INTO kv(key, value) VALUES ('new', 1)")
                self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 6)
                con.close()
                con = connect(path)
                self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
                self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 6)
                con.close()

    def test_a_repair_rolled_back_brings_the_damage_back(self):
        # the cache is loaded inside the transaction that repairs the table; when that
        # transaction (or its savepoint) rolls back, the damage is back and so is the refusal
        edit, said, found, repair = self.EDITS[0]
        for n, (first_use_before, end) in enumerate([(True, "ROLLBACK"), (False, "ROLLBACK"),
                                                      (True, "ROLLBACK TO s"),
                                                      (False, "ROLLBACK TO s"),
                                                      (True, "COMMIT")]):
            with self.subTest(first_use_before=first_use_before, end=end):
                path = self.make(f"txn{n}.db", edit)
                con = connect(path)
                con.isolation_level = None
                if first_use_before:
                    with self.assertRaises(sqlite3.DatabaseError):
                        con.execute("SELECT count(*) FROM kv").fetchall()
                con.execute("BEGIN")
                con.execute("SAVEPOINT s")
                con.execute(repair)
                con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
                self.assertEqual(con.execute("SELECT feox_incr('kv', 'k2', 10)").fetchone(), (12,))
                self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (6,))
                con.execute(end)
                if end == "COMMIT":
                    self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                                     [("a", 1), ("k0", 0), ("k1", 1), ("k2", 12), ("k3", 3), ("k4", 4)])
                    self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
                else:
                    with self.assertRaises(sqlite3.DatabaseError) as cm:
                        con.execute("SELECT count(*) FROM kv").fetchall()
                    self.assertIn(f"feox: kv: {said}", str(cm.exception))
                    self.assertIn(found, con.execute("SELECT feox_check('kv')").fetchone()[0])
                    if end == "ROLLBACK TO s":
                        con.execute("ROLLBACK")
                    con.execute(repair)
                    self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                                     [("k0", 0), ("k1", 1), ("k2", 2), ("k3", 3), ("k4", 4)])
                    self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
                con.close()

    def test_a_damaged_table_can_be_dropped(self):
        for n, (edit, said, found, repair) in enumerate(self.EDITS):
            with self.subTest(edit=edit):
                path = self.make(f"drop{n}.db", edit)
                con = connect(path)
                con.isolation_level = None
                con.execute("BEGIN")
                con.execute("DROP TABLE kv")
                con.execute("ROLLBACK")  # the table and its damage are back
                self.assertIn(found, con.execute("SELECT feox_check('kv')").fetchone()[0])
                con.execute("DROP TABLE kv")
                self.assertEqual(con.execute("SELECT name FROM sqlite_master").fetchall(), [])
                con.close()


if __name__ == "__main__":
    unittest.main()
