"""Every T-SQL statement the kit sends, built in one place.

Identifiers are quoted as QUOTENAME does ([name] with ] doubled), literals as N'…'
with ' doubled, binaries as 0x…, dates as unambiguous ISO 8601. A statement that
carries a secret keeps it in a separate part, so the text shown in a notebook or
record is always the redacted rendering.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Union

from ..access.credentials import Secret

MAX_IDENTIFIER = 128
REDACTED = "N'********'"


class QuotingError(ValueError):
    pass


def quote_name(name: str) -> str:
    """[name], as QUOTENAME(name) — identifiers of up to 128 characters."""
    if not isinstance(name, str) or not name:
        raise QuotingError("an identifier must be a non-empty string")
    if len(name) > MAX_IDENTIFIER:
        raise QuotingError(f"identifier {name[:40]!r}… is longer than {MAX_IDENTIFIER} characters")
    if "\x00" in name:
        raise QuotingError("an identifier cannot contain NUL")
    return "[" + name.replace("]", "]]") + "]"


def literal(text: str) -> str:
    """N'text' with quotes doubled."""
    if "\x00" in text:
        raise QuotingError("a string literal cannot contain NUL")
    return "N'" + text.replace("'", "''") + "'"


def binary(data: bytes) -> str:
    return "0x" + data.hex().upper()


def date_literal(when: datetime) -> str:
    """ISO 8601 with a T: read the same way under every SET LANGUAGE / DATEFORMAT."""
    return "N'" + when.strftime("%Y-%m-%dT%H:%M:%S") + "'"


Part = Union[str, Secret]


@dataclass(frozen=True)
class Statement:
    """One T-SQL statement; secrets stay Secret objects until render()."""
    parts: tuple[Part, ...]
    purpose: str = ""

    def render(self) -> str:
        """The text to send. Never display it."""
        return "".join(literal(p.reveal()) if isinstance(p, Secret) else p for p in self.parts)

    def redacted(self) -> str:
        return "".join(REDACTED if isinstance(p, Secret) else p for p in self.parts)

    def __str__(self) -> str:
        return self.redacted()

    __repr__ = __str__

    @property
    def has_secret(self) -> bool:
        return any(isinstance(p, Secret) for p in self.parts)


def _s(*parts: Part, purpose: str = "") -> Statement:
    return Statement(tuple(parts), purpose)


# -- outbound ----------------------------------------------------------------------------------------
def create_master_key(password: Secret) -> Statement:
    return _s("CREATE MASTER KEY ENCRYPTION BY PASSWORD = ", password, ";",
              purpose="database master key in master")


def create_certificate(name: str, subject: str, start: datetime, expiry: datetime) -> Statement:
    return _s(f"CREATE CERTIFICATE {quote_name(name)}\n"
              f"    WITH SUBJECT = {literal(subject)},\n"
              f"    START_DATE = {date_literal(start)},\n"
              f"    EXPIRY_DATE = {date_literal(expiry)};",
              purpose="endpoint certificate, private key encrypted by the master key")


def encryption_clause(encryption: str, algorithm: Optional[str]) -> str:
    """ENCRYPTION = { DISABLED | SUPPORTED | REQUIRED } [ ALGORITHM ... ] (no algorithm when disabled)."""
    enc = encryption.upper()
    if enc != "DISABLED" and algorithm:
        enc += f" ALGORITHM {algorithm.upper()}"
    return f"ENCRYPTION = {enc}"


def endpoint_options(certificate: str, encryption: str, algorithm: Optional[str], role: str) -> str:
    return (f"AUTHENTICATION = CERTIFICATE {quote_name(certificate)},\n"
            f"        {encryption_clause(encryption, algorithm)},\n"
            f"        ROLE = {role.upper()}")


def listener_ip(value: str) -> str:
    return "ALL" if value.upper() == "ALL" else f"({value})"


def create_endpoint(name: str, port: int, ip: str, certificate: str, encryption: str,
                    algorithm: Optional[str], role: str) -> Statement:
    return _s(f"CREATE ENDPOINT {quote_name(name)}\n"
              f"    STATE = STARTED\n"
              f"    AS TCP (LISTENER_PORT = {int(port)}, LISTENER_IP = {listener_ip(ip)})\n"
              f"    FOR DATABASE_MIRRORING (\n"
              f"        {endpoint_options(certificate, encryption, algorithm, role)}\n"
              f"    );", purpose="DATABASE_MIRRORING endpoint with certificate authentication")


def alter_endpoint(name: str, *, state: Optional[str] = None, port: Optional[int] = None,
                   ip: Optional[str] = None, certificate: Optional[str] = None,
                   encryption: Optional[str] = None, algorithm: Optional[str] = None,
                   role: Optional[str] = None) -> Statement:
    text = f"ALTER ENDPOINT {quote_name(name)}"
    if state:
        text += f"\n    STATE = {state.upper()}"
    tcp = [f"LISTENER_PORT = {int(port)}" if port is not None else "",
           f"LISTENER_IP = {listener_ip(ip)}" if ip is not None else ""]
    if any(tcp):
        text += f"\n    AS TCP ({', '.join(filter(None, tcp))})"
    options = [f"AUTHENTICATION = CERTIFICATE {quote_name(certificate)}" if certificate is not None else "",
               encryption_clause(encryption, algorithm) if encryption is not None else "",
               f"ROLE = {role.upper()}" if role is not None else ""]
    if any(options):
        text += "\n    FOR DATABASE_MIRRORING (" + ", ".join(filter(None, options)) + ")"
    return _s(text + ";", purpose="bring the endpoint to the parameters")


def backup_certificate(name: str, path: str) -> Statement:
    return _s(f"BACKUP CERTIFICATE {quote_name(name)} TO FILE = {literal(path)};",
              purpose="public certificate to a file")


def backup_certificate_with_private_key(name: str, path: str, key_path: str, password: Secret) -> Statement:
    return _s(f"BACKUP CERTIFICATE {quote_name(name)} TO FILE = {literal(path)}\n"
              f"    WITH PRIVATE KEY (FILE = {literal(key_path)}, ENCRYPTION BY PASSWORD = ", password, ");",
              purpose="private-key backup (encrypted PVK) on the server")


# -- inbound -----------------------------------------------------------------------------------------
def create_login(name: str, password: Secret) -> Statement:
    return _s(f"CREATE LOGIN {quote_name(name)} WITH PASSWORD = ", password, ";",
              purpose="login for the peer (its password is random and never kept: the certificate authenticates)")


def enable_login(name: str) -> Statement:
    return _s(f"ALTER LOGIN {quote_name(name)} ENABLE;", purpose="the peer's login must be enabled")


def create_user(name: str, login: str) -> Statement:
    return _s(f"CREATE USER {quote_name(name)} FOR LOGIN {quote_name(login)};",
              purpose="user in master that will own the peer's certificate")


def create_certificate_from_binary(name: str, owner: str, der: bytes) -> Statement:
    return _s(f"CREATE CERTIFICATE {quote_name(name)}\n"
              f"    AUTHORIZATION {quote_name(owner)}\n"
              f"    FROM BINARY = {binary(der)};",
              purpose="the peer's public certificate, owned by the peer's user")


def create_certificate_from_file(name: str, owner: str, path: str) -> Statement:
    return _s(f"CREATE CERTIFICATE {quote_name(name)}\n"
              f"    AUTHORIZATION {quote_name(owner)}\n"
              f"    FROM FILE = {literal(path)};",
              purpose="the peer's public certificate from the shared file, owned by the peer's user")


def alter_certificate_owner(name: str, owner: str) -> Statement:
    return _s(f"ALTER AUTHORIZATION ON CERTIFICATE::{quote_name(name)} TO {quote_name(owner)};",
              purpose="the peer's certificate must be owned by the peer's user")


def grant_connect(endpoint: str, login: str) -> Statement:
    return _s(f"GRANT CONNECT ON ENDPOINT::{quote_name(endpoint)} TO {quote_name(login)};",
              purpose="let the peer's login connect to the endpoint")


def revoke_deny_connect(endpoint: str, login: str) -> Statement:
    return _s(f"REVOKE CONNECT ON ENDPOINT::{quote_name(endpoint)} FROM {quote_name(login)};",
              purpose="remove a DENY CONNECT (REVOKE clears a deny)")


# -- remediation -------------------------------------------------------------------------------------
def drop_certificate(name: str) -> Statement:
    return _s(f"DROP CERTIFICATE {quote_name(name)};", purpose="remove a stale or foreign copy of a certificate")


def batch(*statements: Statement) -> Statement:
    """Statements sent together, one per line (a remediation that needs more than one)."""
    parts: list[Part] = []
    for i, s in enumerate(statements):
        if i:
            parts.append("\n")
        parts.extend(s.parts)
    return Statement(tuple(parts), "; ".join(s.purpose for s in statements if s.purpose))
