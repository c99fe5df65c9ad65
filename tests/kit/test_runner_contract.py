"""What the runner and papermill, and the runner and each notebook's kernel, agree on.

* papermill finds the runner's engine through the `papermill.engine` entry point, by the name the
  runner gives; nothing registers it by hand.
* Each step gets exactly these papermill parameters: the parameter file as an absolute path, the
  sha256 of the bytes the runner validated, the run's settings (target, mode and certificate_dir
  except for verify), and interactive False: no configuration value travels as a parameter.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from mirrorkit.execution import runner

from . import runner_helpers as R

pytestmark = pytest.mark.timeout(600)

STEP_PARAMETERS = {"parameters_file", "parameters_sha256", "target", "mode", "change_id", "certificate_dir",
                   "interactive"}
NOT_FOR_VERIFY = {"target", "mode", "certificate_dir"}


@pytest.fixture(scope="module")
def shared(request, tmp_path_factory) -> R.SharedRuns:
    return R.shared_runs(request, tmp_path_factory)


def test_papermill_finds_the_engine_by_its_entry_point():
    import papermill.engines
    from mirrorkit.execution.engine import RecordEngine
    assert papermill.engines.papermill_engines.get_engine(runner.ENGINE) is RecordEngine


def test_the_engine_is_not_registered_by_hand():
    """papermill loads it while being imported, in a process that never imported the kit."""
    code = ("import sys, papermill.engines as e; assert 'mirrorkit.execution.runner' not in sys.modules; "
            f"print(e.papermill_engines.get_engine({runner.ENGINE!r}).__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "mirrorkit.execution.engine"
    source = (Path(runner.__file__).parent / "engine.py").read_text(encoding="utf-8")
    assert ".register(" not in source


def _injected(run_dir: Path) -> dict[str, dict]:
    """stem → the parameters papermill injected into that step's notebook."""
    out = {}
    for step in R.manifest(run_dir)["steps"]:
        nb = R.read_nb(Path(run_dir) / step["notebook_file"])
        out[Path(step["notebook_file"]).stem] = dict(nb.metadata["papermill"]["parameters"])
    return out


@pytest.mark.parametrize("which", ["apply", "plan"])
def test_each_step_gets_exactly_the_file_its_digest_and_the_run_settings(shared, which):
    timed = getattr(shared, which)
    out = timed.outcome
    assert out.exit_code == 0, "\n".join(timed.log)
    digest = hashlib.sha256(shared.params.read_bytes()).hexdigest()
    order = R.APPLY_ORDER if which == "apply" else R.PLAN_ORDER
    injected = _injected(out.run_dir)
    assert list(injected) == R.step_stems(order)
    for (notebook, target), stem in zip(order, R.step_stems(order)):
        p = injected[stem]
        expected = STEP_PARAMETERS - NOT_FOR_VERIFY if notebook == "verify" else STEP_PARAMETERS
        assert set(p) == expected, stem
        assert p["parameters_file"] == str(shared.params.absolute()), stem
        assert Path(p["parameters_file"]).is_absolute()
        assert p["parameters_sha256"] == digest, stem
        assert p["change_id"] == "" and p["interactive"] is False, stem
        if notebook != "verify":
            assert (p["target"], p["mode"]) == (target, which), stem
            assert Path(p["certificate_dir"]) == shared.certs.absolute(), stem
    assert R.manifest(out.run_dir)["parameter_file_sha256"] == digest


def test_step_parameters_for_a_relative_path(tmp_path, monkeypatch):
    """The kernel may start in another folder (a notebook run from notebooks/ moves to the repository
    root): the paths it gets are absolute."""
    monkeypatch.chdir(tmp_path)
    contract = runner.StepContract(Path("params.yaml"), "ab" * 32, "plan", "CHG-1", Path("certs"))
    spec = runner.StepSpec(1, "outbound", "PARTNER_A", 1)
    assert contract.parameters(spec) == {
        "parameters_file": str(tmp_path / "params.yaml"), "parameters_sha256": "ab" * 32,
        "target": "PARTNER_A", "mode": "plan", "change_id": "CHG-1",
        "certificate_dir": str(tmp_path / "certs"), "interactive": False}
    verify = contract.parameters(runner.StepSpec(7, "verify", None, 4))
    assert set(verify) == STEP_PARAMETERS - NOT_FOR_VERIFY


def test_the_digest_is_of_the_bytes_validated(tmp_path, monkeypatch):
    """A parameter file that changes while the runner validates it is refused (exit 2), not run with
    a digest of bytes nobody validated."""
    from mirrorkit.config import parameters as params
    path = tmp_path / "params.yaml"
    path.write_bytes((R.ROOT / "parameters" / "lab.yaml").read_bytes())
    real_load = params.load
    runner.load_parameters(path)                 # valid as it is

    def load_then_edit(p):
        try:
            return real_load(p)
        finally:
            with open(p, "a", encoding="utf-8") as fh:
                fh.write("# edited meanwhile\n")
    monkeypatch.setattr(params, "load", load_then_edit)
    with pytest.raises(params.ParameterError, match="changed while it was being validated"):
        runner.load_parameters(path)
    out = runner.run(path, mode="plan", out=tmp_path / "runs", log=lambda s: None)
    assert out.exit_code == runner.ExitCode.INVALID_PARAMETERS and out.run_dir is None
