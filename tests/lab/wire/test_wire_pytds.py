"""python-tds (pytds) against the wire layer."""
from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytds
import pytest


def connect(port, **kw):
    kw.setdefault("user", "sa")
    kw.setdefault("password", "Secret1!")
    kw.setdefault("autocommit", True)
    return pytds.connect(dsn="127.0.0.1", port=port, login_timeout=10, **kw)


def test_select_and_login(port, engine):
    with connect(port, database="TestDb") as c, c.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
    login = engine.logins[0]
    assert login["app"] == "pytds" and login["library"] == "Python TDS Library"
    # ENVCHANGE carried the exact database name, so pytds sent no USE.
    assert not any(e[0] == "execute" and e[1].lower().startswith("use") for e in engine.log)


def test_sp_executesql_with_parameters(port, engine):
    with connect(port) as c, c.cursor() as cur:
        args = (5, "héllo", 2.5, decimal.Decimal("-1.25"), dt.datetime(2020, 1, 2, 3, 4, 5, 678901),
                dt.date(2021, 6, 7), uuid.UUID("12345678-1234-5678-9abc-def012345678"), True,
                "y" * 9000, 2 ** 40)
        cur.execute("SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s", args)
        assert cur.fetchone() == args
        cur.execute("INSERT INTO t VALUES (%s)", (1,))
        assert cur.rowcount == 1
    calls = [e for e in engine.log if e[0] == "execute" and e[2]]
    params = calls[0][2]
    assert [p.name for p in params] == [f"@P{i}" for i in range(1, 11)]
    assert params[0].sqltype == "int" and params[1].value == "héllo"


def test_transactions_via_tm_requests(port, engine):
    with connect(port, autocommit=False) as c:
        with c.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        c.commit()
        c.rollback()
    kinds = [e[0] for e in engine.log if e[0] in ("begin", "commit", "rollback")]
    assert kinds[0] == "begin" and "commit" in kinds and "rollback" in kinds


def test_errors_and_messages(port):
    with connect(port) as c, c.cursor() as cur:
        with pytest.raises(pytds.ProgrammingError) as ei:
            cur.execute("SELECT nope")
        assert ei.value.msg_no == 208
        with pytest.raises(pytds.OperationalError) as ei:
            cur.execute("RAISE")
        e = ei.value
        assert (e.msg_no, e.severity, e.state, e.line) == (50001, 16, 2, 3)
        assert e.srvname == "FAKESQL"
        cur.execute("PRINT 'hi there'")
        assert any("hi there" in str(m) for m in cur.messages)
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def test_nextset(port):
    with connect(port) as c, c.cursor() as cur:
        cur.execute("SELECT multi")
        assert cur.fetchall() == [(1,)]
        assert cur.nextset()
        assert cur.nextset()
        assert cur.fetchall() == [("x",), ("y",)]
        assert not cur.nextset()


def test_callproc_with_output_and_return_status(port, engine):
    with connect(port) as c, c.cursor() as cur:
        cur.callproc("echo_proc", (pytds.output(value=21, param_type=int), 7))
        assert cur.fetchall() == [(2,)]
        assert not cur.nextset()
        assert cur.get_proc_return_status() == 5
        assert cur.get_proc_outputs()[0] == 42
        # Without result sets callproc returns the outputs at their RPC ordinals.
        assert cur.callproc("out_proc", (7, pytds.output(value=4, param_type=int))) == [7, 8]
    call = [e for e in engine.log if e[0] == "call"][0]
    assert call[1] == "echo_proc" and call[2][0].output


def test_types(port):
    with connect(port) as c, c.cursor() as cur:
        cur.execute("SELECT types")
        row = cur.fetchone()
        cols = [d[0] for d in cur.description]
        r = dict(zip(cols, row))
    assert r["g"] == uuid.UUID("12345678-1234-5678-9abc-def012345678")
    assert r["dt2"] == dt.datetime(2024, 2, 29, 13, 45, 7, 123456)
    assert r["nvmax"] == "x" * 5000 and r["vbmax"] == b"\xab" * 9000
    assert r["dec"] == decimal.Decimal("-12345.67") and r["m"] == decimal.Decimal("922337203685477.5807")


def test_attention_after_unread_rpc(port, engine):
    with connect(port) as c:
        for i in range(20):         # pytds cancels unread RPC replies before the next request
            with c.cursor() as cur:
                cur.execute("SELECT %s", (i,))
                assert cur.fetchone() == (i,)
        with c.cursor() as cur:
            cur.execute("SELECT big 3000")
            cur.fetchone()
        with c.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchall() == [(1,)]


def test_full_tls_with_cafile(tls_server_factory, cert_files):
    srv = tls_server_factory("optional")
    with connect(srv.address[1], cafile=cert_files[0], validate_host=False) as c, c.cursor() as cur:
        cur.execute("SELECT %s", ("secure",))
        assert cur.fetchall() == [("secure",)]
        cur.execute("SELECT big 2000")
        assert len(cur.fetchall()) == 2000


def test_login_only_tls(tls_server_factory, cert_files):
    srv = tls_server_factory("optional")
    with connect(srv.address[1], cafile=cert_files[0], validate_host=False,
                 enc_login_only=True) as c, c.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def test_plain_client_refused_when_tls_required(tls_server_factory):
    srv = tls_server_factory("required")
    with pytest.raises(Exception):
        connect(srv.address[1])


def test_tls_client_refused_when_server_has_no_tls(port, cert_files):
    with pytest.raises(Exception) as ei:
        connect(port, cafile=cert_files[0], validate_host=False)
    assert "not supported by server" in str(ei.value)
