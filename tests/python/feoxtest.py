"""Shared helpers for the feox Python tests (stdlib unittest, /usr/bin/python3's sqlite3).

FEOX_EXT names the extension without its ".so" suffix (make python-tests sets it to
<build dir>/feox); the default is <repo>/$B/feox with B defaulting to "build".
"""
import os
import shutil
import sqlite3
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXT = os.path.abspath(os.environ.get("FEOX_EXT")
                      or os.path.join(REPO, os.environ.get("B") or "build", "feox"))
SQLITE3_SHELL = shutil.which("sqlite3") or "/usr/bin/sqlite3"

if not hasattr(sqlite3.Connection, "enable_load_extension"):
    raise unittest.SkipTest(
        "this Python's sqlite3 module cannot load extensions (built without "
        "--enable-loadable-sqlite-extensions); run the tests with /usr/bin/python3")
if not os.path.exists(EXT + ".so"):
    raise RuntimeError(f"extension {EXT}.so not found: build it or set FEOX_EXT")


def _compile_options():
    con = sqlite3.connect(":memory:")
    try:
        return {row[0] for row in con.execute("PRAGMA compile_options")}
    finally:
        con.close()


# What the SQLite under test was built with: make test-sqlite-latest also runs the suite on
# better-sqlite3's build, which omits some of what the tests exercise (the progress callback,
# shared cache) and is built for one thread per connection (THREADSAFE=2).
COMPILE_OPTIONS = _compile_options()


def skip_unless_built_with(feature, absent_when):
    """Skip the test (or class) when COMPILE_OPTIONS holds absent_when (e.g. OMIT_SHARED_CACHE)."""
    return unittest.skipIf(absent_when in COMPILE_OPTIONS,
                           f"this SQLite is built without {feature} ({absent_when})")


def connect(path=":memory:", isolation_level=None, timeout=60.0, uri=False):
    """A connection with feox loaded. Autocommit (isolation_level=None) unless asked otherwise;
    uri=True: path is a file: URI."""
    con = sqlite3.connect(path, isolation_level=isolation_level, timeout=timeout,
                          check_same_thread=False, uri=uri)
    con.enable_load_extension(True)
    con.load_extension(EXT)
    con.enable_load_extension(False)
    return con


def connect_uri(uri, timeout=5.0):
    """A connection to a file: URI with feox loaded (autocommit; Python's default busy timeout)."""
    return connect(uri, timeout=timeout, uri=True)


class TempDirTestCase(unittest.TestCase):
    """A test case with a fresh temporary directory in self.dir, removed afterwards."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="feox-pytest-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, name):
        return os.path.join(self.dir, name)


def previous_release_table(con, table="kv", schema="main", options=""):
    """Create, on con, a table as the previous release made it: no path in its CREATE text and
    its records in the default store file "<db file>-<table>.feox" (this release puts a new table
    without path in the database instead, and keeps such a table in its file). It is created with
    that file as an explicit path, and the path is then taken out of the schema text (writable
    schema; the schema version is bumped so that every connection reads the schema again)."""
    db_file = con.execute("SELECT file FROM pragma_database_list WHERE name = ?",
                          (schema,)).fetchone()[0]
    store = f"{db_file}-{table}.feox"
    extra = f", {options}" if options else ""
    con.execute(f"CREATE VIRTUAL TABLE \"{schema}\".\"{table}\" USING feox(path='{store}'{extra})")
    version = con.execute(f"PRAGMA \"{schema}\".schema_version").fetchone()[0]
    con.execute("PRAGMA writable_schema = ON")
    con.execute(f"UPDATE \"{schema}\".sqlite_schema SET sql = ? WHERE name = ?",
                (f"CREATE VIRTUAL TABLE \"{table}\" USING feox{'(' + options + ')' if options else ''}",
                 table))
    con.execute("PRAGMA writable_schema = OFF")
    con.execute(f"PRAGMA \"{schema}\".schema_version = {version + 1}")
    return store
