"""feox through Python's sqlite3 module, the way applications load it (SPEC §2)."""
import os
import sqlite3
import subprocess
import unittest

from feoxtest import EXT, SQLITE3_SHELL, TempDirTestCase, connect

VALUES = [
    ("int", 42),
    ("int_min", -2**63),
    ("int_max", 2**63 - 1),
    ("zero", 0),
    ("real", 3.5),
    ("real_tiny", 5e-324),
    ("text", "hello"),
    ("text_unicode", "héllo wörld ✓ 日本"),
    ("text_empty", ""),
    ("text_nul", "a\x00b"),
    ("blob", b"\x00\xff\x10"),
    ("blob_empty", b""),
    ("blob_digits", b"42"),
    ("null", None),
]


class LoadTest(unittest.TestCase):
    def test_load_and_create(self):
        con = connect()
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        cols = [r[1] for r in con.execute("PRAGMA table_info(kv)")]
        self.assertEqual(cols, ["key", "value", "ttl", "ts"])
        con.close()

    def test_not_loaded_is_an_error(self):
        con = sqlite3.connect(":memory:")
        with self.assertRaisesRegex(sqlite3.OperationalError, "no such module: feox"):
            con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.close()


class TypesTest(unittest.TestCase):
    def setUp(self):
        self.con = connect()
        self.con.execute("CREATE VIRTUAL TABLE kv USING feox")

    def tearDown(self):
        self.con.close()

    def test_round_trip_keeps_type_and_bytes(self):
        self.con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)", VALUES)
        got = dict(self.con.execute("SELECT key, value FROM kv"))
        self.assertEqual(len(got), len(VALUES))
        for key, value in VALUES:
            with self.subTest(key=key):
                self.assertIs(type(got[key]), type(value))
                self.assertEqual(got[key], value)
        # point lookups return the same
        for key, value in VALUES:
            row = self.con.execute("SELECT value, typeof(value) FROM kv WHERE key = ?", (key,)).fetchone()
            self.assertEqual(row[0], value)

    def test_key_conversion(self):
        self.con.execute("INSERT INTO kv(key, value) VALUES (?, 'five')", (5,))
        self.assertEqual(self.con.execute("SELECT typeof(key), key FROM kv").fetchone(), ("text", "5"))
        self.assertEqual(self.con.execute("SELECT value FROM kv WHERE key = ?", (5,)).fetchone(), ("five",))
        self.assertEqual(self.con.execute("SELECT value FROM kv WHERE key = ?", ("5",)).fetchone(), ("five",))

    def test_bound_parameters_in_ranges(self):
        self.con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)",
                             [(f"k{i:03d}", i) for i in range(100)])
        rows = self.con.execute("SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key DESC",
                                ("k010", "k015")).fetchall()
        self.assertEqual([r[0] for r in rows], ["k014", "k013", "k012", "k011", "k010"])
        rows = self.con.execute("SELECT key FROM kv WHERE key > ? ORDER BY key LIMIT ? OFFSET ?",
                                ("k090", 3, 2)).fetchall()
        self.assertEqual([r[0] for r in rows], ["k093", "k094", "k095"])
        rows = self.con.execute("SELECT count(*) FROM kv WHERE key >= ?", (None,)).fetchone()
        self.assertEqual(rows, (0,))


