"""The contract between the TDS wire layer and the engine.

The wire layer (mirrorkit_lab.tds) only knows these two protocols and the
events in results.py. One instance serves many connections; each connection
gets one session. Methods are called from the connection's own thread, except
``cancel``, which may be called from another thread when an ATTENTION arrives
while the session is executing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .results import Event, Message


@dataclass(frozen=True)
class Param:
    """An RPC parameter or a bound sp_executesql/sp_prepexec variable."""
    name: str          # "@P1", "@handle", or "" for positional parameters of a procedure
    sqltype: str       # SQL Server type name as declared or as decoded from TYPE_INFO
    value: Any         # Python value (see results.py), None for NULL
    output: bool = False


class LoginFailed(Exception):
    """Raised by EngineInstance.login; the wire layer sends the message and closes."""

    def __init__(self, message: Message):
        super().__init__(message.text)
        self.message = message


class EngineSession(Protocol):
    spid: int
    database: str          # current database name, for ENVCHANGE at login

    def execute(self, sql: str, params: list[Param] | None = None) -> list[Event]:
        """Run a SQL batch (params None) or a parameterised statement (sp_executesql,
        sp_prepexec, sp_execute): params are pre-declared variables."""

    def call_procedure(self, name: str, params: list[Param]) -> list[Event]:
        """An RPC by name (or a ProcID other than the prepare/execute family)."""

    def begin_transaction(self) -> list[Event]:
        """TM_BEGIN_XACT."""

    def commit(self, begin_new: bool) -> list[Event]:
        """TM_COMMIT_XACT; begin_new = fBeginXact."""

    def rollback(self, begin_new: bool) -> list[Event]:
        """TM_ROLLBACK_XACT; begin_new = fBeginXact."""

    def cancel(self) -> None:
        """ATTENTION arrived: stop the running request as soon as possible."""

    def close(self) -> None:
        """The connection ended (cleanly or not)."""


class EngineInstance(Protocol):
    name: str              # @@SERVERNAME, also the ServerName of ERROR/INFO tokens

    def login(self, user: str, password: str, database: str, *, app: str = "",
              host: str = "", library: str = "", client_address: str = "",
              tds_version: int = 0x74000004) -> EngineSession:
        """Authenticate a SQL login; raise LoginFailed (18456 …) otherwise."""
