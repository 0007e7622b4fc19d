"""Database mode (issue 13): a table without path in a file database keeps its records in shadow
tables of that database (<t>_data, <t>_log, <t>_meta) and each connection keeps its own cache of
them (ext/db_mode.c). Checked here from Python (/usr/bin/python3), with other processes through
subprocess and fork:

  - isolation: another connection sees a change only once it has committed; a connection sees its
    own uncommitted changes;
  - the cache equals the shadow tables after ROLLBACK, ROLLBACK TO, a failing statement inside
    BEGIN and in autocommit, and functions (compared row by row, and with a fresh connection);
  - two connections and two processes writing the same table: exact totals, and zero stale reads
    (a native counter and a feox counter written in one transaction always read equal);
  - kill -9 at random moments of a native INSERT + feox_incr transaction: both or neither;
  - .backup, VACUUM INTO, .dump reloaded into a fresh database and sqlite3_serialize /
    deserialize bring back every row with its type, ttl and ts; feox_check compares the cache
    with the shadow table;
  - read-only connections read and never write; BUSY comes back as SQLite's own error;
  - a table of the previous release keeps its records in its store file;
  - expired rows are hidden; every committing write transaction removes up to 64 of them from
    the shadow tables (with feed rows: other caches drop them too; a rollback puts them back), and
    feox_sweep removes them all.
"""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import unittest

from feoxtest import EXT, SQLITE3_SHELL, TempDirTestCase, connect, previous_release_table

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

CHILD_PRELUDE = textwrap.dedent(f"""
    import os, sqlite3, sys
    def connect(path):
        con = sqlite3.connect(path, isolation_level=None, timeout=60)
        con.enable_load_extension(True)
        con.load_extension({EXT!r})
        return con
""")


def table_rows(con, table="kv"):
    """What the virtual table shows: (key, value, type, ts) sorted by key."""
    return con.execute(f'SELECT key, value, typeof(value), ts FROM "{table}" ORDER BY key').fetchall()


def shadow_rows(con, table="kv"):
    """What the shadow table holds for live rows, in the same form (keys are stored as BLOBs)."""
    now = time.time_ns()
    got = con.execute(f'SELECT key, value, typeof(value), ts FROM "{table}_data" '
                      "WHERE expires IS NULL OR expires > ? ORDER BY key", (now,)).fetchall()
    return [(k.decode() if isinstance(k, bytes) else k, v, t, ts) for k, v, t, ts in got]


class InDatabaseTestCase(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.make_db("app.db")

    def make_db(self, name):
        """A new database self.db in the test's directory: a native table and kv, in WAL mode."""
        self.db = self.path(name)
        con = connect(self.db)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, note)")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.close()

    def assertCoherent(self, con, msg=""):
        """The connection's cache, the shadow table and a fresh connection's cache agree. (Not
        in the middle of a transaction: the backend keeps a transaction's changes pending until
        xSync or a savepoint, so the shadow table lags behind the cache there.)"""
        mine = table_rows(con)
        self.assertEqual(mine, shadow_rows(con), msg)
        if not con.in_transaction:
            fresh = connect(self.db)
            self.assertEqual(mine, table_rows(fresh), msg)
            fresh.close()


class WhereTheDataLivesTest(InDatabaseTestCase):
    def test_records_are_in_shadow_tables_and_no_file_is_made(self):
        con = connect(self.db)
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 'two'), ('c', x'00ff')")
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_schema WHERE name LIKE 'kv%' ORDER BY name")]
        self.assertEqual(names, ["kv", "kv_data", "kv_data_expires", "kv_log", "kv_meta"])
        self.assertEqual(sorted(os.listdir(self.dir)), ["app.db", "app.db-shm", "app.db-wal"])
        self.assertCoherent(con)
        con.close()

    def test_shadow_tables_are_protected_in_defensive_mode(self):
        proc = subprocess.run([SQLITE3_SHELL, "-cmd", ".load " + EXT, "-cmd",
                               ".dbconfig defensive on", self.db,
                               "INSERT INTO kv_data(key, value, tag, ts, seq) "
                               "VALUES (x'61', 1, 1, 1, 1)"],
                              capture_output=True, text=True, timeout=60)
        self.assertIn("may not be modified", proc.stderr)

    def test_explicit_path_and_memory_stay_as_they_were(self):
        con = connect(self.db)
        con.execute("CREATE VIRTUAL TABLE f USING feox(path='f.feox')")
        con.execute("CREATE VIRTUAL TABLE m USING feox(path=':memory:')")
        self.assertTrue(os.path.exists(self.path("f.feox")))
        self.assertEqual(con.execute("SELECT count(*) FROM sqlite_schema WHERE name IN "
                                     "('f_data', 'm_data')").fetchone(), (0,))
        mem = connect(":memory:")
        mem.execute("CREATE VIRTUAL TABLE t USING feox")
        mem.execute("INSERT INTO t(key, value) VALUES ('a', 1)")
        self.assertEqual(mem.execute("SELECT count(*) FROM sqlite_schema").fetchone(), (1,))
        mem.close()
        con.close()

    def test_previous_release_table_keeps_its_file(self):
        con = connect(self.db)
        store = previous_release_table(con, "old")
        con.execute("INSERT INTO old(key, value, ttl) VALUES ('a', 1, 3600), ('b', 'x', NULL)")
        ts = con.execute("SELECT ts FROM old WHERE key = 'a'").fetchone()[0]
        con.close()
        con = connect(self.db)
        sql = con.execute("SELECT sql FROM sqlite_schema WHERE name = 'old'").fetchone()[0]
        self.assertEqual(sql, "CREATE VIRTUAL TABLE \"old\" USING feox")
        self.assertEqual(con.execute("SELECT key, value, ts FROM old ORDER BY key").fetchall(),
                         [("a", 1, ts), ("b", "x", con.execute(
                             "SELECT ts FROM old WHERE key = 'b'").fetchone()[0])])
        self.assertGreater(con.execute("SELECT ttl FROM old WHERE key = 'a'").fetchone()[0], 3500)
        con.execute("INSERT INTO old(key, value) VALUES ('c', 3)")
        self.assertEqual(con.execute("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'old_%'")
                         .fetchone(), (0,))
        con.close()
        self.assertTrue(os.path.exists(store))
        con = connect(self.db)
        self.assertEqual(con.execute("SELECT group_concat(key) FROM (SELECT key FROM old "
                                     "ORDER BY key)").fetchone(), ("a,b,c",))
        con.execute("DROP TABLE old")
        con.execute("SELECT count(*) FROM kv").fetchall()  # settles the DROP
        con.close()
        self.assertFalse(os.path.exists(store))

    def test_create_drop_rename_roll_back(self):
        con = connect(self.db)
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.execute("BEGIN")
        con.execute("CREATE VIRTUAL TABLE t2 USING feox")
        con.execute("INSERT INTO t2(key, value) VALUES ('x', 1)")
        con.execute("DROP TABLE kv")
        con.execute("ROLLBACK")
        self.assertEqual(con.execute("SELECT count(*) FROM sqlite_schema WHERE name LIKE 't2%'")
                         .fetchone(), (0,))
        self.assertEqual(table_rows(con)[0][:2], ("a", 1))
        con.execute("BEGIN")
        con.execute("ALTER TABLE kv RENAME TO kv9")
        con.execute("INSERT INTO kv9(key, value) VALUES ('b', 2)")
        self.assertEqual(con.execute("SELECT count(*) FROM kv9").fetchone(), (2,))
        con.execute("ROLLBACK")
        self.assertEqual([r[0] for r in con.execute(
            "SELECT name FROM sqlite_schema WHERE name LIKE 'kv%' ORDER BY name")],
            ["kv", "kv_data", "kv_data_expires", "kv_log", "kv_meta"])
        self.assertCoherent(con)
        con.execute("ALTER TABLE kv RENAME TO kv9")
        self.assertEqual(con.execute("SELECT key, value FROM kv9").fetchall(), [("a", 1)])
        self.assertEqual(con.execute("SELECT feox_incr('kv9', 'n', 2)").fetchone(), (2,))
        con.close()


