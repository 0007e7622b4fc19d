"""sqlite3_deserialize under a connection that has a feox table of the database mode cached.

Deserializing swaps the database file of a schema under the connection (main or an attached
one). When the image has the same schema cookie, SQLite keeps the virtual table connected (a
cached statement still refers to it), so nothing tells the table's cache that its rows came from
another file: its seq said "the feed goes on from here" and it showed rows of the old file mixed
with the new one's (and feox_check failed). Each case here failed that way before the cache
learned to compare the database file it was loaded from (sqlite3_db_filename: the pager's name pointer):

  - an image of another table deserialized into main and into an attached schema, with
    the connection having written (its data version moved) or only read (data version 0, which
    the fresh in-memory file also has);
  - three images in a row, then writes that grow the last one (its buffer moves: the cache
    reloads, and stays right);
  - an image deserialized inside BEGIN after writes: SQLite drops the transaction's changes with
    the old file, and the pending changes were committed into the new image. Now COMMIT fails
    with SQLITE_ABORT, and after ROLLBACK the table shows the image. (Newer SQLite, 3.53 at
    least, refuses such a swap with SQLITE_BUSY: then the transaction commits where it began.)

  - an in-memory image deserialized over another inside SAVEPOINT, after a feox_incr there: the
    next feox_incr crashed the process (SQLite 3.40.1 prepared feox's "SELECT * FROM
    pragma_query_only" again against the eponymous table's freed schema); feox no longer reads a
    table to learn query_only. Run in a child process.

Rows are compared with a native WITHOUT ROWID twin deserialized in the same image.

A second image deserialized into a schema that is already an in-memory image may land in the
same pager and file object (the same name pointer): there the image's buffer tells them apart.
Not covered: such a swap inside an open transaction (the buffer also moves when the image grows,
so it cannot refuse a commit).
"""
import os
import sqlite3
import subprocess
import sys
import textwrap
import unittest

from feoxtest import EXT, TempDirTestCase, connect


def rows(con, table):
    return con.execute(f"SELECT key, value FROM {table} ORDER BY key").fetchall()


