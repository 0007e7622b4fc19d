"""Situations apps meet, each checked against a native twin table in the same database.

The rule: a feox table does what SQLite does with a native table in the same place. Each test
runs the same statements on a feox table (kv) and on a native twin (nt, same columns) and compares
what the connections see, the error codes and whether the transaction is still open:
- PRAGMA max_page_count reached (SQLITE_FULL) by an autocommit INSERT, by the rows of a BEGIN
  written out at COMMIT, by feox_incr; a DELETE that frees nothing; writes after raising it;
- another process or connection DROPs the table and CREATEs one with the same name (other rows,
  other options), or RENAMEs it, also inside one transaction, while this connection has a warm
  cache and prepared statements; a SQL function called first after that (memory and store-file
  tables too: a call never writes to a dropped table's store);
- hostile names: a table named like another one's shadow table, quotes, spaces, unicode, 200
  characters, a schema attached as "we""ird", a table in the temp schema (memory only, private);
- PRAGMA journal_mode switched by another connection and process while caches are warm, and
  PRAGMA wal_checkpoint(TRUNCATE) from another process inside a read transaction here;
- a copy of the database file (cp, VACUUM INTO) open in the same process as the original, and a
  new database created at the path of a deleted one while a connection to the old one is open:
  no rows ever cross between them (memory-only tables included, also for a connection to the
  deleted file that first uses the table after the new one exists);
- the sqlite3 shell: .restore into a database another connection has a warm cache of, .backup,
  .import of a CSV file, and a .mode insert dump reloaded;
- statements that read the table they write (the Halloween problem): renames, copies, deletes by
  a subquery, OR REPLACE rewrites, key changes into existing keys under each OR clause;
- the table argument of the functions quoted and qualified as SQL names are, and on a table
  another connection dropped;
- forked children (multiprocessing, os.fork) writing through their own connections while the
  warm parent writes, and a child closing the connection it inherited;
- values and keys at the limits: 4 MiB values, 100 KiB keys, NUL bytes in keys, the empty key,
  SQLITE_LIMIT_LENGTH lowered below a stored value.
"""
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import unittest

from feoxtest import EXT, SQLITE3_SHELL, TempDirTestCase, connect

NATIVE = "CREATE TABLE nt(key TEXT PRIMARY KEY, value, ttl, ts) WITHOUT ROWID"


def rows(con, table):
    return con.execute(f'SELECT key, value, typeof(value) FROM "{table}" ORDER BY key').fetchall()


def quoted(name):
    return '"' + name.replace('"', '""') + '"'


def shell(db, script):
    """Run script in the sqlite3 shell on db with feox loaded; returns its stdout (stops at the
    first error, which fails the test)."""
    proc = subprocess.run([SQLITE3_SHELL, "-bail", "-cmd", ".load " + EXT, db], input=script,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"sqlite3 shell failed: {proc.stderr}")
    return proc.stdout


class TwinTestCase(TempDirTestCase):
    """A database app.db with a feox table kv and its native twin nt."""

    JOURNAL_MODE = "wal"
    KV_OPTIONS = ""

    def setUp(self):
        super().setUp()
        self.db = self.path("app.db")
        con = connect(self.db)
        con.execute(f"PRAGMA journal_mode = {self.JOURNAL_MODE}")
        con.execute(f"CREATE VIRTUAL TABLE kv USING feox{self.KV_OPTIONS}")
        con.execute(NATIVE)
        con.close()

    def open(self, path=None):
        con = connect(path or self.db)
        self.addCleanup(con.close)
        return con

    def both(self, con, sql, args=()):
        """Run sql (naming the table {t}) on kv and on nt: a list of (result or error name,
        transaction still open) for kv and nt."""
        seen = []
        for table in ("kv", "nt"):
            try:
                con.execute(sql.format(t=table), args).fetchall()
                seen.append(("ok", con.in_transaction))
            except sqlite3.Error as e:
                seen.append((e.sqlite_errorname, con.in_transaction))
        return seen

    def assertTwins(self, con, msg=""):
        self.assertEqual(rows(con, "kv"), rows(con, "nt"), msg)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok", msg)


class MaxPageCount(TwinTestCase):
    """PRAGMA max_page_count reached: SQLITE_FULL, with the message naming the table, the
    transaction rolled back as SQLite rolls back a native one, kv equal to nt on this and on a
    second connection, and writes working again once the limit is raised."""

    def fill_to_the_limit(self, con):
        for table in ("kv", "nt"):
            con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                            [(f"k{i:03}", "v" * 100) for i in range(40)])
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {pages}")

    def assertAfterFull(self, con):
        self.assertTwins(con)
        other = self.open()
        self.assertTwins(other)
        con.execute("PRAGMA max_page_count = 1000000")
        self.assertEqual(self.both(con, "INSERT INTO {t}(key, value) VALUES ('after', 1)"),
                         [("ok", False), ("ok", False)])
        self.assertTwins(con)
        self.assertTwins(other)

    def test_autocommit_insert(self):
        con = self.open()
        self.fill_to_the_limit(con)
        big = "INSERT INTO {t}(key, value) VALUES ('big', zeroblob(200000))"
        self.assertEqual(self.both(con, big), [("SQLITE_FULL", False), ("SQLITE_FULL", False)])
        with self.assertRaisesRegex(sqlite3.OperationalError, r"^feox: kv: .*full"):
            con.execute(big.format(t="kv"))
        self.assertAfterFull(con)

    def test_rows_of_a_transaction_written_at_commit(self):
        con = self.open()
        self.fill_to_the_limit(con)
        con.execute("INSERT INTO nt(key, value) VALUES ('twin', 1)")  # kv gets it below
        for table in ("kv", "nt"):
            con.execute("BEGIN")
            if table == "kv":
                con.execute("INSERT INTO kv(key, value) VALUES ('twin', 1)")
                con.execute("COMMIT")
                con.execute("BEGIN")
            with self.assertRaises(sqlite3.OperationalError) as cm:
                for i in range(2000):
                    con.execute(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                                (f"b{i:04}", "y" * 200))
                con.execute("COMMIT")  # kv: its rows are written here (xSync)
            self.assertEqual(cm.exception.sqlite_errorname, "SQLITE_FULL", table)
            self.assertFalse(con.in_transaction, table)  # SQLite rolled it back
        self.assertAfterFull(con)

    def test_a_native_statement_hitting_the_limit_inside_begin(self):
        """A one-row INSERT that fails with SQLITE_FULL rolls the whole transaction back (kv's
        rows and feox_incr with it); a multi-row one only itself (kv's rows stay and commit)."""
        con = self.open()
        con.execute("CREATE TABLE big(x)")
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {pages + 2}")
        failing = {False: "INSERT INTO big VALUES (zeroblob(50000))",
                   True: "INSERT INTO big SELECT zeroblob(3000) FROM (SELECT 1 UNION ALL "
                         "SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4)"}
        for multi_row, stays_open in ((False, False), (True, True)):
            con.execute("BEGIN")
            for table in ("kv", "nt"):
                con.execute(f"INSERT INTO {table}(key, value) VALUES (?, 1)", (f"a{multi_row}",))
            con.execute("SELECT feox_incr('kv', 'c', 1)")
            con.execute("INSERT OR REPLACE INTO nt(key, value) "
                        "VALUES ('c', coalesce((SELECT value FROM nt WHERE key = 'c'), 0) + 1)")
            with self.assertRaises(sqlite3.OperationalError) as cm:
                con.execute(failing[multi_row])
            self.assertEqual(cm.exception.sqlite_errorname, "SQLITE_FULL")
            self.assertEqual(con.in_transaction, stays_open)
            if con.in_transaction:
                con.execute("COMMIT")
            self.assertTwins(con)
            self.assertTwins(self.open())
        self.assertEqual(rows(con, "kv"), [("aTrue", 1, "integer"), ("c", 1, "integer")])

    def test_feox_incr_and_a_delete_that_frees_nothing(self):
        con = self.open()
        self.fill_to_the_limit(con)
        con.execute("PRAGMA max_page_count = {}".format(
            con.execute("PRAGMA page_count").fetchone()[0]))
        with self.assertRaises(sqlite3.OperationalError) as cm:
            con.execute("SELECT feox_incr('kv', zeroblob(90000) || 'x', 1)").fetchall()
        self.assertEqual(cm.exception.sqlite_errorname, "SQLITE_FULL")
        self.assertFalse(con.in_transaction)
        self.assertEqual(self.both(con, "DELETE FROM {t} WHERE key = 'absent'"),
                         [("ok", False), ("ok", False)])
        self.assertEqual(self.both(con, "DELETE FROM {t} WHERE key = 'k001'"),
                         [("ok", False), ("ok", False)])
        self.assertAfterFull(con)


