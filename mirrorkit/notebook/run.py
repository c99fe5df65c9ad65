"""One notebook's run: header → snapshot → plan → gate → apply → snapshot → seal.

`Run` is what every runbook notebook shares; each notebook is a subclass (notebook/steps/) that
says which instances it touches and which sections it applies, in order. A section is planned
from the live catalog: the first when the plan is shown, each later one again when it is reached,
so that it sees what the sections before it created. Every decision is made in core/; this
layer shows it, asks for the go-ahead, executes and records.
"""
from __future__ import annotations

import getpass
import os
import platform
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Optional

from .. import __version__
from ..access.credentials import REGISTRY
from ..config.parameters import Environment, Instance
from ..core import artifacts
from ..core.plan import Plan
from . import display, records
from .errors import RunbookError
from .session import Session


def utcnow() -> datetime:
    return artifacts.utcnow()


@dataclass
class Context:
    """What sections need: the parameters, the session and where artifacts go."""
    env: Environment
    session: Session
    certificate_dir: Path
    notes: list[str] = field(default_factory=list)


class Section:
    """A part of a notebook that is planned and applied as one (e.g. outbound on an instance)."""
    key: ClassVar[str]
    title: str = ""

    def plan(self, ctx: Context, *, preview: bool) -> list[Plan]:
        """The plans for this section from the live catalog; `preview` when earlier sections have not
        been applied yet (what they would create is then announced, not required)."""
        raise NotImplementedError

    def instances(self, ctx: Context) -> list[Instance]:
        raise NotImplementedError

    def after(self, ctx: Context) -> None:
        """Called after the section's statements succeeded (exports, for instance)."""


