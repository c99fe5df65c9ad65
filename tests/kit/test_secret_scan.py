"""The secret scan: every encoded form of every secret, in every file `mirrorkit run` writes and in its log.

* unit: access.credentials.encoded_forms covers what the exporters really write (nbconvert's HTML with
  quotes left as they are, JSON, JSON in HTML, markdown, URL-encoding, base64 at any offset in a blob), and
  REGISTRY.redact removes exactly what scan() looks for; the runner's log redacts and reports a line.
* through `mirrorkit run`, on a fresh lab of our own, with secrets made of characters every encoder changes:
  a server error that echoes the master key password is shown `**FAILED**` redacted; a CREATE LOGIN that
  fails with an error echoing the statement never shows the kernel's generated login password (in the
  .ipynb, .html, manifest or log); a clean apply with those secrets seals (no false positive); a secret
  put into an output raw, base64-encoded or URL-encoded is caught in the .ipynb and the .html (exit 3);
  and once on the command line, a secret the lab shows in a catalog table is caught the same way.
"""
from __future__ import annotations

import base64
import html
import json
import re
import secrets
import threading
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from mirrorkit.access.credentials import REGISTRY, encoded_forms, scan
from mirrorkit.execution import runner

from . import runbook_helpers as H
from . import runner_helpers as R

pytestmark = pytest.mark.timeout(900)

NASTY = "<&\"'>+/= %ü\\"          # every one of these is changed by at least one encoder


def _canary(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}{NASTY}x9{NASTY}"


# ---------------------------------------------------------------------------------------------
# unit: the forms, redaction and the scan agree
# ---------------------------------------------------------------------------------------------

def _exports(value: str) -> dict[str, str]:
    """How exporters write value, each as a whole text."""
    j = json.dumps(value)[1:-1]
    blobs = {}
    for offset in range(3):
        blob = base64.b64encode(secrets.token_bytes(7 + offset) + value.encode() + secrets.token_bytes(5)).decode()
        blobs[f"base64 in a blob, offset {offset}"] = blob
        blobs[f"url-safe base64 in a blob, offset {offset}"] = blob.replace("+", "-").replace("/", "_")
    return {
        "raw": value, "json": j, "json ascii=False": json.dumps(value, ensure_ascii=False)[1:-1],
        "html, quotes escaped": html.escape(value), "html, quotes not escaped": html.escape(value, quote=False),
        "html, markupsafe quotes": value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&#34;").replace("'", "&#39;"),
        "json in html": html.escape(j, quote=False), "html in json": json.dumps(html.escape(value))[1:-1],
        "url quote": quote(value), "url quote_plus": quote_plus(value), "t-sql literal": value.replace("'", "''"),
        **blobs,
    }


def test_every_export_of_a_value_is_one_of_its_forms():
    value = _canary("Unit")
    forms = encoded_forms(value)
    for name, text in _exports(value).items():
        assert any(f in text for f in forms), f"{name}: {text!r} holds none of the forms"


def test_nbconvert_html_of_stream_markdown_and_error_outputs_is_caught(tmp_path):
    """What nbconvert really writes (a stream leaves quotes unescaped; markdown consumes backslash escapes)."""
    import nbformat
    from nbconvert import HTMLExporter
    value = _canary("Nbc")
    REGISTRY.add(value)
    for kind in ("stream", "markdown", "error", "plain"):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("x")
        cell.outputs = [{
            "stream": nbformat.v4.new_output("stream", name="stdout", text=f"a {value} b\n"),
            "markdown": nbformat.v4.new_output("display_data", data={"text/markdown": f"a {value} b",
                                                                       "text/plain": "x"}),
            "error": nbformat.v4.new_output("error", ename="E", evalue=value, traceback=[f"E: {value}"]),
            "plain": nbformat.v4.new_output("display_data", data={"text/plain": value}),
        }[kind]]
        nb.cells = [cell]
        body, _ = HTMLExporter().from_notebook_node(nb)
        out = tmp_path / f"{kind}.html"
        out.write_text(body, encoding="utf-8")
        assert scan([out]) == [out], f"the HTML of a {kind} output holding the secret is not flagged"
        assert not REGISTRY.found_in(REGISTRY.redact(body)), kind


