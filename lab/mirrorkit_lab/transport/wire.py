"""Framing of the lab's endpoint-to-endpoint messages.

SQL Server's mirroring protocol is undocumented, so the lab uses its own: each
message is a 4-byte big-endian length and a JSON object; bytes travel as hex.
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
    except (UnicodeDecodeError, ValueError):
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
