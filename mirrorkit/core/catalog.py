"""The one catalog reader: what certificate trust depends on, read with documented views only.

`read_state(conn)` runs every query once and returns an `InstanceState`: typed objects for plan
and verify (master key, certificates in master, the DATABASE_MIRRORING endpoint, logins, users,
role memberships, permissions, live mirroring connections and sessions, recent handshake lines
of the error log), and the raw rows for the notebooks' DataFrames and JSON records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional

QUERIES = {
    "server": """SELECT @@SERVERNAME AS server_name, CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version,
       CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition, SUSER_NAME() AS login_name, DB_NAME() AS database_name""",
    "clock": "SELECT GETUTCDATE() AS utc_now",
    "master_key": """SELECT k.name, k.symmetric_key_id, k.algorithm_desc, k.create_date, k.modify_date,
       d.is_master_key_encrypted_by_server
FROM master.sys.symmetric_keys AS k
CROSS JOIN (SELECT is_master_key_encrypted_by_server FROM master.sys.databases WHERE name = N'master') AS d
WHERE k.name = N'##MS_DatabaseMasterKey##'""",
    "certificates": """SELECT c.name, c.certificate_id, dp.name AS owner_name, c.principal_id, dp.sid AS owner_sid,
       c.pvt_key_encryption_type, c.pvt_key_encryption_type_desc, c.subject, c.issuer_name, c.cert_serial_number,
       c.start_date, c.expiry_date, c.thumbprint, c.key_length, c.pvt_key_last_backup_date
FROM master.sys.certificates AS c
LEFT JOIN master.sys.database_principals AS dp ON dp.principal_id = c.principal_id
WHERE c.name NOT LIKE N'##%'
ORDER BY c.name""",
    "endpoints": """SELECT e.name, e.endpoint_id, SUSER_NAME(e.principal_id) AS owner_name, e.principal_id, e.state_desc,
       e.role_desc, e.connection_auth_desc, e.certificate_id, e.is_encryption_enabled, e.encryption_algorithm_desc,
       t.port, t.ip_address
FROM master.sys.database_mirroring_endpoints AS e
JOIN master.sys.tcp_endpoints AS t ON t.endpoint_id = e.endpoint_id""",
    "server_principals": """SELECT p.name, p.principal_id, p.type, p.type_desc, p.is_disabled, p.sid, p.create_date
FROM master.sys.server_principals AS p
WHERE p.name NOT LIKE N'##%'
ORDER BY p.name""",
    "database_principals": """SELECT dp.name, dp.principal_id, dp.type_desc, dp.authentication_type_desc, dp.sid,
       sp.name AS login_name
FROM master.sys.database_principals AS dp
LEFT JOIN master.sys.server_principals AS sp ON sp.sid = dp.sid
WHERE dp.principal_id >= 5 AND dp.principal_id < 16384
ORDER BY dp.name""",
    "server_permissions": """SELECT e.name AS endpoint_name, p.permission_name, p.state_desc,
       SUSER_NAME(p.grantee_principal_id) AS grantee, SUSER_NAME(p.grantor_principal_id) AS grantor
FROM master.sys.server_permissions AS p
JOIN master.sys.database_mirroring_endpoints AS e ON p.class = 105 AND p.major_id = e.endpoint_id
ORDER BY p.permission_name, grantee""",
    # what decides CONNECT: endpoint grants and CONTROL SERVER, by grantee id (roles and public included)
    "permissions": """SELECT class, major_id, grantee_principal_id, type, permission_name, state_desc
FROM master.sys.server_permissions WHERE class IN (100, 105)""",
    "role_members": """SELECT r.name AS role_name, rm.member_principal_id AS member_id
FROM master.sys.server_role_members AS rm
JOIN master.sys.server_principals AS r ON r.principal_id = rm.role_principal_id""",
    "connections": """SELECT is_accept, principal_name, peer_certificate_id, state_desc, login_state,
       encryption_algorithm_desc, connect_time FROM sys.dm_db_mirroring_connections""",
    "database_mirroring": """SELECT DB_NAME(database_id) AS database_name, mirroring_state_desc, mirroring_role_desc,
       mirroring_partner_name, mirroring_witness_name, mirroring_witness_state_desc