class DeserializeTest(TempDirTestCase):
    def image(self, name, pairs):
        """A serialized database holding kv (feox, in the database) and nat (native twin)."""
        con = connect(self.path(name))
        con.execute("CREATE VIRTUAL TABLE kv USING feox")
        con.execute("CREATE TABLE nat(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        for table in ("kv", "nat"):
            con.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)", pairs)
        data = con.serialize()
        con.close()
        return data

    def target(self, schema, pairs, write):
        """A connection with kv and nat in schema (main or attached "aux"), both read once (the
        cache is loaded, the statements cached); write=False fills them from another
        connection, so this one never wrote."""
        con = connect(self.path("target.db"))
        if schema != "main":
            con.execute(f"ATTACH ? AS {schema}", (self.path("aux.db"),))
        con.execute(f"CREATE VIRTUAL TABLE {schema}.kv USING feox")
        con.execute(f"CREATE TABLE {schema}.nat(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        filler = con
        if not write:
            filler = connect(self.path("target.db" if schema == "main" else "aux.db"))
            con.execute(f"SELECT count(*) FROM {schema}.kv").fetchone()
        for table in ("kv", "nat"):
            filler.executemany(f"INSERT INTO {table}(key, value) VALUES (?, ?)", pairs)
        if filler is not con:
            filler.close()
            con.close()  # reopened: this connection has seen no commit (data version 0)
            con = connect(self.path("target.db"))
            if schema != "main":
                con.execute(f"ATTACH ? AS {schema}", (self.path("aux.db"),))
        self.assertEqual(rows(con, f"{schema}.kv"), rows(con, f"{schema}.nat"))
        return con

    def check_same(self, con, schema, expected):
        kv, nat = rows(con, f"{schema}.kv"), rows(con, f"{schema}.nat")
        self.assertEqual(kv, nat)
        self.assertEqual(kv, expected)
        self.assertEqual(con.execute(f"SELECT feox_check('{schema}.kv')").fetchone()[0], "ok")

    def test_the_cache_follows_the_image(self):
        old = [("q", 1)]
        new = [("a", 1), ("b", 2)]  # seqs 1 and 2: the old cache is at seq 1
        for schema in ("main", "aux"):
            for write in (True, False):
                with self.subTest(schema=schema, write=write):
                    con = self.target(schema, old, write)
                    con.deserialize(self.image(f"new-{schema}-{write}.db", new), name=schema)
                    self.check_same(con, schema, new)
                    for table in ("kv", "nat"):
                        con.execute(f"INSERT INTO {schema}.{table}(key, value) VALUES ('c', 3)")
                    self.assertEqual(
                        con.execute(f"SELECT feox_incr('{schema}.kv', 'a', 1)").fetchone()[0], 2)
                    con.execute(f"UPDATE {schema}.nat SET value = value + 1 WHERE key = 'a'")
                    self.check_same(con, schema, [("a", 2), ("b", 2), ("c", 3)])
                    con.close()
                    for name in ("target.db", "aux.db"):
                        if os.path.exists(self.path(name)):
                            os.remove(self.path(name))

    def test_images_in_a_row(self):
        con = self.target("main", [("q", 1)], True)
        first = [("a", 1), ("b", 2)]
        second = [("x", 1), ("y", 2), ("z", 3)]
        for name, pairs in (("first.db", first), ("second.db", second), ("third.db", first)):
            con.deserialize(self.image(name, pairs))
            self.check_same(con, "main", pairs)
        grown = list(first)
        for i in range(300):  # the image grows (and its buffer moves) under the cache
            pair = (f"g{i:03d}", "v" * 500)
            for table in ("kv", "nat"):
                con.execute(f"INSERT INTO {table}(key, value) VALUES (?, ?)", pair)
            grown.append(pair)
            if i % 50 == 0:
                self.assertEqual(con.execute("SELECT feox_incr('kv', 'a', 1)").fetchone()[0], 2)
                con.execute("UPDATE kv SET value = 1 WHERE key = 'a'")
        self.check_same(con, "main", sorted(grown))

    @unittest.skipIf(sqlite3.sqlite_version_info > (3, 40, 1),
                     "not detected where SQLite keeps the table connected across the swaps "
                     "(3.53; README, Transactions and isolation)")
    def test_an_image_in_the_buffer_of_an_earlier_one(self):
        """Image 1 is read; image 2 replaces it unread; image 3, as large as image 1 and with as
        many changes (the same seq), replaces image 2. Image 1's buffer was freed by the second
        swap and is the size image 3 asks for: glibc hands it to image 3 (seen with a C driver on
        SQLite 3.40.1), so the buffer the cache compares is the one it was loaded from. The table
        still shows image 3's rows (SQLite connects it anew after two swaps: no cache is kept)."""
        con = self.target("main", [("q", 1)], True)
        first = [("a", 1), ("b", 2)]
        third = [("x", 3), ("y", 4)]
        images = [self.image(f"{name}.db", pairs)
                  for name, pairs in (("first", first), ("second", [("m", 1)]),
                                      ("third", third))]
        self.assertEqual(len(images[0]), len(images[2]))
        for _ in range(3):
            con.deserialize(images[0])
            self.check_same(con, "main", first)
            con.deserialize(images[1])
            con.deserialize(images[2])
            self.check_same(con, "main", third)

    def test_a_transaction_open_across_the_swap_does_not_commit_into_the_image(self):
        con = self.target("main", [(f"x{i}", i) for i in range(5)], True)
        image = self.image("new.db", [("a", 1)])
        con.execute("BEGIN")
        con.execute("INSERT INTO kv(key, value) VALUES ('y', 10)")
        try:
            con.deserialize(image)
        except sqlite3.OperationalError as refused:
            # Newer SQLite (3.53 at least) refuses to swap a schema with an open transaction
            # (SQLITE_BUSY): the transaction goes on and commits into the file it began on.
            self.assertIn("locked", str(refused))
            con.execute("INSERT INTO nat(key, value) VALUES ('y', 10)")
            con.execute("COMMIT")
            self.check_same(con, "main", sorted([(f"x{i}", i) for i in range(5)] + [("y", 10)]))
            return
        with self.assertRaises(sqlite3.Error) as caught:
            con.execute("COMMIT")
        self.assertIn("replaced", str(caught.exception))
        if con.in_transaction:  # SQLite may have rolled back already
            con.execute("ROLLBACK")
        self.check_same(con, "main", [("a", 1)])
        con.execute("INSERT INTO kv(key, value) VALUES ('b', 2)")
        con.execute("INSERT INTO nat(key, value) VALUES ('b', 2)")
        self.check_same(con, "main", [("a", 1), ("b", 2)])
        self.assertEqual(con.execute("SELECT key, seq FROM kv_data ORDER BY key").fetchall(),
                         [(b"a", 1), (b"b", 2)])


SWAP_IN_A_SAVEPOINT = textwrap.dedent("""
    import sqlite3, sys
    def connect(path):
        con = sqlite3.connect(path, isolation_level=None)
        con.enable_load_extension(True)
        con.load_extension(sys.argv[2])
        return con
    src = connect(sys.argv[1] + "/src.db")
    src.execute("CREATE VIRTUAL TABLE kv USING feox")
    src.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
    image = src.serialize()
    con = connect(sys.argv[1] + "/dst.db")
    con.execute("CREATE VIRTUAL TABLE kv USING feox")
    con.execute("INSERT INTO kv(key, value) VALUES ('b', 1)")
    con.deserialize(image)
    print(con.execute("SELECT count(*) FROM kv").fetchone()[0])
    con.execute("SAVEPOINT s")
    print(con.execute("SELECT feox_incr('kv', 'b', 1)").fetchone()[0])
    try:
        con.deserialize(image)
    except sqlite3.OperationalError as refused:  # newer SQLite: no swap in a transaction
        assert "locked" in str(refused), refused
    con.execute("RELEASE s")
    print(con.execute("SELECT feox_incr('kv', 'a', 1)").fetchone()[0] >= 2)
    print(con.execute("SELECT * FROM pragma_query_only").fetchone()[0])
""")


class SwapInASavepointTest(TempDirTestCase):
    def test_no_crash(self):
        proc = subprocess.run([sys.executable, "-c", SWAP_IN_A_SAVEPOINT, self.dir, EXT],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        self.assertEqual(proc.stdout.split(), ["1", "1", "True", "0"])


if __name__ == "__main__":
    unittest.main()
