"""Token encoders for the server -> client token stream (MS-TDS 2.2.7).

Every function returns bytes. Layouts that changed between TDS versions take
the negotiated version (DONE row count 4/8 bytes, ERROR line number 2/4 bytes,
COLMETADATA UserType 2/4 bytes).
"""
from __future__ import annotations

import struct
from typing import Sequence

from .login7 import TDS72
from .types import COLLATION, ColumnType

COLMETADATA = 0x81
ROW = 0xD1
NBCROW = 0xD2
DONE = 0xFD
DONEPROC = 0xFE
DONEINPROC = 0xFF
ERROR = 0xAA
INFO = 0xAB
ENVCHANGE = 0xE3
LOGINACK = 0xAD
RETURNSTATUS = 0x79
RETURNVALUE = 0xAC

# DONE status bits.
DONE_FINAL = 0x0000
DONE_MORE = 0x0001
DONE_ERROR = 0x0002
DONE_INXACT = 0x0004
DONE_COUNT = 0x0010
DONE_ATTN = 0x0020
DONE_RPCINBATCH = 0x0080
DONE_SRVERROR = 0x0100

# DONE CurCmd values (informational only).
CMD_SELECT = 0xC1
CMD_RPC = 0xE0

# ENVCHANGE types.
ENV_DATABASE = 1
ENV_LANGUAGE = 2
ENV_PACKETSIZE = 4
ENV_COLLATION = 7
ENV_BEGIN_TRAN = 8
ENV_COMMIT_TRAN = 9
ENV_ROLLBACK_TRAN = 10

_DONE72 = struct.Struct("<BHHQ")
_DONE71 = struct.Struct("<BHHI")
_H = struct.Struct("<H")


def b_varchar(s: str) -> bytes:
    """BYTE char count + UTF-16LE (names are cut at 255 characters)."""
    b = s.encode("utf-16-le", "surrogatepass")
    if len(b) > 510:
        b = b[:510]
    return bytes([len(b) // 2]) + b


def us_varchar(s: str) -> bytes:
    b = s.encode("utf-16-le", "surrogatepass")
    if len(b) > 131070:
        b = b[:131070]
    return _H.pack(len(b) // 2) + b


def b_varbyte(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def done(token: int, status: int, curcmd: int, rowcount: int, version: int) -> bytes:
    if version >= TDS72:
        return _DONE72.pack(token, status, curcmd, rowcount & 0xFFFFFFFFFFFFFFFF)
    return _DONE71.pack(token, status, curcmd, rowcount & 0xFFFFFFFF)


def message(number: int, state: int, severity: int, text: str, server: str, proc: str,
            line: int, version: int) -> bytes:
    """ERROR (severity > 10) or INFO token."""
    token = ERROR if severity > 10 else INFO
    body = (struct.pack("<iBB", number, state & 0xFF, min(max(severity, 0), 255))
            + us_varchar(text) + b_varchar(server) + b_varchar(proc)
            + (struct.pack("<i", line) if version >= TDS72 else struct.pack("<H", line & 0xFFFF)))
    return bytes([token]) + _H.pack(len(body)) + body


def envchange(kind: int, new: bytes, old: bytes) -> bytes:
    body = bytes([kind]) + new + old
    return bytes([ENVCHANGE]) + _H.pack(len(body)) + body


def env_database(new: str, old: str) -> bytes:
    return envchange(ENV_DATABASE, b_varchar(new), b_varchar(old))


def env_language(new: str, old: str = "") -> bytes:
    return envchange(ENV_LANGUAGE, b_varchar(new), b_varchar(old))


def env_packet_size(new: int, old: int) -> bytes:
    return envchange(ENV_PACKETSIZE, b_varchar(str(new)), b_varchar(str(old)))


def env_collation(collation: bytes = COLLATION) -> bytes:
    return envchange(ENV_COLLATION, b_varbyte(collation), b"\x00")


def env_transaction(kind: str, descriptor: int) -> bytes:
    """ENVCHANGE 8 (begin: new = descriptor), 9/10 (commit/rollback: old = descriptor)."""
    d = b_varbyte(struct.pack("<Q", descriptor & 0xFFFFFFFFFFFFFFFF))
    if kind == "begin":
        return envchange(ENV_BEGIN_TRAN, d, b"\x00")
    if kind == "commit":
        return envchange(ENV_COMMIT_TRAN, b"\x00", d)
    if kind == "rollback":
        return envchange(ENV_ROLLBACK_TRAN, b"\x00", d)
    raise ValueError(f"unknown transaction change {kind!r}")


def loginack(tds_version: int, progname: str, version: tuple[int, int, int]) -> bytes:
    """LOGINACK. FreeTDS takes the name length from the token length, so it must be exact."""
    major, minor, build = version
    body = (b"\x01" + struct.pack(">I", tds_version) + b_varchar(progname)
            + struct.pack(">BBH", major, minor, build))
    return bytes([LOGINACK]) + _H.pack(len(body)) + body


def returnstatus(value: int) -> bytes:
    return struct.pack("<Bi", RETURNSTATUS, value)


def returnvalue(ordinal: int, name: str, ctype: ColumnType, value, version: int,
                status: int = 0x01) -> bytes:
    usertype = b"\x00\x00\x00\x00" if version >= TDS72 else b"\x00\x00"
    return (bytes([RETURNVALUE]) + _H.pack(ordinal & 0xFFFF) + b_varchar(name) + bytes([status])
            + usertype + b"\x00\x00" + ctype.typeinfo + ctype.encode(value))


def colmetadata(columns: Sequence[tuple[str, ColumnType, int]], version: int) -> bytes:
    """columns: (name, type, flags). Flags 0x0001 = nullable."""
    usertype = b"\x00\x00\x00\x00" if version >= TDS72 else b"\x00\x00"
    parts = [bytes([COLMETADATA]), _H.pack(len(columns))]
    for name, ctype, flags in columns:
        parts.append(usertype)
        parts.append(_H.pack(flags))
        parts.append(ctype.typeinfo)
        if ctype.tablename:
            parts.append(ctype.tablename)
        parts.append(b_varchar(name))
    return b"".join(parts)


def attention_ack(version: int) -> bytes:
    return done(DONE, DONE_ATTN, 0, 0, version)
