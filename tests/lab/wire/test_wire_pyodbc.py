"""pyodbc + FreeTDS ODBC (Debian tdsodbc 1.3.17) against the wire layer."""
from __future__ import annotations

import datetime as dt
import decimal
import time

import pyodbc
import pytest

from wire_helpers import odbc_string


def rows(cur):
    return [tuple(r) for r in cur.fetchall()]


def connect(port, **kw):
    autocommit = kw.pop("autocommit", False)
    return pyodbc.connect(odbc_string(port, **kw), timeout=10, autocommit=autocommit)


def test_select_1_and_login_details(port, engine):
    with connect(port) as c:
        assert rows(c.cursor().execute("SELECT 1")) == [(1,)]
        assert c.getinfo(pyodbc.SQL_DBMS_NAME) == "Microsoft SQL Server"
        assert c.getinfo(pyodbc.SQL_DBMS_VER).startswith("15.00.2000")
    login = engine.logins[0]
    assert (login["user"], login["password"]) == ("sa", "Secret1!")
    assert login["tds_version"] == 0x74000004
    assert login["client_address"] == "127.0.0.1"


def test_login_failure_text(port):
    with pytest.raises(pyodbc.Error) as ei:
        connect(port, password="wrong")
    text = str(ei.value)
    assert "Login failed for user 'sa'." in text and "(18456)" in text


def test_non_ascii_password_and_database(port, engine):
    with connect(port, user="alice", password="pä$$wörd", extra="DATABASE=TestDb;") as c:
        assert c.cursor().execute("SELECT DB_NAME()").fetchone()[0] == "TestDb"
    assert engine.logins[0]["database"] == "TestDb"


def test_types_round_trip(port):
    with connect(port) as c:
        row = c.cursor().execute("SELECT types").fetchone()
    assert row.i == 42 and row.bi == 2 ** 40 and row.si == -7 and row.ti == 255
    assert row.b is True
    assert row.nv == "héllo ☃" and row.sn == "dbo" and row.nvmax == "x" * 5000
    assert row.vc == "abc" and row.ch == "ab  " and row.nch == "z  "
    assert row.vb == b"\x00\x01\xff" and row.vbmax == b"\xab" * 9000 and row.bn == b"\x01\0\0\0"
    assert row.dtm == dt.datetime(2024, 2, 29, 13, 45, 7, 123000)
    assert row.dt2 == dt.datetime(2024, 2, 29, 13, 45, 7, 123456)
    assert row.d == dt.date(1999, 12, 31)
    assert row.g == "12345678-1234-5678-9ABC-DEF012345678"
    assert row.f == 3.25 and row.r == 1.5
    assert row.dec == decimal.Decimal("-12345.67")
    assert row.num == decimal.Decimal("12345678901234567890123456789012345678")
    assert row.m == decimal.Decimal("922337203685477.5807")
    assert row.sv == "17" and row.nul is None and row.nulstr is None


def test_parameterised_queries_use_prepexec_and_unprepare(port, engine):
    with connect(port) as c:
        cur = c.cursor()
        assert rows(cur.execute("SELECT ?, ?", 5, "hi")) == [(5, "hi")]
        args = (2 ** 40, 2.5, decimal.Decimal("12.345"), dt.datetime(2020, 1, 2, 3, 4, 5),
                dt.date(2021, 6, 7), b"\x01\x02", True, "x" * 6000, None)
        row = cur.execute("SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?", *args).fetchone()
        assert tuple(row) == args
        assert cur.execute("INSERT INTO t VALUES (?)", 1).rowcount == 1
    executes = [e for e in engine.log if e[0] == "execute" and e[2]]
    assert executes[0][1] == "SELECT @P1, @P2"
    assert [(p.name, p.sqltype, p.value) for p in executes[0][2]] == [
        ("@P1", "int", 5), ("@P2", "nvarchar(4)", "hi")]


def test_executemany_call_escape_and_handle_cleanup(server, engine):
    c = connect(server.address[1], autocommit=True)
    cur = c.cursor()
    cur.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    (conn,) = list(server._conns)
    assert len(conn._rpc.prepared) <= 1          # every re-execute unprepared the previous one
    cur.close()                                  # ... and closing the cursor the last one
    assert conn._rpc.prepared == {}
    cur = c.cursor()
    cur.execute("{call echo_proc(?, ?)}", 3, 4)   # ODBC call escape -> RPC by name
    assert rows(cur) == [(2,)]
    assert engine.log[-1][:2] == ("call", "echo_proc")
    with pytest.raises(pyodbc.Error) as ei:
        c.cursor().tables().fetchall()           # sp_tables RPC: the fake has none
    assert "(2812)" in str(ei.value)
    c.close()


def test_autocommit_off_and_on_use_tm_requests(port, engine):
    c = connect(port)                       # autocommit off: TM_BEGIN_XACT at connect
    assert engine.log[0] == ("begin", None, None)
    session = engine.sessions[0]
    assert session.in_transaction
    c.commit()
    c.rollback()
    c.autocommit = True                     # TM_ROLLBACK_XACT without a new transaction
    assert not session.in_transaction
    c.autocommit = False                    # TM_BEGIN_XACT
    assert session.in_transaction
    c.close()                               # pyodbc rolls back on close
    tm = [e[:2] for e in engine.log if e[0] in ("begin", "commit", "rollback")]
    assert tm == [("begin", None), ("commit", True), ("rollback", True), ("rollback", False),
                  ("begin", None), ("rollback", True)]


def test_print_goes_to_messages(port):
    with connect(port) as c:
        cur = c.cursor()
        cur.execute("PRINT 'hello'")
        assert cur.messages == [("[01000] (0)", "[FreeTDS][SQL Server]hello")]


