"""SPEC.md promises through SQL that the conformance audit (hunt9) found without a test that
could fail: feox_stats carrying every field of the engine's statistics, each counter moving
under the SQL that should move it in every mode; the largest key and value in a store file
across a reopen, with the limits' errors naming the table."""
import json
import os
import re
import subprocess
import sys
import threading
import unittest

from feoxtest import EXT, REPO, TempDirTestCase, connect

FEOX_H = os.path.join(REPO, "engine", "feox.h")


def stats_fields():
    """Every field of feox_stats, in order, as FEOX_STATS_FIELDS lists them in engine/feox.h."""
    with open(FEOX_H, encoding="utf-8") as f:
        text = f.read()
    block = text[text.index("#define FEOX_STATS_FIELDS"):]
    block = block[:block.index("\n\n")]
    return re.findall(r"\b(?:COUNTER|VALUE)\((\w+)", block)


# Counters any table moves under the workload below, whatever the mode.
OPERATION_COUNTERS = ("gets", "get_misses", "inserts", "updates", "deletes", "range_queries",
                      "cas_success", "cas_failure", "increments", "json_patches",
                      "json_patch_failures", "older_timestamp_errors", "keys_with_ttl",
                      "epoch_retired")
# What a store file adds once it has been flushed and compacted.
FILE_FIELDS = ("disk_writes", "disk_bytes_written", "flushes", "fsyncs", "file_size",
               "file_live_bytes", "compactions")


class FeoxStatsTest(TempDirTestCase):
    """SPEC §2: feox_stats returns at least len, memory_usage, max_memory and the operation,
    expiry, cache and I/O counters; SPEC §1: every counter is really maintained."""

    def workload(self, con, table):
        """SQL that should move every operation counter of table."""
        run = con.execute
        run(f"INSERT INTO {table}(key, value, ts) VALUES ('a', 1, 1000), ('b', 'x', NULL)")
        run(f"INSERT INTO {table}(key, value, ttl) VALUES ('t', 'v', 3600)")
        run(f"UPDATE {table} SET value = 2 WHERE key = 'a'")
        run(f"SELECT value FROM {table} WHERE key = 'b'").fetchall()
        run(f"SELECT value FROM {table} WHERE key = 'missing'").fetchall()
        run(f"SELECT key FROM {table} WHERE key BETWEEN 'a' AND 'c'").fetchall()
        run(f"DELETE FROM {table} WHERE key = 'b'")
        # feox_incr creating a key counts as an insert; on an INTEGER, as an increment
        run(f"SELECT feox_incr('{table}', 'n', 1), feox_incr('{table}', 'n', 1)").fetchall()
        # a swap, a different value, another type (TEXT '5' vs INTEGER 5), a missing key
        self.assertEqual(run(f"SELECT feox_cas('{table}', 'n', 2, 5), feox_cas('{table}', 'n', 2, 6),"
                             f" feox_cas('{table}', 'n', '5', 7), feox_cas('{table}', 'no', 1, 2)"
                             ).fetchall(), [(1, 0, 0, 0)])
        run(f"INSERT INTO {table}(key, value) VALUES ('doc', '{{\"a\":1}}')")
        run(f"SELECT feox_patch('{table}', 'doc', '[{{\"op\":\"add\",\"path\":\"/b\",\"value\":2}}]')"
            ).fetchall()
        for sql in (f"SELECT feox_patch('{table}', 'doc', '[{{\"op\":\"test\",\"path\":\"/a\","
                    "\"value\":9}]')",
                    f"UPDATE {table} SET value = 3, ts = 1 WHERE key = 'a'"):
            with self.assertRaises(Exception):
                run(sql).fetchall()

    def stats(self, con, table="kv"):
        return json.loads(con.execute(f"SELECT feox_stats('{table}')").fetchone()[0])

    def assertMoved(self, stats, names, mode):
        stuck = [name for name in names if stats[name] == 0]
        self.assertEqual(stuck, [], f"{mode}: counters still 0: {stuck}")

    def test_every_field_of_the_engine_statistics_is_a_key(self):
        fields = stats_fields()
        self.assertIn("ttl_expired_active", fields)
        self.assertGreaterEqual(len(fields), 40)
        con = connect()
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        stats = self.stats(con)
        self.assertEqual([k for k in fields if k not in stats], [])
        self.assertTrue(all(isinstance(stats[k], int) for k in fields))

    def test_operation_counters_move_in_memory(self):
        con = connect()
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        self.workload(con, "kv")
        stats = self.stats(con)
        # feox_cas: every call counted, failures included (SQL's used to stop at a read)
        self.assertEqual((stats["cas_success"], stats["cas_failure"]), (1, 3))
        self.assertMoved(stats, OPERATION_COUNTERS + ("len", "memory_usage"), "memory")
        self.assertEqual([stats[name] for name in FILE_FIELDS], [0] * len(FILE_FIELDS))
        self.assertEqual(stats["len"], con.execute("SELECT count(*) FROM kv").fetchone()[0])

    def test_operation_and_file_counters_move_in_a_store_file(self):
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='kv.feox')")
        self.workload(con, "kv")
        con.execute("SELECT feox_flush('kv')").fetchall()
        con.execute("SELECT feox_compact('kv')").fetchall()
        stats = self.stats(con)
        self.assertMoved(stats, OPERATION_COUNTERS + FILE_FIELDS, "store file")
        self.assertEqual(stats["compactions"], 1)
        con.close()
        con = connect(db)
        con.execute("SELECT count(*) FROM kv").fetchall()
        stats = self.stats(con)
        self.assertEqual(stats["recovered_records"], stats["len"])
        self.assertGreater(stats["len"], 0)

    def test_operation_counters_move_in_the_database(self):
        con = connect(self.path("app.db"))
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        self.workload(con, "kv")
        self.assertMoved(self.stats(con), OPERATION_COUNTERS + ("len", "memory_usage"),
                         "database")

    def test_out_of_memory_errors_and_max_memory(self):
        con = connect()
        con.execute("CREATE VIRTUAL TABLE kv USING feox(max_memory='64KiB')")
        with self.assertRaises(Exception):
            con.execute("INSERT INTO kv(key, value) VALUES ('big', zeroblob(100000))")
        stats = self.stats(con)
        self.assertEqual((stats["out_of_memory_errors"], stats["max_memory"], stats["len"]),
                         (1, 64 * 1024, 0))


