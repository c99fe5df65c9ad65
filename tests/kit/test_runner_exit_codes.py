"""`mirrorkit run` exit codes: 2 invalid parameters, 1 a failing step, 3 a secret found at sealing,
4 a cell timeout, 5 a dead kernel — each with what the run folder and manifest must then say.

All runs go against the shared lab of runner_helpers (already configured by its apply run), in this
process with mirrorkit.runner.run or on the command line with `python -m mirrorkit run`.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mirrorkit.execution import runner
from mirrorkit.notebook.records import read_records

from . import runbook_helpers as H
from . import runner_helpers as R

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def shared(request, tmp_path_factory) -> R.SharedRuns:
    return R.shared_runs(request, tmp_path_factory)


# ---------------------------------------------------------------------------------------------
# 2: invalid parameters — nothing runs, no run folder, no statement (not even a login) on the lab
# ---------------------------------------------------------------------------------------------

def _bad_yaml(shared, d: Path) -> Path:
    text = R.write_params(d, R.parameter_values(shared.lab)).read_text(encoding="utf-8")
    assert "\n  port: 5022\n" in text
    path = d / "bad.yaml"
    path.write_text(text.replace("\n  port: 5022\n", "\n  port: [5022\n", 1), encoding="utf-8")   # unclosed [
    return path


def _unknown_key(shared, d: Path) -> Path:
    values = R.parameter_values(shared.lab)
    values["endpoint"]["listener_port"] = 5022          # the key is `port`
    return R.write_params(d, values, "unknown.yaml")


def _unresolvable_secret(shared, d: Path) -> Path:
    values = R.parameter_values(shared.lab, secrets={"master_key_password": "env:MK_RUN_NOT_SET_ANYWHERE"})
    return R.write_params(d, values, "unresolvable.yaml")


INVALID = {"bad_yaml": _bad_yaml, "unknown_key": _unknown_key, "unresolvable_env_secret": _unresolvable_secret}
# what the message must name so that the operator can fix it
MESSAGE = {"bad_yaml": "not valid YAML", "unknown_key": "endpoint.listener_port",
           "unresolvable_env_secret": "MK_RUN_NOT_SET_ANYWHERE"}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_parameters_exit_2_before_anything_runs(shared, case, monkeypatch):
    monkeypatch.delenv("MK_RUN_NOT_SET_ANYWHERE", raising=False)
    d = shared.scratch(f"invalid-{case}")
    path = INVALID[case](shared, d)
    with H.SessionSpy(list(shared.lab.instances.values())) as spy:
        timed = R.run(path, mode="apply", out=d / "runs", certificate_dir=d / "certs")
    out = timed.outcome
    assert out.exit_code == runner.INVALID_PARAMETERS == 2, out.message
    assert out.status == "invalid_parameters" and out.run_dir is None
    assert MESSAGE[case] in out.message, out.message
    assert not (d / "runs").exists() and not (d / "certs").exists()
    assert spy.kit_logins == [] and spy.batches == [], "the runner reached the lab with invalid parameters"


@pytest.mark.parametrize("case", ["bad_yaml", "unresolvable_env_secret"])
def test_cli_invalid_parameters_exit_2(shared, case, monkeypatch):
    monkeypatch.delenv("MK_RUN_NOT_SET_ANYWHERE", raising=False)
    d = shared.scratch(f"cli-invalid-{case}")
    path = INVALID[case](shared, d)
    with H.SessionSpy(list(shared.lab.instances.values())) as spy:
        proc = R.cli("run", str(path), "--mode", "apply", "--out", str(d / "out"), cwd=d)
    assert proc.returncode == 2, R.describe(proc)
    assert "mirrorkit run:" in proc.stderr and MESSAGE[case] in proc.stderr, R.describe(proc)
    assert not (d / "out").exists() and not (d / "runs").exists()
    assert spy.kit_logins == []


# ---------------------------------------------------------------------------------------------
# 1: a step fails — later stages are skipped, the run is still sealed
# ---------------------------------------------------------------------------------------------

WRONG_ENV = "MK_RUN_WRONG_SA"
WRONG_PASSWORD = "Not-The-Sa-Passw0rd!"


@pytest.fixture(scope="module")
def failing(shared):
    """`mirrorkit run --mode apply` (one job) where PARTNER_B's connection password points to a variable
    holding a wrong password: outbound on PARTNER_B, the second step, cannot log in."""
    d = shared.scratch("failing-step")
    values = R.parameter_values(shared.lab, instance_overrides={
        "PARTNER_B": {"connection": {"password": f"env:{WRONG_ENV}"}}})
    path = R.write_params(d, values)
    proc = R.cli("run", str(path), "--mode", "apply", "--out", str(d / "out"), cwd=d,
                 env={WRONG_ENV: WRONG_PASSWORD})
    runs = list((d / "out").iterdir()) if (d / "out").exists() else []
    return proc, (runs[0] if len(runs) == 1 else None)


def test_failing_step_exits_1_and_skips_later_stages(failing):
    proc, run_dir = failing
    assert proc.returncode == runner.STEP_FAILED == 1, R.describe(proc)
    assert run_dir is not None
    m = R.manifest(run_dir)
    assert m["status"] == "failed" and m["exit_code"] == 1 and m["sealed"] is True
    by_step = {(s["notebook"], s["target"]): s for s in m["steps"]}
    assert [(s["notebook"], s["target"]) for s in m["steps"]] == R.APPLY_ORDER
    failed = by_step[("outbound", "PARTNER_B")]
    assert failed["status"] == "failed" and failed["exit_code"] == 1, failed
    assert failed["failure"] and failed["failure"]["ename"], failed
    assert failed["notebook_file"] == "02-outbound-PARTNER_B.ipynb"
    assert by_step[("outbound", "PARTNER_A")]["status"] == "ok"
    for key in R.APPLY_ORDER[3:]:                      # inbound x2, witness, verify
        s = by_step[key]
        assert s["status"] == "skipped" and s["exit_code"] is None, s
        assert s["notebook_file"] is None and s["html_file"] is None, s
    assert not any(f.startswith(("04-", "05-", "06-", "07-")) for f in R.files_of(run_dir))
    nb = R.read_nb(run_dir / "02-outbound-PARTNER_B.ipynb")
    assert nb.metadata["mirrorkit"]["status"] == "failed"
    assert nb.metadata["mirrorkit"]["exit_code"] == 1
    # the wrong password never reaches a record
    for p in run_dir.rglob("*"):
        if p.is_file():
            assert WRONG_PASSWORD not in p.read_text(encoding="utf-8", errors="replace"), p.name
    check = R.cli("report", str(run_dir), "--check")
    assert check.returncode == 0, R.describe(check)     # a failed run is still a sealed, intact record
    assert "failed" in check.stdout


def test_one_job_stops_at_the_first_failing_step(failing):
    """With --jobs 1 the steps run one after the other, and the runner stops at the first failure
    (runner.py: "stopping at the first failure"; reference §1.7/§8: stop at the first non-success): outbound
    on WITNESS, the step after the failed one, must not run (it would change an instance after a failure)."""
    proc, run_dir = failing
    assert run_dir is not None, R.describe(proc)
    steps = {s["index"]: s for s in R.manifest(run_dir)["steps"]}
    assert steps[2]["status"] == "failed"
    assert steps[3]["status"] == "skipped", f"step 3 (outbound WITNESS) ran after step 2 failed: {steps[3]}"
    assert not (run_dir / "03-outbound-WITNESS.ipynb").exists()


def test_failed_step_records_why_it_failed(failing):
    """The manifest, the stamped notebook and `mirrorkit report` say why the step failed (here: PARTNER_B
    refused the login), not just that a cell failed."""
    proc, run_dir = failing
    assert run_dir is not None, R.describe(proc)
    step = R.manifest(run_dir)["steps"][1]
    failure = step["failure"] or {}
    assert failure.get("ename") not in (None, "", "CellExecutionError"), failure
    assert "PARTNER_B" in (failure.get("evalue") or ""), failure
    nb = R.read_nb(run_dir / "02-outbound-PARTNER_B.ipynb")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and "PARTNER_B" in errors[0].get("evalue", ""), "the failing cell shows no error"
    report = R.cli("report", str(run_dir))
    line = next(ln for ln in report.stdout.splitlines() if ln.strip().startswith("error:"))
    assert "PARTNER_B" in line, report.stdout


# ---------------------------------------------------------------------------------------------
# 3: a secret found at sealing
# ---------------------------------------------------------------------------------------------

def test_secret_found_at_sealing_exits_3_and_names_the_file_not_the_secret(shared):
    """The master key password is set to `run.seal()`, text that is certainly in every executed notebook
    (the source of its Seal cell, tools/build_notebooks.py SEAL) and never in the HTML (that cell's input
    is hidden) nor in a file name. The runner resolves every secret reference before it runs (even one the
    plan does not use), so its seal scan must find that value in the .ipynb and refuse to seal. Run on the
    command line so that this value never enters this test process's secret registry."""
    secret = "run.seal()"
    d = shared.scratch("secret-found")
    path = R.write_params(d, R.parameter_values(shared.lab))
    proc = R.cli("run", str(path), "--mode", "plan", "--only", "outbound", "--target", "PARTNER_A",
                 "--out", str(d / "out"), cwd=d, env={R.ENV_DMK: secret})
    assert proc.returncode == runner.SECRET_FOUND == 3, R.describe(proc)
    (run_dir,) = list((d / "out").iterdir())
    manifest_text = (run_dir / "manifest.json").read_text(encoding="utf-8")
    m = json.loads(manifest_text)
    assert m["status"] == "secret_found" and m["exit_code"] == 3 and m["sealed"] is False
    assert "01-outbound-PARTNER_A.ipynb" in m["secret_found_in"]
    assert secret in (run_dir / "01-outbound-PARTNER_A.ipynb").read_text(encoding="utf-8")
    for p in R.files_of(run_dir):          # the scan is exact: the files it names, and only those, hold it
        if p != "manifest.json":
            assert (secret in (run_dir / p).read_text(encoding="utf-8", errors="replace")) == \
                (p in m["secret_found_in"]), p
    assert secret not in manifest_text
    assert secret not in proc.stdout and secret not in proc.stderr
    assert "01-outbound-PARTNER_A.ipynb" in proc.stdout          # the log names the file
    check = R.cli("report", str(run_dir), "--check")
    assert check.returncode == 1, R.describe(check)
    assert "not sealed" in check.stdout and "01-outbound-PARTNER_A.ipynb" in check.stdout
    assert secret not in check.stdout


