"""A statement on a table in the database interrupted at every step of its run.

A progress handler (Python's set_progress_handler, Tcl's `db progress`, what statement timeouts
are built on) that returns true makes SQLite stop the running statement with SQLITE_INTERRUPT,
and it also runs inside the SQL feox runs for the statement: the savepoint of a writing function,
the writes of the shadow tables and the change feed at commit. Each statement here is interrupted
at its 1st, 2nd, 3rd, ... progress callback until it completes; after every interrupted call
the connection must be back in autocommit (a call that began outside BEGIN never leaves a
transaction open: the writes that follow would otherwise never commit), this connection and
another one must show the same rows, either those before the statement or those it makes when
it completes (SQLite calls the progress handler once more after an autocommit statement has
committed, and reports SQLITE_INTERRUPT for it, native tables alike; and a writing function called
by a SELECT outside BEGIN commits when it returns, as README says), and the next autocommit write
must be seen by the other connection. Both journal modes.
"""
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect, skip_unless_built_with

STATEMENTS = (
    "SELECT feox_incr('kv', 'n', 1)",
    "SELECT feox_incr('kv', 'fresh', 1, 60)",
    "SELECT feox_cas('kv', 'n', (SELECT value FROM kv WHERE key = 'n'), 0)",
    "SELECT feox_patch('kv', 'doc', '[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]')",
    "SELECT feox_sweep('kv')",
    "SELECT feox_incr('kv', key, 1) FROM kv WHERE key >= 'n'",  # one row: the SELECT reads kv
    "INSERT OR REPLACE INTO kv(key, value) VALUES ('n', 5)",
    "UPDATE kv SET value = value + 1 WHERE key >= 'n'",
    "DELETE FROM kv WHERE key = 'doc'",
)
MAX_STEPS = 2000


def rows(con):
    return con.execute("SELECT key, value, ttl IS NOT NULL FROM kv ORDER BY key").fetchall()


