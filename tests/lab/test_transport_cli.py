"""Acceptance: `mirrorkit lab probe A B` exits 0 when A's endpoint connects to B's and 1 when
it does not. The lab runs as real instance processes (`mirrorkit lab up` on a parameter file),
set up through pyodbc per spec §1.1/§1.2, with the .cer files carried by `mirrorkit lab cp`."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pyodbc
import pytest

from mirrorkit_lab import supervisor
from mirrorkit_lab.probe import endpoint_url, probe_cli
from mirroring_setup import ENDPOINT, PEER_PASSWORD, cert_file, cert_name, login_name, user_name

ROOT = Path(__file__).resolve().parents[2]
# unusual loopback addresses, different for concurrent runs, away from parameters/lab.yaml's 127.0.0.x
# and from tests/conftest.py's 127.<run>.<n // 250 + 1>.<n % 250 + 1> (third octet 200+ is never reached)
_OCTET = 200 + os.getpid() % 50
HOSTS = {"PA": f"127.77.{_OCTET}.11", "PB": f"127.77.{_OCTET}.12"}
DBM_PORT = 5022


class Remote:
    def __init__(self, state_dir: Path, name: str, host: str):
        self.state_dir, self.name, self.host = state_dir, name, host

    def sql(self, statement: str, *params):
        pw = supervisor.sa_password(self.state_dir).replace("}", "}}")
        cs = (f"DRIVER={{FreeTDS}};SERVER={self.host};PORT=1433;UID=sa;PWD={{{pw}}};DATABASE=master;"
              "TDS_Version=7.4;")
        with pyodbc.connect(cs, autocommit=True, timeout=10) as cn:
            cur = cn.cursor()
            cur.execute(statement, *params)
            try:
                return cur.fetchall()
            except pyodbc.Error:
                return []


@pytest.fixture
def running_lab(tmp_path):
    params = tmp_path / "lab.yaml"
    params.write_text(
        "environment: lab\ntopology: mirroring\ninstances:\n"
        + "".join(f"  - name: {n}\n    server: {h},1433\n    role: partner\n" for n, h in HOSTS.items()),
        encoding="utf-8")
    state = tmp_path / "state"
    out = io.StringIO()
    try:
        supervisor.up(params, state, out=out)
        yield state
    finally:
        supervisor.down(state, out=io.StringIO())


def _setup(state: Path) -> dict[str, Remote]:
    r = {n: Remote(state, n, h) for n, h in HOSTS.items()}
    for n, h in r.items():
        h.sql(f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<{n}_Strong_Password#1>'")
        h.sql(f"CREATE CERTIFICATE {cert_name(n)} WITH SUBJECT = '{n} certificate for database mirroring'")
        h.sql(f"CREATE ENDPOINT {ENDPOINT} STATE = STARTED AS TCP (LISTENER_PORT = {DBM_PORT}, LISTENER_IP = ALL) "
              f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {cert_name(n)}, "
              "ENCRYPTION = REQUIRED ALGORITHM AES, ROLE = ALL)")
        h.sql(f"BACKUP CERTIFICATE {cert_name(n)} TO FILE = '{cert_file(n)}'")
    for me, peer in (("PA", "PB"), ("PB", "PA")):
        supervisor.copy(state, f"{peer}:{cert_file(peer)}", f"{me}:{cert_file(peer)}", out=io.StringIO())
        h = r[me]
        h.sql(f"CREATE LOGIN {login_name(peer)} WITH PASSWORD = '{PEER_PASSWORD}'")
        h.sql(f"CREATE USER {user_name(peer)} FOR LOGIN {login_name(peer)}")
        h.sql(f"CREATE CERTIFICATE {cert_name(peer)} AUTHORIZATION {user_name(peer)} FROM FILE = '{cert_file(peer)}'")
        h.sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(peer)}")
    return r


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirrorkit", "lab", "probe", *args, "--state-dir", str(state)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_probe_cli_exit_codes(running_lab):
    state = running_lab
    r = _setup(state)
    assert endpoint_url(state, "PB") == f"TCP://{HOSTS['PB']}:{DBM_PORT}"

    out = io.StringIO()
    assert probe_cli(state, "PA", "PB", out=out) == 0, out.getvalue()
    assert "OK" in out.getvalue()
    out = io.StringIO()
    assert probe_cli(state, "PB", "PA", out=out) == 0, out.getvalue()
    out = io.StringIO()
    assert probe_cli(state, "PA", "PB", role="WITNESS", out=out) == 0, out.getvalue()

    r["PB"].sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM {login_name('PA')}")
    out = io.StringIO()
    assert probe_cli(state, "PA", "PB", out=out) == 1, out.getvalue()
    assert "FAILED (28034)" in out.getvalue()
    # the other direction is unaffected
    assert probe_cli(state, "PB", "PA", out=io.StringIO()) == 0

    # the same through the command line
    done = _cli(state, "PA", "PB")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "28034" in done.stdout
    r["PB"].sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name('PA')}")
    done = _cli(state, "PA", "PB")
    assert done.returncode == 0, (done.stdout, done.stderr)

    # a stopped endpoint: nothing listens
    r["PB"].sql(f"ALTER ENDPOINT {ENDPOINT} STATE = STOPPED")
    done = _cli(state, "PA", "PB")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "1418" in done.stdout
    # an endpoint serving partners only, probed as a witness
    r["PB"].sql(f"ALTER ENDPOINT {ENDPOINT} STATE = STARTED")
    r["PB"].sql(f"ALTER ENDPOINT {ENDPOINT} FOR DATABASE_MIRRORING (ROLE = PARTNER)")
    assert _cli(state, "PA", "PB").returncode == 0
    done = _cli(state, "PA", "PB", "--role", "WITNESS")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "28027" in done.stdout
