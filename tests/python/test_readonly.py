"""Read-only connections (SPEC §2 "Read-only"; issue 11 item 7).

On a connection that may not write the database - opened with mode=ro, a database file it may not
write, an attached read-only database, PRAGMA query_only - every function that changes a store
(feox_incr, feox_cas, feox_patch, feox_compact) fails with SQLITE_READONLY and SQLite's own
message, exactly as an INSERT into the table does, and the store is unchanged afterwards: the rows
and the bytes of the store file. feox_flush, feox_stats and feox_check stay allowed.
"""
import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import unittest

from feoxtest import EXT, HERE, TempDirTestCase, connect, connect_uri

SQLITE_READONLY = 8

# (name, SQL) of every call that would change the store; 'n' holds 1, 'c' 'v1', 'doc' a JSON
# document, 'r' the REAL 2.0 (a counter for feox_incr).
WRITES = [
    ("incr", "SELECT feox_incr('{t}', 'n', 1)"),
    ("incr-new-key", "SELECT feox_incr('{t}', 'new', 1)"),
    ("incr-ttl", "SELECT feox_incr('{t}', 'r', 1, 60)"),
    ("cas", "SELECT feox_cas('{t}', 'c', 'v1', 'v2')"),
    ("cas-mismatch", "SELECT feox_cas('{t}', 'c', 'other', 'v2')"),
    ("cas-ttl", "SELECT feox_cas('{t}', 'c', 'v1', 'v2', 60)"),
    ("patch", "SELECT feox_patch('{t}', 'doc', '[{{\"op\":\"add\",\"path\":\"/b\",\"value\":2}}]')"),
    ("compact", "SELECT feox_compact('{t}')"),
    ("insert", "INSERT INTO {t}(key, value) VALUES ('x', 1)"),
    ("update", "UPDATE {t} SET value = 5 WHERE key = 'n'"),
    ("delete", "DELETE FROM {t} WHERE key = 'n'"),
]
ALLOWED = "SELECT feox_flush('{t}'), feox_check('{t}'), json_extract(feox_stats('{t}'), '$.len')"
SNAPSHOT = "SELECT key, quote(value), ttl IS NULL, ts FROM {t} ORDER BY key"


NOBODY = 65534

