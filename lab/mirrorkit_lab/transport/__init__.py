"""The lab's mirroring transport: DATABASE_MIRRORING endpoints as real TCP listeners
that authenticate peers by certificate (handshake.py) and keep live connections
(registry.py). Mirroring sessions (SET PARTNER / SET WITNESS) talk through links
(links.py): `transport.link(url, role)` keeps an outbound connection open and
`transport.on_message(kind, handler)` serves what peers send.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

from ..engine import store
from ..engine.errors import SqlError
from . import catalog, handshake, links
from .faults import FaultView
from .handshake import Outcome, Peer
from .links import Link
from .registry import COLUMNS, Registry

if TYPE_CHECKING:
    from ..engine.instance import LabInstance

_URL_RE = re.compile(r"^\s*tcp://(\[[^\]]+\]|[^:/\s]+):(\d{1,5})/?\s*$", re.I)


class InvalidEndpointUrl(ValueError):
    pass


def parse_endpoint_url(url: str) -> tuple[str, int]:
    """'TCP://host:port' (IPv6 in brackets), as SET PARTNER and ENDPOINT_URL take it."""
    m = _URL_RE.match(url or "")
    if not m:
        raise InvalidEndpointUrl(f"{url!r} is not an endpoint URL of the form TCP://<address>:<port>")
    host = m.group(1).strip("[]")
    port = int(m.group(2))
    if not 1 <= port <= 65535:
        raise InvalidEndpointUrl(f"{url!r}: port {port} is out of range")
    return host, port


def loopback_address(host: str) -> Optional[str]:
    """The lab only ever talks to loopback addresses; anything else counts as unreachable."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return None
    for family, _, _, _, sockaddr in infos:
        addr = ipaddress.ip_address(sockaddr[0])
        if addr.is_loopback:
            return str(addr)
    return None


class _Listener:
    def __init__(self, sock: socket.socket, address: tuple[str, int], transport: "MirroringTransport"):
        self.sock = sock
        self.address = address
        self.transport = transport
        self.thread = threading.Thread(target=self._run, name=f"dbm-listener-{address}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                client, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.transport.accept, args=(client, addr[0]),
                             name="dbm-accept", daemon=True).start()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


