"""TLS for TDS 7.x: the handshake travels inside PRELOGIN (0x12) packets, then
TLS records flow raw on the TCP stream (MS-TDS 2.2.6.5 / 3.3.5.x).

We drive an ``ssl.SSLObject`` over memory BIOs because the handshake bytes
must be wrapped in TDS packets, which ``SSLSocket`` cannot do. The context is
capped at TLS 1.2: with 1.3 the last flights cross the "handshake done" line
and break the 0x12 framing (clients do not flush them as PRELOGIN packets).
"""
from __future__ import annotations

import socket
import ssl
import threading
from typing import Callable

from .packets import DEFAULT_PACKET_SIZE, PRELOGIN, MessageReader, ProtocolError, frame


def prepare_context(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """Apply the TDS 7.x constraints to a caller-supplied server context."""
    if ctx.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED or \
            ctx.maximum_version > ssl.TLSVersion.TLSv1_2:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return ctx


def server_handshake(ctx: ssl.SSLContext, sock: socket.socket, reader: MessageReader,
                     raw_recv: Callable[[int], bytes] | None = None) -> "TlsTransport":
    """Run the server side of the handshake through 0x12 messages.

    ``reader`` is the plain message reader (its buffered bytes, if any, are
    handed to the TLS layer afterwards); ``raw_recv`` replaces ``sock.recv``
    for the TLS records (the login deadline uses it).
    """
    inbio, outbio = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inbio, outbio, server_side=True)
    for _ in range(16):   # a TLS 1.2 handshake needs 2 round trips
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            out = outbio.read()
            if out:
                sock.sendall(frame(PRELOGIN, out, DEFAULT_PACKET_SIZE))
            msg = reader.read_message()
            if msg is None:
                raise ProtocolError("peer closed during the TLS handshake")
            if msg.type != PRELOGIN:
                raise ProtocolError(f"expected a PRELOGIN packet with TLS data, got 0x{msg.type:02x}")
            inbio.write(msg.payload)
    else:
        raise ProtocolError("TLS handshake did not finish")
    out = outbio.read()
    if out:
        sock.sendall(frame(PRELOGIN, out, DEFAULT_PACKET_SIZE))
    t = TlsTransport(sock, obj, inbio, outbio, raw_recv)
    rest = reader.leftover()
    if rest:
        inbio.write(rest)
    return t


class TlsTransport:
    """TLS records straight on the socket. ``recv`` and ``sendall`` may run in
    two threads; one lock keeps the SSL object single-threaded."""

    def __init__(self, sock: socket.socket, obj: ssl.SSLObject, inbio: ssl.MemoryBIO,
                 outbio: ssl.MemoryBIO, raw_recv: Callable[[int], bytes] | None = None):
        self.sock = sock
        self.raw_recv = raw_recv or sock.recv
        self._obj = obj
        self._in = inbio
        self._out = outbio
        self._lock = threading.Lock()
        self._wlock = threading.Lock()

    def recv(self, n: int) -> bytes:
        while True:
            with self._lock:
                try:
                    return self._obj.read(n)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    return b""
            raw = self.raw_recv(65536)
            if not raw:
                return b""
            with self._lock:
                self._in.write(raw)

    def sendall(self, data: bytes) -> None:
        with self._wlock:
            with self._lock:
                view = memoryview(data)
                while view:
                    n = self._obj.write(view)
                    view = view[n:]
                out = self._out.read()
            self.sock.sendall(out)
