"""verify as an operator runs it: notebooks/verify.ipynb under papermill and `python -m mirrorkit verify`.

* After the full runbook (two partners and the witness, configured in process) the notebook passes: papermill
  succeeds, the `verify` record says PASS with every pair of the matrix OK; the CLI exits 0.
* Any FAIL fails the notebook (papermill raises) and makes the CLI exit 1; a WARN alone exits 0; invalid
  parameters exit 2 before anything is checked.
* verify is read-only: every catalog view (sys.dm_* live views and the error log aside) reads the same on
  every instance before and after it ran — through the notebook on the configured lab, and in process on a
  lab with several faults.
"""
from __future__ import annotations

import json

import pytest

from tests.kit import verify_helpers as vh

A, B, W = "PARTNER_A", "PARTNER_B", "WITNESS"


@pytest.fixture(scope="module")
def operator_lab(tmp_path_factory):
    d = tmp_path_factory.mktemp("verify-operator")
    cl = vh.configured_lab(d, vh.MIRRORING)
    params_file = vh.write_parameter_file(d / "params.yaml", cl.values)
    yield cl, params_file, d
    cl.close()
    cl.lab.stop_all()


def catalogs(cl) -> dict:
    return {n: vh.full_catalog(cl[n]) for n in cl.names}


def catalog_diff(before: dict, after: dict) -> list[str]:
    out = []
    for inst in before:
        for view in sorted(set(before[inst]) | set(after[inst])):
            if before[inst].get(view) != after[inst].get(view):
                b, a = before[inst].get(view, ([], []))[1], after[inst].get(view, ([], []))[1]
                out.append(f"{inst} {view}: removed {[r for r in b if r not in a]}, added {[r for r in a if r not in b]}")
    return out


def test_every_catalog_view_is_compared():
    views = dict(vh.catalog_views())
    for v in ("certificates", "database_mirroring_endpoints", "tcp_endpoints", "endpoints", "server_principals",
              "server_permissions", "database_principals", "symmetric_keys", "key_encryptions", "databases"):
        assert v in views, sorted(views)
    assert not any(v.startswith("dm_") for v in views)


def test_notebook_passes_after_the_full_runbook_and_changes_nothing(operator_lab):
    cl, _, d = operator_lab
    before = catalogs(cl)
    nb = vh.run_verify_notebook(cl, d / "notebook-pass")
    after = catalogs(cl)
    assert nb.ok, f"papermill failed: {nb.error}"
    rec = nb.verify_record()
    assert rec is not None, sorted(nb.records)
    assert rec["status"] == "PASS", json.dumps([f for f in rec["findings"] if f["status"] != "PASS"], indent=1)
    cells = {(m["initiator"], m["acceptor"]): m["result"] for m in rec["matrix"]}
    assert set(cells) == set(cl.pairs()) and len(cells) == 6, cells
    assert all(r == "OK" for r in cells.values()), cells
    passed = {(f["peer"], f["instance"]) for f in rec["findings"] if f["check"] == "P00" and f["status"] == "PASS"}
    assert passed == set(cl.pairs()), passed          # every pair PASS (peer = initiator, instance = acceptor)
    assert "seal" in nb.records
    assert not catalog_diff(before, after), "verify (notebook) changed the catalog:\n" + "\n".join(
        catalog_diff(before, after))


@pytest.fixture(scope="module")
def failed_notebook(operator_lab):
    """The verify notebook run on the configured lab with one fault: PARTNER_B revoked CONNECT from
    PARTNER_A's login."""
    cl, _, d = operator_lab
    fault = vh.make("revoke_connect", B, A)
    fault.apply(cl)
    try:
        nb = vh.run_verify_notebook(cl, d / "notebook-fail")
    finally:
        fault.undo(cl)
    vh.assert_passes(cl.verdict(), "after the undo")
    return nb


