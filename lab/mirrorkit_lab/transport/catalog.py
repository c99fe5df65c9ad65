"""Read what the transport needs from an instance's store: its endpoint, the
endpoint certificate with its private key, and the peer certificates in master."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from .. import crypto
from ..engine import keys, store
from ..engine.permissions import login_has_permission
from ..engine.sqltypes import parse_datetime


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: int
    name: str
    state: int              # 0 STARTED, 1 STOPPED, 2 DISABLED
    port: int
    ip_address: Optional[str]
    role: int
    connection_auth: int
    certificate_id: int
    encryption_algorithm: int
    owner_id: int


@dataclass(frozen=True)
class Certificate:
    certificate_id: int
    name: str
    principal_id: int
    der: bytes
    thumbprint: bytes
    issuer_name: str
    serial: str
    start: datetime
    expiry: datetime
    key_type: str

    def valid_at(self, when: datetime) -> bool:
        return self.start <= when <= self.expiry


def endpoint(conn) -> Optional[Endpoint]:
    row = conn.execute(
        "SELECT endpoint_id, name, state, port, ip_address, role, connection_auth, certificate_id, "
        "encryption_algorithm, principal_id FROM t_endpoints WHERE type=4").fetchone()
    return Endpoint(*row) if row else None


def _certificate(row) -> Certificate:
    cid, name, pid, der, thumb, issuer, serial, start, expiry, kind = row
    return Certificate(cid, name, pid, der, thumb, issuer, serial, parse_datetime(start),
                       parse_datetime(expiry), kind)


_CERT_COLUMNS = ("certificate_id, name, principal_id, der, thumbprint, issuer_name, cert_serial_number, "
                 "start_date, expiry_date, pvt_key_encryption_type")


def certificate(conn, certificate_id: int) -> Optional[Certificate]:
    row = conn.execute(f"SELECT {_CERT_COLUMNS} FROM t_certificates WHERE database_id=? AND certificate_id=?",
                       (store.MASTER, certificate_id)).fetchone()
    return _certificate(row) if row else None


def certificates_by_issuer_serial(conn, issuer: str, serial: str) -> list[Certificate]:
    rows = conn.execute(f"SELECT {_CERT_COLUMNS} FROM t_certificates WHERE database_id=? AND "
                        "issuer_name=? AND cert_serial_number=?", (store.MASTER, issuer, serial)).fetchall()
    return [_certificate(r) for r in rows]


def endpoint_private_key(conn, cert: Certificate):
    """The endpoint certificate's private key, opened the way the server does it on its own:
    through the master key encrypted by the service master key. None when that is not possible."""
    if cert.key_type != "MK":
        return None
    blob = conn.execute("SELECT private_key FROM t_certificates WHERE database_id=? AND certificate_id=?",
                        (store.MASTER, cert.certificate_id)).fetchone()[0]
    dmk = keys.open_master_key_automatically(conn, store.MASTER)
    if dmk is None or blob is None:
        return None
    try:
        return crypto.private_key_from_bytes(crypto.unwrap_with_key(dmk, blob, aad=cert.thumbprint))
    except crypto.CryptoError:
        return None


@dataclass(frozen=True)
class Owner:
    user_name: Optional[str]
    login_id: Optional[int]
    login_name: Optional[str]
    login_disabled: bool


def certificate_owner(conn, cert: Certificate) -> Owner:
    """certificate → owner user in master → login by SID (docs: dm_db_mirroring_connections)."""
    row = conn.execute("SELECT name, sid FROM t_database_principals WHERE database_id=? AND principal_id=?",
                       (store.MASTER, cert.principal_id)).fetchone()
    if row is None:
        return Owner(None, None, None, False)
    user, sid = row
    login = conn.execute("SELECT principal_id, name, is_disabled FROM t_server_principals WHERE sid=?",
                         (sid,)).fetchone() if sid else None
    if login is None:
        return Owner(user, None, None, False)
    return Owner(user, login[0], login[1], bool(login[2]))


def may_connect(conn, login_id: int, endpoint_name: str) -> bool:
    return login_has_permission(conn, login_id, endpoint_name, "ENDPOINT", "CONNECT")