# ---------------------------------------------------------------------------------------------
# 4 and 5: a cell that times out, a kernel that dies — papermill leaves both looking successful
# ---------------------------------------------------------------------------------------------

def _broken_run(shared, monkeypatch, name: str, source: str, **kw):
    d = shared.scratch(name)
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", R.notebook_dir_with_cell(d / "notebooks", "outbound", source))
    return d, R.run(shared.params, mode="plan", only="outbound", target="PARTNER_A", out=d / "runs",
                    certificate_dir=d / "certs", **kw)


def _assert_banner(nb, status: str, words: str) -> None:
    banners = [c for c in nb.cells if "mirrorkit-outcome" in c.metadata.get("tags", [])]
    assert len(banners) == 1, [c.metadata for c in nb.cells]
    assert nb.cells[0] is banners[0], "the outcome banner is not the first cell"
    assert banners[0].cell_type == "markdown"
    assert words in banners[0].source and status in banners[0].source


def test_cell_timeout_exits_4_and_is_stamped_timed_out(shared, monkeypatch):
    d, timed = _broken_run(shared, monkeypatch, "timeout", "import time\ntime.sleep(30)", cell_timeout=2)
    out = timed.outcome
    assert out.exit_code == runner.STEP_TIMED_OUT == 4, "\n".join(timed.log)
    assert out.status == "timed_out"
    assert timed.seconds < 25, f"the run took {timed.seconds:.1f} s: the 2 s cell timeout did not stop it"
    nb_path = out.run_dir / "01-outbound-PARTNER_A.ipynb"
    nb = R.read_nb(nb_path)
    assert nb.metadata["mirrorkit"]["status"] == "timed_out"
    assert nb.metadata["mirrorkit"]["exit_code"] == 4
    _assert_banner(nb, "timed_out", "a cell timed out")
    assert "seal" not in read_records(nb_path)
    m = R.manifest(out.run_dir)
    assert m["exit_code"] == 4 and m["status"] == "timed_out" and m["sealed"] is True
    assert m["steps"][0]["status"] == "timed_out" and m["steps"][0]["exit_code"] == 4
    assert "did not complete" in R.html_text(out.run_dir / "01-outbound-PARTNER_A.html")


