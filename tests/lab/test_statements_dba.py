"""The statement subset a demanding DBA uses around mirroring endpoints, checked against the
documented behaviour (reference spec §2, §3; the statement and catalog-view pages it cites).

Each test talks to lab instances through pyodbc + FreeTDS, as the runbooks do.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pyodbc
import pytest

ERROR_RE = re.compile(r"\[(\w{5})\] \[FreeTDS\]\[SQL Server\](.*) \((\d+)\) \((SQL\w+)\)", re.S)
DMK = "CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-1'"
ENDPOINT = ("CREATE ENDPOINT Endpoint_Mirroring STATE = STARTED AS TCP (LISTENER_PORT = 5022, LISTENER_IP = ALL) "
            "FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE ep_cert, ENCRYPTION = REQUIRED ALGORITHM AES, "
            "ROLE = ALL)")


def error_of(exc: pyodbc.Error) -> tuple[int, str]:
    m = ERROR_RE.fullmatch(exc.args[1])
    assert m, exc.args
    return int(m.group(3)), m.group(2)


def run(cur, sql, *params):
    """Execute and return the rows of the first result set that has columns ([] if none)."""
    cur.execute(sql, *params)
    while cur.description is None:
        if not cur.nextset():
            return []
    return [tuple(r) for r in cur.fetchall()]


def fails(cur, sql, *params) -> tuple[int, str]:
    with pytest.raises(pyodbc.Error) as ei:
        cur.execute(sql, *params)
        while cur.nextset():
            pass
    return error_of(ei.value)


@pytest.fixture
def one(lab):
    h = lab("HOST_A")["HOST_A"]
    cn = h.connect()
    yield h, cn.cursor()
    cn.close()


@pytest.fixture
def with_endpoint(one):
    h, cur = one
    for s in (DMK, "CREATE CERTIFICATE ep_cert WITH SUBJECT = 'endpoint certificate'", ENDPOINT):
        cur.execute(s)
    return h, cur


def endpoint_row(cur):
    rows = run(cur, "SELECT e.name, e.state_desc, e.role_desc, e.connection_auth_desc, e.certificate_id, "
                    "e.encryption_algorithm, e.encryption_algorithm_desc, e.is_encryption_enabled, t.port, "
                    "e.endpoint_id FROM sys.database_mirroring_endpoints e "
                    "JOIN sys.tcp_endpoints t ON t.endpoint_id = e.endpoint_id")
    assert len(rows) == 1, rows
    return rows[0]


# ---- endpoints -----------------------------------------------------------------------------------

def test_alter_endpoint_changes_only_what_it_names(with_endpoint):
    """ALTER ENDPOINT: 'specify only those parameters that you want to update. All properties ...
    remain the same unless you explicitly change them.'"""
    h, cur = with_endpoint
    cert_id = run(cur, "SELECT CERT_ID('ep_cert')")[0][0]
    eid = endpoint_row(cur)[9]
    assert endpoint_row(cur)[:9] == ("Endpoint_Mirroring", "STARTED", "ALL", "CERTIFICATE", cert_id, 2, "AES", True, 5022)

    cur.execute("ALTER ENDPOINT Endpoint_Mirroring STATE = STOPPED")
    assert endpoint_row(cur)[:9] == ("Endpoint_Mirroring", "STOPPED", "ALL", "CERTIFICATE", cert_id, 2, "AES", True, 5022)

    cur.execute("ALTER ENDPOINT Endpoint_Mirroring AS TCP (LISTENER_PORT = 7024)")
    assert endpoint_row(cur)[:9] == ("Endpoint_Mirroring", "STOPPED", "ALL", "CERTIFICATE", cert_id, 2, "AES", True, 7024)

    cur.execute("ALTER ENDPOINT Endpoint_Mirroring FOR DATABASE_MIRRORING (ROLE = PARTNER)")
    assert endpoint_row(cur)[:9] == ("Endpoint_Mirroring", "STOPPED", "PARTNER", "CERTIFICATE", cert_id, 2, "AES", True, 7024)

    # encryption codes as sys.database_mirroring_endpoints lists them
    cur.execute("ALTER ENDPOINT Endpoint_Mirroring FOR DATABASE_MIRRORING (ENCRYPTION = SUPPORTED ALGORITHM AES RC4)")
    assert endpoint_row(cur)[5:8] == (8, "NONE, AES, RC4", True)
    cur.execute("ALTER ENDPOINT Endpoint_Mirroring FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM RC4 AES)")
    assert endpoint_row(cur)[5:8] == (5, "RC4, AES", True)
    cur.execute("ALTER ENDPOINT Endpoint_Mirroring FOR DATABASE_MIRRORING (ENCRYPTION = DISABLED)")
    assert endpoint_row(cur)[5:8] == (0, "NONE", False)
    assert endpoint_row(cur)[:5] == ("Endpoint_Mirroring", "STOPPED", "PARTNER", "CERTIFICATE", cert_id)

    # switch the endpoint to a new certificate (the rotation step of §6)
    cur.execute("CREATE CERTIFICATE ep_cert_2027 WITH SUBJECT = 'endpoint certificate 2027'")
    cur.execute("ALTER ENDPOINT Endpoint_Mirroring FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE ep_cert_2027)")
    new_id = run(cur, "SELECT CERT_ID('ep_cert_2027')")[0][0]
    assert new_id != cert_id
    assert endpoint_row(cur)[3:5] == ("CERTIFICATE", new_id)

    cur.execute("ALTER ENDPOINT Endpoint_Mirroring STATE = STARTED AS TCP (LISTENER_PORT = 5022) "
                "FOR DATABASE_MIRRORING (ROLE = ALL, ENCRYPTION = REQUIRED ALGORITHM AES)")
    assert endpoint_row(cur) == ("Endpoint_Mirroring", "STARTED", "ALL", "CERTIFICATE", new_id, 2, "AES", True, 5022, eid)


