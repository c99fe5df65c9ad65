"""Protocol-level behaviour checked with a hand-rolled client (raw_client.py)."""
from __future__ import annotations

import socket
import struct
import time

import pytest

from mirrorkit_lab.tds.server import TdsServer
from raw_client import (
    ALL_HEADERS, RawClient, int_param, login7_payload, nvarchar_param, prelogin_payload, rpc,
    walk_tokens,
)

DONE_MORE, DONE_ERROR, DONE_INXACT, DONE_COUNT, DONE_ATTN, DONE_RPCINBATCH = 1, 2, 4, 0x10, 0x20, 0x80


def ntext_param(value: str) -> bytes:
    raw = value.encode("utf-16-le")
    return b"\x00\x00\x63" + struct.pack("<I", 0x7FFFFFFE) + b"\x09\x04\xd0\x00\x34" + \
        struct.pack("<I", len(raw)) + raw


def test_prelogin_reply_shape(port):
    with RawClient(port) as c:
        c.send(0x12, prelogin_payload(encryption=0))
        reply = c.recv_message()
        assert c.last_header[0] == 0x04
    # VERSION first, then ENCRYPTION, INSTOPT, THREADID (empty), MARS.
    assert reply[:26] == bytes.fromhex("00001a0006" "0100200001" "0200210001" "0300220000"
                                       "0400220001" "ff")
    assert reply[26:] == bytes.fromhex("0f0007d00000" "02" "00" "00")


def test_login_reply_tokens_and_spid_header(port, engine):
    with RawClient(port) as c:
        reply = c.login(database="TestDb")
        spid = c.last_header[3]
        toks = walk_tokens(reply)
    assert spid == engine.sessions[0].spid
    kinds = [t[0] for t in toks]
    assert kinds == ["ENVCHANGE", "INFO", "ENVCHANGE", "ENVCHANGE", "INFO", "ENVCHANGE", "LOGINACK",
                     "DONE"]
    assert toks[0][1] == b"\x01\x06" + "TestDb".encode("utf-16-le") + b"\x06" + "master".encode("utf-16-le")
    assert toks[1][1:] == (5701, "Changed database context to 'TestDb'.")
    assert toks[2][1] == bytes.fromhex("07050904d0003400")
    assert toks[4][1] == 5703
    assert toks[5][1] == b"\x04\x04" + "4096".encode("utf-16-le") + b"\x04" + "4096".encode("utf-16-le")
    assert toks[6][1][:5] == bytes.fromhex("0174000004") and toks[6][1][-4:] == bytes.fromhex("0f0007d0")
    assert toks[7] == ("DONE", 0, 0)


def test_login_failure_then_close(port):
    with RawClient(port) as c:
        toks = walk_tokens(c.login(password="bad"))
        assert toks == [("ERROR", 18456, "Login failed for user 'sa'."), ("DONE", DONE_ERROR, 0)]
        assert c.sock.recv(10) == b""


def test_sspi_and_fedauth_are_rejected(port, engine):
    with RawClient(port) as c:
        toks = walk_tokens(c.login(sspi=b"NTLMSSP\0\1\0\0\0"))
        assert toks[0][0] == "ERROR" and toks[0][1] == 18452 and "SSPI" in toks[0][2]
    with RawClient(port) as c:
        fedauth = b"\x02" + struct.pack("<I", 1) + b"\x02" + b"\xff"
        toks = walk_tokens(c.login(features=fedauth))
        assert toks[0][0] == "ERROR" and "Federated" in toks[0][2]
    assert engine.logins == []


def test_feature_ext_is_skipped(port, engine):
    with RawClient(port) as c:
        utf8 = b"\x0a" + struct.pack("<I", 1) + b"\x01" + b"\xff"
        toks = walk_tokens(c.login(features=utf8))
        assert toks[-1] == ("DONE", 0, 0)
    assert engine.logins[0]["app"] == "rawapp" and engine.logins[0]["library"] == "rawlib"


def test_tds70_is_refused(port):
    with RawClient(port) as c:
        c.send(0x10, login7_payload(version=0x70000000))
        data = c.recv_message()
        assert data[0] == 0xAA and b"7\x00.\x001\x00" in data


def test_batch_done_flags(port):
    with RawClient(port) as c:
        c.login()
        toks = walk_tokens(c.batch("SELECT 1"))
        assert toks == [("COLMETADATA", 1), ("ROW", (1,)), ("DONE", DONE_COUNT, 1)]
        toks = walk_tokens(c.batch("insert x; insert y"))
        assert toks == [("DONE", DONE_COUNT | DONE_MORE, 1), ("DONE", DONE_COUNT, 1)]
        toks = walk_tokens(c.batch("RAISE"))
        assert toks[0][:2] == ("ERROR", 50001) and toks[-1] == ("DONE", DONE_ERROR, 0)
        toks = walk_tokens(c.batch("PRINT 'x'"))
        assert toks == [("INFO", 0, "x"), ("DONE", 0, 0)]
        toks = walk_tokens(c.batch("BEGIN TRAN; insert x"))
        assert toks[-1] == ("DONE", DONE_COUNT | DONE_INXACT, 1)


