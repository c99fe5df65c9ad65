"""What the runbook notebooks call: `guard` in their first cell, `start` after the parameters.

    import mirrorkit.notebook.runbook as rb
    rb.guard("outbound")                       # before papermill's injected cell
    ...parameters cell...
    run = rb.start("outbound", parameters_file=parameters_file, target=target, mode=mode, ...)

`start` is the one contract between whoever runs the notebook (a person, papermill, `mirrorkit
run`) and the kit: named arguments; the configuration arrives as a file path (and, from `mirrorkit
run`, the sha256 of the bytes it validated), which the kit reads and validates itself.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

from ..config import parameters as params
from . import guard as _guard
from .errors import RunbookError, show_plainly
from .run import Run
from .steps import RUNS

NOTEBOOKS = tuple(RUNS)
#: the parameters each notebook's parameters cell declares (and papermill may inject)
RUN_ARGUMENTS = ("parameters_file", "parameters_sha256", "target", "mode", "change_id", "certificate_dir",
                 "interactive")
VERIFY_ARGUMENTS = ("parameters_file", "parameters_sha256", "change_id", "interactive")
DEFAULT_PARAMETERS = "parameters/lab.yaml"

__all__ = ["NOTEBOOKS", "Run", "RunbookError", "guard", "start", "open_run", "arguments"]


def arguments(notebook: str) -> tuple[str, ...]:
    return VERIFY_ARGUMENTS if not RUNS[notebook].takes_target else RUN_ARGUMENTS


def guard(notebook: str) -> None:
    """Check what papermill injects into this notebook before it runs (see notebook/guard.py)."""
    show_plainly()
    if notebook not in RUNS:
        raise RunbookError(f"unknown notebook {notebook!r}")
    _guard.install(arguments(notebook))


def _find(path: str) -> Path:
    """A relative parameter file, from the working directory or the repository root (notebooks/ runs)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    for base in (Path.cwd().parent, Path(__file__).resolve().parents[2]):
        if (base / p).exists():
            return base / p
    return p


def read_parameters(parameters_file: str, parameters_sha256: str = "") -> tuple[params.Environment, dict]:
    """Read the file once, prove it is the one the caller validated (when a digest is given), validate it."""
    path = _find(parameters_file or DEFAULT_PARAMETERS)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise params.ParameterError(str(path), [params.Problem(
            "", "no such parameter file", "check parameters_file; parameter files live in parameters/")]) from None
    except OSError as exc:
        raise params.ParameterError(str(path), [params.Problem(
            "", f"cannot be read ({exc.strerror or type(exc).__name__})", "check the path and its permissions")]) from None
    digest = hashlib.sha256(data).hexdigest()
    if parameters_sha256 and digest != parameters_sha256.lower():
        raise RunbookError(f"{path}: the parameter file changed after it was validated (sha256 {parameters_sha256[:12]}… "
                           f"then, {digest[:12]}… now); nothing was sent — run again")
    return params.load_bytes(data, str(path)), {"path": str(path), "sha256": digest}


def open_run(notebook: str, env: params.Environment, *, target: Optional[str] = None, mode: str = "plan",
             change_id: str = "", certificate_dir: Optional[Path] = None, interactive: bool = False,
             parameter_file: Optional[dict] = None) -> Run:
    """A notebook's run in this process (start() without the header; tests and tools use it)."""
    if notebook not in RUNS:
        raise RunbookError(f"unknown notebook {notebook!r}")
    if mode not in ("plan", "apply"):
        raise RunbookError(f"mode = {mode!r}: write \"plan\" (the default, changes nothing) or \"apply\"")
    cls = RUNS[notebook]
    chosen = cls.choose_target(env, target, interactive)
    cert_dir = Path(certificate_dir) if certificate_dir else Path("runs") / env.environment / "certificates"
    return cls(env, chosen, mode, change_id or "", cert_dir, interactive, parameter_file=parameter_file)


def start(notebook: str, *, parameters_file: str = DEFAULT_PARAMETERS, parameters_sha256: str = "",
          target: Optional[str] = None, mode: str = "plan", change_id: str = "", certificate_dir: str = "",
          interactive: Optional[bool] = None) -> Run:
    """Validate the parameters (nothing is sent to a server before this passes) and record the run header."""
    show_plainly()
    if interactive is None:
        interactive = _guard.injected() is None        # nothing injected: a person opened the notebook
    if interactive and Path.cwd().name == "notebooks" and (Path.cwd().parent / "parameters").is_dir():
        # JupyterLab starts kernels in notebooks/; the kit's relative paths are from the repository root
        os.chdir(Path.cwd().parent)
    env, parameter_file = read_parameters(parameters_file, parameters_sha256)
    run = open_run(notebook, env, target=target, mode=mode, change_id=change_id,
                   certificate_dir=Path(certificate_dir) if certificate_dir else None, interactive=bool(interactive),
                   parameter_file=parameter_file)
    if run.target is None and run.takes_target:
        run.pick_target()
    run.header()
    return run
