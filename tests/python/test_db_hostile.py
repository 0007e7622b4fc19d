"""Hostile input to tables in the database, each case a wrong answer found by the hostile-input
review (store files and other damage: test_db_adversarial.py, test_files.py):

  - a ttl so long that the expiry passes 2^63 ns (about the year 2262) is stored in
    <t>_data.expires as a negative integer (u64 bits in an i64); the commit's expiry sweep took it
    for long expired and deleted the row, while the writing connection's cache kept it: two
    connections read different tables. The same in clock='log' mode and its 'sweep';
  - <t>_log edited by hand to hold a key that is not a BLOB: a warm cache applying the feed looked
    that key up as bytes, found no row, and dropped a live record (now: the statement fails
    naming kv_log, and the cache reloads from <t>_data);
  - <t>_data edited by hand to hold a key that is not a BLOB: the load reads keys >= x'' (SQLite
    sorts every other type first), so the row was silently missing from every read;
  - <t>_meta's min_seq edited to a non-integer: reads went on, writes failed on a UNIQUE
    constraint of <t>_log instead of naming the damage.
Each: the statement fails with a message naming the damaged shadow table (or, for the TTL, the
record stays), and the table works again once the row is repaired. And a shadow table dropped
or replaced by a view: feox_check on a connection with the table loaded said "I/O error" (then
failed with "no such table": now it reports what is missing, as an integrity check does), and
without <t>_data every use named only a store file that never existed (the table is then taken
for a previous release's, kept in <db>-<t>.feox). Last, option values with unbalanced quotes
(path='a'b), which named files "'a'b".
"""
import os
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect

HUGE_TTL = 9_000_000_000  # seconds: now + this passes 2^63 ns


class LongTtlTest(TempDirTestCase):
    def test_a_ttl_past_2262_keeps_the_row(self):
        path = self.path("ttl.db")
        a = connect(path)
        a.execute("CREATE VIRTUAL TABLE kv USING feox")
        a.execute("INSERT INTO kv(key, value, ttl) VALUES ('far', 1, ?)", (HUGE_TTL,))
        a.execute("INSERT INTO kv(key, value, ttl) VALUES ('never', 2, 9223372036854775807)")
        a.execute("INSERT INTO kv(key, value, ttl) VALUES ('soon', 3, 1000)")
        a.execute("INSERT INTO kv(key, value) VALUES ('z', 4)")  # a later commit sweeps
        b = connect(path)
        for con in (a, b):
            self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                             [("far", 1), ("never", 2), ("soon", 3), ("z", 4)])
        self.assertEqual(a.execute("SELECT count(*) FROM kv_data").fetchone(), (4,))
        self.assertEqual(a.execute("SELECT feox_sweep('kv')").fetchone(), (0,))
        self.assertEqual(b.execute("SELECT count(*) FROM kv").fetchone(), (4,))
        self.assertEqual(a.execute("SELECT feox_check('kv')").fetchone(), ("ok",))

    def test_a_ttl_past_2262_on_the_logical_clock(self):
        path = self.path("clock.db")
        a = connect(path)
        a.execute("CREATE VIRTUAL TABLE kv USING feox(clock='log')")
        a.execute("INSERT INTO kv(kv, ts) VALUES ('clock', 1000000000000000000)")
        a.execute("INSERT INTO kv(key, value, ttl) VALUES ('far', 1, ?)", (HUGE_TTL,))
        a.execute("INSERT INTO kv(key, value, ttl) VALUES ('soon', 2, 1)")
        a.execute("INSERT INTO kv(kv, ts) VALUES ('clock', 1000000005000000000)")
        a.execute("INSERT INTO kv(kv) VALUES ('sweep')")
        self.assertEqual(a.execute("SELECT key FROM kv_data").fetchall(), [(b"far",)])
        b = connect(path)
        for con in (a, b):
            self.assertEqual(con.execute("SELECT key, value FROM kv").fetchall(), [("far", 1)])


class DamageCase(TempDirTestCase):
    """A database with a five-row table in WAL mode, edited by hand (defensive mode off)."""

    def make(self, name):
        path = self.path(name)
        con = connect(path)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.executemany("INSERT INTO kv(key, value) VALUES (?, ?)", [(f"k{i}", i) for i in range(5)])
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (5,))
        return path, con

    @staticmethod
    def edit(path, *sql):
        ed = sqlite3.connect(path, isolation_level=None)  # defensive mode off
        for statement in sql:
            ed.execute(statement)
        ed.close()

    def assert_refused(self, con, said, sqls):
        for sql in sqls:
            with self.assertRaises(sqlite3.DatabaseError) as cm:
                con.execute(sql).fetchall()
            self.assertIn(f"feox: kv: {said}", str(cm.exception), sql)
            self.assertEqual(cm.exception.sqlite_errorname, "SQLITE_CORRUPT", sql)


