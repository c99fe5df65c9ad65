"""Acceptance: bad parameter files give a clear message and nothing reaches the lab.

Two paths, 27 cases in all (25 bad parameter files, plus a bad `target` and a bad `mode` run parameter):

* the notebook path — the file is passed to the notebook as `-p parameters_file FILE` (then `-p
  target/mode`), and the kit reads and validates it as `mirrorkit run` does; the notebook must fail, show
  the message in the executed notebook (the file, the key path, what to write instead) and no mirrorkit
  session may have logged in to any lab instance (a spy on the in-process lab instances counts logins by
  APP=mirrorkit/…); the catalog stays as it was and there is no `statement` record;
* `mirrorkit.params.load(path)` for the rest, whose messages must name the file, the key path (or the
  line and column of a YAML syntax error) and the fix.
"""
from __future__ import annotations

import re

import pytest

from mirrorkit.config.parameters import ParameterError, load

from . import runbook_helpers as H

pytestmark = pytest.mark.timeout(600)

NAMES = ["PARTNER_A", "PARTNER_B", "WITNESS"]
ROLES = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")

BASE = """\
# lab-shaped parameter file (parameters/lab.yaml)
environment: lab
topology: mirroring
instances:
  - name: PARTNER_A
    server: 127.0.0.11,1433
    role: partner
  - name: PARTNER_B
    server: 127.0.0.12,1433
    role: partner
  - name: WITNESS
    server: 127.0.0.13,1433
    role: witness
endpoint:
  name: Mirroring
  port: 5022
certificate: {}
logins: {}
connection:
  driver: FreeTDS
  authentication: sql
  user: sa
  password: 'env:MK_TEST_SA'
  encrypt: optional
  tds_version: '7.4'
secrets:
  master_key_password: 'env:MK_TEST_DMK'
verify: {}
"""

# name: (replace, with, [fragments the message must contain])
LOAD_CASES = {
    "encrypt_yes_unquoted": ("  encrypt: optional", "  encrypt: yes",
                             ["connection.encrypt", "boolean", "quote it", "'yes'"]),
    "port_leading_zero": ("  port: 5022", "  port: 05022", ["endpoint.port", "leading zero", "octal", "port: 5022"]),
    "tds_version_number": ("  tds_version: '7.4'", "  tds_version: 7.4",
                           ["connection.tds_version", "number", "quote it", "'7.4'"]),
    "password_in_clear": ("  password: 'env:MK_TEST_SA'", "  password: 'Sup3r-Secret-Value!'",
                          ["connection.password", "secret", "env:NAME"]),
    "duplicate_key": ("  port: 5022", "  port: 5022\n  port: 5023", ["endpoint.port", "duplicate key", "keep only one"]),
    "unknown_key": ("  port: 5022", "  prot: 5022", ["endpoint.prot", "unknown key", "endpoint.port"]),
    "three_partners": ("    role: witness", "    role: partner", ["instances", "exactly two", "role: partner"]),
    "mixed_roles": ("    server: 127.0.0.12,1433\n    role: partner", "    server: 127.0.0.12,1433\n    role: replica",
                    ["instances", "mixes replicas", "role: replica"]),
    "template_collision": ("certificate: {}", "certificate:\n  name: dbm_cert",
                           ["certificate.name", "same certificate name", "{instance}"]),
    "backup_without_password": ("certificate: {}", "certificate:\n  private_key_backup:\n    directory: 'C:\\mk'",
                                ["certificate.private_key_backup.password", "required", "env:"]),
    "algorithm_with_disabled": ("  port: 5022", "  port: 5022\n  encryption: disabled\n  algorithm: aes",
                                ["endpoint.algorithm", "disabled", "remove algorithm"]),
    "subject_too_long": ("certificate: {}", "certificate:\n  subject: '{instance} " + "x" * 60 + "'",
                         ["certificate.subject", "64", "shorten"]),
    "tab_indent": ("  port: 5022", "\tport: 5022", ["not valid YAML", "line 16, column 1", "spaces, not tabs"]),
    "duplicate_server": ("    server: 127.0.0.12,1433", "    server: 127.0.0.11,1433",
                         ["instances[1].server", "duplicate server", "its own server"]),
    "malformed_reference": ("  master_key_password: 'env:MK_TEST_DMK'", "  master_key_password: 'env:'",
                            ["secrets.master_key_password", "reference", "env:"]),
    "name_yes_unquoted": ("  - name: PARTNER_A", "  - name: yes", ["instances[0].name", "boolean", "quote it"]),
    "port_out_of_range": ("  port: 5022", "  port: 80", ["endpoint.port", "1024", "32767"]),
    "login_backslash": ("logins: {}", "logins:\n  login: 'dbm\\{peer}'", ["logins.login", "backslash", "remove"]),
    "role_typo": ("    role: witness", "    role: witnes", ["instances[2].role", "did you mean witness"]),
    "environment_missing": ("environment: lab\n", "", ["environment", "missing", "add environment"]),
}


def _bad_text(replace: str, with_: str, base: str = BASE) -> str:
    assert replace in base, replace
    return base.replace(replace, with_, 1)


