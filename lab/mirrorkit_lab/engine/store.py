"""Durable state of one lab instance: a SQLite file in WAL mode.

Every session has its own SQLite connection, so a user transaction is a real
SQLite transaction (readers are not blocked, a second writer waits as it would
on a lock), and a killed process never leaves a torn write behind.
"""
from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

SCHEMA_VERSION = 1

MASTER, TEMPDB, MODEL, MSDB = 1, 2, 3, 4
SYSTEM_DATABASES = [(MASTER, "master"), (TEMPDB, "tempdb"), (MODEL, "model"), (MSDB, "msdb")]

SA_ID, PUBLIC_ROLE_ID, SYSADMIN_ID = 1, 2, 3
FIXED_SERVER_ROLES = [(3, "sysadmin"), (4, "securityadmin"), (5, "serveradmin"), (6, "setupadmin"),
                      (7, "processadmin"), (8, "diskadmin"), (9, "dbcreator"), (10, "bulkadmin")]
FIRST_LOGIN_ID = 256
FIRST_USER_ENDPOINT_ID = 65536
FIRST_CERTIFICATE_ID = 256
DMK_ID = 101
DMK_NAME = "##MS_DatabaseMasterKey##"

# principal_id, name, type, sid
FIXED_DATABASE_PRINCIPALS = [
    (0, "public", "R", None), (1, "dbo", "S", b"\x01"), (2, "guest", "S", b"\x00"),
    (3, "INFORMATION_SCHEMA", "S", None), (4, "sys", "S", None),
    (16384, "db_owner", "R", None), (16385, "db_accessadmin", "R", None),
    (16386, "db_securityadmin", "R", None), (16387, "db_ddladmin", "R", None),
    (16389, "db_backupoperator", "R", None), (16390, "db_datareader", "R", None),
    (16391, "db_datawriter", "R", None), (16392, "db_denydatareader", "R", None),
    (16393, "db_denydatawriter", "R", None),
]

# endpoint_id, name, protocol, type, is_admin  (the built-in TSQL endpoints)
SYSTEM_ENDPOINTS = [
    (1, "Dedicated Admin Connection", 2, 2, 1), (2, "TSQL Local Machine", 4, 2, 0),
    (3, "TSQL Named Pipes", 3, 2, 0), (4, "TSQL Default TCP", 2, 2, 0),
    (5, "TSQL Default VIA", 5, 2, 0),
]

_DDL = """
CREATE TABLE t_meta (name TEXT PRIMARY KEY, value BLOB);
CREATE TABLE t_server_principals (
    principal_id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE, sid BLOB UNIQUE,
    type TEXT NOT NULL, is_disabled INTEGER NOT NULL DEFAULT 0, create_date TEXT, modify_date TEXT,
    default_database_name TEXT, default_language_name TEXT, credential_id INTEGER,
    owning_principal_id INTEGER, is_fixed_role INTEGER NOT NULL DEFAULT 0,
    password_hash BLOB, is_policy_checked INTEGER, is_expiration_checked INTEGER);
CREATE TABLE t_server_role_members (role_principal_id INTEGER, member_principal_id INTEGER,
    PRIMARY KEY (role_principal_id, member_principal_id));
CREATE TABLE t_endpoints (
    endpoint_id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE,
    principal_id INTEGER, protocol INTEGER, type INTEGER, state INTEGER,
    is_admin_endpoint INTEGER NOT NULL DEFAULT 0, port INTEGER, is_dynamic_port INTEGER,
    ip_address TEXT, role INTEGER, is_encryption_enabled INTEGER, connection_auth INTEGER,
    certificate_id INTEGER, encryption_algorithm INTEGER);
CREATE TABLE t_server_permissions (
    class INTEGER, major_id INTEGER, minor_id INTEGER, grantee_principal_id INTEGER,
    grantor_principal_id INTEGER, type TEXT, permission_name TEXT, state TEXT,
    PRIMARY KEY (class, major_id, minor_id, grantee_principal_id, type));
CREATE TABLE t_databases (database_id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE,
    owner_sid BLOB, create_date TEXT, compatibility_level INTEGER, recovery_model INTEGER,
    is_trustworthy_on INTEGER NOT NULL DEFAULT 0);
CREATE TABLE t_database_principals (
    database_id INTEGER, principal_id INTEGER, name TEXT NOT NULL COLLATE NOCASE, type TEXT,
    default_schema_name TEXT, create_date TEXT, modify_date TEXT, owning_principal_id INTEGER,
    sid BLOB, is_fixed_role INTEGER NOT NULL DEFAULT 0, authentication_type INTEGER,
    PRIMARY KEY (database_id, principal_id), UNIQUE (database_id, name));
CREATE TABLE t_certificates (
    database_id INTEGER, certificate_id INTEGER, name TEXT NOT NULL COLLATE NOCASE,
    principal_id INTEGER, pvt_key_encryption_type TEXT, is_active_for_begin_dialog INTEGER,
    issuer_name TEXT, cert_serial_number TEXT, sid BLOB, string_sid TEXT, subject TEXT,
    expiry_date TEXT, start_date TEXT, thumbprint BLOB, pvt_key_last_backup_date TEXT,
    key_length INTEGER, der BLOB NOT NULL, private_key BLOB,
    PRIMARY KEY (database_id, certificate_id), UNIQUE (database_id, name),
    UNIQUE (database_id, thumbprint));
CREATE TABLE t_symmetric_keys (
    database_id INTEGER, symmetric_key_id INTEGER, name TEXT NOT NULL COLLATE NOCASE,
    principal_id INTEGER, key_length INTEGER, key_algorithm TEXT, algorithm_desc TEXT,
    create_date TEXT, modify_date TEXT, key_guid TEXT,
    PRIMARY KEY (database_id, symmetric_key_id));
CREATE TABLE t_key_encryptions (
    database_id INTEGER, key_id INTEGER, thumbprint BLOB, crypt_type TEXT, crypt_type_desc TEXT,
    crypt_property BLOB);
"""


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def fmt_datetime(d: datetime) -> str:
    """The lab's storage form of datetime values: sortable text, millisecond precision."""
    return d.strftime("%Y-%m-%d %H:%M:%S.") + f"{d.microsecond // 1000:03d}"


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


