"""MASTER KEY, CERTIFICATE and BACKUP CERTIFICATE.

docs: t-sql/statements/create-master-key-transact-sql.md, open-master-key-…,
alter-master-key-…, drop-master-key-…, create-certificate-transact-sql.md,
drop-certificate-…, backup-certificate-transact-sql.md.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from .. import crypto
from ..fs import FileExists, PathNotAllowed, ServerFileError
from . import keys, statements as st, store
from .context import HandlerContext
from .errors import SqlError, info
from .functions import dateadd
from .passwords import check_policy
from .results import Event
from .sqltypes import parse_datetime

SUBJECT_MAX = 128          # Windows; Linux enforces 64 (documented on CREATE CERTIFICATE)


def create_master_key(s: HandlerContext, stmt: st.CreateMasterKey, events: list[Event]) -> None:
    if stmt.password is None:
        # the password is optional only in Azure SQL Database / Synapse
        raise SqlError(102, "KEY", abort_batch=True)
    s.require_sysadmin()
    db = s.database_id
    with s.atomic(events) as conn:
        if keys.has_master_key(conn, db):
            raise SqlError(15578)
        check_policy(stmt.password)
        keys.create_master_key(conn, db, stmt.password)
    s.emit_done(events)


def open_master_key(s: HandlerContext, stmt: st.OpenMasterKey, events: list[Event]) -> None:
    db = s.database_id
    if not keys.has_master_key(s.conn, db):
        raise SqlError(15151, "find", "symmetric key", "master key")
    s.open_master_keys[db] = keys.open_master_key_with_password(s.conn, db, stmt.password)
    s.emit_done(events)


def close_master_key(s: HandlerContext, stmt: st.CloseMasterKey, events: list[Event]) -> None:
    s.open_master_keys.pop(s.database_id, None)
    s.emit_done(events)


def alter_master_key(s: HandlerContext, stmt: st.AlterMasterKey, events: list[Event]) -> None:
    s.require_sysadmin()
    db = s.database_id
    with s.atomic(events) as conn:
        if not keys.has_master_key(conn, db):
            raise SqlError(15151, "alter", "symmetric key", "master key")
        if stmt.action == "REGENERATE":
            check_policy(stmt.password)
            old = s.master_key(db)
            new = crypto.new_symmetric_key()
            keys.reencrypt_private_keys(conn, db, old, new, stmt.force)
            had_smk = conn.execute("SELECT 1 FROM t_key_encryptions WHERE database_id=? AND key_id=? "
                                   "AND crypt_type='ESKM'", (db, store.DMK_ID)).fetchone()
            conn.execute("DELETE FROM t_key_encryptions WHERE database_id=? AND key_id=?", (db, store.DMK_ID))
            keys.add_password_encryption(conn, db, new, stmt.password)
            if had_smk:
                keys.add_smk_encryption(conn, db, new)
            if db in s.open_master_keys:
                s.open_master_keys[db] = new
        else:
            dmk = s.master_key(db)
            if stmt.action == "ADD":
                if dmk is None:
                    raise SqlError(15581)
                if stmt.by_service_master_key:
                    keys.add_smk_encryption(conn, db, dmk)
                else:
                    check_policy(stmt.password)
                    keys.add_password_encryption(conn, db, dmk, stmt.password)
            else:
                _drop_encryption(conn, db, stmt)
        conn.execute("UPDATE t_symmetric_keys SET modify_date=? WHERE database_id=? AND symmetric_key_id=?",
                     (store.fmt_datetime(store.utcnow()), db, store.DMK_ID))
    s.emit_done(events)


def _drop_encryption(conn, db: int, stmt: st.AlterMasterKey) -> None:
    rows = conn.execute("SELECT rowid, crypt_type, crypt_property FROM t_key_encryptions WHERE "
                        "database_id=? AND key_id=?", (db, store.DMK_ID)).fetchall()
    if stmt.by_service_master_key:
        target = [r for r in rows if r[1] == "ESKM"]
    else:
        target = []
        for rowid, kind, blob in rows:
            if kind != "ESKP":
                continue
            try:
                crypto.unwrap_with_password(stmt.password, blob)
                target = [(rowid, kind, blob)]
                break
            except crypto.CryptoError:
                continue
    if not target:
        raise SqlError(15313)
    remaining_passwords = [r for r in rows if r[1] == "ESKP" and r[0] != target[0][0]]
    if not remaining_passwords:
        # the DMK must stay encrypted by at least one password
        raise SqlError(15313)
    conn.execute("DELETE FROM t_key_encryptions WHERE rowid=?", (target[0][0],))


def drop_master_key(s: HandlerContext, stmt: st.DropMasterKey, events: list[Event]) -> None:
    s.require_sysadmin()
    db = s.database_id
    with s.atomic(events) as conn:
        if not keys.has_master_key(conn, db):
            raise SqlError(15151, "drop", "master key", store.DMK_NAME)
        row = conn.execute("SELECT name FROM t_certificates WHERE database_id=? AND "
                           "pvt_key_encryption_type='MK' ORDER BY certificate_id", (db,)).fetchone()
        if row:
            raise SqlError(15580, "master key", "certificate", row[0])
        conn.execute("DELETE FROM t_key_encryptions WHERE database_id=? AND key_id=?", (db, store.DMK_ID))
        conn.execute("DELETE FROM t_symmetric_keys WHERE database_id=? AND symmetric_key_id=?",
                     (db, store.DMK_ID))
    s.open_master_keys.pop(db, None)
    s.emit_done(events)


# -- certificates -----------------------------------------------------------------------------
def _owner_id(s: HandlerContext, conn, db: int, owner: Optional[str]) -> int:
    if owner is None:
        if s.is_sysadmin():
            return 1  # dbo
        row = conn.execute("SELECT d.principal_id FROM t_database_principals d JOIN t_server_principals p "
                           "ON p.sid = d.sid WHERE d.database_id=? AND p.principal_id=?",
                           (db, s.login_id)).fetchone()
        return row[0] if row else 1
    row = conn.execute("SELECT principal_id, type FROM t_database_principals WHERE database_id=? AND name=?",
                       (db, owner)).fetchone()
    if row is None:
        raise SqlError(15151, "find", "user", owner)
    if row[1] in ("R", "G"):
        # "Groups and roles can't own certificates."
        raise SqlError(15151, "find", "user", owner)
    return row[0]


def _parse_date(text: Optional[str]) -> Optional[datetime]:
    return None if text is None else parse_datetime(text)


def _certificate_sid(thumbprint: bytes) -> tuple[bytes, str]:
    # INFERENCE: the certificate SID is S-1-9-1 followed by the thumbprint as five sub-authorities
    subs = [int.from_bytes(thumbprint[i:i + 4], "little") for i in range(0, 20, 4)]
    sid = bytes([1, 1 + len(subs)]) + (9).to_bytes(6, "big") + (1).to_bytes(4, "little") + \
        b"".join(x.to_bytes(4, "little") for x in subs)
    return sid, "S-1-9-1-" + "-".join(str(x) for x in subs)


def _read_file(s: HandlerContext, path: str) -> bytes:
    try:
        return s.instance.fs.read_bytes(path)
    except (ServerFileError, OSError):
        raise SqlError(15208) from None


def create_certificate(s: HandlerContext, stmt: st.CreateCertificate, events: list[Event]) -> None:
    s.require_sysadmin()
    db = s.database_id
    warnings = []
    key = None
    if stmt.source == "generate":
        if not stmt.subject or len(stmt.subject) > SUBJECT_MAX:
            raise SqlError(15212, SUBJECT_MAX)
        if stmt.encryption_password is not None:
            check_policy(stmt.encryption_password)
        start = _parse_date(stmt.start_date) or store.utcnow().replace(microsecond=0)
        expiry = _parse_date(stmt.expiry_date)
        if expiry is None:
            expiry = dateadd("year", 1, start)
        if stmt.encryption_password is None and s.master_key(db) is None:
            raise SqlError(15581)
        der, key = crypto.generate_certificate(stmt.subject, start, expiry)
    else:
        der = _read_file(s, stmt.file) if stmt.source == "file" else stmt.binary
        pk = stmt.private_key
        if pk is not None:
            pvk = _read_file(s, pk.file) if pk.file is not None else pk.binary
            if pk.encryption_password is not None and pk.file is not None:
                check_policy(pk.encryption_password)
            try:
                key = crypto.pvk_decode(pvk, pk.decryption_password)
            except crypto.BadPassword:
                raise SqlError(15465) from None
            except crypto.CryptoError:
                raise SqlError(15208) from None
    try:
        cert = crypto.certificate_info(der)
    except crypto.CryptoError:
        raise SqlError(15208) from None
    if key is not None and not crypto.private_key_matches(der, key):
        raise SqlError(15474, "certificate")
    now = store.utcnow()
    if cert.not_after < cert.not_before:
        warnings.append(15213)
    elif cert.not_after < now:
        warnings.append(15214)
    elif cert.not_before > now:
        warnings.append(15215)
    with s.atomic(events) as conn:
        dup = conn.execute("SELECT 1 FROM t_certificates WHERE database_id=? AND (name=? OR thumbprint=?)",
                           (db, stmt.name, cert.thumbprint)).fetchone()
        if dup:
            raise SqlError(15232, stmt.name)
        owner = _owner_id(s, conn, db, stmt.owner)
        blob, kind = None, "NA"
        if key is not None:
            password = stmt.encryption_password if stmt.source == "generate" else \
                (stmt.private_key.encryption_password if stmt.private_key else None)
            blob, kind = keys.protect_private_key(s, db, key, password, cert.thumbprint)
        next_id = conn.execute("SELECT MAX(certificate_id) FROM t_certificates WHERE database_id=?",
                               (db,)).fetchone()[0]
        cert_id = max(next_id + 1 if next_id else 0, store.FIRST_CERTIFICATE_ID)
        sid, string_sid = _certificate_sid(cert.thumbprint)
        conn.execute(
            "INSERT INTO t_certificates (database_id, certificate_id, name, principal_id, "
            "pvt_key_encryption_type, is_active_for_begin_dialog, issuer_name, cert_serial_number, sid, "
            "string_sid, subject, expiry_date, start_date, thumbprint, pvt_key_last_backup_date, key_length, "
            "der, private_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            (db, cert_id, stmt.name, owner, kind, int(stmt.active_for_begin_dialog), cert.issuer_name,
             cert.serial_text, sid, string_sid, cert.subject, store.fmt_datetime(cert.not_after),
             store.fmt_datetime(cert.not_before), cert.thumbprint, cert.key_length, der, blob))
    for number in warnings:
        events.append(info(number, line=stmt.line))
    s.emit_done(events)


def drop_certificate(s: HandlerContext, stmt: st.DropCertificate, events: list[Event]) -> None:
    s.require_sysadmin()
    db = s.database_id
    with s.atomic(events) as conn:
        row = conn.execute("SELECT certificate_id, sid FROM t_certificates WHERE database_id=? AND name=?",
                           (db, stmt.name)).fetchone()
        if row is None:
            raise SqlError(15151, "drop", "certificate", stmt.name)
        cert_id, sid = row
        used = db == store.MASTER and conn.execute(
            "SELECT 1 FROM t_endpoints WHERE certificate_id=? AND type=4", (cert_id,)).fetchone()
        mapped = conn.execute("SELECT 1 FROM t_server_principals WHERE sid=?", (sid,)).fetchone() or \
            conn.execute("SELECT 1 FROM t_database_principals WHERE sid=?", (sid,)).fetchone()
        if used or mapped:
            raise SqlError(15352, "certificate", "certificate")
        conn.execute("DELETE FROM t_certificates WHERE database_id=? AND certificate_id=?", (db, cert_id))
    s.emit_done(events)


def backup_certificate(s: HandlerContext, stmt: st.BackupCertificate, events: list[Event]) -> None:
    s.require_sysadmin()
    db = s.database_id
    rows = s.query("SELECT certificate_id, der, pvt_key_encryption_type FROM t_certificates "
                   "WHERE database_id=? AND name=?", (db, stmt.name))
    if not rows:
        raise SqlError(15151, "find", "certificate", stmt.name)
    cert_id, der, kind = rows[0]
    fs = s.instance.fs
    pvk = None
    pk = stmt.private_key
    if pk is not None:
        if pk.encryption_password is None:
            raise SqlError(102, ")", abort_batch=True)
        if kind == "NA":
            raise SqlError(15246, stmt.name)
        check_policy(pk.encryption_password)
        key = keys.certificate_private_key(s, db, cert_id, pk.decryption_password)
        pvk = crypto.pvk_encode(key, pk.encryption_password)
        _refuse_existing(fs, pk.file)
    _refuse_existing(fs, stmt.file)
    _write(fs, stmt.file, der)
    if pvk is not None:
        _write(fs, pk.file, pvk)
        with s.atomic(events) as conn:
            conn.execute("UPDATE t_certificates SET pvt_key_last_backup_date=? WHERE database_id=? AND "
                         "certificate_id=?", (store.fmt_datetime(store.utcnow()), db, cert_id))
    s.emit_done(events)


def _refuse_existing(fs, path: str) -> None:
    try:
        if fs.exists(path):
            raise SqlError(15240, path)
    except PathNotAllowed:
        raise SqlError(15240, path) from None


def _write(fs, path: str, data: bytes) -> None:
    try:
        fs.write_new(path, data)
    except (FileExists, ServerFileError, OSError):
        raise SqlError(15240, path) from None


HANDLERS = {
    st.CreateMasterKey: create_master_key, st.OpenMasterKey: open_master_key,
    st.CloseMasterKey: close_master_key, st.AlterMasterKey: alter_master_key,
    st.DropMasterKey: drop_master_key, st.CreateCertificate: create_certificate,
    st.DropCertificate: drop_certificate, st.BackupCertificate: backup_certificate,
}