class MaxPageCountRollbackJournal(MaxPageCount):
    JOURNAL_MODE = "delete"


class SchemaChangedElsewhere(TwinTestCase):
    """Another process or connection replaces or renames the table while this connection has a
    warm cache and prepared statements on it: the next statement here shows the new table."""

    def warm(self, con):
        for table in ("kv", "nt"):
            con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                            [(f"k{i}", i) for i in range(50)])
        self.assertTwins(con)
        con.execute("SELECT value FROM kv WHERE key = 'k5'").fetchall()  # cached statement

    def replace_in_shell(self, in_one_transaction):
        begin, commit = ("BEGIN;", "COMMIT;") if in_one_transaction else ("", "")
        shell(self.db, f"""{begin}
            DROP TABLE kv; CREATE VIRTUAL TABLE kv USING feox(max_memory='10MB');
            INSERT INTO kv(key, value) VALUES ('n1', 1), ('k5', 'new');
            DROP TABLE nt; {NATIVE};
            INSERT INTO nt(key, value) VALUES ('n1', 1), ('k5', 'new');
            {commit}""")

    def check_replaced(self, con):
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'k5'").fetchall(),
                         [("new",)])
        self.assertTwins(con)
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n1', 1)").fetchone()[0], 2)

    def test_drop_and_create_by_another_process(self):
        con = self.open()
        self.warm(con)
        self.replace_in_shell(False)
        self.check_replaced(con)

    def test_drop_and_create_in_one_transaction_of_another_process(self):
        con = self.open()
        self.warm(con)
        self.replace_in_shell(True)
        self.check_replaced(con)

    def test_a_function_call_is_the_first_statement_after_the_replacement(self):
        con = self.open()
        self.warm(con)
        self.replace_in_shell(False)
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n1', 1)").fetchone()[0], 2)
        con.execute("UPDATE nt SET value = 2 WHERE key = 'n1'")
        self.assertTwins(con)

    def test_rename_by_another_connection(self):
        con, other = self.open(), self.open()
        self.warm(con)
        for table in ("kv", "nt"):
            other.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
        other.execute("CREATE VIRTUAL TABLE kv USING feox")
        other.execute(NATIVE)
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 0)
        self.assertTwins(con)
        self.assertEqual(con.execute("SELECT count(*) FROM kv_old").fetchone()[0], 50)
        self.assertEqual(rows(con, "kv_old"), rows(con, "nt_old"))


class SchemaChangedElsewhereMemory(TwinTestCase):
    """The same with a memory-only table (shared by this process's connections to the file)."""

    KV_OPTIONS = "(path=':memory:')"

    def test_a_call_never_writes_to_a_table_another_connection_dropped(self):
        con, other = self.open(), self.open()
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone()[0], 1)
        other.execute("DROP TABLE kv")
        with self.assertRaisesRegex(sqlite3.OperationalError, "^feox: no such table: kv$"):
            con.execute("SELECT feox_incr('kv', 'n', 1)").fetchall()
        with self.assertRaisesRegex(sqlite3.OperationalError, "no such table: kv"):
            con.execute("SELECT * FROM kv").fetchall()

    def test_a_call_after_drop_and_create_by_another_connection_uses_the_new_table(self):
        con, other = self.open(), self.open()
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone()[0], 1)
        other.execute("DROP TABLE kv")
        other.execute(f"CREATE VIRTUAL TABLE kv USING feox{self.KV_OPTIONS}")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 5)").fetchone()[0], 5)
        self.assertEqual(other.execute("SELECT key, value FROM kv").fetchall(), [("n", 5)])


    def test_a_call_after_a_native_table_took_the_name(self):
        con, other = self.open(), self.open()
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")  # a cached statement holds kv
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone()[0], 1)
        other.execute("DROP TABLE kv")
        other.execute("CREATE TABLE kv(key, value)")
        for _ in range(2):
            with self.assertRaisesRegex(sqlite3.OperationalError, "^feox: kv is not a feox table$"):
                con.execute("SELECT feox_incr('kv', 'n', 1)").fetchall()
        self.assertEqual(con.execute("SELECT * FROM kv").fetchall(), [])

    def test_a_drop_not_committed_yet_changes_nothing_here(self):
        con, other = self.open(), self.open()
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        other.execute("BEGIN")
        other.execute("DROP TABLE kv")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone()[0], 1)
        other.execute("ROLLBACK")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone()[0], 2)
        self.assertEqual(other.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("a", 1), ("n", 2)])


class SchemaChangedElsewhereStoreFile(SchemaChangedElsewhereMemory):
    KV_OPTIONS = "(path='kv.feox')"


