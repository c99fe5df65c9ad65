"""The lab's mirroring transport: DATABASE_MIRRORING endpoints as real TCP listeners
that authenticate peers by certificate (handshake.py) and keep live connections
(registry.py). Mirroring sessions (SET PARTNER / SET WITNESS) can open connections
in both directions through `connect` and exchange messages on them.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import threading
from typing import TYPE_CHECKING, Optional

from ..engine import store
from ..engine.errors import SqlError
from . import catalog, handshake
from .handshake import Outcome
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
            threading.Thread(target=handshake.accept, args=(self.transport, client, addr[0]),
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


class MirroringTransport:
    def __init__(self, instance: "LabInstance"):
        self.instance = instance
        self.registry = Registry()
        self._lock = threading.RLock()
        self._listener: Optional[_Listener] = None
        self._pending: Optional[tuple[tuple[str, int], socket.socket]] = None
        self._closed = False

    # -- listeners follow the catalog ---------------------------------------------------------------
    def _desired(self, conn) -> Optional[tuple[str, tuple[str, int]]]:
        ep = catalog.endpoint(conn)
        if ep is None or ep.state == 1:        # STOPPED: "does not listen to the endpoint port"
            return None
        # LISTENER_IP = ALL means every address of the host; a lab host has one
        return ep.name, (ep.ip_address or self.instance.host, ep.port)

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
                desired = self._desired(conn)
            finally:
                conn.close()
            address = desired[1] if desired else None
            if self._listener is not None and self._listener.address == address:
                self._drop_pending()
                return
            if self._listener is not None:
                self._listener.close()
                self._listener = None
                self.registry.close_all()      # a stopped or moved endpoint drops its connections
                self.instance.errorlog.write("spid20s", "The Database Mirroring protocol transport has stopped "
                                                        "listening for connections.")
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
