"""Acceptance (lab part 1): Microsoft's certificate examples for database mirroring endpoints.

The outbound (reference spec §1.1) and inbound (§1.2) examples for HOST_A and HOST_B are sent
exactly as written, one GO batch at a time (GO is a client-side separator), to two lab instances.
The certificate file written by BACKUP CERTIFICATE on one instance is copied to the other
instance's server file system with ServerFileSystem.copy. Then the catalog views must show
what the documentation describes.

Doc pages: database-mirroring-use-certificates-for-outbound-connections.md,
database-mirroring-use-certificates-for-inbound-connections.md,
example-setting-up-database-mirroring-using-certificates-transact-sql.md (§1.4 variant),
sys-database-mirroring-endpoints / sys-tcp-endpoints / sys-certificates /
sys-server-permissions / sys-database-principals catalog pages.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime

import pytest
from cryptography import x509

from mirrorkit_lab.process import instance_home

# ---- the documented scripts, verbatim ----------------------------------------------------------

OUTBOUND_A = r"""
CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<1_Strong_Password!>';
GO
USE master;
CREATE CERTIFICATE HOST_A_cert
   WITH SUBJECT = 'HOST_A certificate for database mirroring',
   EXPIRY_DATE = '11/30/2013';
GO
CREATE ENDPOINT Endpoint_Mirroring
   STATE = STARTED
   AS TCP (
      LISTENER_PORT=7024
      , LISTENER_IP = ALL
   )
   FOR DATABASE_MIRRORING (
      AUTHENTICATION = CERTIFICATE HOST_A_cert
      , ENCRYPTION = REQUIRED ALGORITHM AES
      , ROLE = ALL
   );
GO
BACKUP CERTIFICATE HOST_A_cert TO FILE = 'C:\HOST_A_cert.cer';
GO
"""

OUTBOUND_B = r"""
CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<Strong_Password_#2>';
GO
USE master;
CREATE CERTIFICATE HOST_B_cert
   WITH SUBJECT = 'HOST_B certificate for database mirroring',
   EXPIRY_DATE = '11/30/2013';
GO
CREATE ENDPOINT Endpoint_Mirroring
   STATE = STARTED
   AS TCP (
      LISTENER_PORT=7024
      , LISTENER_IP = ALL
   )
   FOR DATABASE_MIRRORING (
      AUTHENTICATION = CERTIFICATE HOST_B_cert
      , ENCRYPTION = REQUIRED ALGORITHM AES
      , ROLE = ALL
   );
GO
BACKUP CERTIFICATE HOST_B_cert TO FILE = 'C:\HOST_B_cert.cer';
GO
"""

# run on HOST_B, for HOST_A
INBOUND_ON_B = r"""
USE master;
CREATE LOGIN HOST_A_login WITH PASSWORD = 'AStrongPassword!@#';
GO
CREATE USER HOST_A_user FOR LOGIN HOST_A_login
GO
CREATE CERTIFICATE HOST_A_cert
   AUTHORIZATION HOST_A_user
   FROM FILE = 'C:\HOST_A_cert.cer';
GO
GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO HOST_A_login
GO
"""

# run on HOST_A, for HOST_B
INBOUND_ON_A = r"""
USE master;
CREATE LOGIN HOST_B_login WITH PASSWORD = '1Sample_Strong_Password!@#';
GO
CREATE USER HOST_B_user FOR LOGIN HOST_B_login
GO
CREATE CERTIFICATE HOST_B_cert
   AUTHORIZATION HOST_B_user
   FROM FILE = 'C:\HOST_B_cert.cer';
GO
GRANT CONNECT ON ENDPOINT::Endpoint_Mirroring TO HOST_B_login
GO
"""

# §1.4 (example-setting-up-database-mirroring-using-certificates): the certificate is created
# without EXPIRY_DATE, and HOST_B's login password differs.
OUTBOUND_A_14 = OUTBOUND_A.replace(
    "   WITH SUBJECT = 'HOST_A certificate for database mirroring',\n   EXPIRY_DATE = '11/30/2013';",
    "   WITH SUBJECT = 'HOST_A certificate';")
OUTBOUND_B_14 = OUTBOUND_B.replace(
    "   WITH SUBJECT = 'HOST_B certificate for database mirroring',\n   EXPIRY_DATE = '11/30/2013';",
    "   WITH SUBJECT = 'HOST_B certificate';")
INBOUND_ON_A_14 = INBOUND_ON_A.replace("'1Sample_Strong_Password!@#'", "'=Sample#2_Strong_Password2'")

VARIANTS = {
    "outbound-inbound-pages": (OUTBOUND_A, OUTBOUND_B, INBOUND_ON_A, INBOUND_ON_B),
    "example-page": (OUTBOUND_A_14, OUTBOUND_B_14, INBOUND_ON_A_14, INBOUND_ON_B),
}


def batches(script: str) -> list[str]:
    """Split a script on GO lines, as sqlcmd/SSMS do on the client side."""
    parts = re.split(r"(?im)^[ \t]*GO[ \t]*$", script)
    return [p.strip() for p in parts if p.strip()]


def run_script(handle, script: str) -> None:
    with handle.connect() as cn:
        cur = cn.cursor()
        for batch in batches(script):
            cur.execute(batch)
            while cur.nextset():
                pass


def copy_file(lab, src: str, dst: str, path: str) -> None:
    """Copy a file between the instances' server file systems (the documented 'copy it to the
    other system' step)."""
    lab[dst].instance.fs.copy(lab[src].instance.fs, path, path)


