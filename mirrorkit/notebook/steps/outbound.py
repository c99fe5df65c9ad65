"""notebooks/outbound.ipynb: master key, endpoint certificate, endpoint, public certificate exported."""
from __future__ import annotations

from ..run import Run, Section
from ..sections import Outbound


class OutboundRun(Run):
    notebook = "outbound"

    def sections(self) -> list[Section]:
        return [Outbound(self.require_target())]
