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

SCHEMA_VERSION = 3

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

# where SQL Server keeps database files unless told otherwise (a default instance's DATA folder)
DATA_DIR = "C:\\Program Files\\Microsoft SQL Server\\MSSQL15.MSSQLSERVER\\MSSQL\\DATA\\"
SYSTEM_FILES = {
    "master": (("master", "master.mdf"), ("mastlog", "mastlog.ldf")),
    "tempdb": (("tempdev", "tempdb.mdf"), ("templog", "templog.ldf")),
    "model": (("modeldev", "model.mdf"), ("modellog", "modellog.ldf")),
    "msdb": (("MSDBData", "MSDBData.mdf"), ("MSDBLog", "MSDBLog.ldf")),
}

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


# v2: user databases (state, files, log position), user tables and the transaction log
_DDL_V2 = """
ALTER TABLE t_databases ADD COLUMN state INTEGER NOT NULL DEFAULT 0;
ALTER TABLE t_databases ADD COLUMN user_access INTEGER NOT NULL DEFAULT 0;
ALTER TABLE t_databases ADD COLUMN is_read_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE t_databases ADD COLUMN family_guid TEXT;
ALTER TABLE t_databases ADD COLUMN recovery_fork_guid TEXT;
ALTER TABLE t_databases ADD COLUMN end_lsn INTEGER;
ALTER TABLE t_databases ADD COLUMN last_log_backup_lsn INTEGER;
ALTER TABLE t_databases ADD COLUMN database_backup_lsn INTEGER;
ALTER TABLE t_databases ADD COLUMN next_object_id INTEGER;
CREATE TABLE t_database_files (database_id INTEGER, file_id INTEGER, type INTEGER, name TEXT COLLATE NOCASE,
    physical_name TEXT, size_pages INTEGER, PRIMARY KEY (database_id, file_id));
CREATE TABLE t_tables (database_id INTEGER, object_id INTEGER, schema_name TEXT COLLATE NOCASE,
    name TEXT COLLATE NOCASE, create_date TEXT, modify_date TEXT, identity_value INTEGER,
    PRIMARY KEY (database_id, object_id), UNIQUE (database_id, schema_name, name));
CREATE TABLE t_columns (database_id INTEGER, object_id INTEGER, column_id INTEGER, name TEXT COLLATE NOCASE,
    type TEXT, is_nullable INTEGER, is_identity INTEGER, seed INTEGER, increment INTEGER, default_text TEXT,
    PRIMARY KEY (database_id, object_id, column_id));
CREATE TABLE t_constraints (database_id INTEGER, object_id INTEGER, name TEXT COLLATE NOCASE, type TEXT,
    columns TEXT, PRIMARY KEY (database_id, name));
CREATE TABLE t_database_mirroring (database_id INTEGER PRIMARY KEY, mirroring_guid TEXT, role INTEGER,
    role_sequence INTEGER, safety INTEGER, safety_sequence INTEGER, partner_name TEXT, partner_instance TEXT,
    witness_name TEXT, timeout INTEGER, redo_queue INTEGER, failover_lsn INTEGER, suspended INTEGER,
    suspended_sequence INTEGER);
CREATE TABLE t_mirroring_witness (mirroring_guid TEXT PRIMARY KEY, database_name TEXT, principal_server_name TEXT,
    mirror_server_name TEXT, safety_level INTEGER, safety_sequence INTEGER, role_sequence INTEGER, family_guid TEXT,
    is_suspended INTEGER, is_suspended_sequence INTEGER, partner_sync_state INTEGER);
CREATE TABLE t_log (database_id INTEGER, lsn INTEGER, txn INTEGER, op TEXT, object_id INTEGER, rid INTEGER,
    before TEXT, after TEXT, PRIMARY KEY (database_id, lsn)) WITHOUT ROWID;
"""

