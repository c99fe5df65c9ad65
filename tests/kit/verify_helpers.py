"""Helpers for the verify acceptance tests (tests/kit/test_verify_*.py) and bench/verify_scaling.py.

* a configured lab: in-process lab instances (tests.conftest.Lab) set up by driving the runbook
  (outbound, inbound, witness) in this process through mirrorkit.runbook.Run — no Jupyter kernel;
* verify in process: mirrorkit.verify.collect + evaluate with the runbook's own connections;
* the lab-only probe (sys.sp_mirrorkit_probe) for every ordered pair the topology needs;
* a catalogue of misconfigurations (faults): each knows how to break a correct lab, which verify
  finding it must produce (check, instance, peer, status), how to undo itself, and whether it
  breaks which ordered pairs at the transport (what the probe sees).

Convention (mirrorkit.verify): a pair finding names instance = acceptor, peer = initiator.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Optional
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

ENV_SA = "MK_VT_SA"                     # connection.password: 'env:MK_VT_SA'
ENV_DMK = "MK_VT_DMK"                   # secrets.master_key_password: 'env:MK_VT_DMK'
DMK_PASSWORD = "Verify-Test-Master-Key-Passw0rd!"
ENDPOINT = "Mirroring"
PORT = 5022
OTHER_PORT = 5023
PEER_PASSWORD = "Other-Login-Passw0rd!1"


# ---------------------------------------------------------------------------------------------
# The lab (tests/conftest.py as pytest loaded it: one address counter for every test)
# ---------------------------------------------------------------------------------------------

def lab_support():
    conftest = ROOT / "tests" / "conftest.py"
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve() == conftest:
            return mod
    if str(ROOT) not in sys.path:                        # bench/ runs outside pytest
        sys.path.insert(0, str(ROOT))
    import tests.conftest as mod
    return mod


def sa_password() -> str:
    return lab_support().SA_PASSWORD


def set_secret_env(environ: Optional[dict] = None) -> None:
    """The env: references the parameter values use (os.environ by default; CLI/papermill inherit it)."""
    target = os.environ if environ is None else environ
    target[ENV_SA] = sa_password()
    target[ENV_DMK] = DMK_PASSWORD


@contextlib.contextmanager
def quiet_runbook():
    """mirrorkit.runbook shows markdown/tables and writes records through IPython's display; outside a
    kernel they would only print. Silence them while the runbook is driven in process."""
    with mock.patch("mirrorkit.runbook._display_markdown", lambda *a, **k: None), \
            mock.patch("mirrorkit.runbook._display_table", lambda *a, **k: None), \
            mock.patch("mirrorkit.runbook.record", lambda *a, **k: None):
        yield


def parameter_values(lab, roles: dict[str, str], *, environment: str = "verifytest",
                     topology: Optional[str] = None, endpoint: Optional[dict] = None,
                     verify: Optional[dict] = None) -> dict:
    """A parameter file's values for lab instances, in the shape of parameters/lab.yaml."""
    values: dict[str, Any] = {"environment": environment}
    if topology is not None:
        values["topology"] = topology
    values["instances"] = [{"name": n, "server": f"{lab[n].host},{lab[n].port}", "role": r}
                           for n, r in roles.items()]
    values["endpoint"] = {"name": ENDPOINT, "port": PORT, **(endpoint or {})}
    values["certificate"] = {}
    values["logins"] = {}
    values["connection"] = {"driver": "FreeTDS", "authentication": "sql", "user": "sa",
                            "password": f"env:{ENV_SA}", "encrypt": "optional", "tds_version": "7.4"}
    values["secrets"] = {"master_key_password": f"env:{ENV_DMK}"}
    values["verify"] = dict(verify or {})
    return values


def write_parameter_file(path: Path, values: dict) -> Path:
    import yaml
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by tests/kit/verify_helpers.py\n" +
                    yaml.safe_dump(values, sort_keys=False, default_flow_style=False), encoding="utf-8")
    return path


def runbook_order(env) -> list[tuple[str, str]]:
    """outbound on every instance, inbound on every partner/replica, then the witness notebook."""
    witness = env.witness
    others = [i.name for i in env.instances if i.role != "witness"]
    steps = [("outbound", n) for n in others] + ([("outbound", witness.name)] if witness else [])
    steps += [("inbound", n) for n in others]
    if witness:
        steps.append(("witness", witness.name))
    return steps


def run_step(env, notebook: str, target: str, certificate_dir: Path) -> "Any":
    """One runbook notebook's plan + apply, in process (what the notebook's cells call)."""
    from mirrorkit import runbook
    run = runbook.Run(notebook, env, env.instance(target), "apply", "", Path(certificate_dir), False)
    try:
        with quiet_runbook():
            run.plan()
            blocked = [p for p in run.plans if p.blocked]
            assert not blocked, f"{notebook} {target}: blocked: " + "; ".join(
                f.what for p in blocked for f in p.findings)
            run.apply()
    finally:
        for c in run._connections.values():
            with contextlib.suppress(Exception):
                c.close()
        run._connections.clear()
    return run


# ---------------------------------------------------------------------------------------------
# A configured lab
# ---------------------------------------------------------------------------------------------

