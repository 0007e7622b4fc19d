"""The DML forms of the writing functions (issue 14, item 3), in every mode.

A statement replicator (rqlite) replicates INSERT / UPDATE / DELETE, not a SELECT, and
`SELECT feox_incr(...)` is a SELECT (sqlite3_stmt_readonly says so). So each mutation has a DML
form, and they are checked here in database mode, in clock='log', with a store file (path=) and
in a memory table:

  counter     UPDATE kv SET value = value + ? WHERE key = ?          changes() 1, INTEGER result
  CAS         UPDATE kv SET value = ? WHERE key = ? AND value = ?     changes() 1 or 0
  JSON patch  UPDATE kv SET value = feox_json_patch(value, ?) WHERE key = ?
              (a failing patch is an error and changes nothing)

Atomicity: SQLite takes the database's write lock when an UPDATE starts, before it reads the row,
so another connection cannot write between the read of `value` and the write of `value + ?`.
Checked with several processes (database mode) and several threads with their own connections
(store file) adding concurrently: the total is exact, and a CAS retry loop loses no update.
"""
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import unittest

from feoxtest import EXT, TempDirTestCase, connect

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
MODES = {
    "database": ("database.db", "feox"),
    "clock_log": ("app.db", "feox(clock='log')"),
    "store_file": ("store.db", "feox(path='kv.feox')"),
    "memory": (":memory:", "feox"),
}