class DamagedKeysAndSeqTest(DamageCase):
    STATEMENTS = ["SELECT count(*) FROM kv", "SELECT value FROM kv WHERE key = 'k2'",
                  "INSERT INTO kv(key, value) VALUES ('new', 1)"]

    def assert_works(self, con, rows=5):
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'k2'").fetchall(), [(2,)])
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone(), (rows,))
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))

    def test_a_feed_row_whose_key_is_not_a_blob(self):
        for n, key in enumerate(["'k2'", "2", "2.5"]):
            with self.subTest(key=key):
                path, warm = self.make(f"feed{n}.db")
                self.assert_works(warm)
                self.edit(path, f"INSERT INTO kv_log VALUES (1000, {key}, NULL)")
                with self.assertRaises(sqlite3.DatabaseError) as cm:
                    warm.execute("SELECT value FROM kv WHERE key = 'k2'").fetchall()
                self.assertIn("feox: kv: a row of kv_log is damaged: a key that is not a BLOB",
                              str(cm.exception))
                self.assertEqual(cm.exception.sqlite_errorname, "SQLITE_CORRUPT")
                # the cache was reloaded from kv_data (the feed cannot be followed past the
                # damage): the record is there, and feox_check names the damaged row
                self.assertEqual(warm.execute("SELECT value FROM kv WHERE key = 'k2'").fetchall(),
                                 [(2,)])
                self.assertEqual(warm.execute("SELECT count(*) FROM kv").fetchone(), (5,))
                self.assertIn("feed rows not in the feed's format",
                              warm.execute("SELECT feox_check('kv')").fetchone()[0])
                self.edit(path, "UPDATE kv_log SET key = CAST('k2' AS BLOB) WHERE seq = 1000")
                self.assert_works(warm)
                warm.execute("INSERT INTO kv(key, value) VALUES ('new', 1)")
                self.assert_works(warm, 6)
                warm.close()

    def test_a_record_whose_key_is_not_a_blob(self):
        for n, key in enumerate(["'k1'", "'zz'", "42", "4.5"]):
            with self.subTest(key=key):
                path, con = self.make(f"data{n}.db")
                con.close()
                self.edit(path, f"UPDATE kv_data SET key = {key} WHERE key = CAST('k1' AS BLOB)")
                cold = connect(path)
                self.assert_refused(cold, "a row of kv_data is damaged: a key that is not a BLOB",
                                    self.STATEMENTS)
                self.assertIn("kv_data: a key is not a BLOB",
                              cold.execute("SELECT feox_check('kv')").fetchone()[0])
                cold.execute(f"UPDATE kv_data SET key = CAST('k1' AS BLOB) WHERE key = {key}")
                self.assert_works(cold)
                cold.close()

    def test_a_min_seq_that_is_not_an_integer(self):
        for n, value in enumerate(["'abc'", "3.5", "x'00'"]):
            with self.subTest(value=value):
                path, warm = self.make(f"min{n}.db")
                warm.close()
                self.edit(path, f"UPDATE kv_meta SET value = {value} WHERE name = 'min_seq'")
                cold = connect(path)
                self.assert_refused(cold, "the seq in kv_log or kv_meta is damaged", self.STATEMENTS)
                self.assertIn("min_seq is not a non-negative integer",
                              cold.execute("SELECT feox_check('kv')").fetchone()[0])
                cold.execute("UPDATE kv_meta SET value = 0 WHERE name = 'min_seq'")
                self.assert_works(cold)
                cold.execute("INSERT INTO kv(key, value) VALUES ('new', 1)")
                self.assert_works(cold, 6)
                cold.close()


