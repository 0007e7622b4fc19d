#!/usr/bin/python3
"""test_litestream.py — Litestream (v0.3.13) backs up a database holding a feox table to a file
replica while a writer commits, and `litestream restore` gives back every committed row.

  test_litestream.py LITESTREAM FEOX_SO

LITESTREAM is the static binary of the npm package @flydotio/litestream-linux-x64 (make cluster
installs it under the build directory). Steps, all in one mktemp directory:

 1. app.db in WAL mode: CREATE VIRTUAL TABLE kv USING feox (records in its shadow tables) and a
    native table log;
 2. `litestream replicate app.db file://.../replica` starts; a writer process (/usr/bin/python3
    sqlite3 + feox.so) commits transactions for a few seconds, each writing kv (rows of every
    type, some with ttl, a counter by UPDATE kv SET value = value + 1, deletes) and log in the
    same transaction; Litestream syncs and checkpoints meanwhile;
 3. the writer ends and reports how many transactions it committed; once Litestream has shipped
    the rest of the WAL (a sync interval passes with nothing new shipped), it is stopped with
    SIGTERM;
 4. `litestream restore -o restored.db file://.../replica`; restored.db must hold exactly what
    those transactions committed (count and content of kv and log), pass PRAGMA
    integrity_check and feox_check('kv'), and equal app.db row for row.
Every process started here is stopped by its pid when the test ends (finally); an alarm bounds
the run to 100 s.
"""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

TIME_LIMIT = 100
WRITE_SECONDS = 4.0


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def connect(path, ext):
    db = sqlite3.connect(path, isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(ext)
    db.enable_load_extension(False)
    db.execute("PRAGMA busy_timeout = 10000")
    return db


def value_of(i):
    return [i, "text %d" % i, ("blob %d" % i).encode(), '{"i":%d}' % i][i % 4]


def expected(n):
    """kv (key -> (value, has_ttl)) and log rows after transactions 0..n-1 (see writer)."""
    kv, log = {"counter": (0, False)}, []
    for i in range(n):
        key = "k%05d" % i
        kv[key] = (value_of(i), i % 5 == 0)
        log.append((i, key, value_of(i)))
        if i % 10 == 0:
            kv["counter"] = (kv["counter"][0] + 1, False)
        if i % 7 == 6:
            kv.pop("k%05d" % (i - 3), None)
    return kv, log


def writer(path, ext, seconds):
    """Transaction i: kv[k<i>] (ttl 3600 when i % 5 == 0), log row i, the counter + 1 when
    i % 10 == 0, k<i-3> deleted when i % 7 == 6. Prints the number committed."""
    db = connect(path, ext)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        key = "k%05d" % i
        db.execute("BEGIN IMMEDIATE")
        if i % 5 == 0:
            db.execute("INSERT INTO kv(key, value, ttl) VALUES(?, ?, 3600)", (key, value_of(i)))
        else:
            db.execute("INSERT INTO kv(key, value) VALUES(?, ?)", (key, value_of(i)))
        db.execute("INSERT INTO log(id, key, value) VALUES(?, ?, ?)", (i, key, value_of(i)))
        if i % 10 == 0:
            db.execute("UPDATE kv SET value = value + 1 WHERE key = 'counter'")
        if i % 7 == 6:
            db.execute("DELETE FROM kv WHERE key = ?", ("k%05d" % (i - 3),))
        db.execute("COMMIT")
        i += 1
        time.sleep(0.001)  # an application's pace: Litestream takes its locks in between
    db.close()
    print(i)
    return 0


def read_state(path, ext):
    db = connect(path, ext)
    try:
        check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok",
              "%s: integrity_check failed" % path)
        check(db.execute("SELECT feox_check('kv')").fetchone()[0] == "ok",
              "%s: feox_check('kv') failed" % path)
        kv = {k: (v, ttl) for k, v, ttl in db.execute("SELECT key, value, ttl FROM kv")}
        log = [tuple(r) for r in db.execute("SELECT id, key, value FROM log ORDER BY id")]
    finally:
        db.close()
    return kv, log


def compare(kv, log, n, where):
    want_kv, want_log = expected(n)
    check(len(log) == n, "%s: %d log rows, %d transactions committed" % (where, len(log), n))
    check(log == want_log, "%s: log rows differ from the committed ones" % where)
    check(set(kv) == set(want_kv),
          "%s: kv keys differ: missing %s, unexpected %s"
          % (where, sorted(set(want_kv) - set(kv))[:10], sorted(set(kv) - set(want_kv))[:10]))
    for k, (value, has_ttl) in want_kv.items():
        v, ttl = kv[k]
        check(v == value, "%s: kv[%s] = %r, committed %r" % (where, k, v, value))
        check((ttl is not None and 0 < ttl <= 3600) if has_ttl else ttl is None,
              "%s: kv[%s] has ttl %r" % (where, k, ttl))


