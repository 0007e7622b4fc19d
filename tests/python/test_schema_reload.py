"""The SQL functions while another connection changes the schema (a migration by another
process, CREATE TABLE by a sibling connection): the next call on this connection makes SQLite
reload the schema, which disconnects the feox table the call had already found. Each function
must keep working on the table as it is now (feox_incr after a CREATE TABLE elsewhere was a
use-after-free: a segfault)."""
import os
import sqlite3
import subprocess
import sys
import unittest

from feoxtest import EXT, TempDirTestCase, connect

CHILD = r"""
import sys
sys.path.insert(0, {here!r})
from feoxtest import connect
path, opts = sys.argv[1], sys.argv[2]
a, b = connect(path), connect(path)
a.execute("CREATE VIRTUAL TABLE kv USING feox" + opts)
a.execute("INSERT INTO kv VALUES ('doc', '{{\"n\":0}}', NULL, NULL), ('c', 'v0', NULL, NULL)")
for i in range(20):
    assert a.execute("SELECT feox_incr('kv', 'n', 1)").fetchone()[0] == i + 1
    b.execute(f"CREATE TABLE t{{i}}a(x)")
    assert a.execute("SELECT feox_cas('kv', 'c', ?, ?)", (f"v{{i}}", f"v{{i + 1}}")).fetchone()[0] == 1
    b.execute(f"CREATE TABLE t{{i}}b(x)")
    a.execute("SELECT feox_patch('kv', 'doc', ?)",
              (f'[{{{{"op":"replace","path":"/n","value":{{i + 1}}}}}}]',)).fetchone()
    b.execute(f"CREATE TABLE t{{i}}c(x)")
    assert '"len"' in a.execute("SELECT feox_stats('kv')").fetchone()[0]
    b.execute(f"CREATE TABLE t{{i}}d(x)")
    assert a.execute("SELECT feox_check('kv')").fetchone()[0] == "ok"
    b.execute(f"DROP TABLE t{{i}}a")
    a.execute("SELECT feox_sweep('kv')").fetchone()
    b.execute(f"CREATE INDEX t{{i}}i ON t{{i}}b(x)")
    a.execute("SELECT feox_flush('kv')").fetchone()
    b.execute(f"CREATE TABLE t{{i}}e(x)")
    a.execute("BEGIN")
    a.execute("SELECT feox_incr('kv', 'n', 0)").fetchone()
    a.execute("COMMIT")
rows = dict(b.execute("SELECT key, value FROM kv").fetchall())
assert rows == {{"n": 20, "c": "v20", "doc": '{{"n":20}}'}}, rows
print("ok")
"""


