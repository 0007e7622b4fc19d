"""Random write transactions on a feox table and on a native twin, compared after every statement.

The undo journal (ext/txn_journal.c) and the pending map (ext/storage_sqlite_pending.c) hold a
one-row transaction's change in place (its key and old value in the structure itself, up to 256
bytes): these scripts make that entry the first of a longer transaction, outlive savepoints
(SAVEPOINT, ROLLBACK TO, RELEASE, nested), be replaced by the same key, and meet statements that
write several rows or fail midway (a duplicate key in a multi-row INSERT). Values straddle the
256-byte limit. Each script runs on the three kinds of table (in the database, store file,
memory) in a file database; after every statement kv and nt must hold the same rows and the
errors must be the same, and feox_check must pass at the end and after a reopen. Seeded: a
failure prints the statements that led to it.
"""
import random
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect

SEEDS = (11, 12, 13, 14)
STATEMENTS = 260
KEYS = ["k%d" % i for i in range(12)]
SIZES = (0, 1, 100, 230, 245, 250, 251, 256, 257, 300, 2000)


def value(rng):
    return rng.choice("abcxyz") * rng.choice(SIZES)


def rows(con, table):
    return con.execute(f"SELECT key, value FROM {table} ORDER BY key").fetchall()


class Script:
    """Random statements that keep SQLite's savepoint stack valid."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.savepoints = []
        self.in_txn = False

    def next(self):
        rng = self.rng
        r = rng.random()
        if not self.in_txn and r < 0.25:
            self.in_txn = True
            return "BEGIN", ()
        if r < 0.10 and len(self.savepoints) < 4:
            name = "s%d" % len(self.savepoints)
            self.savepoints.append(name)
            self.in_txn = True
            return f"SAVEPOINT {name}", ()
        if r < 0.16 and self.savepoints:
            name = rng.choice(self.savepoints)
            del self.savepoints[self.savepoints.index(name) + 1:]
            return f"ROLLBACK TO {name}", ()
        if r < 0.20 and self.savepoints:
            name = rng.choice(self.savepoints)
            del self.savepoints[self.savepoints.index(name):]
            return f"RELEASE {name}", ()
        if r < 0.25 and self.in_txn:
            self.in_txn = False
            self.savepoints = []
            return rng.choice(["COMMIT", "ROLLBACK"]), ()
        key = rng.choice(KEYS)
        w = rng.random()
        if w < 0.35:
            return "INSERT OR REPLACE INTO {t}(key, value) VALUES (?, ?)", (key, value(rng))
        if w < 0.50:
            return "UPDATE {t} SET value = ? WHERE key = ?", (value(rng), key)
        if w < 0.60:
            return "DELETE FROM {t} WHERE key = ?", (key,)
        if w < 0.72:
            other = rng.choice(KEYS)  # may be key itself: the second row then fails
            return ("INSERT INTO {t}(key, value) VALUES (?, ?), (?, ?)",
                    (key, value(rng), other, value(rng)))
        if w < 0.82:
            return "UPDATE {t} SET value = value || 'q' WHERE key <= ?", (key,)
        if w < 0.90:
            return "DELETE FROM {t} WHERE key >= ?", (key,)
        return "INSERT OR REPLACE INTO {t}(key, value) SELECT key, ? FROM {t} WHERE key < ?", (
            value(rng), key)


class TransactionTwin(TempDirTestCase):
    KV_OPTIONS = ""

    def run_script(self, seed, options):
        db = self.path(f"twin{seed}.db")
        con = connect(db)
        con.execute("PRAGMA journal_mode = wal")
        con.execute(f"CREATE VIRTUAL TABLE kv USING feox{options}")
        con.execute("CREATE TABLE nt(key TEXT PRIMARY KEY, value, ttl, ts) WITHOUT ROWID")
        script = Script(seed)
        done = []
        for _ in range(STATEMENTS):
            sql, args = script.next()
            seen = []
            if "{t}" not in sql:  # BEGIN, SAVEPOINT...: once, for both tables
                con.execute(sql)
                done.append(sql)
                continue
            for table in ("kv", "nt"):
                try:
                    con.execute(sql.format(t=table), args).fetchall()
                    seen.append("ok")
                except sqlite3.Error as e:
                    # the primary code: a vtab's constraint error has no extended code
                    seen.append("_".join(e.sqlite_errorname.split("_")[:2]))
            done.append(f"{sql} {[a[:12] if isinstance(a, str) else a for a in args]} -> {seen}")
            msg = f"seed {seed} {options}:\n" + "\n".join(done[-25:])
            self.assertEqual(seen[0], seen[1], msg)
            self.assertEqual(rows(con, "kv"), rows(con, "nt"), msg)
        if con.in_transaction:
            con.execute("COMMIT")
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        want = rows(con, "nt")
        con.close()
        if options != "(path=':memory:')":  # a memory table goes with its last connection
            con = connect(db)
            self.assertEqual(rows(con, "kv"), want)
            self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
            con.close()

    def test_in_the_database(self):
        for seed in SEEDS:
            self.run_script(seed, "")

    def test_store_file(self):
        for seed in SEEDS:
            self.run_script(seed, f"(path='{self.path(f'kv{seed}.feox')}')")

    def test_memory(self):
        for seed in SEEDS:
            self.run_script(seed, "(path=':memory:')")


class BindingsKeptAcrossSchemaChanges(TempDirTestCase):
    """The backend's write statement keeps a parameter bound while it does not change (the tag,
    the expiry's NULL): a statement SQLite prepares again after another connection's schema change
    keeps its bindings, one prepared anew after a RENAME starts with none. An expiry must never
    outlive the write that set it."""

    def test_expiry_after_schema_changes(self):
        db = self.path("binds.db")
        a = connect(db)
        a.execute("PRAGMA journal_mode = wal")
        a.execute("CREATE VIRTUAL TABLE kv USING feox")
        a.execute("INSERT INTO kv(key, value, ttl) VALUES ('x', 1, 600)")
        a.execute("INSERT INTO kv(key, value) VALUES ('v', 0)")  # the expiry's NULL bound again
        a.execute("INSERT INTO kv(key, value, ttl) VALUES ('u', 0, 600)")
        b = connect(db)
        b.execute("CREATE TABLE other(x)")  # a's statements are prepared again
        a.execute("INSERT INTO kv(key, value) VALUES ('y', 2)")
        a.execute("ALTER TABLE kv RENAME TO kv2")  # finalized, prepared anew
        a.execute("INSERT INTO kv2(key, value, ttl) VALUES ('z', 3, 600)")
        b.execute("DROP TABLE other")
        a.execute("INSERT INTO kv2(key, value) VALUES ('w', 4)")
        want = [("u", 0), ("v", 1), ("w", 1), ("x", 0), ("y", 1), ("z", 0)]
        self.assertEqual(a.execute("SELECT key, ttl IS NULL FROM kv2 ORDER BY key").fetchall(), want)
        self.assertEqual(a.execute("SELECT feox_check('kv2')").fetchone()[0], "ok")
        c = connect(db)
        self.assertEqual(c.execute("SELECT key, ttl IS NULL FROM kv2 ORDER BY key").fetchall(), want)
        for con in (a, b, c):
            con.close()


if __name__ == "__main__":
    unittest.main()
