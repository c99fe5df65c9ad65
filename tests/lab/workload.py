"""A steady stream of committed single-row inserts, for failure and failover acceptance tests.

One connection, one thread: each value is inserted by the caller's parameterised statement and
committed on its own. A value counts as committed only when COMMIT returned success; a value whose
INSERT or COMMIT failed is *in doubt* (the server may have committed it before the connection
died) and is never used again. When the connection is lost the workload reconnects, trying the
caller's servers in order (for a mirroring session: principal, then mirror) until one takes the
connection and the insert again.

    wl = Workload(lambda server: pyodbc.connect(cs[server], timeout=3), ["A", "B"],
                  "INSERT INTO dbo.t (v) VALUES (?)", database="Sales")
    wl.start(); wl.wait_for(100); ...; wl.stop()
    assert set(wl.committed_values()) <= rows_on_new_principal
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence


@dataclass(frozen=True)
class Commit:
    value: Any
    server: str
    at: float          # time.monotonic() when COMMIT returned


@dataclass(frozen=True)
class Failure:
    value: Any         # None when the failure was a connect attempt
    server: str
    at: float
    error: str


def quote_name(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


class Workload:
    """Runs in a daemon thread between start() and stop(); every accessor is safe to call meanwhile."""

    def __init__(self, connect: Callable[[str], Any], servers: Sequence[str], insert: str, *,
                 database: Optional[str] = None, values: Optional[Iterable[Any]] = None,
                 pause: float = 0.0, max_backoff: float = 1.0, clock: Callable[[], float] = time.monotonic):
        """connect(server) returns a DB-API connection (autocommit off); insert has one '?' marker."""
        if not servers:
            raise ValueError("a workload needs at least one server")
        self._connect_to, self.servers, self.insert = connect, list(servers), insert
        self.database, self.pause, self.max_backoff, self._clock = database, pause, max_backoff, clock
        self._values: Iterator[Any] = iter(values if values is not None else itertools.count(1))
        self._lock = threading.Condition()
        self._commits: list[Commit] = []
        self._failures: list[Failure] = []
        self._in_doubt: list[Any] = []
        self._connections: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._conn = None
        self.started_at: Optional[float] = None
        self.stopped_at: Optional[float] = None

    # ---- control --------------------------------------------------------------------------------
    def start(self) -> "Workload":
        if self._thread is not None:
            raise RuntimeError("the workload was already started")
        self.started_at = self._clock()
        self._thread = threading.Thread(target=self._run, name="workload", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> bool:
        """Ask the thread to end after the statement in flight; True when it ended within timeout."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until at least count values are committed in all (False at the deadline)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._commits) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    return len(self._commits) >= count
                self._lock.wait(min(left, 0.1))
            return True

    # ---- what happened --------------------------------------------------------------------------
    @property
    def commits(self) -> list[Commit]:
        with self._lock:
            return list(self._commits)

    def committed_values(self) -> list[Any]:
        with self._lock:
            return [c.value for c in self._commits]

    @property
    def in_doubt(self) -> list[Any]:
        """Values sent whose outcome is unknown: each may or may not be on the server."""
        with self._lock:
            return list(self._in_doubt)

    @property
    def errors(self) -> list[Failure]:
        with self._lock:
            return list(self._failures)

    @property
    def connections(self) -> list[tuple[float, str]]:
        """(time, server) of every connection the workload made, the first one included."""
        with self._lock:
            return list(self._connections)

    def longest_pause(self) -> float:
        """The longest time without a commit between start and the last commit (0 before two)."""
        with self._lock:
            times = [self.started_at] + [c.at for c in self._commits] if self.started_at is not None else []
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    # ---- the thread -----------------------------------------------------------------------------
    def _note(self, failure: Failure) -> None:
        with self._lock:
            self._failures.append(failure)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:      # a dead connection may refuse even to close
                pass

    def _reconnect(self) -> Optional[str]:
        """Connect to the first server that takes the connection (and the database); None on stop."""
        backoff = 0.05
        while not self._stop.is_set():
            for server in self.servers:
                if self._stop.is_set():
                    return None
                try:
                    conn = self._connect_to(server)
                    if self.database is not None:
                        conn.cursor().execute(f"USE {quote_name(self.database)}")
                        conn.commit()
                except Exception as exc:
                    self._note(Failure(None, server, self._clock(), f"{type(exc).__name__}: {exc}"))
                    continue
                self._conn = conn
                with self._lock:
                    self._connections.append((self._clock(), server))
                return server
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)
        return None

    def _run(self) -> None:
        server = None
        try:
            while not self._stop.is_set():
                if self._conn is None:
                    server = self._reconnect()
                    if server is None:
                        return
                value = next(self._values, StopIteration)
                if value is StopIteration:
                    return
                try:
                    self._conn.cursor().execute(self.insert, value)
                    self._conn.commit()
                except Exception as exc:
                    with self._lock:
                        self._in_doubt.append(value)
                        self._failures.append(Failure(value, server, self._clock(), f"{type(exc).__name__}: {exc}"))
                    # whatever failed, the connection's transaction state is unknown: start afresh
                    self._close()
                    continue
                with self._lock:
                    self._commits.append(Commit(value, server, self._clock()))
                    self._lock.notify_all()
                if self.pause:
                    self._stop.wait(self.pause)
        finally:
            self._close()
            self.stopped_at = self._clock()
            with self._lock:
                self._lock.notify_all()