class HostileNames(TwinTestCase):
    NAMES = ['we"ird', "with space", "ünï©ødé ✓", "t" * 200, "it's", "[br]", "%s%n", "x;y"]

    def test_names_work_for_statements_functions_rename_and_drop(self):
        con = self.open()
        for name in self.NAMES:
            q = quoted(name)
            con.execute(f"CREATE VIRTUAL TABLE {q} USING feox")
            con.execute(f"INSERT INTO {q}(key, value) VALUES ('a', 1)")
            self.assertEqual(con.execute("SELECT feox_incr(?, 'c', 2)", (q,)).fetchone()[0], 2)
            self.assertEqual(con.execute("SELECT feox_check(?)", ("main." + q,)).fetchone()[0],
                             "ok")
            con.execute(f"ALTER TABLE {q} RENAME TO {quoted(name + '2')}")
            self.assertEqual(con.execute(f"SELECT key, value FROM {quoted(name + '2')} "
                                         "ORDER BY key").fetchall(), [("a", 1), ("c", 2)])
            con.execute(f"DROP TABLE {quoted(name + '2')}")
        self.assertEqual(con.execute("SELECT name FROM sqlite_schema WHERE name NOT IN "
                                     "('kv', 'nt') AND name NOT LIKE 'kv\\_%' ESCAPE '\\'")
                         .fetchall(), [])
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted(f for f in os.listdir(self.dir) if f.startswith("app.db")))

    def test_shadow_table_names_taken(self):
        con = self.open()
        with self.assertRaisesRegex(sqlite3.OperationalError, "table kv_data already exists"):
            con.execute("CREATE VIRTUAL TABLE kv_data USING feox")
        con.execute("CREATE TABLE y_data(a)")
        con.execute("INSERT INTO y_data VALUES (1)")
        with self.assertRaisesRegex(sqlite3.OperationalError, "^feox: y: .*y_data.*exists"):
            con.execute("CREATE VIRTUAL TABLE y USING feox")
        self.assertEqual(con.execute("SELECT * FROM y_data").fetchall(), [(1,)])
        self.assertEqual(con.execute("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'y%'")
                         .fetchone()[0], 1)

    def test_schema_attached_under_a_quoted_name(self):
        con = self.open()
        con.execute('ATTACH ? AS "we""ird"', (self.path("b.db"),))
        con.execute('CREATE VIRTUAL TABLE "we""ird".kv USING feox')
        con.execute('INSERT INTO "we""ird".kv(key, value) VALUES (1, 2)')
        self.assertEqual(con.execute("SELECT feox_incr('we\"ird.kv', 'c', 1)").fetchone()[0], 1)
        self.assertEqual(con.execute('SELECT key, value FROM "we""ird".kv ORDER BY key')
                         .fetchall(), [("1", 2), ("c", 1)])
        con.execute('ALTER TABLE "we""ird".kv RENAME TO kv2')
        self.assertEqual(con.execute('SELECT count(*) FROM "we""ird".kv2').fetchone()[0], 2)
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 0)

    def test_temp_schema_table_is_memory_only_and_private(self):
        con, other = self.open(), self.open()
        for c in (con, other):
            c.execute("CREATE VIRTUAL TABLE temp.kv USING feox")
        con.execute("INSERT INTO temp.kv(key, value) VALUES ('t', 1)")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 't', 1)").fetchone()[0], 2)
        stats = con.execute("SELECT feox_stats('temp.kv')").fetchone()[0]
        self.assertIn('"persistent":false', stats)
        self.assertEqual(other.execute("SELECT count(*) FROM temp.kv").fetchone()[0], 0)
        self.assertEqual(con.execute("SELECT count(*) FROM main.kv").fetchone()[0], 0)
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted(f for f in os.listdir(self.dir) if f.startswith("app.db")))


class JournalModeAndCheckpoint(TwinTestCase):
    JOURNAL_MODE = "delete"

    def write_both(self, con, key):
        for table in ("kv", "nt"):
            con.execute(f"INSERT INTO {table}(key, value) VALUES (?, 1)", (key,))

    def test_journal_mode_switched_by_others_while_caches_are_warm(self):
        con, other = self.open(), self.open()
        self.write_both(con, "a")
        self.assertTwins(con)
        self.assertEqual(other.execute("PRAGMA journal_mode = wal").fetchone()[0], "wal")
        self.write_both(other, "b")
        self.assertTwins(con)
        self.write_both(con, "c")
        self.assertTwins(other)
        # SQLite refuses to leave WAL while another connection has the database open
        with self.assertRaises(sqlite3.OperationalError):
            other.execute("PRAGMA journal_mode = delete")
        shell(self.db, "INSERT INTO kv(key, value) VALUES ('d', 1);"
                       "INSERT INTO nt(key, value) VALUES ('d', 1);")
        self.assertTwins(con)
        self.assertTwins(other)

    def test_checkpoint_truncate_inside_a_read_transaction(self):
        con = self.open()
        con.execute("PRAGMA journal_mode = wal")
        self.write_both(con, "a")
        for step in range(2):
            con.execute("BEGIN")
            if step == 0:
                before = rows(con, "kv")
            else:
                before = rows(con, "nt")  # the snapshot starts on the native table
            out = shell(self.db, f"INSERT INTO kv(key, value) VALUES ('x{step}', 1);"
                                 f"INSERT INTO nt(key, value) VALUES ('x{step}', 1);"
                                 "PRAGMA wal_checkpoint(TRUNCATE);")
            self.assertTrue(out.startswith("1|"), out)  # busy: this reader holds its snapshot
            self.assertEqual(rows(con, "kv"), before)
            self.assertEqual(rows(con, "nt"), before)
            con.execute("COMMIT")
            self.assertTwins(con)
        shell(self.db, "PRAGMA wal_checkpoint(TRUNCATE);")
        self.assertEqual(os.path.getsize(self.db + "-wal"), 0)
        self.write_both(con, "y")
        self.assertTwins(con)
        self.assertTwins(self.open())