class DamagedColumnsTest(DamageCase):
    """A row of kv_data whose columns no write makes (wrong SQL type, a tag that does not match the
    value's type): read as they are, they gave wrong answers (a tag 5 row read as NULL, an INTEGER
    with tag 3 as 8 bytes of text, a ts 'x' as 0). Refused as a damaged row, on a cold load and
    when a warm cache reads the row through the change feed."""

    K1 = "CAST('k1' AS BLOB)"
    # (damage of k1, what the statement says)
    EDITS = [
        ("tag = 3", "a value whose SQL type does not match its tag"),
        ("tag = 5", "a value whose SQL type does not match its tag"),
        ("tag = 2", "a value whose SQL type does not match its tag"),
        ("value = 'abc'", "a value whose SQL type does not match its tag"),
        ("value = 1.5", "a value whose SQL type does not match its tag"),
        ("value = NULL", "a value whose SQL type does not match its tag"),
        ("tag = -1", "a tag that is not a 32-bit unsigned integer"),
        ("tag = 4294967296", "a tag that is not a 32-bit unsigned integer"),
        ("tag = 'abc'", "a tag that is not a 32-bit unsigned integer"),
        ("tag = 1.5", "a tag that is not a 32-bit unsigned integer"),
        ("ts = 'x'", "a ts that is not an integer"),
        ("ts = 2.5", "a ts that is not an integer"),
        ("expires = 'x'", "an expires that is neither NULL nor a non-zero integer"),
        ("expires = 0", "an expires that is neither NULL nor a non-zero integer"),
        ("expires = 1.5", "an expires that is neither NULL nor a non-zero integer"),
        ("seq = 'x'", "a seq that is not a positive integer"),
        ("seq = 0", "a seq that is not a positive integer"),
        ("seq = -5", "a seq that is not a positive integer"),
    ]

    def refused(self, con, said):
        self.assert_refused(con, f"a row of kv_data is damaged: {said}",
                            ["SELECT key, value FROM kv", "SELECT value FROM kv WHERE key = 'k1'"])

    def test_cold_load(self):
        for n, (damage, said) in enumerate(self.EDITS):
            with self.subTest(damage=damage):
                path, con = self.make(f"c{n}.db")
                con.close()
                self.edit(path, f"UPDATE kv_data SET {damage} WHERE key = {self.K1}")
                con = connect(path)
                self.refused(con, said)
                self.assertNotEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
                con.execute("UPDATE kv_data SET value = 1, tag = 1, ts = 1, expires = NULL, "
                            f"seq = 2 WHERE key = {self.K1}")
                self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                                 [(f"k{i}", i) for i in range(5)])
                self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
                con.close()

    def test_warm_cache_through_the_feed(self):
        for n, (damage, said) in enumerate(self.EDITS):
            if damage.startswith("seq"):
                continue  # a feed row names the row's seq: damaging it is another case
            with self.subTest(damage=damage):
                path, warm = self.make(f"w{n}.db")
                self.edit(path, "BEGIN",
                          f"UPDATE kv_data SET {damage}, seq = 100 WHERE key = {self.K1}",
                          f"INSERT INTO kv_log VALUES (100, {self.K1}, NULL)", "COMMIT")
                self.refused(warm, said)
                warm.close()