class SchemaReloadTest(TempDirTestCase):
    def run_child(self, opts):
        """In a child process: a crash must fail the test, not the test runner."""
        code = CHILD.format(here=os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, FEOX_EXT=EXT)
        out = subprocess.run([sys.executable, "-c", code, self.path("s.db"), opts],
                             capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual((out.returncode, out.stdout.strip()), (0, "ok"), out.stderr[-2000:])

    def test_in_the_database(self):
        self.run_child("")

    def test_store_file(self):
        self.run_child("(path='kv.feox')")

    def test_memory_table(self):
        self.run_child("(path=':memory:')")


class ReplacedUnderAHeldStatementTest(TempDirTestCase):
    """Another connection drops a table in the database and creates another of that name while
    this connection holds a prepared statement on the old one (Python's statement cache does):
    SQLite then keeps the old vtab connected, and the backend's statements, prepared again, read
    the new shadow tables, whose seq may equal or pass the old cache's. The functions and reads
    must see the new table, as for a native table dropped and created again: feox_incr added to
    the dropped table's value (2, written into the new table) and feox_check reported damage."""

    def replace(self, new_rows, journal_mode):
        con, other = connect(self.path("r.db")), connect(self.path("r.db"))
        con.execute(f"PRAGMA journal_mode = {journal_mode}")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("CREATE TABLE nt(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        for t in ("kv", "nt"):
            con.execute(f"INSERT INTO {t}(key, value) VALUES ('a', 1)")
            self.assertEqual(con.execute(f"SELECT key, value FROM {t}").fetchall(), [("a", 1)])
        other.execute("BEGIN")
        other.execute("DROP TABLE kv")
        other.execute("DROP TABLE nt")
        other.execute("CREATE VIRTUAL TABLE kv USING feox")
        other.execute("CREATE TABLE nt(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        for i in range(new_rows):
            for t in ("kv", "nt"):
                other.execute(f"INSERT INTO {t}(key, value) VALUES (?, 0)", (f"new{i}",))
        other.execute("COMMIT")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'a', 1)").fetchone()[0], 1)
        con.execute("INSERT OR REPLACE INTO nt VALUES"
                    " ('a', coalesce((SELECT value + 1 FROM nt WHERE key = 'a'), 1))")
        want = con.execute("SELECT key, value FROM nt ORDER BY key").fetchall()
        self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(), want)
        self.assertEqual(other.execute("SELECT key, value FROM kv ORDER BY key").fetchall(), want)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        con.close()
        other.close()

    def test_the_new_table_at_the_same_seq(self):
        self.replace(1, "wal")

    def test_the_new_table_past_the_old_seq(self):
        self.replace(3, "delete")


class DroppedByAnotherConnectionTest(TempDirTestCase):
    """Another connection drops the table this connection has used: every function then says what
    a native statement says, "no such table", naming the table the call named (feox_check
    reported the table's shadow tables as missing, and feox_stats and feox_flush failed with
    "reading the seq: no such table: main.kv_meta"). A name given with its schema keeps it."""

    FUNCTIONS = ["feox_check({t})", "feox_stats({t})", "feox_flush({t})",
                 "feox_incr({t}, 'a', 1)", "feox_cas({t}, 'a', '1', '2')",
                 "feox_patch({t}, 'a', '[]')", "feox_sweep({t})", "feox_compact({t})"]

    def drop_elsewhere(self, journal_mode, name):
        con, other = connect(self.path("d.db")), connect(self.path("d.db"))
        con.execute(f"PRAGMA journal_mode = {journal_mode}")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', '1')")
        for f in self.FUNCTIONS[:3]:
            con.execute("SELECT " + f.format(t=f"'{name}'")).fetchone()
        other.execute("DROP TABLE kv")
        for f in self.FUNCTIONS:
            with self.subTest(journal_mode=journal_mode, call=f, name=name):
                with self.assertRaises(sqlite3.OperationalError) as e:
                    con.execute("SELECT " + f.format(t=f"'{name}'")).fetchone()
                self.assertEqual(str(e.exception), f"feox: no such table: {name}")
        with self.assertRaises(sqlite3.OperationalError) as e:
            con.execute("SELECT * FROM kv")
        self.assertEqual(str(e.exception), "no such table: kv")
        con.close()
        other.close()

    def test_rollback_journal(self):
        self.drop_elsewhere("delete", "kv")

    def test_wal(self):
        self.drop_elsewhere("wal", "kv")

    def test_named_with_its_schema(self):
        self.drop_elsewhere("wal", "main.kv")

    def test_a_shadow_table_dropped_by_hand(self):
        """The table is still there: the message names the shadow table that is not (the
        existence check plans the table, and SQLite frees the message feox had set on it)."""
        con, other = connect(self.path("h.db")), connect(self.path("h.db"))
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', '1')")
        con.execute("SELECT feox_stats('kv')").fetchone()
        other.execute("DROP TABLE kv_meta")
        for f in self.FUNCTIONS[1:3]:
            with self.assertRaises(sqlite3.OperationalError) as e:
                con.execute("SELECT " + f.format(t="'kv'")).fetchone()
            self.assertRegex(str(e.exception), r"^feox: kv: [a-z ]+: no such table: main\.kv_meta$")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0],
                         "kv_meta: the shadow table does not exist")
        con.close()
        other.close()

    def test_check_of_a_table_created_again(self):
        """Dropped and created again elsewhere: feox_check checks the new table."""
        con, other = connect(self.path("c.db")), connect(self.path("c.db"))
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', '1')")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        other.execute("DROP TABLE kv")
        other.execute("CREATE VIRTUAL TABLE kv USING feox")
        other.execute("INSERT INTO kv(key, value) VALUES ('b', '2'), ('c', '3')")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        self.assertIn('"len":2,', con.execute("SELECT feox_stats('kv')").fetchone()[0])
        self.assertEqual(con.execute("SELECT key FROM kv ORDER BY key").fetchall(),
                         [("b",), ("c",)])
        con.close()
        other.close()


if __name__ == "__main__":
    unittest.main()
