"""`mirrorkit run`: the runbook as a sealed change record.

Stages run in the documented order — outbound on every instance, inbound on every
partner or replica, witness, verify — with independent notebooks of a stage in
parallel (--jobs), stopping at the first failure. Each executed notebook gets the
true outcome stamped into its metadata (papermill leaves a cell timeout or a dead
kernel looking successful), an HTML export, and a line in manifest.json with the
sha256 of every file. Before sealing, every file of the run folder (manifest.json
included) is scanned for every encoded form of every secret the run resolved
(credentials.encoded_forms); the HTML export and manifest are redacted as they are
written and the log line by line as it is printed, and whatever needed redacting is
a finding too; a notebook whose own seal found a secret of its kernel (a generated
login password, notebook/run.py) is one as well. Any finding: exit 3, not sealed,
the files named, never the value.

A notebook's kernel is told the parameter file by absolute path and the sha256 of
the bytes the runner validated, and the run's settings (StepContract), never the
configuration values themselves.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from .. import __version__
from ..config import parameters as params
from .kernels import KernelPool
from .outcome import RUN_INVALID_PARAMETERS, RUN_SECRET_FOUND, ExitCode, StepStatus
from ..access.credentials import REGISTRY, SecretError, resolve, scan

# the exit codes by name, as the lab's demo and the tests read them (runner.OK, …)
OK, STEP_FAILED, INVALID_PARAMETERS, SECRET_FOUND = ExitCode.OK, ExitCode.STEP_FAILED, ExitCode.INVALID_PARAMETERS, \
    ExitCode.SECRET_FOUND
STEP_TIMED_OUT, KERNEL_DIED, INTERRUPTED = ExitCode.STEP_TIMED_OUT, ExitCode.KERNEL_DIED, ExitCode.INTERRUPTED
STEPS = ("outbound", "inbound", "witness", "verify")
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
ENGINE = "mirrorkit"    # mirrorkit.execution.engine.RecordEngine, by its papermill.engine entry point
DEFAULT_CELL_TIMEOUT = 600


@dataclass
class StepSpec:
    index: int
    notebook: str
    target: Optional[str]
    stage: int

    @property
    def stem(self) -> str:
        from ..core.artifacts import file_stem
        return f"{self.index:02d}-{self.notebook}" + (f"-{file_stem(self.target)}" if self.target else "")


@dataclass
class StepResult:
    spec: StepSpec
    status: StepStatus = StepStatus.PENDING
    exit_code: Optional[ExitCode] = None
    started: Optional[str] = None
    ended: Optional[str] = None
    duration: Optional[float] = None
    error: Optional[str] = None
    failure: Optional[dict] = None
    secret_in: list[str] = field(default_factory=list)    # files a secret was found in or redacted from


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def utc_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plan_steps(env: params.Environment, only: Optional[str] = None, target: Optional[str] = None,
               mode: str = "apply") -> list[StepSpec]:
    """The ordered steps; stage numbers group the steps that may run in parallel."""
    steps: list[StepSpec] = []

    def add(notebook: str, tgt: Optional[str], stage: int) -> None:
        if only and notebook != only:
            return
        if target and tgt and tgt.lower() != target.lower():
            return
        steps.append(StepSpec(len(steps) + 1, notebook, tgt, stage))
    for inst in env.instances:
        add("outbound", inst.name, 1)
    for inst in env.instances:
        if inst.role in ("partner", "replica"):
            add("inbound", inst.name, 2)
    if env.witness is not None:
        add("witness", env.witness.name, 3)
    if mode == "apply" or only == "verify":
        add("verify", None, 4)
    return steps


def resolve_all(env: params.Environment) -> list[str]:
    """Resolve every secret reference once, before anything runs: a missing one stops the run
    (exit 2), and the values are what the seal scans for. Returns the labels resolved."""
    labels, seen = [], set()
    for ref, label in env.secret_references():
        if ref.raw in seen:
            continue
        seen.add(ref.raw)
        resolve(ref, label, interactive=False)
        labels.append(label)
    return labels


def load_parameters(path: Path) -> tuple[params.Environment, str]:
    """The validated parameter file and the sha256 of the bytes validated. `params.load` reads the
    file itself, so the bytes are read before and after it: a file that changed meanwhile is refused
    (ParameterError) rather than given a digest of bytes that were never validated."""
    def digest() -> Optional[str]:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return None                  # params.load says why, in its own words
    before = digest()
    env = params.load(path)
    if before is None or digest() != before:
        raise params.ParameterError(str(path), [params.Problem("", "changed while it was being validated",
                                                               "run again once nothing writes to it")])
    return env, before


@dataclass(frozen=True)
class StepContract:
    """Everything the runner tells a notebook's kernel, as papermill parameters: the parameter file by
    absolute path with the sha256 of the bytes the runner validated (the kernel reads the file again
    and proves the digest), and the run's own settings. No configuration value is passed."""
    parameters_file: Path
    parameters_sha256: str
    mode: str
    change_id: str
    certificate_dir: Path

    def parameters(self, spec: StepSpec) -> dict:
        from ..notebook.runbook import arguments
        offered = {"parameters_file": str(Path(self.parameters_file).absolute()),
                   "parameters_sha256": self.parameters_sha256, "change_id": self.change_id, "interactive": False,
                   "target": spec.target, "mode": self.mode,
                   "certificate_dir": str(Path(self.certificate_dir).absolute())}
        # each notebook declares what it takes (verify: no target, mode or certificates); the guard in its
        # first cell refuses anything else
        return {k: v for k, v in offered.items() if k in arguments(spec.notebook)}


