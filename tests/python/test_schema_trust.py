"""feox tables used from triggers and views, as a schema someone else wrote would use them.

With PRAGMA trusted_schema=OFF (newer sqlite3 shells' default, and what security-minded apps
set), SQLite lets triggers and views use only virtual tables marked innocuous. A table in the
database writes only its own shadow tables, and a memory table only process memory: both are
innocuous, like FTS5. A store-file table may create and write files, so it stays DIRECTONLY:
no trigger or view may use it, whatever trusted_schema says.
"""
import os
import sqlite3
import unittest

from feoxtest import TempDirTestCase, connect


class SchemaTrustTest(TempDirTestCase):
    def open(self):
        con = connect(os.path.join(self.dir, "app.db"))
        con.execute("PRAGMA trusted_schema=OFF")
        return con

    def check_usable_from_schema(self, options):
        con = self.open()
        con.execute(f"CREATE VIRTUAL TABLE kv USING feox{options}")
        con.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)")
        con.execute("CREATE TRIGGER last_order AFTER INSERT ON orders BEGIN"
                    " INSERT OR REPLACE INTO kv(key, value) VALUES ('item:' || new.item, new.id);"
                    " END")
        con.execute("CREATE VIEW items AS SELECT key, value FROM kv WHERE key >= 'item:'")
        con.execute("INSERT INTO orders(item) VALUES ('tea'), ('cake')")
        con.execute("INSERT INTO orders(item) VALUES ('tea')")
        self.assertEqual(con.execute("SELECT key, value FROM items ORDER BY key").fetchall(),
                         [("item:cake", 2), ("item:tea", 3)])
        # The writing functions stay DIRECTONLY: a trigger cannot call them.
        con.execute("CREATE TRIGGER count_orders AFTER INSERT ON orders BEGIN"
                    " SELECT feox_incr('kv', 'orders', 1); END")
        with self.assertRaisesRegex(sqlite3.OperationalError, r"unsafe use of feox_incr"):
            con.execute("INSERT INTO orders(item) VALUES ('jam')")
        self.assertEqual(con.execute("SELECT count(*) FROM orders").fetchone(), (3,))
        self.assertEqual(con.execute("SELECT feox_check('kv')").fetchone(), ("ok",))
        con.close()

    def test_table_in_the_database_is_usable_from_triggers_and_views(self):
        self.check_usable_from_schema("")

    def test_memory_table_is_usable_from_triggers_and_views(self):
        self.check_usable_from_schema("(path=':memory:')")

    def test_store_file_table_is_not_usable_from_triggers_or_views(self):
        con = self.open()
        con.execute("CREATE VIRTUAL TABLE kv USING feox(path='kv.feox')")
        con.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)")
        con.execute("CREATE TRIGGER count_item AFTER INSERT ON orders BEGIN"
                    " INSERT INTO kv(key, value) VALUES (new.item, new.id); END")
        con.execute("CREATE VIEW items AS SELECT key FROM kv")
        for sql in ("INSERT INTO orders(item) VALUES ('tea')", "SELECT * FROM items"):
            with self.assertRaisesRegex(sqlite3.OperationalError, "unsafe use of virtual table"):
                con.execute(sql).fetchall()
        con.execute("PRAGMA trusted_schema=ON")  # DIRECTONLY holds whatever the pragma says
        with self.assertRaisesRegex(sqlite3.OperationalError, "unsafe use of virtual table"):
            con.execute("SELECT * FROM items").fetchall()
        self.assertEqual(con.execute("SELECT count(*) FROM orders").fetchone(), (0,))
        con.close()


if __name__ == "__main__":
    unittest.main()
