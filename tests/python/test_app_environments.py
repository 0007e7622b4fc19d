"""Situations that apps using SQLite create, each checked against a native table doing the same.

The rule: a feox table must do what SQLite does with a native table in the same place. Each test
runs the same statements on a feox table (kv) and on a native table (nt) with the same columns
and compares what every connection sees:
- a memdb VFS database "/name" that several connections open: every connection sees one table,
  not one empty table each (its records are in its shadow tables, as in a file), and a write
  leaves no lock behind; a new in-memory database never shows an old one's rows;
- one database file attached twice under two schema names;
- plain VACUUM while another connection has a warm cache;
- PRAGMA locking_mode=EXCLUSIVE with every journal mode, and the small-cache pragmas;
- a trigger on a native table that writes the feox table and is undone with its statement;
- Python's sqlite3 backup with one page per step while another process writes;
- one connection shared by threads.
"""
import os
import sqlite3
import subprocess
import sys
import threading
import unittest

from feoxtest import HERE, TempDirTestCase, connect, connect_uri, skip_unless_built_with

NATIVE = "CREATE TABLE nt(key TEXT PRIMARY KEY, value)"


def rows(con, table, schema="main"):
    return con.execute(f"SELECT key, value FROM \"{schema}\".{table} ORDER BY key").fetchall()


def sqlite_names_memdb():
    """Whether sqlite3_db_filename names a memdb database "/name" (3.40 does; 3.53 gives "")."""
    con = sqlite3.connect("file:/feox-envhunt-name?vfs=memdb", uri=True)
    try:
        return con.execute("SELECT file FROM pragma_database_list").fetchone()[0] != ""
    finally:
        con.close()