def test_drop_endpoint_removes_it_and_its_permissions(with_endpoint):
    h, cur = with_endpoint
    cur.execute("CREATE LOGIN peer_login WITH PASSWORD = 'Peer!Passw0rd-1'")
    cur.execute("GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO peer_login")
    eid = endpoint_row(cur)[9]
    assert run(cur, "SELECT COUNT(*) FROM sys.server_permissions WHERE class = 105 AND major_id = ?", eid) == [(1,)]
    cur.execute("DROP ENDPOINT Endpoint_Mirroring")
    assert run(cur, "SELECT COUNT(*) FROM sys.endpoints WHERE type = 4") == [(0,)]
    assert run(cur, "SELECT COUNT(*) FROM sys.database_mirroring_endpoints") == [(0,)]
    assert run(cur, "SELECT COUNT(*) FROM sys.server_permissions WHERE class = 105 AND major_id = ?", eid) == [(0,)]
    # the certificate it used can now be dropped ...
    cur.execute("DROP CERTIFICATE ep_cert")
    # ... and a new endpoint can be created (no 7862 any more); its state defaults to STOPPED
    cur.execute("CREATE CERTIFICATE ep_cert WITH SUBJECT = 'endpoint certificate'")
    cur.execute("CREATE ENDPOINT Endpoint_Mirroring AS TCP (LISTENER_PORT = 5022) "
                "FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE ep_cert, ROLE = WITNESS)")
    row = endpoint_row(cur)
    assert row[1:3] == ("STOPPED", "WITNESS")
    # ENCRYPTION defaults to REQUIRED, algorithm AES (2016+)
    assert row[5:8] == (2, "AES", True)


def test_endpoint_ddl_defaults_and_owner(one):
    h, cur = one
    cur.execute(DMK)
    cur.execute("CREATE CERTIFICATE ep_cert WITH SUBJECT = 'endpoint certificate'")
    cur.execute("CREATE ENDPOINT [Hadr_endpoint] AS TCP (LISTENER_PORT = 5022) "
                "FOR DATABASE_MIRRORING (ROLE = ALL, AUTHENTICATION = CERTIFICATE ep_cert, "
                "ENCRYPTION = REQUIRED ALGORITHM AES)")
    cur.execute("ALTER ENDPOINT [Hadr_endpoint] STATE = STARTED")
    assert endpoint_row(cur)[:3] == ("Hadr_endpoint", "STARTED", "ALL")
    # the owner defaults to the caller; ALTER AUTHORIZATION ON ENDPOINT:: changes it
    cur.execute("CREATE LOGIN ep_owner WITH PASSWORD = 'Owner!Passw0rd-1'")
    assert run(cur, "SELECT SUSER_NAME(principal_id) FROM sys.endpoints WHERE name = 'Hadr_endpoint'") == [("sa",)]
    cur.execute("ALTER AUTHORIZATION ON ENDPOINT::Hadr_endpoint TO ep_owner")
    assert run(cur, "SELECT SUSER_NAME(principal_id) FROM sys.endpoints WHERE name = 'Hadr_endpoint'") == [("ep_owner",)]


# ---- logins, users, permissions ------------------------------------------------------------------

def test_alter_login_disable_and_enable(one):
    h, cur = one
    cur.execute("CREATE LOGIN app_login WITH PASSWORD = 'App!Passw0rd-1'")
    with h.connect(user="app_login", password="App!Passw0rd-1") as cn:
        assert run(cn.cursor(), "SELECT SUSER_NAME()") == [("app_login",)]
    cur.execute("ALTER LOGIN app_login DISABLE")
    assert run(cur, "SELECT is_disabled FROM sys.server_principals WHERE name = 'app_login'") in ([(1,)], [(True,)])
    # a disabled login is refused: error table 18470 "Login failed for user '%.*ls'. Reason: The account
    # is disabled.%.*ls" (ODBC clients show it with its number, e.g. the AG troubleshooting page)
    with pytest.raises(pyodbc.Error) as ei:
        h.connect(user="app_login", password="App!Passw0rd-1")
    assert error_of(ei.value) == (18470, "Login failed for user 'app_login'. Reason: The account is disabled.")
    # with a wrong password the answer stays the generic 18456
    with pytest.raises(pyodbc.Error) as ei:
        h.connect(user="app_login", password="Wrong!Passw0rd-1")
    assert error_of(ei.value) == (18456, "Login failed for user 'app_login'.")
    cur.execute("ALTER LOGIN app_login ENABLE")
    assert run(cur, "SELECT is_disabled FROM sys.server_principals WHERE name = 'app_login'") in ([(0,)], [(False,)])
    with h.connect(user="app_login", password="App!Passw0rd-1") as cn:
        assert run(cn.cursor(), "SELECT SUSER_NAME()") == [("app_login",)]


