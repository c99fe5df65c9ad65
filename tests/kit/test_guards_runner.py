"""Acceptance: `mirrorkit run` guards on the command line, against lab instances served by this process.

* Ctrl-C in apply mode: `mirrorkit run --mode apply` receives SIGINT while a statement is on the server; it
  exits 130, the manifest says interrupted and the run is sealed; statements after it are never sent;
* a second Ctrl-C aborts at once: exit 130, one line, no traceback;
* the availability-group topology (three replicas): apply, a second apply that plans and sends nothing, verify
  on the mesh (all six ordered pairs OK); `--change-id` names the run folder and is in the manifest and every
  run header.

(tests/kit/test_runner_exit_codes.py covers the first Ctrl-C in plan mode, in process, with one and two jobs.)
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mirrorkit.notebook.records import read_records

from . import runbook_helpers as H
from . import runner_helpers as R

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]


class HoldStatement:
    """A lab instrument: the k-th changing statement the kit sends is held on the server for `seconds`
    (then runs), and `reached` is set when it arrives — a statement in flight, as on a slow server."""

    def __init__(self, handles, k: int, seconds: float):
        self.handles, self.k, self.seconds = handles, k, seconds
        self.reached = threading.Event()
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __enter__(self):
        self._originals = []
        for h in self.handles:
            inst = h.instance
            original = inst.login
            self._originals.append((inst, original))

            def login(user, password, database, *, _inst=inst, _orig=original, **kw):
                session = _orig(user, password, database, **kw)
                if H._is_kit(kw.get("app", "")):
                    execute = session.execute

                    def held(sql, params=None, _execute=execute):
                        if H.is_statement(sql):
                            with self._lock:
                                self.sent.append((_inst.name, sql))
                                hold = len(self.sent) == self.k
                            if hold:
                                self.reached.set()
                                time.sleep(self.seconds)
                        return _execute(sql, params)
                    session.execute = held
                return session
            inst.login = login
        return self

    def __exit__(self, *exc):
        for inst, original in self._originals:
            H._restore_login(inst, original)


def _start(args, cwd):
    env = dict(os.environ)
    return subprocess.Popen([sys.executable, "-m", "mirrorkit", *args], cwd=str(cwd), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    R.secret_environ(monkeypatch)
    lab = H.start_lab(tmp_path / "lab", *R.NAMES)
    try:
        yield lab, R.write_params(tmp_path, R.parameter_values(lab))
    finally:
        lab.stop_all()


def _apply_held(lab, params, tmp_path, presses: int):
    """mirrorkit run --mode apply; Ctrl-C (SIGINT to the command, as a terminal sends it) while the second
    statement — outbound PARTNER_A's certificate — is on the server. With presses=2 the second Ctrl-C follows
    as soon as the command has said it is interrupting (two signals that arrive while Python's main thread
    is inside one C call are delivered to it as one)."""
    with HoldStatement(list(lab.instances.values()), k=2, seconds=4) as hold:
        proc = _start(["run", str(params), "--mode", "apply", "--out", str(tmp_path / "runs"),
                       "--certificate-dir", str(tmp_path / "certs")], tmp_path)
        stderr_lines: list[str] = []
        said_interrupting = threading.Event()
        second_at: list[float] = []

        def read_stderr():
            for line in proc.stderr:
                stderr_lines.append(line)
                if "interrupting" in line and not said_interrupting.is_set():
                    said_interrupting.set()
                    if presses == 2:
                        second_at.append(time.monotonic())
                        proc.send_signal(signal.SIGINT)
        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        try:
            assert hold.reached.wait(120), "the apply never reached its second statement"
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            stdout = proc.stdout.read()
            proc.wait(timeout=60)
            reader.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = time.monotonic() - second_at[0] if second_at else None
        time.sleep(4.5)               # let the held statement finish before the lab is inspected
        sent = list(hold.sent)
    return proc.returncode, stdout, "".join(stderr_lines), seconds, sent


def test_ctrl_c_in_apply_mode_exits_130_seals_interrupted_and_sends_nothing_after(fresh, tmp_path):
    lab, params = fresh
    code, stdout, stderr, _, sent = _apply_held(lab, params, tmp_path, presses=1)
    assert code == 130, f"exit {code}\n{stdout}\n{stderr}"
    assert "interrupting; the run will be sealed as interrupted" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    (run_dir,) = list((tmp_path / "runs").iterdir())
    m = R.manifest(run_dir)
    assert m["status"] == "interrupted" and m["exit_code"] == 130 and m["sealed"] is True, m
    steps = [(s["notebook"], s["target"], s["status"]) for s in m["steps"]]
    assert steps[0] == ("outbound", "PARTNER_A", "interrupted"), steps
    assert all(status == "skipped" for *_, status in steps[1:]), steps
    # no statement after the one in flight was sent, anywhere
    assert len(sent) == 2 and {name for name, _ in sent} == {"PARTNER_A"}, sent
    state = H.catalog(lab["PARTNER_A"])
    assert state["endpoints"] == [] and [c["name"] for c in state["certificates"]] == ["PARTNER_A_dbm_cert"]
    for other in ("PARTNER_B", "WITNESS"):
        assert H.catalog(lab[other])["master_key"] == []
    # the record shows where it stopped: statement 1 ok, the cell interrupted, no seal
    nb_path = run_dir / "01-outbound-PARTNER_A.ipynb"
    records = read_records(nb_path)
    assert [s["ok"] for s in records.get("statement", [])] == [True] and "seal" not in records, records.keys()
    nb = R.read_nb(nb_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "KeyboardInterrupt", errors
    assert nb.metadata["mirrorkit"]["status"] == "interrupted"
    check = R.cli("report", str(run_dir), "--check")
    assert check.returncode == 0 and "interrupted" in check.stdout, R.describe(check)


def test_second_ctrl_c_aborts_at_once_with_one_line(fresh, tmp_path):
    lab, params = fresh
    code, stdout, stderr, seconds, _ = _apply_held(lab, params, tmp_path, presses=2)
    assert code == 130, f"exit {code}\n{stdout}\n{stderr}"
    assert seconds is not None and seconds < 3, f"the second Ctrl-C took {seconds} s to abort"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.count("mirrorkit: aborted (Ctrl-C)") == 1, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines[-1] == "mirrorkit: aborted (Ctrl-C)", stderr
    assert [ln for ln in lines if not ln.startswith("mirrorkit")] == [], stderr
    # aborted, not sealed: no manifest
    assert not list((tmp_path / "runs").glob("*/manifest.json")), list((tmp_path / "runs").rglob("*"))


# ---------------------------------------------------------------------------------------------
# The availability-group topology through mirrorkit run
# ---------------------------------------------------------------------------------------------

REPLICAS = ("AG_1", "AG_2", "AG_3")


@pytest.fixture(scope="module")
def ag(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guards-ag")
    mp = pytest.MonkeyPatch()
    R.secret_environ(mp)
    lab = H.start_lab(tmp / "lab", *REPLICAS)
    try:
        values = R.parameter_values(lab, {n: "replica" for n in REPLICAS}, environment="ag",
                                    topology="availability_group")
        params = R.write_params(tmp, values)
        base = ["run", str(params), "--mode", "apply", "--out", str(tmp / "runs"), "--certificate-dir",
                str(tmp / "certs")]
        first = R.cli(*base, "--change-id", "CHG-AG-1", cwd=tmp)
        before_again = {n: H.catalog(lab[n]) for n in REPLICAS}
        with H.SessionSpy(list(lab.instances.values())) as spy:
            again = R.cli(*base, "--change-id", "CHG-AG-2", cwd=tmp)
        yield lab, tmp, first, again, spy, before_again
    finally:
        lab.stop_all()
        mp.undo()


def _run_dir(tmp, change_id):
    (d,) = [p for p in (tmp / "runs").iterdir() if p.name.endswith("_" + change_id)]
    return d


AG_ORDER = [("outbound", n) for n in REPLICAS] + [("inbound", n) for n in REPLICAS] + [("verify", None)]


def test_ag_apply_through_mirrorkit_run(ag):
    lab, tmp, first, _, _, _ = ag
    assert first.returncode == 0, R.describe(first)
    run_dir = _run_dir(tmp, "CHG-AG-1")
    m = R.manifest(run_dir)
    assert m["status"] == "ok" and m["sealed"] is True
    assert [(s["notebook"], s["target"], s["status"]) for s in m["steps"]] == \
        [(nb, t, "ok") for nb, t in AG_ORDER]
    for name in REPLICAS:
        ep = H.catalog(lab[name])["endpoints"]
        assert [(e["role"], e["certificate"], e["state"]) for e in ep] == [("ALL", f"{name}_dbm_cert", "STARTED")]
    pairs = [(a, b, "PARTNER") for a, b in itertools.permutations(REPLICAS, 2)]
    assert H.probe_failures(lab, pairs) == []


def test_ag_second_apply_plans_nothing_and_sends_nothing(ag):
    lab, tmp, _, again, spy, before = ag
    assert again.returncode == 0, R.describe(again)
    # verify reads the error log with EXEC xp_readerrorlog: a read; nothing else is sent
    changes = [(n, sql) for n, sql in spy.kit_statements if "xp_readerrorlog" not in sql]
    assert changes == [], changes
    assert {n: H.catalog(lab[n]) for n in REPLICAS} == before
    run_dir = _run_dir(tmp, "CHG-AG-2")
    for s in R.manifest(run_dir)["steps"]:
        if s["notebook"] == "verify":
            continue
        records = read_records(run_dir / s["notebook_file"])
        assert [st for plan in records["plan"][-1] for st in plan["steps"]] == [], (s["notebook_file"],
                                                                                   records["plan"])
        assert records.get("statement", []) == []


def test_ag_verify_on_the_mesh_all_six_pairs_ok(ag):
    _, tmp, _, _, _, _ = ag
    for change_id in ("CHG-AG-1", "CHG-AG-2"):
        run_dir = _run_dir(tmp, change_id)
        (step,) = [s for s in R.manifest(run_dir)["steps"] if s["notebook"] == "verify"]
        verdict = read_records(run_dir / step["notebook_file"])["verify"][-1]
        assert verdict["status"] == "PASS", verdict
        matrix = {(c["initiator"], c["acceptor"]): c["result"] for c in verdict["matrix"]}
        assert matrix == {pair: "OK" for pair in itertools.permutations(REPLICAS, 2)}, matrix


def test_change_id_names_the_folder_and_is_in_the_manifest_and_every_header(ag):
    _, tmp, _, _, _, _ = ag
    for change_id in ("CHG-AG-1", "CHG-AG-2"):
        run_dir = _run_dir(tmp, change_id)
        assert run_dir.name.endswith("_" + change_id)
        m = R.manifest(run_dir)
        assert m["change_id"] == change_id
        for s in m["steps"]:
            headers = read_records(run_dir / s["notebook_file"])["run_header"]
            assert [h["change_id"] for h in headers] == [change_id], s["notebook_file"]