class ErrorsTest(unittest.TestCase):
    def setUp(self):
        self.con = connect()
        self.con.execute("CREATE VIRTUAL TABLE kv USING feox")
        self.con.execute("INSERT INTO kv(key, value) VALUES ('a', 1), ('t', 'text')")

    def tearDown(self):
        self.con.close()

    def test_duplicate_key(self):
        with self.assertRaises(sqlite3.IntegrityError) as cm:
            self.con.execute("INSERT INTO kv(key, value) VALUES ('a', 2)")
        self.assertEqual(str(cm.exception), "UNIQUE constraint failed: kv.key")
        self.assertEqual(self.con.execute("SELECT value FROM kv WHERE key = 'a'").fetchone(), (1,))

    def test_incr_on_text(self):
        with self.assertRaises(sqlite3.DatabaseError) as cm:
            self.con.execute("SELECT feox_incr('kv', 't', 1)").fetchall()
        self.assertEqual(str(cm.exception), "feox: kv: value is not a 64-bit integer")

    def test_null_key(self):
        with self.assertRaises(sqlite3.DatabaseError) as cm:
            self.con.execute("INSERT INTO kv(key, value) VALUES (NULL, 1)")
        self.assertIn("kv", str(cm.exception))
        self.assertIn("NULL", str(cm.exception))

    def test_negative_ttl(self):
        with self.assertRaises(sqlite3.DatabaseError) as cm:
            self.con.execute("INSERT INTO kv(key, value, ttl) VALUES ('n', 1, -1)")
        self.assertIn("kv", str(cm.exception))
        self.assertIn("ttl", str(cm.exception))
        self.assertEqual(self.con.execute("SELECT count(*) FROM kv WHERE key = 'n'").fetchone(), (0,))

    def test_older_timestamp(self):
        self.con.execute("INSERT INTO kv(key, value, ts) VALUES ('w', 1, 1000)")
        with self.assertRaises(sqlite3.DatabaseError) as cm:
            self.con.execute("UPDATE kv SET value = 2, ts = 999 WHERE key = 'w'")
        self.assertIn("kv", str(cm.exception))
        self.assertEqual(self.con.execute("SELECT value, ts FROM kv WHERE key = 'w'").fetchone(), (1, 1000))

    def test_unknown_option(self):
        with self.assertRaises(sqlite3.DatabaseError) as cm:
            self.con.execute("CREATE VIRTUAL TABLE bad USING feox(bogus=1)")
        self.assertIn("bogus", str(cm.exception))

    def test_no_such_table(self):
        with self.assertRaises(sqlite3.DatabaseError) as cm:
            self.con.execute("SELECT feox_incr('nope', 'k', 1)").fetchall()
        self.assertIn("nope", str(cm.exception))

    def test_patch_errors(self):
        self.con.execute("""INSERT INTO kv(key, value) VALUES ('doc', '{"a":1}')""")
        with self.assertRaises(sqlite3.DatabaseError):
            self.con.execute("SELECT feox_patch('kv', 'doc', 'not json')").fetchall()
        with self.assertRaises(sqlite3.DatabaseError):
            self.con.execute("""SELECT feox_patch('kv', 'missing', '[]')""").fetchall()
        self.assertEqual(self.con.execute("SELECT value FROM kv WHERE key = 'doc'").fetchone(), ('{"a":1}',))


class TransactionsTest(TempDirTestCase):
    def test_python_implicit_transactions(self):
        con = connect(self.path("t.db"), isolation_level="")  # Python opens BEGIN before DML
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.commit()
        con.execute("INSERT INTO kv(key, value) VALUES ('b', 2)")
        con.execute("UPDATE kv SET value = 10 WHERE key = 'a'")
        self.assertTrue(con.in_transaction)
        con.rollback()
        self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(), [("a", 1)])
        con.execute("DELETE FROM kv WHERE key = 'a'")
        con.commit()
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (0,))
        con.close()

    def test_context_manager_rolls_back_on_exception(self):
        con = connect(isolation_level=None)
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('ctr', 1)")
        con.isolation_level = ""
        with self.assertRaises(ZeroDivisionError):
            with con:
                con.execute("INSERT INTO kv(key, value) VALUES ('x', 1)")
                con.execute("SELECT feox_incr('kv', 'ctr', 5)").fetchall()
                1 / 0
        self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(), [("ctr", 1)])
        with con:
            con.execute("INSERT INTO kv(key, value) VALUES ('y', 1)")
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (2,))
        con.close()

    def test_explicit_begin_and_savepoints(self):
        con = connect()
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("BEGIN")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.execute("SAVEPOINT s")
        con.execute("SELECT feox_incr('kv', 'n', 1)").fetchall()
        con.execute("SELECT feox_cas('kv', 'a', 1, 2)").fetchall()
        con.execute("ROLLBACK TO s")
        con.execute("RELEASE s")
        con.execute("COMMIT")
        self.assertEqual(con.execute("SELECT key, value FROM kv").fetchall(), [("a", 1)])
        con.close()

    def test_executemany_atomic(self):
        con = connect()
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('dup', 0)")
        con.isolation_level = ""
        with self.assertRaises(sqlite3.IntegrityError):
            with con:
                con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)", [("a", 1), ("dup", 2), ("b", 3)])
        self.assertEqual(con.execute("SELECT key FROM kv").fetchall(), [("dup",)])
        con.close()


