"""TEST HELPER: a minimal hand-rolled TDS client for protocol-level tests and
fuzzing (builds PRELOGIN/LOGIN7/RPC payloads, walks simple token streams)."""
from __future__ import annotations

import socket
import struct

HDR = struct.Struct(">BBHHBB")
ALL_HEADERS = struct.pack("<IIHQI", 22, 18, 2, 0, 1)


def prelogin_payload(encryption: int = 2) -> bytes:
    opts = [(0, bytes([9, 0, 0, 0, 0, 0])), (1, bytes([encryption])), (2, b"MSSQLServer\0"),
            (3, b"\0\0\0\0"), (4, b"\0")]
    off = len(opts) * 5 + 1
    table, data = b"", b""
    for tok, val in opts:
        table += struct.pack(">BHH", tok, off + len(data), len(val))
        data += val
    return table + b"\xff" + data


def obfuscate(password: str) -> bytes:
    return bytes(((b << 4) & 0xF0 | (b >> 4)) ^ 0xA5 for b in password.encode("utf-16-le"))


def login7_payload(user: str = "sa", password: str = "Secret1!", database: str = "",
                   version: int = 0x74000004, packet_size: int = 4096, sspi: bytes = b"",
                   features: bytes | None = None, flags2: int = 0x03) -> bytes:
    strings = [("host", "testhost"), ("user", user), ("password", password), ("app", "rawapp"),
               ("server", "127.0.0.1"), ("ext", None), ("lib", "rawlib"), ("lang", ""),
               ("db", database)]
    fixed = 94
    data = b""
    offsets = b""
    ext_fixup = None
    for name, value in strings:
        if name == "ext":
            if features is None:
                offsets += struct.pack("<HH", 0, 0)
            else:
                ext_fixup = len(offsets)
                offsets += struct.pack("<HH", fixed + len(data), 4)
                data += b"\0\0\0\0"
            continue
        raw = obfuscate(value) if name == "password" else value.encode("utf-16-le")
        offsets += struct.pack("<HH", fixed + len(data), len(raw) // 2)
        data += raw
    offsets += b"\0" * 6                                               # ClientID
    offsets += struct.pack("<HH", fixed + len(data), len(sspi))          # SSPI
    data += sspi
    offsets += struct.pack("<HHHHI", 0, 0, 0, 0, 0)                      # AtchDB, ChangePwd, cbSSPILong
    if features is not None:
        feat_off = fixed + len(data)
        data += features
        ext_pos = struct.unpack_from("<H", offsets, ext_fixup)[0] - fixed
        data = data[:ext_pos] + struct.pack("<I", feat_off) + data[ext_pos + 4:]
    flags3 = 0x10 if features is not None else 0
    head = struct.pack("<IIIIIIBBBBiI", 0, version, packet_size, 7, 1234, 0, 0xE0, flags2, 0, flags3,
                       0, 0x409)
    body = head + offsets
    assert len(body) == fixed, len(body)
    payload = body + data
    return struct.pack("<I", len(payload)) + payload[4:]


def nvarchar_param(name: str, value: str | None) -> bytes:
    head = bytes([len(name)]) + name.encode("utf-16-le") + b"\0" + b"\xe7\x40\x1f" + b"\x09\x04\xd0\x00\x34"
    if value is None:
        return head + b"\xff\xff"
    raw = value.encode("utf-16-le")
    return head + struct.pack("<H", len(raw)) + raw


def int_param(name: str, value: int | None, output: bool = False) -> bytes:
    head = bytes([len(name)]) + name.encode("utf-16-le") + bytes([1 if output else 0]) + b"\x26\x04"
    return head + (b"\x00" if value is None else b"\x04" + struct.pack("<i", value))


def rpc(proc, params: list[bytes], options: int = 0) -> bytes:
    if isinstance(proc, int):
        head = struct.pack("<HH", 0xFFFF, proc)
    else:
        head = struct.pack("<H", len(proc)) + proc.encode("utf-16-le")
    return head + struct.pack("<H", options) + b"".join(params)


class RawClient:
    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.last_header: tuple | None = None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, ptype: int, payload: bytes, status: int = 1, size: int = 4096) -> None:
        chunk = size - 8
        parts = [payload[i:i + chunk] for i in range(0, len(payload), chunk)] or [b""]
        out = b""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            st = status if last else status & ~1
            out += HDR.pack(ptype, st, len(part) + 8, 0, (i + 1) & 0xFF, 0) + part
        self.sock.sendall(out)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            d = self.sock.recv(n - len(buf))
            if not d:
                raise ConnectionError("server closed the connection")
            buf += d
        return buf

    def recv_message(self) -> bytes:
        payload = b""
        while True:
            h = HDR.unpack(self._exact(8))
            self.last_header = h
            payload += self._exact(h[2] - 8)
            if h[1] & 1:
                return payload

    def login(self, **kw) -> bytes:
        self.send(0x12, prelogin_payload())
        self.recv_message()
        self.send(0x10, login7_payload(**kw))
        return self.recv_message()

    def batch(self, sql: str) -> bytes:
        self.send(0x01, ALL_HEADERS + sql.encode("utf-16-le"))
        return self.recv_message()

    def rpc(self, *calls: bytes, sep: bytes = b"\xff") -> bytes:
        self.send(0x03, ALL_HEADERS + sep.join(calls))
        return self.recv_message()


