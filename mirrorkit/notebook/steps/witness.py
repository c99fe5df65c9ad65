"""notebooks/witness.ipynb: the witness and both partners, both ways, self-contained.

Three sections, each planned when it is reached: outbound on the witness; the witness trusts both
partners; both partners trust the witness (its certificate is the one the first section exported).
"""
from __future__ import annotations

from typing import Optional

from ...config.parameters import Environment, Instance
from ..errors import RunbookError
from ..run import Run, Section
from ..sections import Outbound, Trust


class WitnessRun(Run):
    notebook = "witness"

    @classmethod
    def choose_target(cls, env: Environment, name: Optional[str], interactive: bool) -> Optional[Instance]:
        if env.witness is None:
            raise RunbookError(f"{env.source}: the environment has no witness (role: witness); the witness notebook "
                               "has nothing to do")
        target = env.instance(name) if name else env.witness
        if target.role != "witness":
            raise RunbookError(f"target {target.name!r} is a {target.role}; the witness notebook's target is the "
                               f"witness ({env.witness.name})")
        return target

    def sections(self) -> list[Section]:
        w, partners = self.target, self.env.partners
        return [
            Outbound(w),
            Trust((w,), {w.name: partners}, key="witness_trusts_partners", label="witness inbound", pending=w.name),
            Trust(partners, {p.name: (w,) for p in partners}, key="partners_trust_witness", label="witness inbound",
                  pending=w.name),
        ]