def test_notebook_fails_on_a_fault_and_names_it(failed_notebook):
    nb = failed_notebook
    assert not nb.ok, "the notebook passed although a check FAILs"
    rec = nb.verify_record()
    assert rec is not None and rec["status"] == "FAIL", rec
    named = [f for f in rec["findings"] if (f["check"], f["instance"], f["peer"], f["status"])
             == ("P11", B, A, "FAIL")]
    assert named, json.dumps([f for f in rec["findings"] if f["status"] != "PASS"], indent=1)
    assert named[0]["remediation_sql"] and named[0]["remediation_instance"] == B, named
    cells = {(m["initiator"], m["acceptor"]): m["result"] for m in rec["matrix"]}
    assert {k for k, v in cells.items() if v != "OK"} == {(A, B)}, cells
    assert "seal" in nb.records        # the verdict cell comes after the seal: the record is complete


def test_failed_notebook_shows_why_it_failed(failed_notebook):
    """The executed notebook is the change record: its failing verdict cell shows the reason
    (RunbookError "verify failed: … P11 …"), not an empty error."""
    nb = failed_notebook
    shown = nb.shown_error()
    assert "verify failed" in shown and "P11" in shown, (
        f"the failing notebook does not show the reason; papermill: {nb.error!r}; "
        f"its outputs end with:\n{shown[-600:]}")


def test_cli_exits_0_when_verify_passes(operator_lab, tmp_path):
    cl, params_file, _ = operator_lab
    out = tmp_path / "verdict.json"
    proc = vh.run_cli(params_file, "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ": PASS" in proc.stdout.splitlines()[0], proc.stdout
    rec = json.loads(out.read_text())
    assert rec["status"] == "PASS" and len(rec["matrix"]) == 6
    assert all(m["result"] == "OK" for m in rec["matrix"]), rec["matrix"]
    assert vh.sa_password() not in proc.stdout + proc.stderr + out.read_text()


def test_cli_exits_1_on_a_fail(operator_lab, tmp_path):
    cl, params_file, _ = operator_lab
    fault = vh.make("endpoint_stopped", W)
    fault.apply(cl)
    try:
        out = tmp_path / "verdict.json"
        proc = vh.run_cli(params_file, "--json", str(out))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "FAIL I04 WITNESS" in proc.stdout, proc.stdout
        rec = json.loads(out.read_text())
        assert rec["status"] == "FAIL"
        assert {(m["initiator"], m["acceptor"]) for m in rec["matrix"] if m["result"] != "OK"} == \
            {(A, W), (B, W), (W, A), (W, B)}, rec["matrix"]
    finally:
        fault.undo(cl)


def test_cli_exits_0_on_a_warn(operator_lab):
    cl, params_file, _ = operator_lab
    fault = vh.make("expiring_certificate", A)
    fault.apply(cl)
    try:
        proc = vh.run_cli(params_file)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert ": WARN" in proc.stdout.splitlines()[0], proc.stdout
        assert "WARN I10 PARTNER_A" in proc.stdout, proc.stdout
    finally:
        fault.undo(cl)
    vh.assert_passes(cl.verdict(), "after the undo")


@pytest.mark.parametrize("change", ["unknown key", "bad port", "no instances"])
def test_cli_exits_2_on_invalid_parameters(operator_lab, tmp_path, change):
    cl, _, _ = operator_lab
    values = json.loads(json.dumps(cl.values))
    if change == "unknown key":
        values["endpoint"]["prot"] = 5022
    elif change == "bad port":
        values["endpoint"]["port"] = "fifty"
    else:
        values["instances"] = []
    params_file = vh.write_parameter_file(tmp_path / "bad.yaml", values)
    proc = vh.run_cli(params_file)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "invalid parameters" in proc.stderr, proc.stderr
    assert proc.stdout == "", proc.stdout


def test_in_process_verify_on_a_broken_lab_changes_nothing(operator_lab):
    cl, _, _ = operator_lab
    faults = [vh.make("endpoint_stopped", W), vh.make("foreign_owner", B, A),
              vh.make("master_key_without_service_key", A), vh.make("disable_login", A, B),
              vh.make("expired_certificate", B)]
    for f in faults:
        f.apply(cl)
    try:
        before = catalogs(cl)
        cl.close()                       # verify with fresh connections, as the notebook and the CLI do
        verdict = cl.verdict()
        assert verdict.failed
        after = catalogs(cl)
        assert not catalog_diff(before, after), "verify changed the catalog:\n" + "\n".join(catalog_diff(before, after))
    finally:
        for f in reversed(faults):
            f.undo(cl)
    vh.assert_passes(cl.verdict(), "after the undo")
