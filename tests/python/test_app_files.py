"""Files as users' apps meet them: what a store file's path= may name, and one database under
several names in one process.

- path= naming something feox did not create, through SQL: a text file, an SQLite database, an
  empty file, a directory, a FIFO, /dev/null, a symbolic link to each of those, a dangling link,
  a name too long for the file system: refused naming the table and the file, the thing left
  byte for byte as it was and nothing created beside it;
- path= naming a database file this process has open (the table's own database, its -shm file,
  another database): SQLite's POSIX locks on it belong to the process and vanish when any
  descriptor of the file closes, so feox must not open and close it; the locks hold (another
  process still gets "database is locked", and does not delete the WAL under us);
- path= with quotes, a newline, spaces; a relative path (relative to the database file's
  directory, whatever the current directory, before and after chdir); a directory this user
  cannot write (run as nobody);
- damaged store files (FORMAT.md, "Replay and damage"): truncated at every record boundary and
  inside records, a byte flipped in a value, a checksum, a record header, a 4 KiB block zeroed in
  the middle, garbage appended: the table opens and shows exactly what the undamaged records
  say (never a value the key did not hold), and works on; a damaged file header or a newer format
  version is refused and left as it is;
- a real full disk (a 2 MiB tmpfs, as root): SQLITE_FULL with SQLite's message for a table in a
  WAL database and its native twin alike, nothing half applied, writes work again once space is
  freed; a store file on it refuses writes ("disk full") and keeps every acknowledged row;
- the same database opened under two names in one process (a symbolic link, a hard link, ./db,
  a file: URI with other parameters) behaves as one database, as SQLite does with native
  tables; a copy of the file opened beside the original is another database.
"""
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import unittest

from feoxtest import EXT, TempDirTestCase, connect

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def snapshot(path):
    """What is at path (not following a last symbolic link): kind, bytes, mtime, inode."""
    st = os.lstat(path)
    data = None
    if os.path.isfile(path) and not os.path.islink(path):
        with open(path, "rb") as f:
            data = f.read()
    link = os.readlink(path) if os.path.islink(path) else None
    return (st.st_mode, st.st_ino, st.st_mtime_ns, data, link)


def in_other_process(code, *args):
    """Run Python code in another process (argv[1:] = args); its stdout, stripped."""
    proc = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"other process failed: {proc.stderr}")
    return proc.stdout.strip()


TRY_WRITE_LOCK = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    con.execute("BEGIN IMMEDIATE")
    con.execute("ROLLBACK")
    print("got the write lock")
except sqlite3.OperationalError as e:
    print(e)
con.close()
"""

READ_AND_CLOSE = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
print(con.execute("SELECT count(*) FROM t").fetchone()[0])
con.close()
"""