@dataclass
class Run:
    notebook: ClassVar[str]
    takes_target: ClassVar[bool] = True        # outbound/inbound/witness act on one instance

    env: Environment
    target: Optional[Instance]
    mode: str
    change_id: str
    certificate_dir: Path
    interactive: bool
    session: Optional[Session] = None
    parameter_file: Optional[dict] = None       # path and sha256 of the bytes validated
    started: datetime = field(default_factory=utcnow)
    plans: list = field(default_factory=list)
    applied: list = field(default_factory=list)
    confirmed: Optional[bool] = None
    _gate_widget: object = None
    _picker: object = None
    _planned: dict = field(default_factory=dict)    # section key → plans to apply
    _done: set = field(default_factory=set)

    def __post_init__(self):
        display.SHOWN.clear()          # the seal scans what this run showed (tests run many in one process)
        if self.session is None:
            self.session = Session(self.env, interactive=self.interactive)
        self.ctx = Context(self.env, self.session, self.certificate_dir)

    # -- what a notebook declares --------------------------------------------------------------------
    @classmethod
    def choose_target(cls, env: Environment, name: Optional[str], interactive: bool) -> Optional[Instance]:
        """The instance to act on; None lets a person pick it by hand."""
        if name:
            return env.instance(name)
        if not interactive:
            raise RunbookError("set target to the instance to configure, one of: " +
                               ", ".join(repr(i.name) for i in env.instances))
        return None

    def sections(self) -> list[Section]:
        return []

    def scope(self) -> list[Instance]:
        """The instances whose catalog the snapshots show."""
        seen: dict[str, Instance] = {}
        for s in self.sections():
            for inst in s.instances(self.ctx):
                seen.setdefault(inst.name.lower(), inst)
        return list(seen.values())

    # -- shared services (also used by tests and `mirrorkit verify`) ---------------------------------
    def connection(self, instance: Instance):
        return self.session.connection(instance)

    def state(self, instance: Instance, refresh: bool = False):
        return self.session.state(instance, refresh)

    def close(self) -> None:
        self.session.close()

    # -- by hand: pick the instance ------------------------------------------------------------------
    def pick_target(self) -> None:
        """Show a drop-down of the instances; the cells below use the choice when they run."""
        import ipywidgets as w
        from IPython.display import display as show
        self._picker = w.Dropdown(options=[(f"{i.name} ({i.role}, {i.server})", i.name) for i in self.env.instances],
                                  value=None, description="instance", layout=w.Layout(width="auto"))
        show(self._picker)
        display.markdown("Pick the instance, then run the cells below (*Run Selected Cell and All Below*).")

    def require_target(self) -> Instance:
        if self.target is None and self.takes_target:
            picker = self._picker
            if picker is None or picker.value is None:
                raise RunbookError("pick the instance in the drop-down of the Start cell, then run the cells below "
                                   "again (or set target in the parameters cell)")
            self.target = self.env.instance(picker.value)
            records.record("target_picked", {"target": self.target.name, "operator": getpass.getuser()},
                           self.target.name)
        return self.target

    # -- cells ---------------------------------------------------------------------------------------
    def header(self) -> None:
        info = {
            "environment": self.env.environment, "notebook": self.notebook,
            "target": self.target.name if self.target else None, "mode": self.mode,
            "change_id": self.change_id or None, "operator": getpass.getuser(), "host": socket.gethostname(),
            "kit_version": __version__, "parameter_digest": self.env.digest(), "source": self.env.source,
            "parameter_file_sha256": (self.parameter_file or {}).get("sha256"),
            "started_utc": self.started.isoformat(timespec="seconds"), "python": platform.python_version(),
            "certificate_dir": str(self.certificate_dir),
            "process_id": os.getpid(),   # SQL Server shows it as host_process_id of the kit's sessions
        }
        rows = "\n".join(f"| {k} | {'' if v is None else v} |" for k, v in info.items())
        display.markdown(f"### Run header\n\n| | |\n|---|---|\n{rows}")
        records.record("run_header", info, f"{self.notebook} {info['target'] or ''} mode={self.mode}")
        self.show_configuration()

    def show_configuration(self) -> None:
        """The effective configuration (defaults applied, secrets as references): what was applied."""
        import yaml
        config = self.env.to_dict()
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False)
        display.markdown("<details><summary>Effective configuration (defaults applied; secrets are references)"
                         f"</summary>\n\n```yaml\n{text}```\n\n</details>")
        records.record("configuration", config, f"{self.env.environment}: {len(self.env.instances)} instance(s), "
                                                f"digest {self.env.digest()[:12]}")

    def snapshot(self, label: str = "before") -> dict:
        from ..core.catalog import SNAPSHOT
        self.require_target()
        out = {}
        for inst in self.scope():
            state = self.session.state(inst, refresh=True)
            if state.server_name and state.server_name.lower() != inst.name.lower():
                raise RunbookError(f"{inst.name}: the server at {inst.server} reports @@SERVERNAME "
                                   f"{state.server_name!r}; check instances[].server in {self.env.source}")
            display.markdown(f"### {inst.name} — catalog {label}")
            for key in SNAPSHOT:
                cols, rows = state.tables[key]
                display.table(f"{inst.name}: {key.replace('_', ' ')}", cols, rows)
            out[inst.name] = state.records()
        records.record(f"snapshot_{label}", {"label": label, "instances": out},
                       f"{label}: " + ", ".join(f"{k} ({len(v.get('certificates', []))} certificates)"
                                                for k, v in out.items()))
        return out

    # -- planning ------------------------------------------------------------------------------------
    def plan(self) -> list[Plan]:
        """Every section planned from the live catalog (later sections as a preview), shown and recorded."""
        self.require_target()
        self.ctx.notes.clear()
        self._planned.clear()
        plans: list[Plan] = []
        for i, section in enumerate(self.sections()):
            section_plans = section.plan(self.ctx, preview=i > 0)
            self._planned[section.key] = section_plans
            plans.extend(section_plans)
        self.plans = plans
        self._show(plans, self.ctx.notes)
        records.record("plan", [self._plan_record(p) for p in plans],
                       f"{sum(len(p.steps) for p in plans)} statement(s), "
                       f"{sum(len(p.findings) for p in plans)} finding(s)")
        return plans

    @staticmethod
    def _plan_record(p: Plan) -> dict:
        return {"instance": p.instance, "notebook": p.notebook, "blocked": p.blocked,
                "steps": [{"sql": s.sql, "establishes": s.establishes} for s in p.steps],
                "findings": [f.as_record() for f in p.findings]}

    @staticmethod
    def _show(plans: list[Plan], notes: list[str], heading: str = "Plan") -> None:
        lines = []
        for p in plans:
            lines.append(f"### {heading}: {p.notebook} on {p.instance} — "
                         f"{len(p.steps) or 'no'} statement(s){', BLOCKED' if p.blocked else ''}")
            for f in p.findings:
                lines.append(f"- **{f.status}** {f.check} ({f.peer or f.instance}): {f.found}" +
                             (f"  \n  *Remediation:* `{f.remediation}`" if f.remediation else ""))
            if p.steps:
                lines.append("\n```sql\n" + p.script() + "```")
            elif not p.findings:
                lines.append("Nothing to do: the instance is already in the desired state.")
        for n in notes:
            lines.append(f"- note: {n}")
        display.markdown("\n".join(lines))

    # -- gate and apply ------------------------------------------------------------------------------
    def gate(self) -> bool:
        blocked = [p for p in self.plans if p.blocked]
        if self.mode != "apply":
            self.confirmed = False
            display.markdown("**Plan mode:** nothing will be changed. Run again with `mode = \"apply\"` to apply.")
            records.record("gate", {"mode": self.mode, "apply": False}, "PLAN ONLY")
            return False
        if blocked:
            records.record("gate", {"mode": self.mode, "apply": False, "blocked": True}, "BLOCKED")
            raise RunbookError("the plan has blockers (see above); resolve them and run again — nothing was changed")
        if self.interactive:
            import ipywidgets as w
            from IPython.display import display as show
            names = ", ".join(dict.fromkeys(p.instance for p in self.plans))
            box = w.Checkbox(value=False, description=f"apply the plan on {names}", layout=w.Layout(width="auto"))
            self._gate_widget = box
            show(box)
            display.markdown("Tick the box, then run the next cell (*Run Selected Cell and All Below*).")
            records.record("gate", {"mode": self.mode, "apply": None, "interactive": True}, "waiting for confirmation")
            return False
        self.confirmed = True
        records.record("gate", {"mode": self.mode, "apply": True}, "APPLY")
        return True

    def _confirm(self) -> bool:
        if self.mode != "apply":
            return False
        if self.interactive and not self.confirmed:
            self.confirmed = bool(self._gate_widget is not None and self._gate_widget.value)
            records.record("gate_confirmation", {"confirmed": self.confirmed, "operator": getpass.getuser()},
                           "confirmed" if self.confirmed else "NOT confirmed")
            if not self.confirmed:
                raise RunbookError("apply was not confirmed: tick the box in the gate cell, then run this cell again")
        return True

    def apply(self, section: Optional[str] = None) -> list[dict]:
        """Apply every section in order (or the one named), each planned again when it is reached."""
        chosen = [s for s in self.sections() if section is None or s.key == section]
        if section is not None and not chosen:
            raise RunbookError(f"{self.notebook} has no section {section!r}")
        if not self._confirm():
            records.record("apply", {"skipped": "plan mode", "section": section}, "skipped (plan mode)")
            return []
        outcomes: list[dict] = []
        for s in chosen:
            if s.key in self._done:
                continue
            first = s.key == self.sections()[0].key
            plans = self._planned.get(s.key) if first else None
            if plans is None:
                for inst in s.instances(self.ctx):
                    self.session.state(inst, refresh=True)
                self.ctx.notes.clear()
                plans = s.plan(self.ctx, preview=False)
                self._show(plans, self.ctx.notes, heading=f"Planned now ({s.title or s.key})")
                records.record("section_plan", {"section": s.key, "plans": [self._plan_record(p) for p in plans]},
                               f"{s.key}: {sum(len(p.steps) for p in plans)} statement(s)")
            for p in plans:
                self._apply_plan(p, outcomes)
            s.after(self.ctx)
            self._done.add(s.key)
        return outcomes

    def _apply_plan(self, p: Plan, outcomes: list[dict]) -> None:
        if p.blocked:
            raise RunbookError(f"{p.instance}: the plan has blockers: " +
                               "; ".join(f.found for f in p.findings if f.blocks))
        inst = self.env.instance(p.instance)
        conn = self.session.connection(inst)
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
            records.record("statement", outcome, f"{p.instance} #{i} {'ok' if ok else 'FAILED'}: {step.establishes}")
            if not ok:
                # the server's message in a block of its own: markdown leaves it as it is (and so does the
                # redaction's ******** in it)
                display.markdown(f"**FAILED** on {p.instance}, statement {i}:\n\n```sql\n{step.sql}\n```\n\n"
                                 f"{_fenced(error, 'text')}")
                raise RunbookError(f"{p.instance}: statement {i} ({step.establishes}) failed: {error}. Nothing after "
                                   "it was run; fix the cause and run the notebook again — it only does what is "
                                   "still missing")
            display.markdown(f"ok — {p.instance} #{i}: {step.establishes}" +
                             (f"  \n`{'; '.join(messages)}`" if messages else ""))
        self.session.state(inst, refresh=True)

    # -- the end -------------------------------------------------------------------------------------
    def seal(self) -> dict:
        """The seal record, status ok — unless an output the kit showed (display.SHOWN) holds a secret this
        kernel knows (resolved references and generated login passwords, in any encoded form): then the
        seal says secret_found, naming the outputs, and the cell fails (`mirrorkit run` exits 3)."""
        summary = {
            "notebook": self.notebook, "target": self.target.name if self.target else None, "mode": self.mode,
            "statements_applied": sum(1 for o in self.applied if o["ok"]),
            "plans": [{"instance": p.instance, "steps": len(p.steps), "findings": len(p.findings)} for p in self.plans],
            "started_utc": self.started.isoformat(timespec="seconds"),
            "ended_utc": utcnow().isoformat(timespec="seconds"), "status": "ok",
        }
        found = display.SHOWN.holding_secrets()
        if found:
            summary.update(status=records.SEAL_SECRET_FOUND, secret_found_in=found)
            records.record("seal", summary, f"{self.notebook} {summary['target'] or ''}: NOT sealed, a secret is "
                                            f"in {', '.join(found)}")
            self.session.close()
            raise RunbookError(f"a secret value is in the outputs above ({', '.join(found)}): this record must not "
                               "be filed; find what showed it, then run the notebook again")
        records.record("seal", summary, f"{self.notebook} {summary['target'] or ''}: sealed, "
                                        f"{summary['statements_applied']} statement(s) applied")
        self.session.close()
        return summary


def _fenced(text: str, info: str = "") -> str:
    """text as a markdown code block, fenced by more backticks than any run of them inside it."""
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}{info}\n{text}\n{fence}"
