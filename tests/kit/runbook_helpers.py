"""Helpers for the runbook acceptance tests (tests/kit/test_runbook_*.py).

* parameter files for lab instances (the shape of parameters/lab.yaml, secrets as env: references);
* running a notebook under papermill exactly as an operator would (-f file, -p target/mode/…),
  with its records, its error and the captured papermill log;
* reading the catalog of a lab instance through the client stack, and normalising it for comparisons;
* the lab-only endpoint probe;
* two lab-side instruments, installed on the in-process lab instances (the notebook kernels reach
  them over TCP like any client): a spy that counts the sessions the kit opens, and a fault that
  drops the kit's connection right after its k-th statement has committed.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

ENV_SA = "MK_TEST_SA"          # connection.password: 'env:MK_TEST_SA'
ENV_DMK = "MK_TEST_DMK"        # secrets.master_key_password: 'env:MK_TEST_DMK'
ENV_PVK = "MK_TEST_PVK"        # certificate.private_key_backup.password: 'env:MK_TEST_PVK'
DMK_PASSWORD = "Kit-Test-Master-Key-Passw0rd!"
KIT_APP_PREFIX = "mirrorkit/"  # connect.py: APP=mirrorkit/<version>


# ---------------------------------------------------------------------------------------------
# The lab (the same module object as the `lab` fixture, so addresses never collide)
# ---------------------------------------------------------------------------------------------

def lab_support():
    """tests/conftest.py as pytest loaded it (Lab, SA_PASSWORD, next_address share one counter)."""
    conftest = ROOT / "tests" / "conftest.py"
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if isinstance(f, str) and f.endswith("conftest.py") and Path(f).resolve() == conftest:
            return mod
    import tests.conftest as mod  # pragma: no cover - pytest always loads it first
    return mod


def start_lab(state_dir: Path, *names: str):
    """A Lab (tests.conftest.Lab) with the named instances started, for module-scoped fixtures."""
    support = lab_support()
    lab = support.Lab(Path(state_dir))
    try:
        for n in names:
            lab.start(n)
    except BaseException:
        lab.stop_all()
        raise
    return lab


def sa_password() -> str:
    return lab_support().SA_PASSWORD


def secret_env(monkeypatch, *, sa: Optional[str] = None, dmk: str = DMK_PASSWORD,
               pvk: Optional[str] = None) -> None:
    """The environment the notebook kernels inherit (papermill starts them with os.environ)."""
    monkeypatch.setenv(ENV_SA, sa or sa_password())
    monkeypatch.setenv(ENV_DMK, dmk)
    if pvk is not None:
        monkeypatch.setenv(ENV_PVK, pvk)


# ---------------------------------------------------------------------------------------------
# Parameter files
# ---------------------------------------------------------------------------------------------

def parameter_values(lab, roles: dict[str, str], *, environment: str = "kit", topology: Optional[str] = None,
                     endpoint: Optional[dict] = None, certificate: Optional[dict] = None,
                     logins: Optional[dict] = None, connection: Optional[dict] = None,
                     secrets: Optional[dict] = None, verify: Optional[dict] = None) -> dict:
    """A parameter file's values for lab instances, in the shape of parameters/lab.yaml.

    roles: instance name → partner | witness | replica (in file order).
    """
    values: dict[str, Any] = {"environment": environment}
    if topology is not None:
        values["topology"] = topology
    values["instances"] = [{"name": name, "server": f"{lab[name].host},{lab[name].port}", "role": role}
                           for name, role in roles.items()]
    values["endpoint"] = {"name": "Mirroring", "port": 5022, **(endpoint or {})}
    values["certificate"] = dict(certificate or {})
    values["logins"] = dict(logins or {})
    values["connection"] = {"driver": "FreeTDS", "authentication": "sql", "user": "sa",
                            "password": f"env:{ENV_SA}", "encrypt": "optional", "tds_version": "7.4",
                            **(connection or {})}
    values["secrets"] = {"master_key_password": f"env:{ENV_DMK}", **(secrets or {})}
    values["verify"] = dict(verify or {})
    return values


def write_parameter_file(directory: Path, values: dict, name: str = "params.yaml") -> Path:
    """Write the values as a YAML parameter file (every string quoted as YAML 1.1 needs)."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# written by tests/kit/runbook_helpers.py\n" + yaml.safe_dump(
        values, sort_keys=False, allow_unicode=True, default_flow_style=False)
    path.write_text(text, encoding="utf-8")
    return path


