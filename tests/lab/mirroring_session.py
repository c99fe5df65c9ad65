"""Helpers for mirroring-session tests: Microsoft's documented T-SQL for preparing a mirror
database and starting the session (docs/database-engine/database-mirroring/
database-mirroring-establish-session-windows-authentication.md, prepare-a-mirror-database-…md),
with only the addresses and paths substituted; and waiting on sys.database_mirroring."""
from __future__ import annotations

import time
from typing import Optional

from tests.lab import mirroring_setup as ms

DB = "AdventureWorks"
BACKUP = "C:\\AdventureWorks.bak"
LOG_BACKUP = "C:\\AdventureWorks_log.bak"
STATE_QUERY = ("SELECT mirroring_role_desc, mirroring_state_desc, mirroring_safety_level_desc, "
               "mirroring_witness_state_desc FROM sys.database_mirroring WHERE database_id = DB_ID(?)")


def three_instances(lab_factory):
    """Principal P, mirror M and witness W, each trusting the other two by certificate."""
    return ms.full_mesh(lab_factory, {"P": "PARTNER", "M": "PARTNER", "W": "WITNESS"})


def prepare_mirror(lab, principal: str = "P", mirror: str = "M", db: str = DB, rows: int = 3) -> None:
    p, m = lab[principal], lab[mirror]
    p.sql(f"CREATE DATABASE {db}")
    with p.connect(database=db) as cn:
        cur = cn.cursor()
        cur.execute("CREATE TABLE dbo.events (id INT NOT NULL PRIMARY KEY, note NVARCHAR(40) NULL)")
        for i in range(1, rows + 1):
            cur.execute("INSERT INTO dbo.events (id, note) VALUES (?, ?)", i, f"row {i}")
    p.sql(f"ALTER DATABASE {db} SET RECOVERY FULL")
    p.sql(f"BACKUP DATABASE {db} TO DISK = '{BACKUP}' WITH FORMAT")
    p.sql(f"BACKUP LOG {db} TO DISK = '{LOG_BACKUP}'")
    for path in (BACKUP, LOG_BACKUP):
        m.instance.fs.copy(p.instance.fs, path, path)
    m.sql(f"RESTORE DATABASE {db} FROM DISK = '{BACKUP}' WITH NORECOVERY")
    m.sql(f"RESTORE LOG {db} FROM DISK = '{LOG_BACKUP}' WITH FILE = 1, NORECOVERY")


def start_session(lab, principal: str = "P", mirror: str = "M", db: str = DB) -> None:
    p, m = lab[principal], lab[mirror]
    with m.connect() as cn:
        cn.cursor().execute(f"USE master; ALTER DATABASE {db} SET PARTNER = '{ms.url(p)}'")
    with p.connect() as cn:
        cn.cursor().execute(f"USE master; ALTER DATABASE {db} SET PARTNER = '{ms.url(m)}'")


def mirroring_state(handle, db: str = DB) -> Optional[tuple]:
    try:
        rows = handle.sql(STATE_QUERY, db)
    except Exception:          # the instance is down or restarting
        return None
    return tuple(rows[0]) if rows else None


def wait_state(handle, want: dict, db: str = DB, timeout: float = 30.0) -> tuple:
    """Wait until sys.database_mirroring on `handle` shows `want` (column index -> value)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = mirroring_state(handle, db)
        if seen and all(seen[i] == v for i, v in want.items()):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{handle.name}: wanted {want}, last saw {seen}")


ROLE, STATE, SAFETY, WITNESS = 0, 1, 2, 3


def synchronized(lab, principal="P", mirror="M", db=DB, timeout=30.0, witness: Optional[str] = None) -> None:
    want = {ROLE: "PRINCIPAL", STATE: "SYNCHRONIZED"}
    if witness:
        want[WITNESS] = witness
    wait_state(lab[principal], want, db, timeout)
    want[ROLE] = "MIRROR"
    wait_state(lab[mirror], want, db, timeout)


def count_rows(handle, db: str = DB) -> int:
    return handle.sql(f"SELECT COUNT(*) FROM {db}.dbo.events")[0][0]


def q(handle, statement: str, *params) -> list[tuple]:
    """The rows of one statement as plain tuples."""
    return [tuple(r) for r in handle.sql(statement, *params)]