# -- executing one notebook ---------------------------------------------------------------------------
def execute(spec: StepSpec, run_dir: Path, contract: StepContract, cell_timeout: int, log: Callable[[str], None],
            kernels: KernelPool, stop: Optional[threading.Event] = None,
            abort: Optional[threading.Event] = None) -> StepResult:
    import nbformat
    import papermill as pm
    from ..notebook.records import SEAL_SECRET_FOUND
    result = StepResult(spec)
    if stop is not None and stop.is_set():     # queued behind a step that was running at Ctrl-C
        result.status = StepStatus.SKIPPED
        return result
    out = run_dir / f"{spec.stem}.ipynb"
    source = NOTEBOOK_DIR / f"{spec.notebook}.ipynb"
    start = time.monotonic()
    result.started = utc_iso()
    error: Optional[BaseException] = None
    kernel = None
    try:
        kernel = kernels.take()
        pm.execute_notebook(str(source), str(out), parameters=contract.parameters(spec), kernel_name=kernels.kernel_name,
                            engine_name=ENGINE, kernel=kernel, stop=stop, abort=abort, progress_bar=False,
                            log_output=False,
                            execution_timeout=cell_timeout, start_timeout=120, cwd=None)
    except Exception as exc:  # classified below
        error = exc
    finally:
        if kernel is not None:
            kernels.retire(kernel)
    result.ended = utc_iso()
    result.status, result.exit_code, result.error = classify(error, interrupted=stop is not None and stop.is_set())
    if error is not None and hasattr(error, "ename"):
        result.failure = {"cell_index": getattr(error, "cell_index", None), "ename": error.ename,
                          "evalue": REGISTRY.redact(str(error.evalue))[:2000]}
    if out.exists():
        nb = nbformat.read(str(out), as_version=4)
        seal = _seal(nb)
        if result.status == StepStatus.OK and seal is None:
            result.status, result.exit_code = StepStatus.FAILED, ExitCode.STEP_FAILED
            result.error = "the notebook has no seal record"
        # the kernel saw one of its own secrets (one this process never knew) in its outputs: the HTML made
        # from them holds it too
        kernel_found = seal is not None and seal.get("status") == SEAL_SECRET_FOUND
        stamp(nb, spec, result)
        nbformat.write(nb, str(out))
        try:
            if export_html(out, nb)[1] or kernel_found:  # here, so that parallel steps export in parallel
                result.secret_in.append(out.with_suffix(".html").name)
            if kernel_found:
                result.secret_in.append(out.name)
        except Exception as exc:  # an export failure must not hide the step's outcome
            log(f"  HTML export of {out.name} failed: {exc}")
    elif result.status == StepStatus.OK:
        result.status, result.exit_code = StepStatus.RUNNER_ERROR, ExitCode.STEP_FAILED
        result.error = "no output notebook"
    result.duration = round(time.monotonic() - start, 3)
    return result


