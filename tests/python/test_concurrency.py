"""Several connections, one per thread, on one store (SPEC §1 linearizable counters, §2 shared
engine instance; issue 5 items 8 and 10)."""
import threading
import unittest

from feoxtest import TempDirTestCase, connect

THREADS = 4
INCREMENTS = 500


def run_threads(target, n):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as e:  # reported by the main thread
            errors.append(repr(e))

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class ConcurrencyTest(TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.db = self.path("conc.db")
        con = connect(self.db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("CREATE VIRTUAL TABLE mem USING feox(path=':memory:')")
        self.keeper = con  # keeps the memory table alive between the threads
        self.addCleanup(con.close)

    def test_incr_is_exact(self):
        for table in ("kv", "mem"):
            with self.subTest(table=table):
                def work(i):
                    con = connect(self.db)
                    try:
                        for _ in range(INCREMENTS):
                            con.execute(f"SELECT feox_incr('{table}', 'counter', 1)").fetchall()
                    finally:
                        con.close()

                self.assertEqual(run_threads(work, THREADS), [])
                got = self.keeper.execute(f"SELECT value, typeof(value) FROM {table} WHERE key = 'counter'").fetchone()
                self.assertEqual(got, (THREADS * INCREMENTS, "integer"))

    def test_cas_counter_is_exact(self):
        self.keeper.execute("INSERT INTO kv(key, value) VALUES ('cas', 0)")

        def work(i):
            con = connect(self.db)
            try:
                done = 0
                while done < 200:
                    cur = con.execute("SELECT value FROM kv WHERE key = 'cas'").fetchone()[0]
                    if con.execute("SELECT feox_cas('kv', 'cas', ?, ?)", (cur, cur + 1)).fetchone()[0] == 1:
                        done += 1
            finally:
                con.close()

        self.assertEqual(run_threads(work, THREADS), [])
        self.assertEqual(self.keeper.execute("SELECT value FROM kv WHERE key = 'cas'").fetchone(),
                         (THREADS * 200,))

    def test_a_rollback_in_a_store_that_is_not_isolated_undoes_what_others_built_on(self):
        # README "Transactions and isolation": in a store file or memory table another
        # connection sees a change before COMMIT and may build on it; a ROLLBACK puts back the
        # version the key had before the transaction's change, so a change another connection
        # made to that key in between goes too. In the database (kv) the second connection
        # waits for the first's COMMIT or ROLLBACK instead, and nothing is lost.
        store = self.path("file.feox")
        self.keeper.execute(f"CREATE VIRTUAL TABLE file USING feox(path='{store}')")
        for table, lost in (("file", True), ("mem", True), ("kv", False)):
            with self.subTest(table=table):
                self.keeper.execute(f"INSERT OR REPLACE INTO {table}(key, value) VALUES ('n', 10)")
                first, second = connect(self.db, timeout=0.2), connect(self.db)
                first.execute("BEGIN")
                first.execute(f"SELECT feox_incr('{table}', 'n', 3)").fetchall()
                if lost:
                    second.execute(f"SELECT feox_incr('{table}', 'n', 2)").fetchall()
                    self.assertEqual(second.execute(f"SELECT value FROM {table} WHERE key = 'n'")
                                     .fetchone(), (15,))
                else:
                    timer = threading.Timer(0.3, first.execute, ("ROLLBACK",))
                    timer.start()
                    second.execute(f"SELECT feox_incr('{table}', 'n', 2)").fetchall()
                    timer.join()
                if first.in_transaction:
                    first.execute("ROLLBACK")
                self.assertEqual(second.execute(f"SELECT value FROM {table} WHERE key = 'n'")
                                 .fetchone(), (10 if lost else 12,))
                first.close()
                second.close()

    def test_concurrent_inserts_and_scans(self):
        # writers insert and delete their own keys; a scanner checks every scan is strictly
        # ascending (or descending) with no duplicates while they run.
        stop = threading.Event()
        scan_errors = []

        def writer(i):
            con = connect(self.db)
            try:
                for j in range(300):
                    con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (f"w{i}:{j:04d}", j))
                    if j % 3 == 0:
                        con.execute("DELETE FROM kv WHERE key = ?", (f"w{i}:{j:04d}",))
            finally:
                con.close()

        def scanner():
            con = connect(self.db)
            try:
                while not stop.is_set():
                    keys = [r[0] for r in con.execute("SELECT key FROM kv ORDER BY key")]
                    if any(a >= b for a, b in zip(keys, keys[1:])):
                        scan_errors.append("ascending scan out of order or duplicated")
                        return
                    keys = [r[0] for r in con.execute("SELECT key FROM kv WHERE key > 'w1' ORDER BY key DESC")]
                    if any(a <= b for a, b in zip(keys, keys[1:])):
                        scan_errors.append("descending scan out of order or duplicated")
                        return
            finally:
                con.close()

        scan_thread = threading.Thread(target=scanner)
        scan_thread.start()
        errors = run_threads(writer, 3)
        stop.set()
        scan_thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(scan_errors, [])
        self.assertEqual(self.keeper.execute("SELECT count(*) FROM kv WHERE key GLOB 'w*'").fetchone(),
                         (3 * 200,))


if __name__ == "__main__":
    unittest.main()
