"""Acceptance: the secrets canary.

Every secret gets a distinctive value — the sa password (through `env:`), the master key password and the
password of the private-key backups (`certificate.private_key_backup`) — each containing a random token and
characters that JSON and HTML escape (`" ' < > & \\`). After the full runbook (plus a plan-mode run), none of
them, in raw, JSON-escaped or HTML-escaped form (nor the bare token), appears in an executed notebook, its
HTML export, an artifact file, the parameter file or the captured papermill log. The random peer-login
passwords are never shown: every `CREATE LOGIN … WITH PASSWORD = N'…'` anywhere shows `N'********'`.

The secrets must still have been used for real: the master key opens with the canary password and the PVK
backups decrypt with theirs.
"""
from __future__ import annotations

import html
import json
import re
import secrets
from pathlib import Path

import pytest

from . import runbook_helpers as H

pytestmark = pytest.mark.timeout(600)

NAMES = ["PARTNER_A", "PARTNER_B", "WITNESS"]
ROLES = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}
BACKUP_DIR = "C:\\mk\\backup"


def _canaries() -> dict[str, tuple[str, str]]:
    """label → (value, token)."""
    out = {}
    for label, prefix, tail in (("sa", "Sa", "-<&\"';x9"), ("master_key", "Dmk", "-<&\"'\\x9"),
                                ("pvk", "Pvk", "-<&\"'>x9")):
        token = f"CANARY{prefix.upper()}{secrets.token_hex(6)}"
        out[label] = (f"{prefix}-{token}{tail}", token)
    return out


def _forms(value: str) -> set[str]:
    j = json.dumps(value)[1:-1]
    return {value, j, html.escape(value), html.escape(value, quote=False), html.escape(j),
            html.escape(j, quote=False), json.dumps(html.escape(value))[1:-1]}


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("canary")
    lab = H.start_lab(tmp / "lab", *NAMES)
    canaries = _canaries()
    sa = canaries["sa"][0]
    try:
        for n in NAMES:
            lab[n].sql(f"ALTER LOGIN sa WITH PASSWORD = {_literal(sa)}")   # the kit logs in with the canary
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp, sa=sa, dmk=canaries["master_key"][0], pvk=canaries["pvk"][0])
            values = H.parameter_values(lab, ROLES, environment="canary", certificate={
                "private_key_backup": {"directory": BACKUP_DIR, "password": f"env:{H.ENV_PVK}"}})
            param_file = H.write_parameter_file(tmp, values)
            out = tmp / "out"
            runs = [H.run_notebook("outbound", param_file, target="PARTNER_A", mode="plan",
                                   certificate_dir=tmp / "certs", out_dir=out)]
            runs += H.full_runbook(param_file, partners=["PARTNER_A", "PARTNER_B"], witness="WITNESS",
                                   certificate_dir=tmp / "certs", out_dir=out)
            yield lab, canaries, param_file, runs, tmp
    finally:
        lab.stop_all()


def _literal(text: str) -> str:
    return "N'" + text.replace("'", "''") + "'"


def _connect(handle, sa: str):
    return handle.connect(password=sa)


def _texts(runs, tmp: Path, param_file: Path) -> dict[str, str]:
    """Everything a person or a program reads after the runs: name → text."""
    from nbconvert import HTMLExporter
    texts: dict[str, str] = {}
    exporter = HTMLExporter()
    for run in runs:
        texts[str(run.output)] = run.output.read_text(encoding="utf-8")
        body, _ = exporter.from_filename(str(run.output))
        html_path = run.output.with_suffix(".html")
        html_path.write_text(body, encoding="utf-8")
        texts[str(html_path)] = body
        texts[f"papermill log of {run.output.name}"] = run.log
    for path in sorted((tmp / "out").glob("*.log")):
        texts[str(path)] = path.read_text(encoding="utf-8")
    for path in sorted((tmp / "certs").rglob("*")):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("latin-1")      # .cer is binary: compare bytes
    texts[str(param_file)] = param_file.read_text(encoding="utf-8")
    return texts


