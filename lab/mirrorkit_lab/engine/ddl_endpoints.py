"""CREATE / ALTER / DROP ENDPOINT … FOR DATABASE_MIRRORING.

docs: t-sql/statements/create-endpoint-transact-sql.md, alter-endpoint-transact-sql.md,
drop-endpoint-transact-sql.md; codes from sys-database-mirroring-endpoints-transact-sql.md.
"""
from __future__ import annotations

import ipaddress

from . import statements as st, store
from .context import HandlerContext
from .errors import SqlError
from .results import Event

STATE_CODES = {"STARTED": 0, "STOPPED": 1, "DISABLED": 2}
ROLE_CODES = {"PARTNER": 1, "WITNESS": 2, "ALL": 3}
# (ENCRYPTION, ALGORITHM) -> sys.database_mirroring_endpoints.encryption_algorithm
ENCRYPTION_CODES = {
    ("DISABLED", None): 0, ("REQUIRED", "RC4"): 1, ("REQUIRED", "AES"): 2, ("SUPPORTED", "RC4"): 3,
    ("SUPPORTED", "AES"): 4, ("REQUIRED", "RC4 AES"): 5, ("REQUIRED", "AES RC4"): 6,
    ("SUPPORTED", "RC4 AES"): 7, ("SUPPORTED", "AES RC4"): 8,
}
DEFAULT_ALGORITHM = "AES"           # SQL Server 2016 and later
PORT_RANGE = (1024, 32767)


def encryption_code(encryption: str, algorithm: str | None) -> int:
    if encryption == "DISABLED":
        return 0
    return ENCRYPTION_CODES[(encryption, algorithm or DEFAULT_ALGORITHM)]


def _check_port(port: int) -> None:
    if not PORT_RANGE[0] <= port <= PORT_RANGE[1]:
        raise SqlError(59003, port)


def _check_ip(ip: str | None) -> str | None:
    if ip is None or ip.upper() == "ALL":
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise SqlError(7888 if ":" in ip else 102, ip, abort_batch=True) from None


def _certificate_id(s: HandlerContext, conn, name: str) -> int:
    row = conn.execute("SELECT certificate_id, pvt_key_encryption_type FROM t_certificates WHERE "
                       "database_id=? AND name=?", (store.MASTER, name)).fetchone()
    if row is None:
        raise SqlError(15151, "find", "certificate", name)
    if row[1] != "MK":
        # INFERENCE: checked when the endpoint is defined; dates are checked at each handshake
        raise SqlError(28055, name)
    return row[0]


def _owner(conn, login: str | None, default: int) -> int:
    if login is None:
        return default
    row = conn.execute("SELECT principal_id, type FROM t_server_principals WHERE name=?", (login,)).fetchone()
    if row is None or row[1] == "R":
        raise SqlError(15151, "find", "login", login)
    return row[0]


def create_endpoint(s: HandlerContext, stmt: st.CreateEndpoint, events: list[Event]) -> None:
    s.require_sysadmin()
    m = stmt.mirroring
    if stmt.name.startswith("##"):
        raise SqlError(7869, stmt.name, "##")
    _check_port(stmt.port)
    ip = _check_ip(stmt.listener_ip)
    with s.atomic() as conn:
        if conn.execute("SELECT 1 FROM t_endpoints WHERE type=4").fetchone():
            raise SqlError(7862)
        if conn.execute("SELECT 1 FROM t_endpoints WHERE name=?", (stmt.name,)).fetchone():
            raise SqlError(2714, stmt.name)
        if conn.execute("SELECT 1 FROM t_endpoints WHERE protocol=2 AND port=? AND type<>4",
                        (stmt.port,)).fetchone() and stmt.port != 1433:
            raise SqlError(7874)
        auth = m.connection_auth or 3
        cert_id = _certificate_id(s, conn, m.certificate) if m.certificate else 0
        encryption = m.encryption or "REQUIRED"
        code = encryption_code(encryption, m.algorithm)
        row = conn.execute("SELECT MAX(endpoint_id) FROM t_endpoints").fetchone()[0]
        eid = max(row + 1, store.FIRST_USER_ENDPOINT_ID)
        state = STATE_CODES[stmt.state or "STOPPED"]
        owner = _owner(conn, stmt.owner, s.login_id)
        conn.execute(
            "INSERT INTO t_endpoints (endpoint_id, name, principal_id, protocol, type, state, is_admin_endpoint, "
            "port, is_dynamic_port, ip_address, role, is_encryption_enabled, connection_auth, certificate_id, "
            "encryption_algorithm) VALUES (?, ?, ?, 2, 4, ?, 0, ?, 0, ?, ?, ?, ?, ?, ?)",
            (eid, stmt.name, owner, state, stmt.port, ip, ROLE_CODES[m.role], int(code != 0), auth, cert_id, code))
        s.instance.endpoint_changing(conn)
    s.emit_done(events)


def alter_endpoint(s: HandlerContext, stmt: st.AlterEndpoint, events: list[Event]) -> None:
    s.require_sysadmin()
    with s.atomic() as conn:
        row = conn.execute("SELECT endpoint_id, type, encryption_algorithm FROM t_endpoints WHERE name=?",
                           (stmt.name,)).fetchone()
        if row is None:
            raise SqlError(15151, "alter", "endpoint", stmt.name)
        eid, etype, current_code = row
        if etype != 4:
            if eid == 1:
                raise SqlError(7864)
            raise SqlError(7860)
        m = stmt.mirroring
        changes: dict[str, object] = {}
        if stmt.state:
            changes["state"] = STATE_CODES[stmt.state]
        if stmt.port is not None:
            _check_port(stmt.port)
            changes["port"] = stmt.port
        if stmt.listener_ip is not None:
            changes["ip_address"] = _check_ip(stmt.listener_ip)
        if m is not None:
            if m.connection_auth is not None:
                changes["connection_auth"] = m.connection_auth
                changes["certificate_id"] = _certificate_id(s, conn, m.certificate) if m.certificate else 0
            if m.encryption is not None:
                code = encryption_code(m.encryption, m.algorithm)
                changes["encryption_algorithm"] = code
                changes["is_encryption_enabled"] = int(code != 0)
            if m.role is not None:
                changes["role"] = ROLE_CODES[m.role]
        if not changes:
            raise SqlError(7863)
        sets = ", ".join(f"{k}=?" for k in changes)
        conn.execute(f"UPDATE t_endpoints SET {sets} WHERE endpoint_id=?", (*changes.values(), eid))
        s.instance.endpoint_changing(conn)
    s.emit_done(events)


def drop_endpoint(s: HandlerContext, stmt: st.DropEndpoint, events: list[Event]) -> None:
    s.require_sysadmin()
    with s.atomic() as conn:
        row = conn.execute("SELECT endpoint_id, type FROM t_endpoints WHERE name=?", (stmt.name,)).fetchone()
        if row is None:
            raise SqlError(15151, "drop", "endpoint", stmt.name)
        if row[1] != 4:
            raise SqlError(7873, stmt.name)
        conn.execute("DELETE FROM t_server_permissions WHERE class=105 AND major_id=?", (row[0],))
        conn.execute("DELETE FROM t_endpoints WHERE endpoint_id=?", (row[0],))
        s.instance.endpoint_changing(conn)
    s.emit_done(events)


HANDLERS = {st.CreateEndpoint: create_endpoint, st.AlterEndpoint: alter_endpoint,
            st.DropEndpoint: drop_endpoint}
