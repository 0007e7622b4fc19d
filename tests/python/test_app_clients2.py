"""What apps do through their clients, each checked against a native twin table (hunt 5).

The rule: a feox table does what SQLite does with a native table in the same place. Here:
- feox_patch on a value that is not TEXT: an INTEGER or REAL is the JSON number its text spells,
  as the DML form `UPDATE nt SET value = feox_json_patch(value, ?)` reads it (also when the 8 bytes
  feox keeps a number in happen to spell JSON: they are never patched as text); a NULL value is
  an error naming it and changes nothing.
"""
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


class PatchOfNonTextValuesMemoryTable(PatchOfNonTextValues):
    KV_OPTIONS = "(path=':memory:')"


class PatchOfNonTextValuesRollbackJournal(PatchOfNonTextValues):
    JOURNAL_MODE = "delete"


if __name__ == "__main__":
    unittest.main()
