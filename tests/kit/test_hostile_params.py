"""Hostile parameter files (tests/kit/hostile_params/): refused before anything is sent, or accepted and quoted.

Each file says in its header what must happen to it:

* `# hostile: refused` with `# key: <key path>` (`-` for a problem of the whole file): `mirrorkit run FILE`
  exits 2 with a message `<file>: <key path>: …`; papermill with `-p parameters_file FILE` fails in the
  notebook's Start cell with the same message; a session spy on the lab instances the file names sees no
  kit login and no statement on either path;
* `# hostile: accepted`: `mirrorkit run FILE --mode apply` configures two fresh lab partners, and the
  lab's catalog holds every certificate, login, user, subject and endpoint name exactly as the file's
  templates give them; afterwards papermill plans nothing on the same file (the names read back match).

Placeholders filled in when a file is materialized: @SERVER_A@ / @SERVER_B@ (the lab partners' HOST,PORT),
@PAD@ (2 MB of padding: a file too big to be a parameter file). Time is bounded: papermill runs for refused
files stop at the Start cell; the accepted files share one lab process (fresh instances per file) and run
the stage notebooks two at a time.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from mirrorkit.config.parameters import load

from . import runbook_helpers as H
from . import runner_helpers as R

pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).parent / "hostile_params"
FILES = sorted(HERE.glob("*.yaml"))
PAD = "x" * (2 * 1024 * 1024)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def header(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"# (hostile|category|key): (.*)", line)
        if not m:
            break
        out[m.group(1)] = m.group(2).strip()
    return out


HEADERS = {p.stem: header(p) for p in FILES}
REFUSED = [n for n, h in HEADERS.items() if h["hostile"] == "refused"]
ACCEPTED = [n for n, h in HEADERS.items() if h["hostile"] == "accepted"]


def test_the_suite_is_whole():
    assert len(FILES) >= 40, len(FILES)
    assert all(h.get("hostile") in ("refused", "accepted") and h.get("category") for h in HEADERS.values()), HEADERS
    assert all(HEADERS[n].get("key") for n in REFUSED), [n for n in REFUSED if not HEADERS[n].get("key")]
    assert len(ACCEPTED) >= 8 and len(REFUSED) >= 30


def materialize(name: str, lab, directory: Path, a: str = "PARTNER_A", b: str = "PARTNER_B") -> Path:
    text = (HERE / f"{name}.yaml").read_text(encoding="utf-8")
    text = (text.replace("@SERVER_A@", f"{lab[a].host},{lab[a].port}")
                .replace("@SERVER_B@", f"{lab[b].host},{lab[b].port}").replace("@PAD@", PAD))
    path = Path(directory) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def expected_prefix(path: Path, key: str) -> str:
    return f"{path}: " if key == "-" else f"{path}: {key}: "


def start_cell_failure(run) -> tuple[str, str]:
    """(source of the cell papermill marked as failed, what it shows)."""
    import nbformat
    nb = nbformat.read(str(run.output), as_version=4)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("papermill", {}).get("exception"):
            parts = []
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    parts.append(f"{out.get('ename')}: {out.get('evalue')}")
                elif out.get("output_type") == "stream":
                    parts.append(out.get("text", ""))
            return cell.source, ANSI.sub("", "\n".join(parts))
    return "", ""


# ---------------------------------------------------------------------------------------------
# Refused: nothing is sent
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def refused_lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-refused")
    lab = H.start_lab(tmp / "lab", "PARTNER_A", "PARTNER_B")
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp, pvk="Pvk-Test-Passw0rd!")
            yield lab, tmp
    finally:
        lab.stop_all()


@pytest.mark.parametrize("name", REFUSED)
def test_refused_by_mirrorkit_run_and_papermill_before_anything_is_sent(refused_lab, name):
    lab, tmp = refused_lab
    key = HEADERS[name]["key"]
    path = materialize(name, lab, tmp / "files")
    prefix = expected_prefix(path, key)
    with H.SessionSpy(list(lab.instances.values())) as spy:
        proc = R.cli("run", str(path), "--mode", "apply", "--out", str(tmp / "runs" / name),
                     "--certificate-dir", str(tmp / "certs" / name), timeout=120)
        run = H.run_notebook("outbound", path, target="PARTNER_A", mode="apply",
                             certificate_dir=tmp / "certs" / name, out_dir=tmp / "out")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"{name}: mirrorkit run must refuse the file\n{R.describe(proc)}"
    lines = [ln[ln.index(prefix):] for ln in output.splitlines() if prefix in ln]
    assert lines, f"{name}: no message starting {prefix!r}\n{R.describe(proc)}"
    assert "Sup3r-Secret-Value!" not in output, f"{name}: the message echoes the secret"
    assert not run.ok, f"{name}: papermill ran the notebook to the end"
    source, shown = start_cell_failure(run)
    assert "rb.start(" in source, f"{name}: the notebook failed elsewhere than in its Start cell:\n{source}\n{shown}"
    assert lines[0] in shown, f"{name}: the Start cell does not show {lines[0]!r}:\n{shown}"
    assert "Sup3r-Secret-Value!" not in shown
    assert spy.kit_logins == [], f"{name}: a mirrorkit session reached the lab: {spy.kit_logins}"
    assert spy.kit_statements == []


# ---------------------------------------------------------------------------------------------
# Accepted: the catalog shows the names exactly as written
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def accepted_lab(tmp_path_factory):
    """One lab process for all accepted files; each file gets two fresh partners in it."""
    tmp = tmp_path_factory.mktemp("hostile-accepted")
    lab = H.start_lab(tmp / "lab")
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp, pvk="Pvk-Test-Passw0rd!")
            yield lab, tmp
    finally:
        lab.stop_all()


def names_in_catalog(handle) -> dict:
    rows = lambda sql: sorted(tuple(r) for r in handle.sql(sql))   # noqa: E731
    return {
        "certificates": rows("SELECT name, subject FROM master.sys.certificates WHERE name NOT LIKE N'##%'"),
        "logins": rows("SELECT name FROM master.sys.server_principals WHERE type = 'S' AND name <> N'sa' "
                       "AND name NOT LIKE N'##%'"),
        "users": rows("SELECT dp.name, sp.name FROM master.sys.database_principals AS dp "
                      "JOIN master.sys.server_principals AS sp ON sp.sid = dp.sid "
                      "WHERE dp.principal_id >= 5 AND dp.principal_id < 16384"),
        "endpoints": rows("SELECT e.name, c.name FROM master.sys.database_mirroring_endpoints AS e "
                          "LEFT JOIN master.sys.certificates AS c ON c.certificate_id = e.certificate_id"),
    }


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_and_quoted_the_catalog_shows_the_names_as_written(accepted_lab, name):
    lab, tmp = accepted_lab
    a, b = f"PARTNER_A_{name}", f"PARTNER_B_{name}"
    lab.start(a)
    lab.start(b)
    text = (HERE / f"{name}.yaml").read_text(encoding="utf-8")
    # the instance names as @@SERVERNAME reports them; everything else as the file has it
    text = text.replace("- name: PARTNER_A\n", f"- name: {a}\n").replace("- name: PARTNER_B\n", f"- name: {b}\n")
    src = tmp / "src" / f"{name}.yaml"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(text, encoding="utf-8")
    path = materialize_text(src, lab, tmp / "files", a, b)
    env = load(path)
    started = time.monotonic()
    proc = R.cli("run", str(path), "--mode", "apply", "--jobs", "2", "--out", str(tmp / "runs" / name),
                 "--certificate-dir", str(tmp / "certs" / name), timeout=300)
    assert proc.returncode == 0, f"{name}: the apply failed\n{R.describe(proc)}"
    subject = {i: env.certificate_subject(i) for i in (a, b)}
    cert = {i: env.certificate_name(i) for i in (a, b)}
    for here, peer in ((a, b), (b, a)):
        got = names_in_catalog(lab[here])
        login, user = env.login_name(peer), env.user_name(peer)
        assert got["certificates"] == sorted([(cert[here], subject[here]), (cert[peer], subject[peer])]), \
            f"{name} on {here}: {got['certificates']}"
        assert got["logins"] == [(login,)], f"{name} on {here}: {got['logins']}"
        assert got["users"] == [(user, login)], f"{name} on {here}: {got['users']}"
        assert got["endpoints"] == [(env.endpoint.name, cert[here])], f"{name} on {here}: {got['endpoints']}"
    # papermill with -p parameters_file reads the same names back: nothing left to plan
    run = H.run_notebook("outbound", path, target=a, mode="plan", certificate_dir=tmp / "certs" / name,
                         out_dir=tmp / "out", expect_ok=True)
    assert run.plan_steps() == [], f"{name}: a second plan wants {run.plan_sql()}"
    assert time.monotonic() - started < 240


def materialize_text(src: Path, lab, directory: Path, a: str, b: str) -> Path:
    text = src.read_text(encoding="utf-8")
    text = (text.replace("@SERVER_A@", f"{lab[a].host},{lab[a].port}")
                .replace("@SERVER_B@", f"{lab[b].host},{lab[b].port}"))
    path = Path(directory) / src.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
