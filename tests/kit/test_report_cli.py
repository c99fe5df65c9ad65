"""`mirrorkit report RUN_DIR [--check]` on the run folders of the shared lab (runner_helpers.shared_runs):
what changed on which instance, verify's verdict, thumbprints and expiry; --check on intact and on
tampered copies of a run folder (files are read-only after sealing, so tampering starts with chmod).
"""
from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from mirrorkit.notebook.records import read_records

from . import runbook_helpers as H
from . import runner_helpers as R

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def shared(request, tmp_path_factory) -> R.SharedRuns:
    return R.shared_runs(request, tmp_path_factory)


def _copy(shared, run_dir: Path, name: str) -> Path:
    dst = shared.scratch(name) / "run"
    shutil.copytree(run_dir, dst)
    return dst


def _writable(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _no_traceback(proc) -> None:
    assert "Traceback (most recent call last)" not in proc.stderr, R.describe(proc)


# ---------------------------------------------------------------------------------------------
# the summary
# ---------------------------------------------------------------------------------------------

def test_report_says_what_changed_on_which_instance(shared):
    run_dir = shared.apply.outcome.run_dir
    proc = R.cli("report", str(run_dir))
    assert proc.returncode == 0, R.describe(proc)
    _no_traceback(proc)
    out = proc.stdout
    assert "mode apply" in out and "ok (exit 0)" in out
    lines = out.splitlines()
    changed = 0
    for stem in R.step_stems(R.APPLY_ORDER):
        for s in read_records(run_dir / f"{stem}.ipynb").get("statement", []):
            assert s["ok"]
            assert f"changed {s['instance']}: {s['establishes']}" in out, (stem, s["establishes"])
            changed += 1
    assert changed == sum(1 for ln in lines if ln.strip().startswith("changed "))
    for name in R.NAMES:
        assert f"changed {name}: endpoint Mirroring on port 5022, STARTED" in out
        assert any(ln.strip().startswith(f"changed {name}: ") and "CONNECT on Mirroring" in ln for ln in lines), name


def test_report_gives_verify_verdict_thumbprints_and_expiry(shared):
    run_dir = shared.apply.outcome.run_dir
    out = R.cli("report", str(run_dir)).stdout
    verdict = read_records(run_dir / "07-verify.ipynb")["verify"][-1]
    assert f"verify: {verdict['status']}" in out
    assert verdict["status"] in ("PASS", "WARN")
    assert "trust matrix: 6/6 pairs OK" in out
    for name in R.NAMES:
        info = json.loads((run_dir / "certificates" / f"{name}.json").read_text(encoding="utf-8"))
        live = H.thumbprint_of(shared.lab[name], f"{name}_dbm_cert")
        assert info["thumbprint"].upper() == "0X" + live.hex().upper()
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"{name}: {name}_dbm_cert thumbprint"))
        assert "0x" + live.hex().upper() in line, line
        assert f"expires {info['not_after'][:19]}" in line, line
        expiry = next(ln for ln in out.splitlines()
                      if ln.strip().startswith(f"{name}: {name}_dbm_cert expires") and "days)" in ln)
        assert info["not_after"][:10] in expiry, expiry


def test_report_of_a_second_apply_says_nothing_changed(shared):
    out = R.cli("report", str(shared.again.outcome.run_dir)).stdout
    assert not any(ln.strip().startswith("changed ") for ln in out.splitlines()), out
    assert out.count("nothing to change") == 6, out
    assert "verify: PASS" in out or "verify: WARN" in out


def test_report_of_a_plan_run_shows_what_would_change(shared):
    out = R.cli("report", str(shared.plan.outcome.run_dir)).stdout
    assert "mode plan" in out
    assert not any(ln.strip().startswith("changed ") for ln in out.splitlines()), out
    assert out.count("3 statement(s) planned (not applied)") >= 3, out      # outbound on each instance
    assert "verify:" not in out


def test_report_of_a_folder_that_is_not_a_run_exits_2(shared):
    d = shared.scratch("not-a-run")
    proc = R.cli("report", str(d))
    assert proc.returncode == 2, R.describe(proc)
    assert "no manifest.json" in proc.stderr
    _no_traceback(proc)


# ---------------------------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["plan", "apply", "again"])
def test_check_passes_on_an_intact_run(shared, which):
    run_dir = getattr(shared, which).outcome.run_dir
    proc = R.cli("report", str(run_dir), "--check")
    assert proc.returncode == 0, R.describe(proc)
    assert "check: intact" in proc.stdout
    assert "CHECK FAILED" not in proc.stdout


def test_check_fails_naming_an_edited_record(shared):
    run_dir = _copy(shared, shared.apply.outcome.run_dir, "edited")
    target = run_dir / "04-inbound-PARTNER_A.ipynb"
    assert target.stat().st_mode & 0o222 == 0            # sealed files are read-only: chmod first
    _writable(target)
    text = target.read_text(encoding="utf-8")
    forged = text.replace("CONNECT on Mirroring for PARTNER_B_dbm_login", "CONNECT on Mirroring for PARTNER_B_dbm_logon")
    assert forged != text
    target.write_text(forged, encoding="utf-8")
    proc = R.cli("report", str(run_dir), "--check")
    assert proc.returncode == 1, R.describe(proc)
    _no_traceback(proc)
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK FAILED")]
    assert failed == ["CHECK FAILED: changed after sealing: 04-inbound-PARTNER_A.ipynb"], proc.stdout


def test_check_fails_naming_an_added_file(shared):
    run_dir = _copy(shared, shared.apply.outcome.run_dir, "added")
    (run_dir / "certificates" / "ROGUE.cer").write_bytes(b"not a certificate")
    proc = R.cli("report", str(run_dir), "--check")
    assert proc.returncode == 1, R.describe(proc)
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK FAILED")]
    assert failed == ["CHECK FAILED: not in the manifest: certificates/ROGUE.cer"], proc.stdout


def test_check_fails_naming_a_deleted_html(shared):
    run_dir = _copy(shared, shared.apply.outcome.run_dir, "deleted-html")
    (run_dir / "07-verify.html").unlink()
    proc = R.cli("report", str(run_dir), "--check")
    assert proc.returncode == 1, R.describe(proc)
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK FAILED")]
    assert failed == ["CHECK FAILED: missing: 07-verify.html"], proc.stdout


def test_check_fails_naming_a_deleted_notebook(shared):
    """A deleted record notebook is reported like any other missing file (the summary must not crash on
    it before the check has said what is wrong)."""
    run_dir = _copy(shared, shared.apply.outcome.run_dir, "deleted-notebook")
    (run_dir / "04-inbound-PARTNER_A.ipynb").unlink()
    proc = R.cli("report", str(run_dir), "--check")
    _no_traceback(proc)
    assert proc.returncode == 1, R.describe(proc)
    assert "CHECK FAILED: missing: 04-inbound-PARTNER_A.ipynb" in proc.stdout, R.describe(proc)