def read_parameter_file(path: Path) -> dict:
    """The top-level values papermill's -f would pass."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def injected_parameters(parameter_file: Optional[Path], target: Optional[str], mode: str,
                        certificate_dir: Path, extra: Optional[dict] = None) -> dict[str, Any]:
    """What an operator passes with papermill -p: the parameter file's path and the run parameters."""
    parameters: dict[str, Any] = {"parameters_file": str(parameter_file)} if parameter_file else {}
    if target is not None:
        parameters["target"] = target
    parameters["mode"] = mode
    parameters["certificate_dir"] = str(certificate_dir)
    parameters.update(extra or {})
    return parameters


# ---------------------------------------------------------------------------------------------
# Running a notebook
# ---------------------------------------------------------------------------------------------

@dataclass
class NotebookRun:
    notebook: str
    target: Optional[str]
    mode: str
    output: Path
    records: dict[str, list]
    error: Optional[BaseException]
    log: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        return self.output.read_text(encoding="utf-8") if self.output.exists() else ""

    def plan_steps(self) -> list[dict]:
        return [s for plan in self.records.get("plan", [[]])[-1] for s in plan["steps"]]

    def plan_sql(self) -> str:
        return "\n".join(s["sql"] for s in self.plan_steps())

    def statements(self) -> list[dict]:
        return self.records.get("statement", [])

    def error_text(self) -> str:
        """The error as the notebook showed it (the failing cell's outputs) plus the exception."""
        parts = [str(self.error or "")]
        if self.output.exists():
            import nbformat
            nb = nbformat.read(str(self.output), as_version=4)
            for cell in nb.cells:
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        parts.append(f"{out.get('ename')}: {out.get('evalue')}")
                        parts.extend(out.get("traceback", []))
                    elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                        parts.append(out.get("text", ""))
        return "\n".join(parts)

    def describe(self) -> str:
        return (f"{self.notebook} target={self.target} mode={self.mode}: "
                f"{'ok' if self.ok else 'FAILED'}\n{self.error_text() if not self.ok else ''}")


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.lines.append(repr(record.msg))


_counter = iter(range(1, 1_000_000))
_counter_lock = threading.Lock()


def run_notebook(notebook: str, parameter_file: Optional[Path], *, target: Optional[str], mode: str,
                 certificate_dir: Path, out_dir: Path, values: Optional[dict] = None,
                 extra: Optional[dict] = None, expect_ok: Optional[bool] = None, kernels=None) -> NotebookRun:
    """Execute notebooks/<notebook>.ipynb under papermill like `-p parameters_file FILE -p target … -p mode …`.

    values are injected as they are, like `papermill -f` injects a file's top-level keys (for tests of
    the refusal); extra adds -p parameters. The papermill log (with cell outputs) is captured.
    expect_ok=True/False asserts the outcome with the notebook's own error text in the message.
    kernels: a mirrorkit.execution.kernels.KernelPool (started with cwd=ROOT) to take an already started
    kernel from, executed by the runner's papermill engine, as `mirrorkit run` does.
    """
    import papermill
    from mirrorkit.notebook.records import read_records

    with _counter_lock:
        n = next(_counter)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{n:03d}-{notebook}-{(target or 'default')}-{mode}.ipynb".replace("/", "_")
    parameters = injected_parameters(parameter_file, target, mode, certificate_dir, extra)
    if notebook == "verify":          # verify takes none of these
        for key in ("target", "mode", "certificate_dir"):
            parameters.pop(key, None)
    if values is not None:
        parameters.update(values)
    capture = _Capture()
    capture.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("papermill")
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    error = None
    started = time.monotonic()
    kernel = None
    try:
        if kernels is not None:
            kernel = kernels.take()
            papermill.execute_notebook(str(NOTEBOOKS / f"{notebook}.ipynb"), str(output), parameters=parameters,
                                       kernel_name=kernels.kernel_name, engine_name="mirrorkit", kernel=kernel,
                                       progress_bar=False, log_output=True)
        else:
            papermill.execute_notebook(str(NOTEBOOKS / f"{notebook}.ipynb"), str(output), parameters=parameters,
                                       kernel_name="python3", progress_bar=False, log_output=True, cwd=str(ROOT))
    except Exception as exc:       # PapermillExecutionError: the notebook failed (the output is still written)
        error = exc
    finally:
        if kernel is not None:
            kernels.retire(kernel)
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    records = read_records(output) if output.exists() else {}
    run = NotebookRun(notebook, target, mode, output, records, error, "\n".join(capture.lines),
                      time.monotonic() - started)
    (out_dir / (output.stem + ".papermill.log")).write_text(run.log, encoding="utf-8")
    if expect_ok is True:
        assert run.ok, run.describe()
    elif expect_ok is False:
        assert not run.ok, f"{notebook} target={target} mode={mode} was expected to fail but succeeded"
    return run