def test_disabled_login_still_accepted_for_grants(one):
    h, cur = one
    cur.execute("CREATE LOGIN app_login WITH PASSWORD = 'App!Passw0rd-1'")
    cur.execute("ALTER LOGIN app_login DISABLE")
    cur.execute(DMK)
    cur.execute("CREATE CERTIFICATE ep_cert WITH SUBJECT = 'e'")
    cur.execute(ENDPOINT)
    cur.execute("GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO app_login")
    assert run(cur, "SELECT COUNT(*) FROM sys.server_permissions p JOIN sys.server_principals l "
                    "ON l.principal_id = p.grantee_principal_id WHERE l.name = 'app_login' AND p.class = 105") == [(1,)]


def test_grant_deny_revoke_rows(with_endpoint):
    """sys.server_permissions: state G/D/W; REVOKE removes the row."""
    h, cur = with_endpoint
    cur.execute("CREATE LOGIN peer_login WITH PASSWORD = 'Peer!Passw0rd-1'")
    q = ("SELECT p.class, p.class_desc, p.type, p.permission_name, p.state, p.state_desc "
         "FROM sys.server_permissions p JOIN sys.server_principals l ON l.principal_id = p.grantee_principal_id "
         "JOIN sys.endpoints e ON e.endpoint_id = p.major_id "
         "WHERE l.name = 'peer_login' AND e.name = 'Endpoint_Mirroring' ORDER BY p.type")
    assert run(cur, q) == []
    cur.execute("GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO peer_login")
    assert run(cur, q) == [(105, "ENDPOINT", "CO  ", "CONNECT", "G", "GRANT")]
    cur.execute("DENY CONNECT ON ENDPOINT::Endpoint_Mirroring TO peer_login")
    assert run(cur, q) == [(105, "ENDPOINT", "CO  ", "CONNECT", "D", "DENY")]
    cur.execute("REVOKE CONNECT ON ENDPOINT::Endpoint_Mirroring FROM peer_login")
    assert run(cur, q) == []
    cur.execute("GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO peer_login WITH GRANT OPTION")
    assert run(cur, q) == [(105, "ENDPOINT", "CO  ", "CONNECT", "W", "GRANT_WITH_GRANT_OPTION")]
    cur.execute("REVOKE GRANT OPTION FOR CONNECT ON ENDPOINT::Endpoint_Mirroring FROM peer_login CASCADE")
    assert run(cur, q) == [(105, "ENDPOINT", "CO  ", "CONNECT", "G", "GRANT")]
    cur.execute("GRANT VIEW DEFINITION ON ENDPOINT::Endpoint_Mirroring TO peer_login")
    assert run(cur, q) == [(105, "ENDPOINT", "CO  ", "CONNECT", "G", "GRANT"),
                           (105, "ENDPOINT", "VW  ", "VIEW DEFINITION", "G", "GRANT")]
    cur.execute("REVOKE CONNECT ON ENDPOINT::Endpoint_Mirroring TO peer_login")   # FROM | TO
    assert run(cur, q) == [(105, "ENDPOINT", "VW  ", "VIEW DEFINITION", "G", "GRANT")]
    # grants are server-level: HAS_PERMS_BY_NAME sees them
    cur.execute("GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO peer_login")
    with h.connect(user="peer_login", password="Peer!Passw0rd-1") as cn:
        assert run(cn.cursor(), "SELECT HAS_PERMS_BY_NAME('Endpoint_Mirroring', 'ENDPOINT', 'CONNECT')") == [(1,)]


def test_drop_user_owning_a_certificate_and_alter_authorization(one):
    h, cur = one
    cur.execute(DMK)
    cur.execute("CREATE LOGIN peer_login WITH PASSWORD = 'Peer!Passw0rd-1'")
    cur.execute("CREATE USER peer_user FOR LOGIN peer_login")
    cur.execute("CREATE CERTIFICATE peer_cert WITH SUBJECT = 'peer'")
    owner = "SELECT p.name FROM sys.certificates c JOIN sys.database_principals p " \
            "ON p.principal_id = c.principal_id WHERE c.name = 'peer_cert'"
    assert run(cur, owner) == [("dbo",)]
    cur.execute("ALTER AUTHORIZATION ON CERTIFICATE::peer_cert TO peer_user")
    assert run(cur, owner) == [("peer_user",)]
    assert fails(cur, "DROP USER peer_user") == (
        15138, "The database principal owns a certificate in the database, and cannot be dropped.")
    cur.execute("ALTER AUTHORIZATION ON CERTIFICATE::peer_cert TO dbo")
    assert run(cur, owner) == [("dbo",)]
    cur.execute("DROP USER peer_user")
    assert run(cur, "SELECT COUNT(*) FROM sys.database_principals WHERE name = 'peer_user'") == [(0,)]
    # the login stays; its mapping is gone
    assert run(cur, "SELECT COUNT(*) FROM sys.server_principals WHERE name = 'peer_login'") == [(1,)]


# ---- certificates between instances ---------------------------------------------------------------