class MissingShadowTableTest(DamageCase):
    """A shadow table dropped (or replaced by a view, or recreated with other columns) by another
    connection: every statement fails naming it, and feox_check reports it (an integrity check
    reports damage; it said "no such table" as an error), on a connection that had the table
    loaded (warm) and on a new one (cold). Without kv_data a new connection takes the table for a
    previous release's, kept in its store file: its report says that neither is there."""

    NEITHER = ("feox: kv: store file '{db}-kv.feox' does not exist, nor does the shadow table "
               "kv_data (a table without path keeps its records in one or the other)")
    # name: (edits, what statements say, what feox_check reports on the warm connection, cold)
    EDITS = {
        "log": (["DROP TABLE kv_log"], "no such table: main.kv_log",
                "kv_log: the shadow table does not exist", None),
        "meta": (["DROP TABLE kv_meta"], "no such table: main.kv_meta",
                 "kv_meta: the shadow table does not exist", None),
        "data": (["DROP TABLE kv_data"], "nor does the shadow table kv_data",
                 "kv_data: the shadow table does not exist", NEITHER),
        "data view": (["CREATE TABLE saved AS SELECT * FROM kv_data", "DROP TABLE kv_data",
                       "CREATE VIEW kv_data AS SELECT * FROM saved"],
                      "nor does the shadow table kv_data", "kv_data: is a view, not a table",
                      NEITHER),
        "log and meta": (["DROP TABLE kv_log", "DROP TABLE kv_meta"], "no such table: main.kv_",
                         "kv_log: the shadow table does not exist; kv_meta: the shadow table "
                         "does not exist", None),
        "log columns": (["DROP TABLE kv_log", "CREATE TABLE kv_log(a, b, c, d)"],
                        "no such column: seq", "kv_log: no such column: seq", None),
        "meta columns": (["DROP TABLE kv_meta", "CREATE TABLE kv_meta(x)"],
                         "no such column", "kv_meta: no such column: name", None),
    }

    def test_every_use_names_the_missing_table(self):
        for n, (name, (edits, said, warm_report, cold_report)) in enumerate(self.EDITS.items()):
            with self.subTest(name=name):
                path = self.path(f"m{n}.db")
                warm = connect(path)
                warm.execute("CREATE VIRTUAL TABLE kv USING feox")
                warm.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
                self.assertEqual(warm.execute("SELECT count(*) FROM kv").fetchone(), (1,))
                self.edit(path, *edits)
                cold = connect(path)
                for con, report in ((warm, warm_report), (cold, cold_report or warm_report)):
                    self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(),
                                     (report.format(db=path),))
                    for sql in ["SELECT count(*) FROM kv",
                                "INSERT INTO kv(key, value) VALUES ('b', 2)"]:
                        with self.assertRaises(sqlite3.DatabaseError) as cm:
                            con.execute(sql).fetchall()
                        self.assertIn("feox: kv: ", str(cm.exception), sql)
                        self.assertIn(said, str(cm.exception), sql)
                    # the failed statements may have reconnected the warm table as a new one
                    self.assertIn(con.execute("SELECT feox_check('kv')").fetchone()[0],
                                  [report.format(db=path), (cold_report or report).format(db=path)])
                    con.close()
                self.assertEqual([f for f in os.listdir(self.dir) if ".feox" in f], [])

    def test_misuse_is_still_an_error(self):
        """feox_check of something that is not a feox table, or with a wrong argument, fails."""
        path, con = self.make("misuse.db")
        con.execute("CREATE TABLE plain(a)")
        for sql, said in [("SELECT feox_check('nope')", "feox: no such table: nope"),
                          ("SELECT feox_check('plain')", "feox: plain is not a feox table"),
                          ("SELECT feox_check(NULL)", "the table name may not be NULL"),
                          ("SELECT feox_check('kv', 1)", "wrong number of arguments")]:
            with self.subTest(sql=sql):
                with self.assertRaises(sqlite3.Error) as cm:
                    con.execute(sql).fetchall()
                self.assertIn(said, str(cm.exception))
        con.close()

    def test_a_new_connection_can_drop_the_table(self):
        """xConnect failed with SQLITE_ERROR ("no such table: main.kv_log", "no such column:
        seq") where a damaged row connects without a cache, so DROP TABLE kv was refused on
        every new connection: the table could not be removed without PRAGMA writable_schema."""
        edits = {
            "log": ["DROP TABLE kv_log"],
            "meta": ["DROP TABLE kv_meta"],
            "log columns": ["DROP TABLE kv_log", "CREATE TABLE kv_log(a, b, c, d)"],
            "data columns": ["DROP TABLE kv_data", "CREATE TABLE kv_data(x)"],
            # without kv_data the table is taken for a previous release's (its records in
            # <db>-kv.feox): the DROP left kv_log and kv_meta, and CREATE then failed
            "data": ["DROP TABLE kv_data"],
            "data view": ["CREATE TABLE saved AS SELECT * FROM kv_data", "DROP TABLE kv_data",
                          "CREATE VIEW kv_data AS SELECT * FROM saved"],
        }
        for n, (name, sql) in enumerate(edits.items()):
            with self.subTest(name=name):
                path = self.path(f"d{n}.db")
                con = connect(path)
                con.execute("CREATE VIRTUAL TABLE kv USING feox")
                con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
                con.close()
                self.edit(path, *sql)
                cold = connect(path)
                cold.execute("DROP TABLE kv")
                left = cold.execute("SELECT name FROM sqlite_schema WHERE name LIKE 'kv%'"
                                    " AND type = 'table'").fetchall()
                self.assertEqual(left, [])
                if name == "data view":
                    cold.execute("DROP VIEW kv_data")
                cold.execute("CREATE VIRTUAL TABLE kv USING feox")
                cold.close()
                self.assertEqual([f for f in os.listdir(self.dir) if ".feox" in f], [])


class OptionQuotingTest(TempDirTestCase):
    """A quoted option value must be one quoted string: path='a'b and path='a' 'b' named the files
    "'a'b" and "a' 'b" (the quotes were kept, or only the outer ones dropped)."""

    def test_unbalanced_quotes_are_refused(self):
        con = connect(self.path("q.db"))
        for n, opts in enumerate(["path='a'b", "path='a'  'b'",
                                  "max_memory='1'0", "'path'x='a.feox'"]):
            with self.subTest(opts=opts):
                with self.assertRaises(sqlite3.OperationalError) as cm:
                    con.execute(f"CREATE VIRTUAL TABLE t{n} USING feox({opts})")
                self.assertIn(f"feox: t{n}: option ", str(cm.exception))
                self.assertIn("unbalanced quotes in its", str(cm.exception))
        for n, (opts, name) in enumerate([("path='it''s.feox'", "it's.feox"),
                                          ('path="d""q.feox"', 'd"q.feox'),
                                          ("path=[b'r.feox]", "b'r.feox"),
                                          ("path=plain.feox", "plain.feox")]):
            with self.subTest(opts=opts):
                con.execute(f"CREATE VIRTUAL TABLE ok{n} USING feox({opts})")
                self.assertTrue(os.path.exists(self.path(name)), name)
        self.assertEqual(sorted(f for f in os.listdir(self.dir) if not f.startswith("q.db")),
                         sorted(["it's.feox", 'd"q.feox', "b'r.feox", "plain.feox"]))
        con.close()


if __name__ == "__main__":
    unittest.main()
