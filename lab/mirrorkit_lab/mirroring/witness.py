"""The witness role: what this instance remembers of the sessions it witnesses
(t_mirroring_witness, sys.database_mirroring_witnesses) and the quorum question the
partners ask it ("do you still hear the principal?")."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from .state import PRINCIPAL, SAFETY_DESC

if TYPE_CHECKING:
    from .layer import MirroringLayer

_COLUMNS = ("mirroring_guid", "database_name", "principal_server_name", "mirror_server_name", "safety_level",
            "safety_sequence", "role_sequence", "family_guid", "is_suspended", "is_suspended_sequence",
            "partner_sync_state")


@dataclass
class Witnessed:
    guid: str
    database_name: str
    principal_url: str
    mirror_url: str
    principal_instance: Optional[str] = None
    mirror_instance: Optional[str] = None
    safety: int = 2
    safety_sequence: int = 1
    role_sequence: int = 1
    family_guid: Optional[str] = None
    suspended: bool = False
    suspended_sequence: int = 0
    synchronized: bool = False
    timeout: int = 10


class WitnessRole:
    def __init__(self, layer: "MirroringLayer"):
        self.layer = layer
        self.lock = threading.Lock()
        self.sessions: dict[str, Witnessed] = {}
        conn = layer.db()
        for row in conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM t_mirroring_witness"):
            guid, name, p, m, safety, sseq, rseq, fam, susp, suspseq, sync = row
            self.sessions[guid] = Witnessed(guid, name, p, m, safety=safety, safety_sequence=sseq,
                                            role_sequence=rseq, family_guid=fam, suspended=bool(susp),
                                            suspended_sequence=suspseq, synchronized=sync == 5)
        for w in self.sessions.values():
            self._link(w)

    def _link(self, w: Witnessed) -> None:
        # the witness keeps its own connections to both partners, so they hear it
        self.layer.link(w.principal_url, "PARTNER")
        self.layer.link(w.mirror_url, "PARTNER")

    def _save(self, w: Witnessed) -> None:
        conn = self.layer.db()
        conn.execute(f"INSERT OR REPLACE INTO t_mirroring_witness ({', '.join(_COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(_COLUMNS))})",
                     (w.guid, w.database_name, w.principal_url, w.mirror_url, w.safety, w.safety_sequence,
                      w.role_sequence, w.family_guid, int(w.suspended), w.suspended_sequence,
                      5 if w.synchronized else 6))

    # -- messages from the partners -------------------------------------------------------------------
    def on_join(self, peer, msg: dict) -> dict:
        w = Witnessed(msg["guid"], msg["db"], msg["principal_url"], msg["mirror_url"],
                      msg.get("from"), msg.get("mirror_instance"), int(msg.get("safety", 2)),
                      role_sequence=int(msg.get("role_sequence", 1)), family_guid=msg.get("family_guid"),
                      synchronized=True, timeout=int(msg.get("timeout", 10)))
        with self.lock:
            self.sessions[w.guid] = w
            self._save(w)
        self._link(w)
        return {"ok": True, "instance": self.layer.instance.name}

    def on_off(self, peer, msg: dict) -> dict:
        with self.lock:
            if self.sessions.pop(msg.get("guid"), None) is not None:
                self.layer.db().execute("DELETE FROM t_mirroring_witness WHERE mirroring_guid=?", (msg["guid"],))
        return {"ok": True}

    def on_status(self, peer, msg: dict) -> dict:
        """A partner's periodic view of the session; the principal's word on roles wins."""
        with self.lock:
            w = self.sessions.get(msg.get("guid"))
            if w is None:
                return {"known": False}
            changed = False
            seq = int(msg.get("role_sequence", 0))
            if int(msg.get("role", 0)) == PRINCIPAL and seq >= w.role_sequence:
                if w.principal_url != msg.get("url") or w.role_sequence != seq:
                    # a failover happened: the partners' URLs swap roles
                    if msg.get("url") == w.mirror_url:
                        w.principal_url, w.mirror_url = w.mirror_url, w.principal_url
                        w.principal_instance, w.mirror_instance = w.mirror_instance, w.principal_instance
                    w.role_sequence = seq
                    changed = True
                w.principal_instance = msg.get("from")
                for key, attr in (("safety", "safety"), ("safety_sequence", "safety_sequence"),
                                  ("suspended", "suspended"), ("suspended_sequence", "suspended_sequence"),
                                  ("synchronized", "synchronized"), ("timeout", "timeout")):
                    if key in msg and getattr(w, attr) != msg[key]:
                        setattr(w, attr, type(getattr(w, attr))(msg[key]))
                        changed = True
            elif int(msg.get("role", 0)) != PRINCIPAL:
                w.mirror_instance = msg.get("from")
            if changed:
                self._save(w)
            return {"known": True, "role_sequence": w.role_sequence}

    def on_quorum(self, peer, msg: dict) -> dict:
        with self.lock:
            w = self.sessions.get(msg.get("guid"))
            if w is None:
                return {"known": False}
            heard = self.layer.transport.last_heard(w.principal_instance) if w.principal_instance else None
            alive = heard is not None and time.monotonic() - heard < w.timeout
            return {"known": True, "principal_heard": alive, "role_sequence": w.role_sequence}

    # -- catalog ----------------------------------------------------------------------------------------
    def rows(self) -> list[tuple]:
        with self.lock:
            return [(w.database_name, w.principal_instance or w.principal_url, w.mirror_instance or w.mirror_url,
                     w.safety, SAFETY_DESC.get(w.safety, "UNKNOWN"), w.safety_sequence, w.role_sequence,
                     w.guid, w.family_guid, int(w.suspended), w.suspended_sequence,
                     5 if w.synchronized else 6, "SYNCHRONIZED" if w.synchronized else "UNSYNCHRONIZED")
                    for w in self.sessions.values()]
