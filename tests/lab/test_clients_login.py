"""Acceptance (lab part 1): the clients the runbooks use log in to a lab instance and run a
catalog query; a wrong password gives 18456 ("Login failed for user '<name>'.").

Clients: pyodbc + FreeTDS ODBC (plain, and with encryption required), python-tds (plain and
with TLS verified against the instance's certificate), pymssql and FreeTDS `tsql`.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pymssql
import pyodbc
import pytds
import pytest

try:
    from tests.conftest import SA_PASSWORD
except ImportError:       # bare `pytest`: the project root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.conftest import SA_PASSWORD

CATALOG_QUERY = "SELECT name FROM sys.databases ORDER BY name"
SYSTEM_DATABASES = [("master",), ("model",), ("msdb",), ("tempdb",)]
ENCRYPT_QUERY = "SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID"
LOGIN_FAILED = "Login failed for user '{}'."


@pytest.fixture
def inst(lab):
    return lab("HOST_A")["HOST_A"]


def odbc_error(exc: pyodbc.Error) -> tuple[str, str, int, str]:
    m = re.fullmatch(r"\[(\w{5})\] \[FreeTDS\]\[SQL Server\](.*) \((\d+)\) \((SQL\w+)\)", exc.args[1], re.S)
    assert m, exc.args
    return m.group(1), m.group(2), int(m.group(3)), m.group(4)


# ---- a TCP relay that records what the client sends, to see whether it is encrypted -----------

class Relay:
    """Forwards one listening port to the instance and keeps every byte the client sent."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.sent = bytearray()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for a, b, record in ((client, server, True), (server, client, False)):
                t = threading.Thread(target=self._pump, args=(a, b, record), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record:
                    self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.lsock.close()


@pytest.fixture
def relay(inst):
    r = Relay(inst.host, inst.port)
    yield r
    r.close()


MARKER = "SELECT 'marker-7f3a' AS m"


def odbc_via_relay(relay, extra: str = ""):
    return pyodbc.connect(f"DRIVER={{FreeTDS}};SERVER=127.0.0.1;PORT={relay.port};UID=sa;"
                          f"PWD={{{SA_PASSWORD}}};DATABASE=master;TDS_Version=7.4;" + extra,
                          autocommit=True, timeout=10)


# ---- pyodbc + FreeTDS --------------------------------------------------------------------------

def test_pyodbc_freetds_login_and_catalog_query(inst):
    with inst.connect() as cn:
        cur = cn.cursor()
        assert [tuple(r) for r in cur.execute(CATALOG_QUERY).fetchall()] == SYSTEM_DATABASES
        assert tuple(cur.execute("SELECT SUSER_NAME(), DB_NAME()").fetchone()) == ("sa", "master")
        assert cur.execute("SELECT @@SERVERNAME").fetchone()[0] == "HOST_A"


def test_pyodbc_freetds_with_encryption_required(inst, relay):
    """FreeTDS' `Encryption=require`: the connection works and nothing after PRELOGIN is clear text."""
    with inst.connect(extra="Encryption=require;") as cn:
        assert [tuple(r) for r in cn.cursor().execute(CATALOG_QUERY).fetchall()] == SYSTEM_DATABASES
    with odbc_via_relay(relay, "Encryption=require;") as cn:
        assert cn.cursor().execute(MARKER).fetchone()[0] == "marker-7f3a"
    sent = bytes(relay.sent)
    assert len(sent) > 200
    assert "marker-7f3a".encode("utf-16-le") not in sent
    assert "sys.databases".encode("utf-16-le") not in sent


def test_relay_sees_plain_text_without_encryption(relay):
    """Control for the test above: without encryption the query is visible on the wire."""
    with odbc_via_relay(relay, "Encryption=off;") as cn:
        assert cn.cursor().execute(MARKER).fetchone()[0] == "marker-7f3a"
    assert "marker-7f3a".encode("utf-16-le") in bytes(relay.sent)


def test_dm_exec_connections_reports_encryption(inst):
    """sys.dm_exec_connections.encrypt_option: 'Boolean value to describe whether encryption is
    enabled for this connection' (TRUE/FALSE)."""
    with inst.connect(extra="Encryption=require;") as cn:
        assert cn.cursor().execute(ENCRYPT_QUERY).fetchone()[0] == "TRUE"
    with inst.connect(extra="Encryption=off;") as cn:
        assert cn.cursor().execute(ENCRYPT_QUERY).fetchone()[0] == "FALSE"


def test_pyodbc_wrong_password_gives_18456(inst):
    with pytest.raises(pyodbc.Error) as ei:
        inst.connect(password="Wrong-Passw0rd!")
    assert odbc_error(ei.value) == ("42000", LOGIN_FAILED.format("sa"), 18456, "SQLDriverConnect")
    # an unknown login gets the very same answer (no hint which part was wrong)
    with pytest.raises(pyodbc.Error) as ei:
        inst.connect(user="nobody_here", password=SA_PASSWORD)
    assert odbc_error(ei.value) == ("42000", LOGIN_FAILED.format("nobody_here"), 18456, "SQLDriverConnect")
    # and the instance keeps serving
    with inst.connect() as cn:
        assert cn.cursor().execute("SELECT 1").fetchone()[0] == 1


def test_pyodbc_wrong_password_with_encryption_required(inst):
    with pytest.raises(pyodbc.Error) as ei:
        inst.connect(password="Wrong-Passw0rd!", extra="Encryption=require;")
    assert odbc_error(ei.value)[1:3] == (LOGIN_FAILED.format("sa"), 18456)


# ---- python-tds --------------------------------------------------------------------------------

def pytds_connect(inst, password=SA_PASSWORD, **kw):
    return pytds.connect(dsn=inst.host, port=inst.port, user="sa", password=password,
                         database="master", autocommit=True, login_timeout=10, **kw)


def test_pytds_login_and_catalog_query(inst):
    with pytds_connect(inst) as cn:
        with cn.cursor() as cur:
            cur.execute(CATALOG_QUERY)
            assert [tuple(r) for r in cur.fetchall()] == SYSTEM_DATABASES
            cur.execute("SELECT name FROM sys.endpoints WHERE endpoint_id = %s", (4,))
            assert cur.fetchall() == [("TSQL Default TCP",)]


def test_pytds_with_tls_against_the_instance_certificate(inst, relay):
    """pytds encrypts when given cafile; the lab's TLS certificate is <home>/tls-cert.pem
    (its name is the instance name, not the address, so host name validation is off)."""
    cafile = str(inst.instance.home / "tls-cert.pem")
    with pytds.connect(dsn="127.0.0.1", port=relay.port, user="sa", password=SA_PASSWORD,
                       database="master", autocommit=True, login_timeout=10, cafile=cafile,
                       validate_host=False) as cn:
        with cn.cursor() as cur:
            cur.execute(CATALOG_QUERY)
            assert [tuple(r) for r in cur.fetchall()] == SYSTEM_DATABASES
            cur.execute(MARKER)
            assert cur.fetchall() == [("marker-7f3a",)]
    assert "marker-7f3a".encode("utf-16-le") not in bytes(relay.sent)


def test_pytds_rejects_a_certificate_it_does_not_trust(inst, tmp_path):
    """Verification is real: another instance's certificate is not accepted as the CA."""
    from mirrorkit_lab.crypto import generate_tls_identity
    other = tmp_path / "other.pem"
    other.write_bytes(generate_tls_identity("SOMEONE_ELSE")[0])
    with pytest.raises(Exception) as ei:
        pytds_connect(inst, cafile=str(other), validate_host=False)
    assert "certificate" in str(ei.value).lower() or "ssl" in type(ei.value).__module__.lower() \
        or "verify" in str(ei.value).lower()


def test_pytds_wrong_password_gives_18456(inst):
    with pytest.raises(pytds.Error) as ei:
        pytds_connect(inst, password="Wrong-Passw0rd!")
    assert ei.value.msg_no == 18456
    assert str(ei.value.args[0]) == LOGIN_FAILED.format("sa")


# ---- pymssql -----------------------------------------------------------------------------------

def test_pymssql_login_and_catalog_query(inst):
    with pymssql.connect(server=inst.host, port=str(inst.port), user="sa", password=SA_PASSWORD,
                         database="master", login_timeout=10) as cn:
        cur = cn.cursor()
        cur.execute(CATALOG_QUERY)
        assert [tuple(r) for r in cur.fetchall()] == SYSTEM_DATABASES
        cur.execute("SELECT name FROM sys.endpoints WHERE endpoint_id = %d", (4,))
        assert cur.fetchall() == [("TSQL Default TCP",)]


def test_pymssql_wrong_password_gives_18456(inst):
    with pytest.raises(pymssql.OperationalError) as ei:
        pymssql.connect(server=inst.host, port=str(inst.port), user="sa", password="Wrong-Passw0rd!",
                        database="master", login_timeout=10)
    number, text = ei.value.args[0]
    assert number == 18456
    assert text.decode().startswith(LOGIN_FAILED.format("sa"))


# ---- FreeTDS tsql ------------------------------------------------------------------------------

needs_tsql = pytest.mark.skipif(shutil.which("tsql") is None, reason="freetds-bin (tsql) not installed")


def run_tsql(inst, password: str, script: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TDSVER="7.4")
    return subprocess.run(["tsql", "-H", inst.host, "-p", str(inst.port), "-U", "sa", "-P", password],
                          input=script, capture_output=True, text=True, timeout=30, env=env)


@needs_tsql
def test_tsql_login_and_catalog_query(inst):
    out = run_tsql(inst, SA_PASSWORD, f"{CATALOG_QUERY}\ngo\nexit\n")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [ln.strip() for ln in out.stdout.splitlines()]
    for (db,) in SYSTEM_DATABASES:
        assert db in lines, out.stdout
    assert "(4 rows affected)" in out.stdout


@needs_tsql
def test_tsql_wrong_password_gives_18456(inst):
    out = run_tsql(inst, "Wrong-Passw0rd!", "SELECT 1\ngo\nexit\n")
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "Msg 18456" in text
    assert LOGIN_FAILED.format("sa") in text


def client_packet_types(data: bytes) -> list[int]:
    """TDS packet types in a clear-text client byte stream (8-byte headers, big-endian length)."""
    types, pos = [], 0
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 8:
            break
        types.append(data[pos])
        pos += length
    return types


def test_reading_a_result_to_its_end_needs_no_attention(relay):
    """MS-TDS: a SELECT ends with one DONE; the final DONE of a reply has no DONE_MORE. Once
    fetchall() has read the rows, FreeTDS has nothing left to cancel, so the next query goes out
    as a plain SQL batch (0x01) without an ATTENTION (0x06) first. (An extra DONE after the rows
    makes FreeTDS cancel every query: two round trips instead of one.)"""
    with odbc_via_relay(relay, "Encryption=off;") as cn:
        cur = cn.cursor()
        cur.execute("SELECT 1").fetchall()
        start = len(relay.sent)
        for _ in range(10):
            rows = cur.execute("SELECT name, state_desc FROM sys.endpoints WHERE endpoint_id = 4").fetchall()
            assert [tuple(r) for r in rows] == [("TSQL Default TCP", "STARTED")]
        cur.execute("SELECT 2").fetchall()
        sent = bytes(relay.sent[start:])
    types = client_packet_types(sent)
    assert types.count(0x01) == 11, types
    assert 0x06 not in types, types