class IsolationTest(InDatabaseTestCase):
    def test_uncommitted_changes_are_invisible_to_others_and_visible_to_self(self):
        a = connect(self.db)
        b = connect(self.db)
        a.execute("INSERT INTO kv(key, value) VALUES ('k', 'committed')")
        self.assertEqual(b.execute("SELECT value FROM kv WHERE key = 'k'").fetchone(),
                         ("committed",))
        a.execute("BEGIN")
        a.execute("INSERT INTO kv(key, value) VALUES ('new', 1)")
        a.execute("UPDATE kv SET value = 'uncommitted' WHERE key = 'k'")
        self.assertEqual(a.execute("SELECT feox_incr('kv', 'n', 5)").fetchone(), (5,))
        self.assertEqual(a.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("k", "uncommitted"), ("n", 5), ("new", 1)])
        self.assertEqual(b.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("k", "committed")])
        a.execute("ROLLBACK")
        self.assertEqual(b.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("k", "committed")])
        self.assertEqual(a.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("k", "committed")])
        a.execute("BEGIN")
        a.execute("UPDATE kv SET value = 'second' WHERE key = 'k'")
        a.execute("COMMIT")
        self.assertEqual(b.execute("SELECT value FROM kv WHERE key = 'k'").fetchone(), ("second",))
        a.close()
        b.close()

    def test_a_read_transaction_keeps_its_snapshot(self):
        a = connect(self.db)
        b = connect(self.db)
        a.execute("INSERT INTO kv(key, value) VALUES ('k', 1)")
        b.execute("BEGIN")
        self.assertEqual(b.execute("SELECT value FROM kv WHERE key = 'k'").fetchone(), (1,))
        a.execute("UPDATE kv SET value = 2 WHERE key = 'k'")
        self.assertEqual(b.execute("SELECT value FROM kv WHERE key = 'k'").fetchone(), (1,))
        b.execute("COMMIT")
        self.assertEqual(b.execute("SELECT value FROM kv WHERE key = 'k'").fetchone(), (2,))
        a.close()
        b.close()


