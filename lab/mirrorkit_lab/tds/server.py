"""The TDS listener: accepts connections and gives each one its own thread."""
from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time

from mirrorkit_lab.engine.api import EngineInstance

from .connection import Connection
from .packets import DEFAULT_MAX_MESSAGE
from .prelogin import ENCRYPTION_MODES
from .tls import prepare_context
from .watcher import AVAILABLE as _WATCHER_AVAILABLE, AttentionWatcher

log = logging.getLogger("mirrorkit_lab.tds")


class TdsServer:
    """A TDS 7.1-7.4 endpoint in front of an EngineInstance.

    encryption: "off" (never TLS), "optional" (TLS when the client asks and a
    context is given; login-only TLS for clients that send ENCRYPT_OFF) or
    "required" (full TLS for everybody; needs ``ssl_context``). The context is
    capped at TLS 1.2 in place, as TDS 7.x requires.

    attention_watcher: plain-TCP connections are watched for ATTENTION by one
    shared epoll thread while a request runs (cheapest); False gives every
    connection its own reader thread instead (what TLS connections always use).
    """

    def __init__(self, instance: EngineInstance, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None, encryption: str = "optional",
                 login_timeout: float = 30.0, max_message_size: int = DEFAULT_MAX_MESSAGE,
                 backlog: int = 128, attention_watcher: bool = True):
        if encryption not in ENCRYPTION_MODES:
            raise ValueError(f"encryption must be one of {ENCRYPTION_MODES}, not {encryption!r}")
        if encryption == "required" and ssl_context is None:
            raise ValueError('encryption="required" needs an ssl_context')
        self.instance = instance
        self.host = host
        self.port = port
        self.ssl_context = prepare_context(ssl_context) if ssl_context is not None else None
        self.encryption = encryption
        self.login_timeout = login_timeout
        self.max_message_size = max_message_size
        self.backlog = backlog
        self.use_watcher = attention_watcher and _WATCHER_AVAILABLE
        self.address: tuple[str, int] | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: set[Connection] = set()
        self._conns_lock = threading.Lock()
        self._stopping = False
        self._stopped = threading.Event()
        self._watcher: AttentionWatcher | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Bind and listen (OSError on failure), then accept in a background thread."""
        if self._listener is not None:
            return
        info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                  flags=socket.AI_PASSIVE)
        family, stype, proto, _, sockaddr = info[0]
        lsock = socket.socket(family, stype, proto)
        try:
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind(sockaddr)
            lsock.listen(self.backlog)
            lsock.setblocking(False)
        except OSError:
            lsock.close()
            raise
        self._listener = lsock
        self.address = lsock.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        if self.use_watcher:
            self._watcher = AttentionWatcher()
        self._stopping = False
        self._stopped.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="tds-accept",
                                               daemon=True)
        self._accept_thread.start()
        log.info("TDS server listening on %s:%d", *self.address)

    def serve_forever(self) -> None:
        """Start if needed and block until shutdown() is called (from another thread)."""
        self.start()
        try:
            self._stopped.wait()
        except KeyboardInterrupt:
            self.shutdown()
            raise

    def shutdown(self) -> None:
        """Stop accepting, close every client connection and join the threads."""
        if self._listener is None:
            return
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._accept_thread is not None:
            self._accept_thread.join(10)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            c.abort()
        for c in conns:
            if c.thread is not None:
                c.thread.join(10)
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        self._listener = None
        self._stopped.set()
        log.info("TDS server on %s:%d stopped", *self.address)

    def __enter__(self) -> "TdsServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    @property
    def watcher(self) -> AttentionWatcher | None:
        """The shared ATTENTION watcher while the server runs with one, else None."""
        return self._watcher

    @property
    def connection_count(self) -> int:
        with self._conns_lock:
            return len(self._conns)

    # ------------------------------------------------------------------ internals

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        n = 0
        try:
            while not self._stopping:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r or self._stopping:
                        return
                    try:
                        sock, addr = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:          # EMFILE and friends: back off, keep serving
                        log.warning("accept failed: %s", e)
                        time.sleep(0.05)
                        continue
                    n += 1
                    self._spawn(sock, addr, n)
        finally:
            sel.close()

    def _spawn(self, sock: socket.socket, addr, n: int) -> None:
        try:
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            return
        conn = Connection(self, sock, addr, on_close=self._forget)
        t = threading.Thread(target=conn.run, name=f"tds-conn-{n}", daemon=True)
        conn.thread = t
        with self._conns_lock:
            if self._stopping:
                sock.close()
                return
            self._conns.add(conn)
        t.start()

    def _forget(self, conn: Connection) -> None:
        with self._conns_lock:
            self._conns.discard(conn)
