"""A path= table whose store file this process may not write (README "Where feox departs from its
own spec", first bullet, now lifted).

The store file is opened read-only when the process may not open it for writing: its
permissions (the check runs as the user nobody, since root ignores permissions) or a read-only
mount (a tmpfs remounted read-only). Then SELECT reads every row, a native table of the same
database still reads and writes, and every write through the table (INSERT / UPDATE / DELETE, an
UPDATE matching nothing, feox_incr / feox_cas / feox_patch / feox_compact, inside a transaction or
not) fails with SQLITE_READONLY and a message naming the table and saying the store file is
read-only, changing nothing. DROP TABLE fails with SQLITE_READONLY too (the file could not be
removed), with SQLite's own "attempt to write a readonly database" (SQLite does not pass on
xDestroy's message), and the table stays. feox_flush, feox_check, feox_stats and feox_sweep work (they write no store
file). The file keeps its bytes. Each mechanism is skipped where it cannot be set up.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import unittest

from feoxtest import EXT, HERE, TempDirTestCase, connect

NOBODY = 65534
SQLITE_READONLY = 8
ROWS = [(f"k{i:03d}", f"value {i}") for i in range(200)]

# (name, SQL) of every write through the table 'f'; each must fail, changing nothing.
WRITES = [
    ("insert", "INSERT INTO f(key, value) VALUES ('new', 1)"),
    ("insert-many", "INSERT INTO f(key, value) VALUES ('n1', 1), ('n2', 2)"),
    ("insert-select", "INSERT INTO f(key, value) SELECT key || 'x', value FROM f"),
    ("replace", "INSERT OR REPLACE INTO f(key, value) VALUES ('k001', 'changed')"),
    ("update", "UPDATE f SET value = 'changed' WHERE key = 'k001'"),
    ("update-all", "UPDATE f SET value = 'changed'"),
    ("update-none", "UPDATE f SET value = 'changed' WHERE 0"),
    ("rename-key", "UPDATE f SET key = key || 'r' WHERE key = 'k002'"),
    ("delete", "DELETE FROM f WHERE key = 'k003'"),
    ("delete-all", "DELETE FROM f"),
    ("incr", "SELECT feox_incr('f', 'counter', 1)"),
    ("incr-new", "SELECT feox_incr('f', 'new-counter', 1)"),
    ("cas", "SELECT feox_cas('f', 'k004', 'value 4', 'swapped')"),
    ("patch", "SELECT feox_patch('f', 'doc', '[{\"op\":\"add\",\"path\":\"/b\",\"value\":2}]')"),
    ("compact", "SELECT feox_compact('f')"),
]

# Run as the opener by the tests: argv = [tests/python, database, store file]. Prints one JSON
# object: the problems found (none when everything behaved).
CHILD = r"""
import json, sqlite3, sys
sys.path.insert(0, sys.argv[1])
import test_store_readonly_file as t
db, store = sys.argv[2], sys.argv[3]
problems = []
con = t.connect(db)
rows = lambda: con.execute("SELECT key, value FROM f WHERE key LIKE 'k%' ORDER BY key").fetchall()
everything = lambda: con.execute("SELECT key, value, ttl, ts FROM f ORDER BY key").fetchall()
try:
    if rows() != t.ROWS:
        problems.append("SELECT does not read every row")
    before = everything()
    def refused(name, sql):
        try:
            con.execute(sql).fetchall()
            problems.append("not refused: " + name)
        except sqlite3.OperationalError as e:
            msg = str(e)
            want = "feox: f: the store file '%s' is read-only" % store
            if e.sqlite_errorcode != t.SQLITE_READONLY or not msg.startswith(want):
                problems.append("%s: %d %s" % (name, e.sqlite_errorcode, msg))
    for name, sql in t.WRITES:
        refused(name, sql)
    # In a transaction: the native write stays, the feox write fails alone.
    con.execute("BEGIN")
    con.execute("INSERT INTO native VALUES ('in-txn')")
    for name, sql in t.WRITES:
        refused("txn " + name, sql)
    con.execute("COMMIT")
    con.execute("INSERT INTO native VALUES ('after')")
    native = [r[0] for r in con.execute("SELECT v FROM native ORDER BY v")]
    if native != ["after", "before", "in-txn"]:
        problems.append("native table: %r" % native)
    if everything() != before:
        problems.append("the table changed")
    allowed = con.execute("SELECT feox_flush('f'), feox_check('f'), "
                          "json_extract(feox_stats('f'), '$.len'), feox_sweep('f')").fetchone()
    if allowed != (1, "ok", len(t.ROWS) + 2, 0):
        problems.append("allowed functions: %r" % (allowed,))
    if con.execute("PRAGMA integrity_check").fetchone() != ("ok",):
        problems.append("integrity_check")
    # DROP: SQLite does not pass on xDestroy's message; the code and message are SQLite's own
    # for a read-only database, and the schema change is undone.
    try:
        con.execute("DROP TABLE f")
        problems.append("not refused: drop")
    except sqlite3.OperationalError as e:
        if (e.sqlite_errorcode, str(e)) != (t.SQLITE_READONLY,
                                            "attempt to write a readonly database"):
            problems.append("drop: %d %s" % (e.sqlite_errorcode, e))
    if rows() != t.ROWS:
        problems.append("the table is gone or changed after the refused DROP")
    con.close()
    # Another connection (a fresh one) reads it too.
    con = t.connect(db)
    if rows() != t.ROWS:
        problems.append("a second connection does not read every row")
    con.close()