class ForeignPathTest(TempDirTestCase):
    """CREATE VIRTUAL TABLE ... USING feox(path=...) on things feox did not make."""

    def setUp(self):
        super().setUp()
        self.con = connect(self.path("app.db"))
        self.addCleanup(self.con.close)

    def refused(self, target, path=None, want=None):
        """CREATE with path (default target) fails naming kv and the path; target unchanged,
        nothing new in the directory, no table kv."""
        path = path or target
        before = snapshot(target) if os.path.lexists(target) else None
        listing = sorted(os.listdir(self.dir))
        with self.assertRaises(sqlite3.Error) as cm:
            self.con.execute(f"CREATE VIRTUAL TABLE kv USING feox(path='{path}')")
        msg = str(cm.exception)
        self.assertIn("feox: kv: ", msg)
        self.assertIn(os.path.basename(path), msg)
        if want:
            self.assertRegex(msg, want)
        if before is not None:
            self.assertEqual(snapshot(target), before)
        else:
            self.assertFalse(os.path.lexists(target))
        self.assertEqual(sorted(os.listdir(self.dir)), listing)
        self.assertEqual(self.con.execute(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'kv%'").fetchone()[0], 0)
        return msg

    def make(self, kind):
        """A thing of kind at a fresh path; returns the path."""
        p = self.path("thing-" + kind)
        if kind == "text":
            with open(p, "w") as f:
                f.write("name,value\nalpha,1\n")
        elif kind == "empty":
            open(p, "wb").close()
        elif kind == "sqlite":
            other = sqlite3.connect(p)
            other.execute("CREATE TABLE t(x)")
            other.execute("INSERT INTO t VALUES (1)")
            other.commit()
            other.close()
        elif kind == "directory":
            os.mkdir(p)
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "devnull":
            return "/dev/null"
        return p

    KINDS = ("text", "empty", "sqlite", "directory", "fifo", "devnull")

    def test_foreign_things_are_refused_untouched(self):
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                self.refused(self.make(kind), want="not a feox store")

    def test_symbolic_links_to_foreign_things_are_refused_untouched(self):
        for kind in self.KINDS:
            with self.subTest(kind=kind):
                target = self.make(kind)
                link = self.path("link-" + kind)
                os.symlink(target, link)
                before = snapshot(target)
                self.refused(link, want="not a feox store")
                self.assertEqual(snapshot(target), before)

    def test_a_dangling_symbolic_link_creates_nothing_at_its_target(self):
        link = self.path("dangling")
        os.symlink(self.path("nowhere.feox"), link)
        self.refused(link, want="symbolic link to nothing")
        self.assertFalse(os.path.lexists(self.path("nowhere.feox")))

    def test_a_name_too_long_is_refused_and_creates_nothing(self):
        for path in ("x" * 300 + ".feox", "/".join(["d" * 200] * 25) + "/x.feox"):
            with self.subTest(length=len(path)):
                with self.assertRaises(sqlite3.Error) as cm:
                    self.con.execute(f"CREATE VIRTUAL TABLE kv USING feox(path='{path}')")
                self.assertIn("feox: kv: ", str(cm.exception))
                self.assertRegex(str(cm.exception), "too long|cannot resolve the directory")
                self.assertEqual(sorted(os.listdir(self.dir)), ["app.db"])

    def test_quotes_newlines_and_spaces_in_a_path(self):
        self.con.close()
        for name in ("it's.feox", 'say "hi".feox', "two\nlines.feox", " lead and trail .feox"):
            with self.subTest(name=name):
                sql_name = name.replace("'", "''")
                con = connect(self.path("app.db"))
                con.execute(f"CREATE VIRTUAL TABLE kv USING feox(path='{sql_name}')")
                con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
                con.close()
                self.assertTrue(os.path.isfile(self.path(name)))
                con = connect(self.path("app.db"))
                self.assertEqual(con.execute("SELECT key, value FROM kv").fetchall(), [("a", 1)])
                con.execute("DROP TABLE kv")
                con.close()  # the DROP is known to be committed: the file goes
                self.assertEqual(sorted(os.listdir(self.dir)), ["app.db"])


class LocksOfOpenDatabasesTest(TempDirTestCase):
    """path= naming a database file this process has open must leave SQLite's locks alone."""

    def open(self, journal_mode):
        self.db = self.path("app.db")
        con = connect(self.db)
        self.addCleanup(con.close)
        con.execute(f"PRAGMA journal_mode = {journal_mode}")
        con.execute("CREATE TABLE t(x)")
        con.execute("INSERT INTO t VALUES (1)")
        return con

    def assert_refused(self, con, path):
        with self.assertRaisesRegex(sqlite3.Error, "feox: kv: .*not a feox store"):
            con.execute(f"CREATE VIRTUAL TABLE kv USING feox(path='{path}')")

    def test_the_database_itself_inside_a_write_transaction(self):
        for mode in ("delete", "wal"):
            with self.subTest(journal_mode=mode):
                con = self.open(mode)
                con.execute("BEGIN IMMEDIATE")
                con.execute("INSERT INTO t VALUES (2)")
                self.assertEqual(in_other_process(TRY_WRITE_LOCK, self.db), "database is locked")
                self.assert_refused(con, "app.db")
                self.assertEqual(in_other_process(TRY_WRITE_LOCK, self.db), "database is locked")
                con.execute("COMMIT")
                self.assertEqual(con.execute("SELECT count(*) FROM t").fetchone()[0], 2)
                self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
                con.close()
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(self.db + suffix):
                        os.unlink(self.db + suffix)

    def test_the_wal_stays_while_this_process_has_the_database_open(self):
        con = self.open("wal")
        con.execute("PRAGMA wal_autocheckpoint = 0")
        self.assert_refused(con, "app.db")
        # Another process that opens and closes the database must not take it for the last
        # connection: that one checkpoints and deletes the WAL this connection still writes.
        self.assertEqual(in_other_process(READ_AND_CLOSE, self.db), "1")
        self.assertTrue(os.path.exists(self.db + "-wal"))
        con.execute("INSERT INTO t VALUES (2)")
        con.close()
        again = sqlite3.connect(self.db)
        self.assertEqual(again.execute("SELECT count(*) FROM t").fetchone()[0], 2)
        again.close()

    def test_the_shm_file_of_a_wal_database(self):
        con = self.open("wal")
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (2)")
        self.assert_refused(con, "app.db-shm")
        self.assertEqual(in_other_process(TRY_WRITE_LOCK, self.db), "database is locked")
        con.execute("COMMIT")

    def test_another_database_open_in_this_process(self):
        other_db = self.path("other.db")
        other = sqlite3.connect(other_db, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("CREATE TABLE t(x)")
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (1)")
        con = self.open("wal")
        self.assert_refused(con, other_db)
        self.assertEqual(in_other_process(TRY_WRITE_LOCK, other_db), "database is locked")
        other.execute("COMMIT")

    def test_a_store_file_open_elsewhere_in_this_process_still_opens(self):
        con = self.open("wal")
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='data.feox')")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.close()
        with open(self.path("data.feox"), "rb") as reader:  # e.g. a backup tool reading it
            con = connect(self.db)
            self.addCleanup(con.close)
            self.assertEqual(con.execute("SELECT key, value FROM kv").fetchall(), [("a", 1)])
            self.assertEqual(reader.read(8), b"FEOXLOG\0")


class RelativePathTest(TempDirTestCase):
    """A relative path= is relative to the database file's directory (README), not the cwd."""

    def setUp(self):
        super().setUp()
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        os.mkdir(self.path("db"))
        os.mkdir(self.path("elsewhere"))

    def test_relative_to_the_database_before_and_after_chdir(self):
        os.chdir(self.path("elsewhere"))
        con = connect("../db/app.db")
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='data.feox')")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        self.assertTrue(os.path.isfile(self.path("db/data.feox")))
        self.assertEqual(os.listdir(self.path("elsewhere")), [])
        os.chdir(self.dir)
        con.execute("INSERT INTO kv(key, value) VALUES ('b', 2)")
        second = connect("db/app.db")  # another name, same file: shares the open store
        self.assertEqual(second.execute("SELECT count(*) FROM kv").fetchone()[0], 2)
        second.close()
        con.close()
        os.chdir("/")
        con = connect(self.path("db/app.db"))
        self.assertEqual(con.execute("SELECT key, value FROM kv ORDER BY key").fetchall(),
                         [("a", 1), ("b", 2)])
        con.close()
        self.assertEqual(sorted(os.listdir(self.path("db"))), ["app.db", "data.feox"])

    def test_an_attached_database_resolves_against_its_own_directory(self):
        con = connect(self.path("app.db"))
        con.execute("ATTACH ? AS aux", (self.path("db/aux.db"),))
        con.execute("CREATE VIRTUAL TABLE aux.kv USING feox(path='data.feox')")
        con.execute("INSERT INTO aux.kv(key, value) VALUES ('a', 1)")
        con.close()
        self.assertTrue(os.path.isfile(self.path("db/data.feox")))
        self.assertFalse(os.path.exists(self.path("data.feox")))


def nobody_can_run_the_extension():
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
        return False
    proc = subprocess.run(["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup",
                           "--clear-groups", "test", "-r", EXT + ".so"])
    return proc.returncode == 0


AS_NOBODY = """
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.enable_load_extension(True)
con.load_extension(sys.argv[2])
for path in sys.argv[3:]:
    try:
        con.execute(f"CREATE VIRTUAL TABLE kv USING feox(path='{path}')")
        print("created")
        con.execute("DROP TABLE kv")
    except sqlite3.Error as e:
        print(e)
print(con.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0])
"""


@unittest.skipUnless(nobody_can_run_the_extension(), "needs root, setpriv and a readable build")
class PermissionTest(TempDirTestCase):
    def test_a_directory_this_user_cannot_write(self):
        os.chmod(self.dir, 0o755)
        writable = self.path("w")
        readonly = self.path("ro")
        os.mkdir(writable)
        os.mkdir(readonly)
        os.chmod(writable, 0o777)
        os.chmod(readonly, 0o555)
        store = connect(self.path("root.db"))  # a store nobody may read but not write
        store.execute(f"CREATE VIRTUAL TABLE kv USING feox(path='{readonly}/theirs.feox')")
        store.close()
        before = snapshot(self.path("ro/theirs.feox"))
        proc = subprocess.run(["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup",
                               "--clear-groups", PY, "-c", AS_NOBODY, self.path("w/app.db"), EXT,
                               "../ro/new.feox", "../ro/theirs.feox"],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        new, theirs, tables = proc.stdout.strip().split("\n")
        self.assertRegex(new, r"^feox: kv: cannot open store '.*/ro/new\.feox': .*Permission denied")
        self.assertRegex(theirs, r"^feox: kv: cannot open store '.*/ro/theirs\.feox': "
                                 r".*Permission denied")
        self.assertEqual(tables, "0")
        self.assertEqual(sorted(os.listdir(readonly)), ["theirs.feox"])
        self.assertEqual(snapshot(self.path("ro/theirs.feox")), before)


class OneDatabaseTwoNamesTest(TempDirTestCase):
    """One database file opened under two names in one process is one database (SQLite shares
    its locks by inode); a copy is another database. A hard link only in rollback-journal mode:
    in WAL mode each name has its own -wal file, which SQLite itself does not survive."""

    JOURNAL_MODE = "wal"

    def setUp(self):
        super().setUp()
        self.db = self.path("app.db")
        con = connect(self.db)
        con.execute(f"PRAGMA journal_mode = {self.JOURNAL_MODE}")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("CREATE VIRTUAL TABLE mem USING feox(path=':memory:')")
        con.execute("CREATE TABLE nt(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.execute("INSERT INTO nt(key, value) VALUES ('a', 1)")
        con.close()
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        os.chdir(self.dir)

    def names(self):
        os.symlink(self.db, self.path("link.db"))
        names = [("symlink", self.path("link.db"), False), ("./app.db", "./app.db", False),
                 ("app.db", "app.db", False), ("uri", f"file:{self.db}?cache=private&psow=1", True)]
        if self.JOURNAL_MODE != "wal":
            os.mkdir(self.path("sub"))
            os.link(self.db, self.path("sub/hard.db"))
            names.append(("hard link", self.path("sub/hard.db"), False))
        return names

    def test_writes_under_one_name_show_under_the_other(self):
        first = connect(self.db)
        self.addCleanup(first.close)
        first.execute("INSERT INTO mem(key, value) VALUES ('m', 1)")
        names = self.names()
        for label, name, uri in names:
            with self.subTest(name=label):
                other = connect(name, uri=uri)
                # a memory table belongs to the file, not to its name (README)
                self.assertEqual(other.execute("SELECT key, value FROM mem").fetchall(), [("m", 1)])
                key = "k-" + label
                for con, value in ((first, 1), (other, 2)):
                    con.execute("BEGIN")
                    con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))
                    con.execute("INSERT OR REPLACE INTO nt(key, value) VALUES (?, ?)", (key, value))
                    con.execute("SELECT feox_incr('kv', 'n', 1)").fetchall()
                    con.execute("COMMIT")
                for con in (first, other):
                    self.assertEqual(con.execute("SELECT key, value FROM kv WHERE key <> 'n' "
                                                 "ORDER BY key").fetchall(),
                                     con.execute("SELECT key, value FROM nt ORDER BY key").fetchall())
                    self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
                # busy between the two names as between two connections of one name
                other.execute("BEGIN IMMEDIATE")
                with self.assertRaisesRegex(sqlite3.OperationalError, "database is locked"):
                    first.execute("PRAGMA busy_timeout = 0")
                    first.execute("INSERT INTO kv(key, value) VALUES ('busy', 1)")
                first.execute("PRAGMA busy_timeout = 60000")
                other.execute("ROLLBACK")
                other.close()
        self.assertEqual(first.execute("SELECT value FROM kv WHERE key = 'n'").fetchone()[0],
                         2 * len(names))

    def test_a_copy_beside_the_original_is_another_database(self):
        first = connect(self.db)
        self.addCleanup(first.close)
        self.assertEqual(first.execute("SELECT count(*) FROM kv").fetchone()[0], 1)
        with open(self.db, "rb") as src, open(self.path("copy.db"), "wb") as dst:
            dst.write(src.read())
        copy = connect(self.path("copy.db"))
        self.addCleanup(copy.close)
        first.execute("INSERT INTO kv(key, value) VALUES ('orig', 1)")
        copy.execute("INSERT INTO kv(key, value) VALUES ('copy', 1)")
        first.execute("INSERT INTO mem(key, value) VALUES ('orig', 1)")
        copy.execute("INSERT INTO mem(key, value) VALUES ('copy', 1)")
        self.assertEqual(first.execute("SELECT key FROM kv ORDER BY key").fetchall(),
                         [("a",), ("orig",)])
        self.assertEqual(copy.execute("SELECT key FROM kv ORDER BY key").fetchall(),
                         [("a",), ("copy",)])
        self.assertEqual(first.execute("SELECT key FROM mem").fetchall(), [("orig",)])
        self.assertEqual(copy.execute("SELECT key FROM mem").fetchall(), [("copy",)])
        for con in (first, copy):
            self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")


def records(data):
    """(offset, size, op, key, value) of each record of a store file's bytes (FORMAT.md)."""
    out = []
    off = 64
    while off + 48 <= len(data) and data[off:off + 4] == b"FXR1":
        op = data[off + 4]
        key_len, value_len = struct.unpack_from("<II", data, off + 8)
        size = 48 + key_len + value_len
        key = data[off + 40:off + 40 + key_len]
        value = data[off + 40 + key_len:off + 40 + key_len + value_len]
        out.append((off, size, op, key, value))
        off += size
    return out


class DamagedStoreFileTest(TempDirTestCase):
    """A store file damaged outside feox shows what its undamaged records say, never more."""

    def setUp(self):
        super().setUp()
        self.db = self.path("app.db")
        self.store = self.path("data.feox")
        con = connect(self.db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='data.feox', sync='full')")
        for i in range(120):  # puts, overwrites and deletes of 40 keys
            key = f"key{i % 40:02d}"
            if i % 11 == 5:
                con.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)",
                            (key, f"value {i} of {key} " + "x" * (i % 70)))
        con.close()
        with open(self.store, "rb") as f:
            self.pristine = f.read()
        self.records = records(self.pristine)
        self.assertEqual(sum(r[1] for r in self.records) + 64, len(self.pristine))

    def expected(self, spoiled):
        """The rows the records that do not touch the byte ranges in spoiled replay to."""
        state = {}
        for off, size, op, key, value in self.records:
            if any(off < end and start < off + size for start, end in spoiled):
                continue
            if op == 1:
                state[key.decode()] = value.decode()
            elif op == 2:
                state.pop(key.decode(), None)
            # ops 3 and 4: the index snapshot a clean close appends and its footer (FORMAT.md)
        return sorted(state.items())

    def open_damaged(self, data):
        with open(self.store, "wb") as f:
            f.write(data)
        con = connect(self.db)
        self.addCleanup(con.close)
        return con

    def assert_shows(self, data, spoiled, what):
        con = self.open_damaged(data)
        got = con.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
        self.assertEqual(got, self.expected(spoiled), what)
        # and it works on: a write, read back after a reopen
        con.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('after', 'damage')")
        con.close()
        con = connect(self.db)
        self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'after'").fetchone(),
                         ("damage",), what)
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0],
                         len(self.expected(spoiled)) + (0 if "after" in dict(got) else 1), what)
        con.close()

    def test_truncated_at_every_record_boundary_and_inside_records(self):
        cuts = set()
        for off, size, *_ in self.records:
            cuts.update({off, off + 1, off + 20, off + 39, off + 40, off + size - 8,
                         off + size - 1})
        for cut in sorted(cuts):
            with self.subTest(cut=cut):
                self.assert_shows(self.pristine[:cut], [(cut, len(self.pristine))], f"cut {cut}")

    def flipped(self, at):
        data = bytearray(self.pristine)
        data[at] ^= 0x5A
        return bytes(data)

    def test_a_byte_flipped_in_a_value_a_checksum_or_a_record_header(self):
        for off, size, op, key, value in self.records[::7]:
            places = {"header": off + 9, "header check": off + 21, "timestamp": off + 30,
                      "key": off + 41, "checksum": off + size - 3}
            if op == 1 and value:
                places["value"] = off + 40 + len(key) + len(value) // 2
            for name, at in places.items():
                with self.subTest(record=off, place=name):
                    self.assert_shows(self.flipped(at), [(at, at + 1)], f"{name} of {off}")

    def test_a_block_zeroed_in_the_middle_and_garbage_appended(self):
        middle = len(self.pristine) // 2
        start = middle - 2048
        zeroed = self.pristine[:start] + bytes(4096) + self.pristine[start + 4096:]
        self.assert_shows(zeroed, [(start, start + 4096)], "4 KiB zeroed")
        garbage = bytes(range(256)) * 8 + b"FXR1" + bytes(100)
        self.assert_shows(self.pristine + garbage, [], "garbage appended")

    def assert_refused_untouched(self, data, want):
        con = self.open_damaged(data)
        with self.assertRaisesRegex(sqlite3.Error, want):
            con.execute("SELECT count(*) FROM kv").fetchall()
        with open(self.store, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_a_damaged_file_header_or_a_newer_version_is_refused_untouched(self):
        for at in (0, 8, 16, 33, 56):
            with self.subTest(at=at):
                self.assert_refused_untouched(self.flipped(at),
                                              "feox: kv: .*(not a feox store|version|checksum)")
        newer = bytearray(self.pristine)
        struct.pack_into("<I", newer, 8, 2)
        self.assert_refused_untouched(bytes(newer), "feox file format version 2, this build "
                                                    "reads version 1")

    def test_a_table_whose_file_is_refused_can_be_dropped(self):
        """A store whose header is damaged (SQLITE_CORRUPT) or that is not a feox store
        (SQLITE_NOTADB) failed xConnect, so DROP TABLE kv was refused too: the table could not
        be removed. Now it drops, and the file is left as it is."""
        for at in (0, 16, 33):
            with self.subTest(at=at):
                data = self.flipped(at)
                con = self.open_damaged(data)
                con.execute("DROP TABLE kv")
                con.close()
                with open(self.store, "rb") as f:
                    self.assertEqual(f.read(), data)
                con = connect(self.db)
                self.assertEqual(con.execute("SELECT count(*) FROM sqlite_schema").fetchone(),
                                 (0,))
                con.close()
                self.setUp()  # a fresh directory and table for the next case


def can_mount_tmpfs():
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    d = tempfile.mkdtemp(prefix="feox-tmpfs-probe-")
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], check=True)
        return ok
    finally:
        os.rmdir(d)


