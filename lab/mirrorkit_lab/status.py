"""`mirrorkit lab status [--json]`: each instance's process, endpoint and databases.

It reads each instance's store read-only (SQLite `mode=ro`), so it works while an instance is
frozen or killed and never changes anything; of a running instance it also asks
sys.database_mirroring for the sessions' live state. A store from before user databases (no
`state` column, no mirroring table) shows every database ONLINE and unmirrored.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from .engine.catalog import DATABASE_STATE_DESC, MIRRORING_ROLE_DESC, MIRRORING_STATE_DESC
from .engine.store import SYSTEM_DATABASES
from .process import instance_home
from .supervisor import SA_PASSWORD_ENV, Recorded, password_file, process_state, read_state

SYSTEM_DATABASE_IDS = {dbid for dbid, _ in SYSTEM_DATABASES}


class StoreUnreadable(Exception):
    pass


@dataclass
class DatabaseStatus:
    database_id: int
    name: str
    state: str                       # sys.databases state_desc
    role: Optional[str] = None       # PRINCIPAL | MIRROR, None when not mirrored
    mirroring_state: Optional[str] = None
    partner: Optional[str] = None

    @property
    def system(self) -> bool:
        return self.database_id in SYSTEM_DATABASE_IDS


def _open(state_dir: Path, name: str, running: bool) -> Optional[sqlite3.Connection]:
    db = instance_home(state_dir, name) / "instance.db"
    if not db.exists():
        return None
    if not running and not db.with_name(db.name + "-wal").exists():
        # no process and no write-ahead log: the file is all there is. A read-only open would still
        # create the -wal and -shm files; immutable reads the file alone and creates nothing
        return sqlite3.connect(f"file:{db}?immutable=1", uri=True, timeout=2)
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
        return set()
    return {row[1].lower() for row in conn.execute(f'PRAGMA table_info("{table}")')}


def endpoint_summary(state_dir: Path, name: str, running: bool = True) -> str:
    try:
        conn = _open(state_dir, name, running)
        if conn is None:
            return "-"
        try:
            row = conn.execute("SELECT name, state, port, ip_address FROM t_endpoints WHERE type=4").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return "?"
    if row is None:
        return "no mirroring endpoint"
    state = {0: "STARTED", 1: "STOPPED", 2: "DISABLED"}.get(row[1], "?")
    return f"{row[0]} {state} port {row[2]}" + (f" ip {row[3]}" if row[3] else "")


def databases(state_dir: Path, name: str, running: bool = True) -> list[DatabaseStatus]:
    """The instance's databases as its store holds them ([] before its first start).

    running: whether a process may have the store open (False lets status read without a trace).
    """
    try:
        conn = _open(state_dir, name, running)
        if conn is None:
            return []
        try:
            have = _columns(conn, "t_databases")
            mirroring = _columns(conn, "t_database_mirroring")
            state = "d.state" if "state" in have else "0"
            role = "m.role" if {"database_id", "role"} <= mirroring else "NULL"
            # the store keeps whether a session is suspended; the rest of its state is live (below)
            mstate = ("m.state" if "state" in mirroring else
                      "CASE WHEN m.suspended THEN 0 END" if "suspended" in mirroring else "NULL")
            mstate = mstate if role != "NULL" else "NULL"
            partner = "m.partner_name" if role != "NULL" and "partner_name" in mirroring else "NULL"
            join = " LEFT JOIN t_database_mirroring m ON m.database_id = d.database_id" if role != "NULL" else ""
            rows = conn.execute(f"SELECT d.database_id, d.name, {state}, {role}, {mstate}, {partner} "
                                f"FROM t_databases d{join} ORDER BY d.database_id").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreUnreadable(str(exc)) from None
    return [DatabaseStatus(dbid, dbname, DATABASE_STATE_DESC.get(st, str(st)),
                           MIRRORING_ROLE_DESC.get(ro) if ro is not None else None,
                           MIRRORING_STATE_DESC.get(ms, str(ms)) if ro is not None and ms is not None else None,
                           pa if ro is not None else None)
            for dbid, dbname, st, ro, ms, pa in rows]


LIVE_MIRRORING_QUERY = ("SELECT database_id, mirroring_role_desc, mirroring_state_desc, mirroring_partner_name "
                        "FROM sys.database_mirroring WHERE mirroring_guid IS NOT NULL")


def _sa_password(state_dir: Path) -> Optional[str]:
    # as supervisor.sa_password finds it, without writing the file
    value = os.environ.get(SA_PASSWORD_ENV)
    if value:
        return value
    try:
        return password_file(state_dir).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def live_mirroring(state_dir: Path, rec: Recorded, timeout: int = 3) -> dict[int, tuple]:
    """database_id -> (role, state, partner) from a running instance's sys.database_mirroring.

    The mirroring state (SYNCHRONIZED, DISCONNECTED, ...) exists only in the running instance.
    {} when it cannot be asked (no pyodbc or FreeTDS, no password, no answer in time).
    """
    password = _sa_password(state_dir)
    try:
        import pyodbc
    except ImportError:
        return {}
    if password is None:
        return {}
    cs = (f"DRIVER={{FreeTDS}};SERVER={rec.host};PORT={rec.port};UID=sa;PWD={{{password.replace('}', '}}')}}};"
          "DATABASE=master;TDS_Version=7.4;")
    try:
        with pyodbc.connect(cs, autocommit=True, timeout=timeout) as cn:
            rows = cn.cursor().execute(LIVE_MIRRORING_QUERY).fetchall()
    except pyodbc.Error:
        return {}
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def instance_status(state_dir: Path, rec: Recorded) -> dict:
    state = process_state(rec, state_dir)
    alive = state in ("running", "frozen", "unreachable")
    entry = {"name": rec.name, "server": f"{rec.host},{rec.port}", "state": state,
             "pid": rec.pid if alive else None,
             "endpoint": endpoint_summary(state_dir, rec.name, alive), "databases": [], "databases_error": None}
    try:
        found = databases(state_dir, rec.name, alive)
    except StoreUnreadable as exc:
        entry["databases_error"] = str(exc)
        found = []
    live = live_mirroring(state_dir, rec) if state == "running" and any(d.role for d in found) else {}
    for d in found:
        if d.database_id in live:
            d.role, d.mirroring_state, d.partner = (a or b for a, b in zip(live[d.database_id],
                                                                           (d.role, d.mirroring_state, d.partner)))
    entry["databases"] = [dict(asdict(d), system=d.system) for d in found]
    return entry


def _table(rows: list[tuple[str, ...]], out) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip(), file=out)


def status(state_dir: Path, out=sys.stdout, as_json: bool = False) -> int:
    """Exit 0 when every instance is running, 3 otherwise (or when there is no lab)."""
    items = read_state(state_dir)
    if not items:
        if as_json:
            print(json.dumps({"state_dir": str(state_dir), "instances": []}, indent=2), file=out)
        else:
            print(f"no lab in {state_dir} (start one with: mirrorkit lab up parameters/lab.yaml)", file=out)
        return 3
    entries = [instance_status(state_dir, r) for r in items]
    code = 0 if all(e["state"] == "running" for e in entries) else 3
    if as_json:
        print(json.dumps({"state_dir": str(state_dir), "instances": entries}, indent=2), file=out)
        return code
    _table([("INSTANCE", "SERVER", "STATE", "PID", "MIRRORING ENDPOINT")]
           + [(e["name"], e["server"], e["state"], str(e["pid"] or "-"), e["endpoint"]) for e in entries], out)
    # the system databases are always there and always ONLINE: --json lists them
    rows = [(e["name"], d["name"], d["state"], d["role"] or "-", d["mirroring_state"] or "-", d["partner"] or "-")
            for e in entries for d in e["databases"] if not d["system"]]
    print(file=out)
    if rows:
        _table([("INSTANCE", "DATABASE", "STATE", "ROLE", "MIRRORING", "PARTNER")] + rows, out)
    else:
        print("no user databases", file=out)
    for e in entries:
        if e["databases_error"]:
            print(f"{e['name']}: databases not readable ({e['databases_error']})", file=out)
    return code