def test_runs_succeed(canary):
    lab, canaries, param_file, runs, tmp = canary
    failed = [r.describe() for r in runs if not r.ok]
    assert not failed, "\n\n".join(failed)
    backups = [s for r in runs for s in r.records.get("statement", []) if s["sql"].startswith("BACKUP CERTIFICATE")]
    assert len(backups) == 3, "one private-key backup per endpoint certificate"
    for s in backups:
        assert "ENCRYPTION BY PASSWORD = N'********'" in s["sql"] and "WITH PRIVATE KEY" in s["sql"]


def test_no_secret_in_notebooks_html_artifacts_or_logs(canary):
    lab, canaries, param_file, runs, tmp = canary
    texts = _texts(runs, tmp, param_file)
    assert len([k for k in texts if k.endswith(".html")]) == len(runs)
    leaks = []
    for label, (value, token) in canaries.items():
        needles = _forms(value) | {token}
        for where, text in texts.items():
            hit = [n for n in needles if n in text]
            if hit:
                leaks.append(f"{label} secret in {where} (as {sorted(hit)[0]!r})")
    assert not leaks, "\n".join(leaks)


def test_peer_login_passwords_are_never_shown(canary):
    lab, canaries, param_file, runs, tmp = canary
    texts = _texts(runs, tmp, param_file)
    pattern = re.compile(r"CREATE LOGIN\s+\[(?:[^\]]|\]\])*\]\s+WITH\s+PASSWORD\s*=\s*(N?'(?:[^']|'')*')",
                         re.IGNORECASE)
    seen = 0
    shown = []
    for where, text in texts.items():
        for candidate in {text, html.unescape(text)}:
            for m in pattern.finditer(candidate):
                seen += 1
                if m.group(1) != "N'********'":
                    shown.append(f"{where}: {m.group(0)[:120]}")
    assert seen >= 8, "the inbound runs show their CREATE LOGIN statements (redacted)"
    assert not shown, "\n".join(shown)


def test_the_secrets_were_really_used(canary):
    """The master key opens with the canary password; every PVK backup decrypts with the canary password
    (and not with the redacted text), and holds the private key of the endpoint certificate."""
    from mirrorkit_lab import crypto
    lab, canaries, param_file, runs, tmp = canary
    failed = [r.describe() for r in runs if not r.ok]
    assert not failed, "\n\n".join(failed)
    sa = canaries["sa"][0]
    for n in NAMES:
        with _connect(lab[n], sa) as cn:
            cur = cn.cursor()
            cur.execute(f"OPEN MASTER KEY DECRYPTION BY PASSWORD = {_literal(canaries['master_key'][0])}")
            cur.execute("CLOSE MASTER KEY")
        files = sorted(p for p in lab[n].instance.fs.resolve(BACKUP_DIR).iterdir())
        cer = [p for p in files if p.suffix == ".cer"]
        pvk = [p for p in files if p.suffix == ".pvk"]
        assert len(cer) == 1 and len(pvk) == 1, files
        assert cer[0].name.startswith(f"{n}_dbm_cert_")
        der = cer[0].read_bytes()
        assert der == (tmp / "certs" / f"{n}.cer").read_bytes(), "the backup is the endpoint certificate"
        key = crypto.pvk_decode(pvk[0].read_bytes(), canaries["pvk"][0])
        assert crypto.private_key_matches(der, key)
        with pytest.raises(crypto.DecryptionFailed):
            crypto.pvk_decode(pvk[0].read_bytes(), "********")


def test_a_connection_password_with_braces_and_semicolons_logs_in(tmp_path, lab, monkeypatch):
    """connection.password may hold any characters: the kit brace-quotes it in the ODBC connection string
    (connect.py), which must still deliver exactly the password to the server (here: through FreeTDS)."""
    l = lab("PARTNER_A", "PARTNER_B")
    password = "Brace-}{;=-Passw0rd"
    l["PARTNER_A"].sql(f"ALTER LOGIN sa WITH PASSWORD = {_literal(password)}")
    H.secret_env(monkeypatch, sa=password)
    param_file = H.write_parameter_file(tmp_path, H.parameter_values(
        l, {"PARTNER_A": "partner", "PARTNER_B": "partner"}))
    with H.SessionSpy([l["PARTNER_A"]]) as spy:
        run = H.run_in_process("outbound", param_file, target="PARTNER_A", mode="plan",
                               certificate_dir=tmp_path / "certs")
    assert run.ok, f"the kit could not log in with the password: {run.error}"
    assert spy.kit_logins
