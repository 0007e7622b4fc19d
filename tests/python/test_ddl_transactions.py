"""DROP, RENAME and CREATE follow SQLite's transaction (issue 11 item 6), seen from Python: a DROP
whose COMMIT fails with "database is locked", other connections of the process, and crashes
(os._exit) between the schema change and its settlement.

The tables here keep their records in their default store file "<db>-<table>.feox": tables of
the previous release (feoxtest.previous_release_table), the one case where this release still
names a file after the table. New tables without path live in the database
(test_in_database.py)."""
import os
import subprocess
import sys
import textwrap

from feoxtest import EXT, TempDirTestCase, connect, previous_release_table


def rows(con, table):
    return sorted(con.execute(f'SELECT key, value FROM "{table}"').fetchall())


class LockedDropTest(TempDirTestCase):
    def test_drop_that_fails_with_database_is_locked_keeps_the_data(self):
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE TABLE native(x)")
        con.execute("INSERT INTO native VALUES (1)")
        previous_release_table(con, "kv")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2)")
        reader = connect(db)
        reader.execute("BEGIN")
        self.assertEqual(reader.execute("SELECT count(*) FROM native").fetchone(), (1,))
        dropper = connect(db, timeout=0.1)
        with self.assertRaisesRegex(Exception, "database is locked"):
            dropper.execute("DROP TABLE kv")
        reader.execute("COMMIT")
        self.assertEqual(rows(dropper, "kv"), [("a", 1), ("b", 2)])
        self.assertEqual(rows(con, "kv"), [("a", 1), ("b", 2)])
        dropper.close()
        reader.close()
        con.close()
        self.assertTrue(os.path.exists(db + "-kv.feox"))
        con = connect(db)
        self.assertEqual(rows(con, "kv"), [("a", 1), ("b", 2)])
        con.close()

    def test_rename_that_fails_with_database_is_locked_moves_the_file_back(self):
        db = self.path("app.db")
        con = connect(db, timeout=0.1)
        con.execute("CREATE TABLE native(x)")
        previous_release_table(con, "kv")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        reader = connect(db)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM native").fetchall()
        with self.assertRaisesRegex(Exception, "database is locked"):
            con.execute("ALTER TABLE kv RENAME TO kv2")
        reader.execute("COMMIT")
        self.assertEqual(rows(con, "kv"), [("a", 1)])
        self.assertTrue(os.path.exists(db + "-kv.feox"))
        self.assertFalse(os.path.exists(db + "-kv2.feox"))
        reader.close()
        con.close()
        con = connect(db)
        self.assertEqual(rows(con, "kv"), [("a", 1)])
        con.close()

    def test_drop_while_another_connection_has_the_table_open(self):
        db = self.path("app.db")
        a = connect(db)
        b = connect(db)
        previous_release_table(a, "kv")
        a.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        self.assertEqual(rows(b, "kv"), [("a", 1)])
        a.execute("BEGIN")
        a.execute("DROP TABLE kv")
        a.execute("ROLLBACK")
        self.assertEqual(rows(b, "kv"), [("a", 1)])
        self.assertEqual(rows(a, "kv"), [("a", 1)])
        a.execute("DROP TABLE kv")
        a.execute("SELECT 1").fetchall()
        b.close()
        a.close()
        self.assertFalse(os.path.exists(db + "-kv.feox"))

    def test_recreated_table_survives_the_old_holder_letting_go(self):
        # b still holds the dropped table's store when a creates the table again and closes:
        # b letting go last must not remove the file that now holds the new table's data.
        db = self.path("app.db")
        a = connect(db)
        b = connect(db)
        previous_release_table(a, "kv")
        a.execute("CREATE VIRTUAL TABLE other USING feox(path=':memory:')")
        a.execute("INSERT INTO kv(key, value) VALUES ('old', 1)")
        self.assertEqual(rows(b, "kv"), [("old", 1)])
        a.execute("DROP TABLE kv")
        a.execute("SELECT count(*) FROM other").fetchall()  # settles the DROP
        previous_release_table(a, "kv")
        self.assertEqual(rows(a, "kv"), [])
        a.execute("INSERT INTO kv(key, value) VALUES ('new', 2)")
        a.close()
        b.close()
        c = connect(db)
        self.assertEqual(rows(c, "kv"), [("new", 2)])
        c.close()

    def test_rename_while_another_connection_has_the_store_open_is_busy(self):
        db = self.path("app.db")
        a = connect(db)
        b = connect(db)
        previous_release_table(a, "kv")
        a.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        self.assertEqual(rows(b, "kv"), [("a", 1)])
        with self.assertRaisesRegex(Exception, "in use by another connection"):
            a.execute("ALTER TABLE kv RENAME TO kv2")
        self.assertEqual(rows(a, "kv"), [("a", 1)])
        b.close()
        a.execute("ALTER TABLE kv RENAME TO kv2")
        self.assertEqual(rows(a, "kv2"), [("a", 1)])
        a.close()
        self.assertTrue(os.path.exists(db + "-kv2.feox"))
        self.assertFalse(os.path.exists(db + "-kv.feox"))


