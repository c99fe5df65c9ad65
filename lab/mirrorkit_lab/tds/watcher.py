"""One thread per server that notices ATTENTION packets on plain-TCP
connections while their request is running.

Why not a reader thread per connection: handing every request from a reader
thread to a worker thread costs two thread wake-ups, about 25 us of CPU per
round trip (more than the Python work itself). Here the worker reads its own
socket and, only while it executes or streams a reply, registers the socket
with a shared epoll set (two cheap epoll_ctl calls per request). When bytes
arrive, the watcher *peeks* at them without consuming: an ATTENTION packet
type (0x06) marks the connection as cancelled and calls ``session.cancel()``.
The worker later reads the ATTENTION packet normally and acknowledges it.

TLS connections cannot be peeked into, so they keep a reader thread
(connection.py); so does everything on platforms without epoll.
"""
from __future__ import annotations

import logging
import select
import socket
import threading
from typing import Any

log = logging.getLogger("mirrorkit_lab.tds")

AVAILABLE = hasattr(select, "epoll")


class AttentionWatcher:
    def __init__(self) -> None:
        self._ep = select.epoll()
        self._conns: dict[int, Any] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._ep.register(self._wake_r.fileno(), select.EPOLLIN)
        self._stop = False
        self._mask = select.EPOLLIN | select.EPOLLONESHOT
        self._thread = threading.Thread(target=self._loop, name="tds-attention", daemon=True)
        self._thread.start()

    def watch(self, fd: int, conn: Any) -> None:
        self._conns[fd] = conn
        try:
            self._ep.register(fd, self._mask)
        except FileExistsError:
            self._ep.modify(fd, self._mask)

    def forget(self, fd: int, conn: Any) -> None:
        if self._conns.get(fd) is conn:
            del self._conns[fd]

    def unwatch(self, fd: int) -> None:
        try:
            self._ep.unregister(fd)
        except (OSError, ValueError):
            pass                     # already closed: epoll dropped it

    def close(self) -> None:
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(5)
        self._ep.close()
        self._wake_r.close()
        self._wake_w.close()

    def _loop(self) -> None:
        wake = self._wake_r.fileno()
        while not self._stop:
            try:
                events = self._ep.poll()
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return
            for fd, _ in events:
                if fd == wake:
                    return
                conn = self._conns.get(fd)
                if conn is not None:
                    try:
                        conn.data_while_busy()
                    except Exception:
                        log.exception("attention watcher failed")
