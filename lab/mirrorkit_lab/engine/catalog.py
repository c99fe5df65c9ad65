"""Catalog views as data: documented columns with their types, and the SQLite
query that produces them from the base tables in store.py.

Database-scoped views expose a hidden `_db` column; select.py narrows them to
the database the query names (or the session's current database). Live views
(sys.dm_*) are filled into per-session temp tables right before a query reads them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    name: str                      # without the sys. prefix, lower case
    scope: str                     # server | database | live | msdb (msdb.dbo.*, server-wide rows)
    columns: tuple[tuple[str, str], ...]
    body: str = ""                 # SQLite SELECT (server/database scope)

    @property
    def column_types(self) -> dict[str, str]:
        return {c.lower(): t for c, t in self.columns}


def _case(col: str, mapping: dict) -> str:
    whens = " ".join(f"WHEN {k!r} THEN {v!r}" if isinstance(k, str) else f"WHEN {k} THEN {v!r}"
                     for k, v in mapping.items())
    return f"CASE {col} {whens} END"


PROTOCOL_DESC = {1: "HTTP", 2: "TCP", 3: "NAMED_PIPES", 4: "SHARED_MEMORY", 5: "VIA"}
ENDPOINT_TYPE_DESC = {1: "SOAP", 2: "TSQL", 3: "SERVICE_BROKER", 4: "DATABASE_MIRRORING"}
STATE_DESC = {0: "STARTED", 1: "STOPPED", 2: "DISABLED"}
ROLE_DESC = {0: "NONE", 1: "PARTNER", 2: "WITNESS", 3: "ALL"}
CONNECTION_AUTH_DESC = {
    1: "NTLM", 2: "KERBEROS", 3: "NEGOTIATE", 4: "CERTIFICATE", 5: "NTLM, CERTIFICATE",
    6: "KERBEROS, CERTIFICATE", 7: "NEGOTIATE, CERTIFICATE", 8: "CERTIFICATE, NTLM",
    9: "CERTIFICATE, KERBEROS", 10: "CERTIFICATE, NEGOTIATE"}
ENCRYPTION_ALGORITHM_DESC = {
    0: "NONE", 1: "RC4", 2: "AES", 3: "NONE, RC4", 4: "NONE, AES", 5: "RC4, AES", 6: "AES, RC4",
    7: "NONE, RC4, AES", 8: "NONE, AES, RC4"}
SERVER_PRINCIPAL_TYPE_DESC = {
    "S": "SQL_LOGIN", "U": "WINDOWS_LOGIN", "G": "WINDOWS_GROUP", "R": "SERVER_ROLE",
    "C": "CERTIFICATE_MAPPED_LOGIN", "K": "ASYMMETRIC_KEY_MAPPED_LOGIN"}
DATABASE_PRINCIPAL_TYPE_DESC = {
    "A": "APPLICATION_ROLE", "C": "CERTIFICATE_MAPPED_USER", "E": "EXTERNAL_USER",
    "G": "WINDOWS_GROUP", "K": "ASYMMETRIC_KEY_MAPPED_USER", "R": "DATABASE_ROLE",
    "S": "SQL_USER", "U": "WINDOWS_USER", "X": "EXTERNAL_GROUPS"}
AUTHENTICATION_TYPE_DESC = {0: "NONE", 1: "INSTANCE", 2: "DATABASE", 3: "WINDOWS"}
PVT_KEY_DESC = {"NA": "NO_PRIVATE_KEY", "MK": "ENCRYPTED_BY_MASTER_KEY", "PW": "ENCRYPTED_BY_PASSWORD",
                "SK": "ENCRYPTED_BY_SERVICE_MASTER_KEY"}
PERMISSION_STATE_DESC = {"D": "DENY", "R": "REVOKE", "G": "GRANT", "W": "GRANT_WITH_GRANT_OPTION"}
PERMISSION_CLASS_DESC = {100: "SERVER", 101: "SERVER_PRINCIPAL", 105: "ENDPOINT"}
DATABASE_STATE_DESC = {0: "ONLINE", 1: "RESTORING", 2: "RECOVERING", 3: "RECOVERY_PENDING",
                       4: "SUSPECT", 5: "EMERGENCY", 6: "OFFLINE"}
RECOVERY_MODEL_DESC = {1: "FULL", 2: "BULK_LOGGED", 3: "SIMPLE"}
# sys.database_mirroring, spec §1.4: the docs list the descriptions without codes; 5 and 6 follow the codes' texts
MIRRORING_ROLE_DESC = {1: "PRINCIPAL", 2: "MIRROR"}
MIRRORING_STATE_DESC = {0: "SUSPENDED", 1: "DISCONNECTED", 2: "SYNCHRONIZING", 3: "PENDING_FAILOVER",
                        4: "SYNCHRONIZED", 5: "UNSYNCHRONIZED", 6: "SYNCHRONIZED"}

_ENDPOINT_COLUMNS = (
    ("name", "sysname"), ("endpoint_id", "int"), ("principal_id", "int"), ("protocol", "tinyint"),
    ("protocol_desc", "nvarchar(60)"), ("type", "tinyint"), ("type_desc", "nvarchar(60)"),
    ("state", "tinyint"), ("state_desc", "nvarchar(60)"), ("is_admin_endpoint", "bit"))
_ENDPOINT_SELECT = (
    "e.name, e.endpoint_id, e.principal_id, e.protocol, "
    f"{_case('e.protocol', PROTOCOL_DESC)} AS protocol_desc, e.type, "
    f"{_case('e.type', ENDPOINT_TYPE_DESC)} AS type_desc, e.state, "
    f"{_case('e.state', STATE_DESC)} AS state_desc, e.is_admin_endpoint")

_SERVER_PRINCIPAL_COLUMNS = (
    ("name", "sysname"), ("principal_id", "int"), ("sid", "varbinary(85)"), ("type", "char(1)"),
    ("type_desc", "nvarchar(60)"), ("is_disabled", "int"), ("create_date", "datetime"),
    ("modify_date", "datetime"), ("default_database_name", "sysname"),
    ("default_language_name", "sysname"), ("credential_id", "int"),
    ("owning_principal_id", "int"), ("is_fixed_role", "bit"))
_SERVER_PRINCIPAL_SELECT = (
    "p.name, p.principal_id, p.sid, p.type, "
    f"{_case('p.type', SERVER_PRINCIPAL_TYPE_DESC)} AS type_desc, p.is_disabled, p.create_date, "
    "p.modify_date, p.default_database_name, p.default_language_name, p.credential_id, "
    "p.owning_principal_id, p.is_fixed_role")

VIEWS: dict[str, View] = {}


def _add(view: View) -> None:
    VIEWS[view.name] = view


_add(View("endpoints", "server", _ENDPOINT_COLUMNS, f"SELECT {_ENDPOINT_SELECT} FROM t_endpoints e"))
_add(View("tcp_endpoints", "server",
          _ENDPOINT_COLUMNS + (("port", "int"), ("is_dynamic_port", "bit"), ("ip_address", "nvarchar(45)")),
          f"SELECT {_ENDPOINT_SELECT}, e.port, e.is_dynamic_port, e.ip_address "
          "FROM t_endpoints e WHERE e.protocol = 2"))
_add(View("database_mirroring_endpoints", "server",
          _ENDPOINT_COLUMNS + (
              ("role", "tinyint"), ("role_desc", "nvarchar(60)"), ("is_encryption_enabled", "bit"),
              ("connection_auth", "tinyint"), ("connection_auth_desc", "nvarchar(60)"),
              ("certificate_id", "int"), ("encryption_algorithm", "tinyint"),
              ("encryption_algorithm_desc", "nvarchar(60)")),
          f"SELECT {_ENDPOINT_SELECT}, e.role, {_case('e.role', ROLE_DESC)} AS role_desc, "
          "e.is_encryption_enabled, e.connection_auth, "
          f"{_case('e.connection_auth', CONNECTION_AUTH_DESC)} AS connection_auth_desc, "
          "e.certificate_id, e.encryption_algorithm, "
          f"{_case('e.encryption_algorithm', ENCRYPTION_ALGORITHM_DESC)} AS encryption_algorithm_desc "
          "FROM t_endpoints e WHERE e.type = 4"))
_add(View("server_principals", "server", _SERVER_PRINCIPAL_COLUMNS,
          f"SELECT {_SERVER_PRINCIPAL_SELECT} FROM t_server_principals p"))
_add(View("sql_logins", "server",
          _SERVER_PRINCIPAL_COLUMNS + (("is_policy_checked", "bit"), ("is_expiration_checked", "bit"),
                                       ("password_hash", "varbinary(256)")),
          f"SELECT {_SERVER_PRINCIPAL_SELECT}, p.is_policy_checked, p.is_expiration_checked, "
          "p.password_hash FROM t_server_principals p WHERE p.type = 'S'"))
_add(View("server_role_members", "server",
          (("role_principal_id", "int"), ("member_principal_id", "int")),
          "SELECT role_principal_id, member_principal_id FROM t_server_role_members"))
_add(View("server_permissions", "server",
          (("class", "tinyint"), ("class_desc", "nvarchar(60)"), ("major_id", "int"),
           ("minor_id", "int"), ("grantee_principal_id", "int"), ("grantor_principal_id", "int"),
           ("type", "char(4)"), ("permission_name", "nvarchar(128)"), ("state", "char(1)"),
           ("state_desc", "nvarchar(60)")),
          f"SELECT class, {_case('class', PERMISSION_CLASS_DESC)} AS class_desc, major_id, minor_id, "
          "grantee_principal_id, grantor_principal_id, substr(type || '    ', 1, 4) AS type, "
          f"permission_name, state, {_case('state', PERMISSION_STATE_DESC)} AS state_desc "
          "FROM t_server_permissions"))
USER_ACCESS_DESC = {0: "MULTI_USER", 1: "SINGLE_USER", 2: "RESTRICTED_USER"}
_add(View("databases", "server",
          (("name", "sysname"), ("database_id", "int"), ("source_database_id", "int"),
           ("owner_sid", "varbinary(85)"), ("create_date", "datetime"),
           ("compatibility_level", "tinyint"), ("collation_name", "sysname"),
           ("user_access", "tinyint"), ("user_access_desc", "nvarchar(60)"),
           ("is_read_only", "bit"), ("is_auto_close_on", "bit"), ("is_auto_shrink_on", "bit"),
           ("state", "tinyint"), ("state_desc", "nvarchar(60)"), ("is_in_standby", "bit"),
           ("snapshot_isolation_state", "tinyint"), ("is_read_committed_snapshot_on", "bit"),
           ("recovery_model", "tinyint"), ("recovery_model_desc", "nvarchar(60)"),
           ("page_verify_option", "tinyint"), ("page_verify_option_desc", "nvarchar(60)"),
           ("is_trustworthy_on", "bit"), ("is_master_key_encrypted_by_server", "bit"),
           ("is_encrypted", "bit"), ("log_reuse_wait", "tinyint"), ("log_reuse_wait_desc", "nvarchar(60)"),
           ("containment", "tinyint"), ("containment_desc", "nvarchar(60)"),
           ("group_database_id", "uniqueidentifier"), ("replica_id", "uniqueidentifier")),
          "SELECT d.name, d.database_id, NULL AS source_database_id, d.owner_sid, d.create_date, "
          "d.compatibility_level, 'SQL_Latin1_General_CP1_CI_AS' AS collation_name, d.user_access, "
          f"{_case('d.user_access', USER_ACCESS_DESC)} AS user_access_desc, d.is_read_only, "
          "0 AS is_auto_close_on, 0 AS is_auto_shrink_on, d.state, "
          f"{_case('d.state', DATABASE_STATE_DESC)} AS state_desc, 0 AS is_in_standby, "
          "0 AS snapshot_isolation_state, 0 AS is_read_committed_snapshot_on, "
          f"d.recovery_model, {_case('d.recovery_model', RECOVERY_MODEL_DESC)} AS recovery_model_desc, "
          "2 AS page_verify_option, 'CHECKSUM' AS page_verify_option_desc, "
          "d.is_trustworthy_on, EXISTS (SELECT 1 FROM t_key_encryptions k WHERE k.database_id = "
          "d.database_id AND k.crypt_type = 'ESKM') AS is_master_key_encrypted_by_server, 0 AS is_encrypted, "
          "CASE WHEN EXISTS (SELECT 1 FROM t_database_mirroring m WHERE m.database_id = d.database_id) "
          "THEN 6 WHEN d.recovery_model <> 3 AND d.database_backup_lsn IS NOT NULL "
          "AND EXISTS (SELECT 1 FROM t_log l WHERE l.database_id = d.database_id) THEN 2 ELSE 0 END "
          "AS log_reuse_wait, "
          "CASE WHEN EXISTS (SELECT 1 FROM t_database_mirroring m WHERE m.database_id = d.database_id) "
          "THEN 'DATABASE_MIRRORING' WHEN d.recovery_model <> 3 AND d.database_backup_lsn IS NOT NULL "
          "AND EXISTS (SELECT 1 FROM t_log l WHERE l.database_id = d.database_id) THEN 'LOG_BACKUP' "
          "ELSE 'NOTHING' END AS log_reuse_wait_desc, 0 AS containment, 'NONE' AS containment_desc, "
          "NULL AS group_database_id, NULL AS replica_id FROM t_databases d"))
FILE_TYPE_DESC = {0: "ROWS", 1: "LOG"}
_FILE_COLUMNS = (("file_id", "int"), ("file_guid", "uniqueidentifier"), ("type", "tinyint"),
                 ("type_desc", "nvarchar(60)"), ("data_space_id", "int"), ("name", "sysname"),
                 ("physical_name", "nvarchar(260)"), ("state", "tinyint"), ("state_desc", "nvarchar(60)"),
                 ("size", "int"), ("max_size", "int"), ("growth", "int"), ("is_read_only", "bit"))
_FILE_SELECT = ("f.file_id, NULL AS file_guid, f.type, " + _case("f.type", FILE_TYPE_DESC) + " AS type_desc, "
                "CASE f.type WHEN 0 THEN 1 ELSE 0 END AS data_space_id, f.name, f.physical_name, "
                "CASE d.state WHEN 1 THEN 1 WHEN 6 THEN 6 ELSE 0 END AS state, "
                "CASE d.state WHEN 1 THEN 'RESTORING' WHEN 6 THEN 'OFFLINE' ELSE 'ONLINE' END AS state_desc, "
                "f.size_pages AS size, -1 AS max_size, 8192 AS growth, 0 AS is_read_only")
_add(View("database_files", "database", _FILE_COLUMNS,
          f"SELECT {_FILE_SELECT}, f.database_id AS _db FROM t_database_files f "
          "JOIN t_databases d ON d.database_id = f.database_id"))
_add(View("master_files", "server", (("database_id", "int"),) + _FILE_COLUMNS,
          f"SELECT f.database_id, {_FILE_SELECT} FROM t_database_files f "
          "JOIN t_databases d ON d.database_id = f.database_id"))
_add(View("database_recovery_status", "server",
          (("database_id", "int"), ("database_guid", "uniqueidentifier"), ("family_guid", "uniqueidentifier"),
           ("last_log_backup_lsn", "numeric(25,0)"), ("recovery_fork_guid", "uniqueidentifier"),
           ("first_recovery_fork_guid", "uniqueidentifier"), ("fork_point_lsn", "numeric(25,0)")),
          "SELECT database_id, family_guid AS database_guid, family_guid, last_log_backup_lsn, "
          "recovery_fork_guid, recovery_fork_guid AS first_recovery_fork_guid, NULL AS fork_point_lsn "
          "FROM t_databases WHERE state = 0"))
_add(View("schemas", "database", (("name", "sysname"), ("schema_id", "int"), ("principal_id", "int")),
          "SELECT 'dbo' AS name, 1 AS schema_id, 1 AS principal_id, database_id AS _db FROM t_databases"))
_add(View("tables", "database",
          (("name", "sysname"), ("object_id", "int"), ("principal_id", "int"), ("schema_id", "int"),
           ("parent_object_id", "int"), ("type", "char(2)"), ("type_desc", "nvarchar(60)"),
           ("create_date", "datetime"), ("modify_date", "datetime"), ("is_ms_shipped", "bit")),
          "SELECT name, object_id, NULL AS principal_id, 1 AS schema_id, 0 AS parent_object_id, 'U ' AS type, "
          "'USER_TABLE' AS type_desc, create_date, modify_date, 0 AS is_ms_shipped, database_id AS _db "
          "FROM t_tables"))
_add(View("columns", "database",
          (("object_id", "int"), ("name", "sysname"), ("column_id", "int"), ("type_name", "sysname"),
           ("is_nullable", "bit"), ("is_identity", "bit")),
          "SELECT object_id, name, column_id, type AS type_name, is_nullable, is_identity, database_id AS _db "
          "FROM t_columns"))
_add(View("certificates", "database",
          (("name", "sysname"), ("certificate_id", "int"), ("principal_id", "int"),
           ("pvt_key_encryption_type", "char(2)"), ("pvt_key_encryption_type_desc", "nvarchar(60)"),
           ("is_active_for_begin_dialog", "bit"), ("issuer_name", "nvarchar(442)"),
           ("cert_serial_number", "nvarchar(64)"), ("sid", "varbinary(85)"),
           ("string_sid", "nvarchar(128)"), ("subject", "nvarchar(4000)"),
           ("expiry_date", "datetime"), ("start_date", "datetime"), ("thumbprint", "varbinary(32)"),
           ("attested_by", "nvarchar(260)"), ("pvt_key_last_backup_date", "datetime"),
           ("key_length", "int")),
          "SELECT name, certificate_id, principal_id, pvt_key_encryption_type, "
          f"{_case('pvt_key_encryption_type', PVT_KEY_DESC)} AS pvt_key_encryption_type_desc, "
          "is_active_for_begin_dialog, issuer_name, cert_serial_number, sid, string_sid, subject, "
          "expiry_date, start_date, thumbprint, NULL AS attested_by, pvt_key_last_backup_date, "
          "key_length, database_id AS _db FROM t_certificates"))
_add(View("symmetric_keys", "database",
          (("name", "sysname"), ("principal_id", "int"), ("symmetric_key_id", "int"),
           ("key_length", "int"), ("key_algorithm", "char(2)"), ("algorithm_desc", "nvarchar(60)"),
           ("create_date", "datetime"), ("modify_date", "datetime"), ("key_guid", "uniqueidentifier"),
           ("key_thumbprint", "varbinary(32)"), ("provider_type", "nvarchar(120)"),
           ("cryptographic_provider_guid", "uniqueidentifier"),
           ("cryptographic_provider_algid", "nvarchar(60)")),
          "SELECT name, principal_id, symmetric_key_id, key_length, key_algorithm, algorithm_desc, "
          "create_date, modify_date, key_guid, NULL AS key_thumbprint, NULL AS provider_type, "
          "NULL AS cryptographic_provider_guid, NULL AS cryptographic_provider_algid, "
          "database_id AS _db FROM t_symmetric_keys"))
_add(View("key_encryptions", "database",
          (("key_id", "int"), ("thumbprint", "varbinary(32)"), ("crypt_type", "char(4)"),
           ("crypt_type_desc", "nvarchar(60)"), ("crypt_property", "varbinary(max)")),
          "SELECT key_id, thumbprint, crypt_type, crypt_type_desc, crypt_property, "
          "database_id AS _db FROM t_key_encryptions"))
_add(View("database_principals", "database",
          (("name", "sysname"), ("principal_id", "int"), ("type", "char(1)"),
           ("type_desc", "nvarchar(60)"), ("default_schema_name", "sysname"),
           ("create_date", "datetime"), ("modify_date", "datetime"), ("owning_principal_id", "int"),
           ("sid", "varbinary(85)"), ("is_fixed_role", "bit"), ("authentication_type", "int"),
           ("authentication_type_desc", "nvarchar(60)"), ("default_language_name", "sysname"),
           ("default_language_lcid", "int"), ("allow_encrypted_value_modifications", "bit")),
          "SELECT name, principal_id, type, "
          f"{_case('type', DATABASE_PRINCIPAL_TYPE_DESC)} AS type_desc, default_schema_name, "
          "create_date, modify_date, owning_principal_id, sid, is_fixed_role, authentication_type, "
          f"{_case('authentication_type', AUTHENTICATION_TYPE_DESC)} AS authentication_type_desc, "
          "NULL AS default_language_name, NULL AS default_language_lcid, "
          "0 AS allow_encrypted_value_modifications, database_id AS _db FROM t_database_principals"))
_MIRRORING_COLUMNS = (
    ("database_id", "int"), ("mirroring_guid", "uniqueidentifier"), ("mirroring_state", "tinyint"),
    ("mirroring_state_desc", "nvarchar(60)"), ("mirroring_role", "tinyint"),
    ("mirroring_role_desc", "nvarchar(60)"), ("mirroring_role_sequence", "int"),
    ("mirroring_safety_level", "tinyint"), ("mirroring_safety_level_desc", "nvarchar(60)"),
    ("mirroring_safety_sequence", "int"), ("mirroring_partner_name", "nvarchar(128)"),
    ("mirroring_partner_instance", "nvarchar(128)"), ("mirroring_witness_name", "nvarchar(128)"),
    ("mirroring_witness_state", "tinyint"), ("mirroring_witness_state_desc", "nvarchar(60)"),
    ("mirroring_failover_lsn", "decimal(25,0)"), ("mirroring_connection_timeout", "int"),
    ("mirroring_redo_queue", "int"), ("mirroring_redo_queue_type", "nvarchar(60)"),
    ("mirroring_end_of_log_lsn", "decimal(25,0)"), ("mirroring_replication_lsn", "decimal(25,0)"))
# live: the mirroring layer fills it from its sessions (engine/instance.py); unmirrored → NULLs
_add(View("database_mirroring", "live", _MIRRORING_COLUMNS))
_add(View("database_mirroring_witnesses", "live", (
    ("database_name", "sysname"), ("principal_server_name", "sysname"), ("mirror_server_name", "sysname"),
    ("safety_level", "tinyint"), ("safety_level_desc", "nvarchar(60)"), ("safety_sequence_number", "int"),
    ("role_sequence_number", "int"), ("mirroring_guid", "uniqueidentifier"), ("family_guid", "uniqueidentifier"),
    ("is_suspended", "bit"), ("is_suspended_sequence_number", "int"), ("partner_sync_state", "tinyint"),
    ("partner_sync_state_desc", "nvarchar(60)"))))
_add(View("dm_exec_sessions", "live",
          (("session_id", "smallint"), ("login_time", "datetime"), ("host_name", "nvarchar(128)"),
           ("program_name", "nvarchar(128)"), ("host_process_id", "int"),
           ("client_interface_name", "nvarchar(32)"), ("login_name", "nvarchar(128)"),
           ("status", "nvarchar(30)"), ("original_login_name", "nvarchar(128)"),
           ("database_id", "smallint"), ("is_user_process", "bit"), ("security_id", "varbinary(85)"),
           ("last_request_start_time", "datetime"), ("last_request_end_time", "datetime"),
           ("transaction_isolation_level", "smallint"), ("open_transaction_count", "int"))))
_add(View("dm_exec_connections", "live",
          (("session_id", "int"), ("connect_time", "datetime"), ("net_transport", "nvarchar(40)"),
           ("protocol_type", "nvarchar(40)"), ("encrypt_option", "nvarchar(40)"),
           ("auth_scheme", "nvarchar(40)"), ("client_net_address", "varchar(48)"),
           ("client_tcp_port", "int"), ("local_net_address", "varchar(48)"),
           ("local_tcp_port", "int"), ("connection_id", "uniqueidentifier"))))



_add(View("dm_db_mirroring_connections", "live", (
    ("connection_id", "uniqueidentifier"), ("transport_stream_id", "uniqueidentifier"),
    ("state", "smallint"), ("state_desc", "nvarchar(60)"), ("connect_time", "datetime"),
    ("login_time", "datetime"), ("authentication_method", "nvarchar(128)"),
    ("principal_name", "nvarchar(128)"), ("remote_user_name", "nvarchar(128)"),
    ("last_activity_time", "datetime"), ("is_accept", "bit"), ("login_state", "smallint"),
    ("login_state_desc", "nvarchar(60)"), ("peer_certificate_id", "int"),
    ("encryption_algorithm", "smallint"), ("encryption_algorithm_desc", "nvarchar(60)"),
    ("receives_posted", "smallint"), ("sends_posted", "smallint"),
    ("is_receive_flow_controlled", "bit"), ("is_send_flow_controlled", "bit"),
    ("total_bytes_sent", "bigint"), ("total_bytes_received", "bigint"),
    ("total_fragments_sent", "bigint"), ("total_fragments_received", "bigint"),
    ("total_sends", "bigint"), ("total_receives", "bigint"), ("peer_arbitration_id", "uniqueidentifier"))))


# msdb's backup and restore history (msdb.dbo.*), from the instance's t_backupset … (store.py v3)
MSDB_VIEWS: dict[str, View] = {}


def _msdb(view: View) -> None:
    MSDB_VIEWS[view.name] = view


_msdb(View("backupmediaset", "msdb",
           (("media_set_id", "int"), ("media_uuid", "uniqueidentifier"), ("media_family_count", "tinyint"),
            ("name", "nvarchar(128)"), ("description", "nvarchar(255)"), ("software_name", "nvarchar(128)"),
            ("software_vendor_id", "int"), ("MTF_major_version", "tinyint"), ("mirror_count", "tinyint"),
            ("is_password_protected", "bit"), ("is_compressed", "bit"), ("is_encrypted", "bit")),
           "SELECT media_set_id, media_uuid, media_family_count, name, description, "
           "'Microsoft SQL Server' AS software_name, 4608 AS software_vendor_id, 1 AS MTF_major_version, "
           "1 AS mirror_count, 0 AS is_password_protected, is_compressed, 0 AS is_encrypted FROM t_backupmediaset"))
_msdb(View("backupmediafamily", "msdb",
           (("media_set_id", "int"), ("family_sequence_number", "tinyint"), ("media_family_id", "uniqueidentifier"),
            ("media_count", "int"), ("logical_device_name", "nvarchar(128)"),
            ("physical_device_name", "nvarchar(260)"), ("device_type", "tinyint"),
            ("physical_block_size", "int"), ("mirror", "tinyint")),
           "SELECT media_set_id, family_sequence_number, media_family_id, 1 AS media_count, "
           "NULL AS logical_device_name, physical_device_name, 2 AS device_type, 512 AS physical_block_size, "
           "0 AS mirror FROM t_backupmediafamily"))
_msdb(View("backupset", "msdb",
           (("backup_set_id", "int"), ("backup_set_uuid", "uniqueidentifier"), ("media_set_id", "int"),
            ("first_family_number", "tinyint"), ("first_media_number", "smallint"),
            ("last_family_number", "tinyint"), ("last_media_number", "smallint"),
            ("catalog_family_number", "tinyint"), ("catalog_media_number", "smallint"), ("position", "int"),
            ("expiration_date", "datetime"), ("software_vendor_id", "int"), ("name", "nvarchar(128)"),
            ("description", "nvarchar(255)"), ("user_name", "nvarchar(128)"),
            ("software_major_version", "tinyint"), ("software_minor_version", "tinyint"),
            ("software_build_version", "smallint"), ("time_zone", "smallint"),
            ("first_lsn", "numeric(25,0)"), ("last_lsn", "numeric(25,0)"), ("checkpoint_lsn", "numeric(25,0)"),
            ("database_backup_lsn", "numeric(25,0)"), ("database_creation_date", "datetime"),
            ("backup_start_date", "datetime"), ("backup_finish_date", "datetime"), ("type", "char(1)"),
            ("compatibility_level", "tinyint"), ("database_version", "int"), ("backup_size", "numeric(20,0)"),
            ("database_name", "nvarchar(128)"), ("server_name", "nvarchar(128)"),
            ("machine_name", "nvarchar(128)"), ("flags", "int"), ("collation_name", "nvarchar(128)"),
            ("is_password_protected", "bit"), ("recovery_model", "nvarchar(60)"),
            ("has_bulk_logged_data", "bit"), ("is_snapshot", "bit"), ("is_readonly", "bit"),
            ("is_single_user", "bit"), ("has_backup_checksums", "bit"), ("is_damaged", "bit"),
            ("begins_log_chain", "bit"), ("has_incomplete_metadata", "bit"), ("is_force_offline", "bit"),
            ("is_copy_only", "bit"), ("first_recovery_fork_guid", "uniqueidentifier"),
            ("last_recovery_fork_guid", "uniqueidentifier"), ("fork_point_lsn", "numeric(25,0)"),
            ("database_guid", "uniqueidentifier"), ("family_guid", "uniqueidentifier"),
            ("differential_base_lsn", "numeric(25,0)"), ("differential_base_guid", "uniqueidentifier"),
            ("compressed_backup_size", "numeric(20,0)"), ("key_algorithm", "nvarchar(32)"),
            ("encryptor_thumbprint", "varbinary(20)"), ("encryptor_type", "nvarchar(32)")),
           "SELECT backup_set_id, backup_set_uuid, media_set_id, 1 AS first_family_number, 1 AS first_media_number, "
           "(SELECT COUNT(*) FROM t_backupmediafamily f WHERE f.media_set_id = b.media_set_id) AS last_family_number, "
           "1 AS last_media_number, 1 AS catalog_family_number, 1 AS catalog_media_number, position, "
           "NULL AS expiration_date, 4608 AS software_vendor_id, name, description, user_name, "
           "15 AS software_major_version, 0 AS software_minor_version, 2000 AS software_build_version, "
           "0 AS time_zone, first_lsn, last_lsn, checkpoint_lsn, database_backup_lsn, database_creation_date, "
           "backup_start_date, backup_finish_date, type, compatibility_level, 904 AS database_version, "
           "backup_size, database_name, server_name, machine_name, "
           "(CASE WHEN has_backup_checksums THEN 16 ELSE 0 END + CASE WHEN is_readonly THEN 4 ELSE 0 END "
           "+ CASE WHEN is_force_offline THEN 256 ELSE 0 END) AS flags, "
           "'SQL_Latin1_General_CP1_CI_AS' AS collation_name, 0 AS is_password_protected, recovery_model, "
           "0 AS has_bulk_logged_data, 0 AS is_snapshot, is_readonly, 0 AS is_single_user, has_backup_checksums, "
           "0 AS is_damaged, begins_log_chain, 0 AS has_incomplete_metadata, is_force_offline, is_copy_only, "
           "recovery_fork_guid AS first_recovery_fork_guid, recovery_fork_guid AS last_recovery_fork_guid, "
           "NULL AS fork_point_lsn, family_guid AS database_guid, family_guid, NULL AS differential_base_lsn, "
           "NULL AS differential_base_guid, compressed_backup_size, NULL AS key_algorithm, "
           "NULL AS encryptor_thumbprint, NULL AS encryptor_type FROM t_backupset b"))
_msdb(View("restorehistory", "msdb",
           (("restore_history_id", "int"), ("restore_date", "datetime"),
            ("destination_database_name", "nvarchar(128)"), ("user_name", "nvarchar(128)"),
            ("backup_set_id", "int"), ("restore_type", "char(1)"), ("replace", "bit"), ("recovery", "bit"),
            ("restart", "bit"), ("stop_at", "datetime"), ("device_count", "tinyint"),
            ("stop_at_mark_name", "nvarchar(128)"), ("stop_before", "bit")),
           "SELECT restore_history_id, restore_date, destination_database_name, user_name, backup_set_id, "
           "restore_type, replace, recovery, 0 AS restart, NULL AS stop_at, device_count, "
           "NULL AS stop_at_mark_name, 0 AS stop_before FROM t_restorehistory"))


def lookup(name: str) -> View | None:
    return VIEWS.get(name.lower())


def lookup_msdb(name: str) -> View | None:
    """A view of msdb's dbo schema (backupset …), or None."""
    return MSDB_VIEWS.get(name.lower())


def sqlite_view_name(view: View) -> str:
    return {"live": "live_", "msdb": "msdb_"}.get(view.scope, "v_") + view.name


def create_views_sql() -> str:
    """TEMP views for one SQLite connection (kept out of the file: no schema drift)."""
    parts = []
    for v in (*VIEWS.values(), *MSDB_VIEWS.values()):
        if v.scope == "live":
            cols = ", ".join(f'"{c}"' for c, _ in v.columns)
            parts.append(f"CREATE TEMP TABLE {sqlite_view_name(v)} ({cols});")
        else:
            parts.append(f"CREATE TEMP VIEW {sqlite_view_name(v)} AS {v.body};")
    return "\n".join(parts)