@skip_unless_built_with("the progress callback", "OMIT_PROGRESS_CALLBACK")
class InterruptTest(TempDirTestCase):
    def run_interrupted(self, mode):
        db = self.path(f"{mode}.db")
        con = connect(db)
        self.assertEqual(con.execute(f"PRAGMA journal_mode = {mode}").fetchone(), (mode,))
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        other = connect(db)
        def reset():
            con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('n', 1), ('doc', '{}')")
            con.execute("DELETE FROM kv WHERE key = 'fresh'")
            return rows(other)

        for sql in STATEMENTS:
            before = reset()
            con.execute(sql).fetchall()
            after = rows(other)
            interrupted = 0
            for steps in range(1, MAX_STEPS + 1):
                left = [steps]

                def tick():
                    left[0] -= 1
                    return left[0] == 0

                reset()
                con.set_progress_handler(tick, 1)
                try:
                    con.execute(sql).fetchall()
                    done = True
                except sqlite3.Error as e:
                    done = False
                    self.assertIn("interrupted", str(e), (sql, steps))
                finally:
                    con.set_progress_handler(None, 1)
                if done:
                    break
                interrupted += 1
                where = f"{mode}: {sql} interrupted at step {steps}"
                self.assertFalse(con.in_transaction, where)
                self.assertIn(rows(other), (before, after), where)
                self.assertEqual(rows(con), rows(other), where)
                con.execute("INSERT INTO kv(key, value) VALUES ('probe', 1)")
                self.assertEqual(other.execute("SELECT value FROM kv WHERE key = 'probe'").fetchone(),
                                 (1,), where)
                con.execute("DELETE FROM kv WHERE key = 'probe'")
            else:
                self.fail(f"{sql} did not complete in {MAX_STEPS} steps")
            self.assertGreater(interrupted, 10, sql)
            self.assertFalse(con.in_transaction, sql)
            self.assertEqual(rows(other), after, sql)
            self.assertEqual(rows(con), after, sql)
            self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",), sql)
        con.close()
        other.close()

    def run_stays_interrupted(self, mode, persistent_handler):
        """Interrupted from the Nth progress callback on, as statement timeouts and
        sqlite3_interrupt do (every later callback returns true; sqlite3_interrupt fails every
        statement the connection starts until the interrupted one ends): the writing function
        cannot run ROLLBACK either, and its own transaction must still end with the call. The
        calls here are made by statements that read the table: SQLite ends a bare
        `SELECT feox_incr(...)`'s transaction at no error (README)."""
        db = self.path(f"stays-{mode}-{persistent_handler}.db")
        con = connect(db)
        self.assertEqual(con.execute(f"PRAGMA journal_mode = {mode}").fetchone(), (mode,))
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('n', 1), ('m', 1)")
        other = connect(db)
        for sql in ("SELECT feox_incr('kv', key, 1) FROM kv WHERE key = 'n'",
                    "SELECT feox_incr('kv', key, 1) FROM kv",
                    "SELECT feox_cas('kv', key, value, value + 1) FROM kv"):
            for steps in range(1, MAX_STEPS + 1):
                before = rows(other)
                count = [0]

                def tick():
                    count[0] += 1
                    if persistent_handler:
                        return count[0] >= steps
                    if count[0] == steps:
                        con.interrupt()
                    return False

                con.set_progress_handler(tick, 1)
                try:
                    con.execute(sql).fetchall()
                    done = True
                except sqlite3.Error:
                    done = False
                finally:
                    con.set_progress_handler(None, 1)
                where = f"{mode}: {sql} interrupted from step {steps}"
                self.assertFalse(con.in_transaction, where)
                self.assertEqual(rows(con), rows(other), where)
                self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",), where)
                if done:
                    self.assertNotEqual(rows(other), before, where)
                    break
            else:
                self.fail(f"{sql} did not complete in {MAX_STEPS} steps")
        con.close()
        other.close()

    def test_stays_interrupted_wal(self):
        self.run_stays_interrupted("wal", True)
        self.run_stays_interrupted("wal", False)

    def test_stays_interrupted_rollback_journal(self):
        self.run_stays_interrupted("delete", True)
        self.run_stays_interrupted("delete", False)

    def test_full_load_through_the_worker_interrupted(self):
        """A connection's first scan loads the whole table (40,000 rows: past the 16,384 from
        which a worker thread builds the cache while SQLite steps, engine/store/store_load_pipe.c);
        interrupted at points from its first step to past its end, the statement fails or
        completes, and afterwards the same connection (its cache holds what the worker applied
        before the interrupt) sees every row, each with its value, and feox_check agrees; a write
        in the transaction of the next full load is seen by it and undone by ROLLBACK."""
        db = self.path("pipe.db")
        writer = connect(db)
        writer.execute("CREATE VIRTUAL TABLE kv USING feox")
        total = 40000
        writer.execute("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE "
                       f"i < {total - 1}) INSERT INTO kv(key, value) "
                       "SELECT printf('k%06d', i), printf('v%d', i) FROM n")
        writer.close()
        interrupted = 0
        for steps in (1, 30, 1000, 10000, 30000, 100000, 200000, 400000, 800000, 3000000):
            con = connect(db)
            count = [0]

            def tick():
                count[0] += 1
                return count[0] >= steps

            con.set_progress_handler(tick, 1)
            try:
                con.execute("SELECT count(*) FROM kv WHERE value IS NOT NULL").fetchall()
            except sqlite3.OperationalError as e:
                self.assertIn("interrupt", str(e))
                interrupted += 1
            finally:
                con.set_progress_handler(None, 1)
            where = f"interrupted at step {steps}"
            self.assertEqual(con.execute("SELECT count(*), count(DISTINCT value) FROM kv").fetchone(),
                             (total, total), where)
            self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'k039999'").fetchone(),
                             ("v39999",), where)
            self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",), where)
            con.close()
        self.assertGreaterEqual(interrupted, 4)
        con = connect(db)
        con.execute("BEGIN")
        con.execute("UPDATE kv SET value = 'mine' WHERE key = 'k000005'")
        self.assertEqual(con.execute("SELECT count(*), sum(value = 'mine') FROM kv").fetchone(),
                         (total, 1))
        con.execute("ROLLBACK")
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'k000005'").fetchone(),
                         ("v5",))
        con.close()

    def test_wal(self):
        self.run_interrupted("wal")

    def test_rollback_journal(self):
        self.run_interrupted("delete")


if __name__ == "__main__":
    unittest.main()
