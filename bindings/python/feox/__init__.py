"""feox — load the feox SQLite extension into a Python sqlite3 connection.

    import sqlite3, feox
    con = sqlite3.connect("app.db")
    feox.load(con)                       # every connection that uses a feox table loads it
    con.execute("CREATE VIRTUAL TABLE kv USING feox")

The wheel bundles feox.so (it needs the shared libraries it was linked with, today Debian's
libck0 and libxxhash0). loadable_path() gives its path for other hosts, such as the sqlite3
shell's .load.
"""

import os

__version__ = "0.1.0"
__all__ = ["load", "loadable_path", "ExtensionLoadingUnavailable"]

_NO_EXTENSIONS = (
    "feox: this Python's sqlite3 module cannot load extensions (sqlite3.Connection has no "
    "enable_load_extension; pyenv and macOS builds often lack it). Use Debian's "
    "/usr/bin/python3 (a venv made with /usr/bin/python3 -m venv works too), or a Python built "
    "with --enable-loadable-sqlite-extensions (pyenv: PYTHON_CONFIGURE_OPTS="
    "--enable-loadable-sqlite-extensions pyenv install <version>)."
)


class ExtensionLoadingUnavailable(RuntimeError):
    """Raised by load() when the sqlite3 module was built without extension loading."""


def loadable_path():
    """The bundled extension's path without the .so suffix, as load_extension() takes it."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "feox")


def load(conn):
    """Loads feox into conn (a sqlite3.Connection); extension loading is left disabled after."""
    if not hasattr(conn, "enable_load_extension"):
        raise ExtensionLoadingUnavailable(_NO_EXTENSIONS)
    library = loadable_path() + ".so"
    if not os.path.isfile(library):
        raise FileNotFoundError("feox: the bundled extension is missing: " + library)
    conn.enable_load_extension(True)
    try:
        conn.load_extension(loadable_path())
    finally:
        conn.enable_load_extension(False)