# Run as another user by test_read_only_database_file: argv = [tests/python, database].
CHILD = """
import sqlite3, sys
sys.path.insert(0, sys.argv[1])
import test_readonly as t
con = t.connect(sys.argv[2])
refused = 0
for name, sql in t.WRITES:
    try:
        con.execute(sql.format(t="kv")).fetchall()
        print("not refused:", name)
    except sqlite3.OperationalError as e:
        if str(e) == "attempt to write a readonly database" and e.sqlite_errorcode == 8:
            refused += 1
        else:
            print(name, e)
assert con.execute(t.ALLOWED.format(t="kv")).fetchone() == (1, "ok", 4)
print("refused", refused)
"""


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class ReadOnlyTest(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.db = self.path("app.db")
        self.store = self.path("kv.feox")
        con = connect(self.db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='kv.feox')")
        con.execute("INSERT INTO kv(key, value, ttl, ts) VALUES ('n', 1, NULL, 1000), "
                    "('c', 'v1', NULL, 1000), ('doc', '{\"a\":1}', 600, 1000), "
                    "('r', 2.0, NULL, 1000)")
        self.rows = con.execute(SNAPSHOT.format(t="kv")).fetchall()
        con.close()
        self.digest = file_digest(self.store)

    def assert_unchanged(self, file_bytes=True):
        con = connect(self.db)
        self.assertEqual(con.execute(SNAPSHOT.format(t="kv")).fetchall(), self.rows)
        con.close()
        if file_bytes:
            self.assertEqual(file_digest(self.store), self.digest)

    def assert_writes_refused(self, con, table="kv"):
        for name, sql in WRITES:
            with self.subTest(write=name):
                with self.assertRaises(sqlite3.OperationalError) as cm:
                    con.execute(sql.format(t=table)).fetchall()
                self.assertEqual(str(cm.exception), "attempt to write a readonly database")
                self.assertEqual(cm.exception.sqlite_errorcode, SQLITE_READONLY)
        # also inside a transaction, and once per row of one statement
        with self.assertRaisesRegex(sqlite3.OperationalError, "^attempt to write a readonly"):
            con.execute("BEGIN")
            try:
                con.execute(WRITES[0][1].format(t=table)).fetchall()
            finally:
                con.execute("ROLLBACK")
        with self.assertRaisesRegex(sqlite3.OperationalError, "^attempt to write a readonly"):
            con.execute("SELECT feox_incr('%s', 'n', 1) FROM (SELECT 1 UNION ALL SELECT 2)"
                        % table).fetchall()
        self.assertEqual(con.execute(ALLOWED.format(t=table)).fetchone(), (1, "ok", 4))

    def test_mode_ro_uri(self):
        con = connect_uri("file:%s?mode=ro" % self.db)
        self.assert_writes_refused(con)
        con.close()
        self.assert_unchanged()

    def test_read_only_database_file(self):
        """A database file the process may not write: SQLite opens it read-only. As root (who may
        write any file) the check runs in a child process as the user nobody."""
        os.chmod(self.db, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        self.addCleanup(os.chmod, self.db, stat.S_IRUSR | stat.S_IWUSR)
        if os.geteuid() != 0:
            con = connect(self.db)
            self.assertEqual(con.execute("SELECT 1").fetchone(), (1,))
            self.assert_writes_refused(con)
            con.close()
        else:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                self.skipTest("running as root and setpriv is missing")
            os.chmod(self.dir, 0o755)
            for path in (self.dir, self.store):
                os.chown(path, NOBODY, NOBODY)
            child = subprocess.run(
                [setpriv, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                 sys.executable, "-c", CHILD, HERE, self.db],
                env=dict(os.environ, FEOX_EXT=EXT), capture_output=True, text=True, timeout=60)
            self.assertEqual(child.stdout + child.stderr, "refused %d\n" % len(WRITES))
        os.chmod(self.db, stat.S_IRUSR | stat.S_IWUSR)
        self.assert_unchanged()

    def test_attached_read_only_database(self):
        con = connect_uri(":memory:")
        con.execute("ATTACH ? AS ro", ("file:%s?mode=ro" % self.db,))
        self.assert_writes_refused(con, "ro.kv")
        # the main database of the same connection stays writable
        con.execute("CREATE VIRTUAL TABLE mem USING feox")
        self.assertEqual(con.execute("SELECT feox_incr('mem', 'n', 1)").fetchone(), (1,))
        con.close()
        self.assert_unchanged()

    def test_query_only(self):
        con = connect(self.db)
        # The same SQL text is a prepared statement Python reuses: the query_only answer must
        # follow the pragma, never a stale one.
        incr = "SELECT feox_incr('kv', 'tmp', 1)"
        self.assertEqual(con.execute(incr).fetchone(), (1,))
        con.execute("DELETE FROM kv WHERE key = 'tmp'")
        con.execute("PRAGMA query_only = 1")
        with self.assertRaisesRegex(sqlite3.OperationalError, "^attempt to write a readonly"):
            con.execute(incr).fetchone()
        self.assert_writes_refused(con)
        con.execute("PRAGMA query_only = 0")
        self.assertEqual(con.execute(incr).fetchone(), (1,))
        con.execute("DELETE FROM kv WHERE key = 'tmp'")
        con.close()
        self.assertEqual(connect(self.db).execute(SNAPSHOT.format(t="kv")).fetchall(), self.rows)

    def test_query_only_toggled_around_one_prepared_statement(self):
        # feox caches its query_only answer until SQLite expires the statements of the
        # connection, which running a flag pragma does: the answer follows every toggle, made by
        # another statement between runs of one prepared statement (Python reuses it for the
        # same SQL text) and even between two rows of one run.
        con = connect(self.db)
        incr = "SELECT feox_incr('kv', 'tmp', 1)"
        for i in range(3):
            self.assertEqual(con.execute(incr).fetchone(), (2 * i + 1,))
            self.assertEqual(con.execute(incr).fetchone(), (2 * i + 2,))
            con.execute("PRAGMA query_only = 1")
            for _ in range(2):
                with self.assertRaisesRegex(sqlite3.OperationalError,
                                            "^attempt to write a readonly"):
                    con.execute(incr).fetchone()
            con.execute("PRAGMA query_only = 0")
        # (Python may have stepped to the second row already: the third one is after the pragma.)
        rows = con.execute("SELECT feox_incr('kv', 'tmp', 1) FROM (SELECT 1 UNION ALL SELECT 2 "
                           "UNION ALL SELECT 3)")
        self.assertEqual(rows.fetchone(), (7,))
        con.execute("PRAGMA query_only = 1")
        with self.assertRaisesRegex(sqlite3.OperationalError, "^attempt to write a readonly"):
            rows.fetchall()
        con.execute("PRAGMA query_only = 0")
        self.assertIn(con.execute(incr).fetchone(), [(8,), (9,)])
        con.execute("DELETE FROM kv WHERE key = 'tmp'")
        con.close()
        self.assertEqual(connect(self.db).execute(SNAPSHOT.format(t="kv")).fetchall(), self.rows)

    def test_query_only_answer_survives_reconnect_and_close(self):
        # The cached statement belongs to the table's vtab: a schema change disconnects it and
        # sqlite3_close (the shell's, which refuses to close with unfinalized statements) works.
        script = ("SELECT feox_incr('kv', 'tmp', 1);\n"
                  "CREATE TABLE native(x);\n"
                  "PRAGMA query_only = 1;\n"
                  "SELECT feox_incr('kv', 'tmp', 1);\n"
                  "PRAGMA query_only = 0;\n"
                  "SELECT feox_incr('kv', 'tmp', 1);\n"
                  "DELETE FROM kv WHERE key = 'tmp';\n")
        shell = shutil.which("sqlite3")
        if shell is None:
            self.skipTest("the sqlite3 shell is missing")
        out = subprocess.run([shell, "-cmd", ".load %s" % EXT, self.db], input=script,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.stdout, "1\n2\n")
        self.assertIn("attempt to write a readonly database", out.stderr)
        self.assertNotIn("unable to close", out.stderr)
        self.assertEqual(out.returncode, 1)

    def test_query_only_set_inside_a_transaction(self):
        con = connect(self.db)
        con.execute("BEGIN")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone(), (2,))
        con.execute("PRAGMA query_only = 1")
        with self.assertRaisesRegex(sqlite3.OperationalError, "^attempt to write a readonly"):
            con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone()
        con.execute("ROLLBACK")
        con.close()
        self.assert_unchanged(file_bytes=False)  # the rolled-back change and its undo are logged


if __name__ == "__main__":
    unittest.main()