def test_create_certificate_from_binary_certencoded(lab):
    """CERTENCODED output fed to CREATE CERTIFICATE ... FROM BINARY on another instance gives the
    same certificate, public part only."""
    l = lab("HOST_A", "HOST_B")
    a, b = l["HOST_A"].connect().cursor(), l["HOST_B"].connect().cursor()
    a.execute(DMK)
    a.execute("CREATE CERTIFICATE HOST_A_cert WITH SUBJECT = 'HOST_A certificate'")
    der, thumb = run(a, "SELECT CERTENCODED(CERT_ID('HOST_A_cert')), thumbprint FROM sys.certificates "
                        "WHERE name = 'HOST_A_cert'")[0]
    b.execute("CREATE LOGIN HOST_A_login WITH PASSWORD = 'AStrongPassword!@#'")
    b.execute("CREATE USER HOST_A_user FOR LOGIN HOST_A_login")
    b.execute("CREATE CERTIFICATE HOST_A_cert AUTHORIZATION HOST_A_user FROM BINARY = 0x" + bytes(der).hex().upper())
    assert run(b, "SELECT c.thumbprint, c.pvt_key_encryption_type, p.name FROM sys.certificates c "
                  "JOIN sys.database_principals p ON p.principal_id = c.principal_id WHERE c.name = 'HOST_A_cert'") == [
        (thumb, "NA", "HOST_A_user")]
    assert run(b, "SELECT CERTENCODED(CERT_ID('HOST_A_cert'))") == [(der,)]
    # the same certificate a second time, under another name: 15232
    code, _ = fails(b, "CREATE CERTIFICATE HOST_A_cert_again FROM BINARY = 0x" + bytes(der).hex())
    assert code == 15232


def test_private_key_backup_and_import_on_another_instance(lab):
    """BACKUP CERTIFICATE ... WITH PRIVATE KEY, copy both files, CREATE CERTIFICATE ... FROM FILE ...
    WITH PRIVATE KEY on another instance (the Linux AG pattern): same thumbprint, key under the DMK."""
    l = lab("HOST_A", "HOST_B")
    a_h, b_h = l["HOST_A"], l["HOST_B"]
    a, b = a_h.connect().cursor(), b_h.connect().cursor()
    a.execute(DMK)
    a.execute("CREATE CERTIFICATE dbm_certificate WITH SUBJECT = 'dbm'")
    assert run(a, "SELECT pvt_key_last_backup_date FROM sys.certificates WHERE name = 'dbm_certificate'") == [(None,)]
    before = datetime.now() - timedelta(seconds=5)
    a.execute("BACKUP CERTIFICATE dbm_certificate TO FILE = '/var/opt/mssql/data/dbm_certificate.cer' "
              "WITH PRIVATE KEY (FILE = '/var/opt/mssql/data/dbm_certificate.pvk', "
              "ENCRYPTION BY PASSWORD = 'Pvk!Passw0rd-1')")
    last_backup = run(a, "SELECT pvt_key_last_backup_date FROM sys.certificates WHERE name = 'dbm_certificate'")[0][0]
    assert last_backup is not None and last_backup >= before - timedelta(hours=14)   # local or UTC clock
    pvk = a_h.instance.fs.read_bytes("/var/opt/mssql/data/dbm_certificate.pvk")
    assert pvk[:4] == bytes.fromhex("1ef1b5b0")          # PVK magic 0xB0B5F11E, little-endian
    for f in ("/var/opt/mssql/data/dbm_certificate.cer", "/var/opt/mssql/data/dbm_certificate.pvk"):
        b_h.instance.fs.copy(a_h.instance.fs, f, f)
    b.execute("CREATE MASTER KEY ENCRYPTION BY PASSWORD = 'Dmk!Passw0rd-2'")
    b.execute("CREATE CERTIFICATE dbm_certificate FROM FILE = '/var/opt/mssql/data/dbm_certificate.cer' "
              "WITH PRIVATE KEY (FILE = '/var/opt/mssql/data/dbm_certificate.pvk', "
              "DECRYPTION BY PASSWORD = 'Pvk!Passw0rd-1')")
    q = "SELECT thumbprint, pvt_key_encryption_type, pvt_key_encryption_type_desc FROM sys.certificates " \
        "WHERE name = 'dbm_certificate'"
    assert run(b, q) == run(a, q)
    assert run(b, q)[0][1:] == ("MK", "ENCRYPTED_BY_MASTER_KEY")
    # the imported key is usable: B can export it again, and use the certificate for its endpoint
    b.execute("BACKUP CERTIFICATE dbm_certificate TO FILE = '/var/opt/mssql/data/again.cer' WITH PRIVATE KEY "
              "(FILE = '/var/opt/mssql/data/again.pvk', ENCRYPTION BY PASSWORD = 'Other!Passw0rd-2')")
    b.execute("CREATE ENDPOINT [Hadr_endpoint] AS TCP (LISTENER_PORT = 5022) FOR DATABASE_MIRRORING "
              "(ROLE = ALL, AUTHENTICATION = CERTIFICATE dbm_certificate, ENCRYPTION = REQUIRED ALGORITHM AES)")
    assert b_h.instance.fs.read_bytes("/var/opt/mssql/data/again.cer") == \
        a_h.instance.fs.read_bytes("/var/opt/mssql/data/dbm_certificate.cer")


def test_file_less_transfer_with_certprivatekey(lab):
    """CREATE CERTIFICATE c FROM BINARY = <CERTENCODED> WITH PRIVATE KEY (BINARY = <CERTPRIVATEKEY>,
    DECRYPTION BY PASSWORD = ...)."""
    l = lab("HOST_A", "HOST_B")
    a, b = l["HOST_A"].connect().cursor(), l["HOST_B"].connect().cursor()
    for cur in (a, b):
        cur.execute(DMK)
    a.execute("CREATE CERTIFICATE shared WITH SUBJECT = 'shared'")
    der, pvk = run(a, "SELECT CERTENCODED(CERT_ID('shared')), "
                      "CERTPRIVATEKEY(CERT_ID('shared'), 'Pvk!Passw0rd-1')")[0]
    b.execute(f"CREATE CERTIFICATE shared FROM BINARY = 0x{bytes(der).hex()} WITH PRIVATE KEY "
              f"(BINARY = 0x{bytes(pvk).hex()}, DECRYPTION BY PASSWORD = 'Pvk!Passw0rd-1')")
    q = "SELECT thumbprint, pvt_key_encryption_type FROM sys.certificates WHERE name = 'shared'"
    assert run(b, q) == [(run(a, q)[0][0], "MK")]


