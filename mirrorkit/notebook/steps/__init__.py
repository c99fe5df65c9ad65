"""One class per runbook notebook, composed from the shared sections (notebook/sections.py)."""
from .inbound import InboundRun
from .outbound import OutboundRun
from .verify import VerifyRun
from .witness import WitnessRun

#: notebook name → its class (the notebooks/ templates of the same name call start() with it)
RUNS = {cls.notebook: cls for cls in (OutboundRun, InboundRun, WitnessRun, VerifyRun)}

__all__ = ["RUNS", "OutboundRun", "InboundRun", "WitnessRun", "VerifyRun"]