@dataclass
class ConfiguredLab:
    lab: Any                                  # tests.conftest.Lab
    values: dict
    env: Any                                  # mirrorkit.params.Environment
    certificate_dir: Path
    configure_seconds: float = 0.0
    _verify_run: Any = None

    # -- access ------------------------------------------------------------------------------
    def __getitem__(self, name: str):
        return self.lab[name]

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.env.instances]

    def sql(self, name: str, statement: str, *args):
        return self.lab[name].sql(statement, *args)

    def pairs(self) -> list[tuple[str, str]]:
        """Every ordered pair (initiator, acceptor) the topology needs, as verify's matrix keys them."""
        return [(ini.name, acc.name) for acc in self.env.instances for ini in self.env.peers_of(acc)]

    # -- the runbook -----------------------------------------------------------------------------
    def run_notebook(self, notebook: str, target: str):
        return run_step(self.env, notebook, target, self.certificate_dir)

    def configure(self) -> "ConfiguredLab":
        started = time.monotonic()
        for notebook, target in runbook_order(self.env):
            self.run_notebook(notebook, target)
        self.configure_seconds = time.monotonic() - started
        return self

    # -- verify ------------------------------------------------------------------------------------
    def connection(self, inst):
        from mirrorkit import runbook
        if self._verify_run is None:
            self._verify_run = runbook.Run("verify", self.env, None, "plan", "", self.certificate_dir, False)
        return self._verify_run.connection(inst)

    def close(self) -> None:
        if self._verify_run is not None:
            for c in self._verify_run._connections.values():
                with contextlib.suppress(Exception):
                    c.close()
            self._verify_run._connections.clear()

    def collect(self):
        from mirrorkit import verify
        return verify.collect(self.env, self.connection)

    def verdict(self, now: Optional[datetime] = None):
        from mirrorkit import verify
        return verify.evaluate(self.env, self.collect(), now)

    # -- the transport ------------------------------------------------------------------------------
    def probe(self, initiator: str, acceptor: str, url: Optional[str] = None) -> tuple:
        """sys.sp_mirrorkit_probe on the initiator towards the acceptor's endpoint URL (the parameters'
        address and port, as partners and the witness are given it), requesting WITNESS when the
        acceptor is the witness, else PARTNER. → (endpoint_url, succeeded, error_number, message)."""
        acc = self.env.instance(acceptor)
        role = "WITNESS" if acc.role == "witness" else "PARTNER"
        rows = self.sql(initiator, "EXEC sys.sp_mirrorkit_probe @endpoint_url = ?, @peer_role = ?",
                        url or self.env.endpoint_url(acc), role)
        assert len(rows) == 1, rows
        u, ok, number, message = rows[0]
        return u, bool(ok), number, message

    def probe_matrix(self) -> dict[tuple[str, str], tuple]:
        return {(i, a): self.probe(i, a) for i, a in self.pairs()}


def new_lab(state_dir: Path, names: Iterable[str]):
    support = lab_support()
    lab = support.Lab(Path(state_dir))
    try:
        for n in names:
            lab.start(n)
    except BaseException:
        lab.stop_all()
        raise
    return lab


def configured_lab(state_dir: Path, roles: dict[str, str], *, topology: Optional[str] = None,
                   endpoint: Optional[dict] = None, verify: Optional[dict] = None,
                   configure: bool = True) -> ConfiguredLab:
    """Start the instances, build the parameters and (by default) run the whole runbook in process."""
    from mirrorkit import params
    set_secret_env()
    lab = new_lab(Path(state_dir) / "lab", roles)
    try:
        values = parameter_values(lab, roles, topology=topology, endpoint=endpoint, verify=verify)
        env = params.from_values(values)
        cl = ConfiguredLab(lab, values, env, Path(state_dir) / "certificates")
        if configure:
            cl.configure()
    except BaseException:
        lab.stop_all()
        raise
    return cl


MIRRORING = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}


def ag_roles(n: int) -> dict[str, str]:
    return {f"REPLICA_{i}": "replica" for i in range(1, n + 1)}


# ---------------------------------------------------------------------------------------------
# Reading verdicts
# ---------------------------------------------------------------------------------------------

def problems(verdict) -> list:
    return [f for f in verdict.findings if f.status != "PASS"]


def describe(verdict) -> str:
    lines = [f"{f.status} {f.check} {f.instance}{' <- ' + f.peer if f.peer else ''}: {f.found}"
             f"{'  [fix: ' + f.remediation + ']' if f.remediation else ''}" for f in problems(verdict)]
    lines += [f"matrix {i} -> {a}: {r}" for (i, a), r in sorted(verdict.matrix.items())]
    return "\n".join(lines) or "(all PASS)"


def assert_passes(verdict, context: str = "") -> None:
    bad = [f for f in verdict.findings if f.status != "PASS" and f.check not in ("L01",)]
    not_ok = {k: v for k, v in verdict.matrix.items() if v != "OK"}
    assert not bad and not not_ok, f"{context}: verify does not pass:\n{describe(verdict)}"
    assert not verdict.failed, f"{context}:\n{describe(verdict)}"


def matching(verdict, check: str, instance: str, peer: Optional[str] = None, status: Optional[str] = None) -> list:
    return [f for f in verdict.findings if f.check == check and f.instance == instance and f.peer == peer
            and (status is None or f.status == status)]