@dataclass
class InProcessRun:
    notebook: str
    target: Optional[str]
    namespace: dict
    error: Optional[BaseException]
    stdout: str

    @property
    def ok(self) -> bool:
        return self.error is None


def run_in_process(notebook: str, parameter_file: Optional[Path], *, target: Optional[str], mode: str,
                   certificate_dir: Path, values: Optional[dict] = None, expect_ok: Optional[bool] = None
                   ) -> InProcessRun:
    """Execute the notebook's own code cells in this process, without a kernel (fast; used to reach
    preconditions and for reference runs). Parameters are injected after the parameters cell, as papermill
    does; the first failing cell stops the run, as under papermill."""
    import nbformat
    nb = nbformat.read(str(NOTEBOOKS / f"{notebook}.ipynb"), as_version=4)
    parameters = injected_parameters(parameter_file, target, mode, certificate_dir, values)
    parameters.setdefault("interactive", False)     # without a kernel the guard sees no injected cell
    namespace: dict[str, Any] = {"__name__": "__main__"}
    out = io.StringIO()
    error = None
    with contextlib.redirect_stdout(out):
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            try:
                exec(compile(cell.source, f"<{notebook} code cell {i}>", "exec"), namespace)
            except Exception as exc:
                error = exc
                break
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                namespace.update(parameters)
    kit_run = namespace.get("run")
    if kit_run is not None:          # a failed run leaves its connections open
        kit_run.close()
    run = InProcessRun(notebook, target, namespace, error, out.getvalue())
    if expect_ok is True:
        assert run.ok, f"{notebook} {target} (in process) failed: {error!r}"
    elif expect_ok is False:
        assert not run.ok, f"{notebook} {target} (in process) was expected to fail"
    return run


def runbook_order(partners: list[str], witness: Optional[str]) -> list[tuple[str, str]]:
    """The documented order: outbound everywhere, inbound on the partners (replicas), then witness."""
    steps = [("outbound", n) for n in partners + ([witness] if witness else [])]
    steps += [("inbound", n) for n in partners]
    if witness:
        steps.append(("witness", witness))
    return steps


def full_runbook(parameter_file: Path, *, partners: list[str], witness: Optional[str], certificate_dir: Path,
                 out_dir: Optional[Path] = None, mode: str = "apply", in_process: bool = False,
                 skip: int = 0, expect_ok: Optional[bool] = None) -> list:
    """Run the documented order (from its skip-th step) under papermill, or in process."""
    runs = []
    for notebook, name in runbook_order(partners, witness)[skip:]:
        if in_process:
            runs.append(run_in_process(notebook, parameter_file, target=name, mode=mode,
                                       certificate_dir=certificate_dir, expect_ok=expect_ok))
        else:
            runs.append(run_notebook(notebook, parameter_file, target=name, mode=mode,
                                     certificate_dir=certificate_dir, out_dir=out_dir, expect_ok=expect_ok))
    return runs


# ---------------------------------------------------------------------------------------------
# The catalog, through the client stack
# ---------------------------------------------------------------------------------------------

def _rows(handle, sql: str) -> list[tuple]:
    return [tuple(r) for r in handle.sql(sql)]