class RollbackTest(InDatabaseTestCase):
    def test_cache_equals_shadow_tables_after_each_step(self):
        con = connect(self.db)
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2), ('c', 3)")
        self.assertCoherent(con, "insert")
        con.execute("BEGIN")
        con.execute("INSERT INTO kv(key, value) VALUES ('d', 4)")
        con.execute("UPDATE kv SET value = 20 WHERE key = 'b'")
        con.execute("DELETE FROM kv WHERE key = 'c'")
        con.execute("SAVEPOINT s1")  # the backend writes what is pending: the tables catch up
        self.assertCoherent(con, "at SAVEPOINT")
        con.execute("INSERT INTO kv(key, value) VALUES ('e', 5)")
        con.execute("UPDATE kv SET value = 'x' WHERE key = 'a'")
        con.execute("SELECT feox_incr('kv', 'n', 7)").fetchall()
        self.assertEqual(con.execute("SELECT group_concat(key) FROM (SELECT key FROM kv "
                                     "ORDER BY key)").fetchone(), ("a,b,d,e,n",))
        con.execute("ROLLBACK TO s1")
        self.assertCoherent(con, "after ROLLBACK TO")
        self.assertEqual(con.execute("SELECT group_concat(key) FROM (SELECT key FROM kv "
                                     "ORDER BY key)").fetchone(), ("a,b,d",))
        con.execute("RELEASE s1")
        # a failing multi-row statement inside BEGIN: its statement savepoint is rolled back
        with self.assertRaises(sqlite3.IntegrityError):
            con.execute("INSERT INTO kv(key, value) VALUES ('f', 6), ('a', 99)")
        self.assertCoherent(con, "after a failing statement in BEGIN")
        self.assertIsNone(con.execute("SELECT value FROM kv WHERE key = 'f'").fetchone())
        con.execute("ROLLBACK")
        self.assertCoherent(con, "after ROLLBACK")
        self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("a", 1), ("b", 2), ("c", 3)])
        # a failing multi-row statement in autocommit
        with self.assertRaises(sqlite3.IntegrityError):
            con.execute("INSERT INTO kv(key, value) VALUES ('g', 7), (NULL, 8)")
        self.assertCoherent(con, "after a failing statement in autocommit")
        self.assertIsNone(con.execute("SELECT value FROM kv WHERE key = 'g'").fetchone())
        # a failing UPDATE over several rows in autocommit
        with self.assertRaises(sqlite3.Error):
            con.execute("UPDATE kv SET ts = 5 WHERE key IN ('a', 'b')")
        self.assertCoherent(con, "after a failing UPDATE")
        con.close()

    def test_functions_join_the_users_transaction(self):
        con = connect(self.db)
        con.execute("BEGIN")
        con.execute("INSERT INTO orders(note) VALUES ('first')")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'orders', 1)").fetchone(), (1,))
        self.assertEqual(con.execute("SELECT feox_cas('kv', 'orders', 1, 10)").fetchone(), (1,))
        con.execute("INSERT INTO kv(key, value) VALUES ('doc', '{\"a\":1}')")
        self.assertEqual(con.execute("SELECT feox_patch('kv', 'doc', "
                                     "'[{\"op\":\"add\",\"path\":\"/b\",\"value\":2}]')")
                         .fetchone(), ('{"a":1,"b":2}',))
        self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("doc", '{"a":1,"b":2}'), ("orders", 10)])
        con.execute("ROLLBACK")
        self.assertCoherent(con, "functions rolled back")
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (0,))
        self.assertEqual(con.execute("SELECT count(*) FROM orders").fetchone(), (0,))
        # autocommit: each call is its own transaction, committed with the shadow tables
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 3)").fetchone(), (3,))
        self.assertFalse(con.in_transaction)
        self.assertCoherent(con, "autocommit function")
        # a failing call changes nothing
        con.execute("INSERT INTO kv(key, value) VALUES ('text', 'not a number')")
        with self.assertRaises(sqlite3.Error):
            con.execute("SELECT feox_incr('kv', 'text', 1)")
        self.assertFalse(con.in_transaction)
        self.assertCoherent(con, "failing function")
        con.close()

    def test_functions_called_by_a_write_statement_belong_to_it(self):
        # SQLite opens no savepoint while a write statement runs: the call joins the
        # statement's own transaction, so a failure later in the statement undoes it
        con = connect(self.db)
        con.execute("CREATE TABLE log(x)")
        con.execute("INSERT INTO log SELECT feox_incr('kv', 'a', 1)")
        con.execute("UPDATE log SET x = feox_incr('kv', 'a', 1)")
        self.assertEqual(con.execute("SELECT x FROM log").fetchall(), [(2,)])
        with self.assertRaises(sqlite3.Error):
            con.execute("INSERT INTO log SELECT feox_incr('kv', 'b', 1) UNION ALL "
                        "SELECT feox_incr('kv', 'a', 'x')")
        self.assertEqual(con.execute("SELECT key, value FROM kv").fetchall(), [("a", 2)])
        self.assertEqual(con.execute("SELECT count(*) FROM log").fetchone(), (1,))
        self.assertCoherent(con, "failing write statement")
        con.execute("BEGIN")
        con.execute("INSERT INTO log SELECT feox_incr('kv', 'a', 10)")
        con.execute("ROLLBACK")
        self.assertEqual(con.execute("SELECT key, value FROM kv").fetchall(), [("a", 2)])
        self.assertCoherent(con, "rolled back write statement")
        con.close()

    def test_a_rollback_leaves_no_snapshot_behind(self):
        # A connection that first uses the table inside BEGIN loads its cache there; a rollback
        # after that drops the cache. Loading it again inside xRollback (after SQLite ended the
        # transaction) left a read transaction open: the connection's next statements read that
        # old snapshot, and its next write failed with SQLITE_BUSY at once instead of waiting.
        other = connect(self.db)
        other.execute("INSERT INTO kv(key, value) VALUES ('k', 1)")
        con = connect(self.db, timeout=30)
        for rollback in ("a failing statement in autocommit", "ROLLBACK", "ROLLBACK TO"):
            con.execute("BEGIN")  # the table's first use in this transaction loads the cache
            self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'k'").fetchone(), (1,))
            if rollback == "ROLLBACK":
                con.execute("INSERT INTO kv(key, value) VALUES ('gone', 1)")
                con.execute("ROLLBACK")
            elif rollback == "ROLLBACK TO":
                con.execute("SAVEPOINT s")
                con.execute("INSERT INTO kv(key, value) VALUES ('gone', 1)")
                con.execute("ROLLBACK TO s")
                con.execute("COMMIT")
            else:
                con.execute("COMMIT")  # it only read the table: SQLite calls no xCommit
                with self.assertRaises(sqlite3.IntegrityError):
                    con.execute("INSERT INTO kv(key, value) VALUES ('k', 2)")
            self.assertFalse(con.in_transaction, rollback)
            other.execute("INSERT INTO orders(note) VALUES (?)", (rollback,))
            self.assertEqual(con.execute("SELECT note FROM orders ORDER BY id DESC LIMIT 1")
                             .fetchone(), (rollback,), f"{rollback}: a stale snapshot")
            # another connection holds the write lock for a moment: a write waits for it
            other.execute("BEGIN IMMEDIATE")
            timer = threading.Timer(0.3, other.execute, ("COMMIT",))
            timer.start()
            con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('after', ?)", (rollback,))
            timer.join()
            self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'gone'").fetchone(),
                             None, rollback)
            self.assertCoherent(con, rollback)
        con.close()
        other.close()


