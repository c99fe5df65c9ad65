"""One database's mirroring session as this instance sees it, and its persistence.

What must survive a restart or a kill (role, partner, witness, safety, timeout, sequences, the
failover LSN, SUSPENDED) lives in t_database_mirroring; what is only true while the process
runs (connected or not, how far the mirror hardened) lives on the object.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from ..engine.catalog import MIRRORING_ROLE_DESC as ROLE_DESC, MIRRORING_STATE_DESC as STATE_DESC

PRINCIPAL, MIRROR = 1, 2
SUSPENDED, DISCONNECTED, SYNCHRONIZING, PENDING_FAILOVER, SYNCHRONIZED = 0, 1, 2, 3, 4
SAFETY_OFF, SAFETY_FULL = 1, 2
SAFETY_DESC = {0: "UNKNOWN", SAFETY_OFF: "OFF", SAFETY_FULL: "FULL"}
WITNESS_UNKNOWN, WITNESS_CONNECTED, WITNESS_DISCONNECTED = 0, 1, 2
WITNESS_DESC = {0: "UNKNOWN", 1: "CONNECTED", 2: "DISCONNECTED"}
DEFAULT_TIMEOUT = 10
MIN_TIMEOUT = 5


@dataclass
class MirrorSession:
    database_id: int
    database_name: str
    guid: str
    role: int
    partner_url: str
    partner_instance: Optional[str] = None
    witness_url: Optional[str] = None
    safety: int = SAFETY_FULL
    timeout: int = DEFAULT_TIMEOUT
    role_sequence: int = 1
    safety_sequence: int = 1
    suspended: bool = False
    suspended_sequence: int = 0
    failover_lsn: Optional[int] = None
    redo_queue: Optional[int] = None
    # live only
    connected: bool = False               # the partner was heard within TIMEOUT
    witness_connected: bool = False
    caught_up: bool = False               # mirror hardened the principal's end of log
    serving: bool = True                  # a principal with quorum (or no witness) serves the database
    partner_end: Optional[int] = None     # principal: the mirror's hardened end of log
    heard_at: float = field(default_factory=time.monotonic)   # last dbm.status from the partner
    tables: dict = field(default_factory=dict, repr=False)      # mirror: redo's table definitions
    started: float = field(default_factory=time.monotonic)
    changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def state(self) -> int:
        if self.suspended:
            return SUSPENDED
        if not self.connected:
            return DISCONNECTED
        return SYNCHRONIZED if self.caught_up else SYNCHRONIZING

    @property
    def witness_state(self) -> Optional[int]:
        if not self.witness_url:
            return None
        return WITNESS_CONNECTED if self.witness_connected else WITNESS_DISCONNECTED

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()


_COLUMNS = ("database_id", "mirroring_guid", "role", "role_sequence", "safety", "safety_sequence", "partner_name",
            "partner_instance", "witness_name", "timeout", "redo_queue", "failover_lsn", "suspended",
            "suspended_sequence")


def save(conn: sqlite3.Connection, s: MirrorSession) -> None:
    conn.execute(f"INSERT OR REPLACE INTO t_database_mirroring ({', '.join(_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                 (s.database_id, s.guid, s.role, s.role_sequence, s.safety, s.safety_sequence, s.partner_url,
                  s.partner_instance, s.witness_url, s.timeout, s.redo_queue, s.failover_lsn, int(s.suspended),
                  s.suspended_sequence))


def delete(conn: sqlite3.Connection, database_id: int) -> None:
    conn.execute("DELETE FROM t_database_mirroring WHERE database_id=?", (database_id,))


def load_all(conn: sqlite3.Connection) -> list[MirrorSession]:
    out = []
    for row in conn.execute(f"SELECT m.{', m.'.join(_COLUMNS)}, d.name FROM t_database_mirroring m "
                            "JOIN t_databases d ON d.database_id = m.database_id"):
        (dbid, guid, role, rseq, safety, sseq, partner, pinst, witness, timeout, redo, flsn, susp, suspseq,
         name) = row
        out.append(MirrorSession(dbid, name, guid, role, partner, pinst, witness, safety, timeout, rseq, sseq,
                                 bool(susp), suspseq or 0, flsn, redo))
    return out