class PersistenceTest(TempDirTestCase):
    def test_default_store_survives_reopen(self):
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)", VALUES)
        con.execute("INSERT INTO kv(key, value, ttl) VALUES ('ttl', 1, 3600)")
        con.close()
        # the default in a file database: the records are in the database (shadow tables)
        self.assertFalse(os.path.exists(db + "-kv.feox"))
        plain = sqlite3.connect(db)
        self.assertEqual(plain.execute("SELECT count(*) FROM kv_data").fetchone(),
                         (len(VALUES) + 1,))
        plain.close()
        con = connect(db)
        got = dict(con.execute("SELECT key, value FROM kv"))
        for key, value in VALUES:
            self.assertIs(type(got[key]), type(value), key)
            self.assertEqual(got[key], value, key)
        ttl = con.execute("SELECT ttl FROM kv WHERE key = 'ttl'").fetchone()[0]
        self.assertTrue(3500 <= ttl <= 3600, ttl)
        con.execute("DROP TABLE kv")
        con.close()
        self.assertEqual(sorted(os.listdir(self.dir)), ["app.db"])

    def test_path_store_survives_reopen(self):
        store = self.path("data.feox")
        con = connect()
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='%s')" % store)
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)", [(f"k{i}", i) for i in range(1000)])
        con.execute("DELETE FROM kv WHERE key GLOB 'k1*'")
        con.close()
        con = connect()
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='%s')" % store)
        self.assertEqual(con.execute("SELECT count(*), sum(value) FROM kv").fetchone(),
                         (1000 - 111, sum(i for i in range(1000) if not str(i).startswith("1"))))
        con.close()

    def test_two_connections_share_a_store(self):
        db = self.path("shared.db")
        a = connect(db)
        a.execute("CREATE VIRTUAL TABLE kv USING feox")
        a.execute("CREATE VIRTUAL TABLE mem USING feox(path=':memory:')")
        b = connect(db)
        a.execute("INSERT INTO kv(key, value) VALUES ('from_a', 1)")
        self.assertEqual(b.execute("SELECT value FROM kv WHERE key = 'from_a'").fetchone(), (1,))
        b.execute("INSERT INTO kv(key, value) VALUES ('from_b', 2)")
        self.assertEqual(a.execute("SELECT value FROM kv WHERE key = 'from_b'").fetchone(), (2,))
        # functions on the other connection, before it touched the table with a statement
        self.assertEqual(b.execute("SELECT feox_incr('mem', 'n', 1)").fetchone(), (1,))
        self.assertEqual(a.execute("SELECT feox_incr('mem', 'n', 1)").fetchone(), (2,))
        self.assertEqual(b.execute("SELECT value FROM mem WHERE key = 'n'").fetchone(), (2,))
        a.close()
        # the store stays open for b
        self.assertEqual(b.execute("SELECT count(*) FROM kv").fetchone(), (2,))
        b.close()
        # the memory table vanished with the last connection; the file table did not
        c = connect(db)
        self.assertEqual(c.execute("SELECT count(*) FROM mem").fetchone(), (0,))
        self.assertEqual(c.execute("SELECT count(*) FROM kv").fetchone(), (2,))
        c.close()

    def test_other_connections_see_uncommitted_changes(self):
        # file mode (SPEC §2): the undo journal is per connection, there is no isolation between
        # connections (database mode isolates: test_in_database.py)
        db = self.path("iso.db")
        a = connect(db)
        a.execute("CREATE VIRTUAL TABLE kv USING feox(path='iso.feox')")  # file mode
        a.execute("INSERT INTO kv(key, value) VALUES ('k', 'committed')")
        b = connect(db)
        a.execute("BEGIN")
        a.execute("INSERT INTO kv(key, value) VALUES ('new', 1)")
        a.execute("UPDATE kv SET value = 'uncommitted' WHERE key = 'k'")
        self.assertEqual(b.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("k", "uncommitted"), ("new", 1)])
        a.execute("ROLLBACK")
        self.assertEqual(b.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("k", "committed")])
        a.close()
        b.close()

    def test_other_process_cannot_open_a_held_store(self):
        db = self.path("held.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='held.feox')")  # file mode
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        proc = subprocess.run([SQLITE3_SHELL, "-bail", "-cmd", ".load " + EXT, db,
                               "SELECT count(*) FROM kv"], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("lock", (proc.stdout + proc.stderr).lower())
        con.close()
        # once released, the other process can open it
        proc = subprocess.run([SQLITE3_SHELL, "-bail", "-cmd", ".load " + EXT, db,
                               "SELECT count(*) FROM kv"], capture_output=True, text=True, timeout=60)
        self.assertEqual((proc.returncode, proc.stdout.strip()), (0, "1"), proc.stderr)


if __name__ == "__main__":
    unittest.main()
