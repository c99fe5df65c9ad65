"""One lab instance: its durable store, server file system, error log, sessions,
and the hooks the mirroring transport listens on. Implements EngineInstance (api.py)."""
from __future__ import annotations

import itertools
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from .. import __version__
from ..fs import ServerFileSystem
from . import store
from .api import LoginFailed
from .context import DatabaseMirroring, EndpointListeners
from .errorlog import LOG_PATH, ErrorLog
from .passwords import hash_password, verify_password
from .permissions import login_has_permission
from .results import Message
from .session import Session

PRODUCT_VERSION = "15.0.2000.5"


class LabInstance:
    def __init__(self, name: str, home: Path, host: str, port: int):
        self.name = name
        self.home = Path(home)
        self.host = host
        self.port = port
        self.db_path = self.home / "instance.db"
        # UNC paths reach a share common to the lab's instances (<state>/unc), like a file server
        self.fs = ServerFileSystem(self.home / "fs", shared_unc=self.home.parent.parent / "unc")
        self.errorlog = ErrorLog(self.fs.resolve(LOG_PATH))
        self.sessions: dict[int, Session] = {}
        self.lock = threading.Lock()
        self._spids = itertools.count(51)
        self.transport: Optional[EndpointListeners] = None
        self.mirroring: Optional[DatabaseMirroring] = None
        self.started = datetime.now()
        self.version_string = (
            f"Microsoft SQL Server 2019 (RTM) - {PRODUCT_VERSION} (X64) \n\tSep 24 2019 13:48:23 \n\t"
            "Copyright (C) 2019 Microsoft Corporation\n\tDeveloper Edition (64-bit) on Windows Server 2019 "
            f"Datacenter 10.0 <X64> (Build 17763: ) (Hypervisor)\n\t(mirrorkit lab {__version__})")
        store.initialise(self.db_path)
        self._databases: Optional[tuple[tuple[str, int], ...]] = None
        self.schema_epoch = 0           # bumped by table/database DDL: compiled plans are keyed by it

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, sa_password: str) -> None:
        conn = store.connect(self.db_path)
        try:
            row = conn.execute("SELECT password_hash FROM t_server_principals WHERE principal_id=?",
                               (store.SA_ID,)).fetchone()
            if not verify_password(sa_password, row[0]):
                conn.execute("UPDATE t_server_principals SET password_hash=? WHERE principal_id=?",
                             (hash_password(sa_password), store.SA_ID))
        finally:
            conn.close()
        log = self.errorlog.write
        log("Server", self.version_string.replace("\n\t", " ").replace("\n", " "))
        log("Server", f"Server process ID is {os.getpid()}.")
        log("Server", "The service account is 'mirrorkit-lab'. This is an informational message only.")
        log("Server", f"Server name is '{self.name}'. This is an informational message only.")
        log("Server", f"Server is listening on [ {self.host} <ipv4> {self.port}].")
        log("spid8s", "SQL Server is now ready for client connections. This is an informational message; "
                      "no user action is required.")

    def attach_transport(self, transport: EndpointListeners) -> None:
        self.transport = transport
        transport.reconcile()

    def stop(self) -> None:
        for session in list(self.sessions.values()):
            session.cancel()
        if self.mirroring is not None and hasattr(self.mirroring, "close"):
            self.mirroring.close()
        if self.transport is not None:
            self.transport.close()
        self.errorlog.write("spid8s", "SQL Server shutdown has been initiated")

    # -- EngineInstance ---------------------------------------------------------------------------
    def login(self, user: str, password: str, database: str, *, app: str = "", host: str = "",
              library: str = "", client_address: str = "", tds_version: int = 0x74000004) -> Session:
        conn = store.connect(self.db_path)
        try:
            row = conn.execute("SELECT principal_id, name, type, is_disabled, password_hash, "
                               "default_database_name FROM t_server_principals WHERE name=?", (user,)).fetchone()
            reason = None
            if row is None or row[2] != "S":
                reason, state = "Could not find a login matching the name provided.", 5
            elif not verify_password(password, row[4]):
                reason, state = "Password did not match that for the login provided.", 8
            elif row[3]:
                reason, state = "The account is disabled.", 7
            elif not login_has_permission(conn, row[0], None, "SERVER", "CONNECT SQL"):
                reason, state = "Login-based server access validation failed with an infrastructure " \
                                "error. Check for previous errors.", 12
            if reason:
                self.errorlog.write("Logon", f"Error: 18456, Severity: 14, State: {state}.")
                self.errorlog.write("Logon", f"Login failed for user '{user}'. Reason: {reason} "
                                             f"[CLIENT: {client_address or 'unknown'}]")
                if state == 7:   # a disabled login is told so (18470); other reasons stay hidden (18456)
                    raise LoginFailed(Message(18470, 14, 1, f"Login failed for user '{user}'. Reason: The "
                                                            "account is disabled."))
                raise LoginFailed(Message(18456, 14, 1, f"Login failed for user '{user}'."))
            dbname = database or row[5] or "master"
            db = conn.execute("SELECT database_id, name FROM t_databases WHERE name=?", (dbname,)).fetchone()
            if db is None:
                raise LoginFailed(Message(4060, 11, 1,
                                          f'Cannot open database "{dbname}" requested by the login. '
                                          "The login failed."))
        finally:
            conn.close()
        with self.lock:
            spid = next(self._spids)
        session = Session(self, row[0], row[1], db[0], spid, {
            "app": app, "host": host, "library": library, "client_address": client_address,
            "login_time": store.utcnow(), "tds_version": tds_version})
        with self.lock:
            self.sessions[spid] = session
        return session

    # -- hooks used by sessions -----------------------------------------------------------------------
    def session_closed(self, session: Session) -> None:
        with self.lock:
            self.sessions.pop(session.spid, None)

    def login_in_use(self, principal_id: int) -> bool:
        with self.lock:
            return any(s.login_id == principal_id for s in self.sessions.values())

    def after_commit(self, session: Session) -> None:
        if self.transport is not None and session.endpoint_dirty:
            session.endpoint_dirty = False
            self.transport.reconcile()

    def endpoint_changing(self, conn) -> None:
        if self.transport is not None:
            self.transport.prepare(conn)
        for s in list(self.sessions.values()):
            if s.conn is conn:
                s.endpoint_dirty = True

    def schema_changed(self) -> None:
        with self.lock:
            self.schema_epoch += 1
            self._databases = None

    def database_in_use(self, database_id: int, besides=None) -> bool:
        with self.lock:
            return any(s.database_id == database_id for s in self.sessions.values() if s is not besides)

    def database_names(self) -> tuple[tuple[str, int], ...]:
        if self._databases is None:
            conn = store.connect(self.db_path)
            try:
                self._databases = tuple((n.lower(), i) for i, n in
                                        conn.execute("SELECT database_id, name FROM t_databases"))
            finally:
                conn.close()
        return self._databases

    def fill_live_tables(self, session: Session, names: frozenset[str]) -> None:
        conn = session.conn
        with self.lock:
            sessions = list(self.sessions.values())
        if "dm_exec_sessions" in names:
            conn.execute("DELETE FROM live_dm_exec_sessions")
            conn.executemany(
                "INSERT INTO live_dm_exec_sessions VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, 1, NULL, NULL, NULL, 2, ?)",
                [(s.spid, store.fmt_datetime(s.client["login_time"]), s.client["host"], s.client["app"],
                  s.client["library"] or "ODBC", s.login_name, "running" if s is session else "sleeping",
                  s.login_name, s.database_id, s.tran_depth) for s in sessions])
        if "dm_exec_connections" in names:
            conn.execute("DELETE FROM live_dm_exec_connections")
            conn.executemany(
                "INSERT INTO live_dm_exec_connections VALUES (?, ?, 'TCP', 'TSQL', ?, 'SQL', ?, ?, ?, ?, NULL)",
                [(s.spid, store.fmt_datetime(s.client["login_time"]),
                  "TRUE" if s.client.get("encrypted") else "FALSE",
                  (s.client["client_address"] or "").rsplit(":", 1)[0] or None,
                  s.client.get("client_port"), self.host, self.port) for s in sessions])
        if self.transport is not None and hasattr(self.transport, "fill_live_tables"):
            self.transport.fill_live_tables(conn, names)
        if self.mirroring is not None and hasattr(self.mirroring, "fill_live_tables"):
            self.mirroring.fill_live_tables(conn, names, session)
        elif "database_mirroring" in names:
            # without a mirroring layer no database is mirrored: every column but database_id is NULL
            conn.execute("DELETE FROM live_database_mirroring")
            conn.execute("INSERT INTO live_database_mirroring (database_id) SELECT database_id FROM t_databases")

    def server_property(self, name: str) -> Any:
        return {
            "servername": self.name, "machinename": self.name.split("\\")[0], "instancename": None,
            "productversion": PRODUCT_VERSION, "productlevel": "RTM", "productmajorversion": "15",
            "productminorversion": "0", "productbuild": "2000", "edition": "Developer Edition (64-bit)",
            "engineedition": 3, "editionid": -2117995310, "ishadrenabled": 1, "hadrmanagerstatus": 1,
            "isclustered": 0, "isintegratedsecurityonly": 0, "collation": "SQL_Latin1_General_CP1_CI_AS",
            "isfulltextinstalled": 0, "issingleuser": 0, "processid": os.getpid(),
            "buildclrversion": "v4.0.30319", "lcid": 1033, "sqlcharset": 1, "sqlsortorder": 52,
        }.get(name.lower())
