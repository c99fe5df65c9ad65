"""CREATE / DROP / ALTER DATABASE (files, recovery model, access and state options).

ALTER DATABASE … SET PARTNER / WITNESS is parsed here but belongs to the mirroring layer,
reached through the instance's DatabaseMirroring (context.py).
"""
from __future__ import annotations

import re

from . import statements as st, store, tables
from .context import HandlerContext
from .errors import SqlError
from .results import Event

RECOVERY_MODELS = {"FULL": 1, "BULK_LOGGED": 2, "SIMPLE": 3}
USER_ACCESS = {"MULTI_USER": 0, "SINGLE_USER": 1, "RESTRICTED_USER": 2}
ONLINE, RESTORING, RECOVERING, OFFLINE = 0, 1, 2, 6
# tables holding rows that belong to one database (dropped with it)
DATABASE_SCOPED = ("t_database_principals", "t_certificates", "t_symmetric_keys", "t_key_encryptions",
                   "t_database_files", "t_log")


def require_dbcreator(ctx: HandlerContext) -> None:
    if not (ctx.has_permission(None, "SERVER", "CONTROL SERVER")
            or ctx.query("SELECT 1 FROM t_server_role_members WHERE role_principal_id=9 AND member_principal_id=?",
                         (ctx.login_id,))):
        raise SqlError(262, "CREATE DATABASE", "master")


def database_row(ctx: HandlerContext, name: str) -> tuple:
    """(database_id, name, state, recovery_model) of a database by name, or 911."""
    if name.upper() == "CURRENT":
        rows = ctx.query("SELECT database_id, name, state, recovery_model FROM t_databases WHERE database_id=?",
                         (ctx.database_id,))
    else:
        rows = ctx.query("SELECT database_id, name, state, recovery_model FROM t_databases WHERE name=?", (name,))
    if not rows:
        raise SqlError(911, name)
    return rows[0]


def _physical(spec: st.FileSpec, default: str) -> str:
    return spec.filename if spec.filename else default


def _size_pages(text) -> int:
    m = re.match(r"^(\d+)(KB|MB|GB|TB)?$", str(text or "").upper())
    if not m:
        return 1024
    n = int(m.group(1))
    unit = {"KB": 1 / 8, None: 128, "MB": 128, "GB": 128 * 1024, "TB": 128 * 1024 * 1024}[m.group(2)]
    return max(1, int(n * unit))


def create_database(ctx: HandlerContext, stmt: st.CreateDatabase, events: list[Event]) -> None:
    require_dbcreator(ctx)
    if ctx.query("SELECT 1 FROM t_databases WHERE name=?", (stmt.name,)):
        raise SqlError(1801, stmt.name)
    data = stmt.files or [st.FileSpec()]
    logs = stmt.log_files or [st.FileSpec()]
    files = []
    for i, spec in enumerate(data):
        logical = spec.name or (stmt.name if i == 0 else f"{stmt.name}_{i}")
        default = store.DATA_DIR + (stmt.name if i == 0 else logical) + (".mdf" if i == 0 else ".ndf")
        files.append((0, logical, _physical(spec, default), _size_pages(spec.options.get("SIZE"))))
    for i, spec in enumerate(logs):
        logical = spec.name or (f"{stmt.name}_log" if i == 0 else f"{stmt.name}_log{i}")
        files.append((1, logical, _physical(spec, store.DATA_DIR + logical + ".ldf"),
                      _size_pages(spec.options.get("SIZE") or "8MB")))
    seen = set()
    for _, logical, physical, _ in files:
        if logical.lower() in seen:
            raise SqlError(1828, logical)
        seen.add(logical.lower())
        if ctx.query("SELECT 1 FROM t_database_files WHERE physical_name=? COLLATE NOCASE", (physical,)):
            raise SqlError(5170, physical)
    owner = ctx.query("SELECT sid FROM t_server_principals WHERE principal_id=?", (ctx.login_id,))[0][0]
    model = ctx.query("SELECT recovery_model FROM t_databases WHERE database_id=?", (store.MODEL,))[0][0]
    now = store.fmt_datetime(store.utcnow())
    with ctx.atomic(events) as conn:
        used = {r[0] for r in conn.execute("SELECT database_id FROM t_databases")}
        dbid = next(i for i in range(5, 32768) if i not in used)
        conn.execute("INSERT INTO t_databases (database_id, name, owner_sid, create_date, compatibility_level, "
                     "recovery_model, state, family_guid, recovery_fork_guid, end_lsn, next_object_id) "
                     "VALUES (?, ?, ?, ?, 150, ?, 0, ?, ?, ?, 901578250)",
                     (dbid, stmt.name, owner, now, model, store.new_guid(), store.new_guid(), store.initial_lsn(dbid)))
        for file_id, (ftype, logical, physical, size) in enumerate(
                sorted(files, key=lambda f: f[0]), start=1):
            conn.execute("INSERT INTO t_database_files VALUES (?, ?, ?, ?, ?, ?)",
                         (dbid, file_id, ftype, logical, physical, size))
        store.seed_database_principals(conn, dbid, now, owner)
        ctx.schema_changed()
    ctx.instance.errorlog.write(f"spid{ctx.spid}", f"Starting up database '{stmt.name}'.")
    ctx.emit_done(events)