WRITER = CHILD_PRELUDE + textwrap.dedent("""
    db, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    con = connect(db)
    for i in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("SELECT feox_incr('kv', 'ctr', 1)").fetchall()
        con.execute("UPDATE pub SET v = v + 1")
        con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (f"{name}:{i}", i))
        con.execute("COMMIT")
        con.execute("SELECT feox_incr('kv', 'auto', 1)").fetchall()
    con.close()
""")

READER = CHILD_PRELUDE + textwrap.dedent("""
    db, stop = sys.argv[1], sys.argv[2]
    con = connect(db)
    reads = stale = 0
    while not os.path.exists(stop):
        feox, native = con.execute(
            "SELECT (SELECT value FROM kv WHERE key = 'ctr'), (SELECT v FROM pub)").fetchone()
        reads += 1
        if (feox or 0) != native:
            stale += 1
    print(reads, stale)
""")


class ProcessesTest(InDatabaseTestCase):
    def setUp(self):
        super().setUp()
        con = connect(self.db)
        con.execute("CREATE TABLE pub(v)")
        con.execute("INSERT INTO pub VALUES (0)")
        con.close()

    def test_two_processes_and_two_connections_exact_totals_no_stale_reads(self):
        n = 300
        stop = self.path("stop")
        reader = subprocess.Popen([PY, "-c", READER, self.db, stop], stdout=subprocess.PIPE,
                                  text=True)
        writers = [subprocess.Popen([PY, "-c", WRITER, self.db, f"p{i}", str(n)])
                   for i in range(2)]
        # two connections of this process, writing too
        a = connect(self.db)
        b = connect(self.db)
        for i in range(n):
            con = a if i % 2 else b
            con.execute("BEGIN IMMEDIATE")
            con.execute("SELECT feox_incr('kv', 'ctr', 1)").fetchall()
            con.execute("UPDATE pub SET v = v + 1")
            con.execute("COMMIT")
            other = b if i % 2 else a
            feox, native = other.execute(
                "SELECT (SELECT value FROM kv WHERE key = 'ctr'), (SELECT v FROM pub)").fetchone()
            self.assertEqual(feox, native)
        for w in writers:
            self.assertEqual(w.wait(timeout=600), 0)
        open(stop, "w").close()
        out, _ = reader.communicate(timeout=600)
        reads, stale = map(int, out.split())
        self.assertGreater(reads, 0)
        self.assertEqual(stale, 0)
        total = 3 * n
        for con in (a, b, connect(self.db)):
            self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'ctr'").fetchone(),
                             (total,))
            self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'auto'").fetchone(),
                             (2 * n,))
            self.assertEqual(con.execute("SELECT count(*) FROM kv WHERE key GLOB 'p*'")
                             .fetchone(), (2 * n,))
        self.assertCoherent(a)
        a.close()
        b.close()

    def test_reads_see_another_process_commit_at_the_next_statement(self):
        """A statement that reads the table checks the data version once (xFilter, where SQLite
        holds a transaction on the schema): with a complete cache, a point read, a range scan and
        the same reads inside BEGIN .. COMMIT follow another process's commits, in main and in
        an attached database, and a read transaction keeps its snapshot until it ends."""
        aux = self.path("aux.db")
        con = connect(aux)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("CREATE TABLE pub(v)")
        con.execute("INSERT INTO pub VALUES (0)")
        con.execute("CREATE VIRTUAL TABLE kv2 USING feox")
        con.execute("INSERT INTO kv2(key, value) VALUES ('k', 0)")
        con.close()
        con = connect(self.db)
        con.execute("INSERT INTO kv(key, value) VALUES ('k', 0)")
        con.execute("ATTACH ? AS aux", (aux,))
        writer = CHILD_PRELUDE + textwrap.dedent("""
            con = connect(sys.argv[1])
            con.execute("BEGIN IMMEDIATE")
            con.execute(f"UPDATE {sys.argv[2]} SET value = ? WHERE key = 'k'", (int(sys.argv[3]),))
            con.execute(f"INSERT INTO {sys.argv[2]}(key, value) VALUES (?, 1)",
                        ("n" + sys.argv[3],))
            con.execute("UPDATE pub SET v = ?", (int(sys.argv[3]),))
            con.execute("COMMIT")
        """)

        def commit_elsewhere(db, table, v):
            subprocess.run([PY, "-c", writer, db, table, str(v)], check=True, timeout=120)

        def read(table, pub):
            return con.execute(f"SELECT (SELECT value FROM {table} WHERE key = 'k'), "
                               f"(SELECT count(*) FROM {table} WHERE key >= 'n'), "
                               f"(SELECT v FROM {pub})").fetchone()

        for db, table, pub in ((self.db, "kv", "pub"), (aux, "aux.kv2", "aux.pub")):
            self.assertEqual(read(table, pub)[:2], (0, 0))
            self.assertEqual(con.execute(f"SELECT count(*) FROM {table}").fetchone(), (1,))
            for v in range(1, 4):
                commit_elsewhere(db, table.split(".")[-1], 2 * v)
                self.assertEqual(read(table, pub), (2 * v, 2 * v - 1, 2 * v), (table, v))
                con.execute("BEGIN")
                self.assertEqual(read(table, pub), (2 * v, 2 * v - 1, 2 * v), (table, v))
                commit_elsewhere(db, table.split(".")[-1], 2 * v + 1)
                self.assertEqual(read(table, pub), (2 * v, 2 * v - 1, 2 * v), (table, v))
                con.execute("COMMIT")
                self.assertEqual(read(table, pub), (2 * v + 1, 2 * v, 2 * v + 1), (table, v))
        self.assertCoherent(con)
        con.close()

    def test_reader_process_is_never_blocked_by_a_long_write_transaction(self):
        con = connect(self.db)
        con.execute("INSERT INTO kv(key, value) VALUES ('k', 'before')")
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)",
                        ((f"n{i:05d}", i) for i in range(5000)))
        con.execute("SAVEPOINT s")  # what was pending is now in the shadow tables, uncommitted
        con.execute("UPDATE kv SET value = 'during' WHERE key = 'k'")
        reader = CHILD_PRELUDE + textwrap.dedent("""
            con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
            con.enable_load_extension(True)
            con.load_extension(sys.argv[2])
            print(con.execute("SELECT value FROM kv WHERE key = 'k'").fetchone()[0],
                  con.execute("SELECT count(*) FROM kv").fetchone()[0],
                  con.execute("SELECT feox_check('kv')").fetchone()[0])
        """)
        out = subprocess.run([PY, "-c", reader, self.db, EXT], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual((out.returncode, out.stdout.split()), (0, ["before", "1", "ok"]),
                         out.stderr)
        con.execute("RELEASE s")
        con.execute("COMMIT")
        out = subprocess.run([PY, "-c", reader, self.db, EXT], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(out.stdout.split(), ["during", "5001", "ok"], out.stderr)
        con.close()

    def test_forked_children_and_exit_without_close(self):
        con = connect(self.db)
        con.execute("INSERT INTO kv(key, value) VALUES ('parent', 1)")
        pids = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:  # the child opens its own connection, writes, exits without closing
                code = 1
                try:
                    own = connect(self.db)
                    for _ in range(50):
                        own.execute("SELECT feox_incr('kv', 'forked', 1)").fetchall()
                    own.execute("INSERT INTO kv(key, value) VALUES (?, 1)", (f"child{i}",))
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        for pid in pids:
            self.assertEqual(os.waitpid(pid, 0)[1], 0)
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'forked'").fetchone(),
                         (150,))
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (5,))
        con.close()