def reason(result: StepResult) -> str:
    """One line saying why a step failed: the exception the notebook raised, else the first text line."""
    if result.failure and result.failure.get("ename"):
        return f"{result.failure['ename']}: {result.failure.get('evalue') or ''}".strip()[:300]
    lines = [ln.strip() for ln in (result.error or "").splitlines() if ln.strip().strip("-")]
    return (lines[0] if lines else result.status)[:300]


def classify(error: Optional[BaseException], interrupted: bool = False
             ) -> tuple[StepStatus, ExitCode, Optional[str]]:
    if error is None:
        return StepStatus.OK, ExitCode.OK, None
    name = error.__class__.__name__
    text = REGISTRY.redact(str(error))[:2000]
    if interrupted:
        return StepStatus.INTERRUPTED, ExitCode.INTERRUPTED, f"interrupted (Ctrl-C): {text}"
    if name == "CellTimeoutError" or "CellTimeoutError" in text:
        return StepStatus.TIMED_OUT, ExitCode.STEP_TIMED_OUT, text
    if name == "DeadKernelError" or "Kernel died" in text or "DeadKernelError" in text:
        return StepStatus.KERNEL_DIED, ExitCode.KERNEL_DIED, text
    if name == "PapermillExecutionError":
        return StepStatus.FAILED, ExitCode.STEP_FAILED, text
    return StepStatus.RUNNER_ERROR, ExitCode.STEP_FAILED, f"{name}: {text}"


def _seal(nb) -> Optional[dict]:
    """The value of the notebook's seal record, None without one."""
    from ..notebook.records import MIME
    for c in nb.cells:
        for o in c.get("outputs", []):
            data = o.get("data", {}).get(MIME)
            if data and data.get("name") == "seal":
                return data.get("value") or {}
    return None


# the statuses papermill leaves looking like success, and the banner's words for each
_DID_NOT_COMPLETE = {StepStatus.TIMED_OUT: "a cell timed out", StepStatus.KERNEL_DIED: "the kernel died",
                     StepStatus.RUNNER_ERROR: "the runner could not execute it",
                     StepStatus.INTERRUPTED: "the run was interrupted (Ctrl-C)"}


def stamp(nb, spec: StepSpec, result: StepResult) -> None:
    """The true outcome in the notebook's metadata, and a visible banner when papermill left none."""
    import nbformat
    nb.metadata["mirrorkit"] = {
        "schema_version": 1, "notebook": spec.notebook, "target": spec.target, "status": result.status,
        "exit_code": result.exit_code, "started": result.started, "ended": result.ended,
        "duration_s": result.duration, "failure": result.failure, "error": result.error, "kit_version": __version__,
    }
    words = _DID_NOT_COMPLETE.get(result.status)
    if words:
        nb.cells = [c for c in nb.cells if "mirrorkit-outcome" not in c.get("metadata", {}).get("tags", [])]
        banner = nbformat.v4.new_markdown_cell(
            f'<span style="color:red; font-size:1.4em">**This step did not complete: {words}.**</span>\n\n'
            f"Status `{result.status}`, exit code {result.exit_code}. {result.error or ''}",
            metadata={"tags": ["mirrorkit-outcome"]})
        banner["id"] = "mirrorkit-outcome"
        nb.cells.insert(0, banner)


