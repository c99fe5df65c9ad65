"""System stored procedures the lab implements, and EXEC.

Each procedure declares its parameters (name, type, default) like the real one;
arguments bind by position or by name, with SQL Server's errors 201 and 8144.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional

from . import statements as st
from .context import HandlerContext, Variable
from .ddl_security import alter_server_role
from .declarations import DeclarationError, parse_declaration
from .errors import SqlError
from .results import Column, Event, ResultSet, StatementDone
from .sqltypes import parse_datetime, parse_type

_MISSING = object()


@dataclass(frozen=True)
class Procedure:
    name: str
    params: tuple[tuple[str, str, Any], ...]          # (@name, type, default or _MISSING)
    body: Callable[[HandlerContext, dict[str, Any], list[Event]], Optional[dict[str, Any]]]
    variadic: bool = False                            # sp_executesql takes extra arguments


PROCEDURES: dict[str, Procedure] = {}


def procedure(name: str, *params: tuple[str, str, Any], variadic: bool = False):
    def deco(fn):
        PROCEDURES[name.lower()] = Procedure(name, params, fn, variadic)
        return fn
    return deco


def normalise_name(name: str) -> str:
    parts = [p for p in name.split(".")]
    # master.sys.sp_x, master..sp_x, sys.sp_x, dbo.sp_x → sp_x
    if len(parts) > 1 and parts[0].lower() == "master":
        parts = parts[1:]
    parts = [p for p in parts if p]
    if len(parts) == 2 and parts[0].lower() in ("sys", "dbo"):
        parts = parts[1:]
    return ".".join(parts).lower()


def call(session: HandlerContext, name: str, args: list[tuple[Optional[str], Any, str, bool]],
         events: list[Event]) -> dict[str, Any]:
    """Run procedure `name`; args are (name or None, value, type, output). Returns output values."""
    proc = PROCEDURES.get(normalise_name(name))
    if proc is None:
        raise SqlError(2812, name)
    bound: dict[str, Any] = {}
    extra: list[tuple[Optional[str], Any, str, bool]] = []
    positional = True
    for i, (pname, value, ptype, output) in enumerate(args):
        if pname:
            positional = False
            key = pname.lower()
            spec = next((p for p in proc.params if p[0].lower() == key), None)
            if spec is None:
                if proc.variadic:
                    extra.append((pname, value, ptype, output))
                    continue
                raise SqlError(8145, pname, proc.name)
            bound[spec[0]] = value
        else:
            if not positional:
                raise SqlError(119, i + 1)
            if i < len(proc.params):
                bound[proc.params[i][0]] = value
            elif proc.variadic:
                extra.append((None, value, ptype, output))
            else:
                raise SqlError(8144, proc.name)
    for pname, ptype, default in proc.params:
        if pname not in bound:
            if default is _MISSING:
                raise SqlError(201, proc.name, pname)
            bound[pname] = default
    if proc.variadic:
        bound["*extra"] = extra
    return proc.body(session, bound, events) or {}


def exec_statement(session: HandlerContext, stmt: st.Exec, events: list[Event]) -> None:
    if stmt.dynamic is not None:
        sql = session.evaluate(stmt.dynamic, "nvarchar(max)")
        _nested_batch(session, "" if sql is None else str(sql), [], events)
        return
    args = []
    for a in stmt.args:
        if a.expr.text.upper() == "DEFAULT":
            continue
        value, typ = session.evaluate_typed(a.expr)
        args.append((a.name, value, typ, a.output))
    outputs = call(session, stmt.procedure, args, events)
    for a in stmt.args:
        if a.output and a.name and a.name.lower() in outputs:
            target = a.expr.text.strip()
            var = session.variables.get(target.lower())
            if var is not None:
                var.value = outputs[a.name.lower()]
    if stmt.return_var:
        var = session.variables.get(stmt.return_var.lower())
        if var is None:
            raise SqlError(137, stmt.return_var, abort_batch=True)
        var.value = 0
    if not events or not isinstance(events[-1], StatementDone):
        session.emit_done(events)


def _nested_batch(session: HandlerContext, sql: str, declared: list, events: list[Event]) -> dict:
    saved = session.variables
    session.variables = {}
    try:
        for name, sqltype, value in declared:
            session.variables[name.lower()] = Variable(name, sqltype, value)
        session.run_batch(sql, events)
        return {k: v.value for k, v in session.variables.items()}
    finally:
        session.variables = saved


def parse_declarations(text: str) -> list[tuple[str, str, bool]]:
    try:
        return [(d.name, str(parse_type(d.sqltype)), d.output) for d in parse_declaration(text)]
    except DeclarationError as exc:
        raise SqlError(102, str(exc)[:60], abort_batch=True) from None


@procedure("sp_executesql", ("@stmt", "nvarchar(max)", _MISSING), ("@params", "nvarchar(max)", None),
           variadic=True)
def _sp_executesql(session: HandlerContext, args: dict, events: list[Event]) -> dict:
    decls = parse_declarations(args["@params"] or "")
    values: dict[str, Any] = {}
    positional = [e for e in args["*extra"] if e[0] is None]
    named = {e[0].lower(): e for e in args["*extra"] if e[0]}
    for i, (name, sqltype, _out) in enumerate(decls):
        if name.lower() in named:
            values[name] = named[name.lower()][1]
        elif i < len(positional):
            values[name] = positional[i][1]
        else:
            raise SqlError(8178, (args["@params"] or "")[:30], name)
    declared = [(n, t, values[n]) for n, t, _ in decls]
    final = _nested_batch(session, args["@stmt"] or "", declared, events)
    return {n.lower(): final.get(n.lower()) for n, _, out in decls if out}


_ERRORLOG_COLUMNS = [Column("LogDate", "datetime"), Column("ProcessInfo", "nvarchar(50)"),
                     Column("Text", "nvarchar(4000)")]


def _errorlog_rows(session: HandlerContext, log_number, log_type, first, second, start=None, end=None,
                   order="asc") -> ResultSet:
    if log_type not in (None, 1):
        raise SqlError(59001, "Reading the SQL Server Agent log")
    if log_number not in (None, 0):
        return ResultSet(list(_ERRORLOG_COLUMNS), [])
    start_dt = _as_datetime(start)
    end_dt = _as_datetime(end)
    rows = session.instance.errorlog.search(first, second, start_dt, end_dt,
                                            descending=str(order or "asc").lower() == "desc")
    return ResultSet(list(_ERRORLOG_COLUMNS), [tuple(r) for r in rows])


def _as_datetime(value) -> Optional[datetime]:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return parse_datetime(str(value))


@procedure("sp_readerrorlog", ("@p1", "int", 0), ("@p2", "int", None), ("@p3", "nvarchar(4000)", None),
           ("@p4", "nvarchar(4000)", None))
def _sp_readerrorlog(session, args, events):
    session.require_sysadmin()
    rs = _errorlog_rows(session, args["@p1"], args["@p2"], args["@p3"], args["@p4"])
    events.append(rs)
    session.emit_done(events, len(rs.rows))


@procedure("xp_readerrorlog", ("@p1", "int", 0), ("@p2", "int", None), ("@p3", "nvarchar(4000)", None),
           ("@p4", "nvarchar(4000)", None), ("@p5", "datetime", None), ("@p6", "datetime", None),
           ("@p7", "nvarchar(10)", "asc"))
def _xp_readerrorlog(session, args, events):
    session.require_sysadmin()
    rs = _errorlog_rows(session, args["@p1"], args["@p2"], args["@p3"], args["@p4"], args["@p5"],
                        args["@p6"], args["@p7"])
    events.append(rs)
    session.emit_done(events, len(rs.rows))


# ODBC catalog answers FreeTDS asks for right after connecting (SQLGetTypeInfo)
_TYPE_INFO_COLUMNS = [
    Column("TYPE_NAME", "nvarchar(128)"), Column("DATA_TYPE", "smallint"), Column("PRECISION", "int"),
    Column("LITERAL_PREFIX", "varchar(32)"), Column("LITERAL_SUFFIX", "varchar(32)"),
    Column("CREATE_PARAMS", "varchar(32)"), Column("NULLABLE", "smallint"),
    Column("CASE_SENSITIVE", "smallint"), Column("SEARCHABLE", "smallint"),
    Column("UNSIGNED_ATTRIBUTE", "smallint"), Column("MONEY", "smallint"),
    Column("AUTO_INCREMENT", "smallint"), Column("LOCAL_TYPE_NAME", "nvarchar(128)"),
    Column("MINIMUM_SCALE", "smallint"), Column("MAXIMUM_SCALE", "smallint"),
    Column("SQL_DATA_TYPE", "smallint"), Column("SQL_DATETIME_SUB", "smallint"),
    Column("NUM_PREC_RADIX", "int"), Column("INTERVAL_PRECISION", "smallint"), Column("USERTYPE", "smallint"),
]
_TYPES = [
    # name, ODBC type, precision, prefix, suffix, params, case sensitive, searchable, sql type, sub
    ("bit", -7, 1, None, None, None, 0, 2, -7, None),
    ("tinyint", -6, 3, None, None, None, 0, 2, -6, None),
    ("bigint", -5, 19, None, None, None, 0, 2, -5, None),
    ("varbinary", -3, 8000, "0x", None, "max length", 0, 2, -3, None),
    ("binary", -2, 8000, "0x", None, "length", 0, 2, -2, None),
    ("nvarchar", -9, 4000, "N'", "'", "max length", 0, 3, -9, None),
    ("nchar", -8, 4000, "N'", "'", "length", 0, 3, -8, None),
    ("uniqueidentifier", -11, 36, "'", "'", None, 0, 2, -11, None),
    ("char", 1, 8000, "'", "'", "length", 0, 3, 1, None),
    ("numeric", 2, 38, None, None, "precision,scale", 0, 2, 2, None),
    ("decimal", 3, 38, None, None, "precision,scale", 0, 2, 3, None),
    ("int", 4, 10, None, None, None, 0, 2, 4, None),
    ("smallint", 5, 5, None, None, None, 0, 2, 5, None),
    ("float", 6, 53, None, None, None, 0, 2, 6, None),
    ("real", 7, 24, None, None, None, 0, 2, 7, None),
    ("varchar", 12, 8000, "'", "'", "max length", 0, 3, 12, None),
    ("datetime", 93, 23, "'", "'", None, 0, 3, 9, 3),
    ("datetime2", 93, 27, "'", "'", "scale", 0, 3, 9, 3),
]


@procedure("sp_datatype_info_100", ("@data_type", "int", 0), ("@ODBCVer", "tinyint", 2))
def _sp_datatype_info(session, args, events):
    wanted = args["@data_type"] or 0
    rows = []
    for name, code, prec, pre, suf, params, cs, search, sqltype, sub in _TYPES:
        if wanted and code != wanted:
            continue
        rows.append((name, code, prec, pre, suf, params, 1, cs, search, 0 if code in (-6, -5, 2, 3, 4, 5, 6, 7)
                     else None, 0, 0 if code in (-6, -5, 4, 5) else None, name, None, None, sqltype, sub,
                     10 if code in (-6, -5, 2, 3, 4, 5) else (2 if code in (6, 7) else None), None, 0))
    events.append(ResultSet(list(_TYPE_INFO_COLUMNS), rows))
    session.emit_done(events, len(rows))


PROCEDURES["sp_datatype_info_90"] = Procedure("sp_datatype_info_90", PROCEDURES["sp_datatype_info_100"].params,
                                              _sp_datatype_info)
PROCEDURES["sp_datatype_info"] = Procedure("sp_datatype_info", PROCEDURES["sp_datatype_info_100"].params,
                                           _sp_datatype_info)


@procedure("sp_addsrvrolemember", ("@loginame", "nvarchar(128)", _MISSING), ("@rolename", "nvarchar(128)", _MISSING))
def _sp_addsrvrolemember(session, args, events):
    alter_server_role(session, st.AlterServerRole(args["@rolename"], True, args["@loginame"]), events)


@procedure("sp_dropsrvrolemember", ("@loginame", "nvarchar(128)", _MISSING), ("@rolename", "nvarchar(128)", _MISSING))
def _sp_dropsrvrolemember(session, args, events):
    alter_server_role(session, st.AlterServerRole(args["@rolename"], False, args["@loginame"]), events)


_PROBE_COLUMNS = [Column("endpoint_url", "nvarchar(256)"), Column("succeeded", "bit"),
                  Column("error_number", "int"), Column("message", "nvarchar(4000)")]


@procedure("sp_mirrorkit_probe", ("@endpoint_url", "nvarchar(256)", _MISSING),
           ("@peer_role", "nvarchar(20)", "PARTNER"))
def _sp_mirrorkit_probe(session, args, events):
    """Lab-only: connect this instance's endpoint to another endpoint and report the outcome."""
    session.require_sysadmin()
    role = str(args["@peer_role"] or "PARTNER").upper()
    if role not in ("PARTNER", "WITNESS"):
        raise SqlError(50000, text=f"@peer_role must be N'PARTNER' or N'WITNESS', not N'{args['@peer_role']}'.")
    transport = session.instance.transport
    if transport is None:
        raise SqlError(59001, "sp_mirrorkit_probe without a running mirroring transport")
    url = str(args["@endpoint_url"] or "")
    outcome = transport.connect(url, role)
    row = (url, int(outcome.succeeded), outcome.number, outcome.message)
    events.append(ResultSet(list(_PROBE_COLUMNS), [row]))
    session.emit_done(events, 1)
