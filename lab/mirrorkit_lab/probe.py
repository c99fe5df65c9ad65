"""`mirrorkit lab probe A B`: make instance A connect to B's mirroring endpoint
(lab-only sys.sp_mirrorkit_probe) and print the outcome."""
from __future__ import annotations

import sys
from pathlib import Path

from .status import endpoint_summary
from .supervisor import LabError, read_state, sa_password


def endpoint_url(state_dir: Path, name: str) -> str:
    import sqlite3
    from .process import instance_home
    records = {r.name.lower(): r for r in read_state(state_dir)}
    rec = records.get(name.lower())
    if rec is None:
        raise LabError(f"{name!r} is not an instance of the lab in {state_dir}")
    db = instance_home(state_dir, rec.name) / "instance.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT port, ip_address FROM t_endpoints WHERE type=4").fetchone()
    finally:
        conn.close()
    if row is None:
        raise LabError(f"{rec.name} has no DATABASE_MIRRORING endpoint ({endpoint_summary(state_dir, rec.name)})")
    return f"TCP://{row[1] or rec.host}:{row[0]}"


def probe_cli(state_dir: Path, source: str, target: str, role: str = "PARTNER", out=sys.stdout) -> int:
    import pyodbc
    records = {r.name.lower(): r for r in read_state(state_dir)}
    src = records.get(source.lower())
    if src is None:
        raise LabError(f"{source!r} is not an instance of the lab in {state_dir}")
    url = endpoint_url(state_dir, target)
    from mirrorkit.access.connection import value
    cs = (f"DRIVER={{FreeTDS}};SERVER={src.host};PORT={src.port};UID=sa;"
          f"PWD={value(sa_password(state_dir), True, 'password')};DATABASE=master;TDS_Version=7.4;")
    try:
        with pyodbc.connect(cs, autocommit=True, timeout=10) as cn:
            row = cn.cursor().execute("EXEC sys.sp_mirrorkit_probe @endpoint_url = ?, @peer_role = ?",
                                      url, role).fetchone()
    except pyodbc.Error as exc:
        raise LabError(f"{src.name}: {exc}") from None
    _, ok, number, message = row
    verdict = "OK" if ok else f"FAILED ({number})"
    print(f"{src.name} -> {target} {url} as {role}: {verdict}: {message}", file=out)
    return 0 if ok else 1
