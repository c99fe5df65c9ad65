"""Acceptance under adverse thread scheduling: when the probe reports success, BOTH sides show
the connection in sys.dm_db_mirroring_connections; and an endpoint stopped right after a
handshake keeps no connection.

Without help these depend on thread timing (about 1 probe in 200 showed no acceptor row in a
loop of probes). To make them deterministic, the acceptor's thread is held back for a moment
right after it sends its final handshake message, as a busy scheduler may do: the lab's
endpoint-to-endpoint messages all go through mirrorkit_lab.transport.wire.send.
"""
from __future__ import annotations

import time

import pytest

from mirrorkit_lab.transport import wire
from mirroring_setup import ENDPOINT, assert_probe_ok, two_way

A, B = "HOST_A", "HOST_B"
HOLD = 0.5


@pytest.fixture
def slow_acceptor(monkeypatch):
    original = wire.send

    def send(sock, kind, **fields):
        original(sock, kind, **fields)
        if kind == "accept":           # the acceptor's last handshake message
            time.sleep(HOLD)
    monkeypatch.setattr(wire, "send", send)


def connections(h) -> list[tuple]:
    return [tuple(r) for r in h.sql("SELECT is_accept, state_desc FROM sys.dm_db_mirroring_connections")]


def test_acceptor_shows_the_connection_when_the_probe_returns(lab, slow_acceptor):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    assert_probe_ok(a, b)
    assert connections(a) == [(False, "LOGGED_IN")]
    assert connections(b) == [(True, "LOGGED_IN")], \
        "the probe reported success before the acceptor registered the connection"


def test_endpoint_stopped_right_after_a_handshake_keeps_no_connection(lab, slow_acceptor):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    with b.connect() as cn:
        assert_probe_ok(a, b)
        cn.cursor().execute(f"ALTER ENDPOINT {ENDPOINT} STATE = STOPPED")
    time.sleep(HOLD + 0.3)
    assert b.sql("SELECT state_desc FROM sys.endpoints WHERE type = 4")[0][0] == "STOPPED"
    assert connections(b) == [], "a STOPPED endpoint still shows a LOGGED_IN connection"
    deadline = time.monotonic() + 5
    while connections(a) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connections(a) == [], "the initiator still shows a connection to a STOPPED endpoint"
