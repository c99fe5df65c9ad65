"""Database mirroring sessions of one instance: the engine's DatabaseMirroring.

Partners talk over the transport's certificate-authenticated links (transport/links.py):
the principal ships its log to the mirror (dbm.log) and, with SAFETY FULL, a commit returns
only once the mirror hardened it; both partners and the witness exchange their view of the
session every tick (dbm.status), which is how a failover, a SUSPEND or a PARTNER OFF made
while a partner was away reaches it. A partner that hears nothing for TIMEOUT seconds counts
the other as lost and acts per the quorum rules (reference spec §1.6).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from ..engine import store, txlog
from ..engine.errors import SqlError
from ..engine.results import Event
from ..transport import InvalidEndpointUrl, loopback_address, parse_endpoint_url
from . import state as S
from .state import MIRROR, PRINCIPAL, MirrorSession
from .witness import WitnessRole

if TYPE_CHECKING:
    from ..engine.instance import LabInstance

TICK = 0.5
REQUEST_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
BATCH = 2000


class Refusal(Exception):
    def __init__(self, number: int, *args):
        super().__init__(number)
        self.number, self.args_ = number, args


class MirroringLayer:
    def __init__(self, instance: "LabInstance", transport):
        self.instance = instance
        self.transport = transport
        self.lock = threading.RLock()
        self.sessions: dict[int, MirrorSession] = {}
        self._links: dict[tuple[str, str], Any] = {}
        self._local = threading.local()
        self._running = True
        self._senders: dict[int, threading.Thread] = {}
        for kind, handler in (("dbm.partner", self._on_partner), ("dbm.log", self._on_log),
                              ("dbm.status", self._on_status), ("dbm.failover", self._on_failover),
                              ("dbm.off", self._on_off), ("dbm.set_witness", self._on_set_witness)):
            transport.on_message(kind, handler)
        self.witness = WitnessRole(self)
        for kind, handler in (("dbm.witness_join", self.witness.on_join), ("dbm.witness_off", self._on_witness_off),
                              ("dbm.witness_status", self.witness.on_status),
                              ("dbm.quorum", self.witness.on_quorum)):
            transport.on_message(kind, handler)
        for s in S.load_all(self.db()):
            # a principal that restarts with a witness serves only once the partner or witness confirm its role
            s.serving = not (s.role == PRINCIPAL and s.witness_url)
            self.sessions[s.database_id] = s
            if s.guid:
                self.link(s.partner_url, "PARTNER")
                if s.witness_url:
                    self.link(s.witness_url, "WITNESS")
                if s.role == PRINCIPAL:
                    self._start_sender(s)
        self._ticker = threading.Thread(target=self._tick_loop, name="dbm-tick", daemon=True)
        self._ticker.start()

    # -- plumbing --------------------------------------------------------------------------------------
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = store.connect(self.instance.db_path)
            self._local.conn = conn
        return conn

    def link(self, url: str, role: str):
        key = (url.lower(), role)
        with self.lock:
            link = self._links.get(key)
            if link is None:
                link = self.transport.link(url, role)
                self._links[key] = link
            return link

    def my_url(self) -> Optional[str]:
        row = self.db().execute("SELECT port FROM t_endpoints WHERE type=4").fetchone()
        return f"TCP://{self.instance.host}:{row[0]}" if row else None

    def _msg(self, kind: str, **fields) -> dict:
        return {"kind": kind, "from": self.instance.name, "url": self._url(), **fields}

    def _url(self) -> Optional[str]:
        # the hot path (every log block) must not query the catalog; endpoint DDL is rare
        cached = getattr(self, "_url_cache", None)
        if cached is None or time.monotonic() - cached[0] > 1.0:
            cached = (time.monotonic(), self.my_url())
            self._url_cache = cached
        return cached[1]

    def _log(self, text: str) -> None:
        self.instance.errorlog.write("spid28s", text)

    def _wait_up(self, link, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if link.up:
                return True
            outcome = link.last_outcome
            if outcome is not None and not outcome.succeeded and time.monotonic() > deadline - timeout + 1.0:
                return False
            time.sleep(0.05)
        return link.up

    def close(self) -> None:
        self._running = False
        for s in list(self.sessions.values()):
            s.notify()
        with self.lock:
            links = list(self._links.values())
        for link in links:
            link.close()

    # -- DatabaseMirroring (engine/context.py) --------------------------------------------------------
    def guard(self, database_id: int, purpose: str) -> None:
        s = self.sessions.get(database_id)
        if s is None or not s.guid:
            return
        if s.role == MIRROR:
            raise SqlError(954, s.database_name)
        if not s.serving:
            raise SqlError(955, s.database_name)

    def prevents(self, database_id: int, action: str) -> None:
        s = self.sessions.get(database_id)
        if s is not None:
            raise SqlError(1468, s.database_name)

    def keeps_log(self, database_id: int) -> bool:
        return database_id in self.sessions

    def log_floor(self, database_id: int) -> Optional[int]:
        s = self.sessions.get(database_id)
        if s is None:
            return None
        return s.partner_end if s.role == PRINCIPAL else None

    def committed(self, database_id: int, end_lsn: int) -> None:
        s = self.sessions.get(database_id)
        if s is None or not s.guid or s.role != PRINCIPAL:
            return
        s.notify()
        if s.safety != S.SAFETY_FULL:
            return
        with s.changed:
            while (s.partner_end or 0) < end_lsn:
                if s.suspended or not s.connected or s.role != PRINCIPAL or not self._running:
                    return          # running exposed: the commit stands on the principal alone
                if not s.serving:
                    raise SqlError(955, s.database_name)
                s.changed.wait(0.25)

    # -- ALTER DATABASE … SET PARTNER / WITNESS ----------------------------------------------------------
    def alter_database_mirroring(self, ctx, stmt, events: list[Event]) -> None:
        ctx.require_sysadmin()
        row = ctx.query("SELECT database_id, name, state, recovery_model, family_guid FROM t_databases "
                        "WHERE name=?", (stmt.database,))
        dbid, name, dbstate, model, family = row[0]
        if dbid <= store.MSDB:
            raise SqlError(1468, name)
        option = stmt.option
        try:
            if option == "PARTNER":
                self._set_partner(dbid, name, dbstate, model, family, stmt.value)
            elif option == "WITNESS":
                self._set_witness(self._established(dbid, name), stmt.value)
            elif option == "WITNESS OFF":
                self._witness_off(self._established(dbid, name))
            elif option == "OFF":
                self._partner_off(dbid, name)
            elif option in ("SUSPEND", "RESUME"):
                self._suspend(self._established(dbid, name), option == "SUSPEND")
            elif option == "FAILOVER":
                self._failover(self._established(dbid, name))
            elif option == "FORCE_SERVICE_ALLOW_DATA_LOSS":
                self._force_service(self._established(dbid, name))
            elif option == "SAFETY":
                s = self._principal_only(dbid, name)
                s.safety = S.SAFETY_FULL if stmt.value == "FULL" else S.SAFETY_OFF
                s.safety_sequence += 1
                self._save(s)
            elif option == "TIMEOUT":
                s = self._principal_only(dbid, name)
                n = int(stmt.value)
                if n > 32767:
                    raise SqlError(1476, n)
                s.timeout = max(S.MIN_TIMEOUT, n)
                self._save(s)
            elif option == "REDO_QUEUE":
                s = self._principal_only(dbid, name)
                s.redo_queue = stmt.value
                self._save(s)
        except Refusal as r:
            raise SqlError(r.number, *r.args_) from None

    def _established(self, dbid: int, name: str) -> MirrorSession:
        s = self.sessions.get(dbid)
        if s is None or not s.guid:
            raise SqlError(1416, name)
        return s

    def _principal_only(self, dbid: int, name: str) -> MirrorSession:
        s = self._established(dbid, name)
        if s.role != PRINCIPAL:
            raise SqlError(1470, name)
        return s

    def _save(self, s: MirrorSession) -> None:
        S.save(self.db(), s)
        s.notify()

    def _check_url(self, url: str) -> None:
        try:
            host, port = parse_endpoint_url(url)
        except InvalidEndpointUrl:
            raise SqlError(1418, url) from None
        mine = self.my_url()
        if mine is None:
            raise SqlError(1418, url)
        me_host, me_port = parse_endpoint_url(mine)
        if port == me_port and loopback_address(host) == loopback_address(me_host):
            raise SqlError(1452)

    def _set_partner(self, dbid, name, dbstate, model, family, url: str) -> None:
        existing = self.sessions.get(dbid)
        if existing is not None and existing.guid:
            raise SqlError(1405, name)
        self._check_url(url)
        if dbstate == 1:
            # the mirror: remember the principal and wait for it to connect (spec §1.2 step 1)
            s = MirrorSession(dbid, name, "", MIRROR, url)
            with self.lock:
                self.sessions[dbid] = s
            S.save(self.db(), s)
            self.link(url, "PARTNER")
            return
        if dbstate != 0:
            raise SqlError(5011, name)
        if model != 1:
            raise SqlError(1465, name)
        link = self.link(url, "PARTNER")
        if not self._wait_up(link, CONNECT_TIMEOUT):
            raise SqlError(1418, url)
        conn = self.db()
        end = txlog.end_of_log(conn, dbid)
        first = txlog.first_lsn(conn, dbid)
        last_backup = conn.execute("SELECT last_log_backup_lsn FROM t_databases WHERE database_id=?",
                                   (dbid,)).fetchone()[0]
        guid = store.new_guid()
        reply = link.request(self._msg("dbm.partner", db=name, guid=guid, family_guid=family, end=end,
                                       first=first if first is not None else end + 1, last_log_backup=last_backup,
                                       safety=S.SAFETY_FULL, timeout=S.DEFAULT_TIMEOUT),
                             REQUEST_TIMEOUT + CONNECT_TIMEOUT)
        if reply is None:
            raise SqlError(1418, url)
        if reply.get("error"):
            number = int(reply["error"])
            raise SqlError(number, *(reply.get("args") or ([url] if number == 1418 else [name])))
        s = MirrorSession(dbid, name, guid, PRINCIPAL, url, reply.get("instance"))
        s.connected = True
        s.partner_end = int(reply["end"])
        with self.lock:
            self.sessions[dbid] = s
        S.save(self.db(), s)
        self._log(f"Database mirroring is active with database '{name}' as the principal copy. "
                  "This is an informational message only. No user action is required.")
        self._start_sender(s)

    def _on_partner(self, peer, msg: dict) -> dict:
        conn = self.db()
        row = conn.execute("SELECT database_id, state, recovery_model, family_guid, end_lsn, last_log_backup_lsn "
                           "FROM t_databases WHERE name=?", (msg["db"],)).fetchone()
        if row is None:
            return {"error": 1448, "args": [msg["db"]]}
        dbid, dbstate, model, family, end, last_log = row
        s = self.sessions.get(dbid)
        if s is not None and s.guid:
            return {"error": 1460, "args": [msg["db"]]}
        if dbstate != 1:
            return {"error": 1464, "args": [msg["db"]]}
        if model != 1:
            return {"error": 1465, "args": [msg["db"]]}
        if family != msg.get("family_guid"):
            return {"error": 1407, "args": [msg["db"]]}
        if s is None:
            return {"error": 1416, "args": [msg["db"]]}
        if not self._log_restored(conn, msg["db"]):
            return {"error": 1478, "args": [msg["db"]]}
        if end is None or end < int(msg["first"]) - 1 or end > int(msg["end"]):
            return {"error": 1412, "args": [msg["db"]]}
        back = self.link(s.partner_url, "PARTNER")
        if not self._wait_up(back, CONNECT_TIMEOUT):
            self._log(f"Database mirroring could not connect back to the principal at '{s.partner_url}' for "
                      f"database '{msg['db']}'.")
            return {"error": 1418}
        s.guid = msg["guid"]
        s.partner_instance = msg.get("from")
        s.safety = int(msg.get("safety", S.SAFETY_FULL))
        s.timeout = int(msg.get("timeout", S.DEFAULT_TIMEOUT))
        s.connected = True
        S.save(conn, s)
        self._log(f"Database mirroring is active with database '{msg['db']}' as the mirror copy. "
                  "This is an informational message only. No user action is required.")
        return {"ok": True, "end": end, "instance": self.instance.name}

    @staticmethod
    def _log_restored(conn: sqlite3.Connection, name: str) -> bool:
        """A log backup was restored after the latest full restore (spec §1.1: 1478 otherwise)."""
        row = conn.execute("SELECT MAX(restore_history_id) FROM t_restorehistory WHERE destination_database_name=? "
                           "AND restore_type='D'", (name,)).fetchone()
        if row is None or row[0] is None:
            return False
        return conn.execute("SELECT 1 FROM t_restorehistory WHERE destination_database_name=? AND restore_type='L' "
                            "AND restore_history_id>?", (name, row[0])).fetchone() is not None

    # -- the log stream -----------------------------------------------------------------------------------
    def _start_sender(self, s: MirrorSession) -> None:
        t = threading.Thread(target=self._send_loop, args=(s,), name=f"dbm-send-{s.database_name}", daemon=True)
        self._senders[s.database_id] = t
        t.start()

    def _send_loop(self, s: MirrorSession) -> None:
        conn = store.connect(self.instance.db_path)
        try:
            while self._running and self.sessions.get(s.database_id) is s and s.role == PRINCIPAL:
                end = txlog.end_of_log(conn, s.database_id)
                if s.suspended or (s.partner_end is not None and s.partner_end >= end):
                    if s.partner_end is not None and s.partner_end >= end and not s.caught_up:
                        s.caught_up = True
                        s.notify()
                    with s.changed:
                        if txlog.end_of_log(conn, s.database_id) == end:
                            s.changed.wait(TICK)
                    continue
                link = self.link(s.partner_url, "PARTNER")
                if not link.up:
                    time.sleep(0.05)
                    continue
                start = s.partner_end if s.partner_end is not None else -1
                block = txlog.read_encoded(conn, s.database_id, start, start + BATCH)[0] if start >= 0 else b"[]"
                reply = link.request(self._msg("dbm.log", guid=s.guid, db=s.database_name, from_lsn=start,
                                               records=block, principal_end=end), REQUEST_TIMEOUT)
                if reply is None:
                    continue
                if "end" in reply:
                    with s.changed:
                        s.partner_end = int(reply["end"])
                        s.caught_up = s.partner_end >= txlog.end_of_log(conn, s.database_id)
                        s.changed.notify_all()
                if reply.get("role") == PRINCIPAL:
                    self._absorb(s, reply)
        finally:
            conn.close()

    def _on_log(self, peer, msg: dict) -> dict:
        s = self._by_guid(msg.get("guid"))
        if s is None:
            return {"known": False}
        if s.role != MIRROR:
            return self._status_fields(s)
        conn = self.db()
        dbid = s.database_id
        s.partner_instance = msg.get("from") or s.partner_instance
        conn.execute("BEGIN IMMEDIATE")
        try:
            if s.failover_lsn is not None and txlog.end_of_log(conn, dbid) > s.failover_lsn:
                # a former principal whose tail the new principal never had (forced service): roll it back
                txlog.undo_after(conn, dbid, s.failover_lsn)
                s.tables.clear()
                s.failover_lsn = None
                S.save(conn, s)
            end = txlog.end_of_log(conn, dbid)
            if int(msg["from_lsn"]) != end:
                conn.execute("COMMIT")
                s.caught_up = False
                return {"end": end}
            block = msg["records"]
            records = txlog.decode(block if isinstance(block, bytes) else str(block).encode("utf-8"))
            if records:
                end = txlog.redo(conn, dbid, records, s.tables)
            conn.execute("COMMIT")
        except (txlog.LogFormatError, sqlite3.Error, KeyError, ValueError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._log(f"Database mirroring could not apply log for database '{s.database_name}': {exc}")
            return {"end": txlog.end_of_log(conn, dbid)}
        s.caught_up = end >= int(msg.get("principal_end", end))
        return {"end": end}

    def _by_guid(self, guid) -> Optional[MirrorSession]:
        if not guid:
            return None
        for s in list(self.sessions.values()):
            if s.guid == guid:
                return s
        return None

    # -- the periodic view exchange -----------------------------------------------------------------------
    def _status_fields(self, s: MirrorSession) -> dict:
        end = txlog.end_of_log(self.db(), s.database_id)
        return {"known": True, "guid": s.guid, "db": s.database_name, "role": s.role,
                "role_sequence": s.role_sequence, "end": end, "failover_lsn": s.failover_lsn,
                "suspended": s.suspended, "suspended_sequence": s.suspended_sequence, "safety": s.safety,
                "safety_sequence": s.safety_sequence, "timeout": s.timeout, "witness": s.witness_url,
                "synchronized": s.state == S.SYNCHRONIZED, "from": self.instance.name, "url": self.my_url()}

    def _on_status(self, peer, msg: dict) -> dict:
        s = self._by_guid(msg.get("guid"))
        if s is None:
            return {"known": False}
        # status arrives on the partner's own outbound connection: hearing it proves that direction
        s.heard_at = time.monotonic()
        self._absorb(s, msg)
        return self._status_fields(s)

    def _absorb(self, s: MirrorSession, msg: dict) -> None:
        """Fold the partner's view into ours: higher sequences win."""
        if msg.get("known") is False:
            return
        role, seq = int(msg.get("role", 0)), int(msg.get("role_sequence", 0))
        if msg.get("from"):
            s.partner_instance = msg["from"]
        if role == PRINCIPAL and s.role == PRINCIPAL and seq > s.role_sequence:
            self._demote(s, msg.get("failover_lsn"), seq, bool(msg.get("suspended")))
        elif role == MIRROR and s.role == PRINCIPAL and seq <= s.role_sequence:
            s.serving = True
        if role == PRINCIPAL and s.role == MIRROR and seq >= s.role_sequence:
            changed = False
            for attr, key in (("safety", "safety"), ("safety_sequence", "safety_sequence"), ("timeout", "timeout"),
                              ("witness_url", "witness")):
                if getattr(s, attr) != msg.get(key):
                    setattr(s, attr, msg.get(key))
                    changed = True
            if s.witness_url:
                self.link(s.witness_url, "WITNESS")
            if changed:
                S.save(self.db(), s)
            if msg.get("end") is not None and int(msg["end"]) == txlog.end_of_log(self.db(), s.database_id):
                s.caught_up = True
        if int(msg.get("suspended_sequence", 0)) > s.suspended_sequence:
            s.suspended = bool(msg.get("suspended"))
            s.suspended_sequence = int(msg["suspended_sequence"])
            S.save(self.db(), s)
        s.notify()

    def _tick_loop(self) -> None:
        while self._running:
            time.sleep(TICK)
            for s in list(self.sessions.values()):
                if not s.guid:
                    continue
                try:
                    self._tick(s)
                except Exception as exc:   # a tick must never stop the session machinery
                    self._log(f"Database mirroring monitor error for database '{s.database_name}': {exc!r}")

    def _heard(self, instance_name: Optional[str], timeout: int) -> bool:
        if not instance_name:
            return False
        heard = self.transport.last_heard(instance_name)
        return heard is not None and time.monotonic() - heard < timeout

    def _tick(self, s: MirrorSession) -> None:
        partner = self.link(s.partner_url, "PARTNER")
        s.partner_instance = partner.peer_name or s.partner_instance
        was = s.connected
        # a session needs both directions (spec §3.4): ours up, and the partner's heard within TIMEOUT
        s.connected = partner.up and time.monotonic() - s.heard_at < s.timeout
        if was and not s.connected:
            s.caught_up = s.caught_up if s.role == MIRROR else False
            self._log(f'The mirroring connection to "{s.partner_url}" has timed out for database '
                      f'"{s.database_name}" after {s.timeout} seconds without a response.  Check the service '
                      "and network connections.")
        witness = self.link(s.witness_url, "WITNESS") if s.witness_url else None
        s.witness_connected = bool(witness and self._heard(witness.peer_name, s.timeout))
        fields = self._status_fields(s)
        if partner.up:
            partner.send({"kind": "dbm.status", **fields})
        if witness is not None and witness.up:
            witness.send({"kind": "dbm.witness_status", **fields})
        if s.role == PRINCIPAL:
            if s.witness_url and not s.connected and not s.witness_connected:
                s.serving = False           # lost quorum: stop serving (spec §1.6)
            elif s.witness_url and (s.connected or s.witness_connected) and not s.serving:
                if s.connected or self._witness_confirms(s, witness):
                    s.serving = True
            elif not s.witness_url:
                s.serving = True
            s.notify()
        elif (not s.connected and s.witness_url and s.safety == S.SAFETY_FULL and s.caught_up
              and not s.suspended and time.monotonic() - s.started > s.timeout):
            reply = witness.request({"kind": "dbm.quorum", "guid": s.guid}, 2.0) if witness and witness.up else None
            if reply and reply.get("known") and not reply.get("principal_heard") \
                    and int(reply.get("role_sequence", 0)) <= s.role_sequence:
                self._promote(s, "Auto Failover")

    def _witness_confirms(self, s: MirrorSession, witness) -> bool:
        reply = witness.request({"kind": "dbm.quorum", "guid": s.guid}, 2.0) if witness and witness.up else None
        return bool(reply and reply.get("known") and int(reply.get("role_sequence", 0)) <= s.role_sequence)

    # -- role changes ---------------------------------------------------------------------------------------
    def _promote(self, s: MirrorSession, reason: str, forced: bool = False) -> None:
        s.tables.clear()
        conn = self.db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            last = txlog.last_commit(conn, s.database_id)
            end = txlog.end_of_log(conn, s.database_id)
            if last is not None and end > last:
                txlog.undo_after(conn, s.database_id, last)     # transactions the principal never committed
            conn.execute("UPDATE t_databases SET state=0 WHERE database_id=?", (s.database_id,))
            if forced:
                conn.execute("UPDATE t_databases SET recovery_fork_guid=? WHERE database_id=?",
                             (store.new_guid(), s.database_id))
                s.suspended = True
                s.suspended_sequence += 1
            s.role = PRINCIPAL
            s.role_sequence += 1
            s.failover_lsn = txlog.end_of_log(conn, s.database_id)
            s.partner_end = None
            s.caught_up = False
            s.serving = True
            S.save(conn, s)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.instance.schema_changed()
        self._log(f'The mirrored database "{s.database_name}" is changing roles from "MIRROR" to "PRINCIPAL" '
                  f"due to {reason}.")
        self._start_sender(s)

    def _demote(self, s: MirrorSession, failover_lsn, role_sequence: int, suspended: bool) -> None:
        s.tables.clear()
        conn = self.db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if failover_lsn is not None and not suspended and txlog.end_of_log(conn, s.database_id) > failover_lsn:
                txlog.undo_after(conn, s.database_id, int(failover_lsn))
                s.failover_lsn = None
            else:
                s.failover_lsn = int(failover_lsn) if failover_lsn is not None else None
            conn.execute("UPDATE t_databases SET state=1 WHERE database_id=?", (s.database_id,))
            s.role = MIRROR
            s.role_sequence = role_sequence
            s.partner_end = None
            s.caught_up = False
            s.serving = True
            S.save(conn, s)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.instance.schema_changed()
        self._log(f'The mirrored database "{s.database_name}" is changing roles from "PRINCIPAL" to "MIRROR" '
                  "due to Failover from partner.")
        s.notify()

    def _failover(self, s: MirrorSession) -> None:
        if s.role != PRINCIPAL:
            raise SqlError(1470, s.database_name)
        if s.safety != S.SAFETY_FULL:
            raise SqlError(1477, s.database_name)
        if not s.connected:
            raise SqlError(1447, s.database_name)
        if s.state != S.SYNCHRONIZED:
            raise SqlError(1422, s.database_name)
        s.serving = False                  # no new work while the roles switch
        deadline = time.monotonic() + s.timeout
        end = txlog.end_of_log(self.db(), s.database_id)
        with s.changed:
            while (s.partner_end or 0) < end and time.monotonic() < deadline:
                s.changed.wait(0.1)
        reply = self.link(s.partner_url, "PARTNER").request(self._msg("dbm.failover", guid=s.guid, end=end),
                                                            REQUEST_TIMEOUT)
        if not reply or not reply.get("ok"):
            s.serving = True
            raise SqlError(1422 if reply else 1447, s.database_name)
        self._demote(s, reply.get("failover_lsn"), int(reply["role_sequence"]), False)

    def _on_failover(self, peer, msg: dict) -> dict:
        s = self._by_guid(msg.get("guid"))
        if s is None or s.role != MIRROR:
            return {"ok": False}
        if txlog.end_of_log(self.db(), s.database_id) < int(msg["end"]):
            return {"ok": False}
        self._promote(s, "Failover")
        return {"ok": True, "failover_lsn": s.failover_lsn, "role_sequence": s.role_sequence}

    def _force_service(self, s: MirrorSession) -> None:
        if s.role != MIRROR or s.connected:
            raise SqlError(1455, s.database_name)
        if s.witness_url and not s.witness_connected:
            raise SqlError(1431, s.database_name)
        self._promote(s, "Forced Service", forced=True)

    def _suspend(self, s: MirrorSession, suspend: bool) -> None:
        s.suspended = suspend
        s.suspended_sequence += 1
        if not suspend:
            s.caught_up = False
        self._save(s)

    def _partner_off(self, dbid: int, name: str) -> None:
        s = self.sessions.get(dbid)
        if s is None:
            raise SqlError(1416, name)
        self._remove(s)
        if s.guid:
            self.link(s.partner_url, "PARTNER").send(self._msg("dbm.off", guid=s.guid))
            if s.witness_url:
                self.link(s.witness_url, "WITNESS").send(self._msg("dbm.witness_off", guid=s.guid))

    def _remove(self, s: MirrorSession) -> None:
        with self.lock:
            self.sessions.pop(s.database_id, None)
        S.delete(self.db(), s.database_id)
        s.notify()
        self._log(f"Database mirroring has been terminated for database '{s.database_name}'. This is an "
                  "informational message only. No user action is required.")

    def _on_off(self, peer, msg: dict) -> dict:
        s = self._by_guid(msg.get("guid"))
        if s is not None:
            self._remove(s)
        return {"ok": True}

    # -- the witness, from the partners' side -----------------------------------------------------------------
    def _set_witness(self, s: MirrorSession, url: str) -> None:
        if s.role != PRINCIPAL:
            raise SqlError(1470, s.database_name)
        self._check_url(url)
        if url.lower().rstrip("/") == s.partner_url.lower().rstrip("/"):
            raise SqlError(1429)
        if not s.connected or s.state != S.SYNCHRONIZED:
            raise SqlError(1426)
        wl = self.link(url, "WITNESS")
        if not self._wait_up(wl, CONNECT_TIMEOUT):
            outcome = wl.last_outcome
            if outcome is not None and outcome.number == 28027 and "role" in (outcome.message or ""):
                # the endpoint's ROLE does not include WITNESS
                raise SqlError(1427, url)
            raise SqlError(1456, url)
        family = self.db().execute("SELECT family_guid FROM t_databases WHERE database_id=?",
                                   (s.database_id,)).fetchone()[0]
        reply = wl.request(self._msg("dbm.witness_join", guid=s.guid, db=s.database_name,
                                     principal_url=self.my_url(), mirror_url=s.partner_url,
                                     mirror_instance=s.partner_instance, safety=s.safety,
                                     role_sequence=s.role_sequence, family_guid=family, timeout=s.timeout),
                           REQUEST_TIMEOUT)
        if not reply or not reply.get("ok"):
            raise SqlError(1456, url)
        answer = self.link(s.partner_url, "PARTNER").request(
            self._msg("dbm.set_witness", guid=s.guid, witness=url), REQUEST_TIMEOUT + CONNECT_TIMEOUT)
        if not answer or not answer.get("ok"):
            wl.send(self._msg("dbm.witness_off", guid=s.guid))
            raise SqlError(1426)
        s.witness_url = url
        s.witness_connected = True
        self._save(s)

    def _on_set_witness(self, peer, msg: dict) -> dict:
        s = self._by_guid(msg.get("guid"))
        if s is None or s.role != MIRROR:
            return {"ok": False}
        wl = self.link(msg["witness"], "WITNESS")
        if not self._wait_up(wl, CONNECT_TIMEOUT):
            return {"ok": False}
        s.witness_url = msg["witness"]
        S.save(self.db(), s)
        return {"ok": True}

    def _witness_off(self, s: MirrorSession) -> None:
        if s.role != PRINCIPAL:
            raise SqlError(1470, s.database_name)
        if not s.witness_url:
            raise SqlError(1439, s.database_name)
        self.link(s.witness_url, "WITNESS").send(self._msg("dbm.witness_off", guid=s.guid))
        s.witness_url = None
        s.witness_connected = False
        s.serving = True
        self._save(s)

    def _on_witness_off(self, peer, msg: dict) -> dict:
        s = self._by_guid(msg.get("guid"))
        if s is not None and s.role == MIRROR:
            s.witness_url = None
            S.save(self.db(), s)
        return self.witness.on_off(peer, msg)

    # -- catalog views ----------------------------------------------------------------------------------------
    def fill_live_tables(self, conn: sqlite3.Connection, names, session) -> None:
        if "database_mirroring" in names:
            conn.execute("DELETE FROM live_database_mirroring")
            sysadmin = session.is_sysadmin()
            rows = []
            for (dbid,) in conn.execute("SELECT database_id FROM t_databases").fetchall():
                s = self.sessions.get(dbid)
                if s is None or not s.guid or (s.role == MIRROR and not sysadmin):
                    rows.append((dbid,) + (None,) * 20)
                    continue
                end = txlog.end_of_log(conn, dbid)
                hardened = (s.partner_end if s.partner_end is not None else None) if s.role == PRINCIPAL else end
                rows.append((dbid, s.guid, s.state, S.STATE_DESC[s.state], s.role, S.ROLE_DESC[s.role],
                             s.role_sequence, s.safety, S.SAFETY_DESC[s.safety], s.safety_sequence,
                             s.partner_url, s.partner_instance, s.witness_url, s.witness_state,
                             S.WITNESS_DESC.get(s.witness_state) if s.witness_state is not None else None,
                             hardened, s.timeout, s.redo_queue, "MB" if s.redo_queue else "UNLIMITED", end,
                             hardened if s.role == PRINCIPAL else end))
            conn.executemany(f"INSERT INTO live_database_mirroring VALUES ({', '.join('?' * 21)})", rows)
        if "database_mirroring_witnesses" in names:
            conn.execute("DELETE FROM live_database_mirroring_witnesses")
            conn.executemany(f"INSERT INTO live_database_mirroring_witnesses VALUES ({', '.join('?' * 13)})",
                             self.witness.rows())
