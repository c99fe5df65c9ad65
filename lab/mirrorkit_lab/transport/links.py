"""Links: persistent, certificate-authenticated connections between endpoints that carry messages.

A `Link` keeps one outbound connection to a peer's endpoint open, re-running the full handshake at
every (re)connect; an accepted connection is served by the same `Connection` loop. Messages are dicts
(JSON values and bytes, wire.encode_frame); a message's "kind" selects the handler registered with
MirroringTransport.on_message. Handlers run on the connection's reader thread, in arrival order, so a
request's reply leaves without a thread hop; a slow handler delays that connection only.

Both sides send a heartbeat every HEARTBEAT seconds; a connection that heard nothing for IDLE_TIMEOUT
is closed (a dead or unreachable peer), and a link then reconnects.
"""
from __future__ import annotations

import itertools
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Callable, Optional

from . import handshake, wire
from .handshake import Outcome, Peer

if TYPE_CHECKING:
    from . import MirroringTransport
    from .registry import LiveConnection

HEARTBEAT = 1.0
IDLE_TIMEOUT = 20.0
SEND_TIMEOUT = 2.0          # a peer that stops reading for this long loses the connection
FIRST_RETRY = 0.05
MAX_RETRY = 1.0

Handler = Callable[[Peer, dict], Optional[dict]]


class Connection:
    """One authenticated connection, either direction, after its handshake."""

    def __init__(self, transport: "MirroringTransport", live: "LiveConnection", peer: Peer,
                 link: Optional["Link"] = None):
        self.transport = transport
        self.live = live
        self.sock = live.sock
        self.peer = peer
        self.link = link
        self._peer_key = (peer.instance_name or "").lower()
        self._send_lock = threading.Lock()
        self.last_sent = self.last_received = time.monotonic()
        self.closed = False

    @property
    def far_address(self) -> str:
        return self.peer.url or self.live.key

    # -- sending -------------------------------------------------------------------------------------
    def write(self, ftype: bytes, request_id: int = 0, body=None) -> bool:
        """Send one frame; False if it cannot be encoded or the connection is (now) closed."""
        try:
            frame = wire.encode_frame(ftype, request_id, body)
        except (TypeError, ValueError, wire.ProtocolError) as exc:
            self.transport.log_transport(f"a message to {self.far_address} was not sent: {exc}")
            return False
        if self.closed:
            return False
        if self.transport.faults.is_cut(self.peer.instance_name):
            return True             # lost on the way, as on a broken network: the sender cannot tell
        try:
            with self._send_lock:
                self.sock.sendall(frame)
        except OSError:
            self.close()
            return False
        self.last_sent = time.monotonic()
        self.live.bytes_sent += len(frame)
        self.live.sends += 1
        return True

    # -- receiving: the reader loop --------------------------------------------------------------------
    def serve(self) -> None:
        """Read and dispatch frames until the connection closes; never raises."""
        self.transport.connection_opened(self)
        reader = wire.FrameReader(self.sock)
        try:
            self.sock.settimeout(SEND_TIMEOUT)
            while not self.closed:
                try:
                    if reader.fill() == 0:
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
                try:
                    for payload in reader.frames():
                        if not self._receive(payload):
                            return
                except wire.ProtocolError as exc:
                    self._reject(str(exc))
                    return
        except Exception as exc:      # the instance outlives any connection
            self._reject(f"unexpected {type(exc).__name__}: {exc}")
        finally:
            self.close()
            self.transport.connection_closed(self)

    def _receive(self, payload: bytes) -> bool:
        if self.transport.faults.is_cut(self.peer.instance_name):
            return True
        now = time.monotonic()
        self.last_received = now
        self.transport.heard(self._peer_key, now)
        self.live.bytes_received += len(payload) + 4
        self.live.receives += 1
        try:
            ftype, request_id, body = wire.decode_frame(payload)
        except wire.ProtocolError as exc:
            self._reject(str(exc))
            return False
        if ftype == wire.HEARTBEAT:
            return True
        if ftype == wire.REPLY:
            if self.link is not None:
                self.link.resolve(request_id, body if isinstance(body, dict) else None)
            return True
        reply = self.transport.dispatch(self.peer, body)
        if ftype == wire.REQUEST:
            if reply is not None and not isinstance(reply, dict):
                self.transport.log_transport(f"the handler for a {body.get('kind')!r} request returned a "
                                             f"{type(reply).__name__}, not a message; replied with nothing")
                reply = None
            if not self.write(wire.REPLY, request_id, reply) and not self.closed:
                self.write(wire.REPLY, request_id, None)
        return True

    def _reject(self, reason: str) -> None:
        if self.closed:
            return
        role = "Target" if self.live.is_accept else "Initiator"
        self.transport.log_error(9642, f"An error occurred in a Service Broker/Database Mirroring transport "
                                       f"connection endpoint, Error: 8474, State: 11. (Near endpoint role: "
                                       f"{role}, far endpoint address: '{self.far_address}')")
        self.transport.log_transport(f"a frame from {self.far_address} was refused ({reason}); "
                                     "the connection is closed")
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.transport.registry.remove(self.live.key, self.sock)
        handshake._close(self.sock)