class CopiesOpenTogether(TwinTestCase):
    """The original and its copies are different databases: nothing one writes shows in another,
    whatever the table's mode."""

    def fill(self):
        con = connect(self.db)
        for table in ("kv", "nt"):
            con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                            [(f"k{i}", i) for i in range(10)])
        con.close()

    def test_cp_and_vacuum_into_open_beside_the_original(self):
        self.fill()
        shutil.copy(self.db, self.path("copy.db"))
        original, copy = self.open(), self.open(self.path("copy.db"))
        self.write_both(original, "only_original")
        self.write_both(copy, "only_copy")
        copy.execute("SELECT feox_incr('kv', 'k1', 100)")
        copy.execute("UPDATE nt SET value = value + 100 WHERE key = 'k1'")
        original.execute(f"VACUUM INTO '{self.path('vacuumed.db')}'")
        vacuumed = self.open(self.path("vacuumed.db"))
        self.write_both(vacuumed, "only_vacuumed")
        self.write_both(original, "only_original_2")
        for con in (original, copy, vacuumed):
            self.assertTwins(con)
        self.assertEqual([k for k, _, _ in rows(original, "kv") if k.startswith("only")],
                         ["only_original", "only_original_2"])
        self.assertEqual([k for k, _, _ in rows(copy, "kv") if k.startswith("only")],
                         ["only_copy"])
        self.assertEqual([k for k, _, _ in rows(vacuumed, "kv") if k.startswith("only")],
                         ["only_original", "only_vacuumed"])

    def write_both(self, con, key):
        for table in ("kv", "nt"):
            con.execute(f"INSERT INTO {table}(key, value) VALUES (?, 1)", (key,))

    # What a write through a connection to the deleted database gets, on kv and on nt (each: the
    # result, and whether a transaction is still open). WAL: the unlinked file takes it.
    WRITE_TO_THE_DELETED_ONE = ("ok", False)

    def test_a_new_database_at_the_path_of_a_deleted_one(self):
        """Every variant (in the database, rollback journal, memory table): the connection to
        the deleted file and the new database never see each other's rows."""
        old = self.open()
        self.write_both(old, "old")
        for name in os.listdir(self.dir):
            os.unlink(self.path(name))
        new = self.open()
        new.execute(f"PRAGMA journal_mode = {self.JOURNAL_MODE}")
        new.execute(f"CREATE VIRTUAL TABLE kv USING feox{self.KV_OPTIONS}")
        new.execute(NATIVE)
        self.assertEqual(rows(new, "kv"), [])
        self.write_both(new, "new")
        self.assertTwins(new)
        self.assertEqual([k for k, _, _ in rows(old, "kv")], ["old"])
        self.assertTwins(old)
        self.assertEqual(self.both(old, "INSERT INTO {t}(key, value) VALUES ('old2', 1)"),
                         [self.WRITE_TO_THE_DELETED_ONE] * 2)
        self.assertEqual([k for k, _, _ in rows(new, "kv")], ["new"])
        fresh = self.open()
        self.assertEqual([k for k, _, _ in rows(fresh, "kv")], ["new"])
        self.assertTwins(fresh)


class CopiesOpenTogetherRollbackJournal(CopiesOpenTogether):
    JOURNAL_MODE = "delete"
    # SQLite refuses to write a database file that was unlinked
    WRITE_TO_THE_DELETED_ONE = ("SQLITE_READONLY_DBMOVED", False)


class CopiesOpenTogetherMemoryTable(CopiesOpenTogether):
    """A memory-only table in a file database is shared by the process's connections to that
    database, and only to that one: not to a copy, not to a new file at the same path."""

    KV_OPTIONS = "(path=':memory:')"

    def fill(self):
        pass  # a memory table's rows do not travel with the file

    def assertTwins(self, con, msg=""):
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok", msg)

    def test_cp_and_vacuum_into_open_beside_the_original(self):
        first = self.open()
        first.execute("INSERT INTO kv(key, value) VALUES ('before_copy', 1)")
        shutil.copy(self.db, self.path("copy.db"))
        first.execute(f"VACUUM INTO '{self.path('vacuumed.db')}'")
        copy, vacuumed = self.open(self.path("copy.db")), self.open(self.path("vacuumed.db"))
        for con in (copy, vacuumed):
            self.assertEqual(rows(con, "kv"), [])
            con.execute("SELECT feox_incr('kv', 'n', 1)")
        first.execute("INSERT INTO kv(key, value) VALUES ('after_copy', 1)")
        self.assertEqual([k for k, _, _ in rows(self.open(), "kv")], ["after_copy", "before_copy"])
        for con in (copy, vacuumed):
            self.assertEqual(rows(con, "kv"), [("n", 1, "integer")])

    def test_a_connection_to_the_deleted_one_that_connects_the_table_after(self):
        old = self.open()
        old.execute("INSERT INTO kv(key, value) VALUES ('old', 1)")
        late = self.open()
        late.execute("SELECT count(*) FROM nt").fetchall()  # the old file's schema, kv unused
        for name in os.listdir(self.dir):
            os.unlink(self.path(name))
        new = self.open()
        new.execute(f"CREATE VIRTUAL TABLE kv USING feox{self.KV_OPTIONS}")
        new.execute("INSERT INTO kv(key, value) VALUES ('new', 1)")
        # late's database is the deleted file: never the new database's rows
        self.assertNotIn("new", [k for k, _, _ in rows(late, "kv")])
        late.execute("INSERT INTO kv(key, value) VALUES ('late', 1)")
        self.assertEqual([k for k, _, _ in rows(new, "kv")], ["new"])
        self.assertEqual([k for k, _, _ in rows(old, "kv")], ["old"])


class ShellCommands(TwinTestCase):
    def fill(self, path, prefix, n):
        con = connect(path)
        con.execute(f"PRAGMA journal_mode = {self.JOURNAL_MODE}")
        con.execute("CREATE VIRTUAL TABLE IF NOT EXISTS kv USING feox")
        con.execute(NATIVE.replace("TABLE", "TABLE IF NOT EXISTS"))
        for table in ("kv", "nt"):
            con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                            [(f"{prefix}{i}", i) for i in range(n)])
        con.close()

    def test_restore_into_a_database_with_a_warm_cache(self):
        source = self.path("source.db")
        self.fill(source, "s", 20)
        self.fill(self.db, "a", 50)
        con = self.open()
        self.assertTwins(con)
        shell(self.db, f".restore {source}\n")
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'a3'").fetchall(), [])
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 's3'").fetchall(), [(3,)])
        self.assertTwins(con)
        self.assertEqual(self.both(con, "INSERT INTO {t}(key, value) VALUES ('after', 1)"),
                         [("ok", False), ("ok", False)])
        self.assertTwins(con)
        shell(self.db, f".backup {self.path('backup.db')}\n")
        self.assertTwins(self.open(self.path("backup.db")))

    def test_restore_of_a_database_without_the_table(self):
        source = self.path("source.db")
        connect(source).execute("CREATE TABLE other(a)").connection.close()
        self.fill(self.db, "a", 5)
        con = self.open()
        self.assertTwins(con)
        shell(self.db, f".restore {source}\n")
        for sql in ("SELECT * FROM kv", "SELECT * FROM nt"):
            with self.assertRaisesRegex(sqlite3.OperationalError, "no such table"):
                con.execute(sql).fetchall()

    def test_import_csv(self):
        csv = self.path("in.csv")
        with open(csv, "w") as f:
            f.write('key,value,ttl,ts\nc1,hello,,\nc2,42,,\nc3,3.5,,\n"c,4","multi\nline",,\n')
        shell(self.db, f".import --csv --skip 1 {csv} kv\n.import --csv --skip 1 {csv} nt\n")
        con = self.open()
        self.assertTwins(con)
        self.assertEqual(len(rows(con, "kv")), 4)

    def test_mode_insert_dump_reloads(self):
        self.fill(self.db, "a", 30)
        con = self.open()
        con.execute("INSERT INTO kv(key, value) VALUES ('blob', x'00ff'), ('real', 2.5), "
                    "('null', NULL), ('quote', 'it''s')")
        dump = shell(self.db, ".mode insert kv\nSELECT * FROM kv;\n")
        fresh = self.path("fresh.db")
        connect(fresh).execute("CREATE VIRTUAL TABLE kv USING feox").connection.close()
        shell(fresh, dump)
        again = self.open(fresh)
        query = "SELECT key, value, typeof(value), ts FROM kv ORDER BY key"
        self.assertEqual(again.execute(query).fetchall(), con.execute(query).fetchall())


