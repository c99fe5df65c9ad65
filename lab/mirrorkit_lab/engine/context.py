"""What statement handlers may use of their session, and the types they share with it.

The handlers (ddl_*.py, procedures.py, keys.py) are called by session.py with the
session as their HandlerContext; they import this module, never session.py, so
the engine's imports run one way. Only leaf modules are imported here.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional, Protocol

from ..fs import ServerFileSystem
from . import statements as st
from .errorlog import ErrorLog
from .results import Event

if TYPE_CHECKING:
    from .select import Compiled, DmlPlan
    from .tables import TableDef


@dataclass
class Variable:
    """A T-SQL @variable of the running batch or procedure."""
    name: str
    sqltype: str
    value: Any = None


class ConnectOutcome(Protocol):
    succeeded: bool
    number: Optional[int]
    message: str


class EndpointListeners(Protocol):
    """What the engine needs from the mirroring transport (mirrorkit_lab.transport)."""

    def prepare(self, conn: sqlite3.Connection) -> None:
        """Called inside the endpoint DDL's transaction; raise SqlError(7890) if a port is taken."""

    def reconcile(self) -> None:
        """Bring listeners in line with the committed catalog."""

    def connect(self, url: str, role: str) -> ConnectOutcome:
        """Connect this instance's endpoint to the endpoint at `url` (sp_mirrorkit_probe)."""

    def close(self) -> None: ...


class DatabaseMirroring(Protocol):
    """What the engine needs from the mirroring layer (mirrorkit_lab.mirroring); see
    docs/design/lab-part3.md. An instance without it (None) has no mirroring sessions."""

    def alter_database_mirroring(self, ctx: "HandlerContext", stmt: st.AlterDatabaseMirroring,
                                 events: list[Event]) -> None:
        """Run ALTER DATABASE … SET PARTNER/WITNESS …; raise SqlError."""

    def committed(self, database_id: int, end_lsn: int) -> None:
        """A user transaction ending at end_lsn committed locally; with SAFETY FULL return only when
        the mirror hardened it (or the session runs exposed)."""

    def guard(self, database_id: int, purpose: str) -> None:
        """Raise SqlError (954 mirror, …) when a session may not use the database now."""

    def prevents(self, database_id: int, action: str) -> None:
        """Raise SqlError (1468 …) when `action` (DROP, RESTORE, SET RECOVERY SIMPLE, OFFLINE …) is
        not allowed on a mirrored database."""

    def keeps_log(self, database_id: int) -> bool:
        """True while the session still needs log records the recovery model would truncate."""

    def log_floor(self, database_id: int) -> Optional[int]:
        """The lowest LSN the mirroring session still needs (BACKUP LOG truncates only below it);
        None: no constraint."""


class InstanceServices(Protocol):
    """What handlers use of the instance (LabInstance provides it)."""
    fs: ServerFileSystem
    errorlog: ErrorLog
    transport: Optional[EndpointListeners]
    mirroring: Optional[DatabaseMirroring]

    def login_in_use(self, principal_id: int) -> bool: ...

    def endpoint_changing(self, conn: sqlite3.Connection) -> None:
        """Endpoint DDL changed the catalog inside `conn`'s transaction."""

    def schema_changed(self) -> None:
        """Tables or databases changed: compiled plans and name caches are stale."""

    def database_in_use(self, database_id: int, besides: Any = None) -> bool:
        """Another session (not `besides`) has the database as its current database."""


class HandlerContext(Protocol):
    """What a statement handler or system procedure may ask of the session (Session provides it)."""
    instance: InstanceServices
    conn: sqlite3.Connection
    login_id: int
    database_id: int
    spid: int
    rowcount: int
    variables: dict[str, Variable]          # by lower-cased name
    open_master_keys: dict[int, bytes]      # database_id -> DMK opened by OPEN MASTER KEY

    def atomic(self, events: Optional[list[Event]] = None) -> ContextManager[sqlite3.Connection]:
        """One statement's changes: all or nothing, inside or outside a user transaction."""

    def query(self, sql: str, params: tuple = ()) -> list[tuple]: ...

    def evaluate(self, expr: st.Expr, target: Optional[str] = None) -> Any: ...

    def evaluate_typed(self, expr: st.Expr) -> tuple[Any, str]: ...

    def run_batch(self, sql: str, events: list[Event]) -> None: ...

    def emit_done(self, events: list[Event], rowcount: Optional[int] = None) -> None: ...

    def is_sysadmin(self, login_id: Optional[int] = None) -> bool: ...

    def has_permission(self, securable: Optional[str], klass: Optional[str], permission: str) -> bool: ...

    def require_sysadmin(self) -> None:
        """Raise 15247 unless the login has CONTROL SERVER."""

    def master_key(self, database_id: int) -> Optional[bytes]:
        """The database's DMK if opened or openable by the service master key, else None."""

    def database_name(self, database_id: int) -> str: ...

    def use_database(self, database_id: int, purpose: str) -> None:
        """Raise what SQL Server raises when the session may not use the database now
        (purpose: use | read | write): 954 mirror, 927 restoring, 942 offline, 3906 read-only …"""

    def resolve_table(self, database_id: int, schema: Optional[str], name: str) -> Optional["TableDef"]: ...

    def schema_changed(self) -> None: ...

    def compile_dml(self, text: str) -> "DmlPlan": ...

    def run_compiled_raw(self, c: "Compiled") -> list[tuple]: ...

    def log_change(self, database_id: int, op: str, object_id: Optional[int], rid: Optional[int],
                   before: Optional[dict], after: Optional[dict]) -> None:
        """Log one change in the open transaction; the commit record follows at COMMIT."""


Handler = Callable[[HandlerContext, Any, list[Event]], None]