def drop_database(ctx: HandlerContext, stmt: st.DropDatabase, events: list[Event]) -> None:
    for name in stmt.names:
        rows = ctx.query("SELECT database_id, name FROM t_databases WHERE name=?", (name,))
        if not rows:
            if stmt.if_exists:
                continue
            raise SqlError(3701, "database", name)
        dbid, real = rows[0]
        if dbid <= store.MSDB:
            raise SqlError(3708, real)
        require_dbcreator(ctx)
        if ctx.instance.mirroring is not None:
            ctx.instance.mirroring.prevents(dbid, "DROP")
        if ctx.database_id == dbid or ctx.instance.database_in_use(dbid, ctx):
            raise SqlError(3702, real)
        with ctx.atomic(events) as conn:
            tables.drop_database(conn, dbid)
            for table in DATABASE_SCOPED:
                conn.execute(f"DELETE FROM {table} WHERE database_id=?", (dbid,))
            conn.execute("DELETE FROM t_databases WHERE database_id=?", (dbid,))
            ctx.schema_changed()
        ctx.instance.errorlog.write(f"spid{ctx.spid}", f"Database '{real}' was dropped.")
    ctx.emit_done(events)


def alter_database_set(ctx: HandlerContext, stmt: st.AlterDatabaseSet, events: list[Event]) -> None:
    dbid, name, state, model = database_row(ctx, stmt.database)
    if not (ctx.has_permission(None, "SERVER", "CONTROL SERVER")
            or ctx.query("SELECT 1 FROM t_databases d JOIN t_server_principals p ON p.sid = d.owner_sid "
                         "WHERE d.database_id=? AND p.principal_id=?", (dbid, ctx.login_id))):
        raise SqlError(5011, name)
    opt = stmt.option
    if opt == "ONLINE":
        if state not in (ONLINE, OFFLINE):
            raise SqlError(5011, name)
        _update(ctx, events, dbid, "state", ONLINE)
    elif state != ONLINE:
        raise SqlError(5011, name)
    elif dbid == store.TEMPDB and opt in ("RECOVERY", "OFFLINE", "READ_ONLY", "SINGLE_USER"):
        raise SqlError(5058, opt, name)
    elif opt == "RECOVERY":
        code = RECOVERY_MODELS[stmt.value]
        if code == model:
            pass
        elif code == 3:
            if ctx.instance.mirroring is not None:
                ctx.instance.mirroring.prevents(dbid, "SET RECOVERY SIMPLE")
            with ctx.atomic(events) as conn:
                # SIMPLE ends the log backup chain: the next log backup needs a new full backup first
                conn.execute("UPDATE t_databases SET recovery_model=3, database_backup_lsn=NULL, "
                             "last_log_backup_lsn=NULL WHERE database_id=?", (dbid,))
                conn.execute("DELETE FROM t_log WHERE database_id=?", (dbid,))
        else:
            _update(ctx, events, dbid, "recovery_model", code)
    elif opt in USER_ACCESS:
        _update(ctx, events, dbid, "user_access", USER_ACCESS[opt])
    elif opt in ("READ_ONLY", "READ_WRITE"):
        _update(ctx, events, dbid, "is_read_only", int(opt == "READ_ONLY"))
    elif opt == "OFFLINE":
        if ctx.instance.mirroring is not None:
            ctx.instance.mirroring.prevents(dbid, "OFFLINE")
        if ctx.instance.database_in_use(dbid, ctx) and stmt.rollback != "IMMEDIATE":
            raise SqlError(5061, name)
        _update(ctx, events, dbid, "state", OFFLINE)
    ctx.emit_done(events)


def _update(ctx: HandlerContext, events: list[Event], dbid: int, column: str, value: int) -> None:
    assert column in ("state", "recovery_model", "user_access", "is_read_only")
    with ctx.atomic(events) as conn:
        conn.execute(f"UPDATE t_databases SET {column}=? WHERE database_id=?", (value, dbid))


def alter_database_mirroring(ctx: HandlerContext, stmt: st.AlterDatabaseMirroring, events: list[Event]) -> None:
    dbid, name, _, _ = database_row(ctx, stmt.database)
    if ctx.instance.mirroring is None:
        raise SqlError(59001, "Database mirroring on an instance without its mirroring layer", abort_batch=True)
    stmt.database = name
    ctx.instance.mirroring.alter_database_mirroring(ctx, stmt, events)
    ctx.emit_done(events)


HANDLERS = {
    st.CreateDatabase: create_database, st.DropDatabase: drop_database,
    st.AlterDatabaseSet: alter_database_set, st.AlterDatabaseMirroring: alter_database_mirroring,
}
