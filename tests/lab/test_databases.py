"""User databases, tables, rows and transactions through pyodbc + FreeTDS (issue #11 item 1),
and the transaction log they write (engine/txlog.py)."""
from __future__ import annotations

import sqlite3

import pytest

from tests.lab.test_statements_dba import fails, run


@pytest.fixture
def shop(lab):
    h = lab("HOST_A").instances["HOST_A"]
    cn = h.connect()
    cur = cn.cursor()
    cur.execute("CREATE DATABASE shop ON PRIMARY (NAME = shop_data, FILENAME = 'D:\\data\\shop.mdf', SIZE = 8MB,"
                " FILEGROWTH = 64MB) LOG ON (NAME = shop_log, FILENAME = 'D:\\log\\shop.ldf', SIZE = 8MB)")
    cur.execute("USE shop")
    cur.execute("CREATE TABLE dbo.orders (id INT IDENTITY(1,1) PRIMARY KEY, item NVARCHAR(20) NOT NULL, "
                "qty INT NOT NULL DEFAULT (1), note VARCHAR(10) NULL, CONSTRAINT uq_item UNIQUE (item))")
    yield h, cur
    cn.close()


def test_create_database_shows_in_catalog_with_files(shop):
    h, cur = shop
    row = run(cur, "SELECT name, state_desc, recovery_model_desc, user_access_desc, is_read_only, "
                   "DB_ID('shop'), DB_NAME(DB_ID('shop')) FROM sys.databases WHERE name = 'shop'")
    assert row == [("shop", "ONLINE", "FULL", "MULTI_USER", False, row[0][5], "shop")]
    assert row[0][5] >= 5
    files = run(cur, "SELECT name, type_desc, physical_name FROM sys.database_files ORDER BY file_id")
    assert files == [("shop_data", "ROWS", "D:\\data\\shop.mdf"), ("shop_log", "LOG", "D:\\log\\shop.ldf")]
    assert fails(cur, "CREATE DATABASE shop")[0] == 1801
    assert fails(cur, "CREATE DATABASE other ON (NAME = o, FILENAME = 'D:\\data\\shop.mdf')")[0] == 5170


def test_rows_round_trip_with_identity_defaults_and_types(shop):
    h, cur = shop
    cur.execute("INSERT INTO orders (item) VALUES (N'apple'), (N'pear')")
    assert cur.rowcount == 2
    cur.execute("INSERT INTO orders (item, qty, note) VALUES (?, ?, ?)", "fig", 7, "ripe")
    assert run(cur, "SELECT id, item, qty, note FROM orders ORDER BY id") == [
        (1, "apple", 1, None), (2, "pear", 1, None), (3, "fig", 7, "ripe")]
    cur.execute("UPDATE orders SET qty = qty * 10, note = 'x' WHERE item = 'APPLE'")
    assert cur.rowcount == 1
    cur.execute("DELETE FROM orders WHERE id = 2")
    assert run(cur, "SELECT COUNT(*), SUM(qty) FROM shop.dbo.orders") == [(2, 17)]
    cur.execute("INSERT INTO orders (item) SELECT item + N'2' FROM orders WHERE id = 3")
    assert run(cur, "SELECT MAX(id) FROM orders") == [(4,)]      # identity never reuses 2
    assert run(cur, "SELECT name FROM sys.tables") == [("orders",)]
    assert [r[0] for r in run(cur, "SELECT c.name FROM sys.columns c JOIN sys.tables t ON t.object_id = "
                                   "c.object_id WHERE t.name = 'orders' ORDER BY c.column_id")] == [
        "id", "item", "qty", "note"]


def test_row_errors_are_sql_servers(shop):
    h, cur = shop
    cur.execute("INSERT INTO orders (item) VALUES ('apple')")
    assert fails(cur, "INSERT INTO orders (item) VALUES (NULL)") == (
        515, "Cannot insert the value NULL into column 'item', table 'shop.dbo.orders'; column does not allow "
             "nulls. INSERT fails.")
    assert fails(cur, "INSERT INTO orders (item) VALUES ('APPLE')")[0] == 2627   # case-insensitive key
    assert fails(cur, "INSERT INTO orders (item, note) VALUES ('kiwi', 'far too long')")[0] == 2628
    assert fails(cur, "INSERT INTO orders (id, item) VALUES (9, 'kiwi')")[0] == 544
    assert fails(cur, "UPDATE orders SET id = 5")[0] == 8102
    assert fails(cur, "INSERT INTO orders (item, qty) VALUES ('kiwi')")[0] == 109
    assert fails(cur, "INSERT INTO nowhere (a) VALUES (1)")[0] == 208
    assert fails(cur, "INSERT INTO orders (item, qty) VALUES ('kiwi', 'many')")[0] == 245
    assert run(cur, "SELECT COUNT(*) FROM orders") == [(1,)]


