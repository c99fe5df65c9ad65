"""Shared setup for the mirroring-transport acceptance tests (tests/lab/test_transport_*.py).

Everything here goes through the client stack (pyodbc + FreeTDS) and follows Microsoft's
documented procedure (/work/shared/reference/sqlserver-spec.md §1.1 outbound, §1.2 inbound):

  outbound, on every instance:  CREATE MASTER KEY; CREATE CERTIFICATE <X>_cert WITH SUBJECT;
                                CREATE ENDPOINT ... AUTHENTICATION = CERTIFICATE <X>_cert;
                                BACKUP CERTIFICATE <X>_cert TO FILE = 'C:\\<X>_cert.cer'
  inbound, on R for each peer P: copy P's .cer to R's server file system; CREATE LOGIN P_login;
                                CREATE USER P_user FOR LOGIN P_login;
                                CREATE CERTIFICATE P_cert AUTHORIZATION P_user FROM FILE;
                                GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO P_login
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Optional

ENDPOINT = "Endpoint_Mirroring"
PORT = 7024
PEER_PASSWORD = "AStrongPassword!@#"


# -- names ----------------------------------------------------------------------------------------
def cert_name(instance: str) -> str:
    return f"{instance}_cert"


def cert_file(instance: str) -> str:
    return f"C:\\{instance}_cert.cer"


def login_name(instance: str) -> str:
    return f"{instance}_login"


def user_name(instance: str) -> str:
    return f"{instance}_user"


def url(handle, port: int = PORT) -> str:
    return f"TCP://{handle.host}:{port}"


# -- the documented setup -----------------------------------------------------------------------------
def outbound(handle, *, role: str = "ALL", port: int = PORT,
             encryption: str = "REQUIRED ALGORITHM AES", master_key_password: Optional[str] = None) -> None:
    """§1.1 on one instance: master key, certificate, endpoint, certificate backup."""
    name = handle.name
    pw = master_key_password or f"<{name}_Strong_Password#1>"
    handle.sql(f"CREATE MASTER KEY ENCRYPTION BY PASSWORD = '{pw}'")
    handle.sql(f"CREATE CERTIFICATE {cert_name(name)} WITH SUBJECT = '{name} certificate for database mirroring'")
    handle.sql(f"CREATE ENDPOINT {ENDPOINT} STATE = STARTED "
               f"AS TCP (LISTENER_PORT = {port}, LISTENER_IP = ALL) "
               f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {cert_name(name)}, "
               f"ENCRYPTION = {encryption}, ROLE = {role})")
    handle.sql(f"BACKUP CERTIFICATE {cert_name(name)} TO FILE = '{cert_file(name)}'")


def copy_cert_file(lab, source: str, target: str, path: Optional[str] = None) -> None:
    """Carry a .cer file from one instance's server file system to another's."""
    path = path or cert_file(source)
    lab[target].instance.fs.copy(lab[source].instance.fs, path, path)


def inbound(lab, receiver: str, peer: str) -> None:
    """§1.2 on `receiver` for `peer`: login, user, the peer's certificate owned by the user, GRANT CONNECT."""
    r = lab[receiver]
    copy_cert_file(lab, peer, receiver)
    r.sql(f"CREATE LOGIN {login_name(peer)} WITH PASSWORD = '{PEER_PASSWORD}'")
    r.sql(f"CREATE USER {user_name(peer)} FOR LOGIN {login_name(peer)}")
    r.sql(f"CREATE CERTIFICATE {cert_name(peer)} AUTHORIZATION {user_name(peer)} FROM FILE = '{cert_file(peer)}'")
    r.sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(peer)}")


def two_way(lab_factory, a: str = "HOST_A", b: str = "HOST_B", *, roles=("ALL", "ALL")):
    """Two lab instances set up per §1.1 (outbound, A then B) and §1.2 (inbound, A then B)."""
    lab = lab_factory(a, b)
    outbound(lab[a], role=roles[0])
    outbound(lab[b], role=roles[1])
    inbound(lab, a, b)
    inbound(lab, b, a)
    return lab


