"""Live endpoint connections of one instance: the rows of sys.dm_db_mirroring_connections."""
from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

from ..engine.catalog import VIEWS
from ..engine.store import fmt_datetime, utcnow
from .policy import ALGORITHM_CODE

LOGIN_STATE_ONLINE = "Connection handshake is complete and is online (ready) for message exchange."

COLUMNS = VIEWS["dm_db_mirroring_connections"].columns


@dataclass
class LiveConnection:
    key: str                         # initiator: the endpoint URL; acceptor: the peer's name and address
    sock: socket.socket
    is_accept: bool
    principal_name: Optional[str]
    peer_certificate_id: Optional[int]
    algorithm: str
    connect_time: datetime = field(default_factory=utcnow)
    connection_id: uuid.UUID = field(default_factory=uuid.uuid4)
    transport_stream_id: uuid.UUID = field(default_factory=uuid.uuid4)
    peer_arbitration_id: uuid.UUID = field(default_factory=uuid.uuid4)
    bytes_sent: int = 0
    bytes_received: int = 0
    sends: int = 0
    receives: int = 0

    def row(self) -> tuple:
        now = fmt_datetime(utcnow())
        alg = ALGORITHM_CODE.get(self.algorithm, 0)
        return (str(self.connection_id).upper(), str(self.transport_stream_id).upper(), 4, "LOGGED_IN",
                fmt_datetime(self.connect_time), fmt_datetime(self.connect_time), "Certificate",
                self.principal_name, None, now, int(self.is_accept), 12, LOGIN_STATE_ONLINE,
                self.peer_certificate_id, alg, self.algorithm, 0, 0, 0, 0, self.bytes_sent,
                self.bytes_received, self.sends, self.receives, self.sends, self.receives,
                str(self.peer_arbitration_id).upper())


class Registry:
    def __init__(self):
        self._lock = threading.Lock()
        self._items: dict[str, LiveConnection] = {}
        self.epoch = 0          # bumped by close_all: connections from before it are not taken

    def add(self, conn: LiveConnection, epoch: Optional[int] = None) -> bool:
        """Register a connection; a new one to the same peer in the same direction replaces the old one.

        False (and the socket closed) when the endpoint stopped since the handshake began."""
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                stale = True
            else:
                stale = False
                old = self._items.pop(conn.key, None)
                self._items[conn.key] = conn
        if stale:
            _close(conn.sock)
            return False
        if old is not None:
            _close(old.sock)
        return True

    def remove(self, key: str, sock: Optional[socket.socket] = None) -> None:
        with self._lock:
            current = self._items.get(key)
            if current is not None and (sock is None or current.sock is sock):
                del self._items[key]
            else:
                current = None
        if current is not None:
            _close(current.sock)

    def rows(self) -> list[tuple]:
        with self._lock:
            return [c.row() for c in self._items.values()]

    def close_all(self) -> None:
        with self._lock:
            self.epoch += 1
            items, self._items = list(self._items.values()), {}
        for c in items:
            _close(c.sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