def setup_pair(lab, variant: str):
    outbound_a, outbound_b, inbound_a, inbound_b = VARIANTS[variant]
    l = lab("HOST_A", "HOST_B")
    run_script(l["HOST_A"], outbound_a)
    run_script(l["HOST_B"], outbound_b)
    copy_file(l, "HOST_A", "HOST_B", r"C:\HOST_A_cert.cer")
    copy_file(l, "HOST_B", "HOST_A", r"C:\HOST_B_cert.cer")
    run_script(l["HOST_A"], inbound_a)
    run_script(l["HOST_B"], inbound_b)
    return l


PEERS = {"HOST_A": "HOST_B", "HOST_B": "HOST_A"}


def test_batch_splitter_follows_go_lines():
    assert len(batches(OUTBOUND_A)) == 4
    assert len(batches(INBOUND_ON_B)) == 4
    assert batches(INBOUND_ON_B)[1] == "CREATE USER HOST_A_user FOR LOGIN HOST_A_login"
    # the §1.4 variants really differ where the example page says they do
    assert "EXPIRY_DATE" not in OUTBOUND_A_14 and "EXPIRY_DATE" not in OUTBOUND_B_14
    assert "=Sample#2_Strong_Password2" in INBOUND_ON_A_14


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_documented_examples_build_the_documented_catalog(lab, variant):
    l = setup_pair(lab, variant)
    rows: dict[str, dict] = {}
    for me, peer in PEERS.items():
        h = l[me]
        with h.connect() as cn:
            cur = cn.cursor()
            local_cert, peer_cert = f"{me}_cert", f"{peer}_cert"
            peer_login, peer_user = f"{peer}_login", f"{peer}_user"

            # the documented check on the outbound page
            cur.execute("SELECT name, role_desc, state_desc, connection_auth_desc, encryption_algorithm_desc "
                        "FROM sys.database_mirroring_endpoints;")
            assert [tuple(r) for r in cur.fetchall()] == [
                ("Endpoint_Mirroring", "ALL", "STARTED", "CERTIFICATE", "AES")], me

            # exactly one DATABASE_MIRRORING endpoint, with codes as sys.database_mirroring_endpoints documents
            cur.execute("SELECT COUNT(*) FROM sys.endpoints WHERE type = 4")
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT endpoint_id, type_desc, protocol_desc, state, connection_auth, certificate_id, "
                        "encryption_algorithm, is_encryption_enabled, role FROM sys.database_mirroring_endpoints")
            ep = cur.fetchone()
            cur.execute("SELECT CERT_ID(?)", local_cert)
            local_cert_id = cur.fetchone()[0]
            assert local_cert_id is not None
            assert (ep.type_desc, ep.protocol_desc, ep.state, ep.connection_auth, ep.certificate_id,
                    ep.encryption_algorithm, bool(ep.is_encryption_enabled), ep.role) == \
                ("DATABASE_MIRRORING", "TCP", 0, 4, local_cert_id, 2, True, 3), me
            assert ep.endpoint_id >= 65536          # "< 65536 is a system endpoint"
            cur.execute("SELECT port, is_dynamic_port FROM sys.tcp_endpoints WHERE type_desc = 'DATABASE_MIRRORING'")
            assert [tuple(r) for r in cur.fetchall()] == [(7024, False)]

            # the database master key the outbound page creates
            cur.execute("SELECT COUNT(*) FROM sys.symmetric_keys WHERE name = '##MS_DatabaseMasterKey##'")
            assert cur.fetchone()[0] == 1

            # certificates: the local one with its private key under the DMK, the peer's public only,
            # owned by the peer user
            cur.execute("SELECT c.name, c.certificate_id, c.pvt_key_encryption_type, c.pvt_key_encryption_type_desc, "
                        "p.name AS owner FROM sys.certificates c "
                        "JOIN sys.database_principals p ON p.principal_id = c.principal_id ORDER BY c.name")
            certs = {r.name: r for r in cur.fetchall()}
            assert set(certs) == {local_cert, peer_cert}, me
            assert (certs[local_cert].pvt_key_encryption_type, certs[local_cert].pvt_key_encryption_type_desc) == \
                ("MK", "ENCRYPTED_BY_MASTER_KEY")
            assert certs[local_cert].certificate_id == local_cert_id
            assert (certs[peer_cert].pvt_key_encryption_type, certs[peer_cert].pvt_key_encryption_type_desc) == \
                ("NA", "NO_PRIVATE_KEY")
            assert certs[peer_cert].owner == peer_user

            # the peer login (SQL login) and its user in master, linked by SID
            cur.execute("SELECT l.type, l.type_desc, u.name, u.type, u.type_desc FROM sys.server_principals l "
                        "JOIN sys.database_principals u ON u.sid = l.sid WHERE l.name = ?", peer_login)
            assert [tuple(r) for r in cur.fetchall()] == [("S", "SQL_LOGIN", peer_user, "S", "SQL_USER")]

            # the CONNECT grant row for the peer login (class 105 = ENDPOINT, type char(4) 'CO')
            cur.execute("SELECT sp.class, sp.class_desc, sp.minor_id, sp.type, sp.permission_name, sp.state, "
                        "sp.state_desc FROM sys.server_permissions sp "
                        "JOIN sys.server_principals l ON l.principal_id = sp.grantee_principal_id "
                        "WHERE sp.major_id = ? AND l.name = ?", ep.endpoint_id, peer_login)
            assert [tuple(r) for r in cur.fetchall()] == [
                (105, "ENDPOINT", 0, "CO  ", "CONNECT", "G", "GRANT")], me

            cur.execute("SELECT name, thumbprint, cert_serial_number, issuer_name, subject, start_date, expiry_date "
                        "FROM sys.certificates")
            rows[me] = {r.name: tuple(r)[1:] for r in cur.fetchall()}

    # the same certificate has the same thumbprint (and serial, issuer, subject, dates) on both instances
    for name in ("HOST_A_cert", "HOST_B_cert"):
        assert rows["HOST_A"][name] == rows["HOST_B"][name], name
    assert rows["HOST_A"]["HOST_A_cert"][0] != rows["HOST_A"]["HOST_B_cert"][0]

    # expiry dates as the pages describe them
    for name in ("HOST_A_cert", "HOST_B_cert"):
        subject, start, expiry = rows["HOST_A"][name][3:6]
        if variant == "outbound-inbound-pages":
            assert subject == f"{name[:6]} certificate for database mirroring"
            assert expiry == datetime(2013, 11, 30)
        else:   # no EXPIRY_DATE: "expires 1 year after creation"
            assert subject == f"{name[:6]} certificate"
            assert 365 <= (expiry - start).days <= 366, (start, expiry)


