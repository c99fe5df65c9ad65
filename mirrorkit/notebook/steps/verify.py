"""notebooks/verify.ipynb: read-only checks of every instance and pair, shown, recorded, and a verdict."""
from __future__ import annotations

from typing import Optional

from ...config.parameters import Environment, Instance
from ...core import verify as checks
from .. import display, records
from ..errors import RunbookError
from ..run import Run, Section


class VerifyRun(Run):
    notebook = "verify"
    takes_target = False
    verdict: Optional[checks.Verdict] = None

    @classmethod
    def choose_target(cls, env: Environment, name: Optional[str], interactive: bool) -> Optional[Instance]:
        return None

    def sections(self) -> list[Section]:
        return []

    def scope(self) -> list[Instance]:
        return list(self.env.instances)

    def verify(self) -> checks.Verdict:
        """Read every instance (read-only), check instance and pair trust, show and record the verdict."""
        observations = checks.collect(self.env, self.session.connection)
        verdict = checks.evaluate(self.env, observations)
        self.verdict = verdict
        display.markdown(f"## Verdict: **{verdict.status}**")
        display.table("Findings (WARN and FAIL)", ["check", "instance", "peer", "status", "found", "remediation"],
                      [(f.check, f.instance, f.peer or "", str(f.status), f.found, f.remediation)
                       for f in verdict.findings if f.status != checks.PASS])
        display.table("All checks", ["check", "instance", "peer", "status", "found"],
                      [(f.check, f.instance, f.peer or "", str(f.status), f.found) for f in verdict.findings])
        header, matrix = checks.matrix_rows(self.env, verdict)
        display.table("Trust matrix (the row instance connects to the column instance)", header,
                      [tuple(r) for r in matrix])
        display.markdown("**Endpoint certificate validity**")
        display.svg(checks.expiry_svg(verdict.expiry, verdict.checked_at))
        for name, obs in observations.items():
            if obs.state is None:
                continue
            for key, title in (("connections", "live mirroring connections"),
                               ("database_mirroring", "mirrored databases")):
                cols, data = obs.state.tables.get(key, ([], []))
                if data:
                    display.table(f"{name}: {title}", cols, data)
            if obs.state.errorlog:
                display.table(f"{name}: handshake messages in the error log (last {self.env.verify.errorlog_hours} h)",
                              ["LogDate", "ProcessInfo", "Text"], obs.state.errorlog[:50])
        records.record("verify", checks.verdict_record(self.env, verdict),
                       f"{verdict.status}: {sum(f.status == checks.FAIL for f in verdict.findings)} FAIL, "
                       f"{sum(f.status == checks.WARN for f in verdict.findings)} WARN")
        return verdict

    def conclude(self) -> None:
        """Fail the notebook when verify found a failure (a WARN alone passes, visibly)."""
        verdict = self.verdict
        if verdict is not None and verdict.failed:
            fails = [f for f in verdict.findings if f.status == checks.FAIL]
            raise RunbookError(f"verify failed: {len(fails)} check(s) FAIL, first: {fails[0].check} "
                               f"{fails[0].instance}{' ← ' + fails[0].peer if fails[0].peer else ''}: {fails[0].found}")
        if verdict is not None and verdict.warned:
            display.markdown("**WARN:** see the findings above; verify passes.")