class SharedInMemoryDatabase(unittest.TestCase):
    """Connections that open one memdb VFS database by name (file:/name?vfs=memdb) share its feox
    tables, as they share its native tables: the rows one connection writes are the rows the
    others read. (A shared-cache in-memory database is another matter: see the README.)"""

    URI = "file:/feox-envhunt-{}?vfs=memdb"

    def open_pair(self, name, options=""):
        uri = self.URI.format(name)
        first = connect_uri(uri)
        self.addCleanup(first.close)
        first.execute(f"CREATE VIRTUAL TABLE kv USING feox{options}")
        first.execute(NATIVE)
        second = connect_uri(uri)
        self.addCleanup(second.close)
        return first, second

    def test_second_connection_sees_the_rows_of_the_first(self):
        for options in ("", "(path=':memory:')"):
            with self.subTest(options=options):
                if options and not sqlite_names_memdb():
                    self.skipTest("this SQLite names no memdb database: a path=':memory:' table "
                                  "there is private to its connection (README)")
                first, second = self.open_pair("see" + str(len(options)), options)
                for t in ("kv", "nt"):
                    first.execute(f"INSERT INTO {t}(key, value) VALUES ('a', 1), ('b', 'two')")
                self.assertEqual(rows(second, "nt"), [("a", 1), ("b", "two")])
                self.assertEqual(rows(second, "kv"), rows(second, "nt"))
                for t in ("kv", "nt"):
                    second.execute(f"UPDATE {t} SET value = 3 WHERE key = 'a'")
                    second.execute(f"DELETE FROM {t} WHERE key = 'b'")
                self.assertEqual(rows(first, "kv"), [("a", 3)])
                self.assertEqual(rows(first, "kv"), rows(first, "nt"))

    def test_counters_from_both_connections_add_up(self):
        first, second = self.open_pair("incr")
        for i in range(50):
            for con in (first, second):
                con.execute("SELECT feox_incr('kv', 'n', 1)")
        self.assertEqual(first.execute("SELECT value FROM kv WHERE key = 'n'").fetchone(), (100,))
        self.assertEqual(second.execute("SELECT feox_check('kv')").fetchone(), ("ok",))

    def test_separate_in_memory_databases_stay_separate(self):
        for uris in ((":memory:", ":memory:"),
                     ("file:feox-envhunt-x?mode=memory&cache=shared",
                      "file:feox-envhunt-y?mode=memory&cache=shared"),
                     ("file:/feox-envhunt-x?vfs=memdb", "file:/feox-envhunt-y?vfs=memdb")):
            with self.subTest(uris=uris):
                a, b = (connect_uri(u) for u in uris)
                self.addCleanup(a.close)
                self.addCleanup(b.close)
                for con, value in ((a, 1), (b, 2)):
                    con.execute("CREATE VIRTUAL TABLE kv USING feox")
                    con.execute("INSERT INTO kv(key, value) VALUES ('k', ?)", (value,))
                self.assertEqual(rows(a, "kv"), [("k", 1)])
                self.assertEqual(rows(b, "kv"), [("k", 2)])

    def test_a_detached_memory_database_shows_nowhere_else(self):
        """A new in-memory database may get the memory of one detached before: a new table there,
        in this connection or another, starts empty."""
        con = connect(":memory:")
        self.addCleanup(con.close)
        for i in range(5):
            con.execute("ATTACH ':memory:' AS x")
            con.execute("CREATE VIRTUAL TABLE x.kv USING feox")
            con.execute("INSERT INTO x.kv(key, value) VALUES ('secret', 1)")
            con.execute("DETACH x")
            other = connect(":memory:")
            other.execute("CREATE VIRTUAL TABLE kv USING feox")
            self.assertEqual(rows(other, "kv"), [])
            other.close()

    def test_a_create_rolled_back_leaves_no_rows_for_the_next_create(self):
        con = connect(":memory:")
        self.addCleanup(con.close)
        con.execute("BEGIN")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('x', 1)")
        con.execute("ROLLBACK")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        self.assertEqual(rows(con, "kv"), [])

    def test_a_dropped_table_is_gone_for_every_connection(self):
        first, second = self.open_pair("drop")
        first.execute("INSERT INTO kv(key, value) VALUES ('old', 1)")
        self.assertEqual(rows(second, "kv"), [("old", 1)])
        first.execute("DROP TABLE kv")
        first.execute("CREATE VIRTUAL TABLE kv USING feox")
        self.assertEqual(rows(second, "kv"), [])
        self.assertEqual(rows(first, "kv"), [])

    def test_memdb_database_keeps_its_rows_in_the_database(self):
        """A memdb "/name" database holds the records in its shadow tables, as a file does: they
        outlive every connection that used the table, and locking is the database's own."""
        first, second = self.open_pair("indb")
        for t in ("kv", "nt"):
            first.execute(f"INSERT INTO {t}(key, value) VALUES ('k', 7)")
        first.close()
        self.assertEqual(rows(second, "kv"), [("k", 7)])
        third = connect_uri(self.URI.format("indb"))
        self.addCleanup(third.close)
        third.execute("BEGIN")
        for t in ("kv", "nt"):
            third.execute(f"INSERT INTO {t}(key, value) VALUES ('open', 1)")
        second.execute("PRAGMA busy_timeout = 0")
        for t in ("nt", "kv"):  # memdb lets no one read while another connection writes
            with self.assertRaisesRegex(sqlite3.OperationalError, "locked"):
                rows(second, t)
        third.execute("ROLLBACK")
        self.assertEqual(rows(second, "kv"), [("k", 7)])
        self.assertEqual(rows(second, "kv"), rows(second, "nt"))
        self.assertEqual(second.execute("SELECT feox_check('kv')").fetchone(), ("ok",))

    def test_memdb_writer_leaves_no_lock_behind(self):
        """A write to the feox table of a memdb "/name" database ends its transaction: the other
        connection then writes at once (the image check once held a read lock past the commit)."""
        uri = self.URI.format("lock")
        first, second = connect_uri(uri), connect_uri(uri)
        for con in (first, second):
            self.addCleanup(con.close)
            con.execute("PRAGMA busy_timeout = 0")
        first.execute("CREATE VIRTUAL TABLE kv USING feox")
        first.execute(NATIVE)
        for con in (first, second):
            self.assertEqual(rows(con, "kv"), [])  # each connection's cache loaded
        for i in range(3):
            for con in (first, second):  # the turn ends with a write to the feox table
                con.execute("INSERT OR REPLACE INTO nt(key, value) VALUES ('x', ?)", (i,))
                con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('x', ?)", (i,))
                con.execute("SELECT feox_incr('kv', 'n', 1)")
        self.assertEqual(first.execute("SELECT value FROM kv WHERE key = 'n'").fetchone(), (6,))


