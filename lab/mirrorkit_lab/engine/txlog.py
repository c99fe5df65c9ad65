"""The transaction log of a user database: one t_log row per logged change, written in the
same SQLite transaction as the change, with before- and after-images so the log can be
redone on another instance (restore, mirror) and undone back to an LSN (a former
principal rejoining after a failover).

LSNs are integers, strictly increasing per database (t_databases.end_lsn is the last one
used). `encode`/`decode` are the one serialisation of log records: backup files and the
mirroring stream both carry it.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from . import tables

OPS = ("insert", "update", "delete", "create_table", "drop_table", "commit")
MAX_ENCODED = 64 * 1024 * 1024


class LogFormatError(ValueError):
    """Bytes that are not a well-formed run of log records."""


@dataclass(frozen=True)
class LogRecord:
    lsn: int
    txn: int
    op: str
    object_id: Optional[int] = None
    rid: Optional[int] = None
    before: Optional[dict] = None
    after: Optional[dict] = None


# -- images: SQLite storage values as JSON (bytes as {"hex": …}) -----------------------------------------
def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"hex"} and isinstance(value["hex"], str):
            try:
                return bytes.fromhex(value["hex"])
            except ValueError:
                raise LogFormatError("bad hex image") from None
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def _dump(image: Optional[dict]) -> Optional[str]:
    return None if image is None else json.dumps(to_json(image), separators=(",", ":"))


def _load(text: Optional[str]) -> Optional[dict]:
    return None if text is None else from_json(json.loads(text))


# -- the log of one database ------------------------------------------------------------------------------
def end_of_log(conn: sqlite3.Connection, database_id: int) -> int:
    row = conn.execute("SELECT end_lsn FROM t_databases WHERE database_id=?", (database_id,)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def append(conn: sqlite3.Connection, database_id: int, txn: Optional[int], op: str,
           object_id: Optional[int] = None, rid: Optional[int] = None,
           before: Optional[dict] = None, after: Optional[dict] = None) -> int:
    """Log one change inside the caller's transaction; return its LSN (txn None: this LSN starts one)."""
    lsn = end_of_log(conn, database_id) + 1
    conn.execute("UPDATE t_databases SET end_lsn=? WHERE database_id=?", (lsn, database_id))
    conn.execute("INSERT INTO t_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (database_id, lsn, lsn if txn is None else txn, op, object_id, rid, _dump(before), _dump(after)))
    return lsn


def read(conn: sqlite3.Connection, database_id: int, after_lsn: int,
         upto_lsn: Optional[int] = None) -> list[LogRecord]:
    sql = ("SELECT lsn, txn, op, object_id, rid, before, after FROM t_log WHERE database_id=? AND lsn>?"
           + (" AND lsn<=?" if upto_lsn is not None else "") + " ORDER BY lsn")
    args = (database_id, after_lsn) + ((upto_lsn,) if upto_lsn is not None else ())
    return [LogRecord(r[0], r[1], r[2], r[3], r[4], _load(r[5]), _load(r[6])) for r in conn.execute(sql, args)]


def read_encoded(conn: sqlite3.Connection, database_id: int, after_lsn: int, upto_lsn: int) -> tuple[bytes, int]:
    """encode(read(…)) without decoding the stored images (the mirroring stream's hot path);
    returns the block and the last LSN it holds (after_lsn when none)."""
    parts, last = [], after_lsn
    for lsn, txn, op, oid, rid, before, after in conn.execute(
            "SELECT lsn, txn, op, object_id, rid, before, after FROM t_log WHERE database_id=? AND lsn>? "
            "AND lsn<=? ORDER BY lsn", (database_id, after_lsn, upto_lsn)):
        parts.append(f"[{lsn},{txn},{json.dumps(op)},{_num(oid)},{_num(rid)},{before or 'null'},{after or 'null'}]")
        last = lsn
    return ("[" + ",".join(parts) + "]").encode("utf-8"), last


def _num(v: Optional[int]) -> str:
    return "null" if v is None else str(int(v))


def first_lsn(conn: sqlite3.Connection, database_id: int) -> Optional[int]:
    """The oldest LSN the log still holds (None: empty)."""
    row = conn.execute("SELECT MIN(lsn) FROM t_log WHERE database_id=?", (database_id,)).fetchone()
    return row[0]


def last_commit(conn: sqlite3.Connection, database_id: int, upto: Optional[int] = None) -> Optional[int]:
    sql = "SELECT MAX(lsn) FROM t_log WHERE database_id=? AND op='commit'" + (" AND lsn<=?" if upto else "")
    row = conn.execute(sql, (database_id,) + ((upto,) if upto else ())).fetchone()
    return row[0]


def truncate_before(conn: sqlite3.Connection, database_id: int, lsn: int) -> None:
    conn.execute("DELETE FROM t_log WHERE database_id=? AND lsn<?", (database_id, lsn))


def redo(conn: sqlite3.Connection, database_id: int, records: Iterable[LogRecord],
         cache: Optional[dict] = None) -> int:
    """Apply records (in LSN order, each after the current end of log) and keep them in this log.

    `cache` (object_id -> TableDef) may be kept by a caller that redoes many blocks (a mirror); it is
    emptied whenever a record changes a table's definition."""
    end = end_of_log(conn, database_id)
    for rec in records:
        if rec.lsn <= end:
            raise LogFormatError(f"log record {rec.lsn} is not after the end of log {end}")
        apply(conn, database_id, rec, cache)
        conn.execute("INSERT INTO t_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (database_id, rec.lsn, rec.txn, rec.op, rec.object_id, rec.rid,
                      _dump(rec.before), _dump(rec.after)))
        end = rec.lsn
    conn.execute("UPDATE t_databases SET end_lsn=? WHERE database_id=?", (end, database_id))
    return end