CRASHER = CHILD_PRELUDE + textwrap.dedent("""
    con = connect(sys.argv[1])
    con.execute("PRAGMA synchronous = NORMAL")
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        con.execute("BEGIN")
        con.execute("INSERT INTO orders(note) VALUES (?)", (f"order {i}",))
        con.execute("SELECT feox_incr('kv', 'orders', 1)").fetchall()
        con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (f"order:{os.getpid()}:{i}", i))
        con.execute("COMMIT")
""")


class KillTest(InDatabaseTestCase):
    def test_kill_9_never_splits_a_transaction(self):
        rnd = random.Random(13)
        kills = 0
        for _ in range(200):
            proc = subprocess.Popen([PY, "-c", CRASHER, self.db], stdout=subprocess.PIPE,
                                    text=True)
            self.assertEqual(proc.stdout.readline().strip(), "ready")
            time.sleep(rnd.uniform(0, 0.03))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            kills += 1
            con = connect(self.db)
            orders = con.execute("SELECT count(*) FROM orders").fetchone()[0]
            counter = con.execute("SELECT value FROM kv WHERE key = 'orders'").fetchone()
            rows = con.execute("SELECT count(*) FROM kv WHERE key GLOB 'order:*'").fetchone()[0]
            self.assertEqual((counter[0] if counter else 0, rows), (orders, orders),
                             f"after kill {kills}")
            self.assertCoherent(con)
            con.close()
        self.assertEqual(kills, 200)


