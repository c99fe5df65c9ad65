"""Read the catalog state that certificate trust depends on, with documented views only.

One `InstanceState` per connection: the master key, certificates in master, the
DATABASE_MIRRORING endpoint, logins, users and endpoint permissions. Each part is
also kept as rows for the notebooks' DataFrames and JSON records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

QUERIES = {
    "server": """SELECT @@SERVERNAME AS server_name, CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version,
       CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition, SUSER_NAME() AS login_name, DB_NAME() AS database_name""",
    "master_key": """SELECT k.name, k.symmetric_key_id, k.algorithm_desc, k.create_date, k.modify_date,
       d.is_master_key_encrypted_by_server
FROM master.sys.symmetric_keys AS k
CROSS JOIN (SELECT is_master_key_encrypted_by_server FROM master.sys.databases WHERE name = N'master') AS d
WHERE k.name = N'##MS_DatabaseMasterKey##'""",
    "certificates": """SELECT c.name, c.certificate_id, dp.name AS owner_name, c.principal_id, c.pvt_key_encryption_type,
       c.pvt_key_encryption_type_desc, c.subject, c.issuer_name, c.cert_serial_number, c.start_date, c.expiry_date,
       c.thumbprint, c.key_length, c.pvt_key_last_backup_date
FROM master.sys.certificates AS c
LEFT JOIN master.sys.database_principals AS dp ON dp.principal_id = c.principal_id
WHERE c.name NOT LIKE N'##%'
ORDER BY c.name""",
    "endpoints": """SELECT e.name, e.endpoint_id, SUSER_NAME(e.principal_id) AS owner_name, e.state_desc, e.role_desc,
       e.connection_auth_desc, e.certificate_id, e.is_encryption_enabled, e.encryption_algorithm_desc,
       t.port, t.ip_address
FROM master.sys.database_mirroring_endpoints AS e
JOIN master.sys.tcp_endpoints AS t ON t.endpoint_id = e.endpoint_id""",
    "server_principals": """SELECT p.name, p.principal_id, p.type_desc, p.is_disabled, p.sid, p.create_date
FROM master.sys.server_principals AS p
WHERE p.type IN ('S', 'U', 'C') AND p.name NOT LIKE N'##%'
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
}


def query(conn, sql: str) -> tuple[list[str], list[tuple]]:
    cur = conn.cursor()
    cur.execute(sql)
    columns = [d[0] for d in cur.description]
    rows = [tuple(r) for r in cur.fetchall()]
    cur.close()
    return columns, rows


def jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex().upper()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bool):
        return value
    return value


@dataclass(frozen=True)
class Certificate:
    name: str
    certificate_id: int
    owner: Optional[str]
    private_key: str          # NA | MK | PW | SK
    subject: str
    thumbprint: bytes
    start: datetime
    expiry: datetime
    last_backup: Optional[datetime]

    @property
    def thumbprint_hex(self) -> str:
        return self.thumbprint.hex().upper()


@dataclass(frozen=True)
class Endpoint:
    name: str
    endpoint_id: int
    owner: Optional[str]
    state: str
    role: str
    authentication: str
    certificate_id: int
    encryption_enabled: bool
    algorithm: str            # e.g. "AES", "NONE, AES", "RC4, AES"
    port: int
    ip_address: Optional[str]


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


@dataclass
class InstanceState:
    tables: dict[str, tuple[list[str], list[tuple]]] = field(default_factory=dict)
    server_name: str = ""
    master_key: bool = False
    master_key_by_service_key: bool = False
    certificates: dict[str, Certificate] = field(default_factory=dict)       # lower-case name
    endpoint: Optional[Endpoint] = None
    logins: dict[str, Login] = field(default_factory=dict)                  # lower-case name
    users: dict[str, User] = field(default_factory=dict)                    # lower-case name
    permissions: dict[str, set[str]] = field(default_factory=dict)          # grantee lower → {GRANT, DENY, …}

    def certificate(self, name: str) -> Optional[Certificate]:
        return self.certificates.get(name.lower())

    def certificate_by_thumbprint(self, thumbprint: bytes) -> Optional[Certificate]:
        return next((c for c in self.certificates.values() if c.thumbprint == thumbprint), None)

    def certificate_by_id(self, certificate_id: int) -> Optional[Certificate]:
        return next((c for c in self.certificates.values() if c.certificate_id == certificate_id), None)

    def login(self, name: str) -> Optional[Login]:
        return self.logins.get(name.lower())

    def user(self, name: str) -> Optional[User]:
        return self.users.get(name.lower())

    def records(self) -> dict[str, list[dict]]:
        """JSON-safe rows per catalog query, for the notebooks' records."""
        return {k: [{c: jsonable(v) for c, v in zip(cols, row)} for row in rows]
                for k, (cols, rows) in self.tables.items()}


def read_state(conn) -> InstanceState:
    state = InstanceState()
    for key, sql in QUERIES.items():
        state.tables[key] = query(conn, sql)
    cols, rows = state.tables["server"]
    state.server_name = rows[0][0] if rows else ""
    _, rows = state.tables["master_key"]
    state.master_key = bool(rows)
    state.master_key_by_service_key = bool(rows and rows[0][5])
    for r in _dicts(state.tables["certificates"]):
        state.certificates[r["name"].lower()] = Certificate(
            r["name"], r["certificate_id"], r["owner_name"], r["pvt_key_encryption_type"], r["subject"],
            bytes(r["thumbprint"]), r["start_date"], r["expiry_date"], r["pvt_key_last_backup_date"])
    eps = _dicts(state.tables["endpoints"])
    if eps:
        r = eps[0]
        state.endpoint = Endpoint(r["name"], r["endpoint_id"], r["owner_name"], r["state_desc"], r["role_desc"],
                                  r["connection_auth_desc"], r["certificate_id"], bool(r["is_encryption_enabled"]),
                                  r["encryption_algorithm_desc"], r["port"], r["ip_address"])
    for r in _dicts(state.tables["server_principals"]):
        state.logins[r["name"].lower()] = Login(r["name"], r["principal_id"], r["type_desc"], bool(r["is_disabled"]),
                                                bytes(r["sid"]) if r["sid"] is not None else b"")
    for r in _dicts(state.tables["database_principals"]):
        state.users[r["name"].lower()] = User(r["name"], r["principal_id"],
                                              bytes(r["sid"]) if r["sid"] is not None else None, r["login_name"])
    for r in _dicts(state.tables["server_permissions"]):
        if r["permission_name"] == "CONNECT" and r["grantee"]:
            state.permissions.setdefault(r["grantee"].lower(), set()).add(r["state_desc"])
    return state


def _dicts(table: tuple[list[str], list[tuple]]) -> list[dict]:
    cols, rows = table
    return [dict(zip(cols, row)) for row in rows]


def certencoded(conn, certificate_name: str) -> Optional[bytes]:
    """The public certificate (DER) of a certificate in master, via CERTENCODED."""
    cur = conn.cursor()
    cur.execute("SELECT CERTENCODED(CERT_ID(?))", certificate_name)
    row = cur.fetchone()
    cur.close()
    return bytes(row[0]) if row and row[0] is not None else None