def _bind(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


_UNSET = object()


class MirroringTransport:
    def __init__(self, instance: "LabInstance"):
        self.instance = instance
        self.registry = Registry()
        # the lab's state directory (<state>/instances/<name>/ is the instance's home)
        self.faults = FaultView(instance.home.parent.parent, instance.name)
        self._lock = threading.RLock()
        self._listener: Optional[_Listener] = None
        self._pending: Optional[tuple[tuple[str, int], socket.socket]] = None
        self._config = _UNSET           # the endpoint settings whose change closes its connections
        self._closed = False
        self._handlers: dict[str, Callable] = {"ping": self._ping}
        self._heard: dict[str, float] = {}
        self._links: list[Link] = []
        self._connections: set[links.Connection] = set()
        self._conn_lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name=f"dbm-heartbeat-{instance.name}", daemon=True)
        self._beat.start()

    # -- listeners follow the catalog ---------------------------------------------------------------
    def _desired(self, conn) -> Optional[tuple[str, tuple[str, int]]]:
        return self._desired_for(catalog.endpoint(conn))

    def _desired_for(self, ep: Optional[catalog.Endpoint]) -> Optional[tuple[str, tuple[str, int]]]:
        if ep is None or ep.state == 1:        # STOPPED: "does not listen to the endpoint port"
            return None
        # LISTENER_IP = ALL means every address of the host; a lab host has one
        return ep.name, (ep.ip_address or self.instance.host, ep.port)

    @staticmethod
    def _settings(ep: Optional[catalog.Endpoint]):
        """What ALTER ENDPOINT may change that restarts the endpoint (sessions-ag-rotation-spec §3.3)."""
        if ep is None:
            return None
        return (ep.state, ep.port, ep.ip_address, ep.role, ep.connection_auth, ep.certificate_id,
                ep.encryption_algorithm)

    def prepare(self, conn) -> None:
        """Inside the endpoint DDL: make sure the new port can be bound, or fail with 7890."""
        with self._lock:
            desired = self._desired(conn)
            if desired is None:
                return
            name, address = desired
            if self._listener is not None and self._listener.address == address:
                return
            if self._pending is not None and self._pending[0] == address:
                return
            try:
                sock = _bind(address)
            except OSError:
                self.instance.errorlog.write("spid20s", f"The Database Mirroring protocol transport cannot listen "
                                                        f"on port {address[1]} because it is in use by another process.")
                raise SqlError(7890, name) from None
            self._drop_pending()
            self._pending = (address, sock)

    def reconcile(self) -> None:
        with self._lock:
            if self._closed:
                return
            conn = store.connect(self.instance.db_path)
            try:
                ep = catalog.endpoint(conn)
            finally:
                conn.close()
            desired = self._desired_for(ep)
            settings = self._settings(ep)
            changed = self._config is not _UNSET and settings != self._config
            self._config = settings
            address = desired[1] if desired else None
            try:
                self._follow(address, changed)
            finally:
                for link in list(self._links):
                    link.wake()

    def _follow(self, address: Optional[tuple[str, int]], changed: bool) -> None:
        if changed:
            # a reconfigured, stopped or dropped endpoint closes every connection, both directions;
            # links reconnect with the new settings
            self.registry.close_all()
        if self._listener is not None and self._listener.address == address:
            self._drop_pending()
            if changed:
                self._log_stopped()
                self._log_listening(address)
            return
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            self.registry.close_all()      # a stopped or moved endpoint drops its connections
            self._log_stopped()
        if address is None:
            self._drop_pending()
            return
        if self._pending is not None and self._pending[0] == address:
            sock = self._pending[1]
            self._pending = None
        else:
            self._drop_pending()
            try:
                sock = _bind(address)
            except OSError:
                self.instance.errorlog.write(
                    "spid20s", f"The Database Mirroring protocol transport cannot listen on port "
                               f"{address[1]} because it is in use by another process.")
                return
        self._listener = _Listener(sock, address, self)
        self._listener.start()
        self._log_listening(address)

    def _log_stopped(self) -> None:
        self.instance.errorlog.write("spid20s", "The Database Mirroring protocol transport has stopped "
                                                "listening for connections.")

    def _log_listening(self, address: tuple[str, int]) -> None:
        self.instance.errorlog.write("spid20s", f"Server is listening on [ {address[0]} <ipv4> {address[1]}].")
        self.instance.errorlog.write("spid20s", "The Database Mirroring protocol transport is now listening "
                                                "for connections.")

    def _drop_pending(self) -> None:
        if self._pending is not None:
            self._pending[1].close()
            self._pending = None

    @property
    def listening_on(self) -> Optional[tuple[str, int]]:
        return self._listener.address if self._listener else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._drop_pending()
        self._stop.set()
        for link in list(self._links):
            link.close()
        self.registry.close_all()

    # -- connections -------------------------------------------------------------------------------------
    def connect(self, url: str, role: str = "PARTNER") -> Outcome:
        """Connect this instance's endpoint to the endpoint at `url`, asking it to serve `role`."""
        try:
            host, port = parse_endpoint_url(url)
        except InvalidEndpointUrl as exc:
            return Outcome(False, 1418, str(exc))
        address = loopback_address(host)
        if address is None:
            return handshake._unreachable(self.instance, url)
        return handshake.initiate(self, address, port, url, role.upper())

    def watch(self, key: str, sock: socket.socket) -> None:
        """Keep a live connection until the peer closes it."""
        def run():
            try:
                sock.settimeout(None)
                while sock.recv(4096):
                    pass
            except OSError:
                pass
            self.registry.remove(key, sock)
        threading.Thread(target=run, name="dbm-connection", daemon=True).start()

    def fill_live_tables(self, conn, names) -> None:
        if "dm_db_mirroring_connections" in names:
            conn.execute("DELETE FROM live_dm_db_mirroring_connections")
            marks = ", ".join("?" * len(COLUMNS))
            conn.executemany(f"INSERT INTO live_dm_db_mirroring_connections VALUES ({marks})", self.registry.rows())

    # -- links and messages ------------------------------------------------------------------------------
    def link(self, url: str, role: str = "PARTNER") -> Link:
        """Keep an authenticated connection to the endpoint at `url` open, asking it to serve `role`
        ("PARTNER" or "WITNESS"); see links.Link. Each call makes a new link; close() ends it."""
        new = Link(self, url, role)
        with self._conn_lock:
            self._links.append(new)
        return new

    def on_message(self, kind: str, handler: Callable[[Peer, dict], Optional[dict]]) -> None:
        """Serve messages whose "kind" is `kind`: handler(peer, message) -> reply (for a request) or None.

        Handlers run on the receiving connection's thread, one message after the other; an exception
        is logged to the error log and the message dropped."""
        self._handlers[kind] = handler

    def last_heard(self, instance_name: str) -> Optional[float]:
        """time.monotonic() of the last frame (heartbeats included) from that peer, on any connection."""
        return self._heard.get(instance_name.lower())

    def now(self):
        """UTC now as this instance's certificate checks see it (lab clock offset included)."""
        return self.faults.now(store.utcnow())

    # -- inside: what handshake.py and links.py call ----------------------------------------------------------
    def accept(self, sock: socket.socket, client: str) -> None:
        handshake.accept(self, sock, client)

    def serve(self, live, peer: Peer) -> None:
        """Serve an accepted connection on the calling thread until it closes."""
        links.Connection(self, live, peer).serve()

    def heard(self, peer_key: str, when: float) -> None:
        self._heard[peer_key] = when

    def dispatch(self, peer: Peer, message) -> Optional[dict]:
        if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
            self.log_transport(f"a message without a kind from {peer.url or peer.instance_name} was dropped")
            return None
        handler = self._handlers.get(message["kind"])
        if handler is None:
            return None
        try:
            return handler(peer, message)
        except Exception as exc:       # a handler's bug never takes a connection or the instance down
            self.log_transport(f"the handler for a {message['kind']!r} message from {peer.instance_name} "
                               f"failed: {type(exc).__name__}: {exc}; the message was dropped")
            return None

    def _ping(self, peer: Peer, message: dict) -> dict:
        return {"kind": "pong", "instance": self.instance.name}

    def connection_opened(self, conn: "links.Connection") -> None:
        with self._conn_lock:
            self._connections.add(conn)
        if self._stop.is_set():
            conn.close()

    def connection_closed(self, conn: "links.Connection") -> None:
        with self._conn_lock:
            self._connections.discard(conn)

    def link_closed(self, link: Link) -> None:
        with self._conn_lock:
            if link in self._links:
                self._links.remove(link)

    def log_transport(self, text: str) -> None:
        self.instance.errorlog.write("spid20s", f"Database Mirroring transport: {text}.")

    def log_error(self, number: int, text: str, severity: int = 16, state: int = 3) -> None:
        self.instance.errorlog.write("spid20s", f"Error: {number}, Severity: {severity}, State: {state}.")
        self.instance.errorlog.write("spid20s", text)

    def _heartbeat(self) -> None:
        from .wire import HEARTBEAT
        while not self._stop.wait(links.HEARTBEAT / 4):
            now = time.monotonic()
            with self._conn_lock:
                connections = list(self._connections)
            for c in connections:
                if now - c.last_received > links.IDLE_TIMEOUT:
                    c.close()
                elif now - c.last_sent >= links.HEARTBEAT * 0.9:
                    c.write(HEARTBEAT)
