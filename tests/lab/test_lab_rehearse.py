"""Rehearsing failure (issue #11 item 8): `mirrorkit lab kill|freeze|thaw NAME`, `lab up` bringing
back what is down, and `lab status` showing process state and databases.

The lab runs as real instance processes started by the command line into a temporary state
directory; clients are pyodbc + FreeTDS.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyodbc
import pytest

from mirrorkit_lab import status as lab_status
from mirrorkit_lab import supervisor
from mirrorkit_lab.engine import store
from mirrorkit_lab.engine.errorlog import LOG_PATH
from mirrorkit_lab.fs import ServerFileSystem
from mirrorkit_lab.process import instance_home

ROOT = Path(__file__).resolve().parents[2]
SA = "Rehearse-Passw0rd!"
# away from tests/conftest.py (127.<20..219>.<small>.x), test_transport_cli (127.77.x) and the
# restart test (127.230+.x); differs between concurrent runs
_OCTET = 200 + os.getpid() % 50


def cs(host: str, user: str = "sa", password: str = SA) -> str:
    return (f"DRIVER={{FreeTDS}};SERVER={host};PORT=1433;UID={user};PWD={{{password}}};"
            "DATABASE=master;TDS_Version=7.4;")


def connect(host: str, timeout: int = 10, **kw):
    return pyodbc.connect(cs(host, **kw), autocommit=True, timeout=timeout)


def cli(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MIRRORKIT_LAB_SA_PASSWORD=SA, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "mirrorkit", "lab", *args, "--state-dir", str(state)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def refused(done: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 with one line on stderr that says what to do."""
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def status_json(state: Path) -> dict:
    done = cli(state, "status", "--json")
    assert done.returncode in (0, 3), done.stderr
    return {i["name"]: i for i in json.loads(done.stdout)["instances"]}


def record(state: Path, name: str) -> supervisor.Recorded:
    return {r.name: r for r in supervisor.read_state(state)}[name]


def shutdowns(state: Path, name: str) -> int:
    """How many clean shutdowns the instance's error log records."""
    log = ServerFileSystem(instance_home(state, name) / "fs").read_bytes(LOG_PATH).decode("utf-8", "replace")
    return log.count("SQL Server shutdown has been initiated")