_EXPORTERS: list = []          # HTMLExporters ready for reuse: building one costs as much as an export
_EXPORTERS_LOCK = threading.Lock()


def export_html(ipynb: Path, nb=None) -> tuple[Path, bool]:
    """HTML for the change record: T-SQL and results shown, plumbing inputs hidden. The HTML is written
    redacted; the flag says whether the export held a secret (then the notebook leaked one)."""
    import nbformat
    if nb is None:
        nb = nbformat.read(str(ipynb), as_version=4)
    with _EXPORTERS_LOCK:
        exporter = _EXPORTERS.pop() if _EXPORTERS else None
    if exporter is None:
        from nbconvert import HTMLExporter
        from nbconvert.preprocessors import TagRemovePreprocessor
        exporter = HTMLExporter()
        exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"hide-input"}, enabled=True),
                                       enabled=True)
    try:
        body, _ = exporter.from_notebook_node(nb)
    finally:
        with _EXPORTERS_LOCK:
            _EXPORTERS.append(exporter)   # one thread at a time per exporter: it keeps per-export state
    out = ipynb.with_suffix(".html")
    redacted = REGISTRY.redact(body)
    out.write_text(redacted, encoding="utf-8")
    return out, redacted != body


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- the run ------------------------------------------------------------------------------------------
class Interruption:
    """Ctrl-C during a run. The first one stops the run cleanly: the kernels in use get SIGINT (their
    records show where they stopped), no further cell or step starts, and the run is sealed as
    "interrupted" (exit 130). A second one aborts at once. Only in the main thread, where Python
    delivers signals; elsewhere Ctrl-C is left as it is."""

    def __init__(self, kernels: KernelPool):
        self.kernels = kernels
        self.requested = threading.Event()
        self.aborted = threading.Event()
        self._previous = None

    def __enter__(self) -> "Interruption":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.requested.is_set():
            self.aborted.set()       # so that nothing on the way up swallows the KeyboardInterrupt
            raise KeyboardInterrupt
        self.requested.set()
        self.kernels.interrupt_busy()
        # os.write, not print: a handler that prints can collide with a print it interrupted
        os.write(2, b"\nmirrorkit run: interrupting; the run will be sealed as interrupted (Ctrl-C again aborts)\n")


@dataclass
class RunOutcome:
    exit_code: ExitCode
    status: str                      # a StepStatus, or RUN_INVALID_PARAMETERS / RUN_SECRET_FOUND
    run_dir: Optional[Path]
    results: list[StepResult] = field(default_factory=list)
    message: str = ""


def _invalid(message: str) -> RunOutcome:
    """Nothing was executed: no run folder, no kernel, no connection."""
    return RunOutcome(ExitCode.INVALID_PARAMETERS, RUN_INVALID_PARAMETERS, None, message=message)


RUN_LOG = "the run's log"          # how the manifest names the log when a line held a secret


class GuardedLog:
    """The runner's log: every line is redacted before it is printed, and a line that needed it is a
    finding (`held`), as if the log were a file of the run folder."""

    def __init__(self, log: Callable[[str], None]):
        self._log = log
        self.held = False

    def __call__(self, line: str) -> None:
        redacted = REGISTRY.redact(line)
        if redacted != line:
            self.held = True
        self._log(redacted)