# ---- master key -----------------------------------------------------------------------------------

def test_open_and_close_master_key(one):
    h, cur = one
    cur.execute(DMK)
    assert run(cur, "SELECT name, symmetric_key_id, algorithm_desc FROM sys.symmetric_keys") == [
        ("##MS_DatabaseMasterKey##", 101, "AES_256")]
    assert run(cur, "SELECT is_master_key_encrypted_by_server FROM sys.databases WHERE name = 'master'") in (
        [(True,)], [(1,)])
    cur.execute("OPEN MASTER KEY DECRYPTION BY PASSWORD = 'Dmk!Passw0rd-1'")
    cur.execute("CLOSE MASTER KEY")
    assert fails(cur, "OPEN MASTER KEY DECRYPTION BY PASSWORD = 'Wrong!Passw0rd-1'") == (
        15313, "The key is not encrypted using the specified decryptor.")
    # the service master key still opens it automatically: certificates can be created after CLOSE
    cur.execute("CREATE CERTIFICATE after_close WITH SUBJECT = 'after close'")
    assert run(cur, "SELECT pvt_key_encryption_type FROM sys.certificates WHERE name = 'after_close'") == [("MK",)]


# ---- control flow, variables, messages ------------------------------------------------------------

IDEMPOTENT = """
IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'HOST_B_login')
BEGIN
    CREATE LOGIN HOST_B_login WITH PASSWORD = '1Sample_Strong_Password!@#';
    PRINT 'created HOST_B_login';
END
ELSE
    PRINT 'HOST_B_login exists';
"""


def test_if_not_exists_begin_end_and_print(one):
    h, cur = one
    cur.execute(IDEMPOTENT)
    assert [m[1] for m in cur.messages] == ["[FreeTDS][SQL Server]created HOST_B_login"]
    assert cur.messages[0][0] == "[01000] (0)"
    cur.execute(IDEMPOTENT)
    assert [m[1] for m in cur.messages] == ["[FreeTDS][SQL Server]HOST_B_login exists"]
    assert run(cur, "SELECT COUNT(*) FROM sys.server_principals WHERE name = 'HOST_B_login'") == [(1,)]
    # IF EXISTS on the endpoint, as runbooks check before CREATE ENDPOINT
    cur.execute(DMK)
    cur.execute("CREATE CERTIFICATE ep_cert WITH SUBJECT = 'e'")
    script = ("IF NOT EXISTS (SELECT * FROM sys.database_mirroring_endpoints) BEGIN " + ENDPOINT + " END")
    cur.execute(script)
    cur.execute(script)
    assert run(cur, "SELECT COUNT(*) FROM sys.endpoints WHERE type = 4") == [(1,)]


def test_declare_set_and_dynamic_names(one):
    h, cur = one
    assert run(cur, "DECLARE @n int; SET @n = 41; SELECT @n + 1 AS answer") == [(42,)]
    assert run(cur, "DECLARE @s nvarchar(100) = N'HOST_'; SET @s = @s + N'A'; SELECT @s") == [("HOST_A",)]
    # the usual "build a statement from a name" pattern: QUOTENAME + EXEC (@sql)
    cur.execute("DECLARE @login sysname = N'odd]name', @sql nvarchar(max); "
                "SET @sql = N'CREATE LOGIN ' + QUOTENAME(@login) + N' WITH PASSWORD = ''Odd!Passw0rd-1'''; "
                "EXEC (@sql)")
    assert run(cur, "SELECT name FROM sys.server_principals WHERE name = N'odd]name'") == [("odd]name",)]
    # SELECT @v = ... assignment
    assert run(cur, "DECLARE @c int; SELECT @c = COUNT(*) FROM sys.databases; SELECT @c") == [(4,)]


def test_print_messages(one):
    h, cur = one
    cur.execute("PRINT 'hello from the lab'")
    assert cur.messages == [("[01000] (0)", "[FreeTDS][SQL Server]hello from the lab")]
    cur.execute("DECLARE @v nvarchar(20) = N'ünïcode ☃'; PRINT @v")
    assert cur.messages == [("[01000] (0)", "[FreeTDS][SQL Server]ünïcode ☃")]


def test_several_result_sets_with_nextset(one):
    h, cur = one
    cur.execute("SELECT 'a' AS x; SELECT 'b' AS y, 2 AS z; SELECT name FROM sys.databases WHERE name = 'master'")
    assert [d[0] for d in cur.description] == ["x"]
    assert [tuple(r) for r in cur.fetchall()] == [("a",)]
    assert cur.nextset() is True
    assert [d[0] for d in cur.description] == ["y", "z"]
    assert [tuple(r) for r in cur.fetchall()] == [("b", 2)]
    assert cur.nextset() is True
    assert [tuple(r) for r in cur.fetchall()] == [("master",)]
    assert not cur.nextset()


