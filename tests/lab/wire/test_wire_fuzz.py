"""Seeded fuzzing over real sockets: random, truncated, oversized and mutated
packets at every state (before PRELOGIN, before LOGIN7, logged in). Each bad
connection may be closed, but the listener and other clients must go on."""
from __future__ import annotations

import logging
import random
import socket
import time

import pyodbc

from mirrorkit_lab.tds.server import TdsServer
from raw_client import (
    ALL_HEADERS, HDR, RawClient, int_param, login7_payload, nvarchar_param, prelogin_payload, rpc,
)
from wire_helpers import make_ssl_context, odbc_string

TYPES = [0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x0E, 0x10, 0x11, 0x12, 0x16, 0x00, 0xFF]


def packet(ptype: int, payload: bytes, status: int = 1, length: int | None = None) -> bytes:
    return HDR.pack(ptype, status, len(payload) + 8 if length is None else length, 0, 1, 0) + payload


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.5 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.75 and b:
            del b[rng.randrange(len(b)):]
        else:
            b[rng.randrange(len(b) + 1):0] = rng.randbytes(rng.randint(1, 40))
    return bytes(b)


def valid_request(rng: random.Random) -> tuple[int, bytes]:
    choice = rng.randrange(4)
    if choice == 0:
        return 0x01, ALL_HEADERS + "SELECT 1".encode("utf-16-le")
    if choice == 1:
        return 0x03, ALL_HEADERS + rpc(13, [int_param("", None, True), nvarchar_param("", "@P1 INT"),
                                            nvarchar_param("", "SELECT @P1"), int_param("", 3)])
    if choice == 2:
        return 0x0E, ALL_HEADERS + b"\x05\x00\x00\x00"
    return 0x03, ALL_HEADERS + rpc("sp_execute", [int_param("", 1), int_param("", 2)])


def attack(rng: random.Random, state: str) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:                                   # pure noise
        return rng.randbytes(rng.randint(0, 3000))
    if kind == 1:                                   # well-framed, random type and payload
        return packet(rng.choice(TYPES), rng.randbytes(rng.randint(0, 600)), rng.randrange(256))
    if kind == 2:                                   # header claims more than is sent
        return packet(rng.choice(TYPES), rng.randbytes(rng.randint(0, 50)), 1, rng.randint(100, 65535))
    if kind == 3:                                   # endless message without EOM (oversized)
        return b"".join(packet(0x01, rng.randbytes(4000), 0) for _ in range(80))
    if kind == 4:                                   # length field below the header size
        return HDR.pack(rng.choice(TYPES), 1, rng.randrange(8), 0, 1, 0) + rng.randbytes(20)
    # Mutations of messages that are valid in this state.
    if state == "prelogin":
        return packet(0x12, mutate(rng, prelogin_payload(rng.randrange(4))))
    if state == "login":
        return packet(0x10, mutate(rng, login7_payload()))
    ptype, payload = valid_request(rng)
    return packet(ptype, mutate(rng, payload) if kind == 5 else payload) + (
        packet(0x06, b"") if rng.random() < 0.3 else b"")


def run_case(port: int, rng: random.Random, state: str, tls: bool = False) -> None:
    try:
        c = RawClient(port, timeout=3)
    except OSError:
        return
    try:
        if state in ("login", "loggedin"):
            c.send(0x12, prelogin_payload(0 if tls else 2))
            c.recv_message()
            if tls:
                c.sock.sendall(packet(0x12, rng.randbytes(rng.randint(0, 300))))
        if state == "loggedin":
            c.send(0x10, login7_payload())
            c.recv_message()
        c.sock.sendall(attack(rng, state))
        c.sock.shutdown(socket.SHUT_WR)
        while c.sock.recv(65536):                   # the server answers or hangs up
            pass
    except (OSError, ConnectionError):
        pass
    finally:
        c.close()


def test_fuzz_every_state_then_serve_a_real_client(engine, cert_files, caplog):
    caplog.set_level(logging.WARNING, logger="mirrorkit_lab.tds")
    rng = random.Random(20240229)
    with TdsServer(engine, "127.0.0.1", 0, login_timeout=2.0, max_message_size=128 * 1024) as srv, \
            TdsServer(engine, "127.0.0.1", 0, login_timeout=2.0,
                      ssl_context=make_ssl_context(cert_files)) as tls_srv, \
            TdsServer(engine, "127.0.0.1", 0, login_timeout=2.0, max_message_size=128 * 1024,
                      attention_watcher=False) as threaded_srv:
        port = srv.address[1]
        # A client that stays connected through the whole storm.
        bystander = pyodbc.connect(odbc_string(port), timeout=10, autocommit=True)
        for i in range(900):
            run_case(port, rng, ("prelogin", "login", "loggedin")[i % 3])
            if i % 10 == 0:
                assert bystander.cursor().execute("SELECT 1").fetchone()[0] == 1
        for i in range(40):
            run_case(tls_srv.address[1], rng, "login", tls=True)
        for i in range(200):                          # reader-thread mode
            run_case(threaded_srv.address[1], rng, ("login", "loggedin")[i % 2])
        # every one of the three listeners still serves a real client (the TLS one over full TLS)
        for s, extra in ((srv, ""), (tls_srv, "Encryption=require;"), (threaded_srv, "")):
            fresh = pyodbc.connect(odbc_string(s.address[1], extra=extra), timeout=10)
            assert fresh.cursor().execute("SELECT ?", 7).fetchone()[0] == 7, s
            assert fresh.cursor().execute("SELECT big 500").fetchall()[-1][0] == 499, s
            fresh.close()
        assert bystander.cursor().execute("SELECT 1").fetchone()[0] == 1
        bystander.close()
        deadline = time.monotonic() + 5
        servers = (srv, tls_srv, threaded_srv)
        while any(s.connection_count for s in servers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [s.connection_count for s in servers] == [0, 0, 0]
    # Bad input is a protocol error (INFO), never an unexpected exception.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