def refuses_tcp(host: str) -> bool:
    try:
        socket.create_connection((host, 1433), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_until(cond, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def lab2(tmp_path):
    hosts = {}
    for name, last in (("HOST_A", 31), ("HOST_B", 32)):
        host = f"127.78.{_OCTET}.{last}"
        while supervisor.accepts(host, 1433):       # a leftover of an earlier run
            last += 2
            host = f"127.78.{_OCTET}.{last}"
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
        for rec in supervisor.read_state(state):     # nothing of ours may outlive the test
            if rec.pid and supervisor.pid_alive(rec.pid, state):
                os.kill(rec.pid, signal.SIGCONT)
                os.kill(rec.pid, signal.SIGKILL)


def test_kill_up_freeze_thaw(lab2):
    state, params, hosts = lab2
    a, b = hosts["HOST_A"], hosts["HOST_B"]
    with connect(a) as cn:
        cn.cursor().execute("CREATE LOGIN rehearse_kept WITH PASSWORD = 'Kept!Passw0rd-1'")
    st = status_json(state)
    assert {n: i["state"] for n, i in st.items()} == {"HOST_A": "running", "HOST_B": "running"}
    assert [(d["name"], d["state"], d["role"]) for d in st["HOST_A"]["databases"] if d["system"]][:1] == \
        [("master", "ONLINE", None)]

    # kill: the process ends at once, its port refuses, status says killed
    pid_a, pid_b = record(state, "HOST_A").pid, record(state, "HOST_B").pid
    out = ok(cli(state, "kill", "host_a"))       # names match as SQL Server's do, case aside
    assert "HOST_A: killed" in out
    assert not supervisor.pid_alive(pid_a, state)
    assert refuses_tcp(a)
    with pytest.raises(pyodbc.Error):
        connect(a, timeout=3).close()
    assert shutdowns(state, "HOST_A") == 0          # a crash: no shutdown of its own
    done = cli(state, "status")
    assert done.returncode == 3
    line_a = next(l for l in done.stdout.splitlines() if l.startswith("HOST_A"))
    assert "killed" in line_a.split() and str(pid_a) not in line_a
    st = status_json(state)
    assert (st["HOST_A"]["state"], st["HOST_A"]["pid"]) == ("killed", None)
    assert (st["HOST_B"]["state"], st["HOST_B"]["pid"]) == ("running", pid_b)
    assert any(d["name"] == "master" for d in st["HOST_A"]["databases"])   # read from the file, not the process

    # what cannot be done, in one line that says what to do instead
    refused(cli(state, "kill", "HOST_A"), "already killed", "mirrorkit lab up")
    refused(cli(state, "freeze", "HOST_A"), "already killed", "mirrorkit lab up")
    refused(cli(state, "kill", "NOPE"), "'NOPE'", "HOST_A, HOST_B")
    refused(cli(state, "thaw", "HOST_B"), "not frozen", "mirrorkit lab freeze HOST_B")

    # up: brings A back, leaves B alone; nothing committed before the kill is lost
    out = ok(cli(state, "up", str(params)))
    assert "HOST_B: already running" in out and "HOST_A: up at" in out
    assert record(state, "HOST_B").pid == pid_b
    assert record(state, "HOST_A").pid not in (None, pid_a)
    with connect(a, user="rehearse_kept", password="Kept!Passw0rd-1") as cn:
        assert cn.cursor().execute("SELECT SUSER_NAME()").fetchone()[0] == "rehearse_kept"
    assert ok(cli(state, "status")).count("running") == 2
    with connect(a) as cn:        # the query status asks a running instance is one the lab answers
        assert cn.cursor().execute(lab_status.LIVE_MIRRORING_QUERY).fetchall() == []
    ok(cli(state, "up", str(params)))            # and again: nothing to do
    assert record(state, "HOST_B").pid == pid_b

    # freeze: a hung host; connecting times out, the other instance answers
    pid_a = record(state, "HOST_A").pid
    ok(cli(state, "freeze", "HOST_A"))
    assert status_json(state)["HOST_A"]["state"] == "frozen"
    refused(cli(state, "freeze", "HOST_A"), "already frozen", "mirrorkit lab thaw HOST_A")
    started = time.monotonic()
    with pytest.raises(pyodbc.Error):
        connect(a, timeout=2).close()
    assert time.monotonic() - started >= 1.5       # it waited for the login timeout: no refusal
    with connect(b) as cn:
        assert cn.cursor().execute("SELECT 1").fetchone()[0] == 1
    out = ok(cli(state, "up", str(params)))       # up leaves a frozen instance as it is
    assert "HOST_A: frozen" in out and record(state, "HOST_A").pid == pid_a
    assert supervisor.pid_stopped(pid_a)

    # thaw: it answers again, the same process
    ok(cli(state, "thaw", "HOST_A"))
    with connect(a) as cn:
        assert cn.cursor().execute("SELECT COUNT(*) FROM sys.server_principals "
                                   "WHERE name = 'rehearse_kept'").fetchone()[0] == 1
    assert record(state, "HOST_A").pid == pid_a
    assert status_json(state)["HOST_A"]["state"] == "running"

    # frozen, then killed: up brings it back too
    ok(cli(state, "freeze", "HOST_A"))
    ok(cli(state, "kill", "HOST_A"))
    assert refuses_tcp(a) and status_json(state)["HOST_A"]["state"] == "killed"
    ok(cli(state, "up", str(params)))
    with connect(a, user="rehearse_kept", password="Kept!Passw0rd-1") as cn:
        assert cn.cursor().execute("SELECT 1").fetchone()[0] == 1

    # down ends a frozen instance too, and status then says down
    ok(cli(state, "freeze", "HOST_B"))
    started = time.monotonic()
    ok(cli(state, "down"))
    assert not supervisor.pid_alive(pid_b, state)
    assert shutdowns(state, "HOST_B") == 1 and time.monotonic() - started < 8   # thawed to shut down
    assert {i["state"] for i in status_json(state).values()} == {"down"}


def test_kill_during_a_stream_of_create_login(lab2):
    state, params, hosts = lab2
    b = hosts["HOST_B"]
    acknowledged: list[str] = []
    failure: list[BaseException] = []

    def writer():
        try:
            with connect(b) as cn:
                cur = cn.cursor()
                for i in range(100000):
                    cur.execute(f"CREATE LOGIN stream_{i} WITH PASSWORD = 'Stream!Passw0rd-{i}'")
                    acknowledged.append(f"stream_{i}")
        except pyodbc.Error as exc:
            failure.append(exc)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    wait_until(lambda: len(acknowledged) >= 20 or not t.is_alive(), what="20 logins")
    assert len(acknowledged) >= 20, failure
    ok(cli(state, "kill", "HOST_B"))
    t.join(20)
    assert not t.is_alive() and failure, "the writer must have lost its connection"
    assert refuses_tcp(b)
    ok(cli(state, "up", str(params)))
    with connect(b) as cn:
        logins = {r[0] for r in cn.cursor().execute(
            "SELECT name FROM sys.server_principals WHERE name LIKE 'stream!_%' ESCAPE '!'")}
    assert set(acknowledged) <= logins
    assert len(logins - set(acknowledged)) <= 1      # at most the one in flight at the kill
    last = acknowledged[-1]
    with connect(b, user=last, password=f"Stream!Passw0rd-{last.split('_')[1]}") as cn:
        assert cn.cursor().execute("SELECT SUSER_NAME()").fetchone()[0] == last


# ---- status reads any store, read-only, without processes ---------------------------------------

def _lab_with_store(tmp_path: Path, build) -> Path:
    state = tmp_path / "state"
    state.mkdir(parents=True)
    supervisor.write_state(state, [supervisor.Recorded("P", "127.0.0.1", 1, None, supervisor.KILLED),
                                   supervisor.Recorded("M", "127.0.0.2", 1, None)])
    for name in ("P", "M"):
        home = instance_home(state, name)
        home.mkdir(parents=True)
        build(name, home / "instance.db")
    return state


def _digest(state: Path) -> dict:
    return {p.relative_to(state): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(state.rglob("*")) if p.is_file()}


def test_status_databases_from_an_old_store(tmp_path):
    """A store from before user databases: no state column, no mirroring table → ONLINE, unmirrored."""
    def build(name, db):
        conn = sqlite3.connect(db)
        conn.executescript(
            "PRAGMA journal_mode=WAL;"
            "CREATE TABLE t_databases (database_id INTEGER PRIMARY KEY, name TEXT, owner_sid BLOB);"
            "CREATE TABLE t_endpoints (name TEXT, type INTEGER, state INTEGER, port INTEGER, ip_address TEXT);"
            "INSERT INTO t_databases VALUES (1, 'master', NULL), (2, 'tempdb', NULL), (5, 'Old', NULL);")
        if name == "P":
            conn.close()            # a clean close: no -wal file left
        else:
            conn.execute("BEGIN IMMEDIATE")       # M's store is open and being written, as in a frozen process
            conn.execute("INSERT INTO t_databases VALUES (6, 'Uncommitted', NULL)")
            held.append(conn)
    held: list = []
    state = _lab_with_store(tmp_path, build)
    before = _digest(state)
    out = io.StringIO()
    assert lab_status.status(state, out=out) == 3
    lines = [l.split() for l in out.getvalue().splitlines()]
    assert ["P", "Old", "ONLINE", "-", "-", "-"] in lines and ["M", "Old", "ONLINE", "-", "-", "-"] in lines
    assert not any("Uncommitted" in l for l in lines)
    assert [l[:3] for l in lines[1:3]] == [["P", "127.0.0.1,1", "killed"], ["M", "127.0.0.2,1", "down"]]
    assert any(l[:2] == ["P", "127.0.0.1,1"] and "no mirroring endpoint" in " ".join(l) for l in lines)
    assert _digest(state) == before                 # status wrote nothing
    held[0].rollback()
    held[0].close()


def test_status_databases_from_the_store_the_lab_creates(tmp_path):
    state = _lab_with_store(tmp_path, lambda name, db: store.initialise(db))
    before = _digest(state)
    out = io.StringIO()
    assert lab_status.status(state, out=out) == 3
    assert "no user databases" in out.getvalue()
    dbs = lab_status.databases(state, "P", running=False)
    assert [(d.name, d.state, d.role, d.system) for d in dbs] == [
        ("master", "ONLINE", None, True), ("tempdb", "ONLINE", None, True),
        ("model", "ONLINE", None, True), ("msdb", "ONLINE", None, True)]
    assert _digest(state) == before                 # status wrote nothing


def test_status_databases_with_state_and_mirroring(tmp_path):
    def build(name, db):
        conn = sqlite3.connect(db)
        conn.executescript(
            "CREATE TABLE t_databases (database_id INTEGER PRIMARY KEY, name TEXT, state INTEGER);"
            "CREATE TABLE t_endpoints (name TEXT, type INTEGER, state INTEGER, port INTEGER, ip_address TEXT);"
            "INSERT INTO t_endpoints VALUES ('Mirroring', 4, 0, 5022, NULL);"
            "INSERT INTO t_databases VALUES (1, 'master', 0), (5, 'Sales', ?), (6, 'Plain', 0), (7, 'Gone', 6);"
            .replace("?", "0" if name == "P" else "1"))
        # P's mirroring table keeps a state; M's only whether the session is suspended (store v2), and
        # neither instance runs to tell its live state
        columns = ("database_id, role, state, partner_name" if name == "P" else
                   "database_id, mirroring_guid, role, safety, suspended")
        conn.execute(f"CREATE TABLE t_database_mirroring ({columns})")
        row = (5, 1, 4, "TCP://127.0.0.2:5022") if name == "P" else (5, "G", 2, 2, 1)
        conn.execute(f"INSERT INTO t_database_mirroring VALUES ({', '.join('?' * len(row))})", row)
        conn.commit()
        conn.close()
    state = _lab_with_store(tmp_path, build)
    before = _digest(state)
    out = io.StringIO()
    lab_status.status(state, out=out)
    lines = [l.split() for l in out.getvalue().splitlines()]
    assert ["P", "Sales", "ONLINE", "PRINCIPAL", "SYNCHRONIZED", "TCP://127.0.0.2:5022"] in lines
    assert ["M", "Sales", "RESTORING", "MIRROR", "SUSPENDED", "-"] in lines
    assert ["P", "Plain", "ONLINE", "-", "-", "-"] in lines
    assert ["M", "Gone", "OFFLINE", "-", "-", "-"] in lines
    assert not any("master" in l for l in lines)     # system databases only in --json
    assert any(l[:3] == ["P", "127.0.0.1,1", "killed"] and "Mirroring" in l for l in lines)
    out = io.StringIO()
    lab_status.status(state, out=out, as_json=True)
    entries = {e["name"]: e for e in json.loads(out.getvalue())["instances"]}
    sales = next(d for d in entries["M"]["databases"] if d["name"] == "Sales")
    assert sales == {"database_id": 5, "name": "Sales", "state": "RESTORING", "role": "MIRROR",
                     "mirroring_state": "SUSPENDED", "partner": None, "system": False}
    assert entries["P"]["endpoint"] == "Mirroring STARTED port 5022"
    assert _digest(state) == before


def test_status_takes_the_live_mirroring_state_of_a_running_instance(tmp_path, monkeypatch):
    def build(name, db):
        conn = sqlite3.connect(db)
        conn.executescript(
            "CREATE TABLE t_databases (database_id INTEGER PRIMARY KEY, name TEXT, state INTEGER);"
            "CREATE TABLE t_database_mirroring (database_id INTEGER, role INTEGER, partner_name TEXT, suspended INTEGER);"
            "INSERT INTO t_databases VALUES (5, 'Sales', 0), (6, 'Other', 0);"
            "INSERT INTO t_database_mirroring VALUES (5, 1, 'TCP://m:5022', 0), (6, 1, 'TCP://m:5022', 1);")
        conn.close()
    state = _lab_with_store(tmp_path, build)
    asked = []

    def live(state_dir, rec, timeout=3):
        asked.append(rec.name)
        return {5: ("PRINCIPAL", "SYNCHRONIZED", None)}     # 6 is suspended: no live state to add
    monkeypatch.setattr(lab_status, "process_state", lambda rec, sd: "running" if rec.name == "P" else "down")
    monkeypatch.setattr(lab_status, "live_mirroring", live)
    entries = {e["name"]: e for e in (lab_status.instance_status(state, r) for r in supervisor.read_state(state))}
    assert asked == ["P"]                              # only a running instance is asked
    by_name = {d["name"]: d for d in entries["P"]["databases"]}
    assert (by_name["Sales"]["role"], by_name["Sales"]["mirroring_state"], by_name["Sales"]["partner"]) == \
        ("PRINCIPAL", "SYNCHRONIZED", "TCP://m:5022")
    assert (by_name["Other"]["role"], by_name["Other"]["mirroring_state"]) == ("PRINCIPAL", "SUSPENDED")


def test_status_unreadable_store_and_no_lab(tmp_path):
    state = _lab_with_store(tmp_path, lambda name, db: db.write_bytes(b"not a database" * 100))
    out = io.StringIO()
    assert lab_status.status(state, out=out) == 3
    assert "P: databases not readable (" in out.getvalue()
    out = io.StringIO()
    assert lab_status.status(tmp_path / "empty", out=out) == 3
    assert "mirrorkit lab up" in out.getvalue()
