"""Decoding RPC parameters (TYPE_INFO + value) into Python values, and parsing
sp_executesql/sp_prepare declaration strings ("@P1 INT,@P2 NVARCHAR(2)").

Clients send what they like (MS-TDS 2.2.5.4/2.2.5.5); notable quirks:
FreeTDS sends NUMERICN values with only as many magnitude bytes as the
precision needs (len - 1), statements as NTEXT, and NULL strings as
VARCHAR(1); pytds sends every string as NVARCHAR(MAX) with an unknown PLP
length. RPC parameters never carry text pointers or table names.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import struct
import uuid
from typing import Any

from . import types as T
from .packets import ProtocolError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_EPOCH_1900 = _dt.datetime(1900, 1, 1)
_PLP_NULL = 0xFFFFFFFFFFFFFFFF
_PLP_UNKNOWN = 0xFFFFFFFFFFFFFFFE

# Fixed-length types (no length byte).
INT1, BIT, INT2, INT4, INT8 = 0x30, 0x32, 0x34, 0x38, 0x7F
REAL, FLOAT, DATETIME, SMALLDATETIME, MONEY, SMALLMONEY = 0x3B, 0x3E, 0x3D, 0x3A, 0x3C, 0x7A
NULLTYPE = 0x1F
XML = 0xF1
SQL_VARIANT = 0x62
UDT = 0xF0
TVP = 0xF3


class UnsupportedParameter(Exception):
    """A well-formed parameter the lab cannot take (sql_variant, TVP, UDT...)."""


class Reader:
    """Bounds-checked cursor over a request payload. Truncation -> ProtocolError."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        p = self.pos
        if n < 0 or p + n > self.end:
            raise ProtocolError("request truncated")
        self.pos = p + n
        return self.data[p:p + n]

    def u8(self) -> int:
        p = self.pos
        if p >= self.end:
            raise ProtocolError("request truncated")
        self.pos = p + 1
        return self.data[p]

    def peek(self) -> int:
        if self.pos >= self.end:
            raise ProtocolError("request truncated")
        return self.data[self.pos]

    def _unpack(self, st: struct.Struct) -> int:
        p = self.pos
        if p + st.size > self.end:
            raise ProtocolError("request truncated")
        self.pos = p + st.size
        return st.unpack_from(self.data, p)[0]

    def u16(self) -> int:
        return self._unpack(_U16)

    def u32(self) -> int:
        return self._unpack(_U32)

    def u64(self) -> int:
        return self._unpack(_U64)

    def b_varchar(self) -> str:
        n = self.u8()
        return self.take(2 * n).decode("utf-16-le", errors="replace")

    def us_varchar(self) -> str:
        n = self.u16()
        return self.take(2 * n).decode("utf-16-le", errors="replace")


class TypeInfo:
    __slots__ = ("tds", "maxlen", "precision", "scale", "collation")

    def __init__(self, tds: int, maxlen: int = 0, precision: int = 0, scale: int = 0,
                 collation: bytes = b""):
        self.tds = tds
        self.maxlen = maxlen
        self.precision = precision
        self.scale = scale
        self.collation = collation


_BYTELEN_TYPES = {T.INTN, T.BITN, T.FLTN, T.MONEYN, T.DATETIMN, T.GUIDTYPE}
_USHORT_TYPES = {T.BIGVARCHAR, T.BIGCHAR, T.NVARCHAR, T.NCHAR, T.BIGVARBINARY, T.BIGBINARY}
_COLLATED = {T.BIGVARCHAR, T.BIGCHAR, T.NVARCHAR, T.NCHAR, T.TEXT, T.NTEXT}
_FIXED = {INT1: 1, BIT: 1, INT2: 2, INT4: 4, INT8: 8, REAL: 4, FLOAT: 8, DATETIME: 8,
          SMALLDATETIME: 4, MONEY: 8, SMALLMONEY: 4, NULLTYPE: 0}


def read_type_info(r: Reader) -> TypeInfo:
    t = r.u8()
    if t in _FIXED:
        return TypeInfo(t, _FIXED[t])
    if t in _BYTELEN_TYPES:
        return TypeInfo(t, r.u8())
    if t in (T.DECIMALN, T.NUMERICN):
        maxlen = r.u8()
        return TypeInfo(t, maxlen, r.u8(), r.u8())
    if t == T.DATENTYPE:
        return TypeInfo(t, 3)
    if t in (T.TIMENTYPE, T.DATETIME2NTYPE, T.DATETIMEOFFSETNTYPE):
        scale = r.u8()
        if scale > 7:
            raise ProtocolError(f"bad time scale {scale}")
        return TypeInfo(t, 0, 0, scale)
    if t in _USHORT_TYPES:
        maxlen = r.u16()
        coll = r.take(5) if t in _COLLATED else b""
        return TypeInfo(t, maxlen, collation=coll)
    if t in (T.TEXT, T.NTEXT, T.IMAGE):
        maxlen = r.u32()
        coll = r.take(5) if t in _COLLATED else b""
        return TypeInfo(t, maxlen, collation=coll)
    if t == XML:
        if r.u8():   # schema info present: dbname, owner, collection
            r.b_varchar()
            r.b_varchar()
            r.us_varchar()
        return TypeInfo(t, 0xFFFF)
    if t in (SQL_VARIANT, UDT, TVP):
        name = {SQL_VARIANT: "sql_variant", UDT: "CLR UDT", TVP: "table-valued"}[t]
        raise UnsupportedParameter(f"{name} parameters are not supported by the lab")
    raise ProtocolError(f"unknown parameter type 0x{t:02x}")


