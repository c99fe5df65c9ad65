"""The acceptance rehearsal of issue #11 with real instance processes (`mirrorkit lab up`):
a steady stream of committed inserts on the principal; `mirrorkit lab kill` of the principal
fails the session over to the mirror within TIMEOUT plus a few seconds, no committed row is
missing on the new principal, and the old principal comes back (`lab up`) as mirror and
reaches SYNCHRONIZED again. Clients are pyodbc + FreeTDS; certificates travel with `lab cp`."""
from __future__ import annotations

import os
import signal
import time

import pyodbc
import pytest

from mirrorkit_lab import supervisor
from tests.lab.test_lab_rehearse import SA, cli, connect, cs, ok
from tests.lab.workload import Workload

PORT = 5022
_OCTET = 150 + os.getpid() % 40
DB = "Orders"
NAMES = ("P", "M", "W")


def sql(host: str, statement: str, *params):
    with connect(host) as cn:
        cur = cn.cursor()
        cur.execute(statement, *params)
        try:
            return [tuple(r) for r in cur.fetchall()]
        except pyodbc.ProgrammingError:
            return []


def endpoint_url(host: str) -> str:
    return f"TCP://{host}:{PORT}"


@pytest.fixture
def lab3(tmp_path):
    hosts = {}
    for i, name in enumerate(NAMES):
        last = 41 + i * 3
        host = f"127.79.{_OCTET}.{last}"
        while supervisor.accepts(host, 1433):
            last += 1
            host = f"127.79.{_OCTET}.{last}"
        hosts[name] = host
    params = tmp_path / "lab.yaml"
    params.write_text("instances:\n" + "".join(f"  - name: {n}\n    server: {h},1433\n" for n, h in hosts.items()),
                      encoding="utf-8")
    state = tmp_path / "state"
    ok(cli(state, "up", str(params)))
    try:
        yield state, params, hosts
    finally:
        cli(state, "down")
        for rec in supervisor.read_state(state):
            if rec.pid and supervisor.pid_alive(rec.pid, state):
                os.kill(rec.pid, signal.SIGCONT)
                os.kill(rec.pid, signal.SIGKILL)


def certificate_trust(state, hosts) -> None:
    """Outbound on every instance, inbound on each for the other two (reference spec §1.1, §1.2)."""
    for name, host in hosts.items():
        role = "WITNESS" if name == "W" else "PARTNER"
        for s in (f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<{name}_Strong_Password#1>'",
                  f"CREATE CERTIFICATE {name}_cert WITH SUBJECT = '{name} certificate for database mirroring'",
                  f"CREATE ENDPOINT Endpoint_Mirroring STATE = STARTED AS TCP (LISTENER_PORT = {PORT}, "
                  f"LISTENER_IP = ALL) FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {name}_cert, "
                  f"ENCRYPTION = REQUIRED ALGORITHM AES, ROLE = {role})",
                  f"BACKUP CERTIFICATE {name}_cert TO FILE = 'C:\\{name}_cert.cer'"):
            sql(host, s)
    for receiver, host in hosts.items():
        for peer in hosts:
            if peer == receiver:
                continue
            ok(cli(state, "cp", f"{peer}:C:\\{peer}_cert.cer", f"{receiver}:C:\\{peer}_cert.cer"))
            for s in (f"CREATE LOGIN {peer}_login WITH PASSWORD = 'AStrongPassword!@#'",
                      f"CREATE USER {peer}_user FOR LOGIN {peer}_login",
                      f"CREATE CERTIFICATE {peer}_cert AUTHORIZATION {peer}_user FROM FILE = 'C:\\{peer}_cert.cer'",
                      f"GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO {peer}_login"):
                sql(host, s)


def state_of(host: str):
    try:
        rows = sql(host, "SELECT mirroring_role_desc, mirroring_state_desc, mirroring_witness_state_desc "
                         "FROM sys.database_mirroring WHERE database_id = DB_ID(?)", DB)
    except pyodbc.Error:
        return None
    return rows[0] if rows else None


def wait_for(host: str, want: tuple, timeout: float) -> float:
    start = time.monotonic()
    seen = None
    while time.monotonic() - start < timeout:
        seen = state_of(host)
        if seen is not None and all(w is None or s == w for s, w in zip(seen, want)):
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"{host}: wanted {want}, last saw {seen}")


def test_kill_the_principal_under_load_fails_over_without_losing_a_committed_row(lab3):
    state, params, hosts = lab3
    p, m, w = hosts["P"], hosts["M"], hosts["W"]
    certificate_trust(state, hosts)
    sql(p, f"CREATE DATABASE {DB}")
    with connect(p) as cn:
        cn.cursor().execute(f"USE {DB}; CREATE TABLE dbo.ticks (v INT NOT NULL PRIMARY KEY)")
    sql(p, f"BACKUP DATABASE {DB} TO DISK = 'C:\\{DB}.bak' WITH FORMAT")
    sql(p, f"BACKUP LOG {DB} TO DISK = 'C:\\{DB}_log.bak'")
    for f in (f"C:\\{DB}.bak", f"C:\\{DB}_log.bak"):
        ok(cli(state, "cp", f"P:{f}", f"M:{f}"))
    sql(m, f"RESTORE DATABASE {DB} FROM DISK = 'C:\\{DB}.bak' WITH NORECOVERY")
    sql(m, f"RESTORE LOG {DB} FROM DISK = 'C:\\{DB}_log.bak' WITH NORECOVERY")
    sql(m, f"ALTER DATABASE {DB} SET PARTNER = '{endpoint_url(p)}'")
    sql(p, f"ALTER DATABASE {DB} SET PARTNER = '{endpoint_url(m)}'")
    wait_for(p, ("PRINCIPAL", "SYNCHRONIZED", None), 30)
    sql(p, f"ALTER DATABASE {DB} SET WITNESS = '{endpoint_url(w)}'")
    wait_for(m, ("MIRROR", "SYNCHRONIZED", "CONNECTED"), 30)

    def connect_to(host):
        return pyodbc.connect(cs(host), autocommit=False, timeout=3)
    load = Workload(connect_to, [p, m], "INSERT INTO dbo.ticks (v) VALUES (?)", database=DB).start()
    try:
        assert load.wait_for(200, timeout=60), load.errors[-3:]
        ok(cli(state, "kill", "P"))
        killed = time.monotonic()
        failover = wait_for(m, ("PRINCIPAL", None, None), 40)
        assert failover <= 10 + 8, f"failover took {failover:.1f} s after the kill (TIMEOUT 10)"
        before = len(load.commits)
        deadline = time.monotonic() + 30
        while len(load.commits) < before + 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(load.commits) >= before + 100, "the workload resumes on the new principal"
    finally:
        load.stop()
    committed = set(load.committed_values())
    on_new_principal = {r[0] for r in sql(m, f"SELECT v FROM {DB}.dbo.ticks")}
    assert committed <= on_new_principal, sorted(committed - on_new_principal)[:10]
    assert on_new_principal - committed <= set(load.in_doubt)
    ok(cli(state, "up", str(params)))                   # the old principal returns
    wait_for(p, ("MIRROR", "SYNCHRONIZED", "CONNECTED"), 60)
    wait_for(m, ("PRINCIPAL", "SYNCHRONIZED", "CONNECTED"), 30)
    print(f"failover {failover:.1f} s after kill; {len(committed)} committed rows, all present")
