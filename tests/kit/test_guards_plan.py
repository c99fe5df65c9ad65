"""Acceptance: the plan's guards, each a README promise, through papermill and the lab.

* endpoint drift is reported with the exact ALTER ENDPOINT (WARN I04) and changed only with
  `endpoint.allow_alter: true`; without it nothing is sent;
* the certificate blockers — the endpoint certificate expired, not yet valid, its private key protected by a
  password, a stale copy of the peer's certificate — each block the apply: the gate raises "the plan has
  blockers", no statement is sent, the catalog is unchanged, and the blocker names its remediation;
* the gate refuses a blocked plan in apply mode under papermill and under `mirrorkit run` (exit 1);
* an artifact (.cer/.json) with other contents is never overwritten.

One two-partner lab (configured by outbound and inbound in process) serves the module; each test leaves it
as configured.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from . import runbook_helpers as H
from . import runner_helpers as R

pytestmark = pytest.mark.timeout(600)

A, B = "PARTNER_A", "PARTNER_B"
ROLES = {A: "partner", B: "partner"}
BLOCKED = "the plan has blockers"


@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guards-plan")
    lab = H.start_lab(tmp / "lab", A, B)
    mp = pytest.MonkeyPatch()
    try:
        H.secret_env(mp)
        params = H.write_parameter_file(tmp, H.parameter_values(lab, ROLES, environment="guards"))
        for notebook in ("outbound", "inbound"):
            for name in (A, B):
                H.run_in_process(notebook, params, target=name, mode="apply", certificate_dir=tmp / "certs",
                                 expect_ok=True)
        yield lab, tmp, params
    finally:
        mp.undo()
        lab.stop_all()


def _params(lab, tmp, name, **sections):
    return H.write_parameter_file(tmp, H.parameter_values(lab, ROLES, environment="guards", **sections),
                                  name=f"{name}.yaml")


def _run(lab, tmp, notebook, params, target, certs=None, mode="apply"):
    """The notebook under papermill, with a spy on every batch the kit sends."""
    with H.SessionSpy(list(lab.instances.values())) as spy:
        run = H.run_notebook(notebook, params, target=target, mode=mode, certificate_dir=certs or tmp / "certs",
                             out_dir=tmp / "out")
    return run, spy


def _findings(run, check):
    return [f for plan in run.records.get("plan", [[]])[-1] for f in plan["findings"] if f["check"] == check]


def _assert_blocked(run, spy, before, after, check):
    """The gate refused: the notebook failed on it, the gate record says BLOCKED, no statement was sent."""
    assert not run.ok, "a blocked plan was applied"
    assert BLOCKED in run.error_text(), run.error_text()
    assert run.records["gate"][-1] == {"mode": "apply", "apply": False, "blocked": True}
    assert run.statements() == [] and spy.kit_statements == [], spy.kit_statements
    assert "seal" not in run.records
    assert after == before, "the catalog changed under a blocked plan"
    found = _findings(run, check)
    assert found and all(f["blocks"] and f["status"] == "FAIL" for f in found), run.records["plan"]
    assert all(f["remediation"] for f in found), found
    return found


# ---------------------------------------------------------------------------------------------
# Endpoint drift
# ---------------------------------------------------------------------------------------------

def test_endpoint_drift_is_reported_with_the_exact_alter_and_changed_only_when_allowed(lab2):
    lab, tmp, params = lab2
    lab[A].sql("ALTER ENDPOINT [Mirroring] FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM RC4)")
    try:
        before = H.catalog(lab[A])
        assert before["endpoints"][0]["algorithm"] == "RC4"
        run, spy = _run(lab, tmp, "outbound", params, A)
        assert run.ok, run.describe()
        drift = _findings(run, "I04")
        assert len(drift) == 1 and drift[0]["status"] == "WARN" and not drift[0]["blocks"], drift
        assert drift[0]["remediation_instance"] == A
        assert drift[0]["remediation_sql"] == ("ALTER ENDPOINT [Mirroring]\n"
                                               "    FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES);")
        assert "encryption RC4 instead of AES" in drift[0]["found"]
        assert run.plan_steps() == [] and run.statements() == [] and spy.kit_statements == []
        assert H.catalog(lab[A]) == before
        # allowed: the same statement is the plan, applied, and the catalog shows the new setting
        allowed = _params(lab, tmp, "allow-alter", endpoint={"allow_alter": True})
        run, spy = _run(lab, tmp, "outbound", allowed, A)
        assert run.ok, run.describe()
        assert _findings(run, "I04") == []
        assert [s["sql"] for s in run.statements()] == [drift[0]["remediation_sql"]]
        assert all(s["ok"] for s in run.statements())
        assert [sql for _, sql in spy.kit_statements] == [drift[0]["remediation_sql"]]
        after = H.catalog(lab[A])
        assert after["endpoints"][0]["algorithm"] == "AES" and after["endpoints"][0]["state"] == "STARTED"
        assert {k: v for k, v in after.items() if k != "endpoints"} == \
            {k: v for k, v in before.items() if k != "endpoints"}
    finally:
        lab[A].sql("ALTER ENDPOINT [Mirroring] FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES)")


# ---------------------------------------------------------------------------------------------
# Certificate blockers on outbound
# ---------------------------------------------------------------------------------------------

def _date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _window(kind):
    now = datetime.utcnow()
    if kind == "expired":
        return now - timedelta(days=400), now - timedelta(days=2)
    return now + timedelta(days=5), now + timedelta(days=400)       # not yet valid


CERT_BLOCKERS = {
    # kind → (check, CREATE CERTIFICATE clause, what the remediation must name)
    "expired": ("I10", None, "new certificate.name"),
    "not_yet_valid": ("I10", None, "wait, or use a new certificate"),
    "password_protected": ("I09", "ENCRYPTION BY PASSWORD = N'Guard-Cert-Passw0rd!1' ",
                           "set certificate.name to a new name"),
}


@pytest.mark.parametrize("kind", sorted(CERT_BLOCKERS))
def test_endpoint_certificate_blocker_stops_the_apply(lab2, kind):
    lab, tmp, _ = lab2
    check, protection, remedy = CERT_BLOCKERS[kind]
    name = f"{A}_guard_{kind}"
    start, expiry = _window(kind) if check == "I10" else (datetime.utcnow() - timedelta(days=1),
                                                          datetime.utcnow() + timedelta(days=300))
    lab[A].sql(f"CREATE CERTIFICATE [{name}] {protection or ''}WITH SUBJECT = N'guard {kind}', "
               f"START_DATE = '{_date(start)}', EXPIRY_DATE = '{_date(expiry)}'")
    try:
        params = _params(lab, tmp, f"cert-{kind}", certificate={"name": "{instance}_guard_" + kind})
        before = H.catalog(lab[A])
        run, spy = _run(lab, tmp, "outbound", params, A)
        found = _assert_blocked(run, spy, before, H.catalog(lab[A]), check)
        assert name in found[0]["found"], found
        assert remedy in found[0]["remediation"], found
        if kind == "password_protected":
            assert f"DROP CERTIFICATE [{name}]" in found[0]["remediation"]
    finally:
        lab[A].sql(f"DROP CERTIFICATE [{name}]")


def test_gate_refuses_a_blocked_plan_under_mirrorkit_run(lab2, tmp_path, monkeypatch):
    """`mirrorkit run --mode apply` with an expired endpoint certificate: exit 1, the step failed on the gate,
    the run sealed, nothing sent."""
    lab, tmp, _ = lab2
    name = f"{A}_guard_run_expired"
    start, expiry = _window("expired")
    lab[A].sql(f"CREATE CERTIFICATE [{name}] WITH SUBJECT = N'guard run', START_DATE = '{_date(start)}', "
               f"EXPIRY_DATE = '{_date(expiry)}'")
    try:
        params = _params(lab, tmp_path, "run-expired", certificate={"name": "{instance}_guard_run_expired"})
        before = H.catalog(lab[A])
        with H.SessionSpy(list(lab.instances.values())) as spy:
            proc = R.cli("run", str(params), "--mode", "apply", "--only", "outbound", "--target", A,
                         "--out", str(tmp_path / "runs"), "--certificate-dir", str(tmp_path / "certs"), cwd=tmp_path)
        assert proc.returncode == 1, R.describe(proc)
        assert spy.kit_statements == [] and H.catalog(lab[A]) == before
        (run_dir,) = list((tmp_path / "runs").iterdir())
        m = R.manifest(run_dir)
        assert m["status"] == "failed" and m["exit_code"] == 1 and m["sealed"] is True
        (step,) = m["steps"]
        assert step["status"] == "failed" and BLOCKED in (step["failure"] or {}).get("evalue", ""), step
        from mirrorkit.notebook.records import read_records
        records = read_records(run_dir / step["notebook_file"])
        assert records["gate"][-1]["blocked"] is True and "statement" not in records
    finally:
        lab[A].sql(f"DROP CERTIFICATE [{name}]")


# ---------------------------------------------------------------------------------------------
# A stale copy of the peer's certificate on inbound
# ---------------------------------------------------------------------------------------------

def test_stale_peer_copy_blocks_inbound_and_its_remediation_fixes_it(lab2):
    """A holds a certificate under B's certificate name with another thumbprint (B's own dropped, another
    imported): inbound on A is blocked (P07) naming DROP CERTIFICATE on A; after it, inbound restores trust."""
    lab, tmp, params = lab2
    cert = f"{B}_dbm_cert"
    good = H.thumbprint_of(lab[A], cert)
    from .verify_helpers import impostor_der
    lab[A].sql(f"DROP CERTIFICATE [{cert}]")
    lab[A].sql(f"CREATE CERTIFICATE [{cert}] AUTHORIZATION [{B}_dbm_user] "
               f"FROM BINARY = 0x{impostor_der('guards stale copy').hex()}")
    before = H.catalog(lab[A])
    run, spy = _run(lab, tmp, "inbound", params, A)
    (found,) = _assert_blocked(run, spy, before, H.catalog(lab[A]), "P07")
    assert "stale" in found["found"] and found["peer"] == B, found
    assert found["remediation_instance"] == A
    assert found["remediation_sql"] == f"DROP CERTIFICATE [{cert}];"
    assert "run this notebook again" in found["remediation"]
    # what the blocker says, done
    lab[A].sql(found["remediation_sql"])
    run, _ = _run(lab, tmp, "inbound", params, A)
    assert run.ok, run.describe()
    assert [s["ok"] for s in run.statements()] == [True]
    assert H.thumbprint_of(lab[A], cert) == good
    assert H.probe_failures(lab, [(B, A, "PARTNER"), (A, B, "PARTNER")]) == []


# ---------------------------------------------------------------------------------------------
# Artifacts are never overwritten
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["cer", "json"])
def test_an_artifact_with_other_contents_is_never_overwritten(lab2, tmp_path, which):
    lab, tmp, params = lab2
    certs = tmp_path / "certs"
    certs.mkdir()
    good = tmp / "certs"
    if which == "json":           # the .cer is the right one, the .json another
        (certs / f"{A}.cer").write_bytes((good / f"{A}.cer").read_bytes())
    foreign = b"not the kit's file\n"
    (certs / f"{A}.{which}").write_bytes(foreign)
    run, spy = _run(lab, tmp, "outbound", params, A, certs=certs)
    assert not run.ok, "outbound overwrote an existing artifact"
    text = run.error_text()
    assert f"{A}.{which} exists with other contents" in text and "never overwrites" in text, text
    assert "move it away" in text and "fresh certificate_dir" in text, text
    assert (certs / f"{A}.{which}").read_bytes() == foreign
    assert spy.kit_statements == []           # the instance is configured: only the export was left
    if which == "cer":
        assert not (certs / f"{A}.json").exists()
    # what the message says: move it away, run again — then the artifact is written
    (certs / f"{A}.{which}").rename(certs / f"{A}.{which}.moved")
    run, _ = _run(lab, tmp, "outbound", params, A, certs=certs)
    assert run.ok, run.describe()
    assert (certs / f"{A}.cer").read_bytes() == (good / f"{A}.cer").read_bytes()
    assert json.loads((certs / f"{A}.json").read_text())["thumbprint"] == \
        json.loads((good / f"{A}.json").read_text())["thumbprint"]
    # identical files are fine: a second run leaves them as they are
    run, _ = _run(lab, tmp, "outbound", params, A, certs=certs)
    assert run.ok, run.describe()
