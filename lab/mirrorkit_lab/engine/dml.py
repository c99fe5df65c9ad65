"""INSERT, UPDATE and DELETE on user tables.

select.compile_dml turns the statement into a query for the affected rows and their new
values; this module converts each value to its column's type, enforces NULL, length and key
rules, writes the rows and logs every change (before- and after-images) in the statement's
transaction.
"""
from __future__ import annotations

import re
import sqlite3
from typing import Any

from . import functions, statements as st, tables
from .context import HandlerContext
from .errors import SqlError
from .results import Event
from .select import DmlPlan
from .sqltypes import SqlType, parse_type

_PERMISSION = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}


def run(ctx: HandlerContext, stmt: st.Dml, events: list[Event]) -> None:
    plan: DmlPlan = ctx.compile_dml(stmt.text)
    t = plan.table
    ctx.use_database(t.database_id, "write")
    if plan.source is not None:
        for dbid in plan.source.databases - {t.database_id}:
            ctx.use_database(dbid, "read")
    _require(ctx, t, plan.kind)
    with ctx.atomic(events) as conn:
        rows = ctx.run_compiled_raw(plan.source) if plan.source is not None else [()]
        if plan.kind == "insert":
            n = _insert(ctx, conn, plan, rows)
        elif plan.kind == "update":
            n = _update(ctx, conn, plan, rows)
        else:
            n = _delete(ctx, conn, plan, rows)
    ctx.rowcount = n
    ctx.emit_done(events, n)


def _require(ctx: HandlerContext, t: tables.TableDef, kind: str) -> None:
    if ctx.has_permission(None, "SERVER", "CONTROL SERVER"):
        return
    if ctx.query("SELECT 1 FROM t_databases d JOIN t_server_principals p ON p.sid = d.owner_sid "
                 "WHERE d.database_id=? AND p.principal_id=?", (t.database_id, ctx.login_id)):
        return
    raise SqlError(229, _PERMISSION[kind], t.name, ctx.database_name(t.database_id), t.schema)


def _full_name(ctx: HandlerContext, t: tables.TableDef) -> str:
    return f"{ctx.database_name(t.database_id)}.{t.schema}.{t.name}"


def _value(ctx: HandlerContext, t: tables.TableDef, col: tables.ColumnDef, raw: Any, source: SqlType,
           verb: str) -> Any:
    """A value in its column's storage form, or the error SQL Server raises for it."""
    if raw is None:
        if not col.nullable:
            raise SqlError(515, col.name, _full_name(ctx, t), verb)
        return None
    target = parse_type(col.type)
    if target.length and target.length > 0 and isinstance(raw, (str, bytes)) and (
            target.is_string or target.is_binary):
        size = len(raw.rstrip(" ") if isinstance(raw, str) else raw)
        if size > target.length:
            shown = raw[:target.length] if isinstance(raw, str) else "0x" + raw[:target.length].hex().upper()
            raise SqlError(2628, _full_name(ctx, t), col.name, shown)
    if str(source) == str(target):
        return raw
    return functions.convert(str(target), str(source), raw, None)


def _insert(ctx: HandlerContext, conn: sqlite3.Connection, plan: DmlPlan, rows: list[tuple]) -> int:
    t = plan.table
    types = plan.source.types if plan.source is not None else ()
    given = {n.lower() for n in plan.columns}
    for row in rows:
        values: dict[str, Any] = {}
        for name, raw, typ in zip(plan.columns, row, types):
            values[name] = _value(ctx, t, t.column(name), raw, typ, "INSERT")
        for col in t.columns:
            if col.name.lower() in given:
                continue
            if col.identity:
                ident = tables.next_identity(conn, t)
                tables.note_identity(conn, t, ident)
                values[col.name] = ident
            elif col.default_text:
                raw, typ = ctx.evaluate_typed(st.Expr(col.default_text, 1))
                values[col.name] = _value(ctx, t, col, _storage(raw, typ), parse_type(typ), "INSERT")
            else:
                values[col.name] = _value(ctx, t, col, None, parse_type(col.type), "INSERT")
        try:
            rid = tables.insert_row(conn, t, values)
        except sqlite3.IntegrityError as exc:
            raise _key_violation(t, str(exc), values) from None
        ctx.log_change(t.database_id, "insert", t.object_id, rid, None, values)
    return len(rows)


def _storage(value: Any, sqltype: str) -> Any:
    from .sqltypes import to_sqlite
    return to_sqlite(value, sqltype)


def _update(ctx: HandlerContext, conn: sqlite3.Connection, plan: DmlPlan, rows: list[tuple]) -> int:
    t = plan.table
    width = len(t.columns)
    new_types = plan.source.types[1 + width:]
    for row in rows:
        rid, old, new = row[0], row[1:1 + width], row[1 + width:]
        before_all = {c.name: v for c, v in zip(t.columns, old)}
        after: dict[str, Any] = {}
        for name, raw, typ in zip(plan.columns, new, new_types):
            after[name] = _value(ctx, t, t.column(name), raw, typ, "UPDATE")
        before = {n: before_all[n] for n in after}
        try:
            tables.update_row(conn, t, rid, after)
        except sqlite3.IntegrityError as exc:
            raise _key_violation(t, str(exc), {**before_all, **after}) from None
        ctx.log_change(t.database_id, "update", t.object_id, rid, before, after)
    return len(rows)


def _delete(ctx: HandlerContext, conn: sqlite3.Connection, plan: DmlPlan, rows: list[tuple]) -> int:
    t = plan.table
    for row in rows:
        rid, old = row[0], row[1:]
        tables.delete_row(conn, t, rid)
        ctx.log_change(t.database_id, "delete", t.object_id, rid,
                       {c.name: v for c, v in zip(t.columns, old)}, None)
    return len(rows)


def _key_violation(t: tables.TableDef, text: str, values: dict) -> SqlError:
    # "UNIQUE constraint failed: u5_9."a", u5_9."b"" names the columns; find the constraint they make
    cols = [c.split(".", 1)[-1].strip('"') for c in re.sub(r"^.*failed:\s*", "", text).split(",")]
    lowered = sorted(c.strip().lower() for c in cols)
    for k in t.constraints:
        if sorted(c.lower() for c in k.columns) == lowered:
            kind = "PRIMARY KEY" if k.type == "PK" else "UNIQUE KEY"
            key = ", ".join("NULL" if values.get(c) is None else str(values.get(c)) for c in k.columns)
            return SqlError(2627, kind, k.name, t.qualified, key)
    return SqlError(2627, "UNIQUE KEY", "", t.qualified, text)


HANDLERS = {st.Dml: run}
