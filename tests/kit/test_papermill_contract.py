"""How notebooks receive their parameters under plain papermill, and the defects that came from copies.

* The documented invocation is `-p parameters_file FILE`: the kit reads and validates the file itself,
  with the same validator and messages (line numbers included) as `mirrorkit run`.
* `papermill -f FILE` injects every top-level key as code: the notebook refuses it before anything runs
  (a key that is code is never executed), names what to type instead, and sends nothing.
* A misspelt key (`endpont:`) is refused on both paths, before anything is sent (defect 2).
* The witness notebook is self-contained: the hand order outbound A, outbound B, inbound A, inbound B,
  witness W works on a fresh witness (defect 1), and a witness can be added later with that one notebook.
* `parameters_sha256` (what `mirrorkit run` passes) is proved by the kernel.
"""
from __future__ import annotations

import hashlib

import pytest

from mirrorkit.notebook import guard

from . import runbook_helpers as H

pytestmark = pytest.mark.timeout(600)

NAMES = ["PARTNER_A", "PARTNER_B", "WITNESS"]
ROLES = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    lab = H.start_lab(tmp / "lab", *NAMES)
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp)
            good = H.write_parameter_file(tmp, H.parameter_values(lab, ROLES))
            yield lab, good, tmp
    finally:
        lab.stop_all()


def _shown(run) -> str:
    return run.error_text()


# -- the guard, unit by unit ---------------------------------------------------------------------------

ALLOWED = ("parameters_file", "parameters_sha256", "target", "mode", "change_id", "certificate_dir", "interactive")


def test_guard_lets_plain_run_parameters_through():
    problem, values = guard.check('# Parameters\nparameters_file = "p.yaml"\nmode = "apply"\ninteractive = False\n',
                                  ALLOWED)
    assert problem is None and values == {"parameters_file": "p.yaml", "mode": "apply", "interactive": False}


@pytest.mark.parametrize("source, words", [
    ('# Parameters\nenvironment = "lab"\ninstances = []\n', ["configuration keys", "environment", "parameters_file"]),
    ('# Parameters\nendpont = {"port": 5022}\n', ["unknown parameter", "endpont"]),
    ("# Parameters\nx = 1; __import__('os').system('touch /tmp/PWNED'); y = 1\n", ["not a parameter assignment"]),
    ('# Parameters\nmode = __import__("os").getcwd()\n', ["not a plain value"]),
    ('# Parameters\nmode = "apply\n', ["not plain assignments"]),
])
def test_guard_refuses_everything_else(source, words):
    problem, values = guard.check(source, ALLOWED)
    assert problem is not None and values == {}
    for w in words:
        assert w in problem, problem


# -- through papermill -------------------------------------------------------------------------------

def test_papermill_dash_f_is_refused_before_anything_runs(fresh, tmp_path):
    lab, good, tmp = fresh
    before = {n: H.catalog(lab[n]) for n in NAMES}
    with pytest.MonkeyPatch.context() as mp:
        H.secret_env(mp)
        with H.SessionSpy(list(lab.instances.values())) as spy:
            run = H.run_notebook("outbound", None, target="PARTNER_A", mode="apply", certificate_dir=tmp_path / "c",
                                 out_dir=tmp_path / "out", values=H.read_parameter_file(good))
    assert not run.ok
    shown = _shown(run)
    assert "configuration keys were injected" in shown and "-p parameters_file" in shown, shown
    assert spy.kit_logins == [] and spy.kit_statements == []
    assert {n: H.catalog(lab[n]) for n in NAMES} == before
    assert "run_header" not in run.records


def test_a_key_that_is_code_never_runs(fresh, tmp_path):
    lab, good, tmp = fresh
    canary = tmp_path / "PWNED"
    values = H.read_parameter_file(good)
    values[f"x = 1; __import__('pathlib').Path({str(canary)!r}).touch(); y"] = 1
    with pytest.MonkeyPatch.context() as mp:
        H.secret_env(mp)
        run = H.run_notebook("outbound", None, target="PARTNER_A", mode="plan", certificate_dir=tmp_path / "c",
                             out_dir=tmp_path / "out", values=values)
    assert not run.ok
    assert not canary.exists(), "papermill's injected code ran"
    assert "none of them was run" in _shown(run)


