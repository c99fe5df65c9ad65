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

GUARD = '''import mirrorkit.notebook.runbook as rb

rb.guard("{notebook}")  # what papermill injects below is checked before it runs'''

PARAMETERS = '''# Parameters. Under papermill: -p parameters_file parameters/<env>.yaml -p target NAME -p mode apply
# (not -f: the kit reads and validates the parameter file itself). By hand: set them here, then Run All.
parameters_file: str = "parameters/lab.yaml"  # the environment's parameter file
target: str = None  # instance to configure, as named in the parameter file
mode: str = "plan"  # plan shows what it would do; apply makes the changes
change_id: str = ""  # change ticket, recorded in the run header
certificate_dir: str = ""  # public certificate artifacts; default runs/ENVIRONMENT/certificates
interactive: bool = None  # None means True when nothing was injected (a person runs it)
parameters_sha256: str = ""  # set by mirrorkit run: the sha256 of the parameter file it validated'''

START = '''run = rb.start(
    "{notebook}", parameters_file=parameters_file, parameters_sha256=parameters_sha256,{run_args}
    change_id=change_id, interactive=interactive)'''
RUN_ARGS = "\n    target=target, mode=mode, certificate_dir=certificate_dir,"

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
For every peer that must connect to the target (the other mirroring partner — the witness pairs are the
witness notebook's; availability-group replicas full mesh):

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
Database Mirroring Using Certificates*). This notebook does all of it, in three sections, each planned
from the live catalog when it is reached:

1. outbound on the witness (master key, endpoint certificate, endpoint with `ROLE = WITNESS`, the public
   certificate exported);
2. inbound on the witness for both partners (a login, user and certificate per partner, CONNECT);
3. inbound on both partners for the witness (its certificate from section 1, owned by its own user).

The partners can be set up without a witness (outbound and inbound on each partner cover the two partners);
a witness is added, or replaced, by running this one notebook. `target` defaults to the witness.

**Preconditions:** outbound has run on both partners (their artifacts are in `certificate_dir`).
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
STEPS["verify"] = ("## Checks\n\nFindings (check, instance, peer, status, what was found, remediation), the trust "
                   "matrix and the expiry chart; JSON records for `mirrorkit report`.", "verdict = run.verify()")
STEPS["conclude"] = ("## Verdict\n\nRaises when any check FAILs, so that papermill and schedulers see a "
                     "non-zero exit.", "run.conclude()")
STEPS["witness_outbound"] = ("## 1. Outbound on the witness\n\nMaster key, endpoint certificate and the endpoint "
                             "(`ROLE = WITNESS`); then the witness's public certificate is exported for section 3.",
                             'run.apply("outbound")')
STEPS["witness_trusts_partners"] = ("## 2. Inbound on the witness, for both partners\n\nPlanned now, from the "
                                    "catalog as section 1 left it: a login, a user and the partner's certificate "
                                    "(checked against the live partner) per partner, and CONNECT.",
                                    'run.apply("witness_trusts_partners")')
STEPS["partners_trust_witness"] = ("## 3. Inbound on both partners, for the witness\n\nPlanned now: on each "
                                   "partner a login and user for the witness, the witness certificate exported in "
                                   "section 1 owned by that user, and CONNECT.", 'run.apply("partners_trust_witness")')
SEQUENCE = {
    "outbound": ORDER, "inbound": ORDER,
    "witness": ["snapshot_before", "plan", "gate", "witness_outbound", "witness_trusts_partners",
                "partners_trust_witness", "snapshot_after", "seal"],
    "verify": ["verify", "seal", "conclude"],
}


def build(notebook: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3 (ipykernel)"},
        "language_info": {"name": "python"},
    }
    # the code cells are one-line calls into the kit: the HTML record hides them and shows their output
    plumbing = {"tags": ["hide-input"]}
    cells = [nbformat.v4.new_markdown_cell(HEADERS[notebook]),
             nbformat.v4.new_code_cell(GUARD.format(notebook=notebook), metadata=dict(plumbing))]
    parameters = PARAMETERS
    if notebook == "verify":
        parameters = "\n".join(line for line in parameters.splitlines()
                                if not line.startswith(("target:", "mode:", "certificate_dir:")))
        parameters = parameters.replace(" -p target NAME -p mode apply", "")
    cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    cells.append(nbformat.v4.new_markdown_cell("## Start\n\nReads and validates the parameter file (nothing is sent "
                                               "to a server before this passes), records the run header and the "
                                               "effective configuration."))
    run_args = "" if notebook == "verify" else RUN_ARGS
    cells.append(nbformat.v4.new_code_cell(START.format(notebook=notebook, run_args=run_args),
                                           metadata=dict(plumbing)))
    for key in SEQUENCE[notebook]:
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
