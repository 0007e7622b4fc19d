"""replay_node.py — one "node" of the replay harness (test_replay.py): a separate process that
applies part of a statement log to its own database file and prints what it ended with.

    /usr/bin/python3 replay_node.py '<json arguments>'

Arguments (one JSON object): db (the database file), log (the statement log, a JSON file written
by test_replay.py), start / end (the log entries to apply), create (make the tables first),
snapshot_at / snapshot (before entry snapshot_at, VACUUM INTO that file: a backup taken midway).
FEOX_EXT names the extension (as for every test here).

Each log entry is {"sql": text with {t} for the table, "params": [...], "tables": [...]}: it runs
once per table named (a BEGIN / COMMIT / ROLLBACK entry names none and runs once). A BLOB
parameter is written {"blob": "<hex>"}. The outcome of every run, "ok <changes>" or "error
<message>", is kept, so the nodes can also be compared on what each statement did.

Printed (one JSON object on stdout): per table the sha256 of what the virtual table shows (key,
value, typeof(value), ts, ttl: ttl counts by the table's clock) and of its shadow tables (every
column of <t>_data, absolute expiry included, then <t>_log and <t>_meta), feox_check, row counts,
the outcomes, reads (every 50th entry, a read-only connection's view of kv before it), and
probe_ts: an automatic ts drawn in a memory table, i.e. this process's wall
clock as feox sees it.
"""
import hashlib
import json
import os
import sqlite3
import sys


def param(p):
    return bytes.fromhex(p["blob"]) if isinstance(p, dict) else p


def digest(rows):
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(tuple(v.hex() if isinstance(v, bytes) else v for v in row)).encode())
        h.update(b"\n")
    return h.hexdigest()


def table_result(con, t):
    view = con.execute(f'SELECT key, value, typeof(value), ts, ttl FROM "{t}" ORDER BY key').fetchall()
    data = con.execute(f'SELECT key, value, typeof(value), tag, ts, expires, seq FROM "{t}_data" '
                       "ORDER BY key").fetchall()
    log = con.execute(f'SELECT seq, key, ts FROM "{t}_log" ORDER BY seq').fetchall()
    meta = con.execute(f'SELECT name, value FROM "{t}_meta" ORDER BY name').fetchall()
    return {
        "view": digest(view),
        "data": digest(data),
        "shadow": digest(data + [("log",)] + log + [("meta",)] + meta),
        "rows": len(view),
        "stored": len(data),
        "with_ttl": sum(1 for r in view if r[4] is not None),
        "types": sorted({r[2] for r in view}),
        "check": con.execute("SELECT feox_check(?)", (t,)).fetchone()[0],
    }


def main():
    args = json.loads(sys.argv[1])
    with open(args["log"]) as f:
        log = json.load(f)
    con = sqlite3.connect(args["db"], isolation_level=None, timeout=60)
    con.enable_load_extension(True)
    con.load_extension(os.environ["FEOX_EXT"])
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = OFF")
    if args.get("create"):
        con.execute("CREATE VIRTUAL TABLE kv USING feox(clock='log')")
        con.execute("CREATE VIRTUAL TABLE ctl USING feox")
    # a second connection reads as the log goes (rqlite serves reads from a pool of read-only
    # connections while its writer applies the log): it must see the same rows on every node
    reader = sqlite3.connect(f"file:{args['db']}?mode=ro", uri=True, isolation_level=None,
                             timeout=60)
    reader.enable_load_extension(True)
    reader.load_extension(os.environ["FEOX_EXT"])
    reads = {}
    outcomes = {"kv": {}, "ctl": {}}
    for i in range(args["start"], args["end"]):
        if i % 50 == 0:
            reads[i] = digest(reader.execute(
                "SELECT key, value, typeof(value), ts, ttl FROM kv ORDER BY key").fetchall())
        if i == args.get("snapshot_at"):
            con.execute("VACUUM INTO ?", (args["snapshot"],))
        entry = log[i]
        params = [param(p) for p in entry["params"]]
        for t in entry["tables"] or [None]:
            sql = entry["sql"].replace("{t}", t or "")
            try:
                cur = con.execute(sql, params)
                outcome = f"ok {cur.rowcount}"
            except sqlite3.Error as e:
                outcome = f"error {e}"
            if t is not None:
                outcomes[t][i] = outcome
    # the wall clock as feox sees it: an automatic ts in a memory table (default clock)
    con.execute("CREATE VIRTUAL TABLE temp.probe USING feox")
    con.execute("INSERT INTO temp.probe(key, value) VALUES('p', 1)")
    probe_ts = con.execute("SELECT ts FROM temp.probe").fetchone()[0]
    result = {t: table_result(con, t) for t in ("kv", "ctl")}
    result["outcomes"] = outcomes
    result["reads"] = reads
    reader.close()
    result["probe_ts"] = probe_ts
    con.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
