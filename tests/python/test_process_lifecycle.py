"""No acknowledged feox write is silently dropped across the process lifecycle (issue 11 items 9-10).

- A Python process that commits and then exits without closing its connection (normal exit,
  sys.exit, an uncaught exception) leaves every committed row in the store file.
- The sqlite3 shell stopping on a later SQL error (-bail) leaves every committed row.
- After os.fork(), a child's feox_incr on what it inherited is never acknowledged and lost: it
  fails (or, if it succeeds, it lands in the file), and the parent's counter stays exact.
- A process that loads and unloads the extension again and again (sqlite3_close unloads what the
  connection loaded), each time closing tables large enough that their memory goes back on the
  engine's background thread (engine/store/store_reaper.c) and whose store file reopens from its
  index snapshot, ends cleanly and keeps every row.
"""
import ctypes
import os
import sqlite3
import subprocess
import sys
import textwrap

from feoxtest import EXT, SQLITE3_SHELL, TempDirTestCase, connect

ROWS = 1000

# A child that commits ROWS rows into a table with an explicit store file, then ends without
# closing the connection; {ending} says how.
WRITER = textwrap.dedent("""
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.enable_load_extension(True)
    con.load_extension(sys.argv[2])
    con.execute("CREATE VIRTUAL TABLE kv USING feox(path='x.feox')")
    con.execute("BEGIN")
    con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)",
                    (("key-%d" % i, "value-%d" % i) for i in range({rows})))
    con.execute("COMMIT")
    {ending}
""")

# Python closes a connection it deallocates at interpreter exit, so each ending also leaks one
# reference to it, as a reference cycle or a C extension can: then nothing closes it, as with
# Node's process.exit() or a C program returning from main().
LEAK = "import ctypes; ctypes.pythonapi.Py_IncRef(ctypes.py_object(con))"
ENDINGS = {
    "falls off the end": "pass",
    "sys.exit": "sys.exit(0)",
    "uncaught exception": "raise RuntimeError('the script fails after its commit')",
    "leaked, falls off the end": LEAK,
    "leaked, sys.exit": LEAK + "; sys.exit(0)",
    "leaked, uncaught exception": LEAK + "; raise RuntimeError('the script fails')",
}


# Three rounds of: load feox, fill a memory table and a store file past 65,536 keys, close the
# connection (the library is unloaded while the store's memory is being freed); then a fourth
# connection reads the file (from its index snapshot) and exits with a table still open.
UNLOADER = textwrap.dedent("""
    import sqlite3, sys
    db, ext, store = sys.argv[1], sys.argv[2], sys.argv[3]
    FILL = ("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 69999) "
            "INSERT OR REPLACE INTO {table}(key, value) SELECT printf('k%07d', i), i + {round} FROM n")
    def connect():
        con = sqlite3.connect(db, isolation_level=None)
        con.enable_load_extension(True)
        con.load_extension(ext)
        return con
    for round in range(3):
        con = connect()
        con.execute("CREATE VIRTUAL TABLE temp.m USING feox")
        con.execute(FILL.format(table="temp.m", round=round))
        con.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS f USING feox(path='{store}')")
        con.execute(FILL.format(table="f", round=round))
        assert con.execute("SELECT count(*), sum(value) FROM temp.m").fetchone() == (70000, 2449965000 + 70000 * round)
        assert con.execute("SELECT value FROM f WHERE key = 'k0000042'").fetchone() == (42 + round,)
        con.close()
    con = connect()
    assert con.execute("SELECT value FROM f WHERE key = 'k0069999'").fetchone() == (69999 + 2,)
    assert con.execute("SELECT count(*) FROM f").fetchone() == (70000,)
    con.execute("CREATE VIRTUAL TABLE temp.m USING feox")
    con.execute(FILL.format(table="temp.m", round=0))
    print("done")
""")


class UnloadTest(TempDirTestCase):
    def test_unload_while_large_stores_are_freed(self):
        for run in range(2):
            with self.subTest(run=run):
                db = self.path(f"unload-{run}.db")
                proc = subprocess.run([sys.executable, "-c", UNLOADER, db, EXT,
                                       self.path(f"unload-{run}.feox")],
                                      capture_output=True, text=True, timeout=300)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertEqual(proc.stdout.strip(), "done")
                con = connect(db)
                try:
                    self.assertEqual(con.execute("SELECT count(*), sum(value) FROM f").fetchone(),
                                     (70000, 2449965000 + 2 * 70000))
                finally:
                    con.close()


