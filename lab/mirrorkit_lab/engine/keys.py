"""Database master keys and certificate private keys.

The DMK is a random AES-256 key. Each of its encryptions is a sys.key_encryptions
row whose crypt_property holds the wrapped key: ESKP (by password) and ESKM (by
the service master key, which lets SQL Server open it without a password).
Certificate private keys are stored wrapped by the DMK (MK) or by a password (PW).
"""
from __future__ import annotations

import uuid
from typing import Optional

from .. import crypto
from . import store
from .context import HandlerContext
from .errors import SqlError


def _aad(database_id: int) -> bytes:
    return b"mirrorkit-dmk:%d" % database_id


def has_master_key(conn, database_id: int) -> bool:
    return conn.execute("SELECT 1 FROM t_symmetric_keys WHERE database_id=? AND symmetric_key_id=?",
                        (database_id, store.DMK_ID)).fetchone() is not None


def service_master_key(conn) -> bytes:
    return conn.execute("SELECT value FROM t_meta WHERE name='service_master_key'").fetchone()[0]


def open_master_key_automatically(conn, database_id: int) -> Optional[bytes]:
    row = conn.execute("SELECT crypt_property FROM t_key_encryptions WHERE database_id=? AND key_id=? "
                       "AND crypt_type='ESKM'", (database_id, store.DMK_ID)).fetchone()
    if row is None:
        return None
    try:
        return crypto.unwrap_with_key(service_master_key(conn), row[0], aad=_aad(database_id))
    except crypto.CryptoError:
        return None


def open_master_key_with_password(conn, database_id: int, password: str) -> bytes:
    rows = conn.execute("SELECT crypt_property FROM t_key_encryptions WHERE database_id=? AND key_id=? "
                        "AND crypt_type='ESKP'", (database_id, store.DMK_ID)).fetchall()
    for (blob,) in rows:
        try:
            return crypto.unwrap_with_password(password, blob)
        except crypto.CryptoError:
            continue
    raise SqlError(15313)


def add_password_encryption(conn, database_id: int, dmk: bytes, password: str) -> None:
    conn.execute("INSERT INTO t_key_encryptions VALUES (?, ?, NULL, 'ESKP', 'ENCRYPTION BY PASSWORD', ?)",
                 (database_id, store.DMK_ID, crypto.wrap_with_password(password, dmk)))


def add_smk_encryption(conn, database_id: int, dmk: bytes) -> None:
    conn.execute("DELETE FROM t_key_encryptions WHERE database_id=? AND key_id=? AND crypt_type='ESKM'",
                 (database_id, store.DMK_ID))
    conn.execute("INSERT INTO t_key_encryptions VALUES (?, ?, NULL, 'ESKM', 'ENCRYPTION BY MASTER KEY', ?)",
                 (database_id, store.DMK_ID,
                  crypto.wrap_with_key(service_master_key(conn), dmk, aad=_aad(database_id))))


def create_master_key(conn, database_id: int, password: str) -> bytes:
    now = store.fmt_datetime(store.utcnow())
    dmk = crypto.new_symmetric_key()
    conn.execute("INSERT INTO t_symmetric_keys VALUES (?, ?, ?, 1, 256, 'A3', 'AES_256', ?, ?, ?)",
                 (database_id, store.DMK_ID, store.DMK_NAME, now, now, str(uuid.uuid4()).upper()))
    add_password_encryption(conn, database_id, dmk, password)
    add_smk_encryption(conn, database_id, dmk)
    return dmk


def require_master_key(session: HandlerContext, database_id: int) -> bytes:
    """The DMK for encrypting or decrypting a private key, or 15581."""
    dmk = session.master_key(database_id)
    if dmk is None:
        raise SqlError(15581)
    return dmk


def protect_private_key(session: HandlerContext, database_id: int, key, encryption_password: Optional[str],
                        thumbprint: bytes) -> tuple[bytes, str]:
    raw = crypto.private_key_to_bytes(key)
    if encryption_password is not None:
        return crypto.wrap_with_password(encryption_password, raw), "PW"
    dmk = require_master_key(session, database_id)
    return crypto.wrap_with_key(dmk, raw, aad=thumbprint), "MK"


def unprotect_private_key(dmk_or_none: Optional[bytes], row_type: str, blob: bytes, thumbprint: bytes,
                          password: Optional[str]):
    """Decrypt a stored private key; raise SqlError with SQL Server's numbers."""
    if row_type == "PW":
        if password is None:
            raise SqlError(15466)
        try:
            return crypto.private_key_from_bytes(crypto.unwrap_with_password(password, blob))
        except crypto.BadPassword:
            raise SqlError(15465) from None
    if dmk_or_none is None:
        raise SqlError(15581)
    try:
        return crypto.private_key_from_bytes(crypto.unwrap_with_key(dmk_or_none, blob, aad=thumbprint))
    except crypto.CryptoError:
        raise SqlError(15466) from None


def certificate_private_key(session: HandlerContext, database_id: int, cert_id: int,
                            decryption_password: Optional[str]):
    row = session.query("SELECT name, pvt_key_encryption_type, private_key, thumbprint FROM t_certificates "
                        "WHERE database_id=? AND certificate_id=?", (database_id, cert_id))
    if not row:
        return None
    name, kind, blob, thumb = row[0]
    if kind == "NA" or blob is None:
        raise SqlError(15246, name)
    dmk = session.master_key(database_id) if kind == "MK" else None
    return unprotect_private_key(dmk, kind, blob, thumb, decryption_password)


def export_private_key_pvk(session: HandlerContext, database_id: int, cert_id: int, enc: str,
                           dec: Optional[str]) -> Optional[bytes]:
    key = certificate_private_key(session, database_id, cert_id, dec)
    if key is None:
        return None
    return crypto.pvk_encode(key, enc)


def reencrypt_private_keys(conn, database_id: int, old_dmk: Optional[bytes], new_dmk: bytes,
                           force: bool) -> None:
    rows = conn.execute("SELECT certificate_id, private_key, thumbprint FROM t_certificates "
                        "WHERE database_id=? AND pvt_key_encryption_type='MK'", (database_id,)).fetchall()
    for cert_id, blob, thumb in rows:
        try:
            if old_dmk is None:
                raise crypto.CryptoError("no old key")
            raw = crypto.unwrap_with_key(old_dmk, blob, aad=thumb)
        except crypto.CryptoError:
            if not force:
                raise SqlError(15329) from None
            conn.execute("UPDATE t_certificates SET private_key=NULL, pvt_key_encryption_type='NA' "
                         "WHERE database_id=? AND certificate_id=?", (database_id, cert_id))
            continue
        conn.execute("UPDATE t_certificates SET private_key=? WHERE database_id=? AND certificate_id=?",
                     (crypto.wrap_with_key(new_dmk, raw, aad=thumb), database_id, cert_id))
