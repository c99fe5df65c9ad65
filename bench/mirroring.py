#!/usr/bin/env python3
"""Committed single-row transactions per second through one pyodbc connection on a database that is
unmirrored, mirrored with SAFETY FULL and with SAFETY OFF; and the failover time after the principal
is killed (partner TIMEOUT 10, witness set).

The lab runs as `mirrorkit lab up` runs it: one process per instance (P, M, W) on its own loopback
address; certificate trust is set up per the documented procedure through pyodbc + FreeTDS, the
mirror is prepared with BACKUP/RESTORE, certificate and backup files travel with `lab cp`.
Usage: .venv/bin/python bench/mirroring.py [--duration 5]
"""
from __future__ import annotations

import argparse
import io
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyodbc

from mirrorkit_lab import supervisor

PASSWORD = "Bench-Passw0rd!"
PORT = 5022
NAMES = ("P", "M", "W")


def cs(host: str, database: str = "master") -> str:
    return (f"DRIVER={{FreeTDS}};SERVER={host};PORT=1433;UID=sa;PWD={{{PASSWORD}}};DATABASE={database};"
            "TDS_Version=7.4;")


def sql(host: str, statement: str, *params):
    with pyodbc.connect(cs(host), autocommit=True, timeout=10) as cn:
        cur = cn.cursor()
        cur.execute(statement, *params)
        try:
            return [tuple(r) for r in cur.fetchall()]
        except pyodbc.ProgrammingError:
            return []


def free_hosts() -> dict[str, str]:
    base = f"127.{random.randint(120, 199)}.{random.randint(0, 254)}"
    return {n: f"{base}.{10 + i}" for i, n in enumerate(NAMES)}