except Exception as e:
    problems.append("%s: %s" % (type(e).__name__, e))
print(json.dumps(problems))
"""


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class ReadOnlyStoreFileTest(TempDirTestCase):
    def make_database(self, store):
        """The database (a native table and f, its store at store) as its writer leaves it."""
        self.db = self.path("app.db")
        con = connect(self.db)
        con.execute("CREATE TABLE native(v TEXT)")
        con.execute("INSERT INTO native VALUES ('before')")
        con.execute(f"CREATE VIRTUAL TABLE f USING feox(path='{store}')")
        con.executemany("INSERT INTO f(key, value) VALUES (?, ?)", ROWS)
        con.execute("SELECT feox_incr('f', 'counter', 41)")
        con.execute("INSERT INTO f(key, value) VALUES ('doc', '{\"a\": 1}')")
        con.close()
        self.store = store

    def run_child(self, prefix=()):
        digest, size = file_digest(self.store), os.path.getsize(self.store)
        child = subprocess.run(
            list(prefix) + [sys.executable, "-c", CHILD, HERE, self.db, self.store],
            env=dict(os.environ, FEOX_EXT=EXT), capture_output=True, text=True, timeout=120)
        out = child.stdout.strip().splitlines()
        self.assertTrue(out, child.stderr)
        self.assertEqual(json.loads(out[-1]), [], child.stderr)
        self.assertEqual(file_digest(self.store), digest)
        self.assertEqual(os.path.getsize(self.store), size)

    def test_store_file_the_process_may_not_write(self):
        """As nobody: the database and its directory are nobody's, the store file root's
        (readable, not writable)."""
        self.make_database(self.path("f.feox"))
        if os.geteuid() != 0:
            os.chmod(self.store, 0o444)
            self.run_child()
            return
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            self.skipTest("running as root and setpriv is missing")
        os.chmod(self.dir, 0o755)
        os.chown(self.dir, NOBODY, NOBODY)
        os.chown(self.db, NOBODY, NOBODY)
        os.chmod(self.store, 0o644)  # root's: nobody may read it, not write it
        self.run_child([setpriv, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"])
        self.assertTrue(os.path.exists(self.store))  # the refused DROP left it

    def test_store_file_on_a_read_only_mount(self):
        """The store file on a tmpfs remounted read-only (EROFS), the database beside it on a
        writable directory; run as root."""
        if os.geteuid() != 0 or shutil.which("mount") is None:
            self.skipTest("needs root and mount(8) for a read-only tmpfs")
        mnt = self.path("ro")
        os.mkdir(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt],
                          capture_output=True).returncode != 0:
            self.skipTest("cannot mount a tmpfs here")
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], capture_output=True)
        self.make_database(os.path.join(mnt, "f.feox"))
        if subprocess.run(["mount", "-o", "remount,ro", mnt],
                          capture_output=True).returncode != 0:
            self.skipTest("cannot remount the tmpfs read-only")
        self.run_child()

    def test_writable_store_file_is_opened_read_write(self):
        """Unchanged where the process may write the file: the table takes writes."""
        self.make_database(self.path("f.feox"))
        con = connect(self.db)
        con.execute("INSERT INTO f(key, value) VALUES ('new', 1)")
        self.assertEqual(con.execute("SELECT feox_incr('f', 'counter', 1)").fetchone(), (42,))
        con.execute("DROP TABLE f")
        con.close()
        self.assertFalse(os.path.exists(self.store))


if __name__ == "__main__":
    unittest.main()
