"""Byte transports under the packet layer: plain TCP or TLS (see tls.py).

A transport has ``recv(n) -> bytes`` (b"" at EOF) and ``sendall(data)``.
After login one thread reads (the attention watcher) while another writes.
"""
from __future__ import annotations

import socket


class PlainTransport:
    __slots__ = ("sock", "recv", "sendall")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        # Bound methods, looked up once: these are on the hot path.
        self.recv = sock.recv
        self.sendall = sock.sendall