@pytest.mark.parametrize("case", sorted(LOAD_CASES))
def test_load_refuses_with_file_key_path_and_fix(tmp_path, case):
    replace, with_, fragments = LOAD_CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(_bad_text(replace, with_), encoding="utf-8")
    with pytest.raises(ParameterError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert "Sup3r-Secret-Value!" not in message, "the message echoes a secret"


def test_base_file_is_valid(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(BASE, encoding="utf-8")
    env = load(path)
    assert [i.name for i in env.instances] == NAMES


# ---------------------------------------------------------------------------------------------
# The notebook path
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    lab = H.start_lab(tmp / "lab", *NAMES)
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp)
            good = H.write_parameter_file(tmp, H.parameter_values(lab, ROLES))
            yield lab, good.read_text(encoding="utf-8"), tmp, {n: H.catalog(lab[n]) for n in NAMES}
    finally:
        lab.stop_all()


# name: (notebook, target, mode, replace, with, [fragments]) — the text replaced in a good lab file
NOTEBOOK_CASES = {
    "encrypt_yes_unquoted": ("outbound", "PARTNER_A", "apply", "  encrypt: optional", "  encrypt: yes",
                             ["connection.encrypt", "quote it"]),
    "duplicate_instance_names": ("outbound", "PARTNER_A", "apply", "- name: PARTNER_B", "- name: partner_a",
                                 ["instances[1].name", "duplicate instance name"]),
    "endpoint_port_out_of_range": ("outbound", "PARTNER_A", "apply", "  port: 5022", "  port: 80",
                                   ["endpoint.port", "1024"]),
    "password_in_clear": ("inbound", "PARTNER_A", "apply", "  password: env:MK_TEST_SA",
                          "  password: Sup3r-Secret-Value!", ["connection.password", "env:"]),
    "unknown_key": ("witness", "WITNESS", "apply", "  port: 5022", "  prot: 5022", ["endpoint.prot", "endpoint.port"]),
    "unknown_target": ("outbound", "PARTNER_C", "apply", "", "", ["target", "PARTNER_C", "PARTNER_A"]),
    "bad_mode": ("outbound", "PARTNER_A", "aply", "", "", ["mode", "'aply'", '"apply"']),
}


def _shown(run) -> str:
    """What the executed notebook shows for the failure: the outputs of the cell papermill marked as failed."""
    import nbformat
    nb = nbformat.read(str(run.output), as_version=4)
    parts = []
    for cell in nb.cells:
        if not cell.get("metadata", {}).get("papermill", {}).get("exception"):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                parts.append(f"{out.get('ename')}: {out.get('evalue')}")
                parts.extend(out.get("traceback", []))
            elif out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            else:
                data = out.get("data", {})
                parts.append(data.get("text/markdown", "") or data.get("text/plain", ""))
    return ANSI.sub("", "\n".join(parts))


@pytest.fixture(scope="module")
def notebook_failures(bad_lab):
    lab, good_text, tmp, initial = bad_lab
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        H.secret_env(mp)
        for case, (notebook, target, mode, replace, with_, _) in NOTEBOOK_CASES.items():
            path = tmp / f"{case}.yaml"
            path.write_text(_bad_text(replace, with_, good_text) if replace else good_text, encoding="utf-8")
            with H.SessionSpy(list(lab.instances.values())) as spy:
                run = H.run_notebook(notebook, path, target=target, mode=mode, certificate_dir=tmp / "certs",
                                     out_dir=tmp / "out")
            results[case] = (run, spy, {n: H.catalog(lab[n]) for n in NAMES})
    return results


@pytest.mark.parametrize("case", list(NOTEBOOK_CASES))
def test_notebook_fails_before_any_session(bad_lab, notebook_failures, case):
    lab, good_text, tmp, initial = bad_lab
    run, spy, after = notebook_failures[case]
    assert not run.ok, f"{case}: the notebook must fail"
    assert spy.kit_logins == [], f"{case}: a mirrorkit session reached the lab: {spy.kit_logins}"
    assert spy.kit_statements == []
    assert after == initial, f"{case}: the catalog changed"
    assert "statement" not in run.records and "plan" not in run.records
    assert not (tmp / "certs").exists() or not any((tmp / "certs").iterdir())


@pytest.mark.parametrize("case", list(NOTEBOOK_CASES))
def test_notebook_shows_the_message(notebook_failures, case):
    run, _, _ = notebook_failures[case]
    *_, fragments = NOTEBOOK_CASES[case]
    shown = _shown(run)
    missing = [f for f in fragments if f not in shown]
    assert not missing, (f"{case}: the executed notebook does not show {missing}; the failing cell shows:\n"
                         f"{shown!r}\n(papermill: {run.error!r})")
    if case != "bad_mode":
        assert f"{case}.yaml: " in shown, "the message names the parameter file"
    if case not in ("bad_mode", "unknown_target"):
        assert "(line " in shown, "the message gives the line in the file"
    # (papermill itself writes the injected values into the notebook; the kit must not repeat the value)
    assert "Sup3r-Secret-Value!" not in shown, "the message echoes the clear password"


def test_parameter_error_is_a_message_not_a_traceback(notebook_failures):
    """runbook.py: RunbookError/ParameterError are 'shown without a traceback' (the cell still fails)."""
    run, _, _ = notebook_failures["endpoint_port_out_of_range"]
    shown = _shown(run)
    assert re.search(r"ParameterError: \S*endpoint_port_out_of_range\.yaml: endpoint\.port:", shown), shown
    assert "Traceback" not in shown and "Custom TB Handler failed" not in shown, shown
    assert "mirrorkit/config/" not in shown and "mirrorkit/notebook/" not in shown, shown
