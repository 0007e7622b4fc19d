"""Scans without values (FEOX_PLAN_NO_VALUE, ext/plan.c): a plan reads rows without their values
only when the statement uses no value column anywhere (SQLite's colUsed). Each query below uses
the value only in a place other than the result columns (WHERE, ORDER BY, GROUP BY / HAVING, a
window, a correlated or IN subquery, a join, a CTE, a view-like subquery); its feox scan must
read values ("no values" absent from EXPLAIN QUERY PLAN) and every result must equal a native
table's. Queries that use no value are answered without them and still agree. DML: UPDATE and
DELETE forms over scans that use no value leave the same rows as the native table; RETURNING is
refused on a virtual table by SQLite itself.
"""
import random
import sqlite3
import unittest

from feoxtest import connect

USES_VALUE = [
    "SELECT key FROM {t} WHERE value IS NULL ORDER BY key",
    "SELECT count(*) FROM {t} WHERE value IS NOT NULL",
    "SELECT key FROM {t} ORDER BY value, key",
    "SELECT key FROM {t} WHERE key > 'k01' ORDER BY value, key",
    "SELECT key, (SELECT count(*) FROM t2 WHERE t2.x = {t}.value) FROM {t} ORDER BY key",
    "SELECT typeof(value), count(*) FROM {t} GROUP BY typeof(value) ORDER BY 1",
    "SELECT count(*) FROM {t} GROUP BY key HAVING max(value) IS NULL",
    "SELECT key, row_number() OVER (ORDER BY value, key) FROM {t} ORDER BY key",
    "SELECT key, count(*) OVER (PARTITION BY typeof(value)) FROM {t} ORDER BY key",
    "SELECT key FROM {t} WHERE EXISTS (SELECT 1 FROM t2 WHERE x = value) ORDER BY key",
    "SELECT a.key FROM {t} a JOIN t2 ON t2.x = a.value ORDER BY 1",
    "SELECT key FROM (SELECT key, value v FROM {t}) WHERE v IS NULL ORDER BY 1",
    "SELECT DISTINCT typeof(value) FROM {t} ORDER BY 1",
    "SELECT key FROM {t} WHERE key BETWEEN 'k0010' AND 'k0050' AND coalesce(value, 'x') = 'x' "
    "ORDER BY 1",
    "SELECT count(*) FROM {t} WHERE key > 'k02' AND length(value) > 1",
    "WITH c AS (SELECT key, value FROM {t}) SELECT key FROM c WHERE value IS NULL ORDER BY 1",
]
NO_VALUE = [
    "SELECT count(*) FROM {t}",
    "SELECT key FROM {t} WHERE key > 'k0100' ORDER BY key DESC LIMIT 7",
    "SELECT count(*) FROM {t} WHERE ttl IS NULL",
    "SELECT a.key FROM {t} a JOIN {t} b ON a.key = b.key WHERE b.value IS NULL ORDER BY 1",
    # (LIMIT -1 keeps SQLite from pushing the IN down into the subquery, as 3.53 does, which
    # makes that side a lookup: lookups never say "no values")
    "SELECT group_concat(key) FROM (SELECT key FROM {t} ORDER BY key LIMIT -1) "
    "WHERE key IN (SELECT key FROM {t} WHERE value IS NULL)",
]
DML = [
    "UPDATE {t} SET ttl = 100 WHERE key < 'k0010'",
    "UPDATE {t} SET ttl = NULL WHERE key > 'k0200' AND key < 'k0210'",
    "UPDATE {t} SET key = key || 'x' WHERE key > 'k0100' AND key < 'k0105'",
    "UPDATE {t} SET value = 'set' WHERE key > 'k0150' AND key < 'k0160'",
    "UPDATE {t} AS a SET ttl = 50 FROM t2 WHERE t2.x = 's1' AND a.key < 'k0020'",
    "DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE value IS NULL)",
    "DELETE FROM {t} WHERE key > 'k0280'",
]


class NoValuePlanTest(unittest.TestCase):
    def setUp(self):
        self.con = connect()
        self.con.execute("CREATE VIRTUAL TABLE kv USING feox")
        self.con.execute("CREATE TABLE nt(key TEXT PRIMARY KEY, value, ttl INTEGER, ts INTEGER)")
        self.con.execute("CREATE TABLE t2(x)")
        rng = random.Random(1)
        rows = [(f"k{i:04d}", rng.choice([None, i, f"s{i % 7}", i / 3, bytes([i % 256]) * 3]))
                for i in range(300)]
        for table in ("kv", "nt"):
            self.con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)", rows)
        self.con.executemany("INSERT INTO t2 VALUES (?)", [(f"s{i}",) for i in range(7)])
        self.addCleanup(self.con.close)

    def plan(self, sql):
        return " | ".join(row[3] for row in self.con.execute("EXPLAIN QUERY PLAN " + sql))

    def same_as_native(self, sql):
        self.assertEqual(self.con.execute(sql.format(t="kv")).fetchall(),
                         self.con.execute(sql.format(t="nt")).fetchall(), sql)

    def test_a_value_used_anywhere_is_read(self):
        for sql in USES_VALUE:
            with self.subTest(sql=sql):
                self.assertNotIn("no values", self.plan(sql.format(t="kv")))
                self.same_as_native(sql)

    def test_statements_without_values(self):
        for sql in NO_VALUE:
            with self.subTest(sql=sql):
                self.assertIn("no values", self.plan(sql.format(t="kv")))
                self.same_as_native(sql)

    def test_writes_over_scans_without_values(self):
        for sql in DML:
            with self.subTest(sql=sql):
                for table in ("kv", "nt"):
                    self.con.execute(sql.format(t=table))
                self.same_as_native("SELECT key, value, ttl IS NULL FROM {t} ORDER BY key")
        with self.assertRaisesRegex(sqlite3.OperationalError, "RETURNING"):
            self.con.execute("DELETE FROM kv WHERE key > 'k0' RETURNING value")


if __name__ == "__main__":
    unittest.main()
