"""tests/packages/python_app.py — a small app against the installed feox wheel (run in a venv).

Run from outside the repository by python_package.sh; every step asserts its result:
  1. `import feox` comes from the venv's site-packages, loadable_path() names the bundled library;
  2. feox.load() on a file database: table, INSERT, a rolled-back and a committed transaction,
     feox_incr inside a transaction, TTL (a live key and one that expires), a range query;
  3. extension loading is disabled again after load(); a second connection loads and sees the data
     after the first closed (the store file persisted);
  4. load() on a connection object without enable_load_extension (as pyenv/macOS builds) raises
     feox.ExtensionLoadingUnavailable naming the fix.
"""

import os
import sqlite3
import sys
import tempfile
import time

import feox


def check(condition, what):
    """Fails the app with a message when condition is false."""
    if not condition:
        sys.exit("python package app FAILED: " + what)


def main():
    venv = sys.prefix
    check(os.path.realpath(feox.__file__).startswith(os.path.realpath(venv)),
          "feox imported from %s, not from the venv %s" % (feox.__file__, venv))
    path = feox.loadable_path()
    check(not path.endswith(".so") and os.path.isfile(path + ".so"),
          "loadable_path() %r is not the bundled library without its suffix" % path)

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "app.db")
        con = sqlite3.connect(db, isolation_level=None)
        feox.load(con)
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("INSERT INTO kv(key, value) VALUES ('user:1', 'Ada'), ('user:2', 'Bob')")

        con.execute("BEGIN")
        con.execute("INSERT INTO kv(key, value) VALUES ('user:3', 'Cy')")
        con.execute("SELECT feox_incr('kv', 'visits', 5)")
        con.execute("ROLLBACK")
        check(con.execute("SELECT count(*) FROM kv").fetchone()[0] == 2, "ROLLBACK kept rows")

        con.execute("BEGIN")
        con.execute("INSERT INTO kv(key, value) VALUES ('user:3', 'Cy')")
        got = [con.execute("SELECT feox_incr('kv', 'visits', 1)").fetchone()[0] for _ in range(3)]
        con.execute("COMMIT")
        check(got == [1, 2, 3], "feox_incr returned %r" % got)

        con.execute("INSERT INTO kv(key, value, ttl) VALUES ('session:a', x'00ff', 3600)")
        con.execute("INSERT INTO kv(key, value, ttl) VALUES ('session:b', 'soon gone', 1)")
        ttl = con.execute("SELECT ttl FROM kv WHERE key = 'session:a'").fetchone()[0]
        check(3500 <= ttl <= 3600, "ttl of session:a is %r" % ttl)
        time.sleep(1.2)  # session:b's expiry instant is 1 s after its insert: now in the past
        check(con.execute("SELECT count(*) FROM kv WHERE key = 'session:b'").fetchone()[0] == 0,
              "an expired key is still visible")
        blob = con.execute("SELECT value FROM kv WHERE key = 'session:a'").fetchone()[0]
        check(blob == b"\x00\xff", "blob came back as %r" % (blob,))

        rows = con.execute("SELECT key, value FROM kv WHERE key BETWEEN 'user:' AND 'user:~' "
                           "ORDER BY key DESC").fetchall()
        check(rows == [("user:3", "Cy"), ("user:2", "Bob"), ("user:1", "Ada")],
              "range query returned %r" % rows)

        try:
            con.load_extension(feox.loadable_path())
            check(False, "extension loading was left enabled after feox.load()")
        except sqlite3.OperationalError:
            pass
        con.close()

        con = sqlite3.connect(db, isolation_level=None)
        feox.load(con)
        total = con.execute("SELECT value FROM kv WHERE key = 'visits'").fetchone()[0]
        check(total == 3, "after reopening, visits = %r" % total)
        con.close()

    class NoExtensionLoading:
        """Stands in for a sqlite3.Connection of a Python built without extension loading."""

    try:
        feox.load(NoExtensionLoading())
        check(False, "load() accepted a connection that cannot load extensions")
    except feox.ExtensionLoadingUnavailable as e:
        check("--enable-loadable-sqlite-extensions" in str(e) and "/usr/bin/python3" in str(e),
              "the error does not name the fix: %s" % e)
    print("python package app: ok")


main()
