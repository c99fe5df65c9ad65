"""LOGIN7 parsing (MS-TDS 2.2.6.4), password de-obfuscation, FeatureExt skipping."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .packets import ProtocolError

# OptionFlags2 / OptionFlags3 bits we care about.
F2_INTEGRATED_SECURITY = 0x80
F3_EXTENSION = 0x10

FEATURE_FEDAUTH = 0x02
FEATURE_TERMINATOR = 0xFF

# TDS versions as sent in LOGIN7 (little-endian DWORD) and echoed in LOGINACK (big-endian).
TDS70 = 0x70000000
TDS71 = 0x71000000
TDS71_SP1 = 0x71000001
TDS72 = 0x72090002
TDS73A = 0x730A0003
TDS73B = 0x730B0003
TDS74 = 0x74000004


@dataclass
class Login7:
    tds_version: int
    packet_size: int
    client_prog_version: int
    client_pid: int
    connection_id: int
    flags1: int
    flags2: int
    type_flags: int
    flags3: int
    client_timezone: int
    client_lcid: int
    hostname: str = ""
    username: str = ""
    password: str = ""
    appname: str = ""
    servername: str = ""
    library: str = ""
    language: str = ""
    database: str = ""
    attach_db_file: str = ""
    change_password: str = ""
    client_id: bytes = b""
    sspi: bytes = b""
    features: dict[int, bytes] = field(default_factory=dict)

    @property
    def integrated_security(self) -> bool:
        return bool(self.flags2 & F2_INTEGRATED_SECURITY) or bool(self.sspi)


def deobfuscate_password(data: bytes) -> str:
    """MS-TDS password obfuscation: each byte was nibble-swapped then XORed with 0xA5."""
    out = bytes((((b ^ 0xA5) << 4) & 0xF0) | ((b ^ 0xA5) >> 4) for b in data)
    return out.decode("utf-16-le", errors="replace")


def negotiate_version(client: int) -> int | None:
    """The TDS version to reply (min(client, 7.4)), or None if below 7.1."""
    if client >= TDS74 or (client >> 24) == 0x08:   # 0x08000000: TDS 8 clients ask for 7.4
        return TDS74
    for v in (TDS73B, TDS73A, TDS72, TDS71_SP1, TDS71):
        if client >= v:
            return v
    if client == 0x07010000:           # the old spelling of 7.1
        return TDS71
    return None


def parse_login7(payload: bytes) -> Login7:
    n = len(payload)
    if n < 86:
        raise ProtocolError("LOGIN7 shorter than its fixed part")
    (length, version, packet_size, progver, pid, connid, f1, f2, tflags, f3, tz,
     lcid) = struct.unpack_from("<IIIIIIBBBBiI", payload, 0)
    login = Login7(version, packet_size, progver, pid, connid, f1, f2, tflags, f3, tz, lcid)

    def text(off: int, password: bool = False) -> str:
        ib, cch = struct.unpack_from("<HH", payload, off)
        if cch == 0:
            return ""
        end = ib + 2 * cch
        if end > n:
            raise ProtocolError("LOGIN7 string outside the message")
        raw = payload[ib:end]
        if password:
            return deobfuscate_password(raw)
        return raw.decode("utf-16-le", errors="replace")

    login.hostname = text(36)
    login.username = text(40)
    login.password = text(44, password=True)
    login.appname = text(48)
    login.servername = text(52)
    login.library = text(60)
    login.language = text(64)
    login.database = text(68)
    login.client_id = payload[72:78]
    sspi_ib, sspi_cb = struct.unpack_from("<HH", payload, 78)
    login.attach_db_file = text(82)
    if n >= 94 and (version >> 24) >= 0x72:
        login.change_password = text(86, password=True)
        if sspi_cb == 0xFFFF:
            sspi_cb = struct.unpack_from("<I", payload, 90)[0]
    if sspi_cb:
        if sspi_ib + sspi_cb > n:
            raise ProtocolError("LOGIN7 SSPI data outside the message")
        login.sspi = payload[sspi_ib:sspi_ib + sspi_cb]
    if f3 & F3_EXTENSION and (version >> 24) >= 0x74:
        ib, cb = struct.unpack_from("<HH", payload, 56)
        if cb >= 4 and ib + 4 <= n:
            login.features = _parse_features(payload, struct.unpack_from("<I", payload, ib)[0])
    return login


def _parse_features(payload: bytes, pos: int) -> dict[int, bytes]:
    """FeatureExt: {BYTE id, DWORD len, data}* 0xFF. We ack none of them."""
    features: dict[int, bytes] = {}
    n = len(payload)
    while pos < n:
        fid = payload[pos]
        if fid == FEATURE_TERMINATOR:
            break
        if pos + 5 > n:
            raise ProtocolError("truncated LOGIN7 FeatureExt")
        flen = struct.unpack_from("<I", payload, pos + 1)[0]
        if pos + 5 + flen > n:
            raise ProtocolError("LOGIN7 FeatureExt data outside the message")
        features[fid] = payload[pos + 5:pos + 5 + flen]
        pos += 5 + flen
    return features