def test_attention_after_complete_reply_is_acked(any_mode_server):
    port = any_mode_server.address[1]
    with RawClient(port) as c:
        c.login()
        c.batch("SELECT 1")
        c.send(0x06, b"")
        assert walk_tokens(c.recv_message()) == [("DONE", DONE_ATTN, 0)]
        assert walk_tokens(c.batch("SELECT 1"))[-1] == ("DONE", DONE_COUNT, 1)


def test_attention_during_execution_cancels_engine(any_mode_server, engine):
    port = any_mode_server.address[1]
    with RawClient(port) as c:
        c.login()
        c.send(0x01, ALL_HEADERS + "WAITFOR DELAY '00:00:30'".encode("utf-16-le"))
        time.sleep(0.2)
        t0 = time.monotonic()
        c.send(0x06, b"")
        toks = walk_tokens(c.recv_message())
        assert toks[-1] == ("DONE", DONE_ATTN, 0)
        assert time.monotonic() - t0 < 2
        assert engine.cancels == 1
        assert walk_tokens(c.batch("SELECT 1"))[-1] == ("DONE", DONE_COUNT, 1)


def test_attention_while_streaming_a_big_reply(any_mode_server):
    port = any_mode_server.address[1]
    with RawClient(port) as c:
        c.login()
        c.send(0x01, ALL_HEADERS + "SELECT big 200000".encode("utf-16-le"))
        # Read a little, then cancel; the client must find exactly one ack.
        first = c.sock.recv(8192)
        assert first
        c.send(0x06, b"")
        buf = b""
        c.sock.settimeout(10)
        ack = bytes.fromhex("fd2000000000000000000000000000")[:13]
        while ack not in buf[-64:]:
            d = c.sock.recv(1 << 20)
            assert d
            buf += d
        assert walk_tokens(c.batch("SELECT 1"))[-1] == ("DONE", DONE_COUNT, 1)


def test_ignore_bit_gives_done_error(any_mode_server):
    port = any_mode_server.address[1]
    with RawClient(port) as c:
        c.login()
        c.send(0x01, ALL_HEADERS + "SELECT 1".encode("utf-16-le"), status=0x03)
        assert walk_tokens(c.recv_message()) == [("DONE", DONE_ERROR, 0)]
        assert walk_tokens(c.batch("SELECT 1"))[-1] == ("DONE", DONE_COUNT, 1)


def test_resetconnection_bit_is_tolerated(port):
    with RawClient(port) as c:
        c.login()
        c.send(0x01, ALL_HEADERS + "SELECT 1".encode("utf-16-le"), status=0x09)
        assert walk_tokens(c.recv_message())[-1] == ("DONE", DONE_COUNT, 1)


def test_prepare_execute_by_name_in_a_batched_rpc(port, engine):
    with RawClient(port) as c:
        c.login()
        toks = walk_tokens(c.rpc(rpc(11, [int_param("", None, output=True), ntext_param("@P1 INT"),
                                          ntext_param("insert @P1"), int_param("", 1)])))
        assert toks == [("RETURNSTATUS", 0), ("RETURNVALUE", 0, "", 1), ("DONEPROC", 0, 0)]
        handle = toks[1][3]
        # Two sp_execute BY NAME in one message (FreeTDS param arrays), 0xFF separated.
        toks = walk_tokens(c.rpc(rpc("sp_execute", [int_param("", handle), int_param("", 10)]),
                                 rpc("sp_execute", [int_param("", handle), int_param("", 20)])))
        assert toks == [("DONEINPROC", DONE_COUNT | DONE_MORE, 1), ("RETURNSTATUS", 0),
                        ("DONEPROC", DONE_MORE | DONE_RPCINBATCH, 0),
                        ("DONEINPROC", DONE_COUNT | DONE_MORE, 1), ("RETURNSTATUS", 0),
                        ("DONEPROC", 0, 0)]
        toks = walk_tokens(c.rpc(rpc(15, [int_param("", handle)])))
        assert toks == [("RETURNSTATUS", 0), ("DONEPROC", 0, 0)]
        toks = walk_tokens(c.rpc(rpc(12, [int_param("", handle), int_param("", 1)])))
        assert toks[0] == ("ERROR", 8179, f"Could not find prepared statement with handle {handle}.")
        assert toks[-1] == ("DONEPROC", DONE_ERROR, 0)
    values = [[p.value for p in e[2]] for e in engine.log if e[0] == "execute"]
    assert values == [[10], [20]]


