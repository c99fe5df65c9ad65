"""SQL Server type names, precedence, and conversion between SQLite storage and Python.

Inside SQLite the lab stores datetimes as sortable text ('YYYY-MM-DD HH:MM:SS.fff'),
uniqueidentifiers as text, bits as 0/1 and binaries as BLOBs.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from .errors import SqlError

STRING_TYPES = {"char", "varchar", "nchar", "nvarchar", "text", "ntext", "sysname"}
UNICODE_TYPES = {"nchar", "nvarchar", "ntext", "sysname"}
BINARY_TYPES = {"binary", "varbinary", "image", "timestamp", "rowversion"}
INTEGER_TYPES = {"tinyint", "smallint", "int", "bigint"}
EXACT_TYPES = INTEGER_TYPES | {"bit", "decimal", "numeric", "money", "smallmoney"}
DATETIME_TYPES = {"datetime", "datetime2", "smalldatetime", "date", "time", "datetimeoffset"}
KNOWN_TYPES = (STRING_TYPES | BINARY_TYPES | EXACT_TYPES | DATETIME_TYPES |
               {"float", "real", "uniqueidentifier", "sql_variant", "xml"})

# higher wins (docs: t-sql/data-types/data-type-precedence-transact-sql.md)
_PRECEDENCE = ["binary", "varbinary", "char", "varchar", "nchar", "nvarchar", "sysname",
               "uniqueidentifier", "bit", "tinyint", "smallint", "int", "bigint", "smallmoney",
               "money", "decimal", "numeric", "real", "float", "date", "time", "smalldatetime",
               "datetime", "datetime2", "datetimeoffset", "sql_variant"]
PRECEDENCE = {name: i for i, name in enumerate(_PRECEDENCE)}

_TYPE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\(\s*([^)]*)\s*\))?\s*$")


@dataclass(frozen=True)
class SqlType:
    base: str                  # lower-case base name
    length: int | None = None  # chars/bytes; -1 = max
    precision: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.base in ("decimal", "numeric"):
            return f"{self.base}({self.precision or 18},{self.scale or 0})"
        if self.base in ("datetime2", "time", "datetimeoffset") and self.scale is not None:
            return f"{self.base}({self.scale})"
        if self.length is not None:
            return f"{self.base}({'max' if self.length == -1 else self.length})"
        return self.base

    @property
    def is_string(self) -> bool:
        return self.base in STRING_TYPES

    @property
    def is_binary(self) -> bool:
        return self.base in BINARY_TYPES

    @property
    def is_datetime(self) -> bool:
        return self.base in DATETIME_TYPES

    @property
    def is_numeric(self) -> bool:
        return self.base in EXACT_TYPES or self.base in ("float", "real")


@lru_cache(maxsize=512)
def parse_type(text: str) -> SqlType:
    m = _TYPE_RE.match(text)
    if not m:
        raise SqlError(102, text, abort_batch=True)
    base = m.group(1).lower()
    if base == "sysname":
        return SqlType("nvarchar", 128)
    if base == "integer":
        base = "int"
    if base not in KNOWN_TYPES:
        raise SqlError(2715, 1, text, abort_batch=True)
    args = [a.strip() for a in m.group(2).split(",")] if m.group(2) else []
    if base in ("decimal", "numeric"):
        p = int(args[0]) if args else 18
        s = int(args[1]) if len(args) > 1 else 0
        return SqlType(base, precision=p, scale=s)
    if base in ("datetime2", "time", "datetimeoffset"):
        return SqlType(base, scale=int(args[0]) if args else 7)
    if base in ("char", "varchar", "nchar", "nvarchar", "binary", "varbinary"):
        if not args:
            return SqlType(base, 1)
        return SqlType(base, -1 if args[0].lower() == "max" else int(args[0]))
    return SqlType(base)


def higher(a: str, b: str) -> str:
    """The result type of combining two types (data type precedence)."""
    ta, tb = parse_type(a), parse_type(b)
    if PRECEDENCE.get(ta.base, 0) >= PRECEDENCE.get(tb.base, 0):
        return a
    return b


# -- datetime text ---------------------------------------------------------------------
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_ISO_RE = re.compile(
    r"^\s*(\d{4})-?(\d{2})-?(\d{2})(?:[T ]\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:[.:](\d{1,7}))?)?"
    r"\s*(AM|PM)?)?\s*(Z|[+-]\d{2}:\d{2})?\s*$", re.I)
_MDY_RE = re.compile(
    r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?"
    r"\s*(AM|PM)?)?\s*$", re.I)
_MON_RE = re.compile(
    r"^\s*([A-Za-z]{3})[a-z]*\s+(\d{1,2}),?\s+(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})"
    r"(?:\.(\d{1,7}))?)?\s*(AM|PM)?)?\s*$", re.I)
_TIME_ONLY_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?\s*(AM|PM)?\s*$", re.I)


def parse_datetime(text: str) -> datetime:
    """Strings SQL Server converts to datetime under SET LANGUAGE us_english (mdy)."""
    s = text.strip()
    for regex, order in ((_ISO_RE, "ymd"), (_MDY_RE, "mdy"), (_MON_RE, "mon")):
        m = regex.match(s)
        if not m:
            continue
        g = m.groups()
        try:
            if order == "ymd":
                y, mo, d = int(g[0]), int(g[1]), int(g[2])
            elif order == "mdy":
                mo, d, y = int(g[0]), int(g[1]), int(g[2])
                if y < 100:
                    y += 2000 if y < 50 else 1900
            else:
                mo = _MONTHS.get(g[0][:3].lower())
                if mo is None:
                    break
                d, y = int(g[1]), int(g[2])
            hh = int(g[3] or 0)
            mi = int(g[4] or 0)
            ss = int(g[5] or 0)
            frac = (g[6] or "0").ljust(7, "0")[:6]
            ampm = g[7]
            if ampm:
                if hh > 12:
                    break
                hh = hh % 12 + (12 if ampm.upper() == "PM" else 0)
            return datetime(y, mo, d, hh, mi, ss, int(frac))
        except ValueError:
            break
    m = _TIME_ONLY_RE.match(s)
    if m:
        hh, mi, ss = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if m.group(5):
            hh = hh % 12 + (12 if m.group(5).upper() == "PM" else 0)
        try:
            return datetime(1900, 1, 1, hh, mi, ss)
        except ValueError:
            pass
    if s == "":
        return datetime(1900, 1, 1)
    raise SqlError(241)


def datetime_text(d: datetime, base: str = "datetime") -> str:
    if base == "datetime2":
        return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{d.microsecond:06d}0"
    if base == "date":
        return d.strftime("%Y-%m-%d")
    # datetime keeps 1/300 s; the lab keeps milliseconds
    return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{d.microsecond // 1000:03d}"


# -- Python <-> SQLite -------------------------------------------------------------------
def to_sqlite(value, sqltype: str | None = None):
    if value is None or isinstance(value, (int, float, str, bytes)):
        if isinstance(value, bool):
            return int(value)
        return value
    if isinstance(value, datetime):
        return datetime_text(value.replace(tzinfo=None), parse_type(sqltype).base if sqltype else "datetime")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, uuid.UUID):
        return str(value).upper()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value)


def from_sqlite(value, sqltype: SqlType):
    """Turn a SQLite value into the Python value the wire layer encodes for sqltype."""
    if value is None:
        return None
    base = sqltype.base
    if base in INTEGER_TYPES or base == "bit":
        if isinstance(value, (bytes, str)):
            return coerce(value, sqltype)
        return int(value)
    if base in STRING_TYPES:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return value if isinstance(value, str) else str(value)
    if base in BINARY_TYPES:
        if isinstance(value, str):
            return value.encode("latin-1", "replace")
        if isinstance(value, int):
            return value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
        return bytes(value)
    if base in ("datetime", "datetime2", "smalldatetime"):
        return parse_datetime(value) if isinstance(value, str) else value
    if base == "date":
        return parse_datetime(value).date() if isinstance(value, str) else value
    if base in ("decimal", "numeric", "money", "smallmoney"):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return coerce(value, sqltype)
    if base in ("float", "real"):
        return float(value)
    if base == "uniqueidentifier":
        return uuid.UUID(str(value))
    return value


def sql_type_name_of(value) -> str:
    """The type SQL Server names a value by in conversion error messages."""
    if isinstance(value, str):
        return "nvarchar"
    if isinstance(value, bytes):
        return "varbinary"
    if isinstance(value, float):
        return "float"
    return "int"


def coerce(value, target: SqlType):
    """Implicit or explicit conversion of a SQLite-stored value to target (style 0)."""
    if value is None:
        return None
    base = target.base
    if base in INTEGER_TYPES or base == "bit":
        if isinstance(value, str):
            s = value.strip()
            try:
                n = int(s) if s else 0
            except ValueError:
                try:
                    f = float(s)
                except ValueError:
                    raise SqlError(245, "varchar", value, base) from None
                if base != "bit":
                    raise SqlError(245, "varchar", value, base)
                n = int(f != 0)
            value = n
        elif isinstance(value, bytes):
            value = int.from_bytes(value[-8:], "big") if value else 0
        elif isinstance(value, float):
            value = int(value)
        if base == "bit":
            return 1 if value else 0
        limits = {"tinyint": (0, 255), "smallint": (-2**15, 2**15 - 1),
                  "int": (-2**31, 2**31 - 1), "bigint": (-2**63, 2**63 - 1)}[base]
        if not limits[0] <= value <= limits[1]:
            raise SqlError(8115, "expression", base)
        return value
    if base in STRING_TYPES:
        if isinstance(value, bytes):
            s = value.decode("utf-16-le", "replace") if base in UNICODE_TYPES else value.decode("latin-1")
        elif isinstance(value, float):
            s = repr(value) if not value.is_integer() else str(int(value))
        else:
            s = str(value)
        if target.length and target.length > 0:
            s = s[:target.length]
        return s
    if base in BINARY_TYPES:
        if isinstance(value, str):
            b = value.encode("latin-1", "replace")
        elif isinstance(value, int):
            b = value.to_bytes(4 if -2**31 <= value < 2**31 else 8, "big", signed=True)
        else:
            b = bytes(value)
        if target.length and target.length > 0:
            b = b[:target.length]
        return b
    if base in DATETIME_TYPES:
        if isinstance(value, (int, float)):  # days since 1900-01-01, as SQL Server counts
            return datetime_text(datetime(1900, 1, 1) + timedelta(days=value), base)
        return datetime_text(parse_datetime(str(value)), base)
    if base in ("decimal", "numeric", "money", "smallmoney", "float", "real"):
        try:
            return float(value) if base in ("float", "real") else (
                int(value) if (target.scale or 0) == 0 and not isinstance(value, str) else float(value))
        except (TypeError, ValueError):
            raise SqlError(8114, "varchar", base) from None
    if base == "uniqueidentifier":
        try:
            return str(uuid.UUID(str(value))).upper()
        except ValueError:
            raise SqlError(8169) from None
    return value
