"""Fuzzed, truncated and oversized frames thrown at a live endpoint, before and after the certificate
handshake, never crash the instance: the offending connection is closed (and logged, 9642), other
connections carry on, and a good link still works afterwards."""
from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from links_helpers import A, B, Pair, wait_for
from mirroring_setup import errorlog, url
from mirrorkit_lab.transport import handshake, wire


@pytest.fixture
def pair(lab):
    p = Pair(lab)
    yield p
    p.close()


def _closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def _authenticated(pair, n: int) -> socket.socket:
    """A connection from A to B that passed the handshake, as a raw socket."""
    opened = handshake.open_connection(pair.ta, pair.b.host, 7024, url(pair.b), "PARTNER", f"fuzz:{n}")
    assert opened.sock is not None, opened.outcome
    return opened.sock


frames = st.one_of(
    st.binary(max_size=300),                                            # noise
    st.binary(max_size=200).map(lambda b: struct.pack(">I", len(b)) + b),   # well framed, random inside
    st.tuples(st.sampled_from(sorted(wire.FRAME_TYPES)), st.binary(max_size=120)).map(
        lambda t: struct.pack(">IcQI", 13 + len(t[1]), t[0], 1, len(t[1])) + t[1]),  # typed, random JSON
    st.integers(wire.MAX_FRAME + 1, 2**32 - 1).map(lambda n: struct.pack(">I", n) + b"x" * 64),  # oversized
)


def test_garbage_never_crashes_an_endpoint_and_a_good_link_still_works(pair):
    good = pair.link()
    pair.tb.on_message("echo", lambda peer, m: {"kind": "echo", "body": m.get("body")})
    counter = iter(range(10**6))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=frames, after_handshake=st.booleans(), truncate=st.booleans())
    def attack(data, after_handshake, truncate):
        if after_handshake:
            sock = _authenticated(pair, next(counter))
        else:
            sock = socket.create_connection((pair.b.host, 7024), timeout=5)
        try:
            sock.sendall(data[: len(data) // 2] if truncate else data)
        except OSError:
            pass
        handshake._close(sock)
    attack()

    assert good.up and good.connects == 1
    body = {"blob": bytes(range(256)) * 40}
    assert good.request({"kind": "echo", "body": body}, 5) == {"kind": "echo", "body": body}
    fresh = pair.link()
    assert fresh.request({"kind": "ping"}, 5)["kind"] == "pong"


@pytest.mark.parametrize("frame,reason", [
    (struct.pack(">I", wire.MAX_FRAME + 1), "over the limit"),
    (struct.pack(">IcQI", 13, b"Z", 0, 0), "unknown frame type"),
    (struct.pack(">IcQI", 13 + 3, b"M", 0, 3) + b"{x]", "malformed"),
    (struct.pack(">IcQI", 13 + 2, b"M", 0, 50) + b"{}", "frame body longer"),
    (struct.pack(">IcQI", 13 + 27, b"M", 0, 27) + b'{"a":{"\\u0000bytes":[0,9]}}', "bad blob reference"),
    (wire.encode_frame(b"M", 0, {"kind": "x", "b": b"12"})[:-1] + b"", "truncated"),
])
def test_a_bad_frame_closes_only_its_connection_and_is_logged(pair, frame, reason):
    good = pair.link()
    sock = _authenticated(pair, 0)
    sock.sendall(frame)
    if reason == "truncated":
        # a frame cut short by the end of the connection: nothing to dispatch, nothing broken
        sock.shutdown(socket.SHUT_WR)
        assert _closed_by_peer(sock)
    else:
        assert _closed_by_peer(sock), "the endpoint kept a connection that sent a bad frame"
        assert wait_for(lambda: errorlog(pair.b, reason), 5)
        assert errorlog(pair.b, "Error: 8474, State: 11. (Near endpoint role: Target")
    handshake._close(sock)
    assert good.request({"kind": "ping"}, 5)["kind"] == "pong" and good.connects == 1


def test_link_frames_round_trip_any_json_and_bytes():
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.text(max_size=20) | st.binary(max_size=50)
        | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20)

    @settings(max_examples=200, deadline=None)
    @given(body=st.dictionaries(st.text(max_size=8), values, max_size=5), request_id=st.integers(0, 2**64 - 1))
    def round_trip(body, request_id):
        frame = wire.encode_frame(wire.REQUEST, request_id, body)
        (length,) = struct.unpack(">I", frame[:4])
        assert length == len(frame) - 4
        assert wire.decode_frame(frame[4:]) == (wire.REQUEST, request_id, body)
    round_trip()
    with pytest.raises(wire.FrameTooLarge):
        wire.encode_frame(wire.MESSAGE, 0, {"kind": "big", "b": b"x" * (wire.MAX_FRAME + 1)})
