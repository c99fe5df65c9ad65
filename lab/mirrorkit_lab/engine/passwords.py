"""Password policy (docs: relational-databases/security/password-policy.md) and the
SQL Server 2012+ password hash format (0x0200 + 4-byte salt + SHA-512)."""
from __future__ import annotations

import hashlib
import hmac
import os
from typing import Optional

from .errors import SqlError

BANNED = {"password", "admin", "administrator", "sa", "sysadmin"}


def check_policy(password: Optional[str], account: Optional[str] = None) -> None:
    """Raise 15116/15117/15118 as SQL Server does when the policy is enforced."""
    if password is None or password == "":
        raise SqlError(15116)
    if account and (password.lower() == account.lower() or account.lower() in password.lower()):
        raise SqlError(15118)
    if password.lower() in BANNED:
        raise SqlError(15118)
    if len(password) < 8:
        raise SqlError(15116)
    if len(password) > 128:
        raise SqlError(15117)
    classes = sum((
        any("A" <= c <= "Z" for c in password),
        any("a" <= c <= "z" for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ))
    if classes < 3:
        raise SqlError(15118)


def hash_password(password: str, salt: Optional[bytes] = None) -> bytes:
    salt = os.urandom(4) if salt is None else salt
    return b"\x02\x00" + salt + hashlib.sha512(password.encode("utf-16-le") + salt).digest()


def verify_password(password: str, stored: Optional[bytes]) -> bool:
    if not stored or len(stored) != 2 + 4 + 64:
        return False
    return hmac.compare_digest(hash_password(password, stored[2:6]), stored)
