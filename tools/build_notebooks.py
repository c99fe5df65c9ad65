"""Writes notebooks/*.ipynb from the cell lists below (the reviewable source of the runbook).

    python tools/build_notebooks.py          # write the notebooks
    python tools/build_notebooks.py --check  # exit 1 if a committed notebook differs

The notebooks are committed without outputs; tests/kit/test_notebook_hygiene.py runs --check.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "notebooks"

PARAMETERS = '''# Parameters. Under papermill: -f parameters/<env>.yaml -p target NAME -p mode apply
# By hand: set parameters_file and target below, then Run All (mode plan changes nothing).
target: str = {target}  # instance to configure, as named in the parameter file
mode: str = "plan"  # plan shows what it would do; apply makes the changes
change_id: str = ""  # change ticket, recorded in the run header
certificate_dir: str = ""  # public certificate artifacts; default runs/ENVIRONMENT/certificates
interactive: bool = None  # None means True when no parameters were injected (a person runs it)
parameters_file: str = "parameters/lab.yaml"  # read only when no parameters were injected
environment: str = None  # the top-level keys of the parameter file follow
topology: str = None
instances: list = None
endpoint: dict = None
certificate: dict = None
logins: dict = None
connection: dict = None
secrets: dict = None
verify: dict = None'''

START = '''import mirrorkit.notebook.runbook as rb

run = rb.start("{notebook}", globals())'''

SEAL = "run.seal()"

HEADERS = {
    "outbound": """# MK010 — outbound: master key, endpoint certificate, endpoint, public certificate

Configures one instance for **outbound** certificate authentication of its DATABASE_MIRRORING endpoint,
following Microsoft's procedure *Use Certificates for Outbound Connections*
(`database-mirroring-use-certificates-for-outbound-connections`):

1. a database master key in `master` (if none exists);
2. the endpoint certificate, with an explicit `START_DATE` (in the past, UTC) and `EXPIRY_DATE`;
3. the DATABASE_MIRRORING endpoint using that certificate, STARTED (an existing endpoint is reused; if it
   differs from the parameters the difference is reported with the exact `ALTER ENDPOINT`, and applied only
   when `endpoint.allow_alter` is true);
4. the public certificate exported (`CERTENCODED`) as `<instance>.cer` + `.json` with its thumbprint, for
   the inbound step on the peers; optionally a private-key backup on the server.

**Preconditions:** a login with CONTROL SERVER (sysadmin) on the target; `secrets.master_key_password`
resolvable when the master key must be created.
**Run order:** outbound on every instance, then inbound on every partner or replica, then witness, then verify.
**Rollback:** nothing existing is dropped or altered without `allow_alter`. To undo a first-time setup:
`DROP ENDPOINT [<endpoint>]; DROP CERTIFICATE [<certificate>];` and, if nothing else uses it,
`DROP MASTER KEY;` — in that order, in `master`.""",
    "inbound": """# MK020 — inbound: trust each peer's certificate

Configures one instance to accept its peers' endpoint connections, following Microsoft's procedure
*Use Certificates for Inbound Connections* (`database-mirroring-use-certificates-for-inbound-connections`).
For every peer that must connect to the target (mirroring partners with each other and with the witness;
availability-group replicas full mesh):

1. a login for the peer, with a random password that is never shown or kept — the certificate authenticates;
2. a user in `master` for that login;
3. the peer's public certificate, created `FROM BINARY` from the outbound artifact after checking its
   thumbprint (against the live peer when it is reachable), owned by that user;
4. `GRANT CONNECT ON ENDPOINT` to the login.

**Preconditions:** outbound has run on the target and on every peer (their artifacts are in `certificate_dir`).
**Rollback:** per peer, in `master`: `REVOKE CONNECT ON ENDPOINT::[<endpoint>] FROM [<login>];
DROP CERTIFICATE [<peer certificate>]; DROP USER [<user>]; DROP LOGIN [<login>];`.""",
    "verify": """# MK090 — verify: is the trust in place, what breaks it, how to fix it