class SelfReferencingStatements(TwinTestCase):
    """The Halloween problem: a statement that reads the table it writes sees each row once, as
    SQLite's native table does (SQLite collects the rows of a one-pass-unsafe statement first):
    every row renamed exactly once, copied once, the first ten deleted, every value rewritten
    once; a key changed into one that exists follows the OR clause as native does (the error
    code is the plain SQLITE_CONSTRAINT SQLite needs from a virtual table to apply OR clauses,
    native says SQLITE_CONSTRAINT_PRIMARYKEY). Autocommit and inside BEGIN; 1200 rows.
    changes() is compared, not total_changes: that one also counts the shadow-table rows a table
    in the database writes, as it counts FTS5's and R*Tree's."""

    ROWS = 1200
    STATEMENTS = [
        "UPDATE {t} SET key = key || 'x'",
        "UPDATE {t} SET key = 'p' || key WHERE key > 'm'",
        "INSERT INTO {t}(key, value) SELECT key || 'c', value FROM {t}",
        "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} ORDER BY key LIMIT 10)",
        "INSERT OR REPLACE INTO {t}(key, value) SELECT key, value || '!' FROM {t}",
        "UPDATE {t} SET key = 'k0011x' WHERE key = 'k0012x'",
        "UPDATE OR REPLACE {t} SET key = 'k0013x' WHERE key = 'k0014x'",
        "UPDATE OR IGNORE {t} SET key = 'k0015x' WHERE key = 'k0016x'",
        "UPDATE OR ROLLBACK {t} SET key = 'k0017x' WHERE key = 'k0018x'",
        "UPDATE OR IGNORE {t} SET key = substr(key, 1, 4) || 'z'",
        "UPDATE OR REPLACE {t} SET key = substr(key, 1, 4) || 'q'",
        "UPDATE OR FAIL {t} SET key = substr(key, 1, 3)",
        "UPDATE OR ABORT {t} SET key = substr(key, 1, 3)",
        "UPDATE {t} SET key = key || 'x', value = value || key",
    ]

    def run_all(self, in_begin):
        con = self.open()
        con.execute("BEGIN")
        for table in ("kv", "nt"):
            con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                            [(f"k{i:04}", f"v{i}") for i in range(self.ROWS)])
        con.execute("COMMIT")
        other = self.open()
        for sql in self.STATEMENTS:
            seen = []
            for table in ("kv", "nt"):
                if in_begin:
                    con.execute("BEGIN")
                try:
                    con.execute(sql.format(t=table)).fetchall()
                    outcome = "ok"
                except sqlite3.IntegrityError as e:
                    outcome = e.sqlite_errorcode & 0xff, str(e).replace(f"{table}.", "t.")
                changed = con.execute("SELECT changes()").fetchone()[0]
                seen.append((outcome, changed, con.in_transaction))
                if con.in_transaction:
                    con.execute("COMMIT")
            self.assertEqual(seen[0], seen[1], sql)
            self.assertTwins(con, sql)
            self.assertTwins(other, sql)
        self.assertEqual(len(rows(con, "kv")), 120)  # the last four statements merged keys

    def test_autocommit(self):
        self.run_all(in_begin=False)

    def test_inside_begin(self):
        self.run_all(in_begin=True)


class SelfReferencingStatementsRollbackJournal(SelfReferencingStatements):
    JOURNAL_MODE = "delete"


class SelfReferencingStatementsMemoryTable(SelfReferencingStatements):
    KV_OPTIONS = "(path=':memory:')"


class SelfReferencingStatementsMemoryTableRollbackJournal(SelfReferencingStatements):
    JOURNAL_MODE = "delete"
    KV_OPTIONS = "(path=':memory:')"