def walk_tokens(data: bytes) -> list[tuple]:
    """Token list for simple streams: DONE*, RETURNSTATUS, RETURNVALUE (INTN),
    ERROR/INFO (-> number), ENVCHANGE/LOGINACK, COLMETADATA/ROW with INTN columns."""
    out: list[tuple] = []
    pos, ncols = 0, 0
    while pos < len(data):
        t = data[pos]
        pos += 1
        if t in (0xFD, 0xFE, 0xFF):
            status, cmd, count = struct.unpack_from("<HHQ", data, pos)
            pos += 12
            out.append(({0xFD: "DONE", 0xFE: "DONEPROC", 0xFF: "DONEINPROC"}[t], status, count))
        elif t == 0x79:
            out.append(("RETURNSTATUS", struct.unpack_from("<i", data, pos)[0]))
            pos += 4
        elif t == 0xAC:
            ordinal = struct.unpack_from("<H", data, pos)[0]
            n = data[pos + 2]
            name = data[pos + 3:pos + 3 + 2 * n].decode("utf-16-le")
            pos += 3 + 2 * n + 1 + 4 + 2
            assert data[pos] == 0x26
            vlen = data[pos + 2]
            value = int.from_bytes(data[pos + 3:pos + 3 + vlen], "little", signed=True) if vlen else None
            pos += 3 + vlen
            out.append(("RETURNVALUE", ordinal, name, value))
        elif t in (0xAA, 0xAB):
            ln = struct.unpack_from("<H", data, pos)[0]
            number = struct.unpack_from("<i", data, pos + 2)[0]
            mlen = struct.unpack_from("<H", data, pos + 8)[0]
            text = data[pos + 10:pos + 10 + 2 * mlen].decode("utf-16-le")
            out.append(("ERROR" if t == 0xAA else "INFO", number, text))
            pos += 2 + ln
        elif t in (0xE3, 0xAD):
            ln = struct.unpack_from("<H", data, pos)[0]
            out.append(("ENVCHANGE" if t == 0xE3 else "LOGINACK", data[pos + 2:pos + 2 + ln]))
            pos += 2 + ln
        elif t == 0x81:
            ncols = struct.unpack_from("<H", data, pos)[0]
            pos += 2
            for _ in range(ncols):
                pos += 6
                assert data[pos] == 0x26, hex(data[pos])
                pos += 2
                pos += 1 + 2 * data[pos]
            out.append(("COLMETADATA", ncols))
        elif t == 0xD1:
            vals = []
            for _ in range(ncols):
                n = data[pos]
                vals.append(int.from_bytes(data[pos + 1:pos + 1 + n], "little", signed=True) if n else None)
                pos += 1 + n
            out.append(("ROW", tuple(vals)))
        else:
            raise AssertionError(f"unexpected token 0x{t:02x} at {pos - 1}")
    return out
