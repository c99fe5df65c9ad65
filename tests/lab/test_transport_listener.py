"""Acceptance: endpoint listeners follow the catalog. A port in use fails CREATE ENDPOINT with
7890 (spec §2.5 "Port in use"); ALTER ENDPOINT ... LISTENER_PORT moves the listener; DROP
ENDPOINT closes it; a restarted instance listens again (STARTED = listening, STOPPED = not
listening, spec §2.5 STATE)."""
from __future__ import annotations

import socket
import time

import pyodbc
import pytest

from mirroring_setup import (ENDPOINT, PORT, LogWatch, assert_probe_fails, assert_probe_ok, cert_name,
                             listening, login_name, probe, settled_rows, two_way)

A, B = "HOST_A", "HOST_B"
OTHER_PORT = 7025
MSG_9692 = f"cannot listen on port {PORT} because it is in use by another process"


def create_endpoint(h, state: str = "STARTED", port: int = PORT):
    h.sql(f"CREATE ENDPOINT {ENDPOINT} STATE = {state} AS TCP (LISTENER_PORT = {port}, LISTENER_IP = ALL) "
          f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {cert_name(h.name)}, "
          "ENCRYPTION = REQUIRED ALGORITHM AES, ROLE = ALL)")


def prepare_certificate(h):
    h.sql(f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<{h.name}_Strong_Password#1>'")
    h.sql(f"CREATE CERTIFICATE {cert_name(h.name)} WITH SUBJECT = '{h.name} certificate for database mirroring'")



def dbm_endpoints(h) -> int:
    return h.sql("SELECT COUNT(*) FROM sys.endpoints WHERE type = 4")[0][0]


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- port in use --------------------------------------------------------------------------------------
def test_port_bound_by_another_process_fails_create_endpoint_with_7890(lab):
    l = lab(A)
    a = l[A]
    prepare_certificate(a)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind((a.host, PORT))
        blocker.listen(1)
        watch = LogWatch(a, MSG_9692)
        with pytest.raises(pyodbc.Error) as err:
            create_endpoint(a)
        assert "(7890)" in str(err.value), str(err.value)
        assert ENDPOINT in str(err.value)
        assert dbm_endpoints(a) == 0, "the failed CREATE ENDPOINT left an endpoint behind"
        assert watch.new(MSG_9692)
    finally:
        blocker.close()
    create_endpoint(a)
    assert dbm_endpoints(a) == 1
    assert wait_until(lambda: listening(a.host, PORT))


def test_two_instances_on_one_address_cannot_share_the_endpoint_port(lab):
    l = lab(A)
    a = l[A]
    c = l.start("HOST_C", host=a.host, port=1434)
    for h in (a, c):
        prepare_certificate(h)
    create_endpoint(a)
    with pytest.raises(pyodbc.Error) as err:
        create_endpoint(c)
    assert "(7890)" in str(err.value), str(err.value)
    assert dbm_endpoints(c) == 0
    # another port works, and the first instance's listener is untouched
    create_endpoint(c, port=OTHER_PORT)
    assert listening(a.host, PORT) and listening(c.host, OTHER_PORT)


def test_starting_a_stopped_endpoint_on_a_taken_port_fails_with_7890(lab):
    l = lab(A)
    a = l[A]
    c = l.start("HOST_C", host=a.host, port=1434)
    for h in (a, c):
        prepare_certificate(h)
    create_endpoint(a)
    create_endpoint(c, state="STOPPED")          # STOPPED does not listen, so it does not clash
    with pytest.raises(pyodbc.Error) as err:
        c.sql(f"ALTER ENDPOINT {ENDPOINT} STATE = STARTED")
    assert "(7890)" in str(err.value), str(err.value)
    assert c.sql("SELECT state_desc FROM sys.endpoints WHERE type = 4")[0][0] == "STOPPED"


# -- ALTER ENDPOINT ... LISTENER_PORT ----------------------------------------------------------------------
def test_alter_listener_port_moves_the_listener(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    assert_probe_ok(a, b)
    b.sql(f"ALTER ENDPOINT {ENDPOINT} AS TCP (LISTENER_PORT = {OTHER_PORT})")
    assert b.sql("SELECT port FROM sys.tcp_endpoints WHERE type = 4")[0][0] == OTHER_PORT
    assert not listening(b.host, PORT)
    assert listening(b.host, OTHER_PORT)
    assert_probe_fails(a, b, 1418, port=PORT)
    assert_probe_ok(a, b, port=OTHER_PORT)
    # and back
    b.sql(f"ALTER ENDPOINT {ENDPOINT} AS TCP (LISTENER_PORT = {PORT})")
    assert_probe_fails(a, b, 1418, port=OTHER_PORT)
    assert_probe_ok(a, b, port=PORT)


def test_moving_the_listener_to_a_taken_port_fails_and_keeps_the_old_one(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind((b.host, OTHER_PORT))
        blocker.listen(1)
        with pytest.raises(pyodbc.Error) as err:
            b.sql(f"ALTER ENDPOINT {ENDPOINT} AS TCP (LISTENER_PORT = {OTHER_PORT})")
        assert "(7890)" in str(err.value), str(err.value)
    finally:
        blocker.close()
    assert b.sql("SELECT port FROM sys.tcp_endpoints WHERE type = 4")[0][0] == PORT
    assert_probe_ok(a, b, port=PORT)


# -- DROP ENDPOINT -----------------------------------------------------------------------------------------
def test_drop_endpoint_closes_the_listener(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    assert_probe_ok(a, b)
    b.sql(f"DROP ENDPOINT {ENDPOINT}")
    assert not listening(b.host, PORT)
    assert_probe_fails(a, b, 1418)
    assert b.sql("SELECT COUNT(*) FROM sys.dm_db_mirroring_connections")[0][0] == 0
    # the port is free again for anyone
    # (SO_REUSEADDR: closed connections may linger in TIME_WAIT; only a listener makes this bind fail)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((b.host, PORT))
        s.listen(1)
    finally:
        s.close()
    # without an endpoint, B cannot initiate either
    assert not probe(b, a).succeeded
    # a new endpoint listens again; DROP ENDPOINT removed the CONNECT permission, so A needs a new GRANT
    create_endpoint(b)
    assert_probe_fails(a, b, 28034)
    b.sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}")
    assert_probe_ok(a, b)
    assert_probe_ok(b, a)


# -- restart -----------------------------------------------------------------------------------------------
def test_restart_restores_the_listener(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    assert_probe_ok(a, b)
    b = l.restart(B)
    assert listening(b.host, PORT)
    assert_probe_ok(a, b)
    assert_probe_ok(b, a)          # B's endpoint certificate opens through the service master key again
    rows = settled_rows(b, "SELECT is_accept, principal_name, state_desc FROM sys.dm_db_mirroring_connections "
                           "ORDER BY is_accept", 2)
    assert rows == [(False, "HOST_A_user", "LOGGED_IN"), (True, "HOST_A_user", "LOGGED_IN")]


def test_restart_drops_the_peer_connections(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    assert_probe_ok(a, b)
    assert a.sql("SELECT COUNT(*) FROM sys.dm_db_mirroring_connections")[0][0] == 1
    l.restart(B)
    assert wait_until(lambda: a.sql("SELECT COUNT(*) FROM sys.dm_db_mirroring_connections")[0][0] == 0), \
        "A still shows a connection to B after B restarted"


def test_restart_keeps_a_stopped_endpoint_stopped(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    b.sql(f"ALTER ENDPOINT {ENDPOINT} STATE = STOPPED")
    b = l.restart(B)
    assert not listening(b.host, PORT)
    assert_probe_fails(a, b, 1418)
    b.sql(f"ALTER ENDPOINT {ENDPOINT} STATE = STARTED")
    assert_probe_ok(a, b)


def test_restart_with_a_moved_listener_listens_on_the_new_port(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    b.sql(f"ALTER ENDPOINT {ENDPOINT} AS TCP (LISTENER_PORT = {OTHER_PORT})")
    b = l.restart(B)
    assert not listening(b.host, PORT)
    assert_probe_ok(a, b, port=OTHER_PORT)
