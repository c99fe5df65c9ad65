"""Acceptance (lab part 1): state survives a restart, and a killed instance process too.

* In-process: stop an instance and start it again on the same state directory and address; the
  catalog is identical and the certificates stay usable (BACKUP ... WITH PRIVATE KEY works).
* Processes: `mirrorkit lab up` starts the instances in the background; one is SIGKILLed while a
  client is creating logins; `mirrorkit lab up` brings it back with every acknowledged change
  and a usable certificate. `mirrorkit lab cp` copies the certificate between the instances.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyodbc
import pytest

from mirrorkit_lab import supervisor
try:
    from tests.conftest import SA_PASSWORD, odbc_string
except ImportError:       # bare `pytest`: the project root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.conftest import SA_PASSWORD, odbc_string

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CATALOG = [
    "SELECT * FROM sys.certificates",
    "SELECT * FROM sys.database_mirroring_endpoints",
    "SELECT * FROM sys.tcp_endpoints",
    "SELECT * FROM sys.endpoints",
    "SELECT name, principal_id, sid, type, is_disabled, default_database_name FROM sys.server_principals",
    "SELECT * FROM sys.sql_logins",
    "SELECT * FROM sys.database_principals",
    "SELECT * FROM sys.server_permissions",
    "SELECT * FROM sys.symmetric_keys",
    "SELECT * FROM sys.key_encryptions",
    "SELECT name, database_id, is_master_key_encrypted_by_server FROM sys.databases",
    "SELECT CERTENCODED(certificate_id) FROM sys.certificates",
]


def snapshot(cn) -> dict:
    cur = cn.cursor()
    out = {}
    for q in CATALOG:
        cur.execute(q)
        out[q] = sorted(tuple(repr(v) for v in r) for r in cur.fetchall())
    return out


SETUP_A = [
    "CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-A'",
    "CREATE CERTIFICATE HOST_A_cert WITH SUBJECT = 'HOST_A certificate for database mirroring'",
    "CREATE ENDPOINT Endpoint_Mirroring STATE = STARTED AS TCP (LISTENER_PORT = 7024, LISTENER_IP = ALL) "
    "FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE HOST_A_cert, ENCRYPTION = REQUIRED ALGORITHM AES, "
    "ROLE = ALL)",
    "CREATE LOGIN HOST_B_login WITH PASSWORD = '1Sample_Strong_Password!@#'",
    "CREATE USER HOST_B_user FOR LOGIN HOST_B_login",
    "GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO HOST_B_login",
    "CREATE LOGIN app_login WITH PASSWORD = 'App!Passw0rd-1'",
    "ALTER LOGIN app_login DISABLE",
    "CREATE LOGIN ops_login WITH PASSWORD = 'Ops!Passw0rd-1'",
    "DENY CONNECT ON ENDPOINT::Endpoint_Mirroring TO ops_login",
    r"BACKUP CERTIFICATE HOST_A_cert TO FILE = 'C:\HOST_A_cert.cer'",
]


def test_catalog_and_keys_survive_restart(lab):
    l = lab("HOST_A", "HOST_B")
    a = l["HOST_A"]
    with a.connect() as cn:
        for s in SETUP_A:
            cn.cursor().execute(s)
    # a peer certificate, owned by the peer user, from B
    b_cur = l["HOST_B"].connect().cursor()
    b_cur.execute("CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-B'")
    b_cur.execute("CREATE CERTIFICATE HOST_B_cert WITH SUBJECT = 'HOST_B certificate for database mirroring'")
    der = b_cur.execute("SELECT CERTENCODED(CERT_ID('HOST_B_cert'))").fetchone()[0]
    cn = a.connect()
    cn.cursor().execute("CREATE CERTIFICATE HOST_B_cert AUTHORIZATION HOST_B_user FROM BINARY = 0x" + bytes(der).hex())
    before = snapshot(cn)
    thumb_a = cn.cursor().execute("SELECT thumbprint FROM sys.certificates WHERE name = 'HOST_A_cert'").fetchone()[0]
    cn.close()

    a = l.restart("HOST_A")
    assert (a.host, a.port) == (l["HOST_A"].host, 1433)
    cn = a.connect()
    assert snapshot(cn) == before
    cur = cn.cursor()
    # the certificate's private key is still usable (DMK still opened by the service master key)
    cur.execute(r"BACKUP CERTIFICATE HOST_A_cert TO FILE = 'C:\after_restart.cer' WITH PRIVATE KEY "
                r"(FILE = 'C:\after_restart.pvk', ENCRYPTION BY PASSWORD = 'Pvk!Passw0rd-1')")
    assert a.instance.fs.read_bytes(r"C:\after_restart.cer") == a.instance.fs.read_bytes(r"C:\HOST_A_cert.cer")
    cur.execute("CREATE CERTIFICATE after_restart WITH SUBJECT = 'made after the restart'")
    cur.execute("OPEN MASTER KEY DECRYPTION BY PASSWORD = 'Dmk!Passw0rd-A'")
    cur.execute("CLOSE MASTER KEY")
    # the files written before the restart are still there (15240 when writing again)
    with pytest.raises(pyodbc.Error) as ei:
        cur.execute(r"BACKUP CERTIFICATE HOST_A_cert TO FILE = 'C:\HOST_A_cert.cer'")
    assert "(15240)" in ei.value.args[1]
    cn.close()
    # logins kept their passwords and states
    with a.connect(user="HOST_B_login", password="1Sample_Strong_Password!@#") as c2:
        assert c2.cursor().execute("SELECT SUSER_NAME()").fetchone()[0] == "HOST_B_login"
    with pytest.raises(pyodbc.Error):
        a.connect(user="app_login", password="App!Passw0rd-1")      # still disabled
    # the exported private key imports on B with the same thumbprint
    for f in (r"C:\after_restart.cer", r"C:\after_restart.pvk"):
        l["HOST_B"].instance.fs.copy(a.instance.fs, f, f)
    b_cur.execute(r"CREATE CERTIFICATE HOST_A_cert FROM FILE = 'C:\after_restart.cer' WITH PRIVATE KEY "
                  r"(FILE = 'C:\after_restart.pvk', DECRYPTION BY PASSWORD = 'Pvk!Passw0rd-1')")
    q = "SELECT thumbprint, pvt_key_encryption_type FROM sys.certificates WHERE name = 'HOST_A_cert'"
    assert tuple(b_cur.execute(q).fetchone()) == (thumb_a, "MK")


def test_restart_twice_and_repeat_idempotent_checks(lab):
    """Ids stay stable over restarts; new objects get new ids (no reuse of the certificate_id)."""
    l = lab("HOST_A")
    with l["HOST_A"].connect() as cn:
        cur = cn.cursor()
        cur.execute("CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-A'")
        cur.execute("CREATE CERTIFICATE c1 WITH SUBJECT = 'one'")
        first = cur.execute("SELECT CERT_ID('c1')").fetchone()[0]
    for _ in range(2):
        l.restart("HOST_A")
    with l["HOST_A"].connect() as cn:
        cur = cn.cursor()
        assert cur.execute("SELECT CERT_ID('c1')").fetchone()[0] == first
        cur.execute("CREATE CERTIFICATE c2 WITH SUBJECT = 'two'")
        assert cur.execute("SELECT CERT_ID('c2')").fetchone()[0] not in (None, first)


# ---- processes: mirrorkit lab up / SIGKILL / up again -------------------------------------------

def free_loopback() -> str:
    """A loopback address nobody serves (outside the range the lab fixture hands out)."""
    for _ in range(100):
        host = f"127.{random.randint(230, 254)}.{random.randint(0, 254)}.{random.randint(2, 254)}"
        if not supervisor.accepts(host, 1433):
            return host
    raise RuntimeError("no free loopback address")


def cli(*args: str, state: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, MIRRORKIT_LAB_SA_PASSWORD=SA_PASSWORD, PYTHONPATH=str(PROJECT_ROOT))
    out = subprocess.run([sys.executable, "-m", "mirrorkit", "lab", *args, "--state-dir", str(state)],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=90)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def connect(host: str, **kw):
    return pyodbc.connect(odbc_string(host, 1433, "sa", SA_PASSWORD), autocommit=True, timeout=10, **kw)


@pytest.fixture
def process_lab(tmp_path):
    state = tmp_path / "state"
    hosts = {"HOST_A": free_loopback()}
    hosts["HOST_B"] = free_loopback()
    while hosts["HOST_B"] == hosts["HOST_A"]:
        hosts["HOST_B"] = free_loopback()
    params = tmp_path / "lab.yaml"
    params.write_text("instances:\n" + "".join(
        f"  - name: {n}\n    server: {h},1433\n" for n, h in hosts.items()), encoding="utf-8")
    cli("up", str(params), state=state)
    try:
        yield state, params, hosts
    finally:
        cli("down", state=state, check=False)
        # nothing of ours may survive the test
        for rec in supervisor.read_state(state):
            if rec.pid and supervisor.pid_alive(rec.pid, state):
                os.kill(rec.pid, signal.SIGKILL)


def pid_of(state: Path, name: str) -> int:
    rec = {r.name: r for r in supervisor.read_state(state)}[name]
    assert rec.pid and supervisor.pid_alive(rec.pid, state)
    return rec.pid


def test_lab_up_sigkill_mid_way_and_up_again(process_lab):
    state, params, hosts = process_lab
    a_host, b_host = hosts["HOST_A"], hosts["HOST_B"]
    # outbound on both, then the certificate file goes from A to B with `mirrorkit lab cp`
    for name, host in hosts.items():
        with connect(host) as cn:
            cur = cn.cursor()
            cur.execute(f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-{name[-1]}'")
            cur.execute(f"CREATE CERTIFICATE {name}_cert WITH SUBJECT = '{name} certificate'")
            cur.execute(f"CREATE ENDPOINT Endpoint_Mirroring STATE = STARTED AS TCP (LISTENER_PORT = 7024) "
                        f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {name}_cert, "
                        f"ENCRYPTION = REQUIRED ALGORITHM AES, ROLE = ALL)")
            cur.execute(f"BACKUP CERTIFICATE {name}_cert TO FILE = 'C:\\{name}_cert.cer'")
    out = cli("cp", r"HOST_A:C:\HOST_A_cert.cer", r"HOST_B:C:\certs\HOST_A_cert.cer", state=state)
    assert "copied" in out.stdout
    cn_b = connect(b_host)
    cur = cn_b.cursor()
    cur.execute("CREATE LOGIN HOST_A_login WITH PASSWORD = 'AStrongPassword!@#'")
    cur.execute("CREATE USER HOST_A_user FOR LOGIN HOST_A_login")
    cur.execute(r"CREATE CERTIFICATE HOST_A_cert AUTHORIZATION HOST_A_user FROM FILE = 'C:\certs\HOST_A_cert.cer'")
    cur.execute("GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO HOST_A_login")
    thumb_q = "SELECT thumbprint FROM sys.certificates WHERE name = 'HOST_A_cert'"
    with connect(a_host) as cn_a:
        assert cn_a.cursor().execute(thumb_q).fetchall() == cur.execute(thumb_q).fetchall()
    cn_b.close()
    with connect(b_host) as cn:
        before = snapshot(cn)

    # a client keeps changing B; B is SIGKILLed in the middle of it
    acknowledged: list[str] = []
    failure: list[BaseException] = []
    stop = threading.Event()

    def writer():
        try:
            with connect(b_host) as cn:
                c = cn.cursor()
                for i in range(100000):
                    if stop.is_set():
                        return
                    c.execute(f"CREATE LOGIN kill_test_{i} WITH PASSWORD = 'Kill!Passw0rd-{i}'")
                    acknowledged.append(f"kill_test_{i}")
        except pyodbc.Error as e:       # the connection dies with the process
            failure.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 25 and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.01)
    assert len(acknowledged) >= 25, failure
    pid = pid_of(state, "HOST_B")
    os.kill(pid, signal.SIGKILL)
    t.join(15)
    stop.set()
    assert failure, "the writer should have lost its connection"
    while supervisor.pid_alive(pid, state):
        time.sleep(0.05)
    with pytest.raises(pyodbc.Error):
        connect(b_host).close()

    # up again: only B is started, A is left alone
    a_pid = pid_of(state, "HOST_A")
    out = cli("up", str(params), state=state)
    assert "already running" in out.stdout
    assert pid_of(state, "HOST_A") == a_pid
    assert pid_of(state, "HOST_B") != pid

    cn_b = connect(b_host)
    cur = cn_b.cursor()
    # every acknowledged change is there (at most the one in flight may be there too)
    logins = {r[0] for r in cur.execute("SELECT name FROM sys.server_principals "
                                        "WHERE name LIKE 'kill!_test!_%' ESCAPE '!'")}
    assert set(acknowledged) <= logins
    assert len(logins - set(acknowledged)) <= 1
    # an acknowledged login can log in with its password
    cn = pyodbc.connect(odbc_string(b_host, 1433, acknowledged[-1], f"Kill!Passw0rd-{len(acknowledged) - 1}"),
                        autocommit=True, timeout=10)
    assert cn.cursor().execute("SELECT SUSER_NAME()").fetchone()[0] == acknowledged[-1]
    cn.close()
    # the server ends that session when it reads the close, a moment later (15434 until then, as on SQL Server)
    deadline = time.monotonic() + 10
    while cur.execute("SELECT COUNT(*) FROM sys.dm_exec_sessions WHERE login_name = ?",
                      acknowledged[-1]).fetchone()[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    # apart from them, the catalog is what it was
    for name in logins:
        cur.execute(f"DROP LOGIN {name}")
    with connect(b_host) as cn:
        assert snapshot(cn) == before
    # and the certificates are usable
    cur.execute(r"BACKUP CERTIFICATE HOST_B_cert TO FILE = 'C:\after_kill.cer' WITH PRIVATE KEY "
                r"(FILE = 'C:\after_kill.pvk', ENCRYPTION BY PASSWORD = 'Pvk!Passw0rd-1')")
    assert cur.execute(thumb_q).fetchall()[0][0] is not None
    cn_b.close()
    # status sees both running
    out = cli("status", state=state)
    assert out.stdout.count("running") == 2, out.stdout


def test_lab_cp_refuses_to_overwrite_and_escape(process_lab):
    state, params, hosts = process_lab
    with connect(hosts["HOST_A"]) as cn:
        cur = cn.cursor()
        cur.execute("CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-A'")
        cur.execute("CREATE CERTIFICATE c WITH SUBJECT = 'c'")
        cur.execute(r"BACKUP CERTIFICATE c TO FILE = 'C:\c.cer'")
    cli("cp", r"HOST_A:C:\c.cer", r"HOST_B:C:\c.cer", state=state)
    again = cli("cp", r"HOST_A:C:\c.cer", r"HOST_B:C:\c.cer", state=state, check=False)
    assert again.returncode != 0 and again.stderr.strip()
    escape = cli("cp", r"HOST_A:C:\c.cer", r"HOST_B:C:\..\..\..\escaped.cer", state=state, check=False)
    assert escape.returncode != 0
    assert not list(state.rglob("escaped.cer")) and not list(state.parent.rglob("escaped.cer"))
    missing = cli("cp", r"HOST_A:C:\nope.cer", r"HOST_B:C:\nope.cer", state=state, check=False)
    assert missing.returncode != 0
