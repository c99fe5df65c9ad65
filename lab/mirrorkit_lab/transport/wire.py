"""Framing of the lab's endpoint-to-endpoint messages.

SQL Server's mirroring protocol is undocumented, so the lab uses its own. The
handshake (send/recv): a 4-byte big-endian length and a JSON object, bytes as hex.
After it, link frames (encode_frame/decode_frame/FrameReader): the same length
prefix, a type, a request id, JSON and raw bytes.
"""
from __future__ import annotations

import json
import socket
import struct

MAX_MESSAGE = 256 * 1024
PROTOCOL = "mirrorkit-dbm/1"


class ProtocolError(Exception):
    pass


def send(sock: socket.socket, kind: str, **fields) -> None:
    body = {"type": kind}
    for k, v in fields.items():
        body[k] = {"hex": v.hex()} if isinstance(v, (bytes, bytearray)) else v
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError("message too large")
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProtocolError("connection closed by the peer")
        buf += chunk
    return bytes(buf)


def recv(sock: socket.socket, expect: str | tuple[str, ...] | None = None) -> dict:
    (length,) = struct.unpack(">I", _recv_exact(sock, 4))
    if length > MAX_MESSAGE:
        raise ProtocolError(f"message of {length} bytes refused")
    try:
        body = json.loads(_recv_exact(sock, length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("malformed message") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ProtocolError("malformed message")
    for k, v in list(body.items()):
        if isinstance(v, dict) and set(v) == {"hex"}:
            try:
                body[k] = bytes.fromhex(v["hex"])
            except (TypeError, ValueError):
                raise ProtocolError("malformed message") from None
    if expect is not None:
        kinds = (expect,) if isinstance(expect, str) else expect
        if body["type"] not in kinds:
            raise ProtocolError(f"expected {'/'.join(kinds)}, got {body['type']}")
    return body


# -- link frames: what an authenticated connection carries after the handshake ----------------------------
# <length:4> <type:1> <request id:8> <json length:4> <json> <blobs>
# bytes anywhere in a message travel raw in the blob area; the JSON holds {BLOB: [offset, length]} in their
# place, so a log block is not inflated to hex.
MAX_FRAME = 32 * 1024 * 1024
HEARTBEAT, MESSAGE, REQUEST, REPLY = b"H", b"M", b"Q", b"R"
FRAME_TYPES = frozenset((HEARTBEAT, MESSAGE, REQUEST, REPLY))
BLOB = "\x00bytes"
_FRAME_HEAD = struct.Struct(">IcQI")


class FrameTooLarge(ProtocolError):
    pass


def encode_frame(ftype: bytes, request_id: int = 0, body=None) -> bytes:
    """One frame; raises TypeError/ValueError for what JSON cannot carry, FrameTooLarge past MAX_FRAME."""
    blobs: list[bytes] = []
    offset = 0

    def blob(value):
        nonlocal offset
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value)
            blobs.append(value)
            ref = {BLOB: [offset, len(value)]}
            offset += len(value)
            return ref
        raise TypeError(f"a {type(value).__name__} cannot travel in a link message")

    text = b"" if body is None else json.dumps(body, separators=(",", ":"), default=blob,
                                                 allow_nan=False).encode("utf-8")
    size = _FRAME_HEAD.size - 4 + len(text) + offset
    if size > MAX_FRAME:
        raise FrameTooLarge(f"a frame of {size} bytes is over the limit of {MAX_FRAME}")
    return b"".join((_FRAME_HEAD.pack(size, ftype, request_id, len(text)), text, *blobs))


def decode_frame(payload: bytes) -> tuple[bytes, int, object]:
    """(type, request id, body) of a frame's payload (without its length); ProtocolError if malformed."""
    if len(payload) < _FRAME_HEAD.size - 4:
        raise ProtocolError("truncated frame")
    ftype, request_id, jlen = struct.unpack_from(">cQI", payload, 0)
    if ftype not in FRAME_TYPES:
        raise ProtocolError(f"unknown frame type {ftype!r}")
    start = _FRAME_HEAD.size - 4
    if jlen > len(payload) - start:
        raise ProtocolError("frame body longer than the frame")
    if jlen == 0:
        return ftype, request_id, None
    blobs = memoryview(payload)[start + jlen:]

    def hook(obj):
        if len(obj) == 1 and BLOB in obj:
            ref = obj[BLOB]
            if (not isinstance(ref, list) or len(ref) != 2 or not all(type(v) is int and v >= 0 for v in ref)
                    or ref[0] + ref[1] > len(blobs)):
                raise ProtocolError("bad blob reference")
            return bytes(blobs[ref[0]:ref[0] + ref[1]])
        return obj
    try:
        body = json.loads(bytes(payload[start:start + jlen]).decode("utf-8"), object_hook=hook)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("malformed frame body") from None
    return ftype, request_id, body


class FrameReader:
    """Frames from a socket, buffered: one recv may carry several frames, a frame may span several."""

    def __init__(self, sock: socket.socket, limit: int = MAX_FRAME):
        self.sock = sock
        self.limit = limit
        self.buf = bytearray()

    def frames(self):
        """Complete frame payloads now in the buffer (without reading)."""
        out = []
        while len(self.buf) >= 4:
            (length,) = struct.unpack_from(">I", self.buf, 0)
            if length > self.limit:
                raise FrameTooLarge(f"a frame of {length} bytes is over the limit of {self.limit}")
            if len(self.buf) < 4 + length:
                break
            out.append(bytes(self.buf[4:4 + length]))
            del self.buf[:4 + length]
        return out

    def fill(self) -> int:
        """Read what the socket has (blocking up to its timeout); 0 at end of stream."""
        chunk = self.sock.recv(262144)
        self.buf += chunk
        return len(chunk)
