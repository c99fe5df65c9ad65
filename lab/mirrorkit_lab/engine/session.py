"""One client session: batch execution, variables, transactions, statement atomicity.

The statement handlers live in ddl_*.py and procedures.py and see the session as
a HandlerContext (context.py); this module owns the control flow
(IF/BEGIN…END/RETURN), SELECT, SET/DECLARE, USE and transactions.
"""
from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Protocol

from . import catalog, ddl, functions, procedures, statements as st, store, tables, txlog
from .api import Param
from .context import Handler, InstanceServices, Variable
from .errors import SqlError, info
from .keys import export_private_key_pvk, open_master_key_automatically
from .parser import parse_batch
from .permissions import login_has_permission
from .results import (DatabaseChanged, Event, Message, ResultSet, ReturnValue, StatementDone,
                      TransactionChanged)
from .select import CompileContext, Compiled, DmlPlan, compile_condition, compile_dml, compile_expression, compile_query
from .sqltypes import SqlType, from_sqlite, parse_type, to_sqlite

# statements that must run outside a user transaction: (message number, statement name)
_NO_USER_TRANSACTION = {st.CreateEndpoint: (574, "CREATE ENDPOINT"), st.AlterEndpoint: (574, "ALTER ENDPOINT"),
                        st.DropEndpoint: (574, "DROP ENDPOINT"), st.CreateDatabase: (226, "CREATE DATABASE"),
                        st.AlterDatabaseSet: (226, "ALTER DATABASE"), st.DropDatabase: (574, "DROP DATABASE"),
                        st.AlterDatabaseMirroring: (226, "ALTER DATABASE"),
                        st.BackupDatabase: (3021, "BACKUP"), st.RestoreDatabase: (3021, "RESTORE")}

SET_OPTIONS = frozenset("""
    NOCOUNT ANSI_NULLS ANSI_PADDING ANSI_WARNINGS ANSI_NULL_DFLT_ON ANSI_NULL_DFLT_OFF ARITHABORT
    ARITHIGNORE CONCAT_NULL_YIELDS_NULL QUOTED_IDENTIFIER CURSOR_CLOSE_ON_COMMIT IMPLICIT_TRANSACTIONS
    XACT_ABORT TEXTSIZE LANGUAGE DATEFORMAT DATEFIRST LOCK_TIMEOUT DEADLOCK_PRIORITY NUMERIC_ROUNDABORT
    ANSI_DEFAULTS FMTONLY NOEXEC ROWCOUNT STATISTICS PARSEONLY NO_BROWSETABLE
""".split()) | {"TRANSACTION ISOLATION LEVEL"}


class ReturnSignal(Exception):
    """RETURN: leave the current batch or procedure."""


class StopBatch(Exception):
    """An error inside IF/BEGIN…END aborted the batch; its message is already sent."""


class SessionHost(InstanceServices, Protocol):
    """What a session needs of its instance beyond what handlers use (LabInstance provides it)."""
    name: str
    version_string: str
    db_path: Path

    def database_names(self) -> tuple[tuple[str, int], ...]: ...

    def fill_live_tables(self, session: Session, names: frozenset[str]) -> None: ...

    def server_property(self, name: str) -> Any: ...

    def after_commit(self, session: Session) -> None: ...

    def session_closed(self, session: Session) -> None: ...

    schema_epoch: int


@lru_cache(maxsize=2048)
def _parse_cached(sql: str) -> tuple[st.Statement, ...]:
    return tuple(parse_batch(sql))


