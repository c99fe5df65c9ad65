"""What the notebooks call: start → snapshot → plan → gate → apply → snapshot → seal.

The notebooks stay thin; every decision is made here or in plan.py. Records are
written with records.record(); the T-SQL shown is always the redacted rendering.
"""
from __future__ import annotations

import getpass
import os
import platform
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from .. import __version__
from ..config import parameters as params
from ..core import artifacts, catalog as inspect, plan as planning, tsql
from ..access.connection import ConnectionFailed, Target, connect
from .records import record
from ..access.credentials import REGISTRY, Secret, SecretError, resolve

NOTEBOOKS = ("outbound", "inbound", "witness", "verify")


class RunbookError(Exception):
    """A problem the person running the notebook can act on; shown without a traceback."""


def _show_errors_plainly() -> None:
    """Show RunbookError/ParameterError as a message, not a traceback (the cell still fails)."""
    try:
        ip = get_ipython()  # noqa: F821 - defined inside IPython
    except NameError:
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        # IPython drops what a custom handler returns: show a one-line "traceback" ourselves, as an
        # error output (ename, evalue) that papermill and nbconvert read
        text = REGISTRY.redact(f"{etype.__name__}: {value}")
        shell._showtraceback(etype, REGISTRY.redact(str(value)), [text])
        return [text]
    ip.set_custom_exc((RunbookError, params.ParameterError, SecretError, ConnectionFailed,
                       artifacts.ArtifactError), handler)


def _display_markdown(text: str) -> None:
    from IPython.display import Markdown, display
    display(Markdown(text))


def _display_table(title: str, columns: list[str], rows: list[tuple]) -> None:
    import pandas as pd
    from IPython.display import display
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    frame = pd.DataFrame([[inspect.jsonable(v) for v in row] for row in rows], columns=columns)
    _display_markdown(f"**{title}** — {len(rows)} row(s)")
    display(frame)


def utcnow() -> datetime:
    return artifacts.utcnow()