class ToolsTest(InDatabaseTestCase):
    def fill(self, con):
        con.execute("INSERT INTO kv(key, value, ttl) VALUES ('i', 42, 3600), ('r', 2.5, NULL), "
                    "('t', 'text', NULL), ('b', x'00ff', NULL), ('n', NULL, NULL), "
                    "('e', '', NULL), ('z', x'', NULL)")
        con.execute("SELECT feox_incr('kv', 'ctr', 9)").fetchall()

    def rows(self, con):
        return con.execute("SELECT key, value, typeof(value), ts, ttl IS NOT NULL, "
                           "coalesce(ttl > 3500, 0) FROM kv ORDER BY key").fetchall()

    def test_backup_vacuum_into_and_dump_bring_back_every_row(self):
        con = connect(self.db)
        self.fill(con)
        want = self.rows(con)
        con.close()
        backup = self.path("backup.db")
        vacuumed = self.path("vacuumed.db")
        subprocess.run([SQLITE3_SHELL, "-bail", "-cmd", ".load " + EXT, self.db,
                        f".backup '{backup}'"], check=True, timeout=60)
        con = connect(self.db)
        con.execute("VACUUM INTO ?", (vacuumed,))
        con.close()
        dump = subprocess.run([SQLITE3_SHELL, "-bail", self.db, ".dump"], check=True,
                              capture_output=True, text=True, timeout=60).stdout
        reloaded = self.path("reloaded.db")
        subprocess.run([SQLITE3_SHELL, "-bail", "-cmd", ".load " + EXT, reloaded],
                       input=dump, check=True, text=True, timeout=60)
        for path in (backup, vacuumed, reloaded):
            with self.subTest(copy=os.path.basename(path)):
                copy = connect(path)
                self.assertEqual(self.rows(copy), want)
                copy.execute("SELECT feox_incr('kv', 'ctr', 1)").fetchall()
                self.assertEqual(copy.execute("SELECT value FROM kv WHERE key = 'ctr'")
                                 .fetchone(), (10,))
                self.assertEqual(copy.execute("PRAGMA integrity_check").fetchone(), ("ok",))
                copy.close()


    def test_serialize_into_memory_keeps_the_table_in_the_database(self):
        con = connect(self.db)
        con.execute("PRAGMA journal_mode = DELETE")  # a WAL image does not open in memory
        self.fill(con)
        want = self.rows(con)
        data = con.serialize()
        con.close()
        mem = connect(":memory:")
        mem.deserialize(data)
        self.assertEqual(self.rows(mem), want)
        self.assertEqual(mem.execute("SELECT feox_incr('kv', 'ctr', 1)").fetchone(), (10,))
        self.assertEqual(mem.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        # a new table of an in-memory database stays memory only
        mem.execute("CREATE VIRTUAL TABLE fresh USING feox")
        self.assertEqual(mem.execute("SELECT count(*) FROM sqlite_schema WHERE name LIKE "
                                     "'fresh_%'").fetchone(), (0,))
        mem.close()

    def test_check_compares_the_cache_with_the_shadow_table(self):
        con = connect(self.db)
        self.fill(con)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone(), ("ok",))
        # change the shadow table behind the cache's back (no feed row: the cache cannot know)
        con.execute("UPDATE kv_data SET value = 7 WHERE key = CAST('i' AS BLOB)")
        self.assertIn("cache and shadow table differ at key x'69'",
                      con.execute("SELECT feox_check('kv')").fetchone()[0])
        con.execute("DELETE FROM kv_data WHERE key = CAST('t' AS BLOB)")
        self.assertIn("a key of the cache is not in kv_data",
                      con.execute("SELECT feox_check('kv')").fetchone()[0])
        con.close()
        con = connect(self.db)  # a new cache loads what the table holds
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        con.close()


class ReadOnlyAndBusyTest(InDatabaseTestCase):
    def test_read_only_connections_read_and_never_write(self):
        con = connect(self.db)
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.close()
        ro = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None)
        ro.enable_load_extension(True)
        ro.load_extension(EXT)
        qo = connect(self.db)
        qo.execute("PRAGMA query_only = 1")
        for con in (ro, qo):
            self.assertEqual(con.execute("SELECT key, value FROM kv").fetchall(), [("a", 1)])
            for sql in ("INSERT INTO kv(key, value) VALUES ('b', 2)",
                        "UPDATE kv SET value = 5 WHERE key = 'a'",
                        "DELETE FROM kv",
                        "SELECT feox_incr('kv', 'a', 1)",
                        "SELECT feox_cas('kv', 'a', 1, 2)"):
                with self.subTest(sql=sql):
                    with self.assertRaises(sqlite3.Error) as cm:
                        con.execute(sql).fetchall()
                    self.assertEqual(cm.exception.sqlite_errorcode & 0xff, sqlite3.SQLITE_READONLY)
            self.assertEqual(con.execute("SELECT key, value FROM kv").fetchall(), [("a", 1)])
        ro.close()
        qo.close()
        con = connect(self.db)
        self.assertCoherent(con)
        con.close()

    def test_busy_is_sqlites_own_error_and_changes_nothing(self):
        con = connect(self.db)
        con.execute("PRAGMA journal_mode = DELETE")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.close()
        holder = connect(self.db)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO kv(key, value) VALUES ('held', 1)")
        other = connect(self.db, timeout=0.05)
        for sql in ("INSERT INTO kv(key, value) VALUES ('b', 2)",
                    "SELECT feox_incr('kv', 'a', 1)"):
            with self.subTest(sql=sql):
                with self.assertRaises(sqlite3.OperationalError) as cm:
                    other.execute(sql).fetchall()
                self.assertEqual(cm.exception.sqlite_errorcode & 0xff, sqlite3.SQLITE_BUSY)
                self.assertIn("database is locked", str(cm.exception))
        holder.execute("ROLLBACK")
        self.assertEqual(other.execute("SELECT key, value FROM kv").fetchall(), [("a", 1)])
        self.assertEqual(other.execute("SELECT feox_incr('kv', 'a', 1)").fetchone(), (2,))
        self.assertCoherent(other)
        holder.close()
        other.close()


    def test_a_stale_snapshot_gets_busy_snapshot_as_a_native_write_does(self):
        """WAL: a transaction that read before another connection committed, then writes, gets
        SQLITE_BUSY_SNAPSHOT (517) from SQLite for a native table; a feox write, through the
        table or a function, reports that same extended code (not a plain SQLITE_BUSY)."""
        con = connect(self.db)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("CREATE TABLE nat(v)")
        con.execute("INSERT INTO nat VALUES (1)")
        con.execute("INSERT INTO kv(key, value) VALUES ('k', 1)")
        writes = ("UPDATE nat SET v = v + 1", "UPDATE kv SET value = value + 1 WHERE key = 'k'",
                  "SELECT feox_incr('kv', 'k', 1)", "SELECT feox_cas('kv', 'k', 1, 5)")
        for sql in writes:
            with self.subTest(sql=sql):
                reader = connect(self.db, timeout=0)
                reader.execute("BEGIN")
                reader.execute("SELECT (SELECT v FROM nat), (SELECT value FROM kv)").fetchall()
                con.execute("UPDATE nat SET v = v + 1")
                con.execute("SELECT feox_incr('kv', 'k', 1)").fetchall()
                with self.assertRaises(sqlite3.OperationalError) as cm:
                    reader.execute(sql).fetchall()
                self.assertEqual(cm.exception.sqlite_errorcode, 517)  # SQLITE_BUSY_SNAPSHOT
                reader.execute("ROLLBACK")
                reader.close()
        self.assertCoherent(con)
        con.close()