class CrashTest(TempDirTestCase):
    """A child process makes a schema change and dies with os._exit (no close, no settlement)."""

    def run_child(self, db, body):
        script = textwrap.dedent(f"""
            import os, sqlite3
            con = sqlite3.connect({db!r}, isolation_level=None)
            con.enable_load_extension(True)
            con.load_extension({EXT!r})
        """) + textwrap.dedent(body) + "\nos._exit(0)\n"
        subprocess.run([sys.executable, "-c", script], check=True)

    def setUp(self):
        super().setUp()
        self.db = self.path("app.db")
        con = connect(self.db)
        previous_release_table(con, "kv")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2)")
        con.close()

    def test_crash_inside_a_drop_transaction_keeps_the_data(self):
        self.run_child(self.db, """
            con.execute("BEGIN")
            con.execute("DROP TABLE kv")
        """)
        con = connect(self.db)
        self.assertEqual(rows(con, "kv"), [("a", 1), ("b", 2)])
        con.close()

    def test_crash_after_a_committed_drop_leaves_a_harmless_file(self):
        self.run_child(self.db, """
            con.execute("DROP TABLE kv")
        """)
        con = connect(self.db)
        self.assertEqual(con.execute("SELECT count(*) FROM sqlite_schema").fetchone(), (0,))
        con.close()

    def test_crash_inside_a_create_transaction(self):
        self.run_child(self.db, """
            con.execute("BEGIN")
            con.execute("CREATE VIRTUAL TABLE t2 USING feox")
            con.execute("INSERT INTO t2(key, value) VALUES ('x', 1)")
        """)
        con = connect(self.db)
        self.assertEqual(rows(con, "kv"), [("a", 1), ("b", 2)])
        con.execute("CREATE VIRTUAL TABLE t2 USING feox")  # the leftover file is harmless
        con.close()

    def test_crash_after_a_committed_rename_finds_the_data(self):
        self.run_child(self.db, """
            con.execute("ALTER TABLE kv RENAME TO kv2")
        """)
        con = connect(self.db)
        self.assertEqual(rows(con, "kv2"), [("a", 1), ("b", 2)])
        con.close()

    def files(self):
        d = os.path.dirname(self.db)
        return sorted(f for f in os.listdir(d) if f == "app.db" or f.endswith(".feox"))

    def test_crash_inside_a_rename_transaction_recovers_the_data(self):
        # The file was renamed at once but kept the old name's owner: the old name's xConnect
        # finds it by that owner and renames it back. Files that are not this table's feox
        # store stay exactly as they are.
        con = connect(self.db)
        previous_release_table(con, "other")
        con.execute("INSERT INTO other(key, value) VALUES ('o', 1)")
        con.close()
        with open(self.db + "-junk.feox", "wb") as f:
            f.write(b"not a feox store" * 8)
        self.run_child(self.db, """
            con.execute("BEGIN")
            con.execute("ALTER TABLE kv RENAME TO kv2")
            con.execute("ALTER TABLE kv2 RENAME TO kv3")
        """)
        self.assertTrue(os.path.exists(self.db + "-kv3.feox"))
        con = connect(self.db)
        self.assertEqual(rows(con, "kv"), [("a", 1), ("b", 2)])
        self.assertEqual(self.files(), ["app.db", "app.db-junk.feox", "app.db-kv.feox",
                                        "app.db-other.feox"])
        con.execute("INSERT INTO kv(key, value) VALUES ('c', 3)")
        con.close()
        con = connect(self.db)
        self.assertEqual(rows(con, "kv"), [("a", 1), ("b", 2), ("c", 3)])
        self.assertEqual(rows(con, "other"), [("o", 1)])
        con.execute("DROP TABLE kv")  # still this table's file: the DROP removes it
        con.execute("SELECT 1").fetchall()
        con.close()
        self.assertEqual(self.files(), ["app.db", "app.db-junk.feox", "app.db-other.feox"])
        with open(self.db + "-junk.feox", "rb") as f:
            self.assertEqual(f.read(), b"not a feox store" * 8)

    def test_recovery_leaves_files_of_other_owners_and_tables_alone(self):
        # kv's file is missing. A feox store of another owner is never taken, even one whose
        # name looks right; nor is kv's own file while another table names it.
        self.run_child(self.db, """
            con.execute("BEGIN")
            con.execute("ALTER TABLE kv RENAME TO kv2")
        """)
        con = connect(self.db)
        con.execute("CREATE VIRTUAL TABLE x USING feox(path='app.db-kv2.feox')")
        previous_release_table(con, "t3")
        con.execute("INSERT INTO t3(key, value) VALUES ('t', 1)")
        con.close()
        con = connect(self.db)
        with self.assertRaisesRegex(Exception, "does not exist"):
            rows(con, "kv")
        self.assertEqual(rows(con, "x"), [("a", 1), ("b", 2)])
        self.assertEqual(rows(con, "t3"), [("t", 1)])
        con.close()
        self.assertEqual(self.files(), ["app.db", "app.db-kv2.feox", "app.db-t3.feox"])

    def test_recovery_waits_while_the_file_is_held(self):
        # While something holds the renamed file, kv connects without its store; its next use
        # after that lets go takes the file back.
        self.run_child(self.db, """
            con.execute("BEGIN")
            con.execute("ALTER TABLE kv RENAME TO kv2")
        """)
        holder = connect(self.path("other.db"))
        holder.execute(f"CREATE VIRTUAL TABLE h USING feox(path='{self.db}-kv2.feox')")
        self.assertEqual(rows(holder, "h"), [("a", 1), ("b", 2)])
        con = connect(self.db)
        with self.assertRaisesRegex(Exception, "does not exist"):
            rows(con, "kv")
        holder.close()
        self.assertEqual(rows(con, "kv"), [("a", 1), ("b", 2)])
        con.close()
        self.assertEqual(self.files(), ["app.db", "app.db-kv.feox"])

    def test_crash_after_a_committed_rename_drop_removes_the_file(self):
        # COMMIT happened, the owner change did not: the new name adopts its file, so its DROP
        # removes it.
        self.run_child(self.db, """
            con.execute("BEGIN")
            con.execute("ALTER TABLE kv RENAME TO kv2")
            con.execute("COMMIT")
        """)
        con = connect(self.db)
        self.assertEqual(rows(con, "kv2"), [("a", 1), ("b", 2)])
        con.close()
        con = connect(self.db)
        con.execute("DROP TABLE kv2")
        con.execute("SELECT 1").fetchall()
        con.close()
        self.assertEqual(self.files(), ["app.db"])