@dataclass
class Run:
    notebook: str
    env: params.Environment
    target: Optional[params.Instance]
    mode: str
    change_id: str
    certificate_dir: Path
    interactive: bool
    started: datetime = field(default_factory=utcnow)
    _connections: dict = field(default_factory=dict)
    _states: dict = field(default_factory=dict)
    plans: list = field(default_factory=list)
    applied: list = field(default_factory=list)
    confirmed: Optional[bool] = None
    _gate_widget: Any = None
    notes: list = field(default_factory=list)

    # -- connections and secrets ------------------------------------------------------------------
    def secret(self, reference: Any, label: str) -> Secret:
        raw = getattr(reference, "raw", reference)
        return resolve(raw, label, interactive=self.interactive)

    def connection(self, instance: params.Instance):
        key = instance.name.lower()
        if key not in self._connections:
            c = instance.connection
            password = self.secret(c.password, f"{instance.name}: connection.password") \
                if c.authentication == "sql" else None
            target = Target(instance.name, instance.server, c.driver, c.authentication, c.user, password,
                            c.encrypt, c.trust_server_certificate, c.host_name_in_certificate, c.login_timeout,
                            c.tds_version)
            self._connections[key] = connect(target)
        return self._connections[key]

    def state(self, instance: params.Instance, refresh: bool = False) -> inspect.InstanceState:
        key = instance.name.lower()
        if refresh or key not in self._states:
            self._states[key] = inspect.read_state(self.connection(instance))
        return self._states[key]

    # -- by hand: pick the instance ----------------------------------------------------------------------
    def pick_target(self) -> None:
        """Show a drop-down of the instances; the cells below use the choice when they run."""
        import ipywidgets as w
        from IPython.display import display
        self._picker = w.Dropdown(options=[(f"{i.name} ({i.role}, {i.server})", i.name) for i in self.env.instances],
                                  value=None, description="instance", layout=w.Layout(width="auto"))
        display(self._picker)
        _display_markdown("Pick the instance, then run the cells below (*Run Selected Cell and All Below*).")

    def _require_target(self) -> params.Instance:
        if self.target is None:
            picker = getattr(self, "_picker", None)
            if picker is None or picker.value is None:
                raise RunbookError("pick the instance in the drop-down of the Start cell, then run the cells below "
                                   "again (or set target in the parameters cell)")
            self.target = self.env.instance(picker.value)
            record("target_picked", {"target": self.target.name, "operator": getpass.getuser()}, self.target.name)
        return self.target

    # -- cells ---------------------------------------------------------------------------------------
    def header(self) -> None:
        info = {
            "environment": self.env.environment, "notebook": self.notebook,
            "target": self.target.name if self.target else None, "mode": self.mode,
            "change_id": self.change_id or None, "operator": getpass.getuser(), "host": socket.gethostname(),
            "kit_version": __version__, "parameter_digest": self.env.digest(), "source": self.env.source,
            "started_utc": self.started.isoformat(timespec="seconds"), "python": platform.python_version(),
            "certificate_dir": str(self.certificate_dir),
            "process_id": os.getpid(),   # SQL Server shows it as host_process_id of the kit's sessions
        }
        rows = "\n".join(f"| {k} | {'' if v is None else v} |" for k, v in info.items())
        _display_markdown(f"### Run header\n\n| | |\n|---|---|\n{rows}")
        record("run_header", info, f"{self.notebook} {info['target'] or ''} mode={self.mode}")

    def instances_in_scope(self) -> list[params.Instance]:
        if self.notebook in ("outbound", "inbound"):
            self._require_target()
        if self.notebook == "witness":
            return [self.target] + [p for p in self.env.partners]
        if self.notebook == "verify":
            return list(self.env.instances)
        return [self.target]

    def snapshot(self, label: str = "before") -> dict:
        out = {}
        for inst in self.instances_in_scope():
            state = self.state(inst, refresh=True)
            if state.server_name and state.server_name.lower() != inst.name.lower():
                raise RunbookError(f"{inst.name}: the server at {inst.server} reports @@SERVERNAME "
                                   f"{state.server_name!r}; check instances[].server in {self.env.source}")
            _display_markdown(f"### {inst.name} — catalog {label}")
            for key, (cols, rows) in state.tables.items():
                if key != "server":
                    _display_table(f"{inst.name}: {key.replace('_', ' ')}", cols, rows)
            out[inst.name] = state.records()
        record(f"snapshot_{label}", {"label": label, "instances": out},
               f"{label}: " + ", ".join(f"{k} ({len(v.get('certificates', []))} certificates)" for k, v in out.items()))
        return out

    # -- planning ----------------------------------------------------------------------------------
    def outbound_spec(self, inst: params.Instance) -> planning.OutboundSpec:
        e, c = self.env.endpoint, self.env.certificate
        backup = c.private_key_backup
        return planning.OutboundSpec(
            instance=inst.name, certificate_name=self.env.certificate_name(inst),
            subject=self.env.certificate_subject(inst), lifetime_days=c.lifetime_days,
            backdate_hours=c.backdate_hours, endpoint_name=e.name, port=inst.endpoint_port,
            listener_ip=e.listener_ip, encryption=e.encryption, algorithm=e.algorithm,
            role=self.env.endpoint_role(inst), allow_alter=e.allow_alter,
            master_key_password=lambda: self.secret(self.env.secrets.master_key_password,
                                                    "secrets.master_key_password"),
            backup_directory=backup.directory if backup else None,
            backup_password=(lambda: self.secret(backup.password, "certificate.private_key_backup.password"))
            if backup else None,
            expiry_warning_days=self.env.verify.expiry_warning_days)

    def peer_spec(self, inst: params.Instance, peer: params.Instance,
                  pending: Optional[artifacts.CertificateArtifact] = None) -> planning.PeerSpec:
        cert_name = self.env.certificate_name(peer)
        art, problem = pending, None
        if art is None:
            try:
                art = artifacts.load(self.certificate_dir, peer.name)
            except artifacts.ArtifactError as exc:
                problem = str(exc)
        if art is not None:
            problem = self._check_against_live_peer(peer, art)
            if problem:
                art = None
        file_path = None
        if art is not None and self.env.certificate.transfer == "file":
            file_path = planning.server_path(self.env.certificate.file_share, artifacts.file_stem(peer.name) + ".cer")
        return planning.PeerSpec(peer.name, self.env.login_name(peer), self.env.user_name(peer), cert_name, art,
                                 problem, file_path)

    def _check_against_live_peer(self, peer: params.Instance, art: artifacts.CertificateArtifact) -> Optional[str]:
        try:
            # the certificate the parameters name (during a rotation it is not yet the endpoint's)
            der = inspect.certencoded(self.connection(peer), self.env.certificate_name(peer))
        except (ConnectionFailed, SecretError) as exc:
            self.notes.append(f"{peer.name} was not reachable to confirm its certificate thumbprint; using the "
                              f"artifact 0x{art.thumbprint_hex} ({exc.__class__.__name__})")
            return None
        if der is None:
            return (f"{peer.name} has no certificate {self.env.certificate_name(peer)}; run outbound on {peer.name}")
        live = artifacts.describe(peer.name, art.certificate_name, der)
        if live.thumbprint != art.thumbprint:
            return (f"the artifact for {peer.name} (thumbprint 0x{art.thumbprint_hex}) is stale: "
                    f"{self.env.certificate_name(peer)} on {peer.name} is 0x{live.thumbprint_hex}; run outbound on "
                    f"{peer.name} again")
        return None

    def plan(self) -> list[planning.Plan]:
        self.notes = []
        if self.notebook in ("outbound", "inbound"):
            self._require_target()
        now = utcnow()
        plans: list[planning.Plan] = []
        if self.notebook == "outbound":
            plans.append(planning.plan_outbound(self.outbound_spec(self.target), self.state(self.target), now))
        elif self.notebook == "inbound":
            peers = [self.peer_spec(self.target, p) for p in self.env.peers_of(self.target.name)]
            plans.append(planning.plan_inbound(self.target.name, peers, self.state(self.target)))
        elif self.notebook == "witness":
            plans.extend(self._plan_witness(now))
        self.plans = plans
        self._show_plans()
        return plans

    def _plan_witness(self, now: datetime) -> list[planning.Plan]:
        w = self.target
        out = [planning.plan_outbound(self.outbound_spec(w), self.state(w), now)]
        w_art = self._live_artifact(w)
        inbound_w = [self.peer_spec(w, p) for p in self.env.partners]
        out.append(planning.plan_inbound(w.name, inbound_w, self.state(w), notebook="witness inbound"))
        for p in self.env.partners:
            spec = self.peer_spec(p, w, pending=w_art) if w_art else planning.PeerSpec(
                w.name, self.env.login_name(w), self.env.user_name(w), self.env.certificate_name(w), None,
                f"{w.name}'s certificate does not exist yet: it is created by the outbound step above and imported "
                "when the plan is applied")
            out.append(planning.plan_inbound(p.name, [spec], self.state(p), notebook="witness inbound"))
        return out

    def _live_artifact(self, inst: params.Instance) -> Optional[artifacts.CertificateArtifact]:
        der = inspect.certencoded(self.connection(inst), self.env.certificate_name(inst))
        return artifacts.describe(inst.name, self.env.certificate_name(inst), der) if der else None

    def _show_plans(self) -> None:
        lines = []
        for p in self.plans:
            lines.append(f"### Plan: {p.notebook} on {p.instance} — "
                         f"{len(p.steps) or 'no'} statement(s){', BLOCKED' if p.blocked else ''}")
            for f in p.findings:
                lines.append(f"- **{f.kind.upper()}** ({f.subject}): {f.what}" +
                             (f"  \n  *Remediation:* `{f.remediation}`" if f.remediation else ""))
            if p.steps:
                lines.append("\n```sql\n" + p.script() + "```")
            elif not p.findings:
                lines.append("Nothing to do: the instance is already in the desired state.")
        for n in self.notes:
            lines.append(f"- note: {n}")
        _display_markdown("\n".join(lines))
        record("plan", [{"instance": p.instance, "notebook": p.notebook, "blocked": p.blocked,
                         "steps": [{"sql": s.sql, "establishes": s.establishes} for s in p.steps],
                         "findings": [f.__dict__ for f in p.findings]} for p in self.plans],
               f"{sum(len(p.steps) for p in self.plans)} statement(s), "
               f"{sum(len(p.findings) for p in self.plans)} finding(s)")

    # -- gate and apply ----------------------------------------------------------------------------
    def gate(self) -> bool:
        blocked = [p for p in self.plans if p.blocked]
        if self.mode != "apply":
            self.confirmed = False
            _display_markdown("**Plan mode:** nothing will be changed. Run again with `mode = \"apply\"` to apply.")
            record("gate", {"mode": self.mode, "apply": False}, "PLAN ONLY")
            return False
        if blocked:
            record("gate", {"mode": self.mode, "apply": False, "blocked": True}, "BLOCKED")
            raise RunbookError("the plan has blockers (see above); resolve them and run again — nothing was changed")
        if self.interactive:
            import ipywidgets as w
            from IPython.display import display
            box = w.Checkbox(value=False, description=f"apply the plan on {', '.join(p.instance for p in self.plans)}",
                             layout=w.Layout(width="auto"))
            self._gate_widget = box
            display(box)
            _display_markdown("Tick the box, then run the next cell (*Run Selected Cell and All Below*).")
            record("gate", {"mode": self.mode, "apply": None, "interactive": True}, "waiting for confirmation")
            return False
        self.confirmed = True
        record("gate", {"mode": self.mode, "apply": True}, "APPLY")
        return True

    def apply(self) -> list[dict]:
        if self.mode != "apply":
            record("apply", {"skipped": "plan mode"}, "skipped (plan mode)")
            return []
        if self.interactive:
            self.confirmed = bool(self._gate_widget is not None and self._gate_widget.value)
            record("gate_confirmation", {"confirmed": self.confirmed, "operator": getpass.getuser()},
                   "confirmed" if self.confirmed else "NOT confirmed")
            if not self.confirmed:
                raise RunbookError("apply was not confirmed: tick the box in the gate cell, then run this cell again")
        outcomes: list[dict] = []
        if self.notebook == "witness":
            self._apply_witness(outcomes)
        else:
            for p in self.plans:
                self._apply_plan(p, outcomes)
            if self.notebook == "outbound":
                self.export_certificate(self.target)
        return outcomes

    def _apply_witness(self, outcomes: list[dict]) -> None:
        w = self.target
        outbound, inbound_w, *inbound_partners = self.plans
        self._apply_plan(outbound, outcomes)
        self.export_certificate(w)
        # inbound steps are planned again now that every certificate exists
        self.state(w, refresh=True)
        self._apply_plan(planning.plan_inbound(w.name, [self.peer_spec(w, p) for p in self.env.partners],
                                               self.state(w), "witness inbound"), outcomes)
        for p in self.env.partners:
            self.state(p, refresh=True)
            self._apply_plan(planning.plan_inbound(p.name, [self.peer_spec(p, w)], self.state(p),
                                                   "witness inbound"), outcomes)

    def _apply_plan(self, p: planning.Plan, outcomes: list[dict]) -> None:
        if p.blocked:
            raise RunbookError(f"{p.instance}: the plan has blockers: " +
                               "; ".join(f.what for f in p.findings if f.kind == planning.BLOCKER))
        inst = self.env.instance(p.instance)
        conn = self.connection(inst)
        for i, step in enumerate(p.steps, 1):
            started = utcnow()
            cur = conn.cursor()
            try:
                cur.execute(step.statement.render())
                messages = [REGISTRY.redact(m[1]) for m in (cur.messages or [])]
                ok, error = True, None
            except Exception as exc:  # pyodbc.Error and friends: record, then stop
                ok, messages = False, []
                error = REGISTRY.redact(str(exc.args[-1] if getattr(exc, "args", None) else exc))
            finally:
                cur.close()
            outcome = {"instance": p.instance, "step": i, "establishes": step.establishes, "sql": step.sql,
                       "ok": ok, "error": error, "messages": messages,
                       "started_utc": started.isoformat(timespec="milliseconds"),
                       "ended_utc": utcnow().isoformat(timespec="milliseconds")}
            outcomes.append(outcome)
            self.applied.append(outcome)
            record("statement", outcome, f"{p.instance} #{i} {'ok' if ok else 'FAILED'}: {step.establishes}")
            if not ok:
                _display_markdown(f"**FAILED** on {p.instance}, statement {i}:\n\n```sql\n{step.sql}\n```\n\n{error}")
                raise RunbookError(f"{p.instance}: statement {i} ({step.establishes}) failed: {error}. Nothing after "
                                   "it was run; fix the cause and run the notebook again — it only does what is "
                                   "still missing")
            _display_markdown(f"ok — {p.instance} #{i}: {step.establishes}" +
                              (f"  \n`{'; '.join(messages)}`" if messages else ""))
        self.state(inst, refresh=True)

    def export_certificate(self, inst: params.Instance) -> Optional[artifacts.CertificateArtifact]:
        """Export the public part of the certificate the parameters name for this instance."""
        name = self.env.certificate_name(inst)
        der = inspect.certencoded(self.connection(inst), name)
        if der is None:
            return None
        art = artifacts.describe(inst.name, name, der)
        cer, meta = artifacts.export(self.certificate_dir, art)
        if self.env.certificate.transfer == "file":
            path = planning.server_path(self.env.certificate.file_share, artifacts.file_stem(inst.name) + ".cer")
            cur = self.connection(inst).cursor()
            try:
                cur.execute(tsql.backup_certificate(art.certificate_name, path).render())
            except Exception as exc:
                if "15240" not in str(exc):   # already there: never overwritten
                    raise RunbookError(f"{inst.name}: BACKUP CERTIFICATE to {path} failed: {exc}") from None
            finally:
                cur.close()
        record("certificate_artifact", {**art.metadata(), "files": [str(cer), str(meta)]},
               f"{inst.name} thumbprint 0x{art.thumbprint_hex}, expires {art.not_after:%Y-%m-%d}")
        _display_markdown(f"Exported {inst.name}'s public certificate: `{cer}` (thumbprint 0x{art.thumbprint_hex}, "
                          f"valid until {art.not_after:%Y-%m-%d %H:%M} UTC)")
        return art

    # -- verify -------------------------------------------------------------------------------------
    def verify(self):
        """Read every instance (read-only), check instance and pair trust, show and record the verdict."""
        from ..core import verify as v
        snaps = v.collect(self.env, self.connection)
        verdict = v.evaluate(self.env, snaps)
        self.verdict = verdict
        status = "FAIL" if verdict.failed else ("WARN" if verdict.warned else "PASS")
        _display_markdown(f"## Verdict: **{status}**")
        rows = [(f.check, f.instance, f.peer or "", f.status, f.found, f.remediation) for f in verdict.findings
                if f.status != v.PASS]
        _display_table("Findings (WARN and FAIL)", ["check", "instance", "peer", "status", "found", "remediation"], rows)
        _display_table("All checks", ["check", "instance", "peer", "status", "found"],
                       [(f.check, f.instance, f.peer or "", f.status, f.found) for f in verdict.findings])
        header, matrix = v.matrix_rows(self.env, verdict)
        _display_table("Trust matrix (the row instance connects to the column instance)", header,
                       [tuple(r) for r in matrix])
        from IPython.display import SVG, display
        _display_markdown("**Endpoint certificate validity**")
        display(SVG(v.expiry_svg(verdict.expiry, verdict.checked_at)))
        for name, snap in snaps.items():
            for key, title in (("connections", "live mirroring connections"),
                               ("database_mirroring", "mirrored databases")):
                cols, data = snap.tables.get(key, ([], []))
                if data:
                    _display_table(f"{name}: {title}", cols, data)
            if snap.errorlog:
                _display_table(f"{name}: handshake messages in the error log (last "
                               f"{self.env.verify.errorlog_hours} h)", ["LogDate", "ProcessInfo", "Text"],
                               snap.errorlog[:50])
        record("verify", v.verdict_record(self.env, verdict),
               f"{status}: {sum(f.status == v.FAIL for f in verdict.findings)} FAIL, "
               f"{sum(f.status == v.WARN for f in verdict.findings)} WARN")
        return verdict

    def conclude(self) -> None:
        """Fail the notebook when verify found a failure (a WARN alone passes, visibly)."""
        verdict = getattr(self, "verdict", None)
        if verdict is not None and verdict.failed:
            fails = [f for f in verdict.findings if f.status == "FAIL"]
            raise RunbookError(f"verify failed: {len(fails)} check(s) FAIL, first: {fails[0].check} "
                               f"{fails[0].instance}{' ← ' + fails[0].peer if fails[0].peer else ''}: {fails[0].found}")
        if verdict is not None and verdict.warned:
            _display_markdown("**WARN:** see the findings above; verify passes.")

    def seal(self) -> dict:
        summary = {
            "notebook": self.notebook, "target": self.target.name if self.target else None, "mode": self.mode,
            "statements_applied": sum(1 for o in self.applied if o["ok"]),
            "plans": [{"instance": p.instance, "steps": len(p.steps), "findings": len(p.findings)} for p in self.plans],
            "started_utc": self.started.isoformat(timespec="seconds"),
            "ended_utc": utcnow().isoformat(timespec="seconds"), "status": "ok",
        }
        record("seal", summary, f"{self.notebook} {summary['target'] or ''}: sealed, "
                                f"{summary['statements_applied']} statement(s) applied")
        for c in self._connections.values():
            try:
                c.close()
            except Exception:
                pass
        self._connections.clear()
        return summary