MAX_KEY = 100 * 1024
MAX_VALUE = 4 * 1024 * 1024


class LimitsInAStoreFileTest(TempDirTestCase):
    """SPEC §1/§2: keys up to 100 KiB and values up to 4 MiB in every mode, here a store file
    read back by another connection after the store was closed; one byte more is an error that
    names the table and writes nothing."""

    def test_the_largest_key_and_value_survive_a_reopen(self):
        db = self.path("app.db")
        key, value = "k" * MAX_KEY, os.urandom(MAX_VALUE)
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='big.feox')")
        con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (key, value))
        con.execute("INSERT INTO kv(key, value) VALUES (?, 'short')", (key[:-1],))
        for sql, args, message in (
                ("INSERT INTO kv(key, value) VALUES (?, 1)", (key + "k",),
                 "feox: kv: key is longer than 102400 bytes"),
                ("UPDATE kv SET value = zeroblob(?) WHERE key = ?", (MAX_VALUE + 1, key),
                 "feox: kv: value is longer than 4194304 bytes")):
            with self.assertRaises(Exception) as cm:
                con.execute(sql, args)
            self.assertEqual(str(cm.exception), message)
        con.close()
        con = connect(db)
        self.assertEqual(con.execute("SELECT length(key), value = ? FROM kv ORDER BY key",
                                     (value,)).fetchall(), [(MAX_KEY - 1, 0), (MAX_KEY, 1)])
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()[0],
                         value)
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        con.close()


THREADS = 4
WRITES = 300
# One process's writer: plain writes (automatic ts) to one key, in every form SQL has.
PLAIN_WRITER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
con.enable_load_extension(True)
con.load_extension(sys.argv[2])
table, tag = sys.argv[3], sys.argv[4]
for j in range(int(sys.argv[5])):
    con.execute(f"INSERT OR REPLACE INTO {table}(key, value) VALUES ('hot', ?)", (tag + str(j),))
    con.execute(f"UPDATE {table} SET value = ? WHERE key = 'hot'", (tag + str(j),))
    con.execute(f"REPLACE INTO {table}(key, value, ttl, ts) VALUES ('hot', ?, '', '')", (tag,))
con.close()
"""


class ConcurrentPlainWritesTest(TempDirTestCase):
    """SPEC §1 timestamps: automatic timestamps are drawn under the key's lock, so concurrent
    plain writes never fail with OlderTimestamp (FeoxDB's do). Through SQL: threads with a
    connection each, writing one key in a table in the database, a store file and a memory
    table; and two processes on a table in the database (each with its own cache)."""

    def setUp(self):
        super().setUp()
        self.db = self.path("app.db")
        self.keeper = connect(self.db)
        self.addCleanup(self.keeper.close)
        self.keeper.execute("PRAGMA journal_mode=WAL")
        self.keeper.execute("CREATE VIRTUAL TABLE indb USING feox")
        self.keeper.execute("CREATE VIRTUAL TABLE infile USING feox(path='hot.feox')")
        self.keeper.execute("CREATE VIRTUAL TABLE inmem USING feox(path=':memory:')")

    def test_threads_in_every_mode(self):
        for table in ("indb", "infile", "inmem"):
            errors = []

            def writer(i):
                try:
                    con = connect(self.db)
                    try:
                        for j in range(WRITES):
                            con.execute(f"INSERT OR REPLACE INTO {table}(key, value) "
                                        "VALUES ('hot', ?)", (f"t{i}:{j}",))
                            con.execute(f"UPDATE {table} SET value = ? WHERE key = 'hot'",
                                        (f"u{i}:{j}",))
                    finally:
                        con.close()
                except Exception as e:  # reported by the main thread
                    errors.append(f"{table}: {e}")

            threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            stats = json.loads(self.keeper.execute(f"SELECT feox_stats('{table}')").fetchone()[0])
            self.assertEqual(stats["older_timestamp_errors"], 0, table)
            self.assertEqual(self.keeper.execute(f"SELECT count(*) FROM {table}").fetchone()[0], 1)

    def test_two_processes_on_a_table_in_the_database(self):
        procs = [subprocess.Popen([sys.executable, "-c", PLAIN_WRITER, self.db, EXT, "indb",
                                   f"p{i}", str(WRITES)], stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        for p in procs:
            p.stderr.close()
        self.assertEqual(results, [(0, "")] * 2)
        self.assertEqual(self.keeper.execute("SELECT count(*) FROM indb").fetchone()[0], 1)


if __name__ == "__main__":
    unittest.main()