class FunctionTableNames(TwinTestCase):
    """The table argument of the functions reads as SQL names do: [schema.]table, each part bare
    or quoted ("..", [..], `..`, a doubled quote inside). A bare part before a dot is a schema
    only if the connection has a database of that name ('main.kv' means what it means in SQL,
    whatever tables exist); otherwise the whole text is the table's name."""

    def call(self, con, name):
        return con.execute("SELECT feox_incr(?, 'n', 1)", (name,)).fetchone()[0]

    def test_table_with_a_dot_in_its_name(self):
        con = self.open()
        con.execute('CREATE VIRTUAL TABLE "x.y" USING feox')
        for i, name in enumerate(['x.y', '"x.y"', "main.x.y", 'main."x.y"', "[x.y]", "`x.y`",
                                  "main.[x.y]", '"main"."x.y"'], start=1):
            self.assertEqual(self.call(con, name), i, name)
        self.assertEqual(con.execute('SELECT value FROM "x.y"').fetchall(), [(8,)])

    def test_schema_with_a_dot_and_a_quote_in_its_name(self):
        con = self.open()
        con.execute('ATTACH ? AS "a.b"', (self.path("b.db"),))
        con.execute('ATTACH ? AS "we""ird"', (self.path("c.db"),))
        con.execute('CREATE VIRTUAL TABLE "a.b".kv USING feox')
        con.execute('CREATE VIRTUAL TABLE "we""ird".kv USING feox')
        for i, name in enumerate(['"a.b".kv', "a.b.kv", "[a.b].kv", '"a.b"."kv"'], start=1):
            self.assertEqual(self.call(con, name), i, name)
        for i, name in enumerate(['"we""ird".kv', 'we"ird.kv', '[we"ird].kv', '`we"ird`.kv',
                                  '"we""ird"."kv"'], start=1):
            self.assertEqual(self.call(con, name), i, name)
        self.assertEqual(con.execute('SELECT value FROM "a.b".kv').fetchall(), [(4,)])
        self.assertEqual(con.execute('SELECT value FROM "we""ird".kv').fetchall(), [(5,)])
        self.assertEqual(con.execute("SELECT count(*) FROM main.kv").fetchone()[0], 0)

    def test_a_schema_name_wins_over_a_table_named_with_its_dot(self):
        """'aux.kv' is aux's kv even when main has a table named "aux.kv" (as in SQL); that one
        is '"aux.kv"' or 'main."aux.kv"'."""
        con = self.open()
        con.execute("ATTACH ? AS aux", (self.path("b.db"),))
        con.execute("CREATE VIRTUAL TABLE aux.kv USING feox")
        con.execute('CREATE VIRTUAL TABLE "aux.kv" USING feox')
        self.assertEqual(self.call(con, "aux.kv"), 1)
        self.assertEqual(self.call(con, "AUX.kv"), 2)
        self.assertEqual(self.call(con, '"aux.kv"'), 1)
        self.assertEqual(self.call(con, 'main."aux.kv"'), 2)
        self.assertEqual(con.execute("SELECT value FROM aux.kv").fetchall(), [(2,)])
        self.assertEqual(con.execute('SELECT value FROM "aux.kv"').fetchall(), [(2,)])

    def test_bracket_and_backquote_forms_and_errors(self):
        con = self.open()
        con.execute('CREATE VIRTUAL TABLE "[br]" USING feox')
        con.execute('CREATE VIRTUAL TABLE "q`t" USING feox')
        self.assertEqual(self.call(con, '"[br]"'), 1)
        self.assertEqual(self.call(con, "`q``t`"), 1)
        self.assertEqual(self.call(con, "[kv]"), 1)
        for name in ['"kv', "[kv", "`kv", '"kv"x', '"main".', 'main."kv"x', '"main"x.kv',
                     "main.", "[[br]]"]:  # no escapes inside [...]: as in SQL, "[br]" has no [...] form
            with self.assertRaisesRegex(sqlite3.OperationalError,
                                        "^feox: malformed table name: ", msg=name):
                self.call(con, name)
        for name, shown in [("nope", "nope"), ("main.nope", "main.nope"),
                            ('"main"."no""pe"', 'main.no"pe'), ("zz.kv", "zz.kv"),
                            ("[[br]", "[br")]:
            with self.assertRaises(sqlite3.OperationalError, msg=name) as cm:
                self.call(con, name)
            self.assertEqual(str(cm.exception), "feox: no such table: " + shown)
        self.assertEqual(self.call(con, "main.kv"), 2)
        self.assertEqual(con.execute("SELECT value FROM kv").fetchall(), [(2,)])

    def test_table_dropped_by_another_connection(self):
        """A function on a table another connection dropped says what SQLite says of it (not
        what the shadow tables' disappearance looked like from inside)."""
        con = self.open()
        con.execute("SELECT feox_incr('kv', 'n', 1)").fetchall()  # warm cache and statements
        self.open().execute("DROP TABLE kv")
        for call in ("feox_incr('kv', 'n', 1)", "feox_incr('main.kv', 'n', 1)",
                     "feox_stats('kv')", "feox_cas('kv', 'n', 1, 2)"):
            with self.assertRaises(sqlite3.OperationalError, msg=call) as cm:
                con.execute("SELECT " + call).fetchall()
            shown = "main.kv" if "main." in call else "kv"
            self.assertEqual(str(cm.exception), "feox: no such table: " + shown, call)
            self.assertFalse(con.in_transaction)
        with self.assertRaisesRegex(sqlite3.OperationalError, "^no such table: kv$"):
            con.execute("SELECT * FROM kv")


def forked_child_writes(db, child, rounds):
    """A forked child's work: its own new connection adds rounds to the counter 'hits' of kv (by
    feox_incr) and of nt (by SQL), and inserts its row into both."""
    con = connect(db)
    for _ in range(rounds):
        con.execute("SELECT feox_incr('kv', 'hits', 1)").fetchall()
        con.execute("UPDATE nt SET value = value + 1 WHERE key = 'hits'")
    for table in ("kv", "nt"):
        con.execute(f"INSERT INTO {table}(key, value) VALUES (?, ?)", (f"child{child}", child))
    con.close()


@unittest.skipUnless(hasattr(os, "fork"), "no fork()")
class ForkedChildren(TwinTestCase):
    """A parent with a warm cache forks (multiprocessing's fork start method, os.fork): children
    open connections of their own and write while the parent writes too; the totals are exact and
    the parent's own connection sees every child's commit. A child that only closes the
    connection it inherited (what SQLite allows) breaks nothing in the parent, also while the
    parent has a transaction open."""

    CHILDREN, ROUNDS = 4, 40

    def warm_parent(self):
        con = self.open()
        con.execute("BEGIN")
        for table in ("kv", "nt"):
            con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                            [(f"k{i:04}", i) for i in range(500)])
            con.execute(f"INSERT INTO {table}(key, value) VALUES ('hits', 0)")
        con.execute("COMMIT")
        self.assertTwins(con)  # every row in the parent's cache
        return con

    def parent_writes(self, con, rounds):
        for _ in range(rounds):
            con.execute("SELECT feox_incr('kv', 'hits', 1)").fetchall()
            con.execute("UPDATE nt SET value = value + 1 WHERE key = 'hits'")

    def assertHits(self, con, hits):
        self.assertTwins(con)
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'hits'").fetchone()[0],
                         hits)

    def test_multiprocessing_fork_children_write_through_new_connections(self):
        con = self.warm_parent()
        fork = multiprocessing.get_context("fork")
        children = [fork.Process(target=forked_child_writes, args=(self.db, i, self.ROUNDS))
                    for i in range(self.CHILDREN)]
        for child in children:
            child.start()
        self.parent_writes(con, self.ROUNDS)
        for child in children:
            child.join()
        self.assertEqual([child.exitcode for child in children], [0] * self.CHILDREN)
        self.assertHits(con, (self.CHILDREN + 1) * self.ROUNDS)
        self.assertEqual(len(rows(con, "kv")), 501 + self.CHILDREN)
        self.parent_writes(con, 1)
        self.assertHits(self.open(), (self.CHILDREN + 1) * self.ROUNDS + 1)

    def test_os_fork_children_write_through_new_connections(self):
        con = self.warm_parent()
        pids = []
        for i in range(self.CHILDREN):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    forked_child_writes(self.db, i, self.ROUNDS)
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        self.parent_writes(con, self.ROUNDS)
        self.assertEqual([os.waitpid(pid, 0)[1] for pid in pids], [0] * self.CHILDREN)
        self.assertHits(con, (self.CHILDREN + 1) * self.ROUNDS)
        self.assertHits(self.open(), (self.CHILDREN + 1) * self.ROUNDS)

    def close_in_child(self, con):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                con.close()
                code = 0
            finally:
                os._exit(code)
        self.assertEqual(os.waitpid(pid, 0)[1], 0)

    def test_child_closes_the_inherited_connection(self):
        con = self.warm_parent()
        fork = multiprocessing.get_context("fork")
        closer = fork.Process(target=con.close)
        closer.start()
        closer.join()
        self.assertEqual(closer.exitcode, 0)
        self.parent_writes(con, 3)
        self.close_in_child(con)
        self.parent_writes(con, 3)
        self.assertHits(con, 6)
        con.execute("BEGIN")
        self.parent_writes(con, 3)
        for table in ("kv", "nt"):
            con.execute(f"INSERT INTO {table}(key, value) VALUES ('in-begin', 1)")
        self.close_in_child(con)
        self.parent_writes(con, 3)
        con.execute("COMMIT")
        self.assertHits(con, 12)
        other = self.open()
        self.assertHits(other, 12)
        self.assertEqual(other.execute("PRAGMA integrity_check").fetchall(), [("ok",)])