@unittest.skipUnless(can_mount_tmpfs(), "needs root and a mountable tmpfs")
class FullDiskTest(TempDirTestCase):
    """A 2 MiB tmpfs filled up: a real ENOSPC under SQLite and under a store file."""

    def setUp(self):
        super().setUp()
        self.mnt = self.path("mnt")
        os.mkdir(self.mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", self.mnt], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.mnt])
        self.ballast = os.path.join(self.mnt, "ballast")
        with open(self.ballast, "wb") as f:
            f.write(bytes(512 * 1024))

    def test_a_table_in_a_wal_database_and_its_native_twin(self):
        db = os.path.join(self.mnt, "app.db")
        con = connect(db)
        con.execute("PRAGMA journal_mode = wal")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("CREATE TABLE nt(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        blob = bytes(range(256)) * 64  # 16 KiB
        written = 0
        full = None
        for i in range(1000):
            try:
                con.execute("BEGIN")
                con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (f"k{i:04d}", blob))
                con.execute("INSERT INTO nt(key, value) VALUES (?, ?)", (f"k{i:04d}", blob))
                con.execute("SELECT feox_incr('kv', 'n', 1)").fetchall()
                con.execute("COMMIT")
                written += 1
            except sqlite3.Error as e:
                full = e
                if con.in_transaction:
                    con.execute("ROLLBACK")
                break
        self.assertIsNotNone(full, "the disk never filled")
        self.assertEqual(str(full), "database or disk is full")
        self.assertEqual(full.sqlite_errorname, "SQLITE_FULL")

        def same():
            self.assertEqual(con.execute("SELECT key FROM kv WHERE key <> 'n' ORDER BY key")
                             .fetchall(), con.execute("SELECT key FROM nt ORDER BY key").fetchall())
            self.assertEqual(con.execute("SELECT value FROM kv WHERE key = 'n'").fetchone()[0],
                             con.execute("SELECT count(*) FROM nt").fetchone()[0])
            self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")

        same()
        self.assertEqual(con.execute("SELECT count(*) FROM nt").fetchone()[0], written)
        # autocommit statements and the functions fail the same way while it is full
        with self.assertRaisesRegex(sqlite3.Error, "database or disk is full"):
            for i in range(50):
                con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (f"x{i:04d}", blob))
        os.unlink(self.ballast)
        con.execute("DELETE FROM kv WHERE key GLOB 'x*'")
        for i in range(written, written + 5):
            con.execute("BEGIN")
            con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (f"k{i:04d}", blob))
            con.execute("INSERT INTO nt(key, value) VALUES (?, ?)", (f"k{i:04d}", blob))
            con.execute("SELECT feox_incr('kv', 'n', 1)").fetchall()
            con.execute("COMMIT")
        same()
        con.close()
        con = connect(db)
        same()
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        con.close()

    def fill_the_disk(self):
        try:
            with open(os.path.join(self.mnt, "filler"), "wb") as f:
                while True:
                    f.write(bytes(4096))
                    f.flush()
        except OSError:
            pass

    def spill_onto_the_full_disk(self, name, check):
        """In a rollback-journal (PERSIST: the journal keeps its space) database on a full disk,
        a transaction with a cache of 10 pages and more dirty pages than fit: a statement that
        reads other pages makes SQLite spill the cache into the database file, which cannot
        grow. Returns what `check` raised or returned and whether the transaction survived."""
        con = connect(os.path.join(self.mnt, name))
        con.execute("PRAGMA journal_mode = persist")
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("CREATE TABLE nt(k INTEGER PRIMARY KEY, v)")
        con.execute("BEGIN")
        for i in range(300):
            con.execute("INSERT INTO kv VALUES (?, randomblob(500), NULL, NULL)", (f"k{i:04d}",))
        con.execute("COMMIT")
        con.execute("UPDATE kv SET value = randomblob(500)")  # a journal as large as the table
        con.execute("PRAGMA cache_size = 10")
        if os.path.exists(self.ballast):
            os.unlink(self.ballast)
        self.fill_the_disk()
        con.execute("BEGIN")
        con.execute("INSERT INTO nt(v) VALUES (randomblob(30000))")  # new pages, dirty
        try:
            answer = con.execute(check).fetchall()
        except sqlite3.Error as e:
            answer = e
        survived = con.in_transaction
        if survived:
            con.execute("ROLLBACK")
        os.unlink(os.path.join(self.mnt, "filler"))
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone()[0], "ok")
        self.assertEqual(con.execute("SELECT count(*) FROM kv").fetchone()[0], 300)
        self.assertEqual(con.execute("SELECT count(*) FROM nt").fetchone()[0], 0)
        con.close()
        return answer, survived

    def test_feox_check_when_a_page_cache_spill_meets_the_full_disk(self):
        """feox_check reads the shadow tables with SQL; a spill failing under it is SQLITE_FULL,
        as for a native read (PRAGMA integrity_check) in the same place: SQLite rolls the
        transaction back. It answered 'not open' and hid the error (and the rollback)."""
        native, native_survived = self.spill_onto_the_full_disk("native.db",
                                                                  "PRAGMA integrity_check")
        self.assertIsInstance(native, sqlite3.Error)
        self.assertEqual(native.sqlite_errorname, "SQLITE_FULL")
        answer, survived = self.spill_onto_the_full_disk("app.db", "SELECT feox_check('kv')")
        self.assertIsInstance(answer, sqlite3.Error, f"feox_check answered {answer}")
        self.assertEqual(answer.sqlite_errorname, "SQLITE_FULL")
        self.assertRegex(str(answer), "^feox: kv: .*database or disk is full$")
        self.assertEqual(survived, native_survived)

    def fill_a_store_file(self, sync):
        """Writes to a store file on the full disk until one fails; then frees space and writes
        again. Returns (the error, the keys acknowledged, the keys the table shows after a
        reopen, the key that failed and whether it showed right after its error)."""
        db = os.path.join(self.mnt, "app.db")
        con = connect(db)
        con.execute(f"CREATE VIRTUAL TABLE kv USING feox(path='data.feox', sync='{sync}')")
        acknowledged = []
        error = failed = None
        value = bytes(range(256)) * 32  # 8 KiB
        for i in range(1000):
            key = f"k{i:04d}"
            try:
                con.execute("INSERT INTO kv(key, value) VALUES (?, ?)", (key, value))
            except sqlite3.Error as e:
                error, failed = e, key
                break
            acknowledged.append(key)
            if i % 16 == 15:  # write-behind: keep what only the buffer holds small
                try:
                    con.execute("SELECT feox_flush('kv')").fetchall()
                except sqlite3.Error:
                    pass  # the next INSERT meets the full disk
        self.assertIsNotNone(error, "the disk never filled")
        shown = con.execute("SELECT count(*) FROM kv WHERE key = ?", (failed,)).fetchone()[0]
        os.unlink(self.ballast)
        con.execute("INSERT INTO kv(key, value) VALUES ('again', x'00')")
        acknowledged.append("again")
        con.close()
        con = connect(db)
        keys = [r[0] for r in con.execute("SELECT key FROM kv ORDER BY key")]
        con.close()
        return error, sorted(acknowledged), keys, failed, shown

    def test_a_store_file_with_write_behind_keeps_every_acknowledged_row(self):
        error, acknowledged, keys, failed, shown = self.fill_a_store_file("normal")
        self.assertRegex(str(error), "^feox: kv: disk full: cannot write store file .*data.feox: "
                                     "No space left on device")
        self.assertEqual(error.sqlite_errorname, "SQLITE_FULL")
        self.assertEqual(keys, acknowledged)
        self.assertEqual(shown, 0)

    def test_a_store_file_with_sync_full_keeps_no_failed_write(self):
        """With sync='full' the INSERT whose group commit fails with "disk full" has no effect,
        as in a native table: its row does not show, and it is not written once space is freed
        (its record is cancelled in place; the engine's tests/unit/test_store_fullsync.c covers
        the writers that share or follow the failed group commit)."""
        error, acknowledged, keys, failed, shown = self.fill_a_store_file("full")
        self.assertEqual(error.sqlite_errorname, "SQLITE_FULL")
        self.assertEqual(shown, 0, f"{failed} failed with {error} but shows")
        self.assertEqual(keys, acknowledged)


class OneDatabaseTwoNamesRollbackJournalTest(OneDatabaseTwoNamesTest):
    JOURNAL_MODE = "delete"


if __name__ == "__main__":
    unittest.main()
