"""Several processes at once on one in-database feox table (ext/db_mode.c), each checked against a
model of its own keys: what a busy app with a few worker processes does to it, at random, for a
few seconds (the seed is printed on a failure).

Each of PROCESSES forked processes has its own connection (busy_timeout 30 s) and its own keys
("p<i>:..."), and mixes, in autocommit and inside BEGIN / BEGIN IMMEDIATE (a quarter rolled
back, some with a SAVEPOINT rolled back to; some transactions only read): INSERT OR REPLACE
(with and without a ttl), UPDATE, DELETE of a key and of a range, feox_cas, feox_incr of
counters every process shares, keys with ttl=1 that must vanish, and statements that fail (a
duplicate key; a two-row INSERT whose second row is a duplicate). After every transaction and
now and then in autocommit it reads its keys back (a range scan and a point read, inside the
transaction too) and compares them with the model; after each statement in autocommit and each
transaction a second connection of its own commits a change, which the next read must see.
Sometimes it runs feox_check or closes and opens its connection again. At the end: each
process's keys as its model says, the shared counters equal to the sum of the increments that
committed, the short-lived keys gone, feox_check and PRAGMA integrity_check ok.

This found a rollback that read the shadow tables after SQLite had ended the transaction: the
connection kept that read transaction open, read an old snapshot in its next statement, and its
next write failed with "database is locked" at once instead of waiting (failed in every run;
test_in_database.RollbackTest has the exact case).
"""
import json
import os
import random
import sqlite3
import time
import traceback
import unittest

from feoxtest import TempDirTestCase, connect

PROCESSES = 4
SECONDS = 6.0
KEYS = 200          # own keys p<i>:0000 .. p<i>:0199
SHORT = 20          # then p<i>:0200 .. : ttl=1, never in the model
COUNTERS = ["c0", "c1", "c2", "c3"]


class Worker:
    def __init__(self, db, wid, seed):
        self.db, self.wid = db, wid
        self.rnd = random.Random(seed)
        self.con = connect(db, timeout=30)
        self.observer = connect(db, timeout=30)  # commits what see_commits then reads
        self.prefix = f"p{wid}:"
        self.model = {}
        self.increments = dict.fromkeys(COUNTERS, 0)

    def key(self, i):
        return f"{self.prefix}{i:04d}"

    def verify(self, model, where):
        got = dict(self.con.execute("SELECT key, value FROM kv WHERE key >= ? AND key < ?",
                                    (self.key(0), self.key(KEYS))).fetchall())
        if got != model:
            diff = sorted((k, model.get(k), got.get(k)) for k in set(model) | set(got)
                          if model.get(k) != got.get(k))
            raise AssertionError(f"{where}: the scan differs from the model "
                                 f"(key, model, table): {diff[:5]}")
        k = self.key(self.rnd.randrange(KEYS))
        row = self.con.execute("SELECT value FROM kv WHERE key = ?", (k,)).fetchone()
        if (row[0] if row else None) != model.get(k):
            raise AssertionError(f"{where}: {k} reads {row}, the model has {model.get(k)!r}")

    def see_commits(self, where):
        """Outside a transaction a statement sees what was committed before it began: the
        observer commits a change of this process's tick key, and the next read here sees it."""
        tick = f"{self.prefix}tick"
        want = self.observer.execute("SELECT feox_incr('kv', ?, 1)", (tick,)).fetchone()[0]
        got = self.con.execute("SELECT value FROM kv WHERE key = ?", (tick,)).fetchone()
        if got != (want,):
            raise AssertionError(f"{where}: {tick} reads {got} after another connection "
                                 f"committed {want}: an old snapshot")

    def writes(self, model, increments, n):
        rnd, con = self.rnd, self.con
        for _ in range(n):
            k = self.key(rnd.randrange(KEYS))
            r = rnd.random()
            if r < 0.35:
                v = rnd.choice([rnd.randrange(10**6), f"s{rnd.randrange(1000)}"])
                con.execute("INSERT OR REPLACE INTO kv(key, value, ttl) VALUES (?, ?, ?)",
                            (k, v, rnd.choice([None, 3600])))
                model[k] = v
            elif r < 0.45:
                con.execute("DELETE FROM kv WHERE key = ?", (k,))
                model.pop(k, None)
            elif r < 0.55:
                v = f"u{rnd.randrange(1000)}"
                con.execute("UPDATE kv SET value = ? WHERE key = ?", (v, k))
                if k in model:
                    model[k] = v
            elif r < 0.62:
                old, v = model.get(k), f"cas{rnd.randrange(1000)}"
                expected = old if isinstance(old, str) else "never written"
                swapped = con.execute("SELECT feox_cas('kv', ?, ?, ?)",
                                      (k, expected, v)).fetchone()[0]
                if swapped != (expected == old):
                    raise AssertionError(f"feox_cas({k}, {expected!r}) = {swapped}, model {old!r}")
                if swapped:
                    model[k] = v
            elif r < 0.68:
                i = rnd.randrange(KEYS)
                lo, hi = self.key(i), self.key(min(i + 5, KEYS))
                con.execute("DELETE FROM kv WHERE key >= ? AND key < ?", (lo, hi))
                for gone in [x for x in model if lo <= x < hi]:
                    del model[gone]
            elif r < 0.76:
                c, d = rnd.choice(COUNTERS), rnd.randrange(1, 5)
                con.execute("SELECT feox_incr('kv', ?, ?)", (c, d)).fetchone()
                increments[c] += d
            elif r < 0.82:
                con.execute("INSERT OR REPLACE INTO kv(key, value, ttl) VALUES (?, 'short', 1)",
                            (self.key(KEYS + rnd.randrange(SHORT)),))
            elif r < 0.91:
                try:
                    con.execute("INSERT INTO kv(key, value) VALUES (?, 'dup')", (k,))
                    model[k] = "dup"
                except sqlite3.IntegrityError:
                    if k not in model:
                        raise
            else:
                present = self.key(rnd.randrange(KEYS))
                if present in model and k not in model:  # the first row goes in, then fails
                    try:
                        con.execute("INSERT INTO kv(key, value) VALUES (?, 'first'), (?, 'second')",
                                    (k, present))
                    except sqlite3.IntegrityError:
                        pass
                    else:
                        raise AssertionError(f"a two-row INSERT with {present} present succeeded")

    def transaction(self):
        rnd, con = self.rnd, self.con
        con.execute("BEGIN IMMEDIATE" if rnd.random() < 0.8 else "BEGIN")
        model, increments = dict(self.model), dict.fromkeys(COUNTERS, 0)
        self.writes(model, increments, rnd.randrange(1, 20))
        if rnd.random() < 0.3:
            con.execute("SAVEPOINT s")
            inner, inner_increments = dict(model), dict(increments)
            self.writes(inner, inner_increments, rnd.randrange(1, 10))
            if rnd.random() < 0.5:
                con.execute("ROLLBACK TO s")
            else:
                model, increments = inner, inner_increments
            con.execute("RELEASE s")
        self.verify(model, "inside a transaction")
        if rnd.random() < 0.25:
            con.execute("ROLLBACK")
        else:
            con.execute("COMMIT")
            self.model = model
            for c in COUNTERS:
                self.increments[c] += increments[c]
        self.see_commits("after the transaction")
        self.verify(self.model, "after the transaction")

    def run(self, seconds):
        rnd, ops = self.rnd, 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ops += 1
            r = rnd.random()
            if r < 0.5:
                increments = dict.fromkeys(COUNTERS, 0)
                self.writes(self.model, increments, 1)
                for c in COUNTERS:
                    self.increments[c] += increments[c]
                self.see_commits("after a statement in autocommit")
            elif r < 0.8:
                self.transaction()
            elif r < 0.88:  # a transaction that only reads
                self.con.execute("BEGIN")
                self.verify(self.model, "in a read transaction")
                self.con.execute("COMMIT")
                self.see_commits("after a read transaction")
            elif r < 0.93:
                self.verify(self.model, "in autocommit")
            elif r < 0.96:
                check = self.con.execute("SELECT feox_check('kv')").fetchone()[0]
                if check != "ok":
                    raise AssertionError(f"feox_check: {check}")
            else:  # a new connection: its cache loads in the next statement (often a BEGIN)
                self.con.close()
                self.con = connect(self.db, timeout=30)
        self.verify(self.model, "at the end")
        self.con.close()
        self.observer.close()
        return ops