def _read_plp(r: Reader) -> bytes | None:
    total = r.u64()
    if total == _PLP_NULL:
        return None
    chunks = []
    while True:
        n = r.u32()
        if n == 0:
            break
        chunks.append(r.take(n))
    data = b"".join(chunks)
    if total != _PLP_UNKNOWN and total != len(data):
        raise ProtocolError("PLP length does not match its chunks")
    return data


def _codec(collation: bytes) -> str:
    # Bit 26 of the collation word marks the SQL Server 2019 UTF-8 collations.
    if len(collation) == 5 and (int.from_bytes(collation[:4], "little") >> 26) & 1:
        return "utf-8"
    return T.CODEPAGE


def _decode_chars(raw: bytes, ti: TypeInfo) -> str:
    if ti.tds in (T.NVARCHAR, T.NCHAR, T.NTEXT):
        return raw.decode("utf-16-le", errors="replace")
    return raw.decode(_codec(ti.collation), errors="replace")


_TYPE_NAMES: dict[tuple, str] = {}


def type_name(ti: TypeInfo) -> str:
    """The SQL Server type name a TYPE_INFO stands for (memoised: hot in RPCs)."""
    key = (ti.tds, ti.maxlen, ti.precision, ti.scale)
    name = _TYPE_NAMES.get(key)
    if name is None:
        name = _type_name(ti)
        if len(_TYPE_NAMES) < 4096:
            _TYPE_NAMES[key] = name
    return name


def _type_name(ti: TypeInfo) -> str:
    t = ti.tds
    if t == T.INTN or t in (INT1, INT2, INT4, INT8):
        size = ti.maxlen if t == T.INTN else _FIXED[t]
        return {1: "tinyint", 2: "smallint", 4: "int", 8: "bigint"}.get(size, "int")
    if t in (T.BITN, BIT):
        return "bit"
    if t in (T.FLTN, REAL, FLOAT):
        return "real" if ti.maxlen == 4 else "float"
    if t in (T.MONEYN, MONEY, SMALLMONEY):
        return "smallmoney" if ti.maxlen == 4 else "money"
    if t in (T.DATETIMN, DATETIME, SMALLDATETIME):
        return "smalldatetime" if ti.maxlen == 4 else "datetime"
    if t == T.DECIMALN:
        return f"decimal({ti.precision},{ti.scale})"
    if t == T.NUMERICN:
        return f"numeric({ti.precision},{ti.scale})"
    if t == T.GUIDTYPE:
        return "uniqueidentifier"
    if t == T.DATENTYPE:
        return "date"
    if t == T.TIMENTYPE:
        return f"time({ti.scale})"
    if t == T.DATETIME2NTYPE:
        return f"datetime2({ti.scale})"
    if t == T.DATETIMEOFFSETNTYPE:
        return f"datetimeoffset({ti.scale})"
    if t in (T.NVARCHAR, T.NCHAR):
        base = "nvarchar" if t == T.NVARCHAR else "nchar"
        return f"{base}(max)" if ti.maxlen == 0xFFFF else f"{base}({max(ti.maxlen // 2, 1)})"
    if t in (T.BIGVARCHAR, T.BIGCHAR, T.BIGVARBINARY, T.BIGBINARY):
        base = {T.BIGVARCHAR: "varchar", T.BIGCHAR: "char", T.BIGVARBINARY: "varbinary",
                T.BIGBINARY: "binary"}[t]
        return f"{base}(max)" if ti.maxlen == 0xFFFF else f"{base}({max(ti.maxlen, 1)})"
    if t == T.NTEXT:
        return "ntext"
    if t == T.TEXT:
        return "text"
    if t == T.IMAGE:
        return "image"
    if t == XML:
        return "xml"
    return "int"     # NULLTYPE: an untyped NULL is an int in SQL Server


def _time_us(raw: bytes, scale: int) -> int:
    ticks = int.from_bytes(raw, "little")
    if scale >= 6:
        return ticks // 10 ** (scale - 6)
    return ticks * 10 ** (6 - scale)


