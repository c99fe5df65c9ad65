"""One client connection: PRELOGIN -> (TLS) -> LOGIN7 -> requests.

The connection thread does the login with a socket timeout, then serves
requests one at a time; it is the only thread that writes to the socket.
ATTENTION must be noticed while a request runs (query timeouts, cursor
closes), so one of two helpers watches the socket meanwhile:

* plain TCP (the hot path): the worker reads its own socket, and the server's
  shared epoll watcher (watcher.py) peeks at it only while a request is being
  executed or streamed;
* TLS (or no epoll): a per-connection reader thread reads every message and
  queues it for the worker, reacting to ATTENTION at once.

Attention bookkeeping: ``_attn`` is non-zero while an attention has been seen
but not yet acknowledged; engine calls are then skipped and streaming stops.
Each attention gets exactly one DONE(ATTN): either appended to a reply that
was already partly sent (``_early_acks``), or as its own message when the
worker reads the attention packet.
"""
from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from mirrorkit_lab.engine.api import LoginFailed
from mirrorkit_lab.engine.results import Message, StatementDone

from . import prelogin as P
from . import tokens as K
from .login7 import FEATURE_FEDAUTH, TDS71, TDS74, Login7, negotiate_version, parse_login7
from .packets import (
    ATTENTION, DEFAULT_PACKET_SIZE, LOGIN7, MAX_PACKET_SIZE, MIN_PACKET_SIZE, PRELOGIN, REPLY, RPC,
    SQL_BATCH, TRANSACTION_MANAGER, Cancelled, MessageReader, PacketWriter, PeerClosed,
    ProtocolError, frame,
)
from .params import Reader, UnsupportedParameter
from .procs import RpcDispatcher
from .response import MetaCache, ResponseBuilder
from .rpc import parse_rpc, skip_all_headers
from .tls import server_handshake
from .transport import PlainTransport
from .watcher import AttentionWatcher

if TYPE_CHECKING:  # pragma: no cover
    from .server import TdsServer

log = logging.getLogger("mirrorkit_lab.tds")

PRODUCT_NAME = "Microsoft SQL Server"
PRODUCT_VERSION = (15, 0, 2000)
MAX_OUTSTANDING = 8          # queued, unprocessed messages before we call it a flood

TM_BEGIN_XACT = 5
TM_COMMIT_XACT = 7
TM_ROLLBACK_XACT = 8
_TM_NAMES = {0: "TM_GET_DTC_ADDRESS", 1: "TM_PROPAGATE_XACT", 6: "TM_PROMOTE_XACT",
             9: "TM_SAVE_XACT"}

_EOF = None