def initialise(path: Path, sa_sid: bytes = b"\x01") -> bool:
    """Create the schema and the built-in principals once; return True when created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        have = conn.execute("SELECT 1 FROM sqlite_master WHERE name='t_meta'").fetchone()
        if have:
            conn.execute("COMMIT")
            return False
        for ddl in _DDL.split(";"):
            if ddl.strip():
                conn.execute(ddl)
        _seed(conn, sa_sid)
        conn.execute("COMMIT")
        return True
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _seed(conn: sqlite3.Connection, sa_sid: bytes) -> None:
    now = fmt_datetime(utcnow())
    conn.execute("INSERT INTO t_meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    conn.execute("INSERT INTO t_meta VALUES ('service_master_key', ?)", (os.urandom(32),))
    conn.execute(
        "INSERT INTO t_server_principals (principal_id, name, sid, type, create_date, modify_date,"
        " default_database_name, default_language_name, is_policy_checked, is_expiration_checked)"
        " VALUES (?, 'sa', ?, 'S', ?, ?, 'master', 'us_english', 0, 0)", (SA_ID, sa_sid, now, now))
    conn.execute(
        "INSERT INTO t_server_principals (principal_id, name, sid, type, create_date, modify_date,"
        " is_fixed_role) VALUES (?, 'public', ?, 'R', ?, ?, 0)", (PUBLIC_ROLE_ID, b"\x02", now, now))
    for pid, role in FIXED_SERVER_ROLES:
        conn.execute(
            "INSERT INTO t_server_principals (principal_id, name, sid, type, create_date, modify_date,"
            " is_fixed_role, owning_principal_id) VALUES (?, ?, ?, 'R', ?, ?, 1, ?)",
            (pid, role, bytes([pid]), now, now, SA_ID))
    conn.execute("INSERT INTO t_server_role_members VALUES (?, ?)", (SYSADMIN_ID, SA_ID))
    conn.execute("INSERT INTO t_server_permissions VALUES (100, 0, 0, ?, ?, 'COSQ', 'CONNECT SQL', 'G')",
                 (SA_ID, SA_ID))
    for eid, name, protocol, etype, is_admin in SYSTEM_ENDPOINTS:
        port = 1434 if eid == 1 else (1433 if eid == 4 else None)
        conn.execute(
            "INSERT INTO t_endpoints (endpoint_id, name, principal_id, protocol, type, state,"
            " is_admin_endpoint, port, is_dynamic_port) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
            (eid, name, SA_ID, protocol, etype, is_admin, port, 0 if port else None))
        if eid != 1:
            conn.execute("INSERT INTO t_server_permissions VALUES (105, ?, 0, ?, ?, 'CO', 'CONNECT', 'G')",
                         (eid, PUBLIC_ROLE_ID, SA_ID))
    for dbid, name in SYSTEM_DATABASES:
        conn.execute("INSERT INTO t_databases VALUES (?, ?, ?, ?, 150, ?, ?)",
                     (dbid, name, sa_sid, now, 3 if dbid == TEMPDB else 1, 1 if dbid == MSDB else 0))
        for pid, pname, ptype, sid in FIXED_DATABASE_PRINCIPALS:
            fixed = 1 if pid >= 16384 else 0
            auth = 1 if pid == 1 else 0
            schema = "dbo" if pid in (1, 2) else None
            conn.execute(
                "INSERT INTO t_database_principals (database_id, principal_id, name, type,"
                " default_schema_name, create_date, modify_date, owning_principal_id, sid,"
                " is_fixed_role, authentication_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (dbid, pid, pname, ptype, schema, now, now, 1 if ptype == "R" and pid else None,
                 sid, fixed, auth))
