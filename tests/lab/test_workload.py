"""The workload helper (tests/lab/workload.py) against fake servers: what it counts as committed,
what it keeps in doubt, how it fails over and how it stops."""
from __future__ import annotations

import threading
import time

import pytest

from workload import Workload, quote_name


class Lost(Exception):
    pass


class FakeServer:
    """A table of committed values; it can die (refuse, break connections) and lose a COMMIT's reply."""

    def __init__(self, name: str):
        self.name = name
        self.rows: list = []
        self.up = True
        self.databases = {"Sales"}
        self.lose_reply_after = None      # the n-th commit is applied, then the connection dies
        self.commits = 0
        self.lock = threading.Lock()
        self.statements: list[str] = []


class FakeConnection:
    def __init__(self, server: FakeServer):
        self.server, self.pending, self.closed = server, [], False

    def cursor(self):
        return self

    def execute(self, sql: str, *params):
        s = self.server
        if not s.up or self.closed:
            raise Lost(f"{s.name}: communication link failure")
        s.statements.append(sql)
        if sql.startswith("USE "):
            if sql[5:-1].replace("]]", "]") not in s.databases:
                raise Lost(f"{s.name}: 954 acting as the mirror database")
            return self
        self.pending.append(params[0])
        return self

    def commit(self):
        s = self.server
        if not s.up or self.closed:
            raise Lost(f"{s.name}: communication link failure")
        with s.lock:
            s.rows.extend(self.pending)
            self.pending = []
            s.commits += 1
            if s.lose_reply_after is not None and s.commits >= s.lose_reply_after:
                s.up = False          # the commit is on disk, its reply never arrives
                raise Lost(f"{s.name}: connection reset after commit")

    def close(self):
        self.closed = True


def factory(servers: dict[str, FakeServer]):
    made: list[str] = []

    def connect(name: str):
        made.append(name)
        s = servers[name]
        if not s.up:
            raise Lost(f"{name}: connection refused")
        return FakeConnection(s)
    return connect, made


def wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_commits_in_order_and_stops_cleanly():
    servers = {"A": FakeServer("A")}
    connect, made = factory(servers)
    wl = Workload(connect, ["A"], "INSERT INTO dbo.t (v) VALUES (?)", database="Sales").start()
    assert wl.wait_for(50)
    assert wl.stop()
    values = wl.committed_values()
    assert values == list(range(1, len(values) + 1))
    assert servers["A"].rows == values          # nothing sent after the last commit
    assert servers["A"].statements[0] == "USE [Sales]"
    assert wl.errors == [] and wl.in_doubt == [] and made == ["A"]
    assert all(c.server == "A" for c in wl.commits)
    times = [c.at for c in wl.commits]
    assert times == sorted(times) and wl.started_at <= times[0] <= wl.stopped_at
    assert wl.longest_pause() < 5


def test_failover_to_the_mirror_keeps_every_commit():
    servers = {"P": FakeServer("P"), "M": FakeServer("M")}
    servers["M"].databases = set()              # the mirror refuses the database until failover
    connect, made = factory(servers)
    wl = Workload(connect, ["P", "M"], "INSERT INTO t VALUES (?)", database="Sales", max_backoff=0.05).start()
    assert wl.wait_for(20)
    servers["P"].lose_reply_after = servers["P"].commits + 1   # the next commit lands; its reply is lost
    wait(lambda: not servers["P"].up)
    time.sleep(0.1)                              # a few rounds of refused connections
    servers["M"].rows = list(servers["P"].rows)  # the mirror hardened everything, then becomes principal
    servers["M"].databases = {"Sales"}
    n = len(wl.commits)
    assert wl.wait_for(n + 20)
    assert wl.stop()

    committed = set(wl.committed_values())
    lost_reply = servers["P"].rows[-1]
    assert lost_reply in wl.in_doubt and lost_reply not in committed
    assert committed <= set(servers["M"].rows)
    assert set(servers["M"].rows) - committed <= set(wl.in_doubt)
    assert [s for _, s in wl.connections] == ["P", "M"]
    assert {c.server for c in wl.commits} == {"P", "M"}
    # the refused attempts are recorded, the mirror's 954 among them, none with a value
    connect_errors = [e for e in wl.errors if e.value is None]
    assert any("954" in e.error and e.server == "M" for e in connect_errors)
    assert any(e.server == "P" and "refused" in e.error for e in connect_errors)
    assert made[0] == "P" and made[-1] == "M"
    # a value is never sent twice
    assert len(servers["M"].rows) == len(set(servers["M"].rows))
    assert wl.longest_pause() >= 0.1


def test_stop_while_no_server_answers():
    servers = {"A": FakeServer("A")}
    servers["A"].up = False
    connect, _ = factory(servers)
    wl = Workload(connect, ["A"], "INSERT INTO t VALUES (?)", max_backoff=0.05).start()
    wait(lambda: len(wl.errors) >= 3)
    assert wl.stop(timeout=5)
    assert wl.commits == [] and wl.in_doubt == [] and wl.connections == []
    assert not wl.wait_for(1, timeout=0.2)


def test_values_and_quoting():
    servers = {"A": FakeServer("A")}
    servers["A"].databases = {"odd]name"}
    connect, _ = factory(servers)
    wl = Workload(connect, ["A"], "INSERT INTO t VALUES (?)", database="odd]name", values=["x", "y", "z"]).start()
    wait(lambda: wl.stopped_at is not None)
    assert wl.committed_values() == ["x", "y", "z"] == servers["A"].rows
    assert quote_name("odd]name") == "[odd]]name]"
    with pytest.raises(RuntimeError):
        wl.start()
    with pytest.raises(ValueError):
        Workload(connect, [], "INSERT INTO t VALUES (?)")
