"""notebooks/inbound.ipynb: a partner or replica trusts each peer that connects to it.

A mirroring partner trusts the other partner here; the witness pairs are the witness notebook's, so
partners can be set up without a witness and a witness added later with one notebook.
"""
from __future__ import annotations

from ..run import Run, Section
from ..sections import Trust


class InboundRun(Run):
    notebook = "inbound"

    def sections(self) -> list[Section]:
        target = self.require_target()
        peers = tuple(p for p in self.env.peers_of(target) if p.role != "witness")
        return [Trust((target,), {target.name: peers})]
