"""Helpers for the runner and report tests (tests/kit/test_runner_*.py, tests/kit/test_report_*.py).

* a parameter file for lab instances in the shape of parameters/lab.yaml, with the secrets as
  `env:MK_RUN_SA` / `env:MK_RUN_DMK` references (the notebook kernels inherit os.environ);
* one shared mirroring lab (PARTNER_A, PARTNER_B, WITNESS) and the three runs every runner and report
  test reads — plan on the fresh lab, apply, apply again — built once per pytest session on first use
  and stopped when the session ends (`shared_runs`);
* `mirrorkit` on the command line, the visible text of an HTML record, a copy of the notebook folder
  with one extra cell (for timeouts and dead kernels), and small readers for run folders.
"""
from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from . import runbook_helpers as H

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

ENV_SA = "MK_RUN_SA"            # connection.password: 'env:MK_RUN_SA'
ENV_DMK = "MK_RUN_DMK"          # secrets.master_key_password: 'env:MK_RUN_DMK'
DMK_PASSWORD = "Runner-Test-Master-Key-Passw0rd!"

NAMES = ("PARTNER_A", "PARTNER_B", "WITNESS")
ROLES = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}
# the documented order: outbound on every instance, inbound on the partners, witness, verify
APPLY_ORDER = [("outbound", "PARTNER_A"), ("outbound", "PARTNER_B"), ("outbound", "WITNESS"),
               ("inbound", "PARTNER_A"), ("inbound", "PARTNER_B"), ("witness", "WITNESS"), ("verify", None)]
PLAN_ORDER = APPLY_ORDER[:-1]


def sa_password() -> str:
    return H.lab_support().SA_PASSWORD


# ---------------------------------------------------------------------------------------------
# Parameter files and the environment the kernels inherit
# ---------------------------------------------------------------------------------------------

def parameter_values(lab, roles: Optional[dict[str, str]] = None, *, environment: str = "runner",
                     instance_overrides: Optional[dict[str, dict]] = None, **sections: Any) -> dict:
    """The values of a parameter file for the lab's instances (shape of parameters/lab.yaml)."""
    roles = roles or ROLES
    instances = []
    for name, role in roles.items():
        entry = {"name": name, "server": f"{lab[name].host},{lab[name].port}", "role": role}
        entry.update((instance_overrides or {}).get(name, {}))
        instances.append(entry)
    values: dict[str, Any] = {
        "environment": environment,
        "topology": "mirroring",
        "instances": instances,
        "endpoint": {"name": "Mirroring", "port": 5022},
        "certificate": {},
        "logins": {},
        "connection": {"driver": "FreeTDS", "authentication": "sql", "user": "sa", "password": f"env:{ENV_SA}",
                       "encrypt": "optional", "tds_version": "7.4"},
        "secrets": {"master_key_password": f"env:{ENV_DMK}"},
        "verify": {},
    }
    for key, value in sections.items():
        values[key] = value
    return values


def write_params(directory: Path, values: dict, name: str = "params.yaml") -> Path:
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by tests/kit/runner_helpers.py\n"
                    + yaml.safe_dump(values, sort_keys=False, default_flow_style=False), encoding="utf-8")
    return path


def secret_environ(mp, *, sa: Optional[str] = None, dmk: str = DMK_PASSWORD) -> None:
    """Set the secrets the parameter file refers to (a pytest MonkeyPatch)."""
    mp.setenv(ENV_SA, sa or sa_password())
    mp.setenv(ENV_DMK, dmk)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

@dataclass
class Timed:
    outcome: Any
    seconds: float
    log: list[str]


def run(params_path: Path, *, mode: str, out: Path, certificate_dir: Path, jobs: int = 1, **kw) -> Timed:
    """mirrorkit.runner.run in this process, with its log captured."""
    from mirrorkit.execution import runner
    lines: list[str] = []
    t0 = time.monotonic()
    outcome = runner.run(params_path, mode=mode, out=out, certificate_dir=certificate_dir, jobs=jobs,
                         log=lines.append, **kw)
    return Timed(outcome, time.monotonic() - t0, lines)