def test_transactions_commit_and_roll_back(shop):
    h, cur = shop
    cur.execute("BEGIN TRAN; INSERT INTO orders (item) VALUES ('a'); INSERT INTO orders (item) VALUES ('b'); "
                "ROLLBACK")
    cur.execute("BEGIN TRAN; INSERT INTO orders (item) VALUES ('c'); COMMIT")
    assert run(cur, "SELECT item FROM orders") == [("c",)]
    # a failed statement inside a transaction undoes only itself
    cur.execute("BEGIN TRAN")
    cur.execute("INSERT INTO orders (item) VALUES ('d')")
    with pytest.raises(Exception):
        cur.execute("INSERT INTO orders (item) VALUES ('c')")
    cur.execute("COMMIT")
    assert sorted(r[0] for r in run(cur, "SELECT item FROM orders")) == ["c", "d"]


def test_other_sessions_see_only_committed_rows(shop):
    h, cur = shop
    other = h.connect(database="shop").cursor()
    cur.execute("BEGIN TRAN; INSERT INTO orders (item) VALUES ('pending')")
    assert run(other, "SELECT COUNT(*) FROM orders") == [(0,)]
    cur.execute("COMMIT")
    assert run(other, "SELECT COUNT(*) FROM orders") == [(1,)]


def test_log_records_changes_with_images_once_the_chain_exists(shop):
    h, cur = shop
    # FULL recovery before the first full backup keeps no log (as SQL Server's pseudo-simple mode)
    cur.execute("INSERT INTO orders (item) VALUES ('a')")
    db = sqlite3.connect(str(h.instance.db_path))
    dbid = run(cur, "SELECT DB_ID()")[0][0]
    assert db.execute("SELECT COUNT(*) FROM t_log WHERE database_id=?", (dbid,)).fetchone()[0] == 0
    db.execute("UPDATE t_databases SET database_backup_lsn = end_lsn WHERE database_id=?", (dbid,))
    db.commit()
    cur.execute("BEGIN TRAN; UPDATE orders SET qty = 5 WHERE item = 'a'; DELETE FROM orders; COMMIT")
    ops = db.execute("SELECT op, txn, before, after FROM t_log WHERE database_id=? ORDER BY lsn", (dbid,)).fetchall()
    assert [o[0] for o in ops] == ["update", "delete", "commit"]
    assert len({o[1] for o in ops}) == 1                 # one transaction
    assert '"qty":1' in ops[0][2] and '"qty":5' in ops[0][3]


def test_drop_table_and_database(shop):
    h, cur = shop
    cur.execute("DROP TABLE orders")
    assert fails(cur, "SELECT * FROM orders")[0] == 208
    cur.execute("DROP TABLE IF EXISTS orders")
    assert fails(cur, "DROP DATABASE shop")[0] == 3702          # in use by this session
    cur.execute("USE master")
    cur.execute("DROP DATABASE shop")
    assert run(cur, "SELECT COUNT(*) FROM sys.databases WHERE name = 'shop'") == [(0,)]
    assert fails(cur, "DROP DATABASE master")[0] == 3708
    assert fails(cur, "DROP DATABASE shop")[0] == 3701


def test_recovery_model_and_database_options(shop):
    h, cur = shop
    cur.execute("USE master")
    cur.execute("ALTER DATABASE shop SET RECOVERY SIMPLE")
    cur.execute("ALTER DATABASE shop SET READ_ONLY")
    assert run(cur, "SELECT recovery_model_desc, is_read_only FROM sys.databases WHERE name = 'shop'") == [
        ("SIMPLE", True)]
    assert fails(cur, "INSERT INTO shop.dbo.orders (item) VALUES ('x')")[0] == 3906
    cur.execute("ALTER DATABASE shop SET READ_WRITE")
    cur.execute("ALTER DATABASE shop SET RECOVERY FULL WITH NO_WAIT")
    cur.execute("ALTER DATABASE shop SET OFFLINE WITH ROLLBACK IMMEDIATE")
    assert fails(cur, "USE shop")[0] == 942
    cur.execute("ALTER DATABASE shop SET ONLINE")
    cur.execute("USE shop")
    assert fails(cur, "BEGIN TRAN; CREATE DATABASE inner_db")[0] == 226
    cur.execute("ROLLBACK")


def test_databases_survive_restart(lab):
    l_ = lab("HOST_A")
    h = l_.instances["HOST_A"]
    with h.connect() as cn:
        cur = cn.cursor()
        cur.execute("CREATE DATABASE keep")
        cur.execute("USE keep; CREATE TABLE t (v INT)")
        cur.execute("INSERT INTO t (v) VALUES (1), (2)")
    with l_.restart("HOST_A").connect(database="keep") as cn:
        assert run(cn.cursor(), "SELECT SUM(v) FROM t") == [(3,)]