def run(params_path: Path, *, mode: str = "apply", only: Optional[str] = None, target: Optional[str] = None,
        jobs: int = 1, out: Optional[Path] = None, change_id: Optional[str] = None,
        cell_timeout: int = DEFAULT_CELL_TIMEOUT, certificate_dir: Optional[Path] = None,
        log: Callable[[str], None] = lambda s: print(s, flush=True)) -> RunOutcome:
    log = GuardedLog(log)
    try:
        env, params_sha256 = load_parameters(params_path)
    except params.ParameterError as exc:
        return _invalid(str(exc))
    if mode not in ("plan", "apply"):
        return _invalid(f"--mode {mode}: plan or apply")
    if only and only not in STEPS:
        return _invalid(f"--only {only}: one of {', '.join(STEPS)}")
    if target:
        try:
            target = env.instance(target).name
        except params.ParameterError as exc:
            return _invalid(str(exc))
    if change_id is not None and (not change_id or any(c in change_id for c in "/\\\0") or change_id in (".", "..")):
        return _invalid(f"--change-id {change_id!r}: letters, digits and - _ . only")
    try:
        resolve_all(env)
    except SecretError as exc:
        return _invalid(str(exc))
    steps = plan_steps(env, only, target, mode)
    if not steps:
        return _invalid("no step matches --only/--target")
    base = Path(out) if out else Path("runs") / env.environment
    name = utc_stamp() + (f"_{change_id}" if change_id else "")
    run_dir = base / name
    for n in range(2, 100):          # two runs started in the same second get their own folders
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            break
        except FileExistsError:
            run_dir = base / f"{name}-{n}"
    cert_dir = Path(certificate_dir) if certificate_dir else Path("runs") / env.environment / "certificates"
    contract = StepContract(Path(params_path), params_sha256, mode, change_id or "", cert_dir)
    started = utc_iso()
    log(f"mirrorkit run {env.environment} mode={mode}: {len(steps)} step(s) → {run_dir}")
    results: list[StepResult] = []
    kernels = KernelPool(len(steps), max(1, jobs), cwd=Path.cwd(), log=log)
    try:
        with Interruption(kernels) as interruption:
            failed = _run_stages(steps, run_dir, contract, jobs, cell_timeout, kernels, results, log,
                                 interruption.requested, interruption.aborted)
    finally:
        kernels.close()
    if interruption.requested.is_set():
        log("mirrorkit run: interrupted; no further step was started")
    for s in steps:
        if not any(r.spec is s for r in results):
            results.append(StepResult(s, status=StepStatus.SKIPPED))

    _copy_artifacts(cert_dir, run_dir / "certificates")
    status: str = failed.status if failed else StepStatus.OK
    exit_code = failed.exit_code if failed else ExitCode.OK
    if interruption.requested.is_set():
        status, exit_code = StepStatus.INTERRUPTED, ExitCode.INTERRUPTED
    leaks = _findings(run_dir, results, log, [p for p in run_dir.rglob("*") if p.is_file()])
    run_status, run_exit = (RUN_SECRET_FOUND, ExitCode.SECRET_FOUND) if leaks else (status, exit_code)
    write_manifest(run_dir, env, params_path, params_sha256, mode, change_id, started, run_status, run_exit,
                   results, leaks)
    # the manifest too is scanned (it is written redacted, so a hit means a form redaction does not know)
    if scan([run_dir / "manifest.json"]):
        leaks = sorted(set(leaks) | {"manifest.json"})
        run_status, run_exit = RUN_SECRET_FOUND, ExitCode.SECRET_FOUND
        write_manifest(run_dir, env, params_path, params_sha256, mode, change_id, started, run_status, run_exit,
                       results, leaks)
    status, exit_code = run_status, run_exit
    for p in sorted(run_dir.rglob("*")):
        if p.is_file():
            p.chmod(0o444)
    message = (f"secret value found in: {', '.join(leaks)} — the run is not "
               "sealed; the files are kept for inspection" if leaks else
               f"{'ok' if exit_code == ExitCode.OK else status}: {run_dir}")
    log(f"mirrorkit run: {message}")
    return RunOutcome(exit_code, status, run_dir, results, message)


def _findings(run_dir: Path, results: list[StepResult], log: GuardedLog, files: list[Path]) -> list[str]:
    """Where a secret was found, relative to the run folder: the files that hold one, the files it was
    redacted from as they were written or that their kernel flagged, and the log if a line held one."""
    names = {str(p.relative_to(run_dir)) for p in scan(files)}
    names.update(n for r in results for n in r.secret_in)
    return sorted(names) + ([RUN_LOG] if log.held else [])