def _find(path: str) -> Path:
    """A relative parameter file, from the working directory or the repository root (notebooks/ runs)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    for base in (Path.cwd().parent, Path(__file__).resolve().parents[2]):
        if (base / p).exists():
            return base / p
    return p


def start(notebook: str, values: dict[str, Any]) -> Run:
    """Validate the parameters (nothing is sent before this passes) and record the run header."""
    _show_errors_plainly()
    if notebook not in NOTEBOOKS:
        raise RunbookError(f"unknown notebook {notebook!r}")
    mode = values.get("mode", "plan")
    if mode not in ("plan", "apply"):
        raise RunbookError(f"mode = {mode!r}: write \"plan\" (the default, changes nothing) or \"apply\"")
    injected = {k: values[k] for k in params.NOTEBOOK_PARAMETERS if values.get(k) is not None}
    interactive = values.get("interactive")
    if interactive is None:
        interactive = not injected        # nothing injected: a person opened the notebook
    if not injected and Path.cwd().name == "notebooks" and (Path.cwd().parent / "parameters").is_dir():
        # JupyterLab starts kernels in notebooks/; the kit's relative paths are from the repository root
        os.chdir(Path.cwd().parent)
    if injected:
        env = params.from_values(injected)
    else:
        parameters_file = values.get("parameters_file") or "parameters/lab.yaml"
        env = params.load(_find(parameters_file))
    target_name = values.get("target")
    target = None
    if notebook == "witness":
        if env.witness is None:
            raise RunbookError(f"{env.source}: the environment has no witness (role: witness); the witness notebook "
                               "has nothing to do")
        target = env.instance(target_name) if target_name else env.witness
        if target.role != "witness":
            raise RunbookError(f"target {target.name!r} is a {target.role}; the witness notebook's target is the "
                               f"witness ({env.witness.name})")
    elif notebook in ("outbound", "inbound"):
        if target_name:
            target = env.instance(target_name)
        elif not interactive:
            raise RunbookError("set target to the instance to configure, one of: " +
                               ", ".join(repr(i.name) for i in env.instances))
    certificate_dir = Path(values.get("certificate_dir") or Path("runs") / env.environment / "certificates")
    run = Run(notebook, env, target, mode, str(values.get("change_id") or ""), certificate_dir, bool(interactive))
    if target is None and notebook in ("outbound", "inbound"):
        run.pick_target()
    run.header()
    return run