class DmlFormsTestCase(TempDirTestCase):
    def open(self, mode):
        db, module = MODES[mode]
        if db != ":memory:":
            db = self.path(db)
            for f in os.listdir(self.dir):  # each subtest starts from a fresh database
                os.remove(self.path(f))
        con = connect(db)
        con.execute(f"CREATE VIRTUAL TABLE kv USING {module}")
        if mode == "clock_log":
            con.execute("INSERT INTO kv(kv, ts) VALUES('clock', 1767225600000000000)")
        return con

    def value(self, con, key):
        return con.execute("SELECT value, typeof(value) FROM kv WHERE key = ?", (key,)).fetchone()

    def test_counter(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                con = self.open(mode)
                con.execute("INSERT INTO kv(key, value, ttl) VALUES('c', 40, 3600)")
                ts0 = con.execute("SELECT ts FROM kv WHERE key = 'c'").fetchone()[0]
                cur = con.execute("UPDATE kv SET value = value + ? WHERE key = ?", (2, "c"))
                self.assertEqual(cur.rowcount, 1)
                self.assertEqual(self.value(con, "c"), (42, "integer"))
                ts1, ttl = con.execute("SELECT ts, ttl FROM kv WHERE key = 'c'").fetchone()
                self.assertGreater(ts1, ts0)  # a new version, automatic ts
                self.assertGreater(ttl, 3500)  # the ttl is kept
                con.execute("UPDATE kv SET value = value + ? WHERE key = ?", (-50, "c"))
                self.assertEqual(self.value(con, "c"), (-8, "integer"))
                # a missing key: nothing happens; create-then-add in one transaction
                cur = con.execute("UPDATE kv SET value = value + 1 WHERE key = 'new'")
                self.assertEqual(cur.rowcount, 0)
                con.execute("BEGIN")
                con.execute("INSERT OR IGNORE INTO kv(key, value) VALUES('new', 0)")
                con.execute("UPDATE kv SET value = value + 7 WHERE key = 'new'")
                con.execute("COMMIT")
                self.assertEqual(self.value(con, "new"), (7, "integer"))
                con.close()

    def test_compare_and_swap(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                con = self.open(mode)
                con.execute("INSERT INTO kv(key, value) VALUES('s', 'idle')")
                cas = "UPDATE kv SET value = ? WHERE key = ? AND value = ?"
                self.assertEqual(con.execute(cas, ("busy", "s", "idle")).rowcount, 1)
                self.assertEqual(con.execute(cas, ("busy2", "s", "idle")).rowcount, 0)
                self.assertEqual(self.value(con, "s"), ("busy", "text"))
                self.assertEqual(con.execute(cas, ("x", "missing", "idle")).rowcount, 0)
                # SQL comparison: INTEGER 5 does not equal TEXT '5' (no affinity on value)
                con.execute("INSERT INTO kv(key, value) VALUES('n', 5)")
                self.assertEqual(con.execute(cas, (6, "n", "5")).rowcount, 0)
                self.assertEqual(con.execute(cas, (6, "n", 5)).rowcount, 1)
                self.assertEqual(con.execute(cas, (b"\x01", "n", 6)).rowcount, 1)
                self.assertEqual(self.value(con, "n"), (b"\x01", "blob"))
                con.close()

    def test_json_patch(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                con = self.open(mode)
                con.execute("""INSERT INTO kv(key, value) VALUES('d', '{"n":1,"big":9007199254740993}')""")
                upd = "UPDATE kv SET value = feox_json_patch(value, ?) WHERE key = ?"
                patch = json.dumps([{"op": "replace", "path": "/n", "value": 2},
                                    {"op": "add", "path": "/tags", "value": ["a"]}])
                self.assertEqual(con.execute(upd, (patch, "d")).rowcount, 1)
                self.assertEqual(self.value(con, "d"),
                                 ('{"n":2,"big":9007199254740993,"tags":["a"]}', "text"))
                # a failing "test" makes the statement fail and change nothing
                con.execute("INSERT INTO kv(key, value) VALUES('e', '{\"n\":1}')")
                failing = json.dumps([{"op": "test", "path": "/n", "value": 5},
                                      {"op": "replace", "path": "/n", "value": 6}])
                with self.assertRaisesRegex(sqlite3.OperationalError,
                                            r"feox_json_patch: operation 0 \(test\): value at /n differs"):
                    con.execute("UPDATE kv SET value = feox_json_patch(value, ?) WHERE key IN ('e', 'd')",
                                (failing,))
                self.assertEqual(self.value(con, "e"), ('{"n":1}', "text"))
                self.assertEqual(self.value(con, "d")[0], '{"n":2,"big":9007199254740993,"tags":["a"]}')
                with self.assertRaisesRegex(sqlite3.OperationalError, "not valid JSON"):
                    con.execute(upd, ("[", "d"))
                con.execute("INSERT INTO kv(key, value) VALUES('bad', 'not json')")
                with self.assertRaisesRegex(sqlite3.OperationalError,
                                            "feox_json_patch: document is not valid JSON"):
                    con.execute(upd, ("[]", "bad"))
                con.close()

    def test_json_patch_is_deterministic_and_innocuous(self):
        con = connect()
        # DETERMINISTIC: usable in an index expression, a CHECK and a generated column
        con.execute("CREATE TABLE t(doc TEXT, "
                    "g TEXT GENERATED ALWAYS AS (feox_json_patch(doc, '[]')), "
                    "CHECK (feox_json_patch(doc, '[]') IS NOT NULL))")
        con.execute("CREATE INDEX t_n ON t(feox_json_patch(doc, '[{\"op\":\"remove\",\"path\":\"/x\"}]'))")
        con.execute("INSERT INTO t(doc) VALUES('{\"x\":1,\"y\":2}')")
        self.assertEqual(con.execute("SELECT g FROM t").fetchone()[0], '{"x":1,"y":2}')
        self.assertIsNone(con.execute("SELECT feox_json_patch(NULL, '[]')").fetchone()[0])

    def test_clock_log_ttl_and_expiry_follow_the_logical_clock(self):
        con = self.open("clock_log")
        t0 = 1767225600000000000
        con.execute("INSERT INTO kv(key, value, ttl) VALUES('s', 1, 10)")
        expires = con.execute("SELECT expires FROM kv_data WHERE key = CAST('s' AS BLOB)").fetchone()[0]
        self.assertEqual(expires, t0 + 10 * 10**9)  # absolute, from the logical clock
        self.assertEqual(con.execute("SELECT ttl, ts FROM kv").fetchone(), (10, t0))
        cas = "UPDATE kv SET value = ? WHERE key = ? AND value = ?"
        con.execute("INSERT INTO kv(kv, ts) VALUES('clock', ?)", (t0 + 11 * 10**9,))
        self.assertEqual(con.execute(cas, (2, "s", 1)).rowcount, 0)  # expired by the clock
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 0)
        self.assertEqual(con.execute("SELECT count(*) FROM kv_data").fetchone()[0], 1)  # not deleted
        # a committing write does not sweep in this mode either: only the 'sweep' command does
        con.execute("INSERT INTO kv(key, value) VALUES('w', 1)")
        self.assertEqual(con.execute("SELECT count(*) FROM kv_data").fetchone()[0], 2)
        con.execute("INSERT INTO kv(kv) VALUES('sweep')")
        self.assertEqual(con.execute("SELECT count(*) FROM kv_data").fetchone()[0], 1)
        con.execute("DELETE FROM kv WHERE key = 'w'")
        self.assertEqual(con.execute("SELECT count(*) FROM kv_data").fetchone()[0], 0)
        # an older clock changes nothing; an automatic ts is max(clock, previous + 1)
        con.execute("INSERT INTO kv(kv, ts) VALUES('clock', 5)")
        con.execute("INSERT INTO kv(key, value, ts) VALUES('f', 1, ?)", (t0 + 100 * 10**9,))
        con.execute("UPDATE kv SET value = value + 1 WHERE key = 'f'")
        self.assertEqual(con.execute("SELECT ts FROM kv WHERE key = 'f'").fetchone()[0],
                         t0 + 100 * 10**9 + 1)
        con.execute("INSERT INTO kv(key, value) VALUES('g', 1)")
        self.assertEqual(con.execute("SELECT ts FROM kv WHERE key = 'g'").fetchone()[0],
                         t0 + 11 * 10**9)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")

    def test_clock_log_rollback_restores_the_clock(self):
        con = self.open("clock_log")
        t0 = 1767225600000000000
        con.execute("INSERT INTO kv(key, value, ttl) VALUES('s', 1, 10)")
        con.execute("BEGIN")
        con.execute("INSERT INTO kv(kv, ts) VALUES('clock', ?)", (t0 + 60 * 10**9,))
        con.execute("INSERT INTO kv(kv) VALUES('sweep')")
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 0)
        con.execute("ROLLBACK")
        self.assertEqual(con.execute("SELECT key, ttl FROM kv").fetchall(), [("s", 10)])
        con.execute("INSERT INTO kv(key, value) VALUES('n', 1)")
        self.assertEqual(con.execute("SELECT ts FROM kv WHERE key = 'n'").fetchone()[0], t0)
        # a statement that fails after its clock row: SQLite undoes the row, feox its cache
        con.execute("BEGIN")
        con.execute("SAVEPOINT a")
        con.execute("INSERT INTO kv(kv, ts) VALUES('clock', ?)", (t0 + 60 * 10**9,))
        con.execute("ROLLBACK TO a")
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES('m', 1)")
        con.execute("COMMIT")
        self.assertEqual(con.execute("SELECT ts FROM kv WHERE key = 'm'").fetchone()[0], t0)
        self.assertEqual(con.execute("SELECT key FROM kv ORDER BY key").fetchall(),
                         [("m",), ("n",), ("s",)])
        # a multi-row INSERT that fails after its clock row, in BEGIN (statement rollback,
        # xRollbackTo) and in autocommit (xRollback): the clock stays where it was
        for in_txn in (True, False):
            if in_txn:
                con.execute("BEGIN")
            with self.assertRaisesRegex(sqlite3.OperationalError, "unknown command 'bogus'"):
                con.execute("INSERT INTO kv(kv, ts) VALUES('clock', ?), ('bogus', NULL)",
                            (t0 + 90 * 10**9,))
            con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES('p', 1)")
            if in_txn:
                con.execute("COMMIT")
            self.assertEqual(con.execute("SELECT ts FROM kv WHERE key = 'p'").fetchone()[0],
                             t0 if in_txn else t0 + 1)  # the second: previous ts + 1
        self.assertEqual(con.execute("SELECT value FROM kv_meta WHERE name = 'clock'").fetchone()[0], t0)
        # another connection sees the clock once it is committed
        other = connect(self.path("app.db"))
        con.execute("INSERT INTO kv(kv, ts) VALUES('clock', ?)", (t0 + 60 * 10**9,))
        self.assertEqual(other.execute("SELECT key FROM kv ORDER BY key").fetchall(),
                         [("m",), ("n",), ("p",)])  # 's' expired by the committed clock
        other.execute("INSERT INTO kv(key, value) VALUES('o', 1)")
        self.assertEqual(other.execute("SELECT ts FROM kv WHERE key = 'o'").fetchone()[0],
                         t0 + 60 * 10**9)

    def test_counter_is_atomic_across_processes(self):
        """Database mode: four processes add 1 a hundred times each, two with the counter form
        and two with a CAS retry loop; not one update is lost."""
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES('n', 0)")
        con.execute("PRAGMA journal_mode = WAL")
        con.close()
        child = textwrap.dedent(f"""
            import sqlite3, sys
            con = sqlite3.connect({db!r}, isolation_level=None, timeout=60)
            con.enable_load_extension(True)
            con.load_extension({EXT!r})
            for _ in range(100):
                if sys.argv[1] == "add":
                    assert con.execute("UPDATE kv SET value = value + 1 WHERE key = 'n'").rowcount == 1
                    continue
                while True:
                    v = con.execute("SELECT value FROM kv WHERE key = 'n'").fetchone()[0]
                    if con.execute("UPDATE kv SET value = ? WHERE key = 'n' AND value = ?",
                                   (v + 1, v)).rowcount == 1:
                        break
        """)
        procs = [subprocess.Popen([PY, "-c", child, kind]) for kind in ("add", "cas", "add", "cas")]
        for p in procs:
            self.assertEqual(p.wait(timeout=300), 0)
        con = connect(db)
        self.assertEqual(con.execute("SELECT value, typeof(value) FROM kv").fetchone(), (400, "integer"))
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")

    def test_counter_is_atomic_across_connections_of_a_store_file(self):
        """Store file (path=): four threads, each with its own connection to the database, add
        concurrently; the database's write lock serializes the UPDATEs."""
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='kv.feox')")
        con.execute("INSERT INTO kv(key, value) VALUES('n', 0)")
        errors = []

        def add():
            try:
                c = connect(db)
                for _ in range(100):
                    c.execute("UPDATE kv SET value = value + 1 WHERE key = 'n'")
                c.close()
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(con.execute("SELECT value FROM kv").fetchone()[0], 400)


if __name__ == "__main__":
    unittest.main()
