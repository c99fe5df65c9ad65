"""`mirrorkit demo`: start the lab from parameters/lab.yaml, run the runbook against it —
plan, apply (outbound, inbound, witness, verify) — and print the summary and where the
records are."""
from __future__ import annotations

import sys
from pathlib import Path

from . import supervisor

DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "parameters" / "lab.yaml"


def run(params: Path = DEFAULT_PARAMS, state_dir: Path | None = None, out=sys.stdout, jobs: int = 2) -> int:
    from mirrorkit import report
    from mirrorkit.execution import runner
    state = state_dir or supervisor.state_dir_from(None)
    supervisor.up(params, state, out=out)
    print("", file=out)
    plan = runner.run(params, mode="plan", jobs=jobs, log=lambda s: print(s, file=out, flush=True))
    if plan.exit_code != runner.OK:
        print(f"\nmirrorkit demo: the plan run failed ({plan.status}); see {plan.run_dir}", file=out)
        return plan.exit_code
    print("", file=out)
    applied = runner.run(params, mode="apply", jobs=jobs, log=lambda s: print(s, file=out, flush=True))
    if applied.run_dir is not None:
        print("", file=out)
        out.write(report.summary(applied.run_dir))
    print(f"\nRecords: {plan.run_dir} (plan) and {applied.run_dir} (apply), each with the executed notebooks, "
          "their HTML, the certificate artifacts and manifest.json.\n"
          f"The lab keeps running (state in {state}); stop it with: mirrorkit lab down", file=out)
    return applied.exit_code