def test_prepexec_named_values_and_errors(port, engine):
    with RawClient(port) as c:
        c.login()
        toks = walk_tokens(c.rpc(rpc(13, [int_param("@handle", None, output=True),
                                          ntext_param("@a INT, @b NVARCHAR(10)"),
                                          ntext_param("SELECT @a"), int_param("@a", 5),
                                          nvarchar_param("@b", "x")])))
        assert toks[:3] == [("COLMETADATA", 1), ("ROW", (5,)), ("DONEINPROC", DONE_COUNT | DONE_MORE, 1)]
        assert toks[3:] == [("RETURNSTATUS", 0), ("RETURNVALUE", 0, "@handle", 1), ("DONEPROC", 0, 0)]
        # A missing value -> 8178, but the handle still comes back.
        toks = walk_tokens(c.rpc(rpc(13, [int_param("", None, output=True), ntext_param("@a INT"),
                                          ntext_param("SELECT @a")])))
        assert toks[0][:2] == ("ERROR", 8178) and toks[-1] == ("DONEPROC", DONE_ERROR, 0)
        # Server-side cursors are refused clearly.
        toks = walk_tokens(c.rpc(rpc(2, [int_param("", None, output=True), ntext_param("SELECT 1")])))
        assert toks[0][0] == "ERROR" and "cursor" in toks[0][2]
        # Other procedures go to the engine.
        toks = walk_tokens(c.rpc(rpc("out_proc", [int_param("", 3), int_param("@o", 4, output=True)])))
        assert toks == [("RETURNSTATUS", 5), ("RETURNVALUE", 1, "@o", 8), ("DONEPROC", 0, 0)]


def test_tm_requests(port, engine):
    with RawClient(port) as c:
        c.login()
        c.send(0x0E, ALL_HEADERS + b"\x05\x00\x00\x00")
        toks = walk_tokens(c.recv_message())
        desc = engine.sessions[0]._desc
        assert toks == [("ENVCHANGE", b"\x08\x08" + struct.pack("<Q", desc) + b"\x00"),
                        ("DONE", DONE_INXACT, 0)]
        c.send(0x0E, ALL_HEADERS + b"\x07\x00\x00\x00")       # commit, no new transaction
        toks = walk_tokens(c.recv_message())
        assert toks == [("ENVCHANGE", b"\x09\x00\x08" + struct.pack("<Q", desc)), ("DONE", 0, 0)]
        c.send(0x0E, ALL_HEADERS + b"\x09\x00\x00")           # TM_SAVE_XACT: unsupported
        toks = walk_tokens(c.recv_message())
        assert toks[0][0] == "ERROR" and toks[-1] == ("DONE", DONE_ERROR, 0)


def test_stalled_login_times_out(engine):
    with TdsServer(engine, "127.0.0.1", 0, login_timeout=0.5) as srv:
        s = socket.create_connection(srv.address)
        s.sendall(b"\x12\x01\x00\x40\x00\x00")             # half a header, then silence
        s.settimeout(5)
        t0 = time.monotonic()
        assert s.recv(10) == b""
        assert time.monotonic() - t0 < 3
        s.close()
        # A peer trickling one byte at a time is cut off by the overall deadline.
        s = socket.create_connection(srv.address)
        t0 = time.monotonic()
        closed = False
        for b in b"\x12\x01\x00\x40" + b"\x00" * 60:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 2.5:
                break
        # Per-recv timeouts (0.5 s) alone would never fire while bytes keep coming.
        assert closed and time.monotonic() - t0 < 2
        s.close()


def test_oversized_message_closes_only_that_connection(engine):
    with TdsServer(engine, "127.0.0.1", 0, max_message_size=64 * 1024) as srv:
        with RawClient(srv.address[1]) as ok:
            ok.login()
            with RawClient(srv.address[1]) as bad:
                bad.login()
                with pytest.raises((ConnectionError, OSError)):
                    bad.send(0x01, b"\0" * (200 * 1024))
                    bad.recv_message()
            assert walk_tokens(ok.batch("SELECT 1"))[-1] == ("DONE", DONE_COUNT, 1)


def test_encryption_mismatch_closes(engine, cert_files):
    # No TLS configured, client insists (ENCRYPT_REQ): NOT_SUP then close.
    with TdsServer(engine, "127.0.0.1", 0) as srv, RawClient(srv.address[1]) as c:
        c.send(0x12, prelogin_payload(encryption=3))
        assert c.recv_message()[26 + 6] == 0x02
        assert c.sock.recv(10) == b""


def test_shutdown_closes_clients_and_frees_port(engine):
    srv = TdsServer(engine, "127.0.0.1", 0)
    srv.start()
    c = RawClient(srv.address[1])
    c.login()
    srv.shutdown()
    assert c.sock.recv(10) == b""
    assert srv.connection_count == 0
    c.close()
    with pytest.raises(OSError):
        # The port is bound by someone else -> OSError from start().
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        try:
            TdsServer(engine, "127.0.0.1", blocker.getsockname()[1]).start()
        finally:
            blocker.close()