@pytest.mark.parametrize("path", ["dash_f", "parameters_file"])
def test_a_misspelt_key_is_refused_on_both_paths(fresh, tmp_path, path):
    lab, good, tmp = fresh
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text(encoding="utf-8").replace("endpoint:", "endpont:"), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        H.secret_env(mp)
        with H.SessionSpy(list(lab.instances.values())) as spy:
            if path == "dash_f":
                run = H.run_notebook("outbound", None, target="PARTNER_A", mode="apply",
                                     certificate_dir=tmp_path / "c", out_dir=tmp_path / "out",
                                     values=H.read_parameter_file(bad))
            else:
                run = H.run_notebook("outbound", bad, target="PARTNER_A", mode="apply",
                                     certificate_dir=tmp_path / "c", out_dir=tmp_path / "out")
    assert not run.ok
    assert spy.kit_logins == [] and spy.kit_statements == []
    shown = _shown(run)
    if path == "parameters_file":
        assert "bad.yaml: endpont: unknown key" in shown and "did you mean endpoint?" in shown, shown
        assert "(line " in shown
    else:
        assert "configuration keys were injected" in shown, shown


def test_the_kernel_proves_the_digest_it_was_given(fresh, tmp_path):
    lab, good, tmp = fresh
    with pytest.MonkeyPatch.context() as mp:
        H.secret_env(mp)
        right = hashlib.sha256(good.read_bytes()).hexdigest()
        ok = H.run_notebook("verify", good, target=None, mode="plan", certificate_dir=tmp_path / "c",
                            out_dir=tmp_path / "out", extra={"parameters_sha256": right})
        wrong = H.run_notebook("outbound", good, target="PARTNER_A", mode="apply", certificate_dir=tmp_path / "c",
                               out_dir=tmp_path / "out", extra={"parameters_sha256": "0" * 64})
    assert ok.records["run_header"][0]["parameter_file_sha256"] == right
    assert not wrong.ok and "changed after it was validated" in _shown(wrong)
    assert "run_header" not in wrong.records


def test_the_record_holds_the_effective_configuration_with_references_only(fresh, tmp_path):
    lab, good, tmp = fresh
    with pytest.MonkeyPatch.context() as mp:
        H.secret_env(mp)
        run = H.run_notebook("outbound", good, target="PARTNER_A", mode="plan", certificate_dir=tmp_path / "c",
                             out_dir=tmp_path / "out", expect_ok=True)
    config = run.records["configuration"][0]
    assert config["endpoint"]["port"] == 5022 and config["certificate"]["lifetime_days"] == 1095   # defaults applied
    assert config["connection"]["password"].startswith("env:")
    assert config["secrets"]["master_key_password"].startswith("env:")
    assert H.sa_password() not in run.text


# -- defect 1: the witness notebook on a fresh witness, in the hand order -------------------------------

def test_hand_order_sets_up_partners_then_the_witness_with_one_notebook(tmp_path):
    lab = H.start_lab(tmp_path / "lab", *NAMES)
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp)
            params = H.write_parameter_file(tmp_path, H.parameter_values(lab, ROLES))
            certs, out = tmp_path / "certs", tmp_path / "out"
            for notebook, target in [("outbound", "PARTNER_A"), ("outbound", "PARTNER_B"),
                                     ("inbound", "PARTNER_A"), ("inbound", "PARTNER_B")]:
                H.run_notebook(notebook, params, target=target, mode="apply", certificate_dir=certs, out_dir=out,
                               expect_ok=True)
            # the partners trust each other; nothing of the witness exists yet
            assert H.probe_failures(lab, [("PARTNER_A", "PARTNER_B", "PARTNER"),
                                          ("PARTNER_B", "PARTNER_A", "PARTNER")]) == []
            assert H.catalog(lab["WITNESS"])["certificates"] == []
            plan = H.run_notebook("witness", params, target="WITNESS", mode="plan", certificate_dir=certs,
                                  out_dir=out, expect_ok=True)
            preview = plan.records["plan"][-1]
            assert not any(p["blocked"] for p in preview), preview
            witness = H.run_notebook("witness", params, target="WITNESS", mode="apply", certificate_dir=certs,
                                     out_dir=out, expect_ok=True)
            assert H.probe_failures(lab, [("PARTNER_A", "WITNESS", "WITNESS"), ("PARTNER_B", "WITNESS", "WITNESS"),
                                          ("WITNESS", "PARTNER_A", "PARTNER"), ("WITNESS", "PARTNER_B", "PARTNER"),
                                          ("PARTNER_A", "PARTNER_B", "PARTNER")]) == []
    finally:
        lab.stop_all()
    sections = [r["section"] for r in witness.records.get("section_plan", [])]
    assert sections == ["witness_trusts_partners", "partners_trust_witness"], sections
    statements = witness.records["statement"]
    assert [s["instance"] for s in statements].count("WITNESS") == 3 + 8      # outbound + two partners
    assert [s["instance"] for s in statements].count("PARTNER_A") == 4
    assert [s["instance"] for s in statements].count("PARTNER_B") == 4
    assert witness.records["seal"][-1]["status"] == "ok"
