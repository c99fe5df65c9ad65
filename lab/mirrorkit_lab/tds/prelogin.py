"""PRELOGIN: parse the client's option table, decide encryption, build the reply.

The reply must list VERSION first and must contain MARS: FreeTDS >= 1.5
(pymssql) silently downgrades to TDS 7.1 when MARS is missing.
"""
from __future__ import annotations

import struct

from .packets import ProtocolError

OPT_VERSION = 0x00
OPT_ENCRYPTION = 0x01
OPT_INSTOPT = 0x02
OPT_THREADID = 0x03
OPT_MARS = 0x04
OPT_TERMINATOR = 0xFF

ENCRYPT_OFF = 0x00
ENCRYPT_ON = 0x01
ENCRYPT_NOT_SUP = 0x02
ENCRYPT_REQ = 0x03
ENCRYPT_CLIENT_CERT = 0x80

# What to do after sending the reply.
PLAIN = "plain"            # no TLS at all
LOGIN_ONLY = "login_only"  # TLS for the LOGIN7 message only, then plaintext
FULL = "full"              # TLS for the rest of the connection
CLOSE = "close"            # the two sides cannot agree: send the reply, then hang up

SERVER_VERSION = (15, 0, 2000, 0)   # SQL Server 2019 RTM

ENCRYPTION_MODES = ("off", "optional", "required")


def parse_prelogin(payload: bytes) -> dict[int, bytes]:
    """Option token -> data. Raises ProtocolError on a malformed table."""
    opts: dict[int, bytes] = {}
    pos = 0
    n = len(payload)
    while True:
        if pos >= n:
            raise ProtocolError("PRELOGIN option table is not terminated")
        token = payload[pos]
        if token == OPT_TERMINATOR:
            return opts
        if pos + 5 > n:
            raise ProtocolError("truncated PRELOGIN option table")
        off, length = struct.unpack_from(">HH", payload, pos + 1)
        if off + length > n:
            raise ProtocolError("PRELOGIN option points outside the message")
        opts[token] = payload[off:off + length]
        pos += 5
        if len(opts) > 64:
            raise ProtocolError("too many PRELOGIN options")


def negotiate(client_opts: dict[int, bytes], mode: str, tls_available: bool) -> tuple[int, str]:
    """The ENCRYPTION byte to reply and what happens next (MS-TDS 2.2.6.5 matrix).

    mode "off" (or no certificate): never TLS; ON/REQ clients are refused.
    mode "optional": TLS when the client wants it, login-only TLS for OFF clients.
    mode "required": full TLS for everyone; NOT_SUP clients are refused.
    """
    raw = client_opts.get(OPT_ENCRYPTION, b"")
    client = (raw[0] & ~ENCRYPT_CLIENT_CERT) if raw else ENCRYPT_NOT_SUP
    if client > ENCRYPT_REQ:
        client = ENCRYPT_NOT_SUP
    if mode == "off" or not tls_available:
        return ENCRYPT_NOT_SUP, (CLOSE if client in (ENCRYPT_ON, ENCRYPT_REQ) else PLAIN)
    if mode == "required":
        if client == ENCRYPT_NOT_SUP:
            return ENCRYPT_REQ, CLOSE
        if client == ENCRYPT_OFF:
            return ENCRYPT_REQ, FULL
        return ENCRYPT_ON, FULL
    # optional
    if client == ENCRYPT_OFF:
        return ENCRYPT_OFF, LOGIN_ONLY
    if client == ENCRYPT_NOT_SUP:
        return ENCRYPT_NOT_SUP, PLAIN
    return ENCRYPT_ON, FULL


def build_reply(encryption: int, version: tuple[int, int, int, int] = SERVER_VERSION) -> bytes:
    """Reply payload: VERSION, ENCRYPTION, INSTOPT, THREADID (empty), MARS (off)."""
    major, minor, build, sub = version
    items = [
        (OPT_VERSION, struct.pack(">BBHH", major, minor, build, sub)),
        (OPT_ENCRYPTION, bytes([encryption])),
        (OPT_INSTOPT, b"\x00"),
        (OPT_THREADID, b""),
        (OPT_MARS, b"\x00"),
    ]
    off = len(items) * 5 + 1
    table = bytearray()
    data = bytearray()
    for token, value in items:
        table += struct.pack(">BHH", token, off + len(data), len(value))
        data += value
    table.append(OPT_TERMINATOR)
    return bytes(table + data)