class FileDatabase(TempDirTestCase):
    """A feox table in a database file next to a native table, in situations apps create."""

    def make_db(self, journal_mode="wal", rows=0):
        path = self.path("app.db")
        con = connect(path)
        con.execute(f"PRAGMA journal_mode={journal_mode}")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute(NATIVE)
        for t in ("kv", "nt"):
            con.executemany(f"INSERT INTO {t}(key, value) VALUES (?, ?)",
                            [(f"k{i:04d}", i) for i in range(rows)])
        con.close()
        return path

    def both(self, con, sql):
        """sql run on kv and on nt ({t}); asserts they return the same rows, returns them."""
        kv, nt = (con.execute(sql.format(t=t)).fetchall() for t in ("kv", "nt"))
        self.assertEqual(kv, nt, sql)
        return kv

    def test_one_file_attached_twice(self):
        for mode in ("wal", "delete"):
            with self.subTest(journal_mode=mode):
                path = self.make_db(mode)
                con = connect(":memory:", timeout=0.2)  # the locked COMMIT below need not wait
                self.addCleanup(con.close)
                con.execute("ATTACH ? AS a", (path,))
                con.execute("ATTACH ? AS b", (path,))
                self.both(con, "SELECT count(*) FROM b.{t}")  # a warm cache under b
                for t in ("kv", "nt"):
                    con.execute(f"INSERT INTO a.{t}(key, value) VALUES ('k1', 1)")
                self.assertEqual(self.both(con, "SELECT key, value FROM b.{t}"), [("k1", 1)])
                con.execute("BEGIN")
                for t in ("kv", "nt"):
                    con.execute(f"UPDATE b.{t} SET value = 2 WHERE key = 'k1'")
                self.assertEqual(self.both(con, "SELECT value FROM a.{t}"), [(1,)])
                self.assertEqual(self.both(con, "SELECT value FROM b.{t}"), [(2,)])
                if mode == "wal":
                    con.execute("COMMIT")
                    self.assertEqual(self.both(con, "SELECT value FROM a.{t}"), [(2,)])
                else:  # a's read lock keeps b from committing, for both tables alike
                    with self.assertRaisesRegex(sqlite3.OperationalError, "locked"):
                        con.execute("COMMIT")
                    con.execute("ROLLBACK")
                    self.assertEqual(self.both(con, "SELECT value FROM a.{t}"), [(1,)])
                self.assertEqual(con.execute("SELECT feox_check('a.kv'), feox_check('b.kv')")
                                 .fetchone(), ("ok", "ok"))
                con.execute("DETACH a")
                con.execute("DETACH b")
                os.remove(path)
                for suffix in ("-wal", "-shm"):
                    if os.path.exists(path + suffix):
                        os.remove(path + suffix)

    def test_vacuum_under_a_warm_cache(self):
        for mode in ("wal", "delete"):
            with self.subTest(journal_mode=mode):
                path = self.make_db(mode, rows=500)
                writer, reader = connect(path), connect(path)
                self.addCleanup(writer.close)
                self.addCleanup(reader.close)
                self.both(reader, "SELECT count(*), sum(value) FROM {t}")
                for t in ("kv", "nt"):
                    writer.execute(f"DELETE FROM {t} WHERE value % 2 = 0")
                writer.execute("VACUUM")
                self.assertEqual(self.both(reader, "SELECT count(*), sum(value) FROM {t}"),
                                 [(250, 62500)])
                for t in ("kv", "nt"):
                    reader.execute(f"INSERT INTO {t}(key, value) VALUES ('new', 1000)")
                    writer.execute(f"UPDATE {t} SET value = value + 1 WHERE key = 'k0001'")
                for con in (writer, reader):
                    self.assertEqual(self.both(con, "SELECT count(*), sum(value) FROM {t}"),
                                     [(251, 63501)])
                    self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
                writer.close()
                reader.close()
                for name in os.listdir(self.dir):
                    os.remove(self.path(name))

    def test_exclusive_locking_mode_with_every_journal_mode(self):
        for mode in ("wal", "delete", "truncate", "persist", "memory"):
            with self.subTest(journal_mode=mode):
                path = self.make_db("wal" if mode == "wal" else "delete", rows=10)
                con = connect(path)
                for pragma in ("locking_mode=EXCLUSIVE", f"journal_mode={mode}",
                               "synchronous=OFF", "cache_size=1", "temp_store=MEMORY"):
                    con.execute(f"PRAGMA {pragma}")
                for t in ("kv", "nt"):
                    con.execute(f"INSERT INTO {t}(key, value) VALUES ('x', 1)")
                con.execute("BEGIN")
                for t in ("kv", "nt"):
                    con.execute(f"UPDATE {t} SET value = -1")
                con.execute("ROLLBACK")
                con.execute("BEGIN")
                for t in ("kv", "nt"):
                    con.execute(f"UPDATE {t} SET value = value * 2 WHERE key < 'k0005'")
                con.execute("SAVEPOINT s")
                for t in ("kv", "nt"):
                    con.execute(f"DELETE FROM {t}")
                con.execute("ROLLBACK TO s")
                con.execute("COMMIT")
                self.assertEqual(self.both(con, "SELECT count(*), sum(value) FROM {t}"),
                                 [(11, 56)])
                con.close()
                again = connect(path)
                self.assertEqual(self.both(again, "SELECT count(*), sum(value) FROM {t}"),
                                 [(11, 56)])
                self.assertEqual(again.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
                again.close()
                for name in os.listdir(self.dir):
                    os.remove(self.path(name))

    def test_trigger_on_a_native_table_writes_the_feox_table(self):
        path = self.make_db()
        con, other = connect(path), connect(path)
        self.addCleanup(con.close)
        self.addCleanup(other.close)
        con.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT, "
                    "qty INTEGER CHECK (qty < 100))")
        con.execute("CREATE TRIGGER keep_last AFTER INSERT ON orders BEGIN "
                    "INSERT OR REPLACE INTO kv(key, value) VALUES ('last:' || new.item, new.qty);"
                    "INSERT OR REPLACE INTO nt(key, value) VALUES ('last:' || new.item, new.qty);"
                    "END")
        con.execute("CREATE TRIGGER add_up AFTER UPDATE ON orders BEGIN "
                    "UPDATE kv SET value = value + new.qty WHERE key = 'last:' || new.item;"
                    "UPDATE nt SET value = value + new.qty WHERE key = 'last:' || new.item;"
                    "SELECT RAISE(ABORT, 'no fifty') WHERE new.qty = 50; END")
        con.execute("INSERT INTO orders(item, qty) VALUES ('a', 1)")
        with self.assertRaisesRegex(sqlite3.IntegrityError, "CHECK"):
            con.execute("INSERT INTO orders(item, qty) VALUES ('b', 2), ('c', 200)")
        con.execute("UPDATE orders SET qty = 5 WHERE item = 'a'")
        with self.assertRaisesRegex(sqlite3.IntegrityError, "no fifty"):
            con.execute("UPDATE orders SET qty = 50 WHERE item = 'a'")
        for c in (con, other):
            self.assertEqual(self.both(c, "SELECT key, value FROM {t} ORDER BY key"),
                             [("last:a", 6)])
        con.execute("CREATE TABLE users(id TEXT PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO users VALUES ('last:a', 'Ada'), ('last:z', 'Bob')")
        for t in ("kv", "nt"):
            con.execute(f"CREATE VIEW v_{t} AS SELECT u.name, k.value FROM users u "
                        f"JOIN {t} k ON k.key = u.id")
        self.assertEqual(self.both(other, "SELECT * FROM v_{t}"), [("Ada", 6)])

    def test_backup_one_page_at_a_time_while_another_process_writes(self):
        path = self.make_db(rows=2000)
        writer = subprocess.Popen([sys.executable, "-c", f"""
import sys
sys.path.insert(0, {HERE!r})
from feoxtest import connect
con = connect({path!r})
for i in range(300):
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", ("w%d" % i, i))
    con.execute("INSERT INTO nt(key, value) VALUES (?, ?)", ("w%d" % i, i))
    con.execute("COMMIT")
"""])
        self.addCleanup(writer.wait)
        source, copy = connect(path), connect(self.path("copy.db"))
        self.addCleanup(source.close)
        self.addCleanup(copy.close)
        source.backup(copy, pages=1)
        self.assertEqual(writer.wait(), 0)
        # one committed state: both tables hold the same rows
        self.assertEqual(rows(copy, "kv"), rows(copy, "nt"))
        self.assertEqual(copy.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        self.assertEqual(copy.execute("PRAGMA integrity_check").fetchone(), ("ok",))
        copy.execute("INSERT INTO kv(key, value) VALUES ('after', 1)")
        self.assertEqual(len(rows(copy, "kv")), len(rows(copy, "nt")) + 1)

    @skip_unless_built_with("serialized connections", "THREADSAFE=2")
    def test_one_connection_shared_by_threads(self):
        import threading
        con = connect(self.make_db())  # check_same_thread=False, SQLite's serialized mode
        self.addCleanup(con.close)

        def work(n):
            for j in range(200):
                con.execute("SELECT feox_incr('kv', 'n', 1)")
                for t in ("kv", "nt"):
                    con.execute(f"INSERT INTO {t}(key, value) VALUES (?, ?)", (f"t{n}-{j}", j))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'n'").fetchone(), (800,))
        self.assertEqual(self.both(con, "SELECT key, value FROM {t} WHERE key <> 'n' ORDER BY key"),
                         rows(con, "nt"))
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))


