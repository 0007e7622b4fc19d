"""What apps do through their clients, each checked against a native twin table (hunt 5).

The rule: a feox table does what SQLite does with a native table in the same place. Here:
- feox_patch on a value that is not TEXT: an INTEGER or REAL is the JSON number its text spells,
  as the DML form `UPDATE nt SET value = feox_json_patch(value, ?)` reads it (also when the 8 bytes
  feox keeps a number in happen to spell JSON: they are never patched as text); a NULL value is
  an error naming it and changes nothing;
- a web-server pattern: workers forked after the parent opened the database keep using the
  connection they inherited (SQLite says not to; feox refuses: README, Durability): every use of
  the table there fails with SQLITE_MISUSE naming fork() (or SQLITE_BUSY when SQLite's own lock
  is met first), inside BEGIN too, changing nothing;
  the same worker's own new connection works, and the parent and the file are intact.
"""
import os
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect

NATIVE = "CREATE TABLE nt(key TEXT PRIMARY KEY, value, ttl, ts) WITHOUT ROWID"

# Numbers whose 8 little-endian bytes (feox's INTEGER and REAL encodings) read as the JSON text
# '{"a":1} ' (an object) and '12345678' (a number).
INT_BYTES_OBJECT = int.from_bytes(b'{"a":1} ', "little", signed=True)
INT_BYTES_NUMBER = int.from_bytes(b"12345678", "little", signed=True)
REAL_BYTES_OBJECT = 3.4836171235713053e-152

NUMBERS = [4, -7, 0, 9223372036854775807, 1.5, -0.25, 1e300, INT_BYTES_OBJECT, INT_BYTES_NUMBER,
           REAL_BYTES_OBJECT]
PATCHES = ['[]',
           '[{"op":"test","path":"","value":4}]',
           '[{"op":"replace","path":"","value":{"n":1}}]',
           '[{"op":"add","path":"/b","value":2}]',
           '[{"op":"add","path":"","value":[1,2]},{"op":"add","path":"/-","value":3}]']