FROM sys.database_mirroring WHERE mirroring_guid IS NOT NULL""",
}
#: the tables a notebook's before/after snapshot shows (the rest is evidence verify shows itself)
SNAPSHOT = ("master_key", "certificates", "endpoints", "server_principals", "database_principals",
            "server_permissions")
#: without these the trust cannot be judged; the others may be missing on older versions or restricted logins
ESSENTIAL = ("server", "clock", "master_key", "certificates", "endpoints", "server_principals", "database_principals",
             "server_permissions", "permissions")


def query(conn, sql: str, *args) -> tuple[list[str], list[tuple]]:
    cur = conn.cursor()
    try:
        cur.execute(sql, *args)
        columns = [d[0] for d in cur.description]
        rows = [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()
    return columns, rows


def jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex().upper()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value


@dataclass(frozen=True)
class Certificate:
    name: str
    certificate_id: int
    principal_id: Optional[int]
    owner: Optional[str]
    owner_sid: Optional[bytes]
    private_key: str          # NA | MK | PW | SK (codes.PRIVATE_KEY)
    subject: str
    issuer: str
    serial: str
    thumbprint: bytes
    start: datetime
    expiry: datetime
    last_backup: Optional[datetime]

    @property
    def thumbprint_hex(self) -> str:
        return self.thumbprint.hex().upper()

    def valid_at(self, when: datetime) -> bool:
        return self.start <= when <= self.expiry


@dataclass(frozen=True)
class Endpoint:
    name: str
    endpoint_id: int
    owner: Optional[str]
    principal_id: int
    state: str
    role: str
    authentication: str
    certificate_id: int
    encryption_enabled: bool
    algorithm: str            # encryption_algorithm_desc, e.g. "AES", "NONE, AES" (codes.ENCRYPTION)
    port: int
    ip_address: Optional[str]

    @property
    def uses_certificate(self) -> bool:
        return "CERTIFICATE" in (self.authentication or "")


@dataclass(frozen=True)
class Login:
    name: str
    principal_id: int
    type: str
    disabled: bool
    sid: bytes


@dataclass(frozen=True)
class User:
    name: str
    principal_id: int
    sid: Optional[bytes]
    login: Optional[str]


@dataclass(frozen=True)
class Permission:
    class_: int               # 100 server, 105 endpoint
    major_id: int
    grantee_id: int
    type: str                 # CO (CONNECT), CL (CONTROL [SERVER]), ...
    name: str
    state: str                # GRANT | GRANT_WITH_GRANT_OPTION | DENY


@dataclass
class InstanceState:
    tables: dict[str, tuple[list[str], list[tuple]]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)     # query → why it could not be read
    server_name: str = ""
    utc_now: Optional[datetime] = None
    master_key: bool = False
    master_key_by_service_key: bool = False
    certificates: dict[str, Certificate] = field(default_factory=dict)       # lower-case name
    endpoint: Optional[Endpoint] = None
    logins: dict[str, Login] = field(default_factory=dict)                  # lower-case name
    users: dict[str, User] = field(default_factory=dict)                    # lower-case name
    grants: list[Permission] = field(default_factory=list)
    roles: dict[int, set[str]] = field(default_factory=dict)                # member id → server roles
    errorlog: list[tuple] = field(default_factory=list)                     # (LogDate, ProcessInfo, Text)

    # -- lookups ---------------------------------------------------------------------------------
    def certificate(self, name: str) -> Optional[Certificate]:
        return self.certificates.get(name.lower())

    def certificate_by_thumbprint(self, thumbprint: bytes) -> Optional[Certificate]:
        return next((c for c in self.certificates.values() if c.thumbprint == thumbprint), None)

    def certificate_by_id(self, certificate_id: Optional[int]) -> Optional[Certificate]:
        if not certificate_id:
            return None
        return next((c for c in self.certificates.values() if c.certificate_id == certificate_id), None)

    @property
    def endpoint_certificate(self) -> Optional[Certificate]:
        return self.certificate_by_id(self.endpoint.certificate_id) if self.endpoint else None

    def login(self, name: str) -> Optional[Login]:
        return self.logins.get(name.lower())

    def login_by_sid(self, sid: Optional[bytes]) -> Optional[Login]:
        if sid is None:
            return None
        return next((lg for lg in self.logins.values() if lg.sid == sid), None)

    def user(self, name: str) -> Optional[User]:
        return self.users.get(name.lower())

    def rows(self, key: str) -> list[dict]:
        cols, rows = self.tables.get(key, ([], []))
        return [dict(zip(cols, r)) for r in rows]

    # -- permissions -----------------------------------------------------------------------------
    def endpoint_grants(self, login: str) -> set[str]:
        """The states of CONNECT on the endpoint granted or denied to the login itself."""
        lg, ep = self.login(login), self.endpoint
        if lg is None or ep is None:
            return set()
        return {p.state for p in self.grants
                if p.class_ == 105 and p.major_id == ep.endpoint_id and p.grantee_id == lg.principal_id
                and p.type == "CO"}

    def may_connect(self, login: Login) -> tuple[bool, str]:
        """CONNECT on the endpoint: sysadmin, the endpoint owner, or a GRANT (CONNECT, CONTROL, CONTROL
        SERVER) to the login, public or one of its server roles, with no DENY. → (allowed, why)."""
        ep = self.endpoint
        roles = self.roles.get(login.principal_id, set())
        if "sysadmin" in roles:
            return True, "sysadmin"
        if ep is not None and ep.principal_id == login.principal_id:
            return True, "endpoint owner"
        by_name = {lg.name: lg.principal_id for lg in self.logins.values()}
        ids = {login.principal_id, by_name.get("public", 2)} | {by_name[r] for r in roles if r in by_name}
        states = set()
        for p in self.grants:
            if p.grantee_id not in ids:
                continue
            if ep is not None and p.class_ == 105 and p.major_id == ep.endpoint_id and p.type in ("CO", "CL"):
                states.add(p.state)
            elif p.class_ == 100 and p.type == "CL":
                states.add(p.state)
        if "DENY" in states:
            return False, "DENY"
        if states & {"GRANT", "GRANT_WITH_GRANT_OPTION"}:
            return True, "granted"
        return False, "no grant"

    def records(self, keys: tuple[str, ...] = SNAPSHOT) -> dict[str, list[dict]]:
        """JSON-safe rows per catalog query, for the notebooks' records."""
        return {k: [{c: jsonable(v) for c, v in zip(self.tables[k][0], row)} for row in self.tables[k][1]]
                for k in ("server",) + tuple(keys) if k in self.tables}