class Session:
    """An EngineSession (see api.py) bound to one LabInstance."""

    def __init__(self, instance: SessionHost, login_id: int, login_name: str, database_id: int,
                 spid: int, info_: dict):
        self.instance = instance
        self.login_id = login_id
        self.login_name = login_name
        self.database_id = database_id
        self.spid = spid
        self.client = info_
        self.conn = store.connect(instance.db_path)
        self.conn.executescript(catalog.create_views_sql())
        functions.register(self.conn, self)
        self.pending_error: Optional[SqlError] = None
        self.tran_depth = 0
        self.descriptor_seq = 0
        self.descriptor = 0
        self.open_master_keys: dict[int, bytes] = {}
        self.options = {"NOCOUNT": "OFF", "IMPLICIT_TRANSACTIONS": "OFF", "XACT_ABORT": "OFF"}
        self.rowcount = 0
        self.last_error = 0
        self.cancelled = threading.Event()
        self.variables: dict[str, Variable] = {}
        self.closed = False
        self.endpoint_dirty = False     # endpoint DDL ran; the transport reconciles after commit
        self.log_open: dict[int, tuple[Optional[int], int]] = {}   # database -> (txn, end of log before it)
        self.ddl_pending = False        # table/database DDL in the open transaction
        self._tables: tuple[int, dict[int, dict]] = (-1, {})

    # -- EngineSession API ---------------------------------------------------------------------
    @property
    def database(self) -> str:
        return self.database_name(self.database_id)

    @property
    def in_transaction(self) -> bool:
        return self.tran_depth > 0

    def execute(self, sql: str, params: list[Param] | None = None) -> list[Event]:
        self.cancelled.clear()
        events: list[Event] = []
        saved = self.variables
        self.variables = {}
        try:
            for p in params or []:
                if not p.name:
                    continue
                self.variables[p.name.lower()] = Variable(p.name, p.sqltype or "sql_variant", p.value)
            self.run_batch(sql, events)
            outputs = [p for p in (params or []) if p.output and p.name]
            for i, p in enumerate(outputs):
                var = self.variables.get(p.name.lower())
                if var is not None:
                    events.append(ReturnValue(i, p.name, var.sqltype, var.value))
        finally:
            self.variables = saved
        return events

    def call_procedure(self, name: str, params: list[Param]) -> list[Event]:
        self.cancelled.clear()
        events: list[Event] = []
        try:
            procedures.call(self, name, [(p.name or None, p.value, p.sqltype, p.output) for p in params], events)
        except SqlError as exc:
            events.append(exc.to_message(1, procedure=name))
            events.append(StatementDone(error=True))
        if not events or not isinstance(events[-1], StatementDone):
            events.append(StatementDone())
        return events

    def begin_transaction(self) -> list[Event]:
        events: list[Event] = []
        self._begin(events)
        return events

    def commit(self, begin_new: bool) -> list[Event]:
        events: list[Event] = []
        try:
            self._commit(events, all_levels=True)
        except SqlError as exc:
            events.append(exc.to_message(1))
            events.append(StatementDone(error=True))
            return events
        if begin_new:
            self._begin(events)
        return events

    def rollback(self, begin_new: bool) -> list[Event]:
        events: list[Event] = []
        if self.tran_depth:
            self._rollback(events)
        if begin_new:
            self._begin(events)
        return events

    def cancel(self) -> None:
        self.cancelled.set()
        try:
            self.conn.interrupt()
        except sqlite3.ProgrammingError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self.conn.close()
        self.instance.session_closed(self)

    # -- batches ---------------------------------------------------------------------------------
    def run_batch(self, sql: str, events: list[Event]) -> None:
        try:
            statements = _parse_cached(sql)
        except SqlError as exc:
            events.append(exc.to_message(exc.line or 1))
            events.append(StatementDone(error=True))
            self.last_error = exc.number
            return
        try:
            for stmt in statements:
                if not self.run_statement(stmt, events):
                    break
        except ReturnSignal:
            pass
        if not events or not isinstance(events[-1], StatementDone):
            events.append(StatementDone())

    def run_statement(self, stmt: st.Statement, events: list[Event]) -> bool:
        """Run one statement; False stops the batch."""
        if self.cancelled.is_set():
            return False
        try:
            self.dispatch(stmt, events)
            if not isinstance(stmt, (st.Block, st.If)):
                self.last_error = 0
            return True
        except ReturnSignal:
            raise
        except StopBatch:
            return False
        except SqlError as exc:
            events.append(exc.to_message(stmt.line))
            events.append(StatementDone(error=True))
            self.last_error = exc.number
            if self.tran_depth and self.options["XACT_ABORT"] == "ON":
                self._rollback(events)
                return False
            return not exc.abort_batch

    def dispatch(self, stmt: st.Statement, events: list[Event]) -> None:
        handler = _HANDLERS.get(type(stmt))
        if handler is None:
            raise SqlError(59001, type(stmt).__name__, abort_batch=True)
        if type(stmt) in _NO_USER_TRANSACTION and self.tran_depth:
            number, name = _NO_USER_TRANSACTION[type(stmt)]
            raise SqlError(number, name)
        handler(self, stmt, events)

    # -- compile and evaluate --------------------------------------------------------------------
    def compile_context(self) -> CompileContext:
        # a plan compiled against this session's uncommitted DDL must not serve other sessions
        key = (self.instance.schema_epoch, self.spid if self.ddl_pending else 0)
        return CompileContext(
            self.database_id, self.instance.database_names(),
            tuple((k, v.sqltype) for k, v in self.variables.items()), key, self.resolve_table)

    def compile_dml(self, text: str) -> DmlPlan:
        return self.compile(compile_dml, text)

    def resolve_table(self, database_id: int, schema: Optional[str], name: str) -> Optional[tables.TableDef]:
        epoch = self.instance.schema_epoch
        if self._tables[0] != epoch or self.ddl_pending:
            self._tables = (epoch, {})
        cache = self._tables[1]
        if database_id not in cache:
            cache[database_id] = tables.load(self.conn, database_id)
        return cache[database_id].get(((schema or "dbo").lower(), name.lower()))

    def schema_changed(self) -> None:
        """Tables or databases changed in this session's transaction: plans and caches are stale."""
        self.ddl_pending = True
        self.instance.schema_changed()

    def use_database(self, database_id: int, purpose: str) -> None:
        """Raise the error SQL Server gives when this session may not use the database now."""
        row = self.query("SELECT name, state, is_read_only FROM t_databases WHERE database_id=?", (database_id,))
        if not row:
            raise SqlError(911, str(database_id))
        name, state, read_only = row[0]
        if self.instance.mirroring is not None:
            self.instance.mirroring.guard(database_id, purpose)
        if state == 1:
            raise SqlError(927, name)
        if state == 6:
            raise SqlError(942, name)
        if state in (2, 3, 4):
            raise SqlError(922, name)
        if purpose == "write" and read_only:
            raise SqlError(3906, name)

    def log_change(self, database_id: int, op: str, object_id: Optional[int], rid: Optional[int],
                   before: Optional[dict], after: Optional[dict]) -> None:
        """Log one change of a user table in the open transaction (tempdb keeps no log)."""
        if database_id == store.TEMPDB:
            return
        entry = self.log_open.get(database_id)
        if entry is None:
            entry = (None, txlog.end_of_log(self.conn, database_id))
        lsn = txlog.append(self.conn, database_id, entry[0], op, object_id, rid, before, after)
        if entry[0] is None:
            entry = (lsn, entry[1])
        self.log_open[database_id] = entry

    def _close_log(self) -> list[tuple[int, int]]:
        """Inside the transaction, just before COMMIT: a commit record per database it changed."""
        done = []
        for dbid, (txn, before) in self.log_open.items():
            if txlog.end_of_log(self.conn, dbid) <= before:
                continue
            lsn = txlog.append(self.conn, dbid, txn, "commit")
            row = self.conn.execute("SELECT recovery_model, database_backup_lsn FROM t_databases "
                                    "WHERE database_id=?", (dbid,)).fetchone()
            # SIMPLE, and FULL before its first full backup, keep no log beyond the active part
            if row[0] == 3 or row[1] is None:
                if self.instance.mirroring is None or not self.instance.mirroring.keeps_log(dbid):
                    txlog.truncate_before(self.conn, dbid, lsn + 1)
            done.append((dbid, lsn))
        self.log_open.clear()
        return done

    def _sqlite_commit(self) -> None:
        committed = self._close_log() if self.log_open else []
        self.conn.execute("COMMIT")
        if self.ddl_pending:
            self.ddl_pending = False
            self.instance.schema_changed()
        self.instance.after_commit(self)
        mirroring = self.instance.mirroring
        if mirroring is not None:
            for dbid, lsn in committed:
                mirroring.committed(dbid, lsn)

    def _sqlite_rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.log_open.clear()
        if self.ddl_pending:
            self.ddl_pending = False
            self.instance.schema_changed()

    def compile(self, fn: Callable[[str, CompileContext], Compiled], text: str) -> Compiled:
        try:
            return fn(text, self.compile_context())
        except SqlError as exc:
            if exc.number in (207, 208, 209, 4104, 137):
                exc.abort_batch = True
            raise

    def run_compiled(self, c: Compiled) -> list[tuple]:
        rows = self.run_compiled_raw(c)
        return [tuple(from_sqlite(v, t) for v, t in zip(row, c.types)) for row in rows]

    def run_compiled_raw(self, c: Compiled) -> list[tuple]:
        """Rows as SQLite holds them (storage form), for statements that write them back."""
        if c.live:
            self.instance.fill_live_tables(self, c.live)
        params = {}
        for placeholder, name in c.params:
            params[placeholder] = to_sqlite(self.variable_value(name))
        self.pending_error = None
        try:
            return self.conn.execute(c.sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self.translate_sqlite_error(exc) from None

    def translate_sqlite_error(self, exc: sqlite3.Error) -> SqlError:
        if self.pending_error is not None:
            err, self.pending_error = self.pending_error, None
            return err
        text = str(exc)
        if "interrupted" in text:
            return SqlError(59002, "the request was cancelled")
        if "locked" in text or "busy" in text:
            return SqlError(1222)
        return SqlError(59002, text)

    def evaluate(self, expr: st.Expr, target: Optional[str] = None) -> Any:
        c = self.compile(compile_expression, expr.text)
        if len(c.columns) != 1:
            raise SqlError(116)
        rows = self.run_compiled(c)
        value = rows[0][0] if rows else None
        if target is not None:
            value = self.convert_value(value, c.types[0], parse_type(target))
        return value

    def evaluate_typed(self, expr: st.Expr) -> tuple[Any, str]:
        c = self.compile(compile_expression, expr.text)
        rows = self.run_compiled(c)
        return (rows[0][0] if rows else None), c.columns[0].sqltype

    def condition(self, expr: st.Expr) -> bool:
        c = self.compile(compile_condition, expr.text)
        rows = self.run_compiled(c)
        return bool(rows and rows[0][0])

    @staticmethod
    def convert_value(value: Any, source: SqlType, target: SqlType) -> Any:
        if value is None:
            return None
        raw = to_sqlite(value, str(source))
        converted = functions.convert(str(target), str(source), raw, None)
        return from_sqlite(converted, target)

    def variable_value(self, name: str) -> Any:
        if name.startswith("@@"):
            return self.system_variable(name.upper())
        var = self.variables.get(name.lower())
        if var is None:
            raise SqlError(137, name, abort_batch=True)
        return var.value

    def system_variable(self, name: str) -> Any:
        inst = self.instance
        return {
            "@@SERVERNAME": inst.name, "@@SERVICENAME": "MSSQLSERVER", "@@VERSION": inst.version_string,
            "@@SPID": self.spid, "@@TRANCOUNT": self.tran_depth, "@@ROWCOUNT": self.rowcount,
            "@@ERROR": self.last_error, "@@LANGUAGE": "us_english", "@@IDENTITY": None,
            "@@OPTIONS": 5496, "@@LOCK_TIMEOUT": -1, "@@TEXTSIZE": 2147483647,
            "@@MAX_CONNECTIONS": 32767, "@@DATEFIRST": 7, "@@MICROSOFTVERSION": 0x0F0007D0,
            "@@PROCID": 0, "@@NESTLEVEL": 0, "@@MAX_PRECISION": 38,
        }.get(name)

    # -- transactions and atomicity -----------------------------------------------------------------
    def _next_descriptor(self) -> int:
        self.descriptor_seq += 1
        return (self.spid << 32) | self.descriptor_seq

    def _begin(self, events: list[Event]) -> None:
        if self.tran_depth == 0:
            self.conn.execute("BEGIN")
            self.descriptor = self._next_descriptor()
            events.append(TransactionChanged("begin", self.descriptor))
        self.tran_depth += 1

    def _commit(self, events: list[Event], all_levels: bool = False) -> None:
        if self.tran_depth == 0:
            raise SqlError(3902)
        self.tran_depth = 0 if all_levels else self.tran_depth - 1
        if self.tran_depth == 0:
            if self.conn.in_transaction:
                self._sqlite_commit()
            else:
                self.instance.after_commit(self)
            events.append(TransactionChanged("commit", self.descriptor))
            self.descriptor = 0

    def _rollback(self, events: list[Event]) -> None:
        self.tran_depth = 0
        self._sqlite_rollback()
        events.append(TransactionChanged("rollback", self.descriptor))
        self.descriptor = 0

    @contextmanager
    def atomic(self, events: Optional[list[Event]] = None) -> Iterator[sqlite3.Connection]:
        """One statement's changes: all or nothing, inside or outside a user transaction."""
        if self.tran_depth == 0 and self.options["IMPLICIT_TRANSACTIONS"] == "ON" and events is not None:
            self._begin(events)
        if self.tran_depth:
            self.conn.execute("SAVEPOINT stmt")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK TO stmt")
                self.conn.execute("RELEASE stmt")
                raise
            self.conn.execute("RELEASE stmt")
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self.translate_sqlite_error(exc) from None
        try:
            yield self.conn
        except BaseException:
            self._sqlite_rollback()
            raise
        self._sqlite_commit()

    # -- lookups used by handlers and functions ---------------------------------------------------------
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def database_name(self, database_id: int) -> str:
        rows = self.query("SELECT name FROM t_databases WHERE database_id=?", (database_id,))
        return rows[0][0] if rows else ""

    def is_sysadmin(self, login_id: Optional[int] = None) -> bool:
        pid = self.login_id if login_id is None else login_id
        return bool(self.query("SELECT 1 FROM t_server_role_members WHERE role_principal_id=? AND "
                               "member_principal_id=?", (store.SYSADMIN_ID, pid)))

    def has_permission(self, securable: Optional[str], klass: Optional[str], permission: str) -> bool:
        return login_has_permission(self.conn, self.login_id, securable, klass, permission)

    def server_property(self, name: str) -> Any:
        return self.instance.server_property(name)

    def master_key(self, database_id: int) -> Optional[bytes]:
        if database_id in self.open_master_keys:
            return self.open_master_keys[database_id]
        return open_master_key_automatically(self.conn, database_id)

    def certificate_private_key_pvk(self, database_id: int, cert_id: int, enc: str,
                                    dec: Optional[str]) -> Optional[bytes]:
        return export_private_key_pvk(self, database_id, cert_id, enc, dec)

    def require_sysadmin(self) -> None:
        if not self.has_permission(None, "SERVER", "CONTROL SERVER"):
            raise SqlError(15247)

    def emit_done(self, events: list[Event], rowcount: Optional[int] = None) -> None:
        events.append(StatementDone(rowcount=None if self.options["NOCOUNT"] == "ON" else rowcount))


# -- handlers for the statements this module owns ---------------------------------------------------------
def _select(session: Session, stmt: st.Select, events: list[Event]) -> None:
    c = session.compile(compile_query, stmt.text)
    for dbid in c.databases:
        session.use_database(dbid, "read")
    if session.options["IMPLICIT_TRANSACTIONS"] == "ON" and session.tran_depth == 0:
        session._begin(events)
    rows = session.run_compiled(c)
    if c.assign is not None:
        for row in rows:
            for name, value in zip(c.assign, row):
                var = session.variables[name.lower()]
                var.value = value
        session.rowcount = len(rows)
        session.emit_done(events, len(rows))
        return
    events.append(ResultSet(list(c.columns), rows))
    session.rowcount = len(rows)
    session.emit_done(events, len(rows))


def _declare(session: Session, stmt: st.Declare, events: list[Event]) -> None:
    for name, sqltype, init in stmt.variables:
        key = name.lower()
        if key in session.variables:
            raise SqlError(134, name, abort_batch=True)
        typ = str(parse_type(sqltype))
        session.variables[key] = Variable(name, typ)
        if init is not None:
            session.variables[key].value = session.evaluate(init, typ)


def _set_variable(session: Session, stmt: st.SetVariable, events: list[Event]) -> None:
    var = session.variables.get(stmt.name.lower())
    if var is None:
        raise SqlError(137, stmt.name, abort_batch=True)
    if stmt.operator == "=":
        var.value = session.evaluate(stmt.expr, var.sqltype)
    else:
        op = stmt.operator[0]
        text = f"{stmt.name} {op} ({stmt.expr.text})"
        var.value = session.evaluate(st.Expr(text, stmt.expr.line), var.sqltype)
    session.emit_done(events)


def _set_option(session: Session, stmt: st.SetOption, events: list[Event]) -> None:
    for option in stmt.option.split(","):
        option = option.upper()
        if option not in SET_OPTIONS:
            raise SqlError(195, option, abort_batch=True)
        if option in ("STATISTICS", "FMTONLY", "NOEXEC", "PARSEONLY"):
            raise SqlError(59001, f"SET {option}", abort_batch=True)
        if option == "IMPLICIT_TRANSACTIONS" and stmt.value not in ("ON", "OFF"):
            raise SqlError(102, stmt.value, abort_batch=True)
        session.options[option] = str(stmt.value).upper()
    session.emit_done(events)


def _use(session: Session, stmt: st.Use, events: list[Event]) -> None:
    rows = session.query("SELECT database_id, name FROM t_databases WHERE name=?", (stmt.database,))
    if not rows:
        raise SqlError(911, stmt.database)
    session.use_database(rows[0][0], "use")
    old = session.database
    session.database_id = rows[0][0]
    events.append(DatabaseChanged(rows[0][1], old))
    events.append(info(5701, rows[0][1], state=1, line=stmt.line))
    session.emit_done(events)


def _begin_tran(session: Session, stmt: st.BeginTran, events: list[Event]) -> None:
    session._begin(events)
    session.emit_done(events)


def _commit_tran(session: Session, stmt: st.CommitTran, events: list[Event]) -> None:
    session._commit(events)
    session.emit_done(events)


def _rollback_tran(session: Session, stmt: st.RollbackTran, events: list[Event]) -> None:
    if session.tran_depth == 0:
        raise SqlError(3903)
    session._rollback(events)
    session.emit_done(events)


def _block(session: Session, stmt: st.Block, events: list[Event]) -> None:
    for inner in stmt.statements:
        if not session.run_statement(inner, events):
            raise StopBatch()


def _if(session: Session, stmt: st.If, events: list[Event]) -> None:
    branch = stmt.then if session.condition(stmt.condition) else stmt.otherwise
    if branch is not None and not session.run_statement(branch, events):
        raise StopBatch()


def _print(session: Session, stmt: st.Print, events: list[Event]) -> None:
    value = session.evaluate(stmt.expr, "nvarchar(4000)")
    events.append(Message(0, 0, 1, "" if value is None else str(value), line=stmt.line))


def _return(session: Session, stmt: st.Return, events: list[Event]) -> None:
    raise ReturnSignal()


def _raiserror(session: Session, stmt: st.RaiseError, events: list[Event]) -> None:
    text, _ = session.evaluate_typed(stmt.message)
    state = int(session.evaluate(stmt.state) or 1)
    if stmt.number is not None:  # THROW always has severity 16 and ends the batch
        number = int(session.evaluate(stmt.number))
        raise SqlError(number, text=str(text), state=state, severity=16, abort_batch=True)
    severity = int(session.evaluate(stmt.severity) or 16)
    args = [session.evaluate(a) for a in stmt.args]
    message = _printf(str(text), args)
    if severity <= 10:
        events.append(Message(50000, severity, state, message, line=stmt.line))
        session.emit_done(events)
        return
    err = SqlError(50000, text=message, state=state, severity=min(severity, 18))
    raise err


def _printf(fmt: str, args: list) -> str:
    it = iter(args)

    def sub(m):
        spec = m.group(0)
        if spec == "%%":
            return "%"
        try:
            value = next(it)
        except StopIteration:
            return "(null)"
        return "(null)" if value is None else str(value)
    return re.sub(r"%%|%[-+ #0]*\d*(?:\.\d+)?(?:h|l|I64)?[sdiuoxXc]", sub, fmt)


_HANDLERS: dict[type, Handler] = {
    **ddl.HANDLERS,
    st.Select: _select, st.Declare: _declare, st.SetVariable: _set_variable, st.SetOption: _set_option,
    st.Use: _use, st.BeginTran: _begin_tran, st.CommitTran: _commit_tran,
    st.RollbackTran: _rollback_tran, st.Block: _block, st.If: _if, st.Print: _print,
    st.Return: _return, st.RaiseError: _raiserror, st.Exec: procedures.exec_statement,
}