def test_result_sets_around_messages_and_ddl(one):
    """A batch mixing PRINT, DDL and SELECT: every SELECT's rows arrive, in order."""
    h, cur = one
    cur.execute("PRINT 'start'; CREATE LOGIN batch_login WITH PASSWORD = 'Batch!Passw0rd-1'; "
                "SELECT name FROM sys.server_principals WHERE name = 'batch_login'; PRINT 'middle'; SELECT 7 AS seven")
    results = []
    while True:
        if cur.description is not None:
            results.append([tuple(r) for r in cur.fetchall()])
        if not cur.nextset():
            break
    assert results == [[("batch_login",)], [(7,)]]


# ---- parameters ------------------------------------------------------------------------------------

def test_parameterised_queries(with_endpoint):
    """pyodbc sends `?` parameters through sp_prepexec."""
    h, cur = with_endpoint
    assert run(cur, "SELECT name, state_desc FROM sys.endpoints WHERE endpoint_id = ?", 4) == [
        ("TSQL Default TCP", "STARTED")]
    eid = endpoint_row(cur)[9]
    assert run(cur, "SELECT name FROM sys.endpoints WHERE endpoint_id = ? AND name = ?", eid, "Endpoint_Mirroring") == [
        ("Endpoint_Mirroring",)]
    assert run(cur, "SELECT certificate_id FROM sys.certificates WHERE name = ?", "ep_cert") == \
        run(cur, "SELECT CERT_ID(?)", "ep_cert")
    assert run(cur, "SELECT ? AS s, ? AS i, ? AS b", "nön-äscii ☃", 2 ** 40, b"\x00\xff") == [
        ("nön-äscii ☃", 2 ** 40, b"\x00\xff")]
    # the same prepared text, many times, with changing values
    for i in range(20):
        assert run(cur, "SELECT ? + 1", i) == [(i + 1,)]
    # a parameter value is never SQL
    assert run(cur, "SELECT COUNT(*) FROM sys.server_principals WHERE name = ?", "sa' OR '1'='1") == [(0,)]


# ---- functions ---------------------------------------------------------------------------------------

def test_functions_quotename_convert_cert_id_suser_name(with_endpoint):
    h, cur = with_endpoint
    assert run(cur, "SELECT QUOTENAME('a]b'), QUOTENAME(N'x y'), QUOTENAME('it''s', ''''), QUOTENAME('x', '\"')") == [
        ("[a]]b]", "[x y]", "'it''s'", '"x"')]
    thumb, cid = run(cur, "SELECT thumbprint, certificate_id FROM sys.certificates WHERE name = 'ep_cert'")[0]
    hex_1, hex_2 = run(cur, "SELECT CONVERT(varchar(max), thumbprint, 1), CONVERT(varchar(max), thumbprint, 2) "
                            "FROM sys.certificates WHERE name = 'ep_cert'")[0]
    assert hex_1 == "0x" + bytes(thumb).hex().upper()
    assert hex_2 == bytes(thumb).hex().upper()
    assert len(hex_1) == 42                                           # SHA-1: 20 bytes
    assert run(cur, "SELECT CERT_ID('ep_cert'), CERT_ID('no_such_cert')") == [(cid, None)]
    assert run(cur, "SELECT SUSER_NAME(), SUSER_SNAME(), SUSER_NAME(1), USER_NAME()") == [("sa", "sa", "sa", "dbo")]
    # comparing a thumbprint with its text form, as a runbook does when checking a peer
    assert run(cur, "SELECT name FROM sys.certificates WHERE CONVERT(varchar(max), thumbprint, 1) = ?", hex_1) == [
        ("ep_cert",)]
    assert run(cur, "SELECT CONVERT(varbinary(20), ?, 1)", hex_1) == [(thumb,)]


def test_sp_readerrorlog_search_strings(one):
    h, cur = one
    with pytest.raises(pyodbc.Error):
        h.connect(user="sa", password="Wrong!Passw0rd-1")
    rows = run(cur, "EXEC sp_readerrorlog 0, 1, N'Login failed'")
    assert rows and all("Login failed" in r[2] for r in rows)
    assert [d[0] for d in cur.description] == ["LogDate", "ProcessInfo", "Text"]
    both = run(cur, "EXEC sp_readerrorlog 0, 1, N'Login failed', N'Password did not match'")
    assert both and all("Login failed" in r[2] and "Password did not match" in r[2] for r in both)
    assert run(cur, "EXEC sp_readerrorlog 0, 1, N'Login failed', N'no-such-text-0x7e'") == []
    assert run(cur, "EXEC sp_readerrorlog 0, 1, N'no-such-text-0x7e'") == []
    assert any("Server name is 'HOST_A'" in r[2] for r in run(cur, "EXEC sp_readerrorlog"))
    assert all(isinstance(r[0], datetime) for r in rows)


# ---- paths -------------------------------------------------------------------------------------------