class RenamedOwnerTest(TempDirTestCase):
    """Once a RENAME has committed, the file records the new name: its DROP removes it."""

    def check(self, options, settle_in_session):
        db = self.path("app.db")
        con = connect(db)
        con.execute(f"CREATE VIRTUAL TABLE kv USING feox{options}")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.execute("ALTER TABLE kv RENAME TO kv2")
        if settle_in_session:
            self.assertEqual(rows(con, "kv2"), [("a", 1)])
        else:
            con.close()
            con = connect(db)
        con.execute("DROP TABLE kv2")
        con.execute("SELECT 1").fetchall()
        con.close()
        self.assertEqual(sorted(os.listdir(os.path.dirname(db))), ["app.db"])

    def test_explicit_path_dropped_after_reopen(self):
        self.check("(path='data.feox')", False)

    def test_explicit_path_dropped_in_the_same_session(self):
        self.check("(path='data.feox')", True)

    def test_default_path_dropped_after_reopen(self):
        self.check("", False)

    def test_default_path_dropped_in_the_same_session(self):
        self.check("", True)

    def test_explicit_path_renamed_in_a_transaction(self):
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='data.feox')")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.execute("BEGIN")
        con.execute("ALTER TABLE kv RENAME TO kv2")
        con.execute("ALTER TABLE kv2 RENAME TO kv3")
        con.execute("COMMIT")
        con.close()
        con = connect(db)
        self.assertEqual(rows(con, "kv3"), [("a", 1)])
        con.execute("DROP TABLE kv3")
        con.execute("SELECT 1").fetchall()
        con.close()
        self.assertEqual(sorted(os.listdir(os.path.dirname(db))), ["app.db"])

if __name__ == "__main__":
    import unittest
    unittest.main()