def test_backup_file_is_the_der_certificate_in_the_instance_file_system(lab):
    l = setup_pair(lab, "outbound-inbound-pages")
    for me, peer in PEERS.items():
        path = rf"C:\{me}_cert.cer"
        # each instance has its own server file system under its home directory
        home = instance_home(l.state_dir, me)
        assert l[me].instance.home == home
        host_file = home / "fs" / "C" / f"{me}_cert.cer"
        assert host_file.is_file()
        der = l[me].instance.fs.read_bytes(path)
        assert der == host_file.read_bytes()
        # ... and the copy on the peer is the same bytes, under the peer's home
        assert (instance_home(l.state_dir, peer) / "fs" / "C" / f"{me}_cert.cer").read_bytes() == der
        cert = x509.load_der_x509_certificate(der)          # DER-encoded, as documented
        assert cert.subject.rfc4514_string() == f"CN={me} certificate for database mirroring"
        # sys.certificates.thumbprint is the SHA-1 of the certificate
        with l[me].connect() as cn:
            thumb = cn.cursor().execute("SELECT thumbprint FROM sys.certificates WHERE name = ?",
                                        f"{me}_cert").fetchone()[0]
        assert bytes(thumb) == hashlib.sha1(der).digest()
        # the public certificate only: a BACKUP without WITH PRIVATE KEY writes no key file
        assert sorted(p.name for p in (home / "fs" / "C").iterdir()) == sorted(
            [f"{me}_cert.cer", f"{peer}_cert.cer"])


def test_examples_are_idempotent_only_where_documented(lab):
    """Re-running the outbound script fails on the first statement (15578), the endpoint (7862) and
    the backup file (15240), as the docs' error tables describe; the catalog stays as it was."""
    l = setup_pair(lab, "outbound-inbound-pages")
    import pyodbc
    numbers = []
    with l["HOST_A"].connect() as cn:
        cur = cn.cursor()
        before = [tuple(r) for r in cur.execute("SELECT * FROM sys.certificates ORDER BY name").fetchall()]
        for batch in batches(OUTBOUND_A):
            try:
                cur.execute(batch)
                while cur.nextset():
                    pass
                numbers.append(0)
            except pyodbc.Error as e:
                numbers.append(int(re.search(r"\((\d+)\) \(SQL\w+\)$", e.args[1]).group(1)))
        after = [tuple(r) for r in cur.execute("SELECT * FROM sys.certificates ORDER BY name").fetchall()]
    assert numbers == [15578, 15232, 7862, 15240]
    assert before == after