class ExpiryTest(InDatabaseTestCase):
    def test_expired_rows_are_hidden_and_swept_inside_a_transaction(self):
        con = connect(self.db)
        con.execute("INSERT INTO kv(key, value, ttl) VALUES ('short', 1, 1), ('long', 2, 3600)")
        time.sleep(2.2)  # 'short' has expired (its expiry is 1 s after the insert)
        self.assertEqual(con.execute("SELECT key FROM kv").fetchall(), [("long",)])
        self.assertIsNone(con.execute("SELECT value FROM kv WHERE key = 'short'").fetchone())
        self.assertEqual(con.execute("SELECT count(*) FROM kv_data").fetchone(), (2,))
        con.execute("BEGIN")
        self.assertEqual(con.execute("SELECT feox_sweep('kv')").fetchone(), (1,))
        con.execute("ROLLBACK")
        self.assertEqual(con.execute("SELECT count(*) FROM kv_data").fetchone(), (2,))
        self.assertEqual(con.execute("SELECT feox_sweep('kv')").fetchone(), (1,))
        self.assertEqual(con.execute("SELECT key FROM kv_data").fetchall(), [(b"long",)])
        con.close()


TTL_WRITER = CHILD_PRELUDE + textwrap.dedent("""
    import time
    db, n, ttl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    con = connect(db)
    print(time.time(), flush=True)  # the wall clock before the first insert
    con.executemany("INSERT INTO kv(key, value, ttl) VALUES (?, ?, ?)",
                    [(f"t{i}", i, ttl) for i in range(n)])
    con.close()
""")


class CommitSweepSkipTest(InDatabaseTestCase):
    """A commit seeks the expiry index only once something in it can have expired
    (storage_sqlite_expiry.c): rows another process commits with a TTL reach this connection
    through the feed before it writes, so its commits remove them once they expire, as before."""

    def test_rows_another_process_writes_with_a_ttl_are_swept_by_this_connections_commits(self):
        # The commit right after the child's must come before the rows expire (ttl s after their
        # inserts, which follow `start`, the child's wall clock before its first one): it does if
        # it ended less than ttl s after `start`. On a machine too slow for that (no fixed ttl is
        # long enough: 1 s and 3 s both failed on a loaded one), the attempt shows nothing and is
        # made again on a new database.
        ttl = 3
        for attempt in range(5):
            if attempt:
                self.make_db(f"app{attempt}.db")
            con = connect(self.db)
            con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")  # seeks: nothing has a TTL
            con.execute("INSERT INTO kv(key, value) VALUES ('b', 1)")  # skips
            child = subprocess.run([PY, "-c", TTL_WRITER, self.db, "5", str(ttl)],
                                   capture_output=True, text=True)
            end = time.time()
            self.assertEqual(child.returncode, 0, child.stderr)
            start = float(child.stdout)
            ttl_rows = "SELECT count(*) FROM kv_data WHERE expires IS NOT NULL"
            con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('c', 1)")
            if time.time() - start >= ttl:
                con.close()
                continue
            self.assertEqual(con.execute(ttl_rows).fetchone(), (5,))  # not expired yet
            time.sleep(max(0.0, end + ttl + 0.2 - time.time()))  # all expired now
            con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('d', 1)")
            self.assertEqual(con.execute(ttl_rows).fetchone(), (0,))
            self.assertEqual(con.execute("SELECT key FROM kv ORDER BY key").fetchall(),
                             [("a",), ("b",), ("c",), ("d",)])
            self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
            self.assertCoherent(con)
            con.close()
            return
        self.fail(f"no attempt committed within {ttl} s of the child's start")


