"""`mirrorkit report RUN_DIR [--check]`: a run read back from its notebooks' records."""
from __future__ import annotations

import json
from pathlib import Path

from .notebook.records import read_records
from .execution.outcome import StepStatus
from .execution.runner import sha256


class ReportError(Exception):
    pass


def load_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{run_dir}: no manifest.json — not a mirrorkit run folder") from None
    except ValueError:
        raise ReportError(f"{path}: not valid JSON (was it edited?)") from None


def check(run_dir: Path) -> list[str]:
    """Files changed, missing or added since the run was sealed (empty when intact)."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    problems = []
    recorded = manifest.get("files", {})
    for rel, digest in sorted(recorded.items()):
        p = run_dir / rel
        if not p.exists():
            problems.append(f"missing: {rel}")
        elif sha256(p) != digest:
            problems.append(f"changed after sealing: {rel}")
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.name != "manifest.json" and str(p.relative_to(run_dir)) not in recorded:
            problems.append(f"not in the manifest: {p.relative_to(run_dir)}")
    if not manifest.get("sealed", False):
        problems.append("the run was not sealed (a secret was found in: "
                        + ", ".join(manifest.get("secret_found_in", [])) + ")")
    return problems


def summary(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    m = load_manifest(run_dir)
    lines = [f"run {run_dir}", f"  environment {m['environment']}, mode {m['mode']}, change {m.get('change_id') or '-'},"
             f" by {m['operator']} on {m['host']}, kit {m['kit_version']}",
             f"  {m['started']} → {m['ended']}: {m['status']} (exit {m['exit_code']})", ""]
    thumbprints: dict[str, dict] = {}
    verdict = None
    for step in m["steps"]:
        head = f"  {step['index']:02d} {step['notebook']:<8} {step['target'] or '':<20} {step['status']}"
        if step.get("duration_s") is not None:
            head += f" ({step['duration_s']:.1f} s)"
        lines.append(head)
        if not step.get("notebook_file"):
            continue
        try:
            recs = read_records(run_dir / step["notebook_file"])
        except FileNotFoundError:
            lines.append(f"       the notebook {step['notebook_file']} is missing (see --check)")
            continue
        except Exception as exc:      # an edited, unreadable record must not hide the rest of the report
            lines.append(f"       the notebook {step['notebook_file']} cannot be read ({exc.__class__.__name__}; "
                         "see --check)")
            continue
        applied = [s for s in recs.get("statement", []) if s.get("ok")]
        failed = [s for s in recs.get("statement", []) if not s.get("ok")]
        for s in applied:
            lines.append(f"       changed {s['instance']}: {s['establishes']}")
        for s in failed:
            lines.append(f"       FAILED  {s['instance']}: {s['establishes']}: {s['error']}")
        for p in (recs.get("plan") or [[]])[-1]:
            for f in p.get("findings", []):
                lines.append(f"       {_finding(f)}")
        if step["notebook"] != "verify" and not applied and not failed and recs.get("plan"):
            steps_planned = sum(len(p["steps"]) for p in recs["plan"][-1])
            lines.append(f"       {'nothing to change' if not steps_planned else f'{steps_planned} statement(s) planned (not applied)'}")
        for art in recs.get("certificate_artifact", []):
            thumbprints[art["instance"]] = art
        if recs.get("verify"):
            verdict = recs["verify"][-1]
        if step["status"] not in (StepStatus.OK, StepStatus.SKIPPED):
            lines.append(f"       error: {step.get('reason') or step.get('error') or step['status']}")
    if thumbprints:
        lines.append("")
        lines.append("  endpoint certificates exported:")
        for inst, art in sorted(thumbprints.items()):
            lines.append(f"    {inst}: {art['certificate_name']} thumbprint {art['thumbprint']} expires {art['not_after']}")
    if verdict is not None:
        lines.append("")
        lines.append(f"  verify: {verdict['status']}")
        for f in verdict["findings"]:
            if f["status"] != "PASS":
                lines.append(f"    {_finding(f)}")
        not_ok = [c for c in verdict["matrix"] if c["result"] != "OK"]
        lines.append(f"    trust matrix: {len(verdict['matrix']) - len(not_ok)}/{len(verdict['matrix'])} pairs OK")
        for e in verdict.get("expiry", []):
            lines.append(f"    {e['instance']}: {e['certificate']} expires {e['expiry']} ({e['days_left']} days)")
    return "\n".join(lines) + "\n"


def _finding(f: dict) -> str:
    """One finding as a line; records sealed before the one finding model (schema 1 plans) say kind/what."""
    if "kind" in f:
        return f"{f['kind']:<7} {f.get('subject', '')}: {f['what']}"
    return f"{f['status']} {f['check']} {f['instance']}{' ← ' + f['peer'] if f.get('peer') else ''}: {f['found']}"