class ProcessesModelTest(TempDirTestCase):
    def run_processes(self, journal_mode):
        db = self.path("app.db")
        con = connect(db)
        con.execute(f"PRAGMA journal_mode = {journal_mode}")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.close()
        seed = int(os.environ.get("FEOX_TEST_SEED", random.randrange(10**9)))
        children = []
        for wid in range(PROCESSES):
            pid = os.fork()
            if pid == 0:
                status = 1
                try:
                    worker = Worker(db, wid, seed + wid)
                    ops = worker.run(SECONDS)
                    with open(f"{db}.worker{wid}", "w") as out:
                        json.dump({"model": worker.model, "increments": worker.increments,
                                   "ops": ops}, out)
                    status = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(status)
            children.append(pid)
        failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
        self.assertEqual(failed, [], f"{journal_mode}: a process failed (its traceback is above; "
                                     f"FEOX_TEST_SEED={seed} runs the same choices)")
        con = connect(db)
        totals, ops = dict.fromkeys(COUNTERS, 0), 0
        for wid in range(PROCESSES):
            with open(f"{db}.worker{wid}") as f:
                done = json.load(f)
            ops += done["ops"]
            for c in COUNTERS:
                totals[c] += done["increments"][c]
            rows = dict(con.execute("SELECT key, value FROM kv WHERE key >= ? AND key < ?",
                                    (f"p{wid}:0000", f"p{wid}:{KEYS:04d}")).fetchall())
            self.assertEqual(rows, done["model"], f"process {wid}'s keys (seed {seed})")
        counters = {c: (con.execute("SELECT value FROM kv WHERE key = ?", (c,)).fetchone()
                        or (0,))[0] for c in COUNTERS}
        self.assertEqual(counters, totals, f"shared counters (seed {seed})")
        time.sleep(1.1)  # the last ttl=1 keys expire
        self.assertEqual(con.execute("SELECT count(*) FROM kv WHERE value = 'short'").fetchone(),
                         (0,))
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone(), ("ok",))
        con.close()
        self.assertGreater(ops, PROCESSES * 50, "the processes hardly ran")

    def test_wal(self):
        self.run_processes("WAL")

    def test_rollback_journal(self):
        self.run_processes("DELETE")


if __name__ == "__main__":
    unittest.main()