class _Slot:
    __slots__ = ("event", "value")

    def __init__(self):
        self.event = threading.Event()
        self.value: Optional[dict] = None


class Link:
    """An outbound connection to `url` asking its endpoint to serve `role`, kept open on its own."""

    def __init__(self, transport: "MirroringTransport", url: str, role: str):
        self.transport = transport
        self.url = url
        self.role = role.upper()
        self.id = uuid.uuid4().hex
        self.key = f"link:{self.role}:{url}:{self.id}"
        self.last_outcome: Optional[Outcome] = None
        self.peer_name: Optional[str] = None
        self.connects = 0                   # successful handshakes so far (each reconnect counts)
        self._conn: Optional[Connection] = None
        self._up = threading.Event()
        self._wake = threading.Event()
        self._closed = False
        self._pending: dict[int, _Slot] = {}
        self._ids = itertools.count(1)
        self._logged: Optional[tuple] = None
        self._thread = threading.Thread(target=self._run, name=f"dbm-link-{url}", daemon=True)
        self._thread.start()

    # -- what callers use ---------------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self._up.is_set()

    def wait_up(self, timeout: float) -> bool:
        return self._up.wait(timeout)

    def send(self, message: dict) -> bool:
        """One-way; False when the link is down or the message cannot travel."""
        conn = self._conn
        if conn is None or not _is_message(message):
            return False
        return conn.write(wire.MESSAGE, 0, message)

    def request(self, message: dict, timeout: float) -> Optional[dict]:
        """The peer handler's reply; None when down, on timeout, or when the handler replied nothing."""
        conn = self._conn
        if conn is None or not _is_message(message):
            return None
        request_id = next(self._ids)
        slot = _Slot()
        self._pending[request_id] = slot
        try:
            if not conn.write(wire.REQUEST, request_id, message):
                return None
            slot.event.wait(timeout)
            return slot.value
        finally:
            self._pending.pop(request_id, None)

    def close(self) -> None:
        """Stop reconnecting and close the connection."""
        self._closed = True
        self._wake.set()
        conn = self._conn
        if conn is not None:
            conn.close()
        self.transport.link_closed(self)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)     # a handshake in flight ends on its own (daemon thread)

    # -- inside ---------------------------------------------------------------------------------------------
    def resolve(self, request_id: int, value: Optional[dict]) -> None:
        slot = self._pending.get(request_id)
        if slot is not None:
            slot.value = value
            slot.event.set()

    def wake(self) -> None:
        """Retry now instead of at the end of the backoff (the endpoint's configuration changed)."""
        self._wake.set()

    def _run(self) -> None:
        delay = FIRST_RETRY
        while not self._closed:
            try:
                opened = self._open()
            except Exception as exc:          # keep the link alive whatever happens in one attempt
                self.transport.log_transport(f"a connection attempt to {self.url} failed: {exc}")
                opened = handshake.Opened(Outcome(False, 1418, str(exc)))
            self.last_outcome = opened.outcome
            self._log(opened)
            if opened.sock is None:
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(MAX_RETRY, delay * 2)
                continue
            conn = Connection(self.transport, opened.live, opened.peer, self)
            if self._closed:
                conn.close()
                break
            self.peer_name = opened.peer.instance_name
            self.connects += 1
            self._conn = conn
            self._up.set()
            try:
                conn.serve()
            finally:
                self._up.clear()
                self._conn = None
                for slot in list(self._pending.values()):
                    slot.event.set()
            delay = FIRST_RETRY
            self._wake.wait(FIRST_RETRY)
            self._wake.clear()

    def _open(self) -> handshake.Opened:
        from . import InvalidEndpointUrl, loopback_address, parse_endpoint_url
        inst = self.transport.instance
        try:
            host, port = parse_endpoint_url(self.url)
        except InvalidEndpointUrl as exc:
            return handshake.Opened(Outcome(False, 1418, str(exc)))
        address = loopback_address(host)
        if address is None:
            return handshake.Opened(handshake._unreachable(inst, self.url))
        return handshake.open_connection(self.transport, address, port, self.url, self.role, self.key,
                                         link=self.id)

    def _log(self, opened: handshake.Opened) -> None:
        # a link retries every second: a failure that repeats is written once, as a change is
        o = opened.outcome
        signature = (o.succeeded, o.number, o.message)
        if signature != self._logged:
            for process, line in opened.log:
                self.transport.instance.errorlog.write(process, line)
        self._logged = None if o.succeeded else signature


def _is_message(message) -> bool:
    return isinstance(message, dict) and isinstance(message.get("kind"), str)