class ExitWithoutCloseTest(TempDirTestCase):
    def fresh_db(self, name):
        """app.db in a new directory of its own (the table's x.feox lands beside it)."""
        os.mkdir(self.path(name))
        return os.path.join(self.path(name), "app.db")

    def count_rows(self, db):
        con = connect(db)
        try:
            rows = dict(con.execute("SELECT key, value FROM kv"))
        finally:
            con.close()
        self.assertEqual(len(rows), ROWS)
        for i in range(0, ROWS, 97):
            self.assertEqual(rows["key-%d" % i], "value-%d" % i)

    def test_python_exit_without_close_keeps_committed_rows(self):
        for index, (ending, code) in enumerate(ENDINGS.items()):
            for run in range(10):
                with self.subTest(ending=ending, run=run):
                    db = self.fresh_db("exit-%d-%d" % (index, run))
                    script = WRITER.format(rows=ROWS, ending=code)
                    proc = subprocess.run([sys.executable, "-c", script, db, EXT],
                                          capture_output=True, text=True, timeout=120)
                    if ending.endswith("uncaught exception"):
                        self.assertNotEqual(proc.returncode, 0)
                        self.assertIn("RuntimeError", proc.stderr)
                    else:
                        self.assertEqual(proc.returncode, 0, proc.stderr)
                    self.count_rows(db)

    def test_shell_bail_keeps_committed_rows(self):
        for run in range(10):
            with self.subTest(run=run):
                db = self.fresh_db("shell-%d" % run)
                sql = textwrap.dedent("""
                    CREATE VIRTUAL TABLE kv USING feox(path='x.feox');
                    BEGIN;
                    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
                    INSERT INTO kv(key, value) SELECT 'key-' || i, 'value-' || i FROM n;
                    COMMIT;
                    SELECT * FROM no_such_table;
                    SELECT 'never reached';
                """ % (ROWS - 1))
                # As arguments: on the error the shell returns from main() without closing
                # the database (read from stdin, it would close it first).
                proc = subprocess.run([SQLITE3_SHELL, "-bail", "-cmd", ".load " + EXT, db, sql],
                                      capture_output=True, text=True, timeout=120)
                self.assertNotEqual(proc.returncode, 0)
                self.assertIn("no such table", proc.stderr)
                self.assertNotIn("never reached", proc.stdout)
                self.count_rows(db)


class ForkTest(TempDirTestCase):
    def counter(self, con):
        return con.execute("SELECT value FROM kv WHERE key = 'hits'").fetchone()[0]

    def test_child_incr_is_never_acknowledged_and_lost(self):
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='x.feox')")
        for _ in range(10):
            con.execute("SELECT feox_incr('kv', 'hits', 1)")
        children = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                # The child: every attempt must fail while the parent holds the store. It ends
                # through the C library's exit(), so the engine's exit handler runs here too
                # (sys.exit would be caught by unittest and run the other tests in the child).
                acked = 0
                try:
                    for _ in range(100):
                        try:
                            con.execute("SELECT feox_incr('kv', 'hits', 1)").fetchone()
                            acked += 1
                        except sqlite3.Error:
                            pass
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    ctypes.CDLL(None).exit(1 if acked else 0)
            children.append(pid)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            self.assertTrue(os.WIFEXITED(status), "child ended by a signal: %r" % status)
            self.assertEqual(os.WEXITSTATUS(status), 0,
                             "a child's feox_incr was acknowledged while the parent holds "
                             "the store: it cannot reach the file")
        # The parent is unaffected: its store works, and its counter is exact.
        self.assertEqual(self.counter(con), 10)
        for _ in range(10):
            con.execute("SELECT feox_incr('kv', 'hits', 1)")
        self.assertEqual(self.counter(con), 20)
        con.close()
        con = connect(db)
        try:
            self.assertEqual(self.counter(con), 20)
        finally:
            con.close()


if __name__ == "__main__":
    import unittest
    unittest.main()