class ForkedChildrenRollbackJournal(ForkedChildren):
    JOURNAL_MODE = "delete"


MAX_VALUE = 4 * 1024 * 1024  # README, Limits
MAX_KEY = 100 * 1024


class ValuesAndKeysAtTheLimits(TwinTestCase):
    """Values and keys at feox's documented limits, through SQL on a table in the database. Where
    feox has a limit SQLite does not (a value over 4 MiB, a key over 100 KiB, the empty key) the
    write fails with a message naming the table and the cause and nothing is written; everywhere
    else kv does what nt does."""

    def assertRefused(self, con, sql, args, errorname, message):
        with self.assertRaises(sqlite3.Error) as cm:
            con.execute(sql, args)
        self.assertEqual(cm.exception.sqlite_errorname, errorname)
        self.assertEqual(str(cm.exception), message)

    def test_a_value_of_the_maximum_size_and_one_byte_over(self):
        con = self.open()
        for table in ("kv", "nt"):
            con.execute(f"INSERT INTO {table}(key, value) VALUES ('blob', zeroblob(?))",
                        (MAX_VALUE,))
            con.execute(f"INSERT INTO {table}(key, value) VALUES ('text', ?)", ("t" * MAX_VALUE,))
        self.assertTwins(con)
        over = "value is longer than 4194304 bytes"
        for sql in ("INSERT INTO kv(key, value) VALUES ('over', zeroblob(?))",
                    "INSERT OR REPLACE INTO kv(key, value) VALUES ('blob', zeroblob(?))",
                    "UPDATE kv SET value = zeroblob(?) WHERE key = 'text'"):
            self.assertRefused(con, sql, (MAX_VALUE + 1,), "SQLITE_TOOBIG", "feox: kv: " + over)
        self.assertRefused(con, "INSERT INTO kv(key, value) VALUES ('over', ?)",
                           ("t" * (MAX_VALUE + 1),), "SQLITE_TOOBIG", "feox: kv: " + over)
        con.execute("BEGIN")
        con.execute("INSERT INTO kv(key, value) VALUES ('in-begin', 1)")
        with self.assertRaises(sqlite3.DataError):
            con.execute("INSERT INTO kv(key, value) VALUES ('over', zeroblob(?))", (MAX_VALUE + 1,))
        self.assertTrue(con.in_transaction)  # the statement failed, not the transaction
        con.execute("COMMIT")
        con.execute("INSERT INTO nt(key, value) VALUES ('in-begin', 1)")
        self.assertTwins(con)
        self.assertTwins(self.open())
        self.assertEqual(self.open().execute("SELECT length(value) FROM kv WHERE key = 'blob'")
                         .fetchone()[0], MAX_VALUE)

    def test_keys_with_nul_bytes(self):
        con = self.open()
        con.execute("CREATE VIRTUAL TABLE kb USING feox(keytype=blob)")
        con.execute("CREATE TABLE nb(key BLOB PRIMARY KEY, value, ttl, ts) WITHOUT ROWID")
        for feox, native, keys in (("kv", "nt", ["a\0b", "a\0c", "a", "\0", "\0\0"]),
                                   ("kb", "nb", [b"a\0b", b"a\0c", b"a", b"\0", b"\0\0"])):
            for table in (feox, native):
                con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)",
                                [(k, i) for i, k in enumerate(keys)])
            for query in ("SELECT hex(key), typeof(key), value FROM {t} ORDER BY key",
                          "SELECT hex(key), value FROM {t} WHERE key = ?",
                          "SELECT hex(key), value FROM {t} WHERE key > ? ORDER BY key"):
                args = (keys[0],) if "?" in query else ()
                self.assertEqual(con.execute(query.format(t=feox), args).fetchall(),
                                 con.execute(query.format(t=native), args).fetchall(), query)
            for table in (feox, native):
                con.execute(f"UPDATE {table} SET value = 'u' WHERE key = ?", (keys[1],))
                con.execute(f"DELETE FROM {table} WHERE key = ?", (keys[3],))
            query = "SELECT hex(key), value FROM {t} ORDER BY key"
            for c in (con, self.open()):
                self.assertEqual(c.execute(query.format(t=feox)).fetchall(),
                                 c.execute(query.format(t=native)).fetchall())
                self.assertEqual(c.execute(f"SELECT feox_check('{feox}')").fetchone()[0], "ok")

    def test_the_empty_key_is_refused(self):
        """Keys are 1 byte or more (README, Columns): nt takes '' and x'', kv refuses both."""
        con = self.open()
        con.execute("CREATE VIRTUAL TABLE kb USING feox(keytype=blob)")
        for table, key in (("kv", ""), ("kb", b"")):
            self.assertRefused(con, f"INSERT INTO {table}(key, value) VALUES (?, 1)", (key,),
                               "SQLITE_CONSTRAINT", f"feox: {table}: key may not be empty")
        con.execute("INSERT INTO nt(key, value) VALUES ('', 1)")
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 0)
        con.execute("INSERT OR IGNORE INTO kv(key, value) VALUES ('', 1)")  # skipped, as a conflict
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 0)

    def test_a_key_of_the_maximum_length_and_one_byte_over(self):
        con = self.open()
        key = "k" * MAX_KEY
        for table in ("kv", "nt"):
            con.execute(f"INSERT INTO {table}(key, value) VALUES (?, 1)", (key,))
            con.execute(f"UPDATE {table} SET value = 2 WHERE key = ?", (key,))
        self.assertRefused(con, "INSERT INTO kv(key, value) VALUES (?, 1)", (key + "k",),
                           "SQLITE_TOOBIG", "feox: kv: key is longer than 102400 bytes")
        self.assertRefused(con, "UPDATE kv SET key = key || 'k'", (), "SQLITE_TOOBIG",
                           "feox: kv: key is longer than 102400 bytes")
        for c in (con, self.open()):
            self.assertTwins(c)
            self.assertEqual(c.execute("SELECT length(key), value FROM kv WHERE key = ?", (key,))
                             .fetchall(), [(MAX_KEY, 2)])