def test_the_html_with_unescaped_quotes_is_flagged(tmp_path):
    """The issue's case: `&lt;&amp;"'` (html.escape(quote=False)), as nbconvert writes a stream output."""
    value = f"Quote-{secrets.token_hex(4)}<&\"'"
    REGISTRY.add(value)
    page = tmp_path / "page.html"
    page.write_text(f"<pre>{html.escape(value, quote=False)}</pre>", encoding="utf-8")
    assert scan([page]) == [page]


def test_redact_removes_every_form_scan_looks_for():
    value = _canary("Red")
    REGISTRY.add(value)
    text = " | ".join(_exports(value).values())
    assert REGISTRY.found_in(text)
    redacted = REGISTRY.redact(text)
    assert not REGISTRY.found_in(redacted) and "********" in redacted
    assert not any(f in redacted for f in encoded_forms(value))


def test_base64_forms_are_not_too_short_to_be_specific():
    """A two-letter value has no base64 form (two or three characters would match any blob)."""
    assert encoded_forms("ab") == {"ab"}


def test_the_runners_log_is_redacted_and_a_line_with_a_secret_is_a_finding():
    value = _canary("Log")
    REGISTRY.add(value)
    printed: list[str] = []
    log = runner.GuardedLog(printed.append)
    log("a clean line")
    assert not log.held
    log(f"step failed: {html.escape(value)}")
    assert log.held and printed[-1] == "step failed: ********"


# ---------------------------------------------------------------------------------------------
# lab-side fault: a statement fails with an error that echoes the statement as the server got it
# ---------------------------------------------------------------------------------------------

class FailEchoing:
    """The first kit statement matching `pattern` fails (nothing is executed) with a server error whose
    text quotes the statement, as some SQL Server errors quote what they could not parse or run.
    `passwords` collects the password literals of the failed statement (what the kit must not show)."""

    def __init__(self, handles: list, pattern: str):
        self.handles = handles
        self.pattern = re.compile(pattern, re.IGNORECASE)
        self.failed: list[str] = []
        self._lock = threading.Lock()

    @property
    def passwords(self) -> list[str]:
        return [m.replace("''", "'") for sql in self.failed
                for m in re.findall(r"PASSWORD\s*=\s*N'((?:[^']|'')*)'", sql, re.IGNORECASE)]

    def __enter__(self) -> "FailEchoing":
        from mirrorkit_lab.engine.results import Message, StatementDone
        self._originals = []
        for h in self.handles:
            inst = h.instance
            original = inst.login
            self._originals.append((inst, original))

            def login(user, password, database, *, _orig=original, **kw):
                session = _orig(user, password, database, **kw)
                if H._is_kit(kw.get("app", "")):
                    execute = session.execute

                    def failing_execute(sql, params=None, _execute=execute):
                        with self._lock:
                            fire = not self.failed and bool(self.pattern.match(sql))
                            if fire:
                                self.failed.append(sql)
                        if not fire:
                            return _execute(sql, params)
                        return [Message(50000, 16, 1, f"The statement could not be run: {sql.strip()}"),
                                StatementDone(error=True)]
                    session.execute = failing_execute
                return session
            inst.login = login
        return self

    def __exit__(self, *exc) -> None:
        for inst, original in self._originals:
            H._restore_login(inst, original)


# ---------------------------------------------------------------------------------------------
# through `mirrorkit run`, on a fresh lab with nasty secrets
# ---------------------------------------------------------------------------------------------

NAMES = ("PARTNER_A", "PARTNER_B")
ROLES = {"PARTNER_A": "partner", "PARTNER_B": "partner"}
ENV_PVK = "MK_SCAN_PVK"
ENV_OTHER = "MK_SCAN_OTHER"


def _literal(text: str) -> str:
    return "N'" + text.replace("'", "''") + "'"


def _everything(run_dir: Path, log: list[str]) -> dict[str, str]:
    texts = {str(p.relative_to(run_dir)): p.read_bytes().decode("utf-8", errors="replace")
             for p in Path(run_dir).rglob("*") if p.is_file()}
    texts["log"] = "\n".join(log)
    return texts