def catalog(handle) -> dict:
    """What certificate trust depends on, read with the documented views."""
    master_key = _rows(handle, "SELECT k.name, k.algorithm_desc, d.is_master_key_encrypted_by_server "
                               "FROM master.sys.symmetric_keys AS k CROSS JOIN (SELECT "
                               "is_master_key_encrypted_by_server FROM master.sys.databases WHERE name = N'master') "
                               "AS d WHERE k.name = N'##MS_DatabaseMasterKey##'")
    certificates = _rows(handle, "SELECT c.name, dp.name, c.pvt_key_encryption_type, c.subject, c.thumbprint, "
                                 "c.certificate_id, c.start_date, c.expiry_date, c.pvt_key_last_backup_date "
                                 "FROM master.sys.certificates AS c LEFT JOIN master.sys.database_principals AS dp "
                                 "ON dp.principal_id = c.principal_id WHERE c.name NOT LIKE N'##%' ORDER BY c.name")
    endpoints = _rows(handle, "SELECT e.name, e.state_desc, e.role_desc, e.connection_auth_desc, c.name, "
                              "e.is_encryption_enabled, e.encryption_algorithm_desc, t.port, t.ip_address, "
                              "SUSER_NAME(e.principal_id) "
                              "FROM master.sys.database_mirroring_endpoints AS e "
                              "JOIN master.sys.tcp_endpoints AS t ON t.endpoint_id = e.endpoint_id "
                              "LEFT JOIN master.sys.certificates AS c ON c.certificate_id = e.certificate_id")
    logins = _rows(handle, "SELECT name, type_desc, is_disabled FROM master.sys.server_principals "
                           "WHERE type IN ('S', 'U', 'C') AND name NOT LIKE N'##%' ORDER BY name")
    users = _rows(handle, "SELECT dp.name, dp.type_desc, sp.name FROM master.sys.database_principals AS dp "
                          "LEFT JOIN master.sys.server_principals AS sp ON sp.sid = dp.sid "
                          "WHERE dp.principal_id >= 5 AND dp.principal_id < 16384 ORDER BY dp.name")
    permissions = _rows(handle, "SELECT e.name, p.permission_name, p.state_desc, SUSER_NAME(p.grantee_principal_id) "
                                "FROM master.sys.server_permissions AS p JOIN master.sys.database_mirroring_endpoints "
                                "AS e ON p.class = 105 AND p.major_id = e.endpoint_id ORDER BY 4, 2")
    return {
        "master_key": [(n, a, bool(b)) for n, a, b in master_key],
        "certificates": [{"name": n, "owner": o, "private_key": pk, "subject": s, "thumbprint": bytes(t),
                          "certificate_id": i, "start": st, "expiry": ex, "backup": bk}
                         for n, o, pk, s, t, i, st, ex, bk in certificates],
        "endpoints": [{"name": n, "state": s, "role": r, "auth": a, "certificate": c, "encrypted": bool(e),
                       "algorithm": alg, "port": p, "ip": ip, "owner": ow}
                      for n, s, r, a, c, e, alg, p, ip, ow in endpoints],
        "logins": [(n, t, bool(d)) for n, t, d in logins],
        "users": [(n, t, ln) for n, t, ln in users],
        "permissions": [tuple(r) for r in permissions],
    }


def comparable(state: dict) -> dict:
    """The catalog without what differs between two correct runs (ids, dates, fresh thumbprints)."""
    return {
        "master_key": state["master_key"],
        "certificates": [{k: c[k] for k in ("name", "owner", "private_key", "subject")}
                         for c in state["certificates"]],
        "certificate_backed_up": [(c["name"], c["backup"] is not None) for c in state["certificates"]],
        "endpoints": state["endpoints"],
        "logins": state["logins"],
        "users": state["users"],
        "permissions": state["permissions"],
    }


def thumbprint_of(handle, certificate_name: str) -> Optional[bytes]:
    rows = handle.sql("SELECT thumbprint FROM master.sys.certificates WHERE name = ?", certificate_name)
    return bytes(rows[0][0]) if rows else None


def probe(initiator, target_handle, peer_role: str, port: int = 5022) -> tuple:
    """sys.sp_mirrorkit_probe on the initiator: (endpoint_url, succeeded, error_number, message)."""
    rows = initiator.sql("EXEC sys.sp_mirrorkit_probe @endpoint_url = ?, @peer_role = ?",
                         f"TCP://{target_handle.host}:{port}", peer_role)
    assert len(rows) == 1, rows
    url, ok, number, message = rows[0]
    return url, bool(ok), number, message


def probe_failures(lab, pairs: Iterable[tuple[str, str, str]]) -> list[str]:
    """The pairs (initiator, target, role) whose probe did not succeed, with the reason."""
    out = []
    for a, b, role in pairs:
        url, ok, number, message = probe(lab[a], lab[b], role)
        if not ok:
            out.append(f"{a} -> {b} as {role}: {number} {message}")
    return out


# ---------------------------------------------------------------------------------------------
# Lab-side instruments
# ---------------------------------------------------------------------------------------------

def _restore_login(inst, original) -> None:
    """Put back what was there: the class's method, or an outer instrument's wrapper."""
    if getattr(original, "__self__", None) is inst and getattr(original, "__func__", None) is type(inst).login:
        inst.__dict__.pop("login", None)
    else:
        inst.login = original