class CommitSweepTest(InDatabaseTestCase):
    """The bounded sweep at commit (ext/storage_sqlite_expiry.c). Rows are made expired without
    waiting: their expiry in kv_data is set to 1 ns by hand (DEFENSIVE is off here), which no
    feed row announces. A connection that loaded them before still holds them as live, so what
    it shows tells whether the sweep's feed rows reached it; a connection opened after loads them
    as expired and hides them."""

    LIMIT = 64

    def expire_by_hand(self, n):
        con = connect(self.db)
        con.execute("BEGIN")
        con.executemany("INSERT INTO kv(key, value, ttl) VALUES (?, ?, 3600)",
                        [(f"e{i:03d}", i) for i in range(n)])
        con.execute("INSERT INTO kv(key, value) VALUES ('keep', 1)")
        con.execute("COMMIT")
        before = connect(self.db)  # loads the rows while they are live
        self.assertEqual(before.execute("SELECT count(*) FROM kv").fetchone(), (n + 1,))
        con.execute("UPDATE kv_data SET expires = 1 WHERE expires IS NOT NULL")
        con.close()
        return before

    def expired_rows(self, con):
        return con.execute("SELECT count(*) FROM kv_data WHERE expires IS NOT NULL").fetchone()[0]

    def test_each_commit_removes_at_most_64_and_other_caches_drop_them(self):
        before = self.expire_by_hand(150)
        writer = connect(self.db)
        self.assertEqual(writer.execute("SELECT key FROM kv").fetchall(), [("keep",)])
        # reads never sweep
        self.assertEqual(self.expired_rows(writer), 150)
        left, removed = 150, []
        for i in range(5):
            writer.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('w', ?)", (i,))
            now = self.expired_rows(writer)
            removed.append(left - now)
            left = now
            # the other connection still held them as live: it shows exactly those not swept
            self.assertEqual(before.execute("SELECT count(*) FROM kv").fetchone(), (2 + left,))
        self.assertEqual(removed, [64, 64, 22, 0, 0])
        self.assertTrue(all(r <= self.LIMIT for r in removed))
        self.assertEqual(before.execute("SELECT key FROM kv ORDER BY key").fetchall(),
                         [("keep",), ("w",)])
        stats = json.loads(writer.execute("SELECT feox_stats('kv')").fetchone()[0])
        self.assertEqual(stats["ttl_expired_active"], 150)
        for con in (writer, before):
            self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        self.assertCoherent(writer)
        before.close()
        writer.close()

    def test_a_transaction_that_writes_nothing_to_the_table_sweeps_nothing(self):
        self.expire_by_hand(10).close()
        con = connect(self.db)
        con.execute("INSERT INTO orders(note) VALUES ('native only')")
        con.execute("BEGIN")
        con.execute("SELECT * FROM kv").fetchall()
        con.execute("COMMIT")
        self.assertEqual(self.expired_rows(con), 10)
        ro = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None)
        ro.enable_load_extension(True)
        ro.load_extension(EXT)
        self.assertEqual(ro.execute("SELECT key FROM kv").fetchall(), [("keep",)])
        ro.close()
        self.assertEqual(self.expired_rows(con), 10)
        con.execute("DELETE FROM kv WHERE key = 'keep'")
        self.assertEqual(self.expired_rows(con), 0)
        con.close()

    def test_rollback_after_the_sweep_puts_the_rows_back(self):
        con = connect(self.db)
        con.execute("PRAGMA journal_mode = DELETE")  # a reader can make COMMIT fail with BUSY
        con.close()
        self.expire_by_hand(10).close()
        reader = connect(self.db)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM orders").fetchone()  # holds a SHARED lock
        writer = connect(self.db, timeout=0)
        writer.execute("BEGIN")
        writer.execute("INSERT INTO kv(key, value) VALUES ('w', 1)")
        with self.assertRaises(sqlite3.OperationalError) as cm:
            writer.execute("COMMIT")  # xSync has swept; the commit then cannot lock the file
        self.assertEqual(cm.exception.sqlite_errorcode & 0xff, sqlite3.SQLITE_BUSY)
        self.assertTrue(writer.in_transaction)
        self.assertEqual(self.expired_rows(writer), 0)
        writer.execute("ROLLBACK")
        reader.execute("COMMIT")
        self.assertEqual(self.expired_rows(writer), 10)
        self.assertEqual(writer.execute("SELECT key FROM kv").fetchall(), [("keep",)])
        self.assertEqual(writer.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        self.assertCoherent(writer)
        # and the next commit that gets through removes them
        writer.execute("INSERT INTO kv(key, value) VALUES ('w', 1)")
        self.assertEqual(self.expired_rows(writer), 0)
        self.assertCoherent(writer)
        reader.close()
        writer.close()

    def test_a_table_without_the_expiry_index_gets_it_at_its_first_write(self):
        con = connect(self.db)
        con.execute("DROP INDEX kv_data_expires")  # as the first layout made it
        con.close()
        self.expire_by_hand(5).close()
        con = connect(self.db)
        self.assertEqual(self.expired_rows(con), 5)
        con.execute("INSERT INTO kv(key, value) VALUES ('w', 1)")
        self.assertEqual(self.expired_rows(con), 0)
        self.assertEqual(con.execute("SELECT name FROM sqlite_schema WHERE type = 'index' "
                                     "AND tbl_name = 'kv_data'").fetchall(),
                         [("kv_data_expires",)])
        self.assertCoherent(con)
        con.close()


class OwnTransactionTest(InDatabaseTestCase):
    """A writing function in autocommit is its own transaction, which the table runs itself."""

    def traced(self, con, sql, *args):
        seen = []
        con.set_trace_callback(seen.append)
        try:
            row = con.execute(sql, args).fetchone()
        finally:
            con.set_trace_callback(None)
        return row, seen

    def test_an_autocommit_call_prepares_no_statement_naming_the_table(self):
        con = connect(self.db)
        con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone()  # the backend's statements
        row, seen = self.traced(con, "SELECT feox_incr('kv', 'n', 5)")
        self.assertEqual(row, (6,))
        self.assertEqual([s for s in seen if '"kv"' in s or "kv(" in s or s.endswith(" kv")],
                         [], seen)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        self.assertCoherent(con)
        # inside BEGIN the table still joins the user's transaction (a ROLLBACK undoes it)
        con.execute("BEGIN")
        self.assertEqual(con.execute("SELECT feox_incr('kv', 'n', 1)").fetchone(), (7,))
        con.execute("ROLLBACK")
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'n'").fetchone(), (6,))
        self.assertCoherent(con)
        con.close()

    def test_a_commit_by_another_connection_in_between_is_seen(self):
        a, b = connect(self.db), connect(self.db)
        for i in range(20):
            self.assertEqual(a.execute("SELECT feox_incr('kv', 'n', 1)").fetchone(), (2 * i + 1,))
            self.assertEqual(b.execute("SELECT feox_incr('kv', 'n', 1)").fetchone(), (2 * i + 2,))
        a.execute("INSERT INTO kv(key, value) VALUES ('m', 1)")
        self.assertEqual(b.execute("SELECT feox_incr('kv', 'm', 1)").fetchone(), (2,))
        self.assertCoherent(a)
        self.assertCoherent(b)
        a.close()
        b.close()


if __name__ == "__main__":
    unittest.main()