class PatchOfNonTextValues(TempDirTestCase):
    JOURNAL_MODE = "wal"
    KV_OPTIONS = ""

    def setUp(self):
        super().setUp()
        self.con = connect(self.path("app.db"))
        self.addCleanup(self.con.close)
        self.con.execute(f"PRAGMA journal_mode = {self.JOURNAL_MODE}")
        self.con.execute(f"CREATE VIRTUAL TABLE kv USING feox{self.KV_OPTIONS}")
        self.con.execute(NATIVE)

    def value(self, table, key, con=None):
        return (con or self.con).execute(
            f"SELECT value, typeof(value) FROM {table} WHERE key = ?", (key,)).fetchone()

    def patch_both(self, key, patch):
        """feox_patch on kv and the DML form on nt: (result or error, value afterwards) each."""
        seen = []
        for table, sql in (("kv", "SELECT feox_patch('kv', ?1, ?2)"),
                           ("nt", "UPDATE nt SET value = feox_json_patch(value, ?2) WHERE key = ?1"
                                  " RETURNING value")):
            try:
                got = ("ok", self.con.execute(sql, (key, patch)).fetchone()[0])
            except sqlite3.Error as e:
                got = ("error", e.sqlite_errorname)
            seen.append((got, self.value(table, key)))
        return seen

    def test_numbers_are_patched_as_the_json_numbers_they_are(self):
        for i, number in enumerate(NUMBERS):
            for j, patch in enumerate(PATCHES):
                key = f"n{i}-{j}"
                for table in ("kv", "nt"):
                    self.con.execute(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                                     (key, number))
                (kv_result, kv_after), (nt_result, nt_after) = self.patch_both(key, patch)
                msg = f"value {number!r}, patch {patch}"
                self.assertEqual(kv_result[0], nt_result[0], msg)
                if kv_result[0] == "ok":
                    self.assertEqual(kv_result, nt_result, msg)
                else:
                    self.assertEqual(kv_result[1], "SQLITE_ERROR", msg)
                self.assertEqual(kv_after, nt_after, msg)
        self.assertEqual(self.con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        other = connect(self.path("app.db"))
        self.addCleanup(other.close)
        self.assertEqual(other.execute("SELECT key, value, typeof(value) FROM kv ORDER BY key")
                         .fetchall(),
                         other.execute("SELECT key, value, typeof(value) FROM nt ORDER BY key")
                         .fetchall())

    def test_a_patch_keeps_the_ttl_and_follows_rollback(self):
        self.con.execute("INSERT INTO kv(key, value, ttl) VALUES ('n', 5, 1000)")
        self.con.execute("BEGIN")
        self.assertEqual(self.con.execute(
            "SELECT feox_patch('kv', 'n', '[{\"op\":\"replace\",\"path\":\"\",\"value\":6}]')")
            .fetchone()[0], "6")
        self.assertEqual(self.value("kv", "n"), ("6", "text"))
        self.assertGreater(self.con.execute("SELECT ttl FROM kv WHERE key = 'n'").fetchone()[0],
                           900)
        self.con.execute("ROLLBACK")
        self.assertEqual(self.value("kv", "n"), (5, "integer"))
        self.assertEqual(self.con.execute("SELECT feox_patch('kv', 'n', '[]', 0)").fetchone()[0],
                         "5")
        self.assertEqual(self.con.execute("SELECT ttl FROM kv WHERE key = 'n'").fetchone()[0],
                         None)

    def test_a_null_value_is_an_error_that_changes_nothing(self):
        self.con.execute("INSERT INTO kv(key, value) VALUES ('z', NULL)")
        with self.assertRaises(sqlite3.OperationalError) as cm:
            self.con.execute("SELECT feox_patch('kv', 'z', '[]')")
        self.assertEqual(str(cm.exception), "feox: kv: JSON patch failed: the value is NULL, "
                                            "not a JSON document")
        self.assertEqual(self.value("kv", "z"), (None, "null"))
        with self.assertRaises(sqlite3.OperationalError) as cm:
            self.con.execute("SELECT feox_patch('kv', 'missing', '[]')")
        self.assertEqual(str(cm.exception), "feox: kv: key not found")


class WorkersKeepTheInheritedConnection(TempDirTestCase):
    JOURNAL_MODE = "wal"
    WORKERS = 3
    FORKED = ("feox: kv: the connection was opened by the parent process before fork(); "
              "open the database again in this process")  # said once, no store path
    USES = ("SELECT count(*) FROM kv", "SELECT value FROM kv WHERE key = 'hits'",
            "INSERT INTO kv(key, value) VALUES ('child', 1)", "UPDATE kv SET value = 0",
            "SELECT feox_incr('kv', 'hits', 1)", "SELECT feox_stats('kv')")

    def worker(self, inherited, n):
        """In a forked child: 0 if every use of the inherited connection was refused as it
        should be and the child's own connection then wrote its row."""
        for sql in self.USES + ("BEGIN",) + self.USES + ("ROLLBACK",):
            try:
                inherited.execute(sql).fetchall()
                refused = sql in ("BEGIN", "ROLLBACK")
            except sqlite3.Error as e:
                # A write may meet SQLite's own lock first (the parent and the other workers
                # write too): SQLITE_BUSY, also a refusal. The rows checked at the end show that
                # nothing the inherited connection tried was written.
                refused = (e.sqlite_errorname == "SQLITE_MISUSE" and str(e) == self.FORKED
                           or e.sqlite_errorname == "SQLITE_BUSY")
                if not refused:
                    os.write(2, f"worker {n}: {sql}: {e.sqlite_errorname} {e}\n".encode())
            if not refused:
                return 1
        own = connect(self.db)
        own.execute("SELECT feox_incr('kv', 'hits', 1)").fetchall()
        own.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (f"worker{n}", n))
        own.close()
        return 0

    def test_the_inherited_connection_is_refused_and_nothing_breaks(self):
        self.db = self.path("app.db")
        con = connect(self.db)
        self.addCleanup(con.close)
        con.execute(f"PRAGMA journal_mode = {self.JOURNAL_MODE}")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('hits', 0)")
        pids = []
        for n in range(self.WORKERS):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = self.worker(con, n)
                finally:
                    os._exit(code)
            pids.append(pid)
        for _ in range(5):
            con.execute("SELECT feox_incr('kv', 'hits', 1)").fetchall()
        self.assertEqual([os.waitpid(pid, 0)[1] for pid in pids], [0] * self.WORKERS)
        expected = [("hits", 5 + self.WORKERS)] + [(f"worker{n}", n) for n in range(self.WORKERS)]
        for reader in (con, connect(self.db)):
            self.assertEqual(reader.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                             expected)
            self.assertEqual(reader.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
            self.assertEqual(reader.execute("PRAGMA integrity_check").fetchall(), [("ok",)])


class WorkersKeepTheInheritedConnectionRollbackJournal(WorkersKeepTheInheritedConnection):
    JOURNAL_MODE = "delete"


class PatchOfNonTextValuesMemoryTable(PatchOfNonTextValues):
    KV_OPTIONS = "(path=':memory:')"


class PatchOfNonTextValuesRollbackJournal(PatchOfNonTextValues):
    JOURNAL_MODE = "delete"


if __name__ == "__main__":
    unittest.main()
