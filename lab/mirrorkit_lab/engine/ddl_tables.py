"""CREATE TABLE and DROP TABLE inside a database; both are logged, so they reach a restored
copy and a mirror like the rows do."""
from __future__ import annotations

import hashlib

from . import statements as st, store, tables
from .context import HandlerContext
from .errors import SqlError
from .results import Event
from .sqltypes import parse_type


def table_database(ctx: HandlerContext, name: st.ObjectName) -> int:
    if not name.database:
        return ctx.database_id
    rows = ctx.query("SELECT database_id FROM t_databases WHERE name=?", (name.database,))
    if not rows:
        raise SqlError(911, name.database)
    return rows[0][0]


def require_ddl(ctx: HandlerContext, database_id: int, what: str) -> None:
    """The lab's permission rule for tables: sysadmin or the database's owner (docs/lab-fidelity.md)."""
    if ctx.has_permission(None, "SERVER", "CONTROL SERVER"):
        return
    if not ctx.query("SELECT 1 FROM t_databases d JOIN t_server_principals p ON p.sid = d.owner_sid "
                     "WHERE d.database_id=? AND p.principal_id=?", (database_id, ctx.login_id)):
        raise SqlError(262, what, ctx.database_name(database_id))


def _constraint_name(kind: str, table: str, object_id: int, n: int) -> str:
    # SQL Server names unnamed constraints PK__<table>__<16 hex digits>
    digest = hashlib.sha1(f"{object_id}:{n}".encode()).hexdigest()[:16].upper()
    return f"{kind}__{table[:8]}__{digest}"


def create_table(ctx: HandlerContext, stmt: st.CreateTable, events: list[Event]) -> None:
    dbid = table_database(ctx, stmt.table)
    ctx.use_database(dbid, "write")
    require_ddl(ctx, dbid, "CREATE TABLE")
    schema = stmt.table.schema or "dbo"
    if schema.lower() != "dbo":
        raise SqlError(2760, schema)
    if ctx.resolve_table(dbid, schema, stmt.table.name) is not None:
        raise SqlError(2714, stmt.table.name)
    names = set()
    for c in stmt.columns:
        if c.name.lower() in names:
            raise SqlError(2705, c.name, stmt.table.name)
        names.add(c.name.lower())
        parse_type(c.sqltype)
    pk_columns = set()
    pks = [k for k in stmt.constraints if k.type == "PK"]
    if len(pks) > 1:
        raise SqlError(8110, stmt.table.name)
    for k in stmt.constraints:
        for col in k.columns:
            if col.lower() not in names:
                raise SqlError(1911, col)
            if k.type == "PK":
                pk_columns.add(col.lower())
    for c in stmt.columns:
        if c.name.lower() in pk_columns and c.nullable is True:
            raise SqlError(8111, stmt.table.name)
    now = store.fmt_datetime(store.utcnow())
    with ctx.atomic(events) as conn:
        oid = tables.next_object_id(conn, dbid)
        cols = tuple(tables.ColumnDef(i, c.name, str(parse_type(c.sqltype)),
                                      nullable=(c.nullable if c.nullable is not None else
                                                (c.name.lower() not in pk_columns and not c.identity)),
                                      identity=c.identity, default_text=c.default.text if c.default else None)
                     for i, c in enumerate(stmt.columns, start=1))
        by_lower = {c.name.lower(): c.name for c in cols}
        cons = tuple(tables.ConstraintDef(k.name or _constraint_name(k.type, stmt.table.name, oid, i), k.type,
                                          tuple(by_lower[n.lower()] for n in k.columns))
                     for i, k in enumerate(stmt.constraints))
        t = tables.TableDef(dbid, oid, schema, stmt.table.name, cols, cons, now)
        tables.create(conn, t)
        ctx.log_change(dbid, "create_table", oid, None, None, t.definition())
        ctx.schema_changed()
    ctx.emit_done(events)


def drop_table(ctx: HandlerContext, stmt: st.DropTable, events: list[Event]) -> None:
    for name in stmt.tables:
        dbid = table_database(ctx, name)
        t = ctx.resolve_table(dbid, name.schema, name.name)
        if t is None:
            if stmt.if_exists:
                continue
            raise SqlError(3701, "table", str(name))
        ctx.use_database(dbid, "write")
        require_ddl(ctx, dbid, "DROP TABLE")
        with ctx.atomic(events) as conn:
            identity = conn.execute("SELECT identity_value FROM t_tables WHERE database_id=? AND object_id=?",
                                    (dbid, t.object_id)).fetchone()[0]
            before = {"definition": t.definition(), "rows": [[rid, v] for rid, v in tables.rows(conn, t)],
                      "identity": identity}
            tables.drop(conn, t)
            ctx.log_change(dbid, "drop_table", t.object_id, None, before, None)
            ctx.schema_changed()
    ctx.emit_done(events)


HANDLERS = {st.CreateTable: create_table, st.DropTable: drop_table}
