"""Acceptance: the runbook notebooks on a mirroring lab (two partners and a witness).

One module-scoped lab and one full runbook run (papermill, apply mode, the documented order:
outbound on PARTNER_A, PARTNER_B, WITNESS; inbound on both partners; witness), with three plan-mode
runs in between (outbound on a fresh instance, inbound once the artifacts exist, witness before its
apply), serve every test here. The catalog is always read through the client stack (`LabHandle.sql`), never from the
notebooks' own records alone.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from . import runbook_helpers as H

pytestmark = pytest.mark.timeout(600)

NAMES = ["PARTNER_A", "PARTNER_B", "WITNESS"]
PARTNERS = ["PARTNER_A", "PARTNER_B"]
ROLES = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}
PEERS = {"PARTNER_A": ["PARTNER_B", "WITNESS"], "PARTNER_B": ["PARTNER_A", "WITNESS"],
         "WITNESS": ["PARTNER_A", "PARTNER_B"]}
ENDPOINT_ROLE = {"PARTNER_A": "ALL", "PARTNER_B": "ALL", "WITNESS": "WITNESS"}
# inbound on a partner trusts the other partner; the witness pairs are the witness notebook's
INBOUND_PEERS = {"PARTNER_A": ["PARTNER_B"], "PARTNER_B": ["PARTNER_A"]}
# statements the documented order sends: outbound 3 each; inbound 4 per peer; witness: inbound on the
# witness for both partners and on both partners for the witness
EXPECTED_STATEMENTS = [("outbound", "PARTNER_A", 3), ("outbound", "PARTNER_B", 3), ("outbound", "WITNESS", 3),
                       ("inbound", "PARTNER_A", 4), ("inbound", "PARTNER_B", 4), ("witness", "WITNESS", 16)]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Mirroring:
    lab: object
    param_file: Path
    cert_dir: Path
    out_dir: Path
    initial: dict = field(default_factory=dict)
    outbound_plan: object = None
    outbound_plan_spy: object = None
    artifacts_after_outbound_plan: list = field(default_factory=list)
    after_outbound_plan: dict = field(default_factory=dict)
    before_inbound_plan: dict = field(default_factory=dict)
    inbound_plan: object = None
    inbound_plan_spy: object = None
    after_inbound_plan: dict = field(default_factory=dict)
    before_witness_plan: dict = field(default_factory=dict)
    witness_plan: object = None
    witness_plan_spy: object = None
    after_witness_plan: dict = field(default_factory=dict)
    applied: list = field(default_factory=list)
    final: dict = field(default_factory=dict)

    def catalogs(self) -> dict:
        return {n: H.catalog(self.lab[n]) for n in NAMES}

    def run(self, notebook: str, target: str, mode: str = "apply"):
        return H.run_notebook(notebook, self.param_file, target=target, mode=mode,
                              certificate_dir=self.cert_dir, out_dir=self.out_dir)


@pytest.fixture(scope="module")
def mirroring(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mirroring")
    lab = H.start_lab(tmp / "lab", *NAMES)
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp)
            m = Mirroring(lab, H.write_parameter_file(tmp, H.parameter_values(lab, ROLES)), tmp / "certs",
                          tmp / "out")
            m.initial = m.catalogs()
            with H.SessionSpy(list(lab.instances.values())) as spy:
                m.outbound_plan = m.run("outbound", "PARTNER_A", "plan")
            m.outbound_plan_spy = spy
            m.artifacts_after_outbound_plan = sorted(p.name for p in m.cert_dir.glob("*")) \
                if m.cert_dir.exists() else []
            m.after_outbound_plan = m.catalogs()
            for name in NAMES:
                m.applied.append(m.run("outbound", name))
            m.before_inbound_plan = m.catalogs()
            with H.SessionSpy(list(lab.instances.values())) as spy:
                m.inbound_plan = m.run("inbound", "PARTNER_A", "plan")
            m.inbound_plan_spy = spy
            m.after_inbound_plan = m.catalogs()
            for name in PARTNERS:
                m.applied.append(m.run("inbound", name))
            m.before_witness_plan = m.catalogs()
            with H.SessionSpy(list(lab.instances.values())) as spy:
                m.witness_plan = m.run("witness", "WITNESS", "plan")
            m.witness_plan_spy = spy
            m.after_witness_plan = m.catalogs()
            m.applied.append(m.run("witness", "WITNESS"))
            m.final = m.catalogs()
            yield m
    finally:
        lab.stop_all()


def _require_applied(m: Mirroring) -> None:
    failed = [r.describe() for r in m.applied if not r.ok]
    assert not failed, "the apply runs must succeed:\n" + "\n\n".join(failed)


# ---------------------------------------------------------------------------------------------
# Plan mode
# ---------------------------------------------------------------------------------------------

def test_plan_mode_outbound_changes_nothing(mirroring):
    run = mirroring.outbound_plan
    assert run.ok, run.describe()
    assert mirroring.after_outbound_plan == mirroring.initial, "plan mode changed the catalog"
    recs = run.records
    assert recs["gate"] == [{"mode": "plan", "apply": False}]
    assert "statement" not in recs and "certificate_artifact" not in recs
    assert recs["snapshot_before"][0]["instances"] == recs["snapshot_after"][0]["instances"]
    assert recs["seal"][0]["statements_applied"] == 0 and recs["seal"][0]["status"] == "ok"
    spy = mirroring.outbound_plan_spy
    assert spy.kit_logins, "the plan run should have read the catalog through a mirrorkit session"
    assert spy.kit_statements == [], f"plan mode sent statements: {spy.kit_statements}"
    assert mirroring.artifacts_after_outbound_plan == [], "plan mode exported an artifact"


def test_plan_mode_outbound_shows_the_full_tsql(mirroring):
    run = mirroring.outbound_plan
    assert run.ok, run.describe()
    steps = run.plan_steps()
    sqls = [s["sql"] for s in steps]
    assert len(sqls) == 3, sqls
    assert sqls[0] == "CREATE MASTER KEY ENCRYPTION BY PASSWORD = N'********';"
    assert re.fullmatch(r"CREATE CERTIFICATE \[PARTNER_A_dbm_cert\]\s+WITH SUBJECT = "
                        r"N'PARTNER_A DATABASE_MIRRORING endpoint',\s+START_DATE = N'(\S+)',\s+"
                        r"EXPIRY_DATE = N'(\S+)';", sqls[1]), sqls[1]
    start, expiry = re.findall(r"_DATE = N'(\S+)'", sqls[1])
    start, expiry = datetime.fromisoformat(start), datetime.fromisoformat(expiry)
    assert expiry - start == timedelta(days=1095)
    now = _utcnow()
    assert timedelta(hours=23) < now - start < timedelta(hours=25), "START_DATE is backdated 24 hours (UTC)"
    flat = " ".join(sqls[2].split())
    assert flat.startswith("CREATE ENDPOINT [Mirroring] STATE = STARTED AS TCP (") and flat.endswith(";"), flat
    for clause in ("LISTENER_PORT = 5022", "LISTENER_IP = ALL", "FOR DATABASE_MIRRORING (",
                   "AUTHENTICATION = CERTIFICATE [PARTNER_A_dbm_cert]", "ENCRYPTION = REQUIRED ALGORITHM AES",
                   "ROLE = ALL"):
        assert clause in flat, (clause, flat)
    # the notebook shows the same script to the reader
    text = run.text
    for needle in ("CREATE MASTER KEY ENCRYPTION BY PASSWORD = N'********'", "CREATE CERTIFICATE [PARTNER_A_dbm_cert]",
                   "CREATE ENDPOINT [Mirroring]", "Plan mode:"):
        assert needle in text or json.dumps(needle)[1:-1] in text, needle
    assert H.DMK_PASSWORD not in text


def test_plan_mode_inbound_changes_nothing_and_shows_the_full_tsql(mirroring):
    run = mirroring.inbound_plan
    assert run.ok, run.describe()
    assert mirroring.after_inbound_plan == mirroring.before_inbound_plan, "plan mode changed the catalog"
    assert mirroring.inbound_plan_spy.kit_statements == []
    assert "statement" not in run.records
    sqls = [" ".join(s["sql"].split()) for s in run.plan_steps()]
    expected = []
    for peer in INBOUND_PEERS["PARTNER_A"]:
        der = (mirroring.cert_dir / f"{peer}.cer").read_bytes()
        expected += [f"CREATE LOGIN [{peer}_dbm_login] WITH PASSWORD = N'********';",
                     f"CREATE USER [{peer}_dbm_user] FOR LOGIN [{peer}_dbm_login];",
                     f"CREATE CERTIFICATE [{peer}_dbm_cert] AUTHORIZATION [{peer}_dbm_user] "
                     f"FROM BINARY = 0x{der.hex().upper()};",
                     f"GRANT CONNECT ON ENDPOINT::[Mirroring] TO [{peer}_dbm_login];"]
    assert sqls == expected


def test_plan_mode_witness_changes_nothing_and_shows_the_full_tsql(mirroring):
    run = mirroring.witness_plan
    assert run.ok, run.describe()
    assert mirroring.after_witness_plan == mirroring.before_witness_plan, "plan mode changed the catalog"
    assert mirroring.witness_plan_spy.kit_statements == []
    assert "statement" not in run.records
    plans = run.records["plan"][-1]
    assert [(p["instance"], p["notebook"], len(p["steps"]), p["blocked"]) for p in plans] == [
        ("WITNESS", "outbound", 0, False), ("WITNESS", "witness inbound", 8, False),
        ("PARTNER_A", "witness inbound", 4, False), ("PARTNER_B", "witness inbound", 4, False)]

    def trust(peer: str) -> list[str]:
        der = (mirroring.cert_dir / f"{peer}.cer").read_bytes()
        return [f"CREATE LOGIN [{peer}_dbm_login] WITH PASSWORD = N'********';",
                f"CREATE USER [{peer}_dbm_user] FOR LOGIN [{peer}_dbm_login];",
                f"CREATE CERTIFICATE [{peer}_dbm_cert] AUTHORIZATION [{peer}_dbm_user] "
                f"FROM BINARY = 0x{der.hex().upper()};",
                f"GRANT CONNECT ON ENDPOINT::[Mirroring] TO [{peer}_dbm_login];"]
    assert [" ".join(s["sql"].split()) for s in plans[1]["steps"]] == trust("PARTNER_A") + trust("PARTNER_B")
    for i in (2, 3):
        assert [" ".join(s["sql"].split()) for s in plans[i]["steps"]] == trust("WITNESS")


# ---------------------------------------------------------------------------------------------
# Apply: the runs, the end state, the artifacts, the probe
# ---------------------------------------------------------------------------------------------

def test_apply_runs_are_recorded_and_sealed(mirroring):
    _require_applied(mirroring)
    assert [(r.notebook, r.target) for r in mirroring.applied] == [(n, t) for n, t, _ in EXPECTED_STATEMENTS]
    for run, (_, _, count) in zip(mirroring.applied, EXPECTED_STATEMENTS):
        recs = run.records
        for name in ("run_header", "snapshot_before", "plan", "gate", "snapshot_after", "seal"):
            assert name in recs, f"{run.notebook} {run.target}: no {name} record"
        assert recs["gate"] == [{"mode": "apply", "apply": True}]
        statements = recs.get("statement", [])
        assert len(statements) == count, (run.notebook, run.target, [s["sql"] for s in statements])
        assert all(s["ok"] and s["error"] is None for s in statements)
        seal = recs["seal"][-1]
        assert seal["status"] == "ok" and seal["statements_applied"] == count
        header = recs["run_header"][0]
        assert (header["notebook"], header["target"], header["mode"]) == (run.notebook, run.target, "apply")


@pytest.mark.parametrize("name", NAMES)
def test_end_state_master_key_and_endpoint(mirroring, name):
    _require_applied(mirroring)
    state = mirroring.final[name]
    assert state["master_key"] == [("##MS_DatabaseMasterKey##", "AES_256", True)], \
        "a master key in master, encrypted by the service master key"
    assert state["endpoints"] == [{
        "name": "Mirroring", "state": "STARTED", "role": ENDPOINT_ROLE[name], "auth": "CERTIFICATE",
        "certificate": f"{name}_dbm_cert", "encrypted": True, "algorithm": "AES", "port": 5022, "ip": None,
        "owner": "sa"}]
    own = [c for c in state["certificates"] if c["name"] == f"{name}_dbm_cert"]
    assert len(own) == 1
    own = own[0]
    assert own["private_key"] == "MK" and own["owner"] == "dbo"
    assert own["subject"] == f"{name} DATABASE_MIRRORING endpoint"
    assert own["expiry"] - own["start"] == timedelta(days=1095)
    assert own["start"] < _utcnow() - timedelta(hours=23)


@pytest.mark.parametrize("name", NAMES)
def test_end_state_peer_trust(mirroring, name):
    _require_applied(mirroring)
    state = mirroring.final[name]
    peers = PEERS[name]
    assert sorted((c["name"], c["owner"], c["private_key"]) for c in state["certificates"]) == sorted(
        [(f"{name}_dbm_cert", "dbo", "MK")] + [(f"{p}_dbm_cert", f"{p}_dbm_user", "NA") for p in peers])
    assert sorted(state["logins"]) == sorted([("sa", "SQL_LOGIN", False)] +
                                             [(f"{p}_dbm_login", "SQL_LOGIN", False) for p in peers])
    assert sorted(state["users"]) == sorted((f"{p}_dbm_user", "SQL_USER", f"{p}_dbm_login") for p in peers)
    assert sorted(state["permissions"]) == sorted(("Mirroring", "CONNECT", "GRANT", f"{p}_dbm_login")
                                                  for p in peers)


@pytest.mark.parametrize("name", NAMES)
def test_thumbprints_equal_the_exported_artifacts(mirroring, name):
    _require_applied(mirroring)
    cer = mirroring.cert_dir / f"{name}.cer"
    meta = json.loads((mirroring.cert_dir / f"{name}.json").read_text(encoding="utf-8"))
    der = cer.read_bytes()
    thumb = hashlib.sha1(der).digest()
    assert meta["thumbprint"].upper() == "0X" + thumb.hex().upper()
    assert meta["instance"] == name and meta["certificate_name"] == f"{name}_dbm_cert"
    assert meta["sha256"] == hashlib.sha256(der).hexdigest()
    lab = mirroring.lab
    assert H.thumbprint_of(lab[name], f"{name}_dbm_cert") == thumb, "the artifact is the instance's own certificate"
    encoded = lab[name].sql(f"SELECT CERTENCODED(CERT_ID(N'{name}_dbm_cert'))")[0][0]
    assert bytes(encoded) == der
    for other in PEERS[name]:
        assert H.thumbprint_of(lab[other], f"{name}_dbm_cert") == thumb, f"{other}'s copy of {name}'s certificate"
    records = [r for run in mirroring.applied for r in run.records.get("certificate_artifact", [])
               if r["instance"] == name]
    assert records and all(r["thumbprint"] == meta["thumbprint"] for r in records)


def test_probe_succeeds_in_all_six_directions(mirroring):
    _require_applied(mirroring)
    pairs = [("PARTNER_A", "PARTNER_B", "PARTNER"), ("PARTNER_B", "PARTNER_A", "PARTNER"),
             ("PARTNER_A", "WITNESS", "WITNESS"), ("PARTNER_B", "WITNESS", "WITNESS"),
             ("WITNESS", "PARTNER_A", "PARTNER"), ("WITNESS", "PARTNER_B", "PARTNER")]
    assert H.probe_failures(mirroring.lab, pairs) == []


# ---------------------------------------------------------------------------------------------
# A second apply run
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def second_apply(mirroring):
    artifacts = {p.name: p.read_bytes() for p in mirroring.cert_dir.iterdir()}
    with pytest.MonkeyPatch.context() as mp:
        H.secret_env(mp)
        with H.SessionSpy(list(mirroring.lab.instances.values())) as spy:
            runs = [mirroring.run(n, t) for n, t, _ in EXPECTED_STATEMENTS]
    return runs, spy, artifacts, mirroring.catalogs()


def test_second_apply_plans_nothing_and_sends_nothing(mirroring, second_apply):
    _require_applied(mirroring)
    runs, spy, artifacts, catalogs = second_apply
    failed = [r.describe() for r in runs if not r.ok]
    assert not failed, "\n\n".join(failed)
    for run in runs:
        plans = run.records["plan"][-1]
        assert [(p["instance"], len(p["steps"])) for p in plans] == [(p["instance"], 0) for p in plans], \
            f"{run.notebook} {run.target}: a second run must plan nothing: {run.plan_sql()}"
        assert all(not p["blocked"] for p in plans)
        assert "statement" not in run.records
        assert run.records["seal"][-1]["statements_applied"] == 0
    assert spy.kit_statements == [], f"a second run sent statements: {spy.kit_statements}"
    assert catalogs == mirroring.final
    assert {p.name: p.read_bytes() for p in mirroring.cert_dir.iterdir()} == artifacts
