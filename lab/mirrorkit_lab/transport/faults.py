"""LAB-ONLY fault injection for rehearsals: network cuts between instances and clock offsets.

`mirrorkit lab cut A B`, `heal`, `clock NAME +30d` write <state>/faults.json; every instance process
re-reads it when it changed (checked at most every POLL seconds, so the hot path costs a clock read).
Instance names compare case-insensitively, as @@SERVERNAME does.

    {"cuts": [["HOST_A", "HOST_B"], ...], "clock": {"HOST_A": 2592000.0, ...}}
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

FILE = "faults.json"
POLL = 0.2
_OFFSET_RE = re.compile(r"^([+-])(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FaultError(ValueError):
    pass


def parse_offset(text: str) -> Optional[float]:
    """'+30d', '-2h', '+90m', '+15s' as seconds; 'reset' as None."""
    if text.strip().lower() == "reset":
        return None
    m = _OFFSET_RE.match(text.strip())
    if not m:
        raise FaultError(f"{text!r} is not a clock offset; write +30d, -2h, +90m, +15s or reset")
    value = float(m.group(2)) * _UNIT[m.group(3)]
    return value if m.group(1) == "+" else -value


def read(state_dir: Path) -> dict:
    try:
        data = json.loads((Path(state_dir) / FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {"cuts": [], "clock": {}}
    if not isinstance(data, dict):
        return {"cuts": [], "clock": {}}
    cuts = [[str(a), str(b)] for a, b in (c for c in data.get("cuts", []) if isinstance(c, list) and len(c) == 2)]
    clock = {str(k): float(v) for k, v in (data.get("clock") or {}).items() if isinstance(v, (int, float))}
    return {"cuts": cuts, "clock": clock}


def write(state_dir: Path, data: dict) -> None:
    path = Path(state_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)     # a new inode: readers see the change even within one mtime tick


def cut(state_dir: Path, a: str, b: str) -> None:
    if a.lower() == b.lower():
        raise FaultError(f"cannot cut {a} from itself")
    data = read(state_dir)
    pair = {a.lower(), b.lower()}
    if not any({x.lower(), y.lower()} == pair for x, y in data["cuts"]):
        data["cuts"].append([a, b])
    write(state_dir, data)


def heal(state_dir: Path, a: Optional[str] = None, b: Optional[str] = None) -> int:
    """Remove the cut between a and b (every cut when both are None); the number of cuts removed."""
    data = read(state_dir)
    before = len(data["cuts"])
    if a is None and b is None:
        data["cuts"] = []
    else:
        pair = {(a or "").lower(), (b or "").lower()}
        data["cuts"] = [c for c in data["cuts"] if {c[0].lower(), c[1].lower()} != pair]
    write(state_dir, data)
    return before - len(data["cuts"])


def set_clock(state_dir: Path, name: str, offset: Optional[float]) -> None:
    data = read(state_dir)
    clock = {k: v for k, v in data["clock"].items() if k.lower() != name.lower()}
    if offset:
        clock[name] = offset
    data["clock"] = clock
    write(state_dir, data)


class FaultView:
    """One instance's view of the fault file, refreshed when the file changes."""

    def __init__(self, state_dir: Path, instance_name: str):
        self.path = Path(state_dir) / FILE
        self.name = instance_name.lower()
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamp: Optional[tuple] = None
        self._cut: frozenset[str] = frozenset()
        self._offset = 0.0

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < POLL:
            return
        with self._lock:
            if now - self._checked < POLL:
                return
            self._checked = now
            try:
                st = self.path.stat()
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                stamp = None
            if stamp == self._stamp:
                return
            self._stamp = stamp
            data = read(self.path.parent) if stamp else {"cuts": [], "clock": {}}
            peers = set()
            for a, b in data["cuts"]:
                if a.lower() == self.name:
                    peers.add(b.lower())
                elif b.lower() == self.name:
                    peers.add(a.lower())
            self._cut = frozenset(peers)
            self._offset = next((v for k, v in data["clock"].items() if k.lower() == self.name), 0.0)

    def is_cut(self, peer: Optional[str]) -> bool:
        """True while all traffic with `peer` (its @@SERVERNAME) is to be dropped."""
        self._refresh()
        return bool(self._cut) and peer is not None and peer.lower() in self._cut

    def now(self, utcnow: datetime) -> datetime:
        """The instance's notion of 'now' for certificate validity: utcnow shifted by its clock offset."""
        self._refresh()
        return utcnow + timedelta(seconds=self._offset) if self._offset else utcnow
