"""The lab's backup file format: a media set of numbered backup sets (RESTORE … WITH FILE = n).

One file is one media family of a media set (BACKUP … TO DISK = 'a', DISK = 'b' writes a family to
each). Layout, every length big-endian:

    MAGIC
    u32 n, media header (JSON, n bytes), sha256 of it
    per backup set: u32 n, set header (JSON), u64 m, payload (m bytes), sha256 of header + payload

The media header counts the sets, so a file cut at a set boundary is caught as well as one cut
inside a set. Set headers carry what RESTORE HEADERONLY / FILELISTONLY show; LSNs follow SQL
Server's meaning (first_lsn: the first log record in the set; last_lsn: the next one after it).
A database set's payload is a snapshot of the database's tables (definitions, rows with their
rids, identity values); a log set's payload is txlog.encode of its records. `decode` never trusts
a length or a field: anything wrong raises MediaError with what SQL Server would say of it.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from .txlog import from_json, to_json   # the one JSON form of stored values (bytes as {"hex": …})

MAGIC = b"MIRRORKIT-LAB-MEDIA-1\n"
MAX_HEADER = 4 * 1024 * 1024
MAX_PAYLOAD = 512 * 1024 * 1024


class MediaError(Exception):
    """A file that is not a whole lab media family. kind: malformed | truncated | damaged."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


@dataclass
class FileEntry:
    file_id: int
    type: str                      # D (data) | L (log), as RESTORE FILELISTONLY shows it
    logical_name: str
    physical_name: str
    size_pages: int


@dataclass
class BackupSet:
    position: int
    type: str                      # D database | L log
    database_name: str
    first_lsn: int
    last_lsn: int
    checkpoint_lsn: int
    database_backup_lsn: int
    family_guid: str
    recovery_fork_guid: str
    backup_set_guid: str
    recovery_model: str            # FULL | BULK-LOGGED | SIMPLE
    start_date: str
    finish_date: str
    server_name: str
    machine_name: str
    user_name: str
    database_creation_date: str
    compatibility_level: int = 150
    name: Optional[str] = None
    description: Optional[str] = None
    copy_only: bool = False
    compressed: bool = False
    checksums: bool = False
    begins_log_chain: bool = False
    force_offline: bool = False    # BACKUP LOG … WITH NORECOVERY (a tail-log backup)
    is_read_only: bool = False
    files: list[FileEntry] = field(default_factory=list)
    payload: bytes = b""           # as written (zlib when compressed)
    payload_size: int = 0          # before compression

    def data(self) -> bytes:
        """The payload, uncompressed; damaged compressed data raises MediaError."""
        if not self.compressed:
            return self.payload
        try:
            return zlib.decompress(self.payload)
        except zlib.error:
            raise MediaError("damaged", "compressed payload cannot be read") from None


@dataclass
class Media:
    media_set_guid: str
    family_count: int = 1
    family_number: int = 1
    name: Optional[str] = None
    description: Optional[str] = None
    sets: list[BackupSet] = field(default_factory=list)


_SET_FIELDS = [f.name for f in fields(BackupSet) if f.name not in ("files", "payload")]
_INT_FIELDS = {"position", "first_lsn", "last_lsn", "checkpoint_lsn", "database_backup_lsn",
               "compatibility_level", "payload_size"}
_BOOL_FIELDS = {"copy_only", "compressed", "checksums", "begins_log_chain", "force_offline", "is_read_only"}
_OPTIONAL_FIELDS = {"name", "description"}


def _block(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def encode(media: Media) -> bytes:
    head = json.dumps({"media_set_guid": media.media_set_guid, "family_count": media.family_count,
                       "family_number": media.family_number, "name": media.name,
                       "description": media.description, "sets": len(media.sets)},
                      separators=(",", ":")).encode()
    out = [MAGIC, _block(head), hashlib.sha256(head).digest()]
    for s in media.sets:
        header = {k: getattr(s, k) for k in _SET_FIELDS}
        header["files"] = [[f.file_id, f.type, f.logical_name, f.physical_name, f.size_pages] for f in s.files]
        hb = json.dumps(header, separators=(",", ":")).encode()
        out += [_block(hb), struct.pack(">Q", len(s.payload)), s.payload,
                hashlib.sha256(hb + s.payload).digest()]
    return b"".join(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MediaError("truncated", "unexpected end of file")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MediaError("damaged", "header is not readable") from None
    if not isinstance(value, dict):
        raise MediaError("damaged", "header is not an object")
    return value


def _typed(value: Any, key: str) -> Any:
    if key in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise MediaError("damaged", f"bad {key}")
    elif key in _INT_FIELDS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise MediaError("damaged", f"bad {key}")
    elif not (isinstance(value, str) or (value is None and key in _OPTIONAL_FIELDS)):
        raise MediaError("damaged", f"bad {key}")
    return value


def _set_from(header: dict, payload: bytes) -> BackupSet:
    try:
        values = {k: _typed(header[k], k) for k in _SET_FIELDS}
        files = [FileEntry(int(f[0]), str(f[1]), str(f[2]), str(f[3]), int(f[4])) for f in header["files"]]
    except (KeyError, TypeError, ValueError, IndexError):
        raise MediaError("damaged", "backup set header is incomplete") from None
    if values["type"] not in ("D", "L"):
        raise MediaError("damaged", "unknown backup set type")
    return BackupSet(files=files, payload=payload, **values)


def decode(data: bytes) -> Media:
    """Parse one media family, all or nothing (MediaError)."""
    if not data.startswith(MAGIC):
        raise MediaError("malformed", "not a lab media family")
    r = _Reader(data)
    r.take(len(MAGIC))
    n = r.u32()
    if n > MAX_HEADER:
        raise MediaError("malformed", "media header too large")
    head_raw = r.take(n)
    if r.take(32) != hashlib.sha256(head_raw).digest():
        raise MediaError("malformed", "media header checksum mismatch")
    head = _json(head_raw)
    try:
        media = Media(str(head["media_set_guid"]), int(head["family_count"]), int(head["family_number"]),
                      head.get("name"), head.get("description"))
        count = int(head["sets"])
    except (KeyError, TypeError, ValueError):
        raise MediaError("malformed", "media header is incomplete") from None
    for _ in range(count):
        n = r.u32()
        if n > MAX_HEADER:
            raise MediaError("damaged", "backup set header too large")
        hb = r.take(n)
        m = r.u64()
        if m > MAX_PAYLOAD:
            raise MediaError("damaged", "backup set too large")
        payload = r.take(m)
        if r.take(32) != hashlib.sha256(hb + payload).digest():
            raise MediaError("damaged", "backup set checksum mismatch")
        media.sets.append(_set_from(_json(hb), payload))
    if r.pos != len(data):
        raise MediaError("malformed", "data after the last backup set")
    return media


# -- payload of a database backup set -----------------------------------------------------------------
def encode_snapshot(snapshot: dict) -> bytes:
    return json.dumps(to_json(snapshot), separators=(",", ":")).encode("utf-8")


def decode_snapshot(data: bytes) -> dict:
    try:
        value = from_json(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, ValueError):
        raise MediaError("damaged", "database snapshot is not readable") from None
    if not isinstance(value, dict) or not isinstance(value.get("tables"), list):
        raise MediaError("damaged", "database snapshot is incomplete")
    return value