def test_dead_kernel_exits_5_and_is_stamped_kernel_died(shared, monkeypatch):
    d, timed = _broken_run(shared, monkeypatch, "dead-kernel", "import os\nos._exit(1)")
    out = timed.outcome
    assert out.exit_code == runner.KERNEL_DIED == 5, "\n".join(timed.log)
    assert out.status == "kernel_died"
    nb_path = out.run_dir / "01-outbound-PARTNER_A.ipynb"
    nb = R.read_nb(nb_path)
    assert nb.metadata["mirrorkit"]["status"] == "kernel_died"
    assert nb.metadata["mirrorkit"]["exit_code"] == 5
    _assert_banner(nb, "kernel_died", "the kernel died")
    m = R.manifest(out.run_dir)
    assert m["exit_code"] == 5 and m["status"] == "kernel_died"
    assert m["steps"][0]["status"] == "kernel_died" and m["steps"][0]["exit_code"] == 5
    assert "did not complete" in R.html_text(out.run_dir / "01-outbound-PARTNER_A.html")


# ---------------------------------------------------------------------------------------------
# 130: Ctrl-C — the kernel in use is interrupted, nothing further starts, the run is sealed
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_interrupts_the_step_seals_the_run_and_exits_130(shared, monkeypatch, jobs):
    import signal
    import threading
    d = shared.scratch(f"interrupted-{jobs}")
    marker = d / "slow-cell-started"
    source = f"open({str(marker)!r}, 'w').close()\nimport time\ntime.sleep(60)"
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", R.notebook_dir_with_cell(d / "notebooks", "outbound", source))

    def press_ctrl_c():
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)
    before = signal.getsignal(signal.SIGINT)
    threading.Thread(target=press_ctrl_c, daemon=True).start()
    timed = R.run(shared.params, mode="plan", only="outbound", out=d / "runs", certificate_dir=d / "certs",
                  jobs=jobs)
    out = timed.outcome
    assert out.exit_code == runner.INTERRUPTED == 130, "\n".join(timed.log)
    assert timed.seconds < 40, f"the run took {timed.seconds:.1f} s: the interrupt did not stop the 60 s cell"
    assert signal.getsignal(signal.SIGINT) == before, "the runner left its SIGINT handler installed"
    m = R.manifest(out.run_dir)
    assert m["status"] == "interrupted" and m["exit_code"] == 130 and m["sealed"] is True
    # jobs 1: the one step in flight; jobs 2: both in flight (every outbound has the slow cell)
    in_flight = ["PARTNER_A", "PARTNER_B"][:jobs]
    assert [(s["target"], s["status"]) for s in m["steps"]] == \
        [(t, "interrupted" if t in in_flight else "skipped") for t in ("PARTNER_A", "PARTNER_B", "WITNESS")]
    nb = R.read_nb(out.run_dir / "01-outbound-PARTNER_A.ipynb")
    slow = next(c for c in nb.cells if c.get("id") == "runner-test-extra")
    errors = [o for o in slow.outputs if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "KeyboardInterrupt", slow.outputs   # the kernel got the SIGINT
    assert all(not c.get("outputs") for c in nb.cells[nb.cells.index(slow) + 1:]), "a cell ran after Ctrl-C"
    assert nb.metadata["mirrorkit"]["status"] == "interrupted"
    _assert_banner(nb, "interrupted", "interrupted (Ctrl-C)")
    assert "did not complete" in R.html_text(out.run_dir / "01-outbound-PARTNER_A.html")
    assert not (out.run_dir / "03-outbound-WITNESS.ipynb").exists()
    check = R.cli("report", str(out.run_dir), "--check")
    assert check.returncode == 0 and "interrupted" in check.stdout, R.describe(check)