def _is_kit(app: str) -> bool:
    return (app or "").startswith(KIT_APP_PREFIX)


_CHANGE = re.compile(r"\s*(CREATE|ALTER|DROP|GRANT|REVOKE|DENY|BACKUP|RESTORE|OPEN|CLOSE|EXEC|EXECUTE|"
                     r"INSERT|UPDATE|DELETE|USE|SET|DECLARE|BEGIN|IF)\b", re.IGNORECASE)
_DRIVER_CHATTER = re.compile(r"\s*sp_datatype_info", re.IGNORECASE)   # FreeTDS asks this when binding


def is_statement(sql: str) -> bool:
    """A batch from the kit that is not a read (the kit reads with SELECT only)."""
    if _DRIVER_CHATTER.match(sql):
        return False
    return bool(_CHANGE.match(sql)) or not sql.lstrip().upper().startswith("SELECT")


@dataclass
class SessionSpy:
    """Counts every login to the instances (kit sessions by their APP=mirrorkit/<version>)."""
    handles: list
    logins: list = field(default_factory=list)         # (instance, app, user)
    batches: list = field(default_factory=list)        # (instance, sql) sent by kit sessions
    _originals: dict = field(default_factory=dict)

    def __enter__(self) -> "SessionSpy":
        for h in self.handles:
            inst = h.instance
            original = inst.login
            self._originals[id(inst)] = (inst, original)

            def login(user, password, database, *, _inst=inst, _orig=original, **kw):
                session = _orig(user, password, database, **kw)
                self.logins.append((_inst.name, kw.get("app", ""), user))
                if _is_kit(kw.get("app", "")):
                    execute = session.execute

                    def spy_execute(sql, params=None, _execute=execute, _name=_inst.name):
                        self.batches.append((_name, sql))
                        return _execute(sql, params)
                    session.execute = spy_execute
                    call_procedure = session.call_procedure

                    def spy_call(name, params, _call=call_procedure, _name=_inst.name):
                        self.batches.append((_name, f"EXEC {name}"))
                        return _call(name, params)
                    session.call_procedure = spy_call
                return session
            inst.login = login
        return self

    def __exit__(self, *exc) -> None:
        for inst, original in self._originals.values():
            _restore_login(inst, original)
        self._originals.clear()

    @property
    def kit_logins(self) -> list:
        return [x for x in self.logins if _is_kit(x[1])]

    @property
    def kit_statements(self) -> list:
        """(instance, batch) for every batch from the kit that is not a read."""
        return [b for b in self.batches if is_statement(b[1])]


class DropAfterStatement:
    """A lab fault: the k-th statement the kit sends (anywhere in `handles`) runs and commits, then the
    lab drops that connection before the reply leaves — the kit sees its connection die, as when the
    network fails, the server restarts or the kernel is killed right after the statement."""

    def __init__(self, handles: list, k: int):
        self.handles = handles
        self.k = k
        self.seen: list[tuple[str, str]] = []
        self.fired = False
        self._lock = threading.Lock()

    def __enter__(self) -> "DropAfterStatement":
        self._originals = []
        for h in self.handles:
            inst, server = h.instance, h.running.server
            original = inst.login
            self._originals.append((inst, original))

            def login(user, password, database, *, _inst=inst, _orig=original, _server=server, **kw):
                session = _orig(user, password, database, **kw)
                if _is_kit(kw.get("app", "")):
                    execute = session.execute

                    def faulty_execute(sql, params=None, _execute=execute, _session=session):
                        if not is_statement(sql) or self.fired:
                            return _execute(sql, params)
                        events = _execute(sql, params)      # runs and commits (autocommit)
                        with self._lock:
                            self.seen.append((_inst.name, sql))
                            fire = len(self.seen) == self.k
                            if fire:
                                self.fired = True
                        if fire:
                            self._drop(_server, _session)
                        return events
                    session.execute = faulty_execute
                return session
            inst.login = login
        return self

    @staticmethod
    def _drop(server, session) -> None:
        # lab internals (lab/mirrorkit_lab/tds/server.py, connection.py): the TDS connection that carries session
        with server._conns_lock:
            conns = [c for c in server._conns if c.session is session]
        for c in conns:
            c._closing = True
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __exit__(self, *exc) -> None:
        for inst, original in self._originals:
            _restore_login(inst, original)
        self._originals = []
