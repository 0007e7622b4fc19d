"""The SQL functions while another connection changes the schema (a migration by another
process, CREATE TABLE by a sibling connection): the next call on this connection makes SQLite
reload the schema, which disconnects the feox table the call had already found. Each function
must keep working on the table as it is now (feox_incr after a CREATE TABLE elsewhere was a
use-after-free: a segfault)."""
import os
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


if __name__ == "__main__":
    unittest.main()