def full_mesh(lab_factory, roles: dict[str, str]):
    """One instance per entry of `roles` (name -> ROLE), with the certificate exchange in every direction."""
    lab = lab_factory(*roles)
    for name, role in roles.items():
        outbound(lab[name], role=role)
    for receiver in roles:
        for peer in roles:
            if peer != receiver:
                inbound(lab, receiver, peer)
    return lab


# -- probing ---------------------------------------------------------------------------------------------
@dataclass
class Probe:
    endpoint_url: str
    succeeded: bool
    error_number: Optional[int]
    message: str


def probe_url(source, target_url: str, peer_role: str = "PARTNER") -> Probe:
    """EXEC sys.sp_mirrorkit_probe on `source`; exactly one row comes back."""
    rows = source.sql("EXEC sys.sp_mirrorkit_probe @endpoint_url = ?, @peer_role = ?", target_url, peer_role)
    assert len(rows) == 1, rows
    u, ok, number, message = rows[0]
    return Probe(u, bool(ok), number, message)


def probe(source, target, peer_role: str = "PARTNER", port: int = PORT) -> Probe:
    return probe_url(source, url(target, port), peer_role)


def assert_probe_ok(source, target, peer_role: str = "PARTNER", port: int = PORT) -> Probe:
    p = probe(source, target, peer_role, port)
    assert p.succeeded, f"{source.name} -> {target.name} as {peer_role} failed: {p.error_number} {p.message}"
    assert p.error_number is None, p
    assert p.endpoint_url == url(target, port)
    return p


def assert_probe_fails(source, target, number: int, peer_role: str = "PARTNER", port: int = PORT) -> Probe:
    p = probe(source, target, peer_role, port)
    assert not p.succeeded, f"{source.name} -> {target.name} as {peer_role} succeeded: {p.message}"
    assert p.error_number == number, f"expected error {number}, got {p.error_number}: {p.message}"
    return p


def settled_rows(handle, query: str, count: int, timeout: float = 3.0) -> list[tuple]:
    """Rows of `query` once there are `count` of them (or whatever there is after `timeout`).

    The acceptor may register a connection a moment after the initiator's probe returned;
    test_transport_timing.py pins that ordering down, the other tests only look at the content."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        rows = [tuple(r) for r in handle.sql(query)]
        if len(rows) == count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# -- the error log, read through pyodbc ----------------------------------------------------------------------
def errorlog(handle, search: str) -> list[str]:
    """Texts of the current error log's lines that contain `search` (sp_readerrorlog 0, 1, N'search')."""
    rows = handle.sql("EXEC sp_readerrorlog 0, 1, ?", search)
    return [r[2] for r in rows]


class LogWatch:
    """Remember how many lines matched each search, to find the ones a step adds."""

    def __init__(self, handle, *searches: str):
        self.handle = handle
        self.before = {s: len(errorlog(handle, s)) for s in searches}

    def new(self, search: str) -> list[str]:
        return errorlog(self.handle, search)[self.before[search]:]


# -- certificates --------------------------------------------------------------------------------------------
def certencoded(handle, name: str) -> bytes:
    rows = handle.sql(f"SELECT CERTENCODED(CERT_ID(N'{name}'))")
    assert rows and rows[0][0] is not None, f"no certificate {name} on {handle.name}"
    return bytes(rows[0][0])


def cert_id(handle, name: str) -> int:
    rows = handle.sql(f"SELECT certificate_id FROM sys.certificates WHERE name = N'{name}'")
    assert rows, f"no certificate {name} on {handle.name}"
    return rows[0][0]


def forged_certificate(real_der: bytes) -> bytes:
    """A certificate with the same issuer, subject and serial number as `real_der` but a new RSA key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa

    real = x509.load_der_x509_certificate(real_der)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = (x509.CertificateBuilder()
              .subject_name(real.subject)
              .issuer_name(real.issuer)
              .serial_number(real.serial_number)
              .not_valid_before(real.not_valid_before_utc)
              .not_valid_after(real.not_valid_after_utc)
              .public_key(key.public_key())
              .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding
    der = forged.public_bytes(Encoding.DER)
    assert der != real_der
    return der


def hex_literal(data: bytes) -> str:
    return "0x" + data.hex().upper()


# -- sockets -------------------------------------------------------------------------------------------------
def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