def _run_stages(steps: list[StepSpec], run_dir: Path, contract: StepContract, jobs: int, cell_timeout: int,
                kernels: KernelPool, results: list[StepResult], log: Callable[[str], None],
                stop: threading.Event, abort: Optional[threading.Event] = None) -> Optional[StepResult]:
    """Stage after stage; returns the first failed step (the run stops after its stage, and after the
    current step once `stop` is set)."""
    failed: Optional[StepResult] = None
    for stage in sorted({s.stage for s in steps}):
        batch = [s for s in steps if s.stage == stage]
        t0 = time.monotonic()
        for s in batch:
            log(f"  [{s.index}/{len(steps)}] {s.notebook} {s.target or ''} …")
        if jobs <= 1:
            # one at a time: the first failure stops the run before the next notebook starts
            stage_results = []
            for s in batch:
                stage_results.append(execute(s, run_dir, contract, cell_timeout, log, kernels, stop, abort))
                if stage_results[-1].status != StepStatus.OK or stop.is_set():
                    break
        else:
            pool = ThreadPoolExecutor(max_workers=min(jobs, len(batch)))
            try:
                futures = [pool.submit(execute, s, run_dir, contract, cell_timeout, log, kernels, stop, abort)
                           for s in batch]
                stage_results = [f.result() for f in futures]
            except KeyboardInterrupt:     # the second Ctrl-C: do not wait for the steps still running
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        for r in stage_results:
            results.append(r)
            if r.status == StepStatus.SKIPPED:
                continue
            log(f"  [{r.spec.index}/{len(steps)}] {r.spec.notebook} {r.spec.target or ''}: {r.status} "
                f"({r.duration:.1f} s)" + (f" — {reason(r)}" if r.status != StepStatus.OK else ""))
            if r.status != StepStatus.OK and failed is None:
                failed = r
        log(f"  stage {stage} done in {time.monotonic() - t0:.1f} s")
        if failed is not None or stop.is_set():
            break
    return failed


def _copy_artifacts(src: Path, dst: Path) -> None:
    if not src.is_dir():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.suffix in (".cer", ".json") and f.is_file():
            shutil.copy2(f, dst / f.name)


def write_manifest(run_dir: Path, env: params.Environment, params_path: Path, params_sha256: str, mode: str,
                   change_id: Optional[str], started: str, status: str, exit_code: ExitCode,
                   results: list[StepResult], leaks: list[str]) -> dict:
    files = {}
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            files[str(p.relative_to(run_dir))] = sha256(p)
    manifest = {
        "schema_version": 1, "kit_version": __version__, "environment": env.environment, "mode": mode,
        "change_id": change_id, "operator": getpass.getuser(), "host": socket.gethostname(),
        "parameter_file": str(params_path), "parameter_file_sha256": params_sha256,
        "parameter_digest": env.digest(), "started": started, "ended": utc_iso(), "status": status,
        "exit_code": exit_code, "sealed": not leaks,
        "steps": [{"index": r.spec.index, "notebook": r.spec.notebook, "target": r.spec.target,
                   "stage": r.spec.stage, "status": r.status, "exit_code": r.exit_code, "started": r.started,
                   "ended": r.ended, "duration_s": r.duration, "failure": r.failure, "error": r.error,
                   "reason": reason(r) if r.status not in (StepStatus.OK, StepStatus.SKIPPED) else None,
                   "notebook_file": f"{r.spec.stem}.ipynb" if (run_dir / f"{r.spec.stem}.ipynb").exists() else None,
                   "html_file": f"{r.spec.stem}.html" if (run_dir / f"{r.spec.stem}.html").exists() else None}
                  for r in sorted(results, key=lambda r: r.spec.index)],
        "files": files,
        "secret_found_in": list(leaks),
    }
    (run_dir / "manifest.json").write_text(REGISTRY.redact(json.dumps(manifest, indent=2)) + "\n", encoding="utf-8")
    return manifest