def _bytes(value: Any) -> Optional[bytes]:
    return bytes(value) if value is not None else None


def read_state(conn, *, errorlog_hours: Optional[int] = None) -> InstanceState:
    """Read one instance. With errorlog_hours, also the handshake lines of the current error log."""
    state = InstanceState()
    for key, sql in QUERIES.items():
        try:
            state.tables[key] = query(conn, sql)
        except Exception as exc:   # a view this server or login does not offer: judged without it
            if key in ESSENTIAL:
                raise
            state.tables[key] = ([], [])
            state.unavailable[key] = str(exc)
    server = state.rows("server")
    state.server_name = server[0]["server_name"] if server else ""
    clock = state.rows("clock")
    state.utc_now = clock[0]["utc_now"] if clock else None
    mk = state.rows("master_key")
    state.master_key = bool(mk)
    state.master_key_by_service_key = bool(mk and mk[0]["is_master_key_encrypted_by_server"])
    for r in state.rows("certificates"):
        state.certificates[r["name"].lower()] = Certificate(
            r["name"], r["certificate_id"], r["principal_id"], r["owner_name"], _bytes(r["owner_sid"]),
            r["pvt_key_encryption_type"], r["subject"], r["issuer_name"], r["cert_serial_number"],
            bytes(r["thumbprint"]), r["start_date"], r["expiry_date"], r["pvt_key_last_backup_date"])
    eps = state.rows("endpoints")
    if eps:
        r = eps[0]
        state.endpoint = Endpoint(r["name"], r["endpoint_id"], r["owner_name"], r["principal_id"], r["state_desc"],
                                  r["role_desc"], r["connection_auth_desc"], r["certificate_id"],
                                  bool(r["is_encryption_enabled"]), r["encryption_algorithm_desc"], r["port"],
                                  r["ip_address"])
    for r in state.rows("server_principals"):
        state.logins[r["name"].lower()] = Login(r["name"], r["principal_id"], r["type_desc"], bool(r["is_disabled"]),
                                                bytes(r["sid"]) if r["sid"] is not None else b"")
    for r in state.rows("database_principals"):
        state.users[r["name"].lower()] = User(r["name"], r["principal_id"], _bytes(r["sid"]), r["login_name"])
    for r in state.rows("permissions"):
        state.grants.append(Permission(r["class"], r["major_id"], r["grantee_principal_id"], (r["type"] or "").strip(),
                                       r["permission_name"], r["state_desc"]))
    for r in state.rows("role_members"):
        state.roles.setdefault(r["member_id"], set()).add(r["role_name"])
    if errorlog_hours is not None:
        state.errorlog = read_errorlog(conn, (state.utc_now or datetime.utcnow()) - timedelta(hours=errorlog_hours))
    return state


def read_errorlog(conn, since: datetime) -> list[tuple]:
    """Handshake lines of the current error log since `since`, newest first ([] where it cannot be read)."""
    try:
        _, rows = query(conn, "EXEC master.sys.xp_readerrorlog 0, 1, N'handshake', NULL, ?, NULL, N'desc'", since)
        return rows
    except Exception:   # needs securityadmin or sysadmin; verify reports without it
        return []


def certencoded(conn, certificate_name: str) -> Optional[bytes]:
    """The public certificate (DER) of a certificate in master, via CERTENCODED."""
    _, rows = query(conn, "SELECT CERTENCODED(CERT_ID(?))", certificate_name)
    return bytes(rows[0][0]) if rows and rows[0][0] is not None else None