# v3: backup and restore history (msdb.dbo.backupset, backupmediaset, backupmediafamily, restorehistory)
_DDL_V3 = """
CREATE TABLE t_backupmediaset (media_set_id INTEGER PRIMARY KEY, media_uuid TEXT UNIQUE, media_family_count INTEGER,
    name TEXT, description TEXT, is_compressed INTEGER);
CREATE TABLE t_backupmediafamily (media_set_id INTEGER, family_sequence_number INTEGER, media_family_id TEXT,
    physical_device_name TEXT, PRIMARY KEY (media_set_id, family_sequence_number));
CREATE TABLE t_backupset (backup_set_id INTEGER PRIMARY KEY, backup_set_uuid TEXT, media_set_id INTEGER,
    position INTEGER, name TEXT, description TEXT, user_name TEXT, server_name TEXT, machine_name TEXT,
    database_name TEXT, database_creation_date TEXT, type TEXT, backup_start_date TEXT, backup_finish_date TEXT,
    first_lsn INTEGER, last_lsn INTEGER, checkpoint_lsn INTEGER, database_backup_lsn INTEGER,
    is_copy_only INTEGER, recovery_model TEXT, family_guid TEXT, recovery_fork_guid TEXT, backup_size INTEGER,
    compressed_backup_size INTEGER, has_backup_checksums INTEGER, compatibility_level INTEGER,
    begins_log_chain INTEGER, is_force_offline INTEGER, is_readonly INTEGER);
CREATE TABLE t_restorehistory (restore_history_id INTEGER PRIMARY KEY, restore_date TEXT,
    destination_database_name TEXT, user_name TEXT, backup_set_id INTEGER, restore_type TEXT,
    replace INTEGER, recovery INTEGER, device_count INTEGER);
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
        created = not have
        if created:
            _run(conn, _DDL)
            _seed(conn, sa_sid)
        version = int(conn.execute("SELECT value FROM t_meta WHERE name='schema_version'").fetchone()[0])
        if version < 2:
            _run(conn, _DDL_V2)
            _seed_v2(conn)
        if version < 3:
            _run(conn, _DDL_V3)
        conn.execute("UPDATE t_meta SET value=? WHERE name='schema_version'", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
        return created
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _run(conn: sqlite3.Connection, script: str) -> None:
    for ddl in script.split(";"):
        if ddl.strip():
            conn.execute(ddl)


def initial_lsn(database_id: int) -> int:
    """Where a new database's log starts: SQL Server-shaped (<vlf><block:10><slot:5>), fixed per id."""
    return ((20 + database_id % 37) * 10**10 + 16 * (database_id + 1)) * 10**5 + 1


def new_guid() -> str:
    import uuid
    return str(uuid.uuid4()).upper()


def _seed_v2(conn: sqlite3.Connection) -> None:
    """Log position, identity and files of the databases an older file already holds."""
    for (dbid, name) in conn.execute("SELECT database_id, name FROM t_databases").fetchall():
        conn.execute("UPDATE t_databases SET family_guid=?, recovery_fork_guid=?, end_lsn=?, "
                     "next_object_id=? WHERE database_id=?",
                     (new_guid(), new_guid(), initial_lsn(dbid), 901578250, dbid))
        files = SYSTEM_FILES.get(name.lower(), ((name, name + ".mdf"), (name + "_log", name + "_log.ldf")))
        for file_id, (logical, physical) in enumerate(files, start=1):
            conn.execute("INSERT INTO t_database_files VALUES (?, ?, ?, ?, ?, ?)",
                         (dbid, file_id, file_id - 1, logical, DATA_DIR + physical, 1024 if file_id == 1 else 512))


def _seed(conn: sqlite3.Connection, sa_sid: bytes) -> None:
    now = fmt_datetime(utcnow())
    conn.execute("INSERT INTO t_meta VALUES ('schema_version', 1)")   # upgraded below
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
        conn.execute("INSERT INTO t_databases (database_id, name, owner_sid, create_date, compatibility_level, "
                     "recovery_model, is_trustworthy_on) VALUES (?, ?, ?, ?, 150, ?, ?)",
                     (dbid, name, sa_sid, now, 3 if dbid == TEMPDB else 1, 1 if dbid == MSDB else 0))
        seed_database_principals(conn, dbid, now, b"\x01")


def seed_database_principals(conn: sqlite3.Connection, dbid: int, now: str, owner_sid: bytes) -> None:
    """The fixed users and roles every database has; dbo maps to the owner's login."""
    for pid, pname, ptype, sid in FIXED_DATABASE_PRINCIPALS:
        fixed = 1 if pid >= 16384 else 0
        auth = 1 if pid == 1 else 0
        schema = "dbo" if pid in (1, 2) else None
        conn.execute(
            "INSERT INTO t_database_principals (database_id, principal_id, name, type,"
            " default_schema_name, create_date, modify_date, owning_principal_id, sid,"
            " is_fixed_role, authentication_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dbid, pid, pname, ptype, schema, now, now, 1 if ptype == "R" and pid else None,
             owner_sid if pid == 1 else sid, fixed, auth))
