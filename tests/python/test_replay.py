"""The rqlite contract (issue 14, item 2): statement replication, tested by replay.

rqlite applies one log of SQL statements on every node, each at its own wall-clock time, and a
node restored from a snapshot replays the tail of the log much later. Its copies stay equal only
if every statement does the same thing on every node. With clock='log' (ext/logical_clock.c) a
feox table's writes take "now" from a logical clock in the database that the log itself advances
(INSERT INTO kv(kv, ts) VALUES('clock', ?)), so they do.

The harness: one statement log of a few thousand mixed statements (inserts with and without ttl,
explicit and automatic ts, OR IGNORE / OR REPLACE, updates, key changes, deletes, range deletes
and updates, counters as UPDATE value = value + ?, compare-and-swap as UPDATE ... WHERE value = ?,
feox_json_patch updates, some of which fail, transactions that commit and that roll back, clock
statements, older clock statements, sweeps) is applied by independent processes
(/usr/bin/python3 replay_node.py), one after the other, each with its own database file and its
own wall clock (the LD_PRELOAD shim wall_clock_shim.c moves CLOCK_REALTIME by days or a year;
feox itself has no test hook). One node takes a VACUUM INTO snapshot midway; another node starts
from a copy of that snapshot and replays the tail. Every node must end with the same content
(sha256 of key, value, typeof(value), ts and ttl as the table shows them, and of every column of
the shadow tables, the absolute expiry included) and every statement must have had the same
outcome (changes() or error) everywhere. A read-only connection of each node reads the table
every 50 statements (rqlite serves reads from such connections): it too sees the same rows at the
same log positions on every node.

The same log is applied to a control table in the default mode (clock = the wall clock) in the
same databases: its copies must differ, which shows that the comparison would catch a
non-deterministic write (the test fails if they do not).
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time
import unittest

from feoxtest import EXT, TempDirTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns: the log's first clock
BOTH = ["kv", "ctl"]
LOG_ONLY = ["kv"]


def generate_log(seed=14, n=3000):
    """The statement log: a list of {"sql", "params", "tables"} (see replay_node.py)."""
    r = random.Random(seed)
    log = []
    clock = [T0]

    def add(sql, params=(), tables=BOTH):
        log.append({"sql": sql, "params": list(params), "tables": tables})

    def advance():
        clock[0] += r.randint(0, 1500) * 1_000_000
        add("INSERT INTO {t}({t}, ts) VALUES('clock', ?)", [clock[0]], LOG_ONLY)

    def value():
        kind = r.randrange(6)
        if kind == 0:
            return r.randint(-1000, 1000)
        if kind == 1:
            return round(r.uniform(-100, 100), 3)
        if kind == 2:
            return "text-%d" % r.randint(0, 99)
        if kind == 3:
            return {"blob": "%04x" % r.randint(0, 65535)}
        if kind == 4:
            return None
        return json.dumps({"v": r.randint(0, 9)})

    key = lambda: "k%02d" % r.randrange(60)  # noqa: E731
    counters = ["c%d" % i for i in range(6)]
    cas_keys = ["cas%d" % i for i in range(4)]
    docs = ["j%d" % i for i in range(4)]

    advance()
    for c in counters:
        add("INSERT INTO {t}(key, value) VALUES(?, 0)", [c])
    for c in cas_keys:
        add("INSERT INTO {t}(key, value) VALUES(?, 0)", [c])
    for d in docs:
        add("INSERT INTO {t}(key, value) VALUES(?, ?)", [d, '{"n":0,"tags":[],"s":"x"}'])

    depth = 0
    while len(log) < n:
        roll = r.random()
        if roll < 0.12:
            advance()
        elif roll < 0.14:
            # an older clock (a statement replayed or reordered): changes nothing
            add("INSERT INTO {t}({t}, ts) VALUES('clock', ?)",
                [clock[0] - r.randint(1, 5) * 1_000_000_000], LOG_ONLY)
        elif roll < 0.24:
            add("INSERT OR REPLACE INTO {t}(key, value) VALUES(?, ?)", [key(), value()])
        elif roll < 0.34:
            add("INSERT OR REPLACE INTO {t}(key, value, ttl) VALUES(?, ?, ?)",
                [key(), value(), r.randint(1, 8)])
        elif roll < 0.37:
            add("INSERT INTO {t}(key, value, ttl) VALUES(?, ?, ?)", [key(), value(), r.randint(1, 8)])
        elif roll < 0.40:
            # explicit ts: used as given (strictly newer wins; OR IGNORE skips an older one);
            # some are far in the future, so later automatic ones must be ts + 1
            ts = clock[0] + r.choice([-10**12, -1, 1, 10**9, 10**15])
            add("INSERT OR IGNORE INTO {t}(key, value, ts) VALUES(?, ?, ?)", [key(), value(), ts])
        elif roll < 0.42:
            add("INSERT OR REPLACE INTO {t}(key, value, ts, ttl) VALUES(?, ?, ?, ?)",
                [key(), value(), clock[0] + r.randint(1, 10**10), r.randint(1, 5)])
        elif roll < 0.47:
            add("UPDATE {t} SET value = ? WHERE key = ?", [value(), key()])
        elif roll < 0.50:
            add("UPDATE {t} SET ttl = ? WHERE key = ?", [r.choice([None, 0, 2, 6]), key()])
        elif roll < 0.52:
            add("UPDATE OR REPLACE {t} SET key = ? WHERE key = ?", [key(), key()])
        elif roll < 0.56:
            add("DELETE FROM {t} WHERE key = ?", [key()])
        elif roll < 0.57:
            lo = r.randrange(60)
            add("DELETE FROM {t} WHERE key >= ? AND key < ?", ["k%02d" % lo, "k%02d" % (lo + 3)])
        elif roll < 0.58:
            # a range UPDATE whose WHERE reads ttl: decided by the clock too
            add("UPDATE {t} SET value = ? WHERE key LIKE ? AND ttl IS NOT NULL AND ttl < 4",
                [value(), "k%d%%" % r.randrange(6)])
        elif roll < 0.68:
            c = r.choice(counters)
            if r.random() < 0.1:
                add("INSERT OR IGNORE INTO {t}(key, value) VALUES(?, 0)", [c])
            elif r.random() < 0.05:
                add("UPDATE {t} SET ttl = ? WHERE key = ?", [r.randint(1, 4), c])
            else:
                add("UPDATE {t} SET value = value + ? WHERE key = ?", [r.randint(-5, 20), c])
        elif roll < 0.76:
            add("UPDATE {t} SET value = ? WHERE key = ? AND value = ?",
                [r.randrange(4), r.choice(cas_keys), r.randrange(4)])
        elif roll < 0.84:
            d = r.choice(docs)
            patch = r.choice([
                [{"op": "replace", "path": "/n", "value": r.randint(0, 50)}],
                [{"op": "add", "path": "/tags/-", "value": "t%d" % r.randrange(9)}],
                [{"op": "remove", "path": "/tags/0"}],  # fails on an empty list
                [{"op": "test", "path": "/n", "value": r.randint(0, 3)},  # fails mostly
                 {"op": "replace", "path": "/s", "value": "tested"}],
                [{"op": "copy", "from": "/n", "path": "/m"}],
            ])
            add("UPDATE {t} SET value = feox_json_patch(value, ?) WHERE key = ?",
                [json.dumps(patch), d])
        elif roll < 0.86:
            add("INSERT INTO {t}({t}) VALUES('sweep')", [], LOG_ONLY)
        elif roll < 0.90 and depth == 0:
            add("BEGIN", [], [])
            depth = 1
        elif roll < 0.93 and depth == 1:
            add("ROLLBACK" if r.random() < 0.25 else "COMMIT", [], [])
            depth = 0
        else:
            add("INSERT OR REPLACE INTO {t}(key, value) VALUES(?, ?)", [key(), value()])
    if depth:
        add("COMMIT", [], [])
    advance()
    add("INSERT INTO {t}({t}) VALUES('sweep')", [], LOG_ONLY)
    return log


def midpoint(log):
    """An entry index near the middle that is outside any transaction (VACUUM INTO needs it)."""
    depth = 0
    outside = []
    for i, e in enumerate(log):
        if depth == 0:
            outside.append(i)
        if e["sql"] == "BEGIN":
            depth = 1
        elif e["sql"] in ("COMMIT", "ROLLBACK"):
            depth = 0
    return min(outside, key=lambda i: abs(i - len(log) // 2))


class ReplayTestCase(TempDirTestCase):
    def setUp(self):
        super().setUp()
        cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
        self.assertIsNotNone(cc, "a C compiler is needed to build wall_clock_shim.c")
        self.shim = self.path("wall_clock_shim.so")
        subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", self.shim,
                        os.path.join(HERE, "wall_clock_shim.c"), "-ldl"], check=True)
        self.log = generate_log()
        self.log_file = self.path("log.json")
        with open(self.log_file, "w") as f:
            json.dump(self.log, f)

    def node(self, db, start, end, offset_s, create=True, snapshot_at=None, snapshot=None):
        """Run one node in its own process under a wall clock moved by offset_s seconds."""
        env = dict(os.environ, FEOX_EXT=EXT, LD_PRELOAD=self.shim,
                   FEOX_TEST_WALL_OFFSET_S=str(offset_s))
        args = {"db": db, "log": self.log_file, "start": start, "end": end, "create": create,
                "snapshot_at": snapshot_at, "snapshot": snapshot}
        done = subprocess.run([PY, os.path.join(HERE, "replay_node.py"), json.dumps(args)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=600)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def test_nodes_converge_under_different_clocks_and_a_restore(self):
        log = self.log
        n = len(log)
        mid = midpoint(log)
        self.assertGreater(n, 2500)
        day = 86400
        # node a: the whole log, on this machine's clock
        a = self.node(self.path("a.db"), 0, n, 0)
        # node b: the whole log, three days ahead (every ttl would have expired by its clock)
        b = self.node(self.path("b.db"), 0, n, 3 * day)
        # node c: the whole log, five hours behind; takes a snapshot midway
        snapshot = self.path("snapshot.db")
        c = self.node(self.path("c.db"), 0, n, -5 * 3600, snapshot_at=mid, snapshot=snapshot)
        # node d: restored from c's snapshot a year later, replays the tail
        shutil.copy(snapshot, self.path("d.db"))
        d = self.node(self.path("d.db"), mid, n, 365 * day, create=False)

        # the shim works: each node's wall clock, as feox reads it, is where it was put
        now_s = time.time()
        for node, offset in ((a, 0), (b, 3 * day), (c, -5 * 3600), (d, 365 * day)):
            self.assertLess(abs(node["probe_ts"] / 1e9 - (now_s + offset)), 3600)

        # clock='log': identical content and identical outcomes everywhere
        for other in (b, c, d):
            for what in ("view", "data", "shadow", "rows", "stored", "with_ttl", "types"):
                self.assertEqual(a["kv"][what], other["kv"][what], what)
        for node in (a, b, c, d):
            self.assertEqual(node["kv"]["check"], "ok")
        for other in (b, c):
            self.assertEqual(a["outcomes"]["kv"], other["outcomes"]["kv"])
        tail = {i: o for i, o in a["outcomes"]["kv"].items() if int(i) >= mid}
        self.assertEqual(tail, d["outcomes"]["kv"])
        # a read-only connection reading along sees the same rows at the same log positions
        self.assertGreater(len(set(a["reads"].values())), 50)  # the table kept changing
        self.assertEqual(a["reads"], b["reads"])
        self.assertEqual(a["reads"], c["reads"])
        self.assertEqual({i: r for i, r in a["reads"].items() if int(i) >= mid}, d["reads"])

        # the log exercised what it should: rows with and without ttl, every value type, CAS
        # that swapped and that did not, counters, patches that failed, rows that expired
        kv = a["kv"]
        self.assertGreater(kv["rows"], 20)
        self.assertGreater(kv["with_ttl"], 0)
        self.assertEqual(kv["types"], ["blob", "integer", "null", "real", "text"])
        outcomes = [(log[int(i)]["sql"], o) for i, o in a["outcomes"]["kv"].items()]
        cas = [o for s, o in outcomes if "AND value = ?" in s]
        self.assertIn("ok 1", cas)
        self.assertIn("ok 0", cas)
        counters = [o for s, o in outcomes if "value = value +" in s]
        self.assertIn("ok 1", counters)
        patch_errors = [o for s, o in outcomes if "feox_json_patch" in s and o.startswith("error")]
        self.assertTrue(patch_errors)
        self.assertTrue(any("feox_json_patch: operation" in o for o in patch_errors))
        ignored = [o for s, o in outcomes if "OR IGNORE" in s and "ts)" in s]
        self.assertIn("ok 0", ignored)  # an older explicit ts was skipped

        # the control table (default mode, wall clock) diverged: the comparison catches it
        for what in ("view", "data"):
            copies = {node["ctl"][what] for node in (a, b, c, d)}
            self.assertEqual(len(copies), 4, "the default-mode control did not diverge")


if __name__ == "__main__":
    unittest.main()