if __name__ == "__main__":
    unittest.main()


class FirstWriteInsideBeginWaits(TempDirTestCase):
    """A connection that has not used the table yet runs BEGIN and a write while another
    connection holds the write lock and commits a moment later: with a busy timeout the write
    waits and succeeds, as the same write on a native table does (Node's deferred
    db.transaction() in several processes does exactly this). Before, opening the table's cache
    read the shadow tables inside the transaction first, and SQLite then refused the write lock at
    once with 'database is locked'."""

    WRITES = ("UPDATE nt SET value = value + 1 WHERE key = 'hits'",
              "SELECT feox_incr('kv', 'hits', 1)",
              "UPDATE kv SET value = value + 1 WHERE key = 'hits'",
              "INSERT OR REPLACE INTO kv(key, value) VALUES ('other', 1)",
              "DELETE FROM kv WHERE key = 'gone'")

    def check_waits(self, journal_mode):
        path = os.path.join(self.dir, journal_mode + ".db")
        setup = connect(path)
        setup.execute(f"PRAGMA journal_mode = {journal_mode}")
        setup.execute("CREATE VIRTUAL TABLE kv USING feox")
        setup.execute(NATIVE)
        setup.execute("INSERT INTO kv(key, value) VALUES ('hits', 0), ('gone', 1)")
        setup.execute("INSERT INTO nt VALUES ('hits', 0)")
        setup.close()
        holder = connect(path)
        self.addCleanup(holder.close)
        for sql in self.WRITES:
            with self.subTest(sql=sql):
                con = connect(path, timeout=30.0)
                con.execute("SELECT count(*) FROM sqlite_schema").fetchall()  # schema read
                holder.execute("BEGIN IMMEDIATE")
                holder.execute("INSERT OR REPLACE INTO nt VALUES ('holder', 1)")
                release = threading.Timer(0.3, holder.execute, ("COMMIT",))
                release.start()
                try:
                    con.execute("BEGIN")
                    con.execute(sql).fetchall()
                    con.execute("COMMIT")
                finally:
                    if con.in_transaction:  # first: a holder's COMMIT may wait for its lock
                        con.execute("ROLLBACK")
                    release.join()
                    con.close()
        check = connect(path)
        self.addCleanup(check.close)
        self.assertEqual(check.execute("SELECT value FROM kv WHERE key = 'hits'").fetchall(), [(2,)])
        self.assertEqual(check.execute("SELECT value FROM nt WHERE key = 'hits'").fetchall(), [(1,)])
        self.assertEqual(check.execute("SELECT key FROM kv ORDER BY key").fetchall(),
                         [("hits",), ("other",)])
        self.assertEqual(check.execute("SELECT feox_check('kv')").fetchone(), ("ok",))

    def test_wal(self):
        self.check_waits("wal")

    def test_rollback_journal(self):
        self.check_waits("delete")
