"""What the engine hands to the wire layer: a flat stream of events per request.

The TDS layer turns each event into tokens; it never looks inside the engine.
Types are SQL Server type names ("int", "nvarchar(128)", "varbinary(max)",
"datetime", "bit", "char(4)", "uniqueidentifier", "decimal(25,0)", ...).
Values are Python objects: int, bool, str, bytes, datetime.datetime,
datetime.date, decimal.Decimal, uuid.UUID, float, or None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Column:
    name: str
    sqltype: str
    nullable: bool = True


@dataclass
class ResultSet:
    """One result set. The wire layer sends COLMETADATA, ROWs and a DONE(COUNT)."""
    columns: list[Column]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class Message:
    """An ERROR (severity > 10) or INFO (severity <= 10) token."""
    number: int
    severity: int
    state: int
    text: str
    line: int = 1
    procedure: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity > 10


@dataclass(frozen=True)
class StatementDone:
    """End of one statement: DONE (batch) or DONEINPROC (RPC).

    rowcount None means "no count" (DDL, SET, ...). error marks DONE_ERROR.
    """
    rowcount: int | None = None
    error: bool = False


@dataclass(frozen=True)
class DatabaseChanged:
    """ENVCHANGE type 1 (after USE)."""
    new: str
    old: str


@dataclass(frozen=True)
class TransactionChanged:
    """ENVCHANGE 8 (begin), 9 (commit) or 10 (rollback) with an 8-byte descriptor."""
    kind: str  # "begin" | "commit" | "rollback"
    descriptor: int


@dataclass(frozen=True)
class ReturnStatus:
    value: int


@dataclass(frozen=True)
class ReturnValue:
    """An OUTPUT parameter value (RETURNVALUE token)."""
    ordinal: int
    name: str
    sqltype: str
    value: Any


@dataclass(frozen=True)
class Fatal:
    """The connection must be closed after the preceding tokens are sent."""
    reason: str


Event = Union[ResultSet, Message, StatementDone, DatabaseChanged, TransactionChanged,
              ReturnStatus, ReturnValue, Fatal]