def cli(*args: str, cwd: Optional[Path] = None, env: Optional[dict] = None,
        timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m mirrorkit ARGS` as an operator runs it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "mirrorkit", *args], cwd=str(cwd or ROOT), env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


# ---------------------------------------------------------------------------------------------
# Reading run folders
# ---------------------------------------------------------------------------------------------

def manifest(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8"))


def read_nb(path: Path):
    import nbformat
    return nbformat.read(str(path), as_version=4)


def files_of(run_dir: Path) -> list[str]:
    """Every file of a run folder, relative, sorted (manifest.json included)."""
    return sorted(str(p.relative_to(run_dir)) for p in Path(run_dir).rglob("*") if p.is_file())


def step_stems(order: list[tuple[str, Optional[str]]]) -> list[str]:
    return [f"{i:02d}-{nb}" + (f"-{target}" if target else "") for i, (nb, target) in enumerate(order, 1)]


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_text(path: Path) -> str:
    """What a reader of the HTML record sees: the text without tags, scripts and styles (the T-SQL is
    syntax-highlighted, one <span> per token, so the raw HTML never holds `CREATE ENDPOINT` as such)."""
    parser = _Text()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return "".join(parser.parts)


def code_sources(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


# ---------------------------------------------------------------------------------------------
# A notebook folder with one extra cell
# ---------------------------------------------------------------------------------------------

def notebook_dir_with_cell(directory: Path, notebook: str, source: str) -> Path:
    """A copy of notebooks/ where `notebook` has an extra code cell right after its Start cell
    (for mirrorkit.runner.NOTEBOOK_DIR)."""
    import nbformat
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for p in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy2(p, directory / p.name)
    nb = nbformat.read(str(directory / f"{notebook}.ipynb"), as_version=4)
    start = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "rb.start(" in c.source)
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = "runner-test-extra"
    nb.cells.insert(start + 1, cell)
    nbformat.write(nb, str(directory / f"{notebook}.ipynb"))
    return directory


# ---------------------------------------------------------------------------------------------
# The shared lab and its runs
# ---------------------------------------------------------------------------------------------

@dataclass
class SharedRuns:
    lab: Any
    tmp: Path
    params: Path
    certs: Path
    fresh: dict = field(default_factory=dict)        # catalogs of the fresh lab
    plan: Optional[Timed] = None
    after_plan: dict = field(default_factory=dict)
    apply: Optional[Timed] = None
    after_apply: dict = field(default_factory=dict)
    again: Optional[Timed] = None
    after_again: dict = field(default_factory=dict)

    def catalogs(self) -> dict:
        return {n: H.catalog(self.lab[n]) for n in NAMES}

    def scratch(self, name: str) -> Path:
        """A new empty folder under the shared tmp (for one test's run output)."""
        p = self.tmp / name
        n = 1
        while p.exists():
            n += 1
            p = self.tmp / f"{name}-{n}"
        p.mkdir(parents=True)
        return p


def shared_runs(request, tmp_path_factory) -> SharedRuns:
    """The shared mirroring lab with its plan, apply and second apply runs (built once per session)."""
    config = request.config
    cached = getattr(config, "_mirrorkit_runner_shared", None)
    if cached is not None:
        if isinstance(cached, BaseException):
            raise cached
        return cached
    tmp = tmp_path_factory.mktemp("runner-shared")
    mp = __import__("pytest").MonkeyPatch()
    config.add_cleanup(mp.undo)
    secret_environ(mp)
    lab = H.start_lab(tmp / "lab", *NAMES)
    config.add_cleanup(lab.stop_all)
    try:
        s = SharedRuns(lab, tmp, write_params(tmp, parameter_values(lab)), tmp / "certs")
        s.fresh = s.catalogs()
        s.plan = run(s.params, mode="plan", out=tmp / "runs-plan", certificate_dir=s.certs)
        s.after_plan = s.catalogs()
        s.apply = run(s.params, mode="apply", out=tmp / "runs-apply", certificate_dir=s.certs)
        s.after_apply = s.catalogs()
        s.again = run(s.params, mode="apply", out=tmp / "runs-again", certificate_dir=s.certs)
        s.after_again = s.catalogs()
    except BaseException as exc:      # every later user fails the same way instead of rebuilding
        config._mirrorkit_runner_shared = exc
        raise
    config._mirrorkit_runner_shared = s
    return s