def test_windows_and_posix_paths(with_endpoint):
    h, cur = with_endpoint
    fs = h.instance.fs
    home = h.instance.home / "fs"
    cur.execute(r"BACKUP CERTIFICATE ep_cert TO FILE = 'C:\ep_a.cer'")
    cur.execute("BACKUP CERTIFICATE ep_cert TO FILE = 'c:/ep_b.cer'")
    cur.execute("BACKUP CERTIFICATE ep_cert TO FILE = '/var/opt/mssql/data/ep_c.cer'")
    cur.execute("BACKUP CERTIFICATE ep_cert TO FILE = 'ep_d.cer'")          # the default data folder
    cur.execute(r"BACKUP CERTIFICATE ep_cert TO FILE = 'C:\ep_sub\..\ep_e.cer'")
    der = fs.read_bytes(r"C:\ep_a.cer")
    for host_path in ("C/ep_a.cer", "C/ep_b.cer", "var/opt/mssql/data/ep_c.cer", "var/opt/mssql/data/ep_d.cer",
                      "C/ep_e.cer"):
        assert (home / host_path).read_bytes() == der, host_path
    # both spellings find the same file when reading it back
    for spelling in (r"C:\ep_b.cer", "c:/ep_a.cer", r"/var\opt/mssql\data/ep_c.cer", "ep_d.cer"):
        assert fs.read_bytes(spelling) == der
    # an existing file, whatever the spelling: 15240
    assert fails(cur, "BACKUP CERTIFICATE ep_cert TO FILE = 'c:/EP_SUB/../ep_a.cer'")[0] == 15240


@pytest.mark.parametrize("path", [
    r"C:\..\outside.cer",
    r"C:\certs\..\..\outside.cer",
    "/../outside.cer",
    "/var/opt/mssql/data/../../../../../outside.cer",
    r"..\..\..\..\..\..\outside.cer",
    r"\\host\share\..\..\outside.cer",
])
def test_dotdot_escapes_are_refused_with_15240(with_endpoint, path):
    h, cur = with_endpoint
    fs_root = h.instance.home / "fs"
    state = h.state_dir

    def files():
        return sorted(str(p) for p in fs_root.rglob("*") if p.is_file() and p.name != "errorlog")

    before = files()
    number, text = fails(cur, f"BACKUP CERTIFICATE ep_cert TO FILE = '{path}'")
    assert (number, text) == (15240, f"Cannot write into file '{path}'. Verify that you have write permissions, "
                                     "that the file path is valid, and that the file does not already exist.")
    assert files() == before
    assert not list(state.parent.rglob("outside.cer"))
    # reading from such a path is refused as well (15208)
    assert fails(cur, f"CREATE CERTIFICATE escaped FROM FILE = '{path}'")[0] == 15208
    assert run(cur, "SELECT COUNT(*) FROM sys.certificates WHERE name = 'escaped'") == [(0,)]


# ---- names -------------------------------------------------------------------------------------------

ODD_LOGIN = "we]ird 'login ü"
ODD_USER = "usér ]] x"
ODD_CERT = "cért [x] 'y'"
ODD_ENDPOINT = "End point ] ☃"


def q(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def test_names_with_brackets_quotes_spaces_and_non_ascii(one):
    h, cur = one
    cur.execute(DMK)
    cur.execute(f"CREATE LOGIN {q(ODD_LOGIN)} WITH PASSWORD = 'Odd!Passw0rd-1'")
    cur.execute(f"CREATE USER {q(ODD_USER)} FOR LOGIN {q(ODD_LOGIN)}")
    cur.execute(f"CREATE CERTIFICATE {q(ODD_CERT)} AUTHORIZATION {q(ODD_USER)} WITH SUBJECT = N'sübjéct ☃ ''quoted'''")
    cur.execute(f"CREATE CERTIFICATE ep_cert WITH SUBJECT = 'e'")
    cur.execute(f"CREATE ENDPOINT {q(ODD_ENDPOINT)} STATE = STARTED AS TCP (LISTENER_PORT = 5022) "
                f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE ep_cert, ROLE = ALL)")
    cur.execute(f"GRANT CONNECT ON ENDPOINT::{q(ODD_ENDPOINT)} TO {q(ODD_LOGIN)}")
    assert run(cur, "SELECT name FROM sys.server_principals WHERE name = ?", ODD_LOGIN) == [(ODD_LOGIN,)]
    assert run(cur, "SELECT name FROM sys.database_principals WHERE name = ?", ODD_USER) == [(ODD_USER,)]
    assert run(cur, "SELECT c.name, c.subject, p.name FROM sys.certificates c JOIN sys.database_principals p "
                    "ON p.principal_id = c.principal_id WHERE c.name = ?", ODD_CERT) == [
        (ODD_CERT, "sübjéct ☃ 'quoted'", ODD_USER)]
    assert run(cur, "SELECT name FROM sys.database_mirroring_endpoints") == [(ODD_ENDPOINT,)]
    assert run(cur, "SELECT l.name FROM sys.server_permissions p JOIN sys.server_principals l "
                    "ON l.principal_id = p.grantee_principal_id JOIN sys.endpoints e ON e.endpoint_id = p.major_id "
                    "WHERE e.name = ?", ODD_ENDPOINT) == [(ODD_LOGIN,)]
    # literals with N'' and doubled quotes find them too, and QUOTENAME gives back the bracketed form
    assert run(cur, "SELECT QUOTENAME(name) FROM sys.server_principals WHERE name = N'we]ird ''login ü'") == [
        (q(ODD_LOGIN),)]
    assert run(cur, f"SELECT CERT_ID(N'{ODD_CERT.replace(chr(39), chr(39) * 2)}')") == \
        run(cur, "SELECT certificate_id FROM sys.certificates WHERE name = ?", ODD_CERT)
    # the odd login can log in with its exact name
    cn = h.connect(user=ODD_LOGIN, password="Odd!Passw0rd-1")
    assert run(cn.cursor(), "SELECT SUSER_NAME()") == [(ODD_LOGIN,)]
    cn.close()              # (a login with a session cannot be dropped: 15434)
    # and everything can be dropped by the same quoted names
    cur.execute(f"DROP ENDPOINT {q(ODD_ENDPOINT)}")
    cur.execute(f"DROP CERTIFICATE {q(ODD_CERT)}")
    cur.execute(f"DROP USER {q(ODD_USER)}")
    cur.execute(f"DROP LOGIN {q(ODD_LOGIN)}")
    assert run(cur, "SELECT COUNT(*) FROM sys.server_principals WHERE name = ?", ODD_LOGIN) == [(0,)]


def test_names_are_case_insensitive_but_kept_as_written(one):
    """Default collation SQL_Latin1_General_CP1_CI_AS: names compare case-insensitively."""
    h, cur = one
    cur.execute("CREATE LOGIN MixedCase_Login WITH PASSWORD = 'Mixed!Passw0rd-1'")
    assert fails(cur, "CREATE LOGIN mixedcase_login WITH PASSWORD = 'Mixed!Passw0rd-1'")[0] == 15025
    assert run(cur, "SELECT name FROM sys.server_principals WHERE name = 'MIXEDCASE_LOGIN'") == [("MixedCase_Login",)]


# ---- unknown and unsupported statements ---------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "FROBNICATE",
    "FROBNICATE THE WIDGETS",
    "SELEC name FROM sys.databases",
    "CREATE WIDGET w",
    "ALTER ENDPOINT",
    "GRANT CONNECT ON ENDPOINT:: TO x",
])
def test_unknown_statements_give_a_clear_error(one, statement):
    """Not silence: an error that says the statement is not understood (syntax error, unknown
    procedure, or the lab's 'not supported'), never an unrelated name-resolution error."""
    h, cur = one
    number, text = fails(cur, statement)
    assert number in (102, 156, 2812, 59001), (number, text)
    assert text