class LimitLengthLowered(TwinTestCase):
    """SQLITE_LIMIT_LENGTH lowered below a stored value: kv does what nt does (but for
    length(value), below)."""

    def lowered_limit(self, con):
        con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
        return con

    def fill_one_big_value(self):
        con = self.open()
        for table in ("kv", "nt"):
            con.execute(f"INSERT INTO {table}(key, value) VALUES ('big', zeroblob(5000)), "
                        "('small', 1)")
        return con

    def test_limit_length_lowered_below_a_stored_value(self):
        """A warm cache: reading the value says what SQLite says for the native row (SQLITE_TOOBIG,
        "string or blob too big"), the other rows read as before. length(value) differs: SQLite
        reads a native value's length from the record header, while a virtual table must hand
        over the whole value, which the limit refuses."""
        con = self.lowered_limit(self.fill_one_big_value())
        for query in ("SELECT value FROM {t} WHERE key = 'big'", "SELECT * FROM {t}"):
            errors = []
            for table in ("kv", "nt"):
                with self.assertRaises(sqlite3.DataError) as cm:
                    con.execute(query.format(t=table)).fetchall()
                errors.append((cm.exception.sqlite_errorname, str(cm.exception)))
            self.assertEqual(errors, [("SQLITE_TOOBIG", "string or blob too big")] * 2, query)
        for query in ("SELECT key, value FROM {t} WHERE key = 'small'", "SELECT count(*) FROM {t}",
                      "SELECT key FROM {t} ORDER BY key"):
            self.assertEqual(con.execute(query.format(t="kv")).fetchall(),
                             con.execute(query.format(t="nt")).fetchall(), query)
        self.assertEqual(con.execute("SELECT length(value) FROM nt WHERE key = 'big'").fetchall(),
                         [(5000,)])
        with self.assertRaisesRegex(sqlite3.DataError, "^string or blob too big$"):
            con.execute("SELECT length(value) FROM kv WHERE key = 'big'").fetchall()

    def assertValueTooBig(self, con, key):
        """Reading key's value fails as reading the native row's does."""
        for query in ("SELECT value FROM {t} WHERE key = ?", "SELECT * FROM {t} WHERE key >= ?"):
            errors = []
            for table in ("kv", "nt"):
                with self.assertRaises(sqlite3.DataError) as cm:
                    con.execute(query.format(t=table), (key,)).fetchall()
                errors.append((cm.exception.sqlite_errorname, str(cm.exception)))
            self.assertEqual(errors, [("SQLITE_TOOBIG", "string or blob too big")] * 2, query)

    def assertSame(self, con, query, args=()):
        self.assertEqual(con.execute(query.format(t="kv"), args).fetchall(),
                         con.execute(query.format(t="nt"), args).fetchall(), query)

    def assertOtherRowsAndWritesWork(self, con, key_past_big):
        """Every other row reads as nt's, scans that read no value pass the big one, writes
        work, feox_check says ok."""
        for query in ("SELECT key, value FROM {t} WHERE key = 'small'", "SELECT count(*) FROM {t}",
                      "SELECT key, length(key) FROM {t} ORDER BY key",
                      "SELECT key, value FROM {t} WHERE key >= ? ORDER BY key"):
            self.assertSame(con, query, (key_past_big,) if "?" in query else ())
        for sql in ("UPDATE {t} SET value = 2 WHERE key = 'small'",
                    "INSERT INTO {t}(key, value) VALUES ('new', 3)",
                    "DELETE FROM {t} WHERE key = 'new'"):
            con.execute(sql.format(t="kv"))
            con.execute(sql.format(t="nt"))
        self.assertSame(con, "SELECT key, value FROM {t} WHERE key IN ('small', 'new')")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")

    def test_limit_length_lowered_on_a_new_connection(self):
        """A connection that lowers the limit before its cache is loaded: the load reads the
        value over the limit too (the backend lifts the limit for its own reads), so only handing
        that value to SQLite fails, as for the native row."""
        self.fill_one_big_value()
        con = self.lowered_limit(self.open())
        self.assertOtherRowsAndWritesWork(con, "c")
        self.assertValueTooBig(con, "big")
        con.execute("UPDATE kv SET value = 'short now' WHERE key = 'big'")
        con.execute("UPDATE nt SET value = 'short now' WHERE key = 'big'")
        self.assertSame(con, "SELECT key, value FROM {t} ORDER BY key")

    def test_limit_length_lowered_and_a_too_big_value_comes_through_the_feed(self):
        """A warm cache under the lowered limit: another connection commits values over it (a
        BLOB and a TEXT), which the feed brings: only reading those values fails."""
        self.fill_one_big_value()
        con = self.lowered_limit(self.open())
        self.assertSame(con, "SELECT key, value FROM {t} WHERE key = 'small'")
        other = self.open()
        for table in ("kv", "nt"):
            other.execute(f"INSERT INTO {table}(key, value) VALUES ('late', zeroblob(3000)),"
                          " ('late text', ?), ('later', 4)", ("t" * 3000,))
        self.assertSame(con, "SELECT key, value FROM {t} WHERE key = 'later'")
        self.assertValueTooBig(con, "late")
        self.assertValueTooBig(con, "late text")
        self.assertOtherRowsAndWritesWork(con, "later")

    def test_limit_length_lowered_and_a_too_big_value_past_the_first_chunk(self):
        """A lazy load: the big value's key is past the first chunk (8192 rows), so a point read
        finds it by key, and scans load the rest of the table around it."""
        con = self.open()
        for table in ("kv", "nt"):
            con.execute(f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n"
                        f" WHERE i < 8999) INSERT INTO {table}(key, value)"
                        f" SELECT printf('k%05d', i), i FROM n")
            con.execute(f"INSERT INTO {table}(key, value) VALUES ('zz big', zeroblob(5000)),"
                        " ('zz small', 1)")
        con = self.lowered_limit(self.open())
        self.assertValueTooBig(con, "zz big")
        self.assertSame(con, "SELECT key, value FROM {t} WHERE key = 'zz small'")
        self.assertSame(con, "SELECT count(*), sum(value) FROM {t} WHERE key < 'zz'")
        self.assertSame(con, "SELECT count(*), sum(length(key)) FROM {t}")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        self.assertValueTooBig(con, "zz big")


class LimitLengthLoweredLargerThanMemory(LimitLengthLowered):
    """The same with max_memory: values past half the budget load cold and are read back by key
    (under the lifted limit too), the big one among them."""

    KV_OPTIONS = "(max_memory='2MB')"

    def fill_one_big_value(self):
        con = self.open()
        for table in ("kv", "nt"):
            con.execute(f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n"
                        f" WHERE i < 1099) INSERT INTO {table}(key, value)"
                        f" SELECT printf('a%04d', i), zeroblob(1000) FROM n")
        return super().fill_one_big_value()


if __name__ == "__main__":
    unittest.main()
