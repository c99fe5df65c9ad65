"""pymssql (bundled FreeTDS 1.5, DB-Library) and FreeTDS' tsql against the wire layer."""
from __future__ import annotations

import os
import shutil
import subprocess

import pymssql
import pytest


def connect(port, **kw):
    kw.setdefault("user", "sa")
    kw.setdefault("password", "Secret1!")
    return pymssql.connect(server="127.0.0.1", port=str(port), login_timeout=10, **kw)


def test_pymssql_basic(port, engine):
    with connect(port, database="TestDb") as c:
        cur = c.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
        cur.execute("SELECT multi")
        assert cur.fetchall() == [(1,)]
        assert cur.nextset()
        cur.execute("SELECT types")
        row = cur.fetchone()
        assert row[0] == 42 and row[5] == "héllo ☃"
        c.commit()
    # FreeTDS 1.5 drops to TDS 7.1 when the PRELOGIN reply lacks MARS.
    assert engine.logins[0]["tds_version"] == 0x74000004
    sqls = [e[1] for e in engine.log if e[0] == "execute"]
    assert any(s.startswith("SET ARITHABORT ON") for s in sqls)


def test_pymssql_errors(port):
    with connect(port) as c:
        cur = c.cursor()
        with pytest.raises(pymssql.ProgrammingError) as ei:
            cur.execute("SELECT nope")
        assert ei.value.args[0] == 208
        with pytest.raises(pymssql.OperationalError) as ei:
            cur.execute("RAISE")
        assert ei.value.args[0] == 50001
        cur.execute("SELECT %s", ("it's",))
        assert cur.fetchall() == [("it's",)]    # substituted client-side


def test_pymssql_login_failure(port):
    with pytest.raises(pymssql.OperationalError) as ei:
        connect(port, password="nope")
    assert "18456" in str(ei.value)


@pytest.mark.skipif(shutil.which("tsql") is None, reason="freetds-bin not installed")
def test_tsql(port):
    env = dict(os.environ, TDSVER="7.4")
    out = subprocess.run(["tsql", "-H", "127.0.0.1", "-p", str(port), "-U", "sa", "-P", "Secret1!"],
                         input="SELECT big 3\ngo\nPRINT 'from tsql'\ngo\nexit\n", capture_output=True,
                         text=True, timeout=30, env=env)
    assert "row 2" in out.stdout, out.stdout + out.stderr
    assert "from tsql" in out.stdout + out.stderr
    assert "(3 rows affected)" in out.stdout
