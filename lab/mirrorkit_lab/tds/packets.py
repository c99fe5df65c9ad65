"""TDS packet framing: the 8-byte header, message reassembly and output splitting.

A TDS *message* is one or more *packets*; the last one carries the EOM status
bit. Every server reply is one message of type 0x04 (PRELOGIN TLS records use
0x12). Clients do not care about the PacketID, but we number packets 1, 2, ...
"""
from __future__ import annotations

import struct
from typing import Callable

# Packet types (header byte 0).
SQL_BATCH = 0x01
PRE_TDS7_LOGIN = 0x02
RPC = 0x03
REPLY = 0x04
ATTENTION = 0x06
BULK_LOAD = 0x07
FEDAUTH_TOKEN = 0x08
TRANSACTION_MANAGER = 0x0E
LOGIN7 = 0x10
SSPI = 0x11
PRELOGIN = 0x12

# Status bits (header byte 1).
ST_EOM = 0x01
ST_IGNORE = 0x02
ST_RESETCONNECTION = 0x08
ST_RESETCONNECTION_SKIPTRAN = 0x10

HEADER = struct.Struct(">BBHHBB")
HEADER_SIZE = 8

DEFAULT_PACKET_SIZE = 4096
MIN_PACKET_SIZE = 512
MAX_PACKET_SIZE = 32767
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer broke the protocol; the connection (only) must be closed."""


class PeerClosed(Exception):
    """The peer closed the connection in the middle of a message."""


class Message:
    """One reassembled client message."""

    __slots__ = ("type", "status", "payload", "ignore")

    def __init__(self, type: int, status: int, payload: bytes, ignore: bool = False):
        self.type = type
        self.status = status      # status byte of the FIRST packet (RESETCONNECTION lives there)
        self.payload = payload
        self.ignore = ignore      # the client set IGNORE: discard and answer DONE(ERROR)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Message(type=0x{self.type:02x}, status=0x{self.status:02x}, len={len(self.payload)})"


class MessageReader:
    """Reads whole messages from a ``recv(n) -> bytes`` callable.

    Keeps one receive buffer so that several small packets (or a request that
    arrives together with an ATTENTION) cost a single recv.
    """

    __slots__ = ("_recv", "_buf", "_max")

    def __init__(self, recv: Callable[[int], bytes], max_message: int = DEFAULT_MAX_MESSAGE):
        self._recv = recv
        self._buf = bytearray()
        self._max = max_message

    def rebind(self, recv: Callable[[int], bytes]) -> None:
        """Read from another callable from now on (keeps buffered bytes)."""
        self._recv = recv

    def pending_type(self) -> int:
        """Type byte of the next buffered packet, or -1 (nothing buffered)."""
        return self._buf[0] if self._buf else -1

    def leftover(self) -> bytes:
        """Bytes received but not consumed (used when switching to TLS)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def _fill(self, need: int, mid_message: bool) -> bool:
        """Make the buffer hold at least ``need`` bytes; False on clean EOF."""
        buf = self._buf
        while len(buf) < need:
            data = self._recv(65536)
            if not data:
                if buf or mid_message:
                    raise PeerClosed("connection closed in the middle of a packet")
                return False
            buf += data
        return True

    def read_message(self) -> Message | None:
        """The next message, or None if the peer closed between messages."""
        buf = self._buf
        parts: list[bytes] = []
        total = 0
        first_type = -1
        first_status = 0
        ignore = False
        while True:
            if not self._fill(HEADER_SIZE, bool(parts)):
                return None
            ptype, status, length = buf[0], buf[1], (buf[2] << 8) | buf[3]
            if length < HEADER_SIZE:
                raise ProtocolError(f"packet length {length} is shorter than the header")
            self._fill(length, True)
            payload = bytes(buf[HEADER_SIZE:length])
            del buf[:length]
            if ptype == ATTENTION and first_type != -1:
                # An attention never belongs to a partly sent request; drop the part.
                return Message(ATTENTION, status, b"")
            if first_type == -1:
                first_type, first_status = ptype, status
            elif ptype != first_type:
                raise ProtocolError(
                    f"packet type 0x{ptype:02x} inside a message of type 0x{first_type:02x}")
            if status & ST_IGNORE:
                ignore = True
            total += len(payload)
            if total > self._max:
                raise ProtocolError(f"message larger than {self._max} bytes")
            parts.append(payload)
            if status & ST_EOM:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                return Message(first_type, first_status, data, ignore)


def frame(mtype: int, payload: bytes, packet_size: int = DEFAULT_PACKET_SIZE, spid: int = 0,
          first_id: int = 1) -> bytes:
    """Split ``payload`` into packets of at most ``packet_size`` bytes (header
    included); only the last one has EOM."""
    chunk = packet_size - HEADER_SIZE
    n = len(payload)
    if n <= chunk:
        return HEADER.pack(mtype, ST_EOM, n + HEADER_SIZE, spid, first_id & 0xFF, 0) + payload
    out = []
    pid = first_id
    pack = HEADER.pack
    for off in range(0, n, chunk):
        part = payload[off:off + chunk]
        last = off + chunk >= n
        out.append(pack(mtype, ST_EOM if last else 0, len(part) + HEADER_SIZE, spid, pid & 0xFF, 0))
        out.append(part)
        pid += 1
    return b"".join(out)


class Cancelled(Exception):
    """Raised by PacketWriter.flush when an attention stops a streamed reply."""


class PacketWriter:
    """Streams one reply message: tokens are appended to ``buf``; ``flush`` sends
    the full packets (never the last byte, so ``finish`` always has an EOM
    packet with a payload), ``finish`` sends the rest with EOM.

    Small replies therefore cost one ``sendall``; large ones are sent as they
    are built, which is also what lets an ATTENTION interrupt them.
    """

    __slots__ = ("buf", "_send", "_size", "_spid", "_mtype", "_pid", "_threshold", "started",
                 "_cancelled")

    def __init__(self, send: Callable[[bytes], None], packet_size: int, spid: int,
                 mtype: int = REPLY, cancelled: Callable[[], bool] | None = None):
        self.buf = bytearray()
        self._send = send
        self._size = packet_size
        self._spid = spid
        self._mtype = mtype
        self._pid = 1
        # Batch several packets per sendall: fewer syscalls for big results.
        self._threshold = max(packet_size * 8, 32768)
        self.started = False      # some packets already went out
        self._cancelled = cancelled

    def maybe_flush(self) -> None:
        if len(self.buf) > self._threshold:
            self.flush()

    def flush(self) -> None:
        """Send every complete packet but keep at least one byte buffered."""
        if self._cancelled is not None and self._cancelled():
            raise Cancelled()
        chunk = self._size - HEADER_SIZE
        buf = self.buf
        npk = (len(buf) - 1) // chunk
        if npk <= 0:
            return
        out = []
        pack = HEADER.pack
        for i in range(npk):
            out.append(pack(self._mtype, 0, self._size, self._spid, self._pid & 0xFF, 0))
            out.append(bytes(buf[i * chunk:(i + 1) * chunk]))
            self._pid += 1
        del buf[:npk * chunk]
        self.started = True
        self._send(b"".join(out))

    def finish(self) -> None:
        data = bytes(self.buf)
        self.buf.clear()
        self._send(frame(self._mtype, data, self._size, self._spid, self._pid))
        self._pid = 1
        self.started = False