@pytest.mark.parametrize("statement, what", [
    ("DBCC CHECKDB", "DBCC"),
    ("RESTORE DATABASE x FROM DISK = 'C:\\x.bak' WITH NORECOVERY", "RESTORE"),
    ("MERGE t USING s ON 1 = 1 WHEN MATCHED THEN DELETE;", "MERGE"),
])
def test_statements_outside_the_subset_say_so(one, statement, what):
    h, cur = one
    number, text = fails(cur, statement)
    assert number == 59001
    assert what in text and "not supported" in text


def test_an_unknown_statement_inside_a_batch_is_not_silent(one):
    h, cur = one
    with pytest.raises(pyodbc.Error):
        cur.execute("SELECT 1 AS one; FROBNICATE THE WIDGETS; SELECT 2 AS two")
        while cur.nextset():
            pass
    assert run(cur, "SELECT 3") == [(3,)]


def test_go_is_a_client_side_separator(one):
    """GO sent to the server is an error (sqlcmd and SSMS split on it)."""
    h, cur = one
    number, _ = fails(cur, "SELECT 1\nGO\nSELECT 2")
    assert number in (102, 156)


# ---- LIKE patterns, cursors ----------------------------------------------------------------------

def test_like_wildcards_and_escapes(one):
    """LIKE (Transact-SQL): % and _, [ ] (a character in the range or set), [^ ] (not in it), and
    ESCAPE. DBAs write `LIKE 'HOST[_]%'` to match a literal underscore."""
    h, cur = one
    cur.execute("CREATE LOGIN kill_test_1 WITH PASSWORD = 'Kill!Passw0rd-1'")
    cur.execute("CREATE LOGIN killXtestY2 WITH PASSWORD = 'Kill!Passw0rd-2'")
    assert run(cur, "SELECT CASE WHEN 'a_b' LIKE 'a[_]b' THEN 1 ELSE 0 END, "
                    "CASE WHEN 'axb' LIKE 'a[_]b' THEN 1 ELSE 0 END, "
                    "CASE WHEN 'abc' LIKE '[a-c]bc' THEN 1 ELSE 0 END, "
                    "CASE WHEN 'dbc' LIKE '[^a-c]bc' THEN 1 ELSE 0 END, "
                    "CASE WHEN '50%' LIKE '50[%]' THEN 1 ELSE 0 END, "
                    "CASE WHEN 'a_b' LIKE 'a!_b' ESCAPE '!' THEN 1 ELSE 0 END") == [(1, 0, 1, 1, 1, 1)]
    assert run(cur, "SELECT name FROM sys.server_principals WHERE name LIKE 'kill[_]test[_]%'") == [("kill_test_1",)]
    assert run(cur, "SELECT name FROM sys.server_principals WHERE name LIKE 'kill_test_%' ORDER BY name") == [
        ("kill_test_1",), ("killXtestY2",)]


def test_two_cursors_on_one_connection(one):
    """After fetchall() has read a result to its end, the connection is free for the next
    statement, on the same cursor or another one (FreeTDS has no MARS: a statement with unread
    results would block it with 24000 'Invalid cursor state')."""
    h, cur = one
    cn = cur.connection
    assert cur.execute("SELECT 1 AS one").fetchall()[0][0] == 1
    other = cn.cursor()
    assert other.execute("SELECT 2 AS two").fetchall()[0][0] == 2
    assert cur.execute("SELECT name FROM sys.endpoints WHERE endpoint_id = ?", 4).fetchall()[0][0] == \
        "TSQL Default TCP"
    assert other.execute("SELECT 3").fetchall()[0][0] == 3