def _time_from_us(us: int) -> _dt.time:
    if us >= 86_400_000_000:
        raise ProtocolError("time value out of range")
    s, us = divmod(us, 1_000_000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return _dt.time(h, m, s, us)


def _date_from_days(raw: bytes) -> _dt.date:
    days = int.from_bytes(raw, "little")
    try:
        return _dt.date.fromordinal(days + 1)
    except ValueError:
        raise ProtocolError("date value out of range") from None


def _decode_fixed(t: int, raw: bytes, ti: TypeInfo) -> Any:
    """Values of the length-prefixed scalar types (raw excludes the length)."""
    n = len(raw)
    if t in (T.INTN, INT1, INT2, INT4, INT8):
        if n not in (1, 2, 4, 8):
            raise ProtocolError(f"bad integer length {n}")
        return int.from_bytes(raw, "little", signed=n > 1)
    if t in (T.BITN, BIT):
        return raw != b"\x00" * n
    if t in (T.FLTN, REAL, FLOAT):
        if n == 4:
            return struct.unpack("<f", raw)[0]
        if n == 8:
            return struct.unpack("<d", raw)[0]
        raise ProtocolError(f"bad float length {n}")
    if t in (T.MONEYN, MONEY, SMALLMONEY):
        if n == 8:
            hi, lo = struct.unpack("<iI", raw)
            v = (hi << 32) | lo
        elif n == 4:
            v = struct.unpack("<i", raw)[0]
        else:
            raise ProtocolError(f"bad money length {n}")
        return decimal.Decimal(v).scaleb(-4)
    if t in (T.DATETIMN, DATETIME, SMALLDATETIME):
        if n == 8:
            days, ticks = struct.unpack("<iI", raw)
            us = (ticks * 20000 + 3) // 6          # 1/300 s -> microseconds, rounded
        elif n == 4:
            days, minutes = struct.unpack("<HH", raw)
            us = minutes * 60_000_000
        else:
            raise ProtocolError(f"bad datetime length {n}")
        try:
            return _EPOCH_1900 + _dt.timedelta(days=days, microseconds=us)
        except OverflowError:
            raise ProtocolError("datetime value out of range") from None
    if t == T.GUIDTYPE:
        if n != 16:
            raise ProtocolError(f"bad uniqueidentifier length {n}")
        return uuid.UUID(bytes_le=raw)
    if t in (T.DECIMALN, T.NUMERICN):
        if n < 2:
            raise ProtocolError("bad decimal length")
        mag = int.from_bytes(raw[1:], "little")
        sign = "" if raw[0] else "-"
        return decimal.Decimal(f"{sign}{mag}E-{ti.scale}")
    if t == T.DATENTYPE:
        if n != 3:
            raise ProtocolError("bad date length")
        return _date_from_days(raw)
    if t == T.TIMENTYPE:
        return _time_from_us(_time_us(raw, ti.scale))
    if t == T.DATETIME2NTYPE:
        if n < 4:
            raise ProtocolError("bad datetime2 length")
        d = _date_from_days(raw[-3:])
        return _dt.datetime.combine(d, _time_from_us(_time_us(raw[:-3], ti.scale)))
    if t == T.DATETIMEOFFSETNTYPE:
        if n < 6:
            raise ProtocolError("bad datetimeoffset length")
        offset = struct.unpack("<h", raw[-2:])[0]
        d = _date_from_days(raw[-5:-2])
        utc = _dt.datetime.combine(d, _time_from_us(_time_us(raw[:-5], ti.scale)))
        try:
            tz = _dt.timezone(_dt.timedelta(minutes=offset))
        except ValueError:
            raise ProtocolError("bad datetimeoffset offset") from None
        return (utc + _dt.timedelta(minutes=offset)).replace(tzinfo=tz)
    raise ProtocolError(f"unexpected type 0x{t:02x}")   # pragma: no cover


def read_value(r: Reader, ti: TypeInfo) -> Any:
    t = ti.tds
    if t == T.INTN:                 # fast path: the most common parameter type
        n = r.u8()
        if n == 0:
            return None
        if n not in (1, 2, 4, 8):
            raise ProtocolError(f"bad integer length {n}")
        return int.from_bytes(r.take(n), "little", signed=n > 1)
    if t in _FIXED:
        if t == NULLTYPE:
            return None
        return _decode_fixed(t, r.take(ti.maxlen), ti)
    if t in _USHORT_TYPES:
        if ti.maxlen == 0xFFFF:
            raw = _read_plp(r)
        else:
            n = r.u16()
            raw = None if n == 0xFFFF else r.take(n)
        if raw is None:
            return None
        if t in (T.BIGVARBINARY, T.BIGBINARY):
            return raw
        return _decode_chars(raw, ti)
    if t in (T.TEXT, T.NTEXT, T.IMAGE):
        n = r.u32()
        if n == 0xFFFFFFFF:
            return None
        raw = r.take(n)
        return raw if t == T.IMAGE else _decode_chars(raw, ti)
    if t == XML:
        raw = _read_plp(r)
        return None if raw is None else raw.decode("utf-16-le", errors="replace")
    # Byte-length types (0 = NULL).
    n = r.u8()
    if n == 0:
        return None
    return _decode_fixed(t, r.take(n), ti)


def read_param_value(r: Reader) -> tuple[str, Any]:
    """TYPE_INFO + value -> (SQL type name, Python value)."""
    ti = read_type_info(r)
    return type_name(ti), read_value(r, ti)



