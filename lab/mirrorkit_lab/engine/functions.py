"""Built-in T-SQL functions, registered as SQLite functions on each session's connection.

Each entry is data: arity, return type (fixed or derived from the argument types)
and an implementation factory that receives the session context.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Optional, Protocol

from .errors import SqlError
from .sqltypes import (coerce, datetime_text, parse_datetime, parse_type)


class FunctionContext(Protocol):
    """What function implementations may ask of the session."""
    login_name: str
    login_id: int
    database_id: int
    spid: int

    def query(self, sql: str, params: tuple = ()) -> list[tuple]: ...

    def server_property(self, name: str) -> Any: ...

    def has_permission(self, securable: Optional[str], klass: Optional[str], permission: str) -> bool: ...

    def master_key(self, database_id: int) -> Optional[bytes]: ...

    def certificate_private_key_pvk(self, database_id: int, cert_id: int, enc: str,
                                    dec: Optional[str]) -> Optional[bytes]: ...


ReturnType = Callable[[list[str]], str]


@dataclass(frozen=True)
class FunctionDef:
    name: str
    min_args: int
    max_args: int
    returns: str | ReturnType
    factory: Callable[[FunctionContext], Callable]
    inject_db: bool = False       # the current database id is passed as the first argument
    datepart: bool = False        # first argument is a datepart keyword

    def return_type(self, arg_types: list[str]) -> str:
        return self.returns(arg_types) if callable(self.returns) else self.returns


FUNCTIONS: dict[str, FunctionDef] = {}


def _fn(name, min_args, max_args, returns, inject_db=False, datepart=False):
    def deco(factory):
        FUNCTIONS[name] = FunctionDef(name, min_args, max_args, returns, factory, inject_db, datepart)
        return factory
    return deco


def _first(types: list[str]) -> str:
    return types[0] if types else "int"


# -- security and metadata ------------------------------------------------------------------
@_fn("CERT_ID", 1, 1, "int", inject_db=True)
def _cert_id(ctx):
    def f(db, name):
        if name is None:
            return None
        rows = ctx.query("SELECT certificate_id FROM t_certificates WHERE database_id=? AND name=?",
                         (db, name))
        return rows[0][0] if rows else None
    return f


@_fn("CERTENCODED", 1, 1, "varbinary(max)", inject_db=True)
def _certencoded(ctx):
    def f(db, cert_id):
        rows = ctx.query("SELECT der FROM t_certificates WHERE database_id=? AND certificate_id=?",
                         (db, cert_id))
        return rows[0][0] if rows else None
    return f


@_fn("CERTPRIVATEKEY", 2, 3, "varbinary(max)", inject_db=True)
def _certprivatekey(ctx):
    def f(db, cert_id, enc, dec=None):
        if cert_id is None or enc is None:
            return None
        return ctx.certificate_private_key_pvk(db, cert_id, enc, dec)
    return f


@_fn("CERTPROPERTY", 2, 2, "nvarchar(4000)", inject_db=True)
def _certproperty(ctx):
    columns = {"expiry_date": "expiry_date", "start_date": "start_date", "issuer": "issuer_name",
               "cert_serial_number": "cert_serial_number", "subject": "subject", "sid": "sid",
               "string_sid": "string_sid"}

    def f(db, cert_id, prop):
        col = columns.get(str(prop).lower())
        if col is None:
            return None
        rows = ctx.query(f"SELECT {col} FROM t_certificates WHERE database_id=? AND certificate_id=?",
                         (db, cert_id))
        return rows[0][0] if rows else None
    return f


@_fn("SUSER_NAME", 0, 1, "nvarchar(128)")
def _suser_name(ctx):
    def f(pid=None):
        if pid is None:
            return ctx.login_name
        rows = ctx.query("SELECT name FROM t_server_principals WHERE principal_id=?", (pid,))
        return rows[0][0] if rows else None
    return f


@_fn("SUSER_SNAME", 0, 1, "nvarchar(128)")
def _suser_sname(ctx):
    def f(sid=None):
        if sid is None:
            return ctx.login_name
        rows = ctx.query("SELECT name FROM t_server_principals WHERE sid=?", (sid,))
        return rows[0][0] if rows else None
    return f


@_fn("SUSER_ID", 0, 1, "int")
def _suser_id(ctx):
    def f(name=None):
        if name is None:
            return ctx.login_id
        rows = ctx.query("SELECT principal_id FROM t_server_principals WHERE name=?", (name,))
        return rows[0][0] if rows else None
    return f


@_fn("SUSER_SID", 0, 1, "varbinary(85)")
def _suser_sid(ctx):
    def f(name=None):
        rows = ctx.query("SELECT sid FROM t_server_principals WHERE name=?",
                         (ctx.login_name if name is None else name,))
        return rows[0][0] if rows else None
    return f


def _current_user_id(ctx) -> Optional[int]:
    rows = ctx.query("SELECT d.principal_id FROM t_database_principals d JOIN t_server_principals s"
                     " ON s.sid = d.sid WHERE d.database_id=? AND s.principal_id=?",
                     (ctx.database_id, ctx.login_id))
    if rows:
        return rows[0][0]
    if ctx.has_permission(None, None, "CONTROL SERVER"):
        return 1  # sysadmin maps to dbo
    return None


@_fn("USER_NAME", 0, 1, "nvarchar(128)")
def _user_name(ctx):
    def f(pid=None):
        if pid is None:
            pid = _current_user_id(ctx)
        rows = ctx.query("SELECT name FROM t_database_principals WHERE database_id=? AND principal_id=?",
                         (ctx.database_id, pid))
        return rows[0][0] if rows else None
    return f


@_fn("USER_ID", 0, 1, "int")
def _user_id(ctx):
    def f(name=None):
        if name is None:
            return _current_user_id(ctx)
        rows = ctx.query("SELECT principal_id FROM t_database_principals WHERE database_id=? AND name=?",
                         (ctx.database_id, name))
        return rows[0][0] if rows else None
    return f


FUNCTIONS["DATABASE_PRINCIPAL_ID"] = FunctionDef("DATABASE_PRINCIPAL_ID", 0, 1, "int", _user_id)


@_fn("DB_NAME", 0, 1, "nvarchar(128)")
def _db_name(ctx):
    def f(dbid=None):
        rows = ctx.query("SELECT name FROM t_databases WHERE database_id=?",
                         (ctx.database_id if dbid is None else dbid,))
        return rows[0][0] if rows else None
    return f


@_fn("DB_ID", 0, 1, "int")
def _db_id(ctx):
    def f(name=None):
        if name is None:
            return ctx.database_id
        rows = ctx.query("SELECT database_id FROM t_databases WHERE name=?", (name,))
        return rows[0][0] if rows else None
    return f


@_fn("SCHEMA_NAME", 0, 1, "nvarchar(128)")
def _schema_name(ctx):
    def f(sid=None):
        return {None: "dbo", 1: "dbo", 3: "INFORMATION_SCHEMA", 4: "sys"}.get(sid)
    return f


@_fn("OBJECT_ID", 1, 2, "int")
def _object_id(ctx):
    return lambda name, kind=None: None  # the lab has no user objects


@_fn("HAS_PERMS_BY_NAME", 3, 5, "int")
def _has_perms_by_name(ctx):
    def f(securable, klass, permission, sub=None, subclass=None):
        if permission is None or klass is None:
            return None
        klass = str(klass).upper()
        if klass not in ("SERVER", "ENDPOINT", "DATABASE"):
            return None
        if klass == "ENDPOINT":
            rows = ctx.query("SELECT 1 FROM t_endpoints WHERE name=?", (securable,))
            if not rows:
                return None
        return 1 if ctx.has_permission(securable, klass, str(permission).upper()) else 0
    return f


@_fn("IS_SRVROLEMEMBER", 1, 2, "int")
def _is_srvrolemember(ctx):
    def f(role, login=None):
        role_rows = ctx.query("SELECT principal_id FROM t_server_principals WHERE name=? AND type='R'",
                              (role,))
        if not role_rows:
            return None
        if login is None:
            pid = ctx.login_id
        else:
            rows = ctx.query("SELECT principal_id FROM t_server_principals WHERE name=?", (login,))
            if not rows:
                return None
            pid = rows[0][0]
        if role.lower() == "public":
            return 1
        rows = ctx.query("SELECT 1 FROM t_server_role_members WHERE role_principal_id=? AND "
                         "member_principal_id=?", (role_rows[0][0], pid))
        return 1 if rows else 0
    return f


@_fn("SERVERPROPERTY", 1, 1, "sql_variant")
def _serverproperty(ctx):
    return lambda name: None if name is None else ctx.server_property(str(name))


# -- strings ------------------------------------------------------------------------------
@_fn("QUOTENAME", 1, 2, "nvarchar(258)")
def _quotename(ctx):
    def f(s, q="["):
        if s is None or q is None or len(s) > 128:
            return None
        q = str(q)[:1]
        pairs = {"[": ("[", "]"), "]": ("[", "]"), '"': ('"', '"'), "'": ("'", "'"),
                 "(": ("(", ")"), ")": ("(", ")"), "<": ("<", ">"), ">": ("<", ">"),
                 "{": ("{", "}"), "}": ("{", "}"), "`": ("`", "`")}
        if q not in pairs:
            return None
        left, right = pairs[q]
        return left + str(s).replace(right, right + right) + right
    return f


def _string_of(types: list[str]) -> str:
    t = parse_type(types[0]) if types else None
    if t and t.base in ("nvarchar", "nchar", "ntext"):
        return "nvarchar(4000)"
    return "varchar(8000)" if t and t.is_string else "nvarchar(4000)"


@_fn("LEN", 1, 1, "int")
def _len(ctx):
    return lambda s: None if s is None else len(str(s).rstrip(" ") if not isinstance(s, bytes) else s)


@_fn("DATALENGTH", 1, 1, "int")
def _datalength(ctx):
    def f(v):
        if v is None:
            return None
        if isinstance(v, bytes):
            return len(v)
        if isinstance(v, str):
            return len(v.encode("utf-16-le"))
        return 4 if isinstance(v, int) else 8
    return f


@_fn("UPPER", 1, 1, _string_of)
def _upper(ctx):
    return lambda s: None if s is None else str(s).upper()


@_fn("LOWER", 1, 1, _string_of)
def _lower(ctx):
    return lambda s: None if s is None else str(s).lower()


@_fn("LTRIM", 1, 1, _string_of)
def _ltrim(ctx):
    return lambda s: None if s is None else str(s).lstrip(" ")


@_fn("RTRIM", 1, 1, _string_of)
def _rtrim(ctx):
    return lambda s: None if s is None else str(s).rstrip(" ")


@_fn("TRIM", 1, 1, _string_of)
def _trim(ctx):
    return lambda s: None if s is None else str(s).strip(" ")


@_fn("LEFT", 2, 2, _string_of)
def _left(ctx):
    return lambda s, n: None if s is None or n is None else str(s)[:max(0, int(n))]


@_fn("RIGHT", 2, 2, _string_of)
def _right(ctx):
    return lambda s, n: None if s is None or n is None else (str(s)[-int(n):] if int(n) > 0 else "")


@_fn("SUBSTRING", 3, 3, lambda t: "varbinary(max)" if parse_type(t[0]).is_binary else _string_of(t))
def _substring(ctx):
    def f(s, start, length):
        if s is None or start is None or length is None:
            return None
        start, length = int(start), int(length)
        if length < 0:
            raise SqlError(537)
        end = start + length - 1
        lo = max(start, 1)
        return s[lo - 1:max(end, 0)] if end >= lo else s[:0]
    return f


@_fn("REPLACE", 3, 3, _string_of)
def _replace(ctx):
    def f(s, old, new):
        if s is None or old is None or new is None:
            return None
        if old == "":
            return s
        # the default collation is case-insensitive
        import re
        return re.sub(re.escape(str(old)), lambda _m: str(new), str(s), flags=re.IGNORECASE)
    return f


@_fn("CHARINDEX", 2, 3, "int")
def _charindex(ctx):
    def f(needle, hay, start=1):
        if needle is None or hay is None:
            return None
        start = max(int(start or 1), 1)
        return str(hay).lower().find(str(needle).lower(), start - 1) + 1
    return f


@_fn("CONCAT", 2, 254, "nvarchar(4000)")
def _concat(ctx):
    def f(*args):
        return "".join("" if a is None else (a.hex() if isinstance(a, bytes) else str(a)) for a in args)
    return f


@_fn("REPLICATE", 2, 2, _string_of)
def _replicate(ctx):
    return lambda s, n: None if s is None or n is None or int(n) < 0 else str(s) * int(n)


@_fn("SPACE", 1, 1, "varchar(8000)")
def _space(ctx):
    return lambda n: None if n is None or int(n) < 0 else " " * int(n)


@_fn("STR", 1, 3, "varchar(8000)")
def _str(ctx):
    def f(x, length=10, decimals=0):
        if x is None:
            return None
        s = f"{float(x):.{int(decimals)}f}"
        return s.rjust(int(length)) if len(s) <= int(length) else "*" * int(length)
    return f


@_fn("NEWID", 0, 0, "uniqueidentifier")
def _newid(ctx):
    return lambda: str(uuid.uuid4()).upper()


@_fn("HASHBYTES", 2, 2, "varbinary(8000)")
def _hashbytes(ctx):
    algos = {"MD2": None, "MD4": None, "MD5": "md5", "SHA": "sha1", "SHA1": "sha1",
             "SHA2_256": "sha256", "SHA2_512": "sha512"}

    def f(algo, data):
        if algo is None or data is None:
            return None
        name = algos.get(str(algo).upper())
        if name is None:
            return None
        raw = data if isinstance(data, bytes) else str(data).encode("utf-16-le")
        return hashlib.new(name, raw).digest()
    return f


@_fn("ISNULL", 2, 2, _first)
def _isnull(ctx):
    return lambda a, b: b if a is None else a


@_fn("IIF", 3, 3, lambda t: t[1] if len(t) > 1 else "int")
def _iif(ctx):
    return lambda cond, a, b: a if cond else b


@_fn("ABS", 1, 1, _first)
def _abs(ctx):
    return lambda x: None if x is None else abs(x)


@_fn("ROUND", 2, 3, _first)
def _round(ctx):
    return lambda x, n, trunc=0: None if x is None else round(x, int(n))


# -- date and time ------------------------------------------------------------------------
@_fn("GETDATE", 0, 0, "datetime")
def _getdate(ctx):
    return lambda: datetime_text(datetime.now())


FUNCTIONS["CURRENT_TIMESTAMP"] = FunctionDef("CURRENT_TIMESTAMP", 0, 0, "datetime", _getdate)


@_fn("GETUTCDATE", 0, 0, "datetime")
def _getutcdate(ctx):
    return lambda: datetime_text(_utcnow())


@_fn("SYSUTCDATETIME", 0, 0, "datetime2(7)")
def _sysutcdatetime(ctx):
    return lambda: datetime_text(_utcnow(), "datetime2")


@_fn("SYSDATETIME", 0, 0, "datetime2(7)")
def _sysdatetime(ctx):
    return lambda: datetime_text(datetime.now(), "datetime2")


def _utcnow() -> datetime:
    from datetime import timezone
    return datetime.now(timezone.utc).replace(tzinfo=None)


_DATEPARTS = {
    "year": "year", "yy": "year", "yyyy": "year", "quarter": "quarter", "qq": "quarter", "q": "quarter",
    "month": "month", "mm": "month", "m": "month", "dayofyear": "dayofyear", "dy": "dayofyear",
    "y": "dayofyear", "day": "day", "dd": "day", "d": "day", "week": "week", "wk": "week",
    "ww": "week", "weekday": "weekday", "dw": "weekday", "hour": "hour", "hh": "hour",
    "minute": "minute", "mi": "minute", "n": "minute", "second": "second", "ss": "second",
    "s": "second", "millisecond": "millisecond", "ms": "millisecond",
    "microsecond": "microsecond", "mcs": "microsecond", "nanosecond": "nanosecond", "ns": "nanosecond",
}


def datepart_name(text: str) -> str:
    part = _DATEPARTS.get(text.lower())
    if part is None:
        raise SqlError(155, text, abort_batch=True)
    return part


def _as_datetime(v) -> datetime:
    return v if isinstance(v, datetime) else parse_datetime(str(v))


def _add_months(d: datetime, months: int) -> datetime:
    import calendar
    y, m = divmod(d.month - 1 + months, 12)
    y += d.year
    day = min(d.day, calendar.monthrange(y, m + 1)[1])
    return d.replace(year=y, month=m + 1, day=day)


def dateadd(part: str, n: int, d: datetime) -> datetime:
    n = int(n)
    if part == "year":
        return _add_months(d, 12 * n)
    if part == "quarter":
        return _add_months(d, 3 * n)
    if part == "month":
        return _add_months(d, n)
    if part in ("day", "dayofyear", "weekday"):
        return d + timedelta(days=n)
    if part == "week":
        return d + timedelta(weeks=n)
    if part == "hour":
        return d + timedelta(hours=n)
    if part == "minute":
        return d + timedelta(minutes=n)
    if part == "second":
        return d + timedelta(seconds=n)
    if part == "millisecond":
        return d + timedelta(milliseconds=n)
    if part == "microsecond":
        return d + timedelta(microseconds=n)
    return d + timedelta(microseconds=n / 1000)


def datediff(part: str, a: datetime, b: datetime) -> int:
    # SQL Server counts boundaries crossed, not elapsed units
    if part == "year":
        return b.year - a.year
    if part == "quarter":
        return (b.year - a.year) * 4 + (b.month - 1) // 3 - (a.month - 1) // 3
    if part == "month":
        return (b.year - a.year) * 12 + b.month - a.month
    if part in ("day", "dayofyear", "weekday"):
        return (b.date() - a.date()).days
    if part == "week":
        # weeks start on Sunday (SET DATEFIRST 7)
        sa = a.date() - timedelta(days=(a.weekday() + 1) % 7)
        sb = b.date() - timedelta(days=(b.weekday() + 1) % 7)
        return (sb - sa).days // 7
    base = datetime(1900, 1, 1)
    scale = {"hour": 3600, "minute": 60, "second": 1}
    if part in scale:
        unit = scale[part]
        return int((b - base).total_seconds() // unit) - int((a - base).total_seconds() // unit)
    delta = b - a
    us = delta.days * 86400_000_000 + delta.seconds * 1_000_000 + delta.microseconds
    if part == "millisecond":
        return us // 1000
    if part == "microsecond":
        return us
    return us * 1000


@_fn("DATEADD", 3, 3, lambda t: t[2] if len(t) > 2 and parse_type(t[2]).is_datetime else "datetime",
     datepart=True)
def _dateadd(ctx):
    def f(part, n, d):
        if n is None or d is None:
            return None
        base = "datetime2" if isinstance(d, str) and len(d) > 23 else "datetime"
        return datetime_text(dateadd(part, n, _as_datetime(d)), base)
    return f


@_fn("DATEDIFF", 3, 3, "int", datepart=True)
def _datediff(ctx):
    def f(part, a, b):
        if a is None or b is None:
            return None
        return datediff(part, _as_datetime(a), _as_datetime(b))
    return f


@_fn("DATEPART", 2, 2, "int", datepart=True)
def _datepart(ctx):
    def f(part, d):
        if d is None:
            return None
        d = _as_datetime(d)
        return {"year": d.year, "quarter": (d.month - 1) // 3 + 1, "month": d.month,
                "dayofyear": d.timetuple().tm_yday, "day": d.day,
                "week": int(d.strftime("%U")) + 1, "weekday": (d.weekday() + 1) % 7 + 1,
                "hour": d.hour, "minute": d.minute, "second": d.second,
                "millisecond": d.microsecond // 1000, "microsecond": d.microsecond,
                "nanosecond": d.microsecond * 1000}[part]
    return f


@_fn("YEAR", 1, 1, "int")
def _year(ctx):
    return lambda d: None if d is None else _as_datetime(d).year


@_fn("MONTH", 1, 1, "int")
def _month(ctx):
    return lambda d: None if d is None else _as_datetime(d).month


@_fn("DAY", 1, 1, "int")
def _day(ctx):
    return lambda d: None if d is None else _as_datetime(d).day


# -- conversion (CAST / CONVERT / TRY_*) -------------------------------------------------------
def convert(target: str, source: str, value, style, safe: bool = False):
    try:
        return _convert(parse_type(target), parse_type(source), value, style)
    except SqlError:
        if safe:
            return None
        raise


def _convert(target, source, value, style):
    if value is None:
        return None
    style = int(style) if style is not None else 0
    if target.is_string and source.is_binary and isinstance(value, bytes):
        if style == 1:
            s = "0x" + value.hex().upper()
        elif style == 2:
            s = value.hex().upper()
        elif target.base in ("nvarchar", "nchar", "ntext"):
            s = value.decode("utf-16-le", "replace")
        else:
            s = value.decode("latin-1")
        return s[:target.length] if target.length and target.length > 0 else s
    if target.is_binary and source.is_string and isinstance(value, str) and style in (1, 2):
        text = value[2:] if style == 1 and value[:2].lower() == "0x" else value
        if style == 1 and value[:2].lower() != "0x":
            raise SqlError(8114, source.base, target.base)
        try:
            return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)
        except ValueError:
            raise SqlError(8114, source.base, target.base) from None
    if target.is_binary and source.is_string and isinstance(value, str):
        raw = value.encode("utf-16-le") if source.base in ("nvarchar", "nchar", "ntext") else \
            value.encode("latin-1", "replace")
        return raw[:target.length] if target.length and target.length > 0 else raw
    if target.is_string and source.is_datetime and isinstance(value, str):
        d = parse_datetime(value)
        s = format_datetime(d, style, source.base)
        return s[:target.length] if target.length and target.length > 0 else s
    if target.is_string and source.base == "bit":
        return str(int(value))
    return coerce(value, target)


def format_datetime(d: datetime, style: int, base: str = "datetime") -> str:
    if style in (20, 120):
        return d.strftime("%Y-%m-%d %H:%M:%S")
    if style in (21, 121, 25):
        return datetime_text(d, base)
    if style == 126:
        s = d.strftime("%Y-%m-%dT%H:%M:%S")
        return s + (f".{d.microsecond // 1000:03d}" if d.microsecond else "")
    if style == 127:
        return format_datetime(d, 126, base) + "Z"
    if style == 23:
        return d.strftime("%Y-%m-%d")
    if style == 112:
        return d.strftime("%Y%m%d")
    if style == 101:
        return d.strftime("%m/%d/%Y")
    if style == 103:
        return d.strftime("%d/%m/%Y")
    if style == 108:
        return d.strftime("%H:%M:%S")
    if base == "datetime2":
        return datetime_text(d, base)
    # style 0/100: mon dd yyyy hh:miAM
    hour = d.hour % 12 or 12
    return f"{d.strftime('%b')} {d.day:2d} {d.year} {hour:2d}:{d.minute:02d}{'PM' if d.hour >= 12 else 'AM'}"


def like_regex(pattern: str, escape: Optional[str] = None):
    """A T-SQL LIKE pattern as a compiled regular expression (case-insensitive collation)."""
    import re
    out, i, n = ["^"], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if escape and c == escape and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        elif c == "[":
            j = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] == "]" else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                negate = body.startswith("^")
                if negate:
                    body = body[1:]
                cls = "".join("\\" + ch if ch in "\\]" else ch for ch in body)
                out.append(f"[{'^' if negate else ''}{cls}]")
                i = j + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


_LIKE_CACHE: dict = {}


@_fn("LIKE", 2, 3, "bit")
def _like(ctx):
    def f(value, pattern, escape=None):
        if value is None or pattern is None:
            return None
        key = (pattern, escape)
        rx = _LIKE_CACHE.get(key)
        if rx is None:
            if len(_LIKE_CACHE) > 512:
                _LIKE_CACHE.clear()
            rx = _LIKE_CACHE[key] = like_regex(str(pattern), escape)
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        return 1 if rx.match(text) else 0
    return f


def make_convert(safe: bool):
    def factory(ctx):
        return lambda target, source, value, style=None: convert(target, source, value, style, safe)
    return factory


def register(conn, ctx: FunctionContext) -> None:
    """Register every function on a SQLite connection, bound to a session context."""
    for fdef in FUNCTIONS.values():
        impl = fdef.factory(ctx)
        conn.create_function("mk_" + fdef.name.lower(), -1, _guard(impl, ctx))
    conn.create_function("mk_convert", -1, _guard(make_convert(False)(ctx), ctx))
    conn.create_function("mk_try_convert", -1, _guard(make_convert(True)(ctx), ctx))


def _guard(impl: Callable, ctx) -> Callable:
    # SQLite hides exceptions raised in functions; keep the SqlError for the executor
    def call(*args):
        try:
            return impl(*args)
        except SqlError as exc:
            ctx.pending_error = exc
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            ctx.pending_error = SqlError(8114, type(args[0]).__name__ if args else "value", "value")
            raise ValueError(str(exc)) from exc
    return call