def undo_after(conn: sqlite3.Connection, database_id: int, lsn: int) -> int:
    """Roll the database back to `lsn`: undo every later record, newest first; return how many."""
    later = read(conn, database_id, lsn)
    for rec in reversed(later):
        apply_inverse(conn, database_id, rec)
    conn.execute("DELETE FROM t_log WHERE database_id=? AND lsn>?", (database_id, lsn))
    conn.execute("UPDATE t_databases SET end_lsn=? WHERE database_id=?", (lsn, database_id))
    return len(later)


# -- applying records --------------------------------------------------------------------------------------
def _table(conn, database_id: int, object_id: Optional[int], cache: Optional[dict] = None) -> tables.TableDef:
    oid = int(object_id or 0)
    t = cache.get(oid) if cache is not None else None
    if t is None:
        t = tables.by_id(conn, database_id, oid)
        if t is None:
            raise LogFormatError(f"log record for unknown object {object_id}")
        if cache is not None:
            cache[oid] = t
    return t


def apply(conn: sqlite3.Connection, database_id: int, rec: LogRecord, cache: Optional[dict] = None) -> None:
    if rec.op in ("create_table", "drop_table") and cache is not None:
        cache.clear()
    if rec.op == "insert":
        t = _table(conn, database_id, rec.object_id, cache)
        tables.insert_row(conn, t, rec.after or {}, rid=rec.rid)
        ident = t.identity_column
        if ident is not None and (rec.after or {}).get(ident.name) is not None:
            tables.note_identity(conn, t, max(int(rec.after[ident.name]), tables.next_identity(conn, t) - ident.identity[1]))
    elif rec.op == "update":
        tables.update_row(conn, _table(conn, database_id, rec.object_id, cache), int(rec.rid or 0), rec.after or {})
    elif rec.op == "delete":
        tables.delete_row(conn, _table(conn, database_id, rec.object_id, cache), int(rec.rid or 0))
    elif rec.op == "create_table":
        tables.create(conn, tables.TableDef.from_definition(database_id, rec.after or {}))
    elif rec.op == "drop_table":
        tables.drop(conn, _table(conn, database_id, rec.object_id))
    elif rec.op != "commit":
        raise LogFormatError(f"unknown log operation {rec.op!r}")


def apply_inverse(conn: sqlite3.Connection, database_id: int, rec: LogRecord) -> None:
    if rec.op == "insert":
        tables.delete_row(conn, _table(conn, database_id, rec.object_id), int(rec.rid or 0))
    elif rec.op == "update":
        tables.update_row(conn, _table(conn, database_id, rec.object_id), int(rec.rid or 0), rec.before or {})
    elif rec.op == "delete":
        tables.insert_row(conn, _table(conn, database_id, rec.object_id), rec.before or {}, rid=rec.rid)
    elif rec.op == "create_table":
        tables.drop(conn, _table(conn, database_id, rec.object_id))
    elif rec.op == "drop_table":
        before = rec.before or {}
        t = tables.TableDef.from_definition(database_id, before["definition"])
        tables.create(conn, t)
        for rid, values in before.get("rows", []):
            tables.insert_row(conn, t, values, rid=rid)
        if before.get("identity") is not None:
            tables.note_identity(conn, t, before["identity"])


# -- the one serialisation ------------------------------------------------------------------------------------
def encode(records: Iterable[LogRecord]) -> bytes:
    out = [[r.lsn, r.txn, r.op, r.object_id, r.rid, to_json(r.before), to_json(r.after)] for r in records]
    return json.dumps(out, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> list[LogRecord]:
    """Parse encoded records, all or nothing; anything malformed raises LogFormatError."""
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_ENCODED:
        raise LogFormatError("log block too large or not bytes")
    try:
        items = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LogFormatError(f"log block is not readable: {exc}") from None
    if not isinstance(items, list):
        raise LogFormatError("log block is not a list of records")
    out: list[LogRecord] = []
    last = None
    for item in items:
        if not (isinstance(item, list) and len(item) == 7):
            raise LogFormatError("malformed log record")
        lsn, txn, op, oid, rid, before, after = item
        if not (isinstance(lsn, int) and isinstance(txn, int) and op in OPS
                and (oid is None or isinstance(oid, int)) and (rid is None or isinstance(rid, int))
                and (before is None or isinstance(before, dict)) and (after is None or isinstance(after, dict))):
            raise LogFormatError("malformed log record")
        if isinstance(lsn, bool) or (last is not None and lsn <= last):
            raise LogFormatError("log records out of order")
        last = lsn
        out.append(LogRecord(lsn, txn, op, oid, rid, from_json(before), from_json(after)))
    return out