def trust(state: Path, hosts: dict[str, str]) -> None:
    quiet = io.StringIO()
    for name, host in hosts.items():
        role = "WITNESS" if name == "W" else "PARTNER"
        sql(host, f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<{name}_Strong_Password#1>'")
        sql(host, f"CREATE CERTIFICATE {name}_cert WITH SUBJECT = '{name} endpoint'")
        sql(host, f"CREATE ENDPOINT Endpoint_Mirroring STATE = STARTED AS TCP (LISTENER_PORT = {PORT}) "
                  f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {name}_cert, "
                  f"ENCRYPTION = REQUIRED ALGORITHM AES, ROLE = {role})")
        sql(host, f"BACKUP CERTIFICATE {name}_cert TO FILE = 'C:\\{name}_cert.cer'")
    for receiver, host in hosts.items():
        for peer in hosts:
            if peer != receiver:
                supervisor.copy(state, f"{peer}:C:\\{peer}_cert.cer", f"{receiver}:C:\\{peer}_cert.cer", out=quiet)
                sql(host, f"CREATE LOGIN {peer}_login WITH PASSWORD = 'AStrongPassword!@#'")
                sql(host, f"CREATE USER {peer}_user FOR LOGIN {peer}_login")
                sql(host, f"CREATE CERTIFICATE {peer}_cert AUTHORIZATION {peer}_user FROM FILE = 'C:\\{peer}_cert.cer'")
                sql(host, f"GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO {peer}_login")


def state_of(host: str, db: str):
    try:
        rows = sql(host, "SELECT mirroring_role_desc, mirroring_state_desc, mirroring_safety_level_desc "
                         "FROM sys.database_mirroring WHERE database_id = DB_ID(?)", db)
    except pyodbc.Error:
        return None
    return rows[0] if rows else None


def wait_for(host: str, db: str, want: tuple, timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        seen = state_of(host, db)
        if seen and all(w is None or s == w for s, w in zip(seen, want)):
            return time.monotonic() - start
        time.sleep(0.05)
    raise SystemExit(f"{host}: {db} never reached {want}")


def rate(host: str, db: str, duration: float) -> float:
    with pyodbc.connect(cs(host, db), autocommit=True, timeout=10) as cn:
        cur = cn.cursor()
        cur.execute("SELECT ISNULL(MAX(v), 0) FROM dbo.t")
        n = cur.fetchone()[0]
        for _ in range(50):                          # warm-up: plans compiled, pages cached
            n += 1
            cur.execute("INSERT INTO dbo.t (v) VALUES (?)", n)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < duration:
            n += 1
            cur.execute("INSERT INTO dbo.t (v) VALUES (?)", n)
            done += 1
        return done / (time.perf_counter() - started)


def mirrored(state: Path, hosts: dict[str, str], db: str) -> None:
    p, m = hosts["P"], hosts["M"]
    quiet = io.StringIO()
    sql(p, f"CREATE DATABASE {db}")
    sql(p, f"USE {db}; CREATE TABLE dbo.t (v INT NOT NULL PRIMARY KEY)")
    sql(p, f"BACKUP DATABASE {db} TO DISK = 'C:\\{db}.bak' WITH FORMAT")
    sql(p, f"BACKUP LOG {db} TO DISK = 'C:\\{db}_log.bak'")
    for f in (f"C:\\{db}.bak", f"C:\\{db}_log.bak"):
        supervisor.copy(state, f"P:{f}", f"M:{f}", out=quiet)
    sql(m, f"RESTORE DATABASE {db} FROM DISK = 'C:\\{db}.bak' WITH NORECOVERY")
    sql(m, f"RESTORE LOG {db} FROM DISK = 'C:\\{db}_log.bak' WITH NORECOVERY")
    sql(m, f"ALTER DATABASE {db} SET PARTNER = 'TCP://{p}:{PORT}'")
    sql(p, f"ALTER DATABASE {db} SET PARTNER = 'TCP://{m}:{PORT}'")
    wait_for(p, db, ("PRINCIPAL", "SYNCHRONIZED", None))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="mirrorkit-bench-dbm-"))
    hosts = free_hosts()
    params = tmp / "lab.yaml"
    params.write_text("instances:\n" + "".join(f"  - name: {n}\n    server: {h},1433\n" for n, h in hosts.items()),
                      encoding="utf-8")
    state = tmp / "state"
    import os
    os.environ[supervisor.SA_PASSWORD_ENV] = PASSWORD
    supervisor.up(params, state, out=io.StringIO())
    try:
        trust(state, hosts)
        p = hosts["P"]
        sql(p, "CREATE DATABASE plain")
        sql(p, "USE plain; CREATE TABLE dbo.t (v INT NOT NULL PRIMARY KEY)")
        sql(p, "BACKUP DATABASE plain TO DISK = 'C:\\plain.bak' WITH FORMAT")   # FULL with a log chain, like the others
        print(f"committed single-row INSERTs through one pyodbc connection, {args.duration:.0f} s each")
        print(f"  unmirrored              {rate(p, 'plain', args.duration):7.0f} tx/s")
        mirrored(state, hosts, "full_db")
        print(f"  mirrored, SAFETY FULL   {rate(p, 'full_db', args.duration):7.0f} tx/s")
        mirrored(state, hosts, "off_db")
        sql(p, "ALTER DATABASE off_db SET PARTNER SAFETY OFF")
        wait_for(hosts["M"], "off_db", ("MIRROR", None, "OFF"))
        print(f"  mirrored, SAFETY OFF    {rate(p, 'off_db', args.duration):7.0f} tx/s")
        sql(p, f"ALTER DATABASE full_db SET WITNESS = 'TCP://{hosts['W']}:{PORT}'")
        time.sleep(2)
        supervisor.kill(state, "P", out=io.StringIO())
        took = wait_for(hosts["M"], "full_db", ("PRINCIPAL", None, None))
        print(f"  failover after kill of the principal (TIMEOUT 10, witness): {took:.1f} s")
    finally:
        supervisor.down(state, out=io.StringIO())
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
