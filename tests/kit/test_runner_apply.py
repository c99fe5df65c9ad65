"""`mirrorkit run` on a mirroring lab (PARTNER_A, PARTNER_B, WITNESS): apply, a second apply, plan, --jobs 2.

The shared lab (runner_helpers.shared_runs) is run three times in this process with
mirrorkit.runner.run — plan on the fresh lab, apply, apply again — and every test here reads those run
folders and the catalogs taken through the client stack before and after each run. --jobs 2 runs on a
second, fresh lab and must reach the same end state.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import socket
from pathlib import Path

import pytest

import mirrorkit
from mirrorkit.config import parameters as params
from mirrorkit.notebook.records import read_records

from . import runbook_helpers as H
from . import runner_helpers as R

pytestmark = pytest.mark.timeout(600)

HIDDEN_SOURCES = ("rb.start(", "run.snapshot(", "run.plan()", "run.gate()", "run.apply()", "run.seal()",
                  "run.verify()", "run.conclude()")


@pytest.fixture(scope="module")
def shared(request, tmp_path_factory) -> R.SharedRuns:
    return R.shared_runs(request, tmp_path_factory)


def _expected_files(order, *, certificates: bool) -> list[str]:
    files = ["manifest.json"]
    for stem in R.step_stems(order):
        files += [f"{stem}.ipynb", f"{stem}.html"]
    if certificates:
        files += [f"certificates/{n}.{ext}" for n in R.NAMES for ext in ("cer", "json")]
    return sorted(files)


# ---------------------------------------------------------------------------------------------
# apply
# ---------------------------------------------------------------------------------------------

def test_apply_exits_0_with_every_step_in_the_documented_order(shared):
    out = shared.apply.outcome
    assert out.exit_code == 0, "\n".join(shared.apply.log)
    assert out.status == "ok"
    assert [(r.spec.notebook, r.spec.target) for r in out.results] == R.APPLY_ORDER
    assert R.files_of(out.run_dir) == _expected_files(R.APPLY_ORDER, certificates=True)
    steps = R.manifest(out.run_dir)["steps"]
    assert [(s["notebook"], s["target"]) for s in steps] == R.APPLY_ORDER
    assert [s["index"] for s in steps] == list(range(1, 8))
    assert [s["stage"] for s in steps] == [1, 1, 1, 2, 2, 3, 4]
    # one job: each step starts after the one before it ended
    for a, b in zip(steps, steps[1:]):
        assert a["ended"] <= b["started"], (a, b)


def test_apply_manifest_records_every_step_and_every_file(shared):
    run_dir = shared.apply.outcome.run_dir
    m = R.manifest(run_dir)
    assert m["status"] == "ok" and m["exit_code"] == 0 and m["sealed"] is True
    assert m["secret_found_in"] == []
    assert m["mode"] == "apply" and m["environment"] == "runner" and m["change_id"] is None
    assert m["kit_version"] == mirrorkit.__version__
    assert m["operator"] == getpass.getuser()
    assert m["host"] == socket.gethostname()
    assert m["parameter_digest"] == params.load(shared.params).digest()
    assert m["parameter_file_sha256"] == hashlib.sha256(shared.params.read_bytes()).hexdigest()
    assert m["started"] <= m["ended"]
    for s in m["steps"]:
        assert s["status"] == "ok" and s["exit_code"] == 0, s
        assert s["error"] is None and s["failure"] is None, s
        assert isinstance(s["duration_s"], (int, float)) and 0 < s["duration_s"] < 120, s
        assert s["started"] and s["ended"] and s["started"] <= s["ended"], s
        assert (run_dir / s["notebook_file"]).is_file() and (run_dir / s["html_file"]).is_file(), s
    on_disk = [f for f in R.files_of(run_dir) if f != "manifest.json"]
    assert sorted(m["files"]) == on_disk
    for rel, digest in m["files"].items():
        assert hashlib.sha256((run_dir / rel).read_bytes()).hexdigest() == digest, rel


def test_apply_run_folder_is_read_only(shared):
    for p in Path(shared.apply.outcome.run_dir).rglob("*"):
        if p.is_file():
            assert p.stat().st_mode & 0o222 == 0, f"{p} is writable"


def test_apply_notebooks_carry_their_true_outcome(shared):
    run_dir = shared.apply.outcome.run_dir
    for (notebook, target), stem in zip(R.APPLY_ORDER, R.step_stems(R.APPLY_ORDER)):
        nb = R.read_nb(run_dir / f"{stem}.ipynb")
        mk = nb.metadata["mirrorkit"]
        assert mk["status"] == "ok" and mk["exit_code"] == 0, (stem, mk)
        assert (mk["notebook"], mk["target"]) == (notebook, target)
        assert mk["kit_version"] == mirrorkit.__version__
        assert not any("mirrorkit-outcome" in c.metadata.get("tags", []) for c in nb.cells), stem
        recs = read_records(run_dir / f"{stem}.ipynb")
        assert recs.get("seal"), f"{stem} has no seal record"


def test_each_record_comes_from_a_fresh_kernel_that_left_no_trace(shared):
    """The runner's kernels are started ahead and preloaded silently: a record must
    still look like papermill's own run in a new kernel — cells numbered from 1, no stray stream output
    (such as a start-up warning), and every kernel a different process."""
    run_dir = shared.apply.outcome.run_dir
    pids = set()
    for stem in R.step_stems(R.APPLY_ORDER):
        nb = R.read_nb(run_dir / f"{stem}.ipynb")
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), stem
        streams = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "stream"]
        assert not streams, (stem, [o["text"][:200] for o in streams])
        pids.add(read_records(run_dir / f"{stem}.ipynb")["run_header"][0]["process_id"])
    assert len(pids) == len(R.APPLY_ORDER)


def test_apply_records_hold_no_secret(shared):
    secrets = [R.sa_password(), R.DMK_PASSWORD]
    for p in Path(shared.apply.outcome.run_dir).rglob("*"):
        if p.is_file():
            data = p.read_text(encoding="utf-8", errors="replace")
            for s in secrets:
                assert s not in data and json.dumps(s)[1:-1] not in data, f"a secret is in {p.name}"


def test_html_shows_the_tsql_and_hides_the_plumbing(shared):
    run_dir = shared.apply.outcome.run_dir
    texts = {stem: R.html_text(run_dir / f"{stem}.html") for stem in R.step_stems(R.APPLY_ORDER)}
    outbound = texts["01-outbound-PARTNER_A"]
    assert "CREATE ENDPOINT [Mirroring]" in outbound
    assert "CREATE CERTIFICATE [PARTNER_A_dbm_cert]" in outbound
    assert "CREATE MASTER KEY ENCRYPTION BY PASSWORD = N'********'" in outbound
    assert "GRANT CONNECT ON ENDPOINT::[Mirroring]" in texts["04-inbound-PARTNER_A"]
    assert "Verdict" in texts["07-verify"]
    for stem, text in texts.items():
        for source in HIDDEN_SOURCES:
            assert source not in text, f"{stem}.html shows the plumbing code {source!r}"
        # the inputs stay visible: the parameter file and the digest of its bytes (the parameters), and
        # the effective configuration the kit read from it (references only)
        assert str(shared.params.absolute()) in text, stem
        assert hashlib.sha256(shared.params.read_bytes()).hexdigest() in text, stem
        assert f"env:{R.ENV_SA}" in text, stem


def test_certificate_artifacts_are_in_the_run_folder_and_match_the_lab(shared):
    run_dir = shared.apply.outcome.run_dir
    for name in R.NAMES:
        cer, meta = run_dir / "certificates" / f"{name}.cer", run_dir / "certificates" / f"{name}.json"
        assert cer.read_bytes() == (shared.certs / f"{name}.cer").read_bytes()
        info = json.loads(meta.read_text(encoding="utf-8"))
        live = H.thumbprint_of(shared.lab[name], f"{name}_dbm_cert")
        assert info["thumbprint"].upper() == "0X" + live.hex().upper(), name
        assert info["sha256"] == hashlib.sha256(cer.read_bytes()).hexdigest()


def test_apply_established_the_trust(shared):
    for name in R.NAMES:
        cat = shared.after_apply[name]
        assert [e["state"] for e in cat["endpoints"]] == ["STARTED"], name
        assert cat["endpoints"][0]["certificate"] == f"{name}_dbm_cert"
    pairs = [("PARTNER_A", "PARTNER_B", "PARTNER"), ("PARTNER_B", "PARTNER_A", "PARTNER"),
             ("PARTNER_A", "WITNESS", "WITNESS"), ("PARTNER_B", "WITNESS", "WITNESS")]
    assert H.probe_failures(shared.lab, pairs) == []
    verdict = read_records(shared.apply.outcome.run_dir / "07-verify.ipynb")["verify"][-1]
    assert verdict["status"] in ("PASS", "WARN"), verdict["status"]


def test_second_apply_changes_nothing(shared):
    again = shared.again.outcome
    assert again.exit_code == 0, "\n".join(shared.again.log)
    assert shared.after_again == shared.after_apply
    for (notebook, _), stem in zip(R.APPLY_ORDER, R.step_stems(R.APPLY_ORDER)):
        recs = read_records(again.run_dir / f"{stem}.ipynb")
        assert recs.get("statement", []) == [], f"{stem} ran statements on the second apply"
        if notebook != "verify":
            planned = [s for plan in recs["plan"][-1] for s in plan["steps"]]
            assert planned == [], f"{stem} planned {planned}"
    assert R.manifest(again.run_dir)["sealed"] is True


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------

def test_plan_exits_0_changes_nothing_and_has_no_verify_step(shared):
    out = shared.plan.outcome
    assert out.exit_code == 0, "\n".join(shared.plan.log)
    assert shared.after_plan == shared.fresh, "plan mode changed the lab"
    assert [(r.spec.notebook, r.spec.target) for r in out.results] == R.PLAN_ORDER
    m = R.manifest(out.run_dir)
    assert m["mode"] == "plan" and m["sealed"] is True
    assert all(s["notebook"] != "verify" for s in m["steps"])
    assert R.files_of(out.run_dir) == _expected_files(R.PLAN_ORDER, certificates=False)
    for stem in R.step_stems(R.PLAN_ORDER):
        nb_path = out.run_dir / f"{stem}.ipynb"
        assert R.read_nb(nb_path).metadata["mirrorkit"]["status"] == "ok"
        recs = read_records(nb_path)
        assert recs.get("statement", []) == [], stem
        assert recs["gate"][-1]["apply"] is False, stem
    # what outbound would do on the fresh lab is shown as T-SQL
    assert "CREATE ENDPOINT [Mirroring]" in R.html_text(out.run_dir / "01-outbound-PARTNER_A.html")


# ---------------------------------------------------------------------------------------------
# --jobs 2
# ---------------------------------------------------------------------------------------------

def test_jobs_2_reaches_the_same_end_state(shared, tmp_path):
    lab = H.start_lab(tmp_path / "lab", *R.NAMES)
    try:
        with pytest.MonkeyPatch.context() as mp:
            R.secret_environ(mp)
            p = R.write_params(tmp_path, R.parameter_values(lab))
            timed = R.run(p, mode="apply", out=tmp_path / "runs", certificate_dir=tmp_path / "certs", jobs=2)
        out = timed.outcome
        assert out.exit_code == 0, "\n".join(timed.log)
        m = R.manifest(out.run_dir)
        assert [(s["notebook"], s["target"], s["status"]) for s in m["steps"]] == \
            [(nb, t, "ok") for nb, t in R.APPLY_ORDER]
        assert R.files_of(out.run_dir) == _expected_files(R.APPLY_ORDER, certificates=True)
        # a stage never starts before the one before it has ended
        stages: dict[int, list[dict]] = {}
        for s in m["steps"]:
            stages.setdefault(s["stage"], []).append(s)
        for k in sorted(stages)[1:]:
            assert max(s["ended"] for s in stages[k - 1]) <= min(s["started"] for s in stages[k]), k
        for name in R.NAMES:
            assert H.comparable(H.catalog(lab[name])) == H.comparable(shared.after_apply[name]), name
    finally:
        lab.stop_all()