class Connection:
    def __init__(self, server: "TdsServer", sock: socket.socket, addr: Any,
                 on_close: Callable[["Connection"], None]):
        """on_close is called once, last, when the connection has been torn down."""
        self.server = server
        self._on_close = on_close
        self.sock = sock
        self.addr = addr
        self.session: Any = None
        self.version = TDS74
        self.packet_size = DEFAULT_PACKET_SIZE
        self.spid = 0
        self.transport: Any = PlainTransport(sock)
        self._lock = threading.Lock()
        self._busy = False            # the engine is running a request for us
        self._watching = False        # direct mode: the watcher may peek at the socket
        self._attn = 0                # attentions seen but not yet acknowledged
        self._early_acks = 0          # acks already sent inside a cut-short reply
        self._received = 0            # messages queued by the reader
        self._processed = 0           # messages taken by the worker
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closing = False
        self._reader_thread: threading.Thread | None = None
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    def abort(self) -> None:
        """Called by the server on shutdown: wake every blocked thread."""
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self._lock:
            busy = self._busy
        if busy and self.session is not None:
            self._cancel_session()

    def _cancel_session(self) -> None:
        try:
            self.session.cancel()
        except Exception:
            log.exception("session.cancel() raised")

    def run(self) -> None:
        try:
            if self._login():
                self._serve()
        except (ProtocolError, UnsupportedParameter) as e:
            log.info("closing connection from %s: protocol error: %s", self.addr, e)
        except (PeerClosed, ConnectionError, socket.timeout) as e:
            log.debug("connection from %s ended: %s", self.addr, e)
        except (ssl.SSLError, OSError) as e:
            if not self._closing:
                log.info("connection from %s failed: %s", self.addr, e)
        except Exception:
            log.exception("unexpected error on the connection from %s", self.addr)
        finally:
            self._teardown()

    def _teardown(self) -> None:
        watcher = self.server.watcher
        if watcher is not None:
            try:
                watcher.forget(self.sock.fileno(), self)
            except OSError:
                pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._reader_thread is not None:
            self._reader_thread.join(5)
        try:
            self.sock.close()
        except OSError:
            pass
        if self.session is not None:
            try:
                self.session.close()
            except Exception:
                log.exception("session.close() raised")
        self._on_close(self)

    # ------------------------------------------------------------------ login

    def _send_message(self, payload: bytes, mtype: int = REPLY) -> None:
        self.transport.sendall(frame(mtype, payload, self.packet_size, self.spid))

    def _login_error(self, m: Message, version: int) -> None:
        """ERROR + DONE(ERROR), sent before the connection is closed."""
        payload = (K.message(m.number, m.state, m.severity, m.text, self.server.instance.name,
                             m.procedure, m.line, version)
                   + K.done(K.DONE, K.DONE_ERROR, 0, 0, version))
        self._send_message(payload)

    def _login_recv(self, n: int) -> bytes:
        """recv with one deadline for the whole login, so that a peer trickling
        a byte at a time cannot hold the connection open either."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the login did not finish in time")
        self.sock.settimeout(left)
        return self.sock.recv(n)

    def _login(self) -> bool:
        srv = self.server
        sock = self.sock
        self._deadline = time.monotonic() + srv.login_timeout
        sock.settimeout(srv.login_timeout)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return False
        if not first:
            return False
        if first[0] == 0x16:
            log.info("%s opened with a raw TLS ClientHello (TDS 8.0 strict): not supported", self.addr)
            return False
        reader = MessageReader(self._login_recv, srv.max_message_size)
        msg = reader.read_message()
        if msg is None:
            return False
        login_reader = reader
        if msg.type == PRELOGIN:
            opts = P.parse_prelogin(msg.payload)
            enc, action = P.negotiate(opts, srv.encryption, srv.ssl_context is not None)
            self._send_message(P.build_reply(enc))
            if action == P.CLOSE:
                log.info("%s: encryption mismatch (client 0x%s, mode %s); closing", self.addr,
                         opts.get(P.OPT_ENCRYPTION, b"").hex(), srv.encryption)
                return False
            if action in (P.LOGIN_ONLY, P.FULL):
                tls = server_handshake(srv.ssl_context, sock, reader, self._login_recv)
                login_reader = MessageReader(tls.recv, srv.max_message_size)
                if action == P.FULL:
                    self.transport = tls
                    reader = login_reader
            msg = login_reader.read_message()
            if msg is None:
                return False
        if msg.type != LOGIN7:
            raise ProtocolError(f"expected LOGIN7, got message type 0x{msg.type:02x}")
        login = parse_login7(msg.payload)
        if not self._accept_login(login):
            return False
        # Logged in: no more deadline, block as long as the client stays idle.
        sock.settimeout(None)
        if isinstance(self.transport, PlainTransport):
            reader.rebind(sock.recv)
        else:
            self.transport.raw_recv = sock.recv
        self._reader = reader
        return True

    def _accept_login(self, login: Login7) -> bool:
        srv = self.server
        version = negotiate_version(login.tds_version)
        if version is None:
            self._login_error(Message(50000, 16, 1,
                                      f"The mirrorkit lab needs TDS 7.1 or later; the client asked "
                                      f"for 0x{login.tds_version:08x}."), TDS71)
            return False
        self.version = version
        if login.integrated_security:
            self._login_error(Message(18452, 14, 1,
                                      "Login failed. Integrated security (SSPI/Kerberos/NTLM) is not "
                                      "supported by the mirrorkit lab; use SQL Server authentication "
                                      "(user name and password)."), version)
            return False
        if FEATURE_FEDAUTH in login.features:
            self._login_error(Message(18456, 14, 1,
                                      "Login failed. Federated (Azure AD / Entra ID) authentication is "
                                      "not supported by the mirrorkit lab; use SQL Server "
                                      "authentication."), version)
            return False
        try:
            peer = self.addr[0] if isinstance(self.addr, tuple) else str(self.addr)
            session = srv.instance.login(
                login.username, login.password, login.database, app=login.appname,
                host=login.hostname, library=login.library, client_address=peer,
                tds_version=version)
        except LoginFailed as e:
            self._login_error(e.message, version)
            return False
        except Exception as e:
            log.exception("instance.login raised")
            self._login_error(Message(18456, 14, 1, f"Login failed for user '{login.username}'. "
                                                    f"(lab engine error: {e})"), version)
            return False
        self.session = session
        self.spid = int(getattr(session, "spid", 0) or 0) & 0xFFFF
        self._tell_engine_about_connection(session)
        size = login.packet_size
        self.packet_size = size if MIN_PACKET_SIZE <= size <= MAX_PACKET_SIZE else DEFAULT_PACKET_SIZE
        database = session.database or ""
        if login.database and login.database.lower() == database.lower():
            database = login.database      # pytds re-sends USE when the names differ
        language = login.language or "us_english"
        name = srv.instance.name
        payload = b"".join([
            K.env_database(database, "master"),
            K.message(5701, 2, 0, f"Changed database context to '{database}'.", name, "", 1, version),
            K.env_collation(),
            K.env_language(language),
            K.message(5703, 1, 0, f"Changed language setting to {language}.", name, "", 1, version),
            K.env_packet_size(self.packet_size, DEFAULT_PACKET_SIZE),
            K.loginack(version, PRODUCT_NAME, PRODUCT_VERSION),
            K.done(K.DONE, 0, 0, 0, version),
        ])
        # The login reply still goes out in 4096-byte packets.
        self.transport.sendall(frame(REPLY, payload, DEFAULT_PACKET_SIZE, self.spid))
        return True

    def _tell_engine_about_connection(self, session: Any) -> None:
        """Stopgap until login() takes these: sys.dm_exec_connections needs to know
        whether the connection is encrypted (full TLS only; a TLS-protected login
        alone counts as not encrypted, as in SQL Server) and the client's port.
        The lab engine keeps them in its public ``client`` dict."""
        info = getattr(session, "client", None)
        if isinstance(info, dict):
            info["encrypted"] = not isinstance(self.transport, PlainTransport)
            if isinstance(self.addr, tuple) and len(self.addr) >= 2:
                info["client_port"] = self.addr[1]

    # ------------------------------------------------------------------ requests

    def _serve(self) -> None:
        self.sock.settimeout(None)
        self._meta = MetaCache(self.version)
        self._rpc = RpcDispatcher(self.session, self._call)
        self._handlers = {SQL_BATCH: self._sql_batch, RPC: self._rpc_request,
                          TRANSACTION_MANAGER: self._tm_request}
        watcher = self.server.watcher
        if watcher is not None and isinstance(self.transport, PlainTransport):
            self._serve_direct(watcher)
        else:
            self._serve_threaded()

    def _dispatch(self, msg) -> bool:
        """Handle one non-attention message; False = close the connection."""
        handler = self._handlers.get(msg.type)
        if handler is None:
            raise ProtocolError(f"unexpected message type 0x{msg.type:02x} after login")
        if msg.ignore:
            # The client gave up on a partly sent request (IGNORE bit).
            self._send_message(K.done(K.DONE, K.DONE_ERROR, 0, 0, self.version))
            return True
        # RESETCONNECTION (status 0x08/0x10) is tolerated: the engine owns session
        # state, and the lab does not pool connections server-side.
        return handler(msg)

    def _serve_direct(self, watcher: AttentionWatcher) -> None:
        read = self._reader.read_message
        pending = self._reader.pending_type
        fd = self.sock.fileno()
        lock = self._lock
        while True:
            msg = read()
            if msg is None:
                return
            if msg.type == ATTENTION:
                self._attention()
                continue
            if pending() == ATTENTION:       # it came in the same read as the request
                self._attn = 1
            self._watching = True
            watcher.watch(fd, self)
            try:
                ok = self._dispatch(msg)
            finally:
                watcher.unwatch(fd)
                with lock:
                    self._watching = False
            if not ok:
                return

    def data_while_busy(self) -> None:
        """Watcher thread: bytes arrived while a request runs; cancel if it is
        an ATTENTION (peeked, not consumed: the worker reads it afterwards)."""
        with self._lock:
            if not self._watching:
                return
            try:
                head = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                head = b""
            if head and head[0] != ATTENTION:
                return                       # not ours to judge; the worker reads it later
            self._attn = 1                   # (EOF also stops the work: nobody will read it)
            busy = self._busy
        if busy:
            self._cancel_session()

    def _serve_threaded(self) -> None:
        self._reader_thread = threading.Thread(
            target=self._read_loop, name=f"tds-reader-{self.spid}", daemon=True)
        self._reader_thread.start()
        get = self._queue.get
        while True:
            msg = get()
            if msg is _EOF:
                return
            self._processed += 1
            if msg.type == ATTENTION:
                self._attention()
                continue
            if not self._dispatch(msg):
                return

    def _read_loop(self) -> None:
        """Reader thread: queue every message; react to ATTENTION at once."""
        read = self._reader.read_message
        put = self._queue.put
        try:
            while True:
                msg = read()
                if msg is None:
                    break
                if msg.type == ATTENTION:
                    with self._lock:
                        self._attn += 1
                        busy = self._busy
                    if busy:
                        self._cancel_session()
                elif self._received - self._processed > MAX_OUTSTANDING:
                    raise ProtocolError("the client sends requests without reading the replies")
                self._received += 1
                put(msg)
        except (ProtocolError, PeerClosed) as e:
            log.info("closing connection from %s: %s", self.addr, e)
        except (OSError, ssl.SSLError) as e:
            if not self._closing:
                log.debug("read from %s failed: %s", self.addr, e)
        except Exception:
            log.exception("reader thread failed")
        finally:
            put(_EOF)

    def _cancelled(self) -> bool:
        return self._attn > 0

    def _call(self, fn, *args) -> list:
        """Run an engine call unless an attention is pending; Cancelled otherwise."""
        lock = self._lock
        with lock:
            if self._attn:
                raise Cancelled()
            self._busy = True
        try:
            events = fn(*args)
            if type(events) is not list:
                events = list(events or ())
        except Exception as e:          # an engine bug must not kill the connection
            log.exception("the engine raised")
            events = [Message(50000, 16, 1,
                              f"Internal error in the lab engine: {type(e).__name__}: {e}"),
                      StatementDone(error=True)]
        finally:
            with lock:
                self._busy = False
        if self._attn:
            raise Cancelled()
        return events

    def _attention(self) -> None:
        if self._early_acks:
            self._early_acks -= 1
        else:
            self._send_message(K.attention_ack(self.version))
        with self._lock:
            # Threaded mode counts attentions as the reader queues them; in direct
            # mode the watcher only raises a flag (and the client waits for the ack
            # before it sends anything else, so there is at most one).
            self._attn = self._attn - 1 if self._reader_thread is not None else 0

    def _writer(self) -> PacketWriter:
        return PacketWriter(self.transport.sendall, self.packet_size, self.spid,
                            cancelled=self._cancelled)

    def _builder(self, w: PacketWriter) -> ResponseBuilder:
        return ResponseBuilder(w, self.version, self.server.instance.name, self._meta,
                               bool(getattr(self.session, "in_transaction", False)))

    def _cut_short(self, w: PacketWriter) -> None:
        """An attention stopped this reply. If part of it is on the wire, end
        it with the attention ack; otherwise drop it (the ack follows when the
        worker reaches the attention)."""
        if w.started:
            w.buf += K.attention_ack(self.version)
            w.finish()
            self._early_acks += 1
        else:
            w.buf.clear()

    def _sql_batch(self, msg) -> bool:
        payload = msg.payload
        start = skip_all_headers(payload, self.version)
        sql = payload[start:].decode("utf-16-le", errors="replace")
        w = self._writer()
        b = self._builder(w)
        try:
            events = self._call(self.session.execute, sql)
            b.events(events, in_rpc=False)
            b.finish_batch()
            w.finish()
        except Cancelled:
            self._cut_short(w)
        return not b.close_after

    def _rpc_request(self, msg) -> bool:
        try:
            reqs = parse_rpc(msg.payload, skip_all_headers(msg.payload, self.version), self.version)
        except UnsupportedParameter as e:
            w = self._writer()
            b = self._builder(w)
            b.error(50000, str(e))
            b.done(K.DONEPROC, 0, None, K.CMD_RPC)
            w.finish()
            return True
        w = self._writer()
        b = self._builder(w)
        try:
            last = len(reqs) - 1
            for i, req in enumerate(reqs):
                self._rpc.run(req, b, i == last)
                if b.close_after:
                    break
                w.maybe_flush()
            w.finish()
        except Cancelled:
            self._cut_short(w)
        return not b.close_after

    def _tm_request(self, msg) -> bool:
        r = Reader(msg.payload, skip_all_headers(msg.payload, self.version))
        kind = r.u16()
        w = self._writer()
        b = self._builder(w)
        try:
            if kind == TM_BEGIN_XACT:
                events = self._call(self.session.begin_transaction)
            elif kind in (TM_COMMIT_XACT, TM_ROLLBACK_XACT):
                r.take(r.u8())                       # transaction name
                begin_new = bool(r.u8() & 1) if r.remaining() else False
                fn = self.session.commit if kind == TM_COMMIT_XACT else self.session.rollback
                events = self._call(fn, begin_new)
            else:
                name = _TM_NAMES.get(kind, f"type {kind}")
                events = [Message(50000, 16, 1, f"Transaction manager request {name} is not "
                                                "supported by the mirrorkit lab."),
                          StatementDone(error=True)]
            b.events(events, in_rpc=False)
            b.finish_batch()
            w.finish()
        except Cancelled:
            self._cut_short(w)
        return not b.close_after
