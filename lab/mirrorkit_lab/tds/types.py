"""Result-column types: SQL type name -> TYPE_INFO bytes + a value encoder.

``column_type("nvarchar(128)", version)`` is cached, so a result set costs one
dict lookup per column; each encoder turns a Python value (or None) into the
TYPE_VARBYTE bytes of a ROW / RETURNVALUE.

We always send the nullable variants (INTN, BITN, FLTN, ...): every client
accepts them for NOT NULL columns too, and it keeps one encoder per type.
Version downgrades follow what SQL Server does for old clients: below TDS 7.3
DATE/TIME/DATETIME2/DATETIMEOFFSET travel as NVARCHAR strings, below 7.2
the MAX types travel as NTEXT/TEXT/IMAGE.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import re
import struct
import uuid
from functools import lru_cache
from typing import Any, Callable

from .login7 import TDS72, TDS73A

# TDS data type bytes.
INTN = 0x26
BITN = 0x68
FLTN = 0x6D
MONEYN = 0x6E
DATETIMN = 0x6F
DECIMALN = 0x6A
NUMERICN = 0x6C
GUIDTYPE = 0x24
DATENTYPE = 0x28
TIMENTYPE = 0x29
DATETIME2NTYPE = 0x2A
DATETIMEOFFSETNTYPE = 0x2B
BIGVARBINARY = 0xA5
BIGVARCHAR = 0xA7
BIGBINARY = 0xAD
BIGCHAR = 0xAF
NVARCHAR = 0xE7
NCHAR = 0xEF
TEXT = 0x23
NTEXT = 0x63
IMAGE = 0x22

# SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, IgnoreCase|IgnoreKana|IgnoreWidth, SortId 52.
COLLATION = b"\x09\x04\xd0\x00\x34"
CODEPAGE = "cp1252"

PLP_NULL = b"\xff" * 8
_PLP_TERM = b"\x00\x00\x00\x00"
_EPOCH_1900 = _dt.date(1900, 1, 1).toordinal()
_DEC_CTX = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_UP)

Encoder = Callable[[Any], bytes]


class EncodeError(ValueError):
    """A value cannot be represented in its column type (SQL Server would raise
    a conversion or overflow error)."""


class ColumnType:
    """One wire type: ``typeinfo`` bytes for COLMETADATA/RETURNVALUE and ``encode``."""

    __slots__ = ("name", "typeinfo", "encode", "tablename")

    def __init__(self, name: str, typeinfo: bytes, encode: Encoder, tablename: bytes = b""):
        self.name = name
        self.typeinfo = typeinfo
        self.encode = encode
        # TEXT/NTEXT/IMAGE columns carry a table name in COLMETADATA (only there);
        # TDS 7.1 spells an empty one as an empty US_VARCHAR.
        self.tablename = tablename

    def __repr__(self) -> str:  # pragma: no cover
        return f"ColumnType({self.name!r}, {self.typeinfo.hex()})"


# ---------------------------------------------------------------------------
# Parsing type names

_TYPE_RE = re.compile(r"^\s*([a-z_][a-z0-9_ ]*?)\s*(?:\(\s*([^)]*?)\s*\))?\s*$")

_ALIASES = {
    "integer": "int", "dec": "decimal", "double precision": "float",
    "character": "char", "character varying": "varchar", "char varying": "varchar",
    "national character varying": "nvarchar", "national char varying": "nvarchar",
    "national character": "nchar", "national char": "nchar", "national text": "ntext",
    "rowversion": "timestamp", "binary varying": "varbinary",
}


def parse_type_name(sqltype: str) -> tuple[str, tuple[str, ...]]:
    """'Decimal(10, 2)' -> ('decimal', ('10', '2')); 'nvarchar(MAX)' -> ('nvarchar', ('max',))."""
    s = sqltype.strip().lower()
    if s.startswith("[") or "." in s:           # [sys].[nvarchar] and the like
        s = s.replace("[", "").replace("]", "").rsplit(".", 1)[-1]
    m = _TYPE_RE.match(s)
    if not m:
        raise EncodeError(f"unrecognised SQL type {sqltype!r}")
    base = " ".join(m.group(1).split())
    base = _ALIASES.get(base, base)
    args = tuple(a.strip() for a in m.group(2).split(",")) if m.group(2) else ()
    return base, args


def _int_arg(args: tuple[str, ...], i: int, default: int) -> int:
    if len(args) <= i or args[i] == "":
        return default
    try:
        return int(args[i])
    except ValueError:
        raise EncodeError(f"bad type argument {args[i]!r}") from None


def _len_arg(args: tuple[str, ...], default: int, limit: int) -> int | None:
    """Length argument; None means MAX (also for lengths above the non-MAX limit)."""
    if args and args[0] == "max":
        return None
    n = _int_arg(args, 0, default)
    if n > limit:
        return None
    return max(n, 1)


# ---------------------------------------------------------------------------
# Value conversions used when the engine hands us a loosely typed value

def to_text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, _dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, uuid.UUID):
        return str(v).upper()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex().upper()
    return str(v)


def _to_int(v: Any) -> int:
    if isinstance(v, (int, decimal.Decimal, float)):
        return int(v)
    if isinstance(v, str):
        return int(decimal.Decimal(v.strip()))
    raise EncodeError(f"cannot convert {type(v).__name__} to an integer")


def _to_decimal(v: Any) -> decimal.Decimal:
    if isinstance(v, decimal.Decimal):
        return v
    if isinstance(v, float):
        return decimal.Decimal(repr(v))
    if isinstance(v, (int, str)):
        try:
            return decimal.Decimal(v.strip() if isinstance(v, str) else v)
        except decimal.InvalidOperation:
            raise EncodeError(f"cannot convert {v!r} to a number") from None
    raise EncodeError(f"cannot convert {type(v).__name__} to a number")


def _to_bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, uuid.UUID):
        return v.bytes_le
    if isinstance(v, int):
        return v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True)
    raise EncodeError(f"cannot convert {type(v).__name__} to binary")


def _to_datetime(v: Any) -> _dt.datetime:
    if isinstance(v, _dt.datetime):
        return v
    if isinstance(v, _dt.date):
        return _dt.datetime(v.year, v.month, v.day)
    if isinstance(v, str):
        try:
            return _dt.datetime.fromisoformat(v.strip())
        except ValueError:
            raise EncodeError(f"cannot convert {v!r} to a date/time") from None
    raise EncodeError(f"cannot convert {type(v).__name__} to a date/time")


def _to_time(v: Any) -> _dt.time:
    if isinstance(v, _dt.time):
        return v
    if isinstance(v, _dt.datetime):
        return v.time()
    if isinstance(v, str):
        try:
            return _dt.time.fromisoformat(v.strip())
        except ValueError:
            raise EncodeError(f"cannot convert {v!r} to a time") from None
    raise EncodeError(f"cannot convert {type(v).__name__} to a time")


# ---------------------------------------------------------------------------
# Encoders

_INT_FORMATS = {1: "<BB", 2: "<Bh", 4: "<Bi", 8: "<Bq"}
_INT_NAMES = {1: "tinyint", 2: "smallint", 4: "int", 8: "bigint"}


def _intn_encoder(size: int) -> Encoder:
    pack = struct.Struct(_INT_FORMATS[size]).pack
    name = _INT_NAMES[size]

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        try:
            return pack(size, v)
        except struct.error:
            try:
                return pack(size, _to_int(v))
            except struct.error:
                raise EncodeError(
                    f"Arithmetic overflow error converting expression to data type {name}.") from None
    return enc


def _bit_encode(v: Any) -> bytes:
    if v is None:
        return b"\x00"
    if isinstance(v, str):
        v = v.strip().lower() not in ("0", "", "false")
    return b"\x01\x01" if v else b"\x01\x00"


def _float_encoder(size: int) -> Encoder:
    pack = struct.Struct("<Bd" if size == 8 else "<Bf").pack

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        try:
            return pack(size, v)
        except (struct.error, TypeError):
            try:
                return pack(size, float(_to_decimal(v)))
            except (struct.error, OverflowError):
                raise EncodeError("Arithmetic overflow error for type real.") from None
    return enc


def decimal_size(precision: int) -> int:
    """Magnitude bytes for a precision (MS-TDS 2.2.5.5.1.4)."""
    if precision <= 9:
        return 4
    if precision <= 19:
        return 8
    if precision <= 28:
        return 12
    return 16


def _decimal_encoder(precision: int, scale: int) -> Encoder:
    size = decimal_size(precision)
    limit = 10 ** precision
    head_pos = bytes([size + 1, 1])
    head_neg = bytes([size + 1, 0])

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        d = _to_decimal(v)
        if not d.is_finite():
            raise EncodeError(f"cannot send {d} as decimal({precision},{scale})")
        n = int(d.scaleb(scale, _DEC_CTX).to_integral_value(context=_DEC_CTX))
        head = head_pos
        if n < 0:
            n = -n
            head = head_neg
        if n >= limit:
            raise EncodeError(
                f"Arithmetic overflow error converting numeric to data type numeric({precision},{scale}).")
        return head + n.to_bytes(size, "little")
    return enc


def _money_encoder(size: int) -> Encoder:
    pack8 = struct.Struct("<BiI").pack
    pack4 = struct.Struct("<Bi").pack

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        d = _to_decimal(v)
        n = int(d.scaleb(4, _DEC_CTX).to_integral_value(context=_DEC_CTX))
        try:
            if size == 8:
                return pack8(8, n >> 32, n & 0xFFFFFFFF)
            return pack4(4, n)
        except struct.error:
            raise EncodeError("Arithmetic overflow error converting expression to data type money.") from None
    return enc


def _datetime_ticks(v: _dt.datetime) -> tuple[int, int]:
    """(days since 1900-01-01, 1/300 s ticks since midnight) for DATETIME."""
    days = v.toordinal() - _EPOCH_1900
    us = ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    ticks = (us * 3 + 5000) // 10000
    if ticks >= 25_920_000:            # rounded up to the next midnight
        days += 1
        ticks -= 25_920_000
    return days, ticks


def _datetime_encoder(size: int) -> Encoder:
    pack8 = struct.Struct("<BiI").pack
    pack4 = struct.Struct("<BHH").pack

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        d = _to_datetime(v)
        if size == 8:
            days, ticks = _datetime_ticks(d)
            try:
                return pack8(8, days, ticks)
            except struct.error:
                raise EncodeError("datetime value out of range") from None
        days = d.toordinal() - _EPOCH_1900
        minutes = d.hour * 60 + d.minute + (1 if d.second * 1_000_000 + d.microsecond >= 29_999_000 else 0)
        if minutes >= 1440:
            days += 1
            minutes -= 1440
        try:
            return pack4(4, days, minutes)
        except struct.error:
            raise EncodeError("smalldatetime value out of range") from None
    return enc


def _time_len(scale: int) -> int:
    return 3 if scale <= 2 else 4 if scale <= 4 else 5


def _time_ticks(t: _dt.time | _dt.datetime, scale: int) -> tuple[int, int]:
    """(ticks of 10**-scale s since midnight, day carry) with round-half-up."""
    us = ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
    if scale >= 6:
        ticks = us * 10 ** (scale - 6)
    else:
        div = 10 ** (6 - scale)
        ticks = (us + div // 2) // div
    day = 86400 * 10 ** scale
    if ticks >= day:
        return ticks - day, 1
    return ticks, 0


def _date_bytes(d: _dt.date, carry: int = 0) -> bytes:
    days = d.toordinal() - 1 + carry
    if not 0 <= days < 3_652_059:
        raise EncodeError("date value out of range")
    return days.to_bytes(3, "little")


def _date_encode(v: Any) -> bytes:
    if v is None:
        return b"\x00"
    if isinstance(v, _dt.datetime):
        v = v.date()
    elif not isinstance(v, _dt.date):
        v = _to_datetime(v).date()
    return b"\x03" + _date_bytes(v)


def _time_encoder(scale: int) -> Encoder:
    tlen = _time_len(scale)
    head = bytes([tlen])

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        ticks, _ = _time_ticks(_to_time(v), scale)
        return head + ticks.to_bytes(tlen, "little")
    return enc


def _datetime2_encoder(scale: int) -> Encoder:
    tlen = _time_len(scale)
    head = bytes([tlen + 3])

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        d = _to_datetime(v)
        ticks, carry = _time_ticks(d, scale)
        return head + ticks.to_bytes(tlen, "little") + _date_bytes(d, carry)
    return enc


def _datetimeoffset_encoder(scale: int) -> Encoder:
    tlen = _time_len(scale)
    head = bytes([tlen + 5])
    off_pack = struct.Struct("<h").pack

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        d = _to_datetime(v)
        offset = 0
        if d.tzinfo is not None and d.utcoffset() is not None:
            delta = d.utcoffset()
            offset = int(delta.total_seconds() // 60)
            d = (d - delta).replace(tzinfo=None)   # UTC wall time
        ticks, carry = _time_ticks(d, scale)
        return head + ticks.to_bytes(tlen, "little") + _date_bytes(d, carry) + off_pack(offset)
    return enc


def _guid_encode(v: Any) -> bytes:
    if v is None:
        return b"\x00"
    if not isinstance(v, uuid.UUID):
        try:
            if isinstance(v, (bytes, bytearray)) and len(v) == 16:
                v = uuid.UUID(bytes=bytes(v))
            else:
                v = uuid.UUID(str(v).strip())
        except ValueError:
            raise EncodeError(
                "Conversion failed when converting from a character string to uniqueidentifier.") from None
    return b"\x10" + v.bytes_le


def _short_encoder(maxbytes: int, to_raw: Callable[[Any], bytes], pad: bytes | None = None) -> Encoder:
    """USHORT-length values (n)varchar/(n)char/(var)binary. Values longer than the
    declared length are truncated, as CAST would do; fixed types are padded."""
    pack = struct.Struct("<H").pack

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\xff\xff"
        b = to_raw(v)
        n = len(b)
        if n > maxbytes:
            b = b[:maxbytes]
            n = maxbytes
        elif pad is not None and n < maxbytes:
            b = b + pad * ((maxbytes - n) // len(pad))
            n = maxbytes
        return pack(n) + b
    return enc


def _plp_encoder(to_raw: Callable[[Any], bytes]) -> Encoder:
    """PLP (MAX types): total length, one chunk, terminator."""
    pack = struct.Struct("<QI").pack

    def enc(v: Any) -> bytes:
        if v is None:
            return PLP_NULL
        b = to_raw(v)
        n = len(b)
        if n == 0:
            return b"\x00" * 8 + _PLP_TERM
        return pack(n, n) + b + _PLP_TERM
    return enc


# Legacy text pointer values (TDS 7.1 MAX replacement). FreeTDS treats this
# particular pointer as "no real text pointer" from 7.2 on; any 16 bytes work.
_TEXTPTR = b"\x10" + b"dummy textptr\x00\x00\x00" + b"\x00" * 8


def _blob_encoder(to_raw: Callable[[Any], bytes]) -> Encoder:
    pack = struct.Struct("<i").pack

    def enc(v: Any) -> bytes:
        if v is None:
            return b"\x00"
        b = to_raw(v)
        return _TEXTPTR + pack(len(b)) + b
    return enc


def _utf16(v: Any) -> bytes:
    return (v if isinstance(v, str) else to_text(v)).encode("utf-16-le", "surrogatepass")


def _cp1252(v: Any) -> bytes:
    return (v if isinstance(v, str) else to_text(v)).encode(CODEPAGE, "replace")


# ---------------------------------------------------------------------------
# Building column types

def _nvarchar(nchars: int | None, version: int, name: str) -> ColumnType:
    if nchars is None:
        if version < TDS72:
            return ColumnType(name, bytes([NTEXT]) + struct.pack("<i", 0x3FFFFFFF) + COLLATION,
                              _blob_encoder(_utf16), b"\x00\x00")
        return ColumnType(name, bytes([NVARCHAR]) + b"\xff\xff" + COLLATION, _plp_encoder(_utf16))
    return ColumnType(name, bytes([NVARCHAR]) + struct.pack("<H", 2 * nchars) + COLLATION,
                      _short_encoder(2 * nchars, _utf16))


def _varchar(n: int | None, version: int, name: str) -> ColumnType:
    if n is None:
        if version < TDS72:
            return ColumnType(name, bytes([TEXT]) + struct.pack("<i", 0x7FFFFFFF) + COLLATION,
                              _blob_encoder(_cp1252), b"\x00\x00")
        return ColumnType(name, bytes([BIGVARCHAR]) + b"\xff\xff" + COLLATION, _plp_encoder(_cp1252))
    return ColumnType(name, bytes([BIGVARCHAR]) + struct.pack("<H", n) + COLLATION,
                      _short_encoder(n, _cp1252))


def _varbinary(n: int | None, version: int, name: str) -> ColumnType:
    if n is None:
        if version < TDS72:
            return ColumnType(name, bytes([IMAGE]) + struct.pack("<i", 0x7FFFFFFF),
                              _blob_encoder(_to_bytes), b"\x00\x00")
        return ColumnType(name, bytes([BIGVARBINARY]) + b"\xff\xff", _plp_encoder(_to_bytes))
    return ColumnType(name, bytes([BIGVARBINARY]) + struct.pack("<H", n), _short_encoder(n, _to_bytes))


def _string_form(name: str, nchars: int, fmt: Callable[[Any], str]) -> ColumnType:
    """Pre-7.3 clients get the 2008 date/time types as strings, like SQL Server does."""
    inner = _short_encoder(2 * nchars, lambda v: fmt(v).encode("utf-16-le"))
    return ColumnType(name, bytes([NVARCHAR]) + struct.pack("<H", 2 * nchars) + COLLATION, inner)


def _fmt_fraction(us: int, scale: int) -> str:
    if scale == 0:
        return ""
    return "." + f"{us:06d}{'0' * max(0, scale - 6)}"[:scale]


def _fmt_time(v: Any, scale: int) -> str:
    t = _to_time(v)
    return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}" + _fmt_fraction(t.microsecond, scale)


def _fmt_datetime2(v: Any, scale: int) -> str:
    d = _to_datetime(v)
    return f"{d.date().isoformat()} " + _fmt_time(d.time(), scale)


def _fmt_datetimeoffset(v: Any, scale: int) -> str:
    d = _to_datetime(v)
    off = d.utcoffset() if d.tzinfo is not None else None
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return _fmt_datetime2(d.replace(tzinfo=None), scale) + f" {sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _scale_arg(args: tuple[str, ...]) -> int:
    s = _int_arg(args, 0, 7)
    if not 0 <= s <= 7:
        raise EncodeError(f"bad fractional seconds precision {s}")
    return s


@lru_cache(maxsize=1024)
def column_type(sqltype: str, version: int) -> ColumnType:
    """The wire type for an engine type name at a negotiated TDS version.

    A missing length ("nvarchar") means the largest non-MAX length, so values
    are never cut; lengths above it mean MAX. Values longer than a declared
    length are truncated (as CAST does) rather than overflowing the client.
    """
    base, args = parse_type_name(sqltype)
    name = sqltype
    if base in ("int", "bigint", "smallint", "tinyint"):
        size = {"tinyint": 1, "smallint": 2, "int": 4, "bigint": 8}[base]
        return ColumnType(name, bytes([INTN, size]), _intn_encoder(size))
    if base == "bit":
        return ColumnType(name, bytes([BITN, 1]), _bit_encode)
    if base == "float":
        size = 4 if args and _int_arg(args, 0, 53) <= 24 else 8
        return ColumnType(name, bytes([FLTN, size]), _float_encoder(size))
    if base == "real":
        return ColumnType(name, bytes([FLTN, 4]), _float_encoder(4))
    if base in ("decimal", "numeric"):
        p = _int_arg(args, 0, 18)
        s = _int_arg(args, 1, 0)
        if not (1 <= p <= 38 and 0 <= s <= p):
            raise EncodeError(f"bad precision/scale in {sqltype!r}")
        tds = DECIMALN if base == "decimal" else NUMERICN
        return ColumnType(name, bytes([tds, decimal_size(p) + 1, p, s]), _decimal_encoder(p, s))
    if base in ("money", "smallmoney"):
        size = 8 if base == "money" else 4
        return ColumnType(name, bytes([MONEYN, size]), _money_encoder(size))
    if base in ("datetime", "smalldatetime"):
        size = 8 if base == "datetime" else 4
        return ColumnType(name, bytes([DATETIMN, size]), _datetime_encoder(size))
    if base == "uniqueidentifier":
        return ColumnType(name, bytes([GUIDTYPE, 16]), _guid_encode)
    if base == "date":
        if version < TDS73A:
            return _string_form(name, 10, lambda v: _to_datetime(v).date().isoformat())
        return ColumnType(name, bytes([DATENTYPE]), _date_encode)
    if base == "time":
        s = _scale_arg(args)
        if version < TDS73A:
            return _string_form(name, 8 + (s + 1 if s else 0), lambda v: _fmt_time(v, s))
        return ColumnType(name, bytes([TIMENTYPE, s]), _time_encoder(s))
    if base == "datetime2":
        s = _scale_arg(args)
        if version < TDS73A:
            return _string_form(name, 19 + (s + 1 if s else 0), lambda v: _fmt_datetime2(v, s))
        return ColumnType(name, bytes([DATETIME2NTYPE, s]), _datetime2_encoder(s))
    if base == "datetimeoffset":
        s = _scale_arg(args)
        if version < TDS73A:
            return _string_form(name, 26 + (s + 1 if s else 0), lambda v: _fmt_datetimeoffset(v, s))
        return ColumnType(name, bytes([DATETIMEOFFSETNTYPE, s]), _datetimeoffset_encoder(s))
    if base == "sysname":
        return _nvarchar(128, version, name)
    if base == "nvarchar":
        return _nvarchar(_len_arg(args, 4000, 4000), version, name)
    if base in ("ntext", "xml"):
        return _nvarchar(None, version, name)
    if base == "sql_variant":
        # No sql_variant on the wire: clients get its text form.
        return _nvarchar(4000, version, name)
    if base == "varchar":
        return _varchar(_len_arg(args, 8000, 8000), version, name)
    if base == "text":
        return _varchar(None, version, name)
    if base in ("varbinary",):
        return _varbinary(_len_arg(args, 8000, 8000), version, name)
    if base in ("image", "hierarchyid", "geometry", "geography"):
        return _varbinary(None, version, name)
    if base == "nchar":
        n = _len_arg(args, 1, 4000) or 4000
        return ColumnType(name, bytes([NCHAR]) + struct.pack("<H", 2 * n) + COLLATION,
                          _short_encoder(2 * n, _utf16, pad=" ".encode("utf-16-le")))
    if base == "char":
        n = _len_arg(args, 1, 8000) or 8000
        return ColumnType(name, bytes([BIGCHAR]) + struct.pack("<H", n) + COLLATION,
                          _short_encoder(n, _cp1252, pad=b" "))
    if base in ("binary", "timestamp"):
        n = 8 if base == "timestamp" else (_len_arg(args, 1, 8000) or 8000)
        return ColumnType(name, bytes([BIGBINARY]) + struct.pack("<H", n),
                          _short_encoder(n, _to_bytes, pad=b"\x00"))
    raise EncodeError(f"the lab's TDS layer cannot send SQL type {sqltype!r}")
