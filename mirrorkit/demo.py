"""`mirrorkit demo`: start the lab from parameters/lab.yaml and show it answering
through the real client stack (pyodbc + FreeTDS). The runbook demo (plan, apply,
verify) replaces the second half once the notebooks exist."""
from __future__ import annotations

import sys
from pathlib import Path

from .lab import supervisor
from .lab.config import load_instances

DEFAULT_PARAMS = Path(__file__).resolve().parent.parent / "parameters" / "lab.yaml"


def run(params: Path = DEFAULT_PARAMS, state_dir: Path | None = None, out=sys.stdout) -> int:
    import pyodbc
    state = state_dir or supervisor.state_dir_from(None)
    supervisor.up(params, state, out=out)
    password = supervisor.sa_password(state)
    print("", file=out)
    for spec in load_instances(params):
        cs = (f"DRIVER={{FreeTDS}};SERVER={spec.host};PORT={spec.port};UID=sa;"
              f"PWD={{{password.replace('}', '}}')}}};DATABASE=master;TDS_Version=7.4;")
        with pyodbc.connect(cs, autocommit=True, timeout=10) as cn:
            name, version = cn.cursor().execute(
                "SELECT @@SERVERNAME, CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(30))").fetchone()
            endpoints = cn.cursor().execute(
                "SELECT COUNT(*) FROM sys.database_mirroring_endpoints").fetchone()[0]
        print(f"{name} answers at {spec.server} via pyodbc + FreeTDS (SQL Server {version}, "
              f"{endpoints} mirroring endpoint(s))", file=out)
    print(f"\nThe lab keeps running; state in {state}, sa password in {supervisor.password_file(state)}.\n"
          "Stop it with: mirrorkit lab down", file=out)
    return 0