def ttl_free(kv):
    """kv with each ttl (remaining seconds: it moves between two reads) reduced to set/unset."""
    return {k: (v, ttl is not None) for k, (v, ttl) in kv.items()}


def wait_for_line(path, text, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            if text in f.read():
                return
        check(proc.poll() is None, "litestream exited early (status %s)" % proc.returncode)
        time.sleep(0.05)
    raise Failed("litestream did not log %r within %d s" % (text, timeout))


def wait_until_shipped(path, proc, timeout=30):
    """Litestream ships the WAL once a second (sync-interval). After the writer has stopped,
    wait until a check finds no segment shipped since the one 2.5 s before: then everything
    committed is in the replica. SIGTERM alone is not enough: Litestream 0.3.13 cancels a segment
    write it is in the middle of when it shuts down ("monitor error ... no such file or
    directory"), and the restore then lacks the last transactions."""
    deadline = time.time() + timeout
    last = -1
    while time.time() < deadline:
        check(proc.poll() is None, "litestream exited while shipping the WAL")
        with open(path, errors="replace") as f:
            shipped = f.read().count("wal segment written")
        if shipped == last:
            return
        last = shipped
        time.sleep(2.5)
    raise Failed("litestream still shipped WAL segments %d s after the writer stopped" % timeout)


def alarm(_sig, _frame):
    raise Failed("time limit of %d s reached" % TIME_LIMIT)


def main(argv):
    if len(argv) == 5 and argv[1] == "--writer":
        return writer(argv[2], argv[3], float(argv[4]))
    if len(argv) != 3:
        print("usage: test_litestream.py LITESTREAM FEOX_SO", file=sys.stderr)
        return 2
    litestream, ext = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIME_LIMIT)
    tmp = tempfile.mkdtemp(prefix="feox-litestream-")
    app, replica = os.path.join(tmp, "app.db"), "file://" + os.path.join(tmp, "replica")
    restored, ls_log = os.path.join(tmp, "elsewhere", "restored.db"), os.path.join(tmp, "ls.log")
    procs = []
    ok = False
    try:
        db = connect(app, ext)
        check(db.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal", "no WAL mode")
        db.execute("CREATE VIRTUAL TABLE kv USING feox")
        db.execute("CREATE TABLE log(id INTEGER PRIMARY KEY, key TEXT NOT NULL, value)")
        db.execute("INSERT INTO kv(key, value) VALUES('counter', 0)")
        db.close()

        with open(ls_log, "wb") as out:
            ls = subprocess.Popen([litestream, "replicate", app, replica], stdout=out,
                                  stderr=subprocess.STDOUT)
        procs.append(ls)
        wait_for_line(ls_log, "replicating to", 20, ls)
        w = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--writer", app, ext,
                              str(WRITE_SECONDS)], stdout=subprocess.PIPE)
        procs.append(w)
        out, _ = w.communicate(timeout=60)
        check(w.returncode == 0, "the writer failed (status %d)" % w.returncode)
        n = int(out.decode().strip())
        check(n > 100, "the writer committed only %d transactions" % n)
        wait_until_shipped(ls_log, ls)
        os.kill(ls.pid, signal.SIGTERM)
        ls.wait(timeout=30)
        with open(ls_log, errors="replace") as f:
            syncs = f.read().count("wal segment written")

        os.makedirs(os.path.dirname(restored))
        r = subprocess.run([litestream, "restore", "-o", restored, replica],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        check(r.returncode == 0, "litestream restore failed:\n%s" % r.stdout.decode())
        kv, log = read_state(restored, ext)
        compare(kv, log, n, "restored")
        src_kv, src_log = read_state(app, ext)
        check(log == src_log and ttl_free(kv) == ttl_free(src_kv),
              "restored.db differs from app.db")
        ok = True
        print("litestream test: ok (%d transactions committed during replication, %d WAL "
              "segments shipped; restored %d feox rows and %d log rows)"
              % (n, syncs, len(kv), len(log)))
    except (Failed, sqlite3.Error, OSError, subprocess.SubprocessError, ValueError) as e:
        print("litestream test: FAILED: %s" % e, file=sys.stderr)
        if os.path.exists(ls_log):
            with open(ls_log, errors="replace") as f:
                print("--- litestream log:\n" + f.read()[-3000:], file=sys.stderr)
    finally:
        signal.alarm(0)
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