def test_error_text_and_connection_survives(port):
    with connect(port) as c:
        cur = c.cursor()
        with pytest.raises(pyodbc.Error) as ei:
            cur.execute("RAISE")
        assert "Something went wrong in the fake engine." in str(ei.value)
        assert "(50001)" in str(ei.value)
        with pytest.raises(pyodbc.ProgrammingError) as ei:
            cur.execute("SELECT nope")
        assert ei.value.args[0] == "42S02" and "(208)" in str(ei.value)
        assert rows(cur.execute("SELECT 1")) == [(1,)]


def test_nextset_over_several_result_sets(port):
    with connect(port) as c:
        cur = c.cursor()
        cur.execute("SELECT multi")
        assert rows(cur) == [(1,)]
        assert cur.nextset()
        assert cur.rowcount == 3
        assert cur.nextset()
        assert rows(cur) == [("x",), ("y",)]
        assert not cur.nextset()


def test_large_result_streams_in_packets(port):
    with connect(port) as c:
        rows = c.cursor().execute("SELECT big 5000").fetchall()
    assert len(rows) == 5000 and tuple(rows[-1]) == (4999, "row 4999", "p" * 80)


def test_query_timeout_sends_attention_and_connection_stays_usable(any_mode_server, engine):
    with connect(any_mode_server.address[1]) as c:
        c.timeout = 1
        cur = c.cursor()
        t0 = time.monotonic()
        with pytest.raises(pyodbc.OperationalError) as ei:
            cur.execute("WAITFOR DELAY '00:00:20'")
        assert ei.value.args[0] == "HYT00"
        assert time.monotonic() - t0 < 5
        assert engine.cancels >= 1
        assert rows(cur.execute("SELECT 1")) == [(1,)]


def test_unread_results_then_reuse_sends_attention(any_mode_server):
    with connect(any_mode_server.address[1]) as c:
        cur = c.cursor()
        cur.execute("SELECT big 2000")
        cur.fetchone()
        assert rows(cur.execute("SELECT 1")) == [(1,)]   # ATTENTION + ack first
        cur.execute("SELECT multi")
        cur.close()
        assert rows(c.cursor().execute("SELECT 1")) == [(1,)]


def test_encode_error_mid_result_is_reported(port):
    with connect(port) as c:
        cur = c.cursor()
        with pytest.raises(pyodbc.Error) as ei:
            cur.execute("overflow").fetchall()
        assert "Arithmetic overflow" in str(ei.value)
        assert rows(cur.execute("SELECT 1")) == [(1,)]


def test_fatal_closes_connection(port):
    c = connect(port)
    cur = c.cursor()
    with pytest.raises(pyodbc.Error) as ei:
        cur.execute("FATAL")
    assert "(3624)" in str(ei.value)
    with pytest.raises(pyodbc.Error):
        cur.execute("SELECT 1")
    c.close()


@pytest.mark.parametrize("version", ["7.1", "7.2", "7.3"])
def test_older_tds_versions(port, engine, version):
    with connect(port, version=version) as c:
        cur = c.cursor()
        assert rows(cur.execute("SELECT 1")) == [(1,)]
        assert rows(cur.execute("SELECT ?, ?", 7, "zz")) == [(7, "zz")]
        row = cur.execute("SELECT types").fetchone()
        assert row.nvmax == "x" * 5000 and row.vbmax == b"\xab" * 9000
        assert row.num == decimal.Decimal("12345678901234567890123456789012345678")
        if version == "7.3":
            assert row.dt2 == dt.datetime(2024, 2, 29, 13, 45, 7, 123456)
            assert row.d == dt.date(1999, 12, 31)
        else:                                       # sent as strings, like SQL Server does
            assert row.dt2 == "2024-02-29 13:45:07.1234560"
            assert row.d == "1999-12-31"
        with pytest.raises(pyodbc.Error) as ei:
            cur.execute("RAISE")
        assert "(50001)" in str(ei.value)
        c.commit()
    expected = {"7.1": 0x71000001, "7.2": 0x72090002, "7.3": 0x730B0003}[version]
    assert engine.logins[0]["tds_version"] == expected


def test_tls_required_by_client(tls_server_factory, engine):
    srv = tls_server_factory("optional")
    with connect(srv.address[1], extra="Encryption=require;") as c:
        assert rows(c.cursor().execute("SELECT 1")) == [(1,)]
        c.timeout = 1                       # attention through TLS (reader-thread mode)
        with pytest.raises(pyodbc.OperationalError):
            c.cursor().execute("WAITFOR DELAY '00:00:20'")
        assert engine.cancels == 1
        assert rows(c.cursor().execute("SELECT ?", "tls")) == [("tls",)]
        assert len(c.cursor().execute("SELECT big 3000").fetchall()) == 3000
    assert engine.sessions[0].client["encrypted"] is True


def test_tls_login_only(tls_server_factory):
    # FreeTDS' default "request" sends ENCRYPT_OFF: TLS for LOGIN7 only.
    srv = tls_server_factory("optional")
    with connect(srv.address[1]) as c:
        assert rows(c.cursor().execute("SELECT 1")) == [(1,)]
    session = srv.instance.sessions[-1]
    assert session.client["encrypted"] is False and session.client["client_port"] > 0


def test_tls_forced_by_server(tls_server_factory):
    # FreeTDS' default "request" would protect only the login; a server that requires encryption makes it full TLS
    srv = tls_server_factory("required")
    with connect(srv.address[1]) as c:
        assert rows(c.cursor().execute("SELECT ?", 3)) == [(3,)]
    session = srv.instance.sessions[-1]
    assert session.client["encrypted"] is True, session.client


def test_encryption_required_by_client_but_server_off(port):
    with pytest.raises(pyodbc.Error):
        connect(port, extra="Encryption=require;")