def _holding(texts: dict[str, str], value: str) -> list[str]:
    """The texts holding value in any encoded form, or its leading token (the part before the first
    character an encoder changes: found whatever the encoding of the rest, base64 aside)."""
    token = re.match(r"[A-Za-z0-9-]*", value).group(0)
    needles = set(encoded_forms(value)) | ({token} if len(token) >= 8 else set())
    return sorted(name for name, text in texts.items() if any(n in text for n in needles))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A lab of our own (PARTNER_A, PARTNER_B) whose sa password, master key password and private-key
    backup password are made of characters every encoder changes; and the runs on it, in order:
    `failed_dmk` (CREATE MASTER KEY fails with an error echoing its password), `failed_login` (CREATE LOGIN
    on inbound fails the same way: the kernel's generated password is in the echo), `clean` (the apply
    that converges)."""
    tmp = tmp_path_factory.mktemp("secret-scan")
    lab = H.start_lab(tmp / "lab", *NAMES)
    sa, dmk, pvk = "Sa-" + secrets.token_hex(4) + "<&\"'>+/= %\\x9", _canary("Dmk"), _canary("Pvk")
    mp = pytest.MonkeyPatch()
    try:
        for n in NAMES:
            lab[n].sql(f"ALTER LOGIN sa WITH PASSWORD = {_literal(sa)}")
        mp.setenv(R.ENV_SA, sa)
        mp.setenv(R.ENV_DMK, dmk)
        mp.setenv(ENV_PVK, pvk)
        values = R.parameter_values(lab, ROLES, environment="scan", certificate={
            "private_key_backup": {"directory": "C:\\mk\\backup", "password": f"env:{ENV_PVK}"}})
        params = R.write_params(tmp, values)
        certs = tmp / "certs"
        handles = [lab[n] for n in NAMES]
        runs = {"secrets": {"sa": sa, "dmk": dmk, "pvk": pvk}, "lab": lab, "tmp": tmp, "params": params,
                "certs": certs}
        with FailEchoing(handles, r"\s*CREATE MASTER KEY") as fault:
            runs["failed_dmk"] = R.run(params, mode="apply", only="outbound", target="PARTNER_A",
                                       out=tmp / "runs-dmk", certificate_dir=certs)
        runs["dmk_fault"] = fault
        with FailEchoing(handles, r"\s*CREATE LOGIN") as fault:
            runs["failed_login"] = R.run(params, mode="apply", out=tmp / "runs-login", certificate_dir=certs)
        runs["login_fault"] = fault
        runs["clean"] = R.run(params, mode="apply", out=tmp / "runs-clean", certificate_dir=certs)
        yield runs
    finally:
        mp.undo()
        lab.stop_all()


def _ipynb_and_html(run_dir: Path, stem: str) -> tuple[str, str]:
    return ((run_dir / f"{stem}.ipynb").read_text(encoding="utf-8"),
            (run_dir / f"{stem}.html").read_text(encoding="utf-8"))


def test_a_failed_statement_whose_error_echoes_a_secret_is_shown_redacted(fresh):
    """CREATE MASTER KEY fails with the server quoting the statement (the password as a T-SQL literal, its
    quote doubled). The notebook shows **FAILED** with the error, and the .ipynb and .html hold ********
    where the password was, and no form of it; the run is a failed step, sealed (nothing leaked)."""
    timed, fault = fresh["failed_dmk"], fresh["dmk_fault"]
    dmk = fresh["secrets"]["dmk"]
    assert fault.failed and fault.passwords == [dmk], "the fault did not fire on CREATE MASTER KEY"
    out = timed.outcome
    assert out.exit_code == runner.STEP_FAILED, "\n".join(timed.log)
    m = R.manifest(out.run_dir)
    assert m["sealed"] is True and m["secret_found_in"] == [], m["secret_found_in"]
    ipynb, page = _ipynb_and_html(out.run_dir, "01-outbound-PARTNER_A")
    nb = R.read_nb(out.run_dir / "01-outbound-PARTNER_A.ipynb")
    failed = [o["data"]["text/markdown"] for c in nb.cells for o in c.get("outputs", [])
              if "text/markdown" in o.get("data", {}) and o["data"]["text/markdown"].startswith("**FAILED**")]
    assert len(failed) == 1, "no **FAILED** display"
    assert "The statement could not be run" in failed[0] and "********" in failed[0], failed[0]
    assert "The statement could not be run" in R.html_text(out.run_dir / "01-outbound-PARTNER_A.html")
    assert "********" in page and "********" in ipynb
    assert _holding(_everything(out.run_dir, timed.log), dmk) == []


def test_a_generated_login_password_in_an_error_is_never_shown(fresh):
    """inbound's CREATE LOGIN (with the password the kernel generated) fails with an error quoting the
    statement: the password is in no file of the run (.ipynb, .html, manifest) nor in the log."""
    timed, fault = fresh["failed_login"], fresh["login_fault"]
    assert fault.failed, "the fault did not fire on CREATE LOGIN"
    (generated,) = fault.passwords
    assert len(generated) >= 16
    out = timed.outcome
    assert out.exit_code == runner.STEP_FAILED, "\n".join(timed.log)
    failed = [s for s in R.manifest(out.run_dir)["steps"] if s["status"] == "failed"]
    assert [s["notebook"] for s in failed] == ["inbound"], failed
    texts = _everything(out.run_dir, timed.log)
    assert any(name.endswith(".html") and "inbound" in name for name in texts)
    assert _holding(texts, generated) == []
    assert "manifest.json" in texts and "log" in texts
    stem = Path(failed[0]["notebook_file"]).stem
    ipynb, page = _ipynb_and_html(out.run_dir, stem)
    assert "The statement could not be run" in ipynb and "********" in ipynb
    assert "********" in page


def test_a_clean_run_with_nasty_secrets_seals(fresh):
    """No false positive: the apply that converges, with secrets every encoder changes, is sealed; and none
    of the secrets is in any file of the run or its log."""
    out = fresh["clean"].outcome
    assert out.exit_code == runner.OK, "\n".join(fresh["clean"].log)
    m = R.manifest(out.run_dir)
    assert m["sealed"] is True and m["status"] == "ok" and m["secret_found_in"] == []
    assert [s["status"] for s in m["steps"]] == ["ok"] * len(m["steps"])
    texts = _everything(out.run_dir, fresh["clean"].log)
    for label, value in fresh["secrets"].items():
        assert _holding(texts, value) == [], label
    from mirrorkit.notebook.records import read_records
    statements = [st for p in sorted(out.run_dir.glob("*.ipynb")) for st in read_records(p).get("statement", [])]
    with_password = [st["sql"] for st in statements if "PASSWORD" in st["sql"]]
    assert with_password, "the clean run applied no statement with a password"
    assert all("N'********'" in sql for sql in with_password), with_password


LEAKS = {
    # the cell prints the master key password (env MK_RUN_DMK) as itself or encoded
    "raw": "print(os.environ['MK_RUN_DMK'])",
    "base64": "print(base64.b64encode(b'xy' + os.environ['MK_RUN_DMK'].encode() + b'tail').decode())",
    "urlsafe-base64": "print(base64.urlsafe_b64encode(b'x' + os.environ['MK_RUN_DMK'].encode()).decode())",
    "url-quote": "print('https://example/?p=' + urllib.parse.quote_plus(os.environ['MK_RUN_DMK']))",
}


@pytest.mark.parametrize("form", sorted(LEAKS))
def test_a_secret_leaked_into_an_output_is_caught_in_the_ipynb_and_the_html(fresh, monkeypatch, form):
    """A test-only cell prints the secret (raw: nbconvert writes it `&lt;&amp;"'`, quotes unescaped;
    base64 at two offsets; URL-encoded). `mirrorkit run` exits 3, not sealed, naming the .ipynb and the
    .html (which is written redacted), never the value, in the manifest and the log."""
    tmp, dmk = fresh["tmp"], fresh["secrets"]["dmk"]
    d = tmp / f"leak-{form}"
    source = "import os, base64, urllib.parse\n" + LEAKS[form]
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", R.notebook_dir_with_cell(d / "notebooks", "outbound", source))
    timed = R.run(fresh["params"], mode="plan", only="outbound", target="PARTNER_A", out=d / "runs",
                  certificate_dir=fresh["certs"])
    out = timed.outcome
    assert out.exit_code == runner.SECRET_FOUND == 3, "\n".join(timed.log)
    m = R.manifest(out.run_dir)
    assert m["status"] == "secret_found" and m["sealed"] is False
    assert "01-outbound-PARTNER_A.ipynb" in m["secret_found_in"], m["secret_found_in"]
    assert "01-outbound-PARTNER_A.html" in m["secret_found_in"], m["secret_found_in"]
    assert "01-outbound-PARTNER_A.ipynb" in timed.log[-1] and "01-outbound-PARTNER_A.html" in timed.log[-1]
    texts = _everything(out.run_dir, timed.log)
    assert _holding(texts, dmk) == ["01-outbound-PARTNER_A.ipynb"], "only the kernel's own record holds it"


def test_cli_a_secret_the_lab_shows_in_a_catalog_table_is_caught(fresh):
    """`python -m mirrorkit run` (so the value is in no registry of this process's making but the CLI's):
    PARTNER_A has a login whose name is PARTNER_B's connection password — a secret the runner resolves
    and the outbound kernel on PARTNER_A never does, so its snapshot table shows the name as it is. The
    scan finds it in the .ipynb (JSON) and the .html (escaped by pandas): exit 3, files named, no value."""
    lab, tmp = fresh["lab"], fresh["tmp"]
    other = "Other-" + secrets.token_hex(4) + "<&\"'>+= %ü"

    def sql(statement: str) -> None:
        with lab["PARTNER_A"].connect(password=fresh["secrets"]["sa"]) as cn:
            cn.cursor().execute(statement)
    sql(f"CREATE LOGIN [{other}] WITH PASSWORD = N'Login-Passw0rd-1!x'")
    try:
        d = tmp / "cli-table"
        values = R.parameter_values(lab, ROLES, environment="scan", instance_overrides={
            "PARTNER_B": {"connection": {"password": f"env:{ENV_OTHER}"}}})
        params = R.write_params(d, values)
        proc = R.cli("run", str(params), "--mode", "plan", "--only", "outbound", "--target", "PARTNER_A",
                     "--out", str(d / "out"), cwd=d, env={ENV_OTHER: other})
        assert proc.returncode == runner.SECRET_FOUND == 3, R.describe(proc)
        (run_dir,) = list((d / "out").iterdir())
        m = R.manifest(run_dir)
        assert m["sealed"] is False
        assert {"01-outbound-PARTNER_A.ipynb", "01-outbound-PARTNER_A.html"} <= set(m["secret_found_in"])
        assert "01-outbound-PARTNER_A.html" in proc.stdout
        forms = encoded_forms(other)
        assert not any(f in proc.stdout + proc.stderr for f in forms)
        assert not any(f in (run_dir / "manifest.json").read_text(encoding="utf-8") for f in forms)
    finally:
        sql(f"DROP LOGIN [{other}]")


def test_the_kernels_seal_refuses_when_an_output_holds_a_secret_it_learnt_later(fresh, monkeypatch):
    """A test-only cell shows text through the kit's display, then the kernel learns that text is a secret
    (as when a password is generated or resolved after something showed it). The runner never knows the
    value; the kernel's seal finds it in what the kit showed, records status secret_found naming the
    output (never the value) and fails the cell; `mirrorkit run` exits 3 naming the notebook."""
    tmp = fresh["tmp"]
    d = tmp / "kernel-seal"
    late = "Late-" + secrets.token_hex(6) + NASTY
    source = ("from mirrorkit.notebook import display as _d\n"
              "from mirrorkit.access.credentials import Secret as _S\n"
              f"_d.markdown('shown early: ' + {late!r})\n"
              f"_late = _S({late!r}, 'a secret learnt late')\n")
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", R.notebook_dir_with_cell(d / "notebooks", "outbound", source))
    timed = R.run(fresh["params"], mode="plan", only="outbound", target="PARTNER_A", out=d / "runs",
                  certificate_dir=fresh["certs"])
    out = timed.outcome
    assert not REGISTRY.found_in(late), "the value reached the test process's registry"
    assert out.exit_code == runner.SECRET_FOUND, "\n".join(timed.log)
    m = R.manifest(out.run_dir)
    assert m["sealed"] is False
    assert m["secret_found_in"] == ["01-outbound-PARTNER_A.html", "01-outbound-PARTNER_A.ipynb"], m
    from mirrorkit.notebook.records import read_records
    (seal,) = read_records(out.run_dir / "01-outbound-PARTNER_A.ipynb")["seal"]
    assert seal["status"] == "secret_found" and seal["secret_found_in"], seal
    assert all("markdown" in where for where in seal["secret_found_in"]), seal
    assert m["steps"][0]["status"] == "failed"
    assert "secret value is in the outputs" in (m["steps"][0]["reason"] or ""), m["steps"][0]
    # what the kernel showed before it knew stays in its .ipynb and the HTML made from it (the runner cannot
    # redact a value it never knew); the manifest and the log do not hold it
    assert _holding(_everything(out.run_dir, timed.log), late) == ["01-outbound-PARTNER_A.html",
                                                                   "01-outbound-PARTNER_A.ipynb"]
