"""Store files from Python (issue 11 items 4, 5, 9): tables of two databases sharing one file,
a copy of a database, and fork(): a child never uses the store its parent opened."""
import json
import os
import unittest

from feoxtest import EXT, TempDirTestCase, connect


def rows(con, table):
    return sorted(con.execute(f'SELECT key, value FROM "{table}"').fetchall())


class SharedFileTest(TempDirTestCase):
    def test_drop_in_one_database_keeps_the_file_another_database_shows(self):
        x = self.path("x.feox")
        one = connect(self.path("one.db"))
        two = connect(self.path("two.db"))
        one.execute(f"CREATE VIRTUAL TABLE a USING feox(path='{x}')")
        two.execute(f"CREATE VIRTUAL TABLE b USING feox(path='{x}')")
        with self.assertRaisesRegex(Exception, "already open with sync='normal' "
                                               r"\(this table says sync='full'\)"):
            two.execute(f"CREATE VIRTUAL TABLE c USING feox(path='{x}', sync='full')")
        one.execute("INSERT INTO a(key, value) VALUES ('k', 1)")
        one.execute("DROP TABLE a")
        one.execute("SELECT 1").fetchall()
        self.assertEqual(rows(two, "b"), [("k", 1)])
        one.close()
        two.execute("INSERT INTO b(key, value) VALUES ('k2', 2)")
        two.close()
        self.assertTrue(os.path.exists(x))
        two = connect(self.path("two.db"))
        self.assertEqual(rows(two, "b"), [("k", 1), ("k2", 2)])
        two.close()

    def test_copy_of_a_database_does_not_destroy_the_original(self):
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='data.feox')")
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")
        con.close()
        with open(db, "rb") as src, open(self.path("app2.db"), "wb") as dst:
            dst.write(src.read())
        copy = connect(self.path("app2.db"))
        copy.execute("DROP TABLE kv")
        copy.close()
        self.assertTrue(os.path.exists(self.path("data.feox")))
        con = connect(db)
        self.assertEqual(rows(con, "kv"), [("a", 1)])
        con.close()


@unittest.skipUnless(hasattr(os, "fork"), "no fork()")
class ForkTest(TempDirTestCase):
    def in_child(self, fn):
        """Run fn() in a fork()ed child; return what it returned (JSON)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                out = json.dumps(fn()).encode()
                os.write(w, out)
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        return json.loads(data)

    def test_child_never_uses_the_parents_store(self):
        db = self.path("app.db")
        con = connect(db)
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='app.db-kv.feox')")  # file mode
        con.execute("INSERT INTO kv(key, value) VALUES ('a', 1)")

        def child():
            got = {}
            for name, sql in [("select", "SELECT count(*) FROM kv"),
                              ("insert", "INSERT INTO kv(key, value) VALUES ('child', 1)"),
                              ("incr", "SELECT feox_incr('kv', 'n', 1)")]:
                try:
                    con.execute(sql).fetchall()
                    got[name] = "no error"
                except Exception as e:  # noqa: BLE001 - the message is what is tested
                    got[name] = str(e)
            try:
                own = connect(db)
                own.execute("SELECT count(*) FROM kv").fetchall()
                got["own"] = "no error"
            except Exception as e:  # noqa: BLE001
                got["own"] = str(e)
            return got

        got = self.in_child(child)
        for name in ("select", "insert", "incr", "own"):
            self.assertIn("feox: kv: cannot open store", got[name], name)
            self.assertIn("the parent process holds it", got[name], name)
        # nothing the child tried reached the file
        self.assertEqual(rows(con, "kv"), [("a", 1)])
        con.close()
        con = connect(db)
        self.assertEqual(rows(con, "kv"), [("a", 1)])
        con.close()


if __name__ == "__main__":
    unittest.main()