Read-only: changes nothing on any instance. For every instance: the master key, the one DATABASE_MIRRORING
endpoint (STARTED, certificate authentication with the intended certificate, encryption, algorithm, role and
port as the parameters say), the endpoint certificate (private key encrypted by the master key, inside its
validity window; WARN `verify.expiry_warning_days` before expiry). For every ordered pair the topology needs
(initiator → acceptor): the acceptor holds the initiator's certificate, valid, owned by a user whose login is
enabled and may CONNECT; encryption, algorithm and role compatible; the endpoint reachable over TCP. Live
evidence: `sys.dm_db_mirroring_connections`, `sys.database_mirroring` and handshake failures in the error
logs (`verify.errorlog_hours`).

Any FAIL fails the notebook (non-zero exit under papermill); WARN alone passes, visibly. Each finding names
its remediation: the T-SQL to run, or the notebook and target to run again.""",
    "witness": """# MK030 — witness: the witness and both partners, both ways

The witness needs the certificate exchange in both directions with both partners (*Example: Setting Up
Database Mirroring Using Certificates*): outbound on the witness, inbound on the witness for both partners,
and inbound on both partners for the witness. `target` defaults to the witness.

**Preconditions:** outbound has run on both partners.
**Rollback:** as for outbound on the witness and inbound for the witness's login on each partner.""",
}

STEPS = {
    "snapshot_before": ("## Before: catalog views\n\nThe rows that matter, as DataFrames and as JSON records "
                        "(`sys.symmetric_keys`, `sys.certificates`, `sys.database_mirroring_endpoints` + "
                        "`sys.tcp_endpoints`, `sys.server_principals`, `sys.database_principals`, "
                        "`sys.server_permissions`).", 'before = run.snapshot("before")'),
    "plan": ("## Plan\n\nOnly the missing steps, as the T-SQL that will run (secrets redacted). Findings the kit "
             "will not fix on its own come with the statement to run by hand.", "plan = run.plan()"),
    "gate": ("## Gate\n\n`mode = \"plan\"` stops here. With `mode = \"apply\"` under papermill the parameters decide; "
             "by hand, tick the confirmation box and run the next cells.", "run.gate()"),
    "apply": ("## Apply\n\nEach statement's outcome is recorded; the first failure stops the run. Running the notebook "
              "again only does what is still missing.", "outcomes = run.apply()"),
    "snapshot_after": ("## After: catalog views", 'after = run.snapshot("after")'),
    "seal": ("## Seal\n\nThe final record: it proves the run reached the end.", SEAL),
}

ORDER = ["snapshot_before", "plan", "gate", "apply", "snapshot_after", "seal"]
VERIFY_ORDER = ["verify", "seal", "conclude"]
STEPS["verify"] = ("## Checks\n\nFindings (check, instance, peer, status, what was found, remediation), the trust "
                   "matrix and the expiry chart; JSON records for `mirrorkit report`.", "verdict = run.verify()")
STEPS["conclude"] = ("## Verdict\n\nRaises when any check FAILs, so that papermill and schedulers see a "
                     "non-zero exit.", "run.conclude()")


def build(notebook: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3 (ipykernel)"},
        "language_info": {"name": "python"},
    }
    cells = [nbformat.v4.new_markdown_cell(HEADERS[notebook])]
    parameters = PARAMETERS.format(target="None")
    if notebook == "verify":
        parameters = "\n".join(line for line in parameters.splitlines()
                                if not line.startswith(("target:", "mode:", "certificate_dir:")))
    cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    cells.append(nbformat.v4.new_markdown_cell("## Start\n\nValidates the parameters (nothing is sent to a server "
                                               "before this passes) and records the run header."))
    # the code cells are one-line calls into the kit: the HTML record hides them and shows their output
    plumbing = {"tags": ["hide-input"]}
    cells.append(nbformat.v4.new_code_cell(START.format(notebook=notebook), metadata=dict(plumbing)))
    for key in (VERIFY_ORDER if notebook == "verify" else ORDER):
        md, code = STEPS[key]
        cells.append(nbformat.v4.new_markdown_cell(md))
        cells.append(nbformat.v4.new_code_cell(code, metadata={"tags": ["hide-input"]}))
    for i, cell in enumerate(cells):
        cell["id"] = f"{notebook}-{i:02d}"
    nb.cells = cells
    return nb


def render(notebook: str) -> str:
    return nbformat.writes(build(notebook)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    stale = []
    for name in HEADERS:
        path = OUT / f"{name}.ipynb"
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python tools/build_notebooks.py): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
