"""Acceptance: starting from the working two-way setup, each single fault makes the probe
HOST_A -> HOST_B fail with the documented cause and leaves the documented message in the
RECEIVER's error log (read through pyodbc with sp_readerrorlog); undoing the fault makes the
probe succeed again.

Documented messages: spec §4.2 (28027, 28034, 28035, 28045, 28055, 9666, 9691), §4.4, §7 items 1-8.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pytest

from mirroring_setup import (ENDPOINT, LogWatch, assert_probe_fails, assert_probe_ok, cert_file, cert_name,
                             certencoded, copy_cert_file, errorlog, forged_certificate, hex_literal, listening,
                             login_name, two_way, url, user_name, PORT)

A, B = "HOST_A", "HOST_B"

MSG_28034 = f"Connection handshake failed. The login '{login_name(A)}' does not have CONNECT permission on the endpoint."
MSG_28048 = f"Database Mirroring login attempt by user '{login_name(A)}.' failed with error"
MSG_28035_NOT_FOUND = ("Connection handshake failed. The certificate used by the peer is invalid due to the "
                       "following reason: Certificate not found.")
MSG_28035_EXPIRED = ("Connection handshake failed. The certificate used by the peer is invalid due to the "
                     "following reason: Certificate expired.")
MSG_28045 = ("Connection handshake failed. The certificate used by the peer does not match the one in MASTER "
             "database with same issuer name and serial number.")
MSG_28027_ENCRYPTION = "Connection handshake failed. There is no compatible encryption algorithm."
MSG_28027 = "Connection handshake failed. There is no compatible"
MSG_9666 = "The Database Mirroring protocol transport is disabled or not configured."
MSG_9691 = "The Database Mirroring protocol transport has stopped listening for connections."
MSG_28055 = (f"The certificate '{A}_expired' is not valid for endpoint authentication. The certificate must "
             "have a private key encrypted with the database master key and current UTC date has to be between "
             "the certificate start date and the certificate expiration date.")


def _msg_no_state(text: str) -> str:
    """The documented template up to its 'State %d.' part (the state number is not documented)."""
    return text.rstrip(".")


@dataclass
class Fault:
    number: int                              # error_number the probe reports
    log: list[str]                           # texts that must appear (newly) in the receiver's error log
    apply: Callable
    undo: Callable
    role: str = "PARTNER"                    # @peer_role of the probe
    in_message: list[str] = field(default_factory=list)   # texts the probe's message must contain


def ep(h, clause: str) -> None:
    h.sql(f"ALTER ENDPOINT {ENDPOINT} {clause}")


def _regrant(l):
    l[B].sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM {login_name(A)}")
    l[B].sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}")


def _reimport_original(l):
    l[B].sql(f"DROP CERTIFICATE {cert_name(A)}")
    l[B].sql(f"CREATE CERTIFICATE {cert_name(A)} AUTHORIZATION {user_name(A)} FROM FILE = '{cert_file(A)}'")


def _import_other_certificate(l):
    # another certificate of the initiator (same subject, so same issuer name; new serial number)
    l[A].sql(f"CREATE CERTIFICATE {A}_other WITH SUBJECT = '{A} certificate for database mirroring'")
    l[A].sql(f"BACKUP CERTIFICATE {A}_other TO FILE = 'C:\\{A}_other.cer'")
    copy_cert_file(l, A, B, f"C:\\{A}_other.cer")
    l[B].sql(f"DROP CERTIFICATE {cert_name(A)}")
    l[B].sql(f"CREATE CERTIFICATE {cert_name(A)} AUTHORIZATION {user_name(A)} FROM FILE = 'C:\\{A}_other.cer'")


def _import_forged_certificate(l):
    real = certencoded(l[A], cert_name(A))
    forged = forged_certificate(real)
    l[B].sql(f"DROP CERTIFICATE {cert_name(A)}")
    l[B].sql(f"CREATE CERTIFICATE {cert_name(A)} AUTHORIZATION {user_name(A)} FROM BINARY = {hex_literal(forged)}")
    # the receiver now knows a certificate with the same issuer and serial number as A's, but another key
    cols = "issuer_name, cert_serial_number, subject"
    on_a = l[A].sql(f"SELECT {cols} FROM sys.certificates WHERE name = N'{cert_name(A)}'")
    on_b = l[B].sql(f"SELECT {cols} FROM sys.certificates WHERE name = N'{cert_name(A)}'")
    assert [tuple(r) for r in on_a] == [tuple(r) for r in on_b]
    assert certencoded(l[B], cert_name(A)) == forged


def _use_expired_certificate(l):
    l[A].sql(f"CREATE CERTIFICATE {A}_expired WITH SUBJECT = '{A} expired certificate', "
             "START_DATE = '2020-01-01', EXPIRY_DATE = '2021-01-01'")
    l[A].sql(f"BACKUP CERTIFICATE {A}_expired TO FILE = 'C:\\{A}_expired.cer'")
    copy_cert_file(l, A, B, f"C:\\{A}_expired.cer")
    l[B].sql(f"CREATE CERTIFICATE {A}_expired AUTHORIZATION {user_name(A)} FROM FILE = 'C:\\{A}_expired.cer'")
    ep(l[A], f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {A}_expired)")


FAULTS = {
    "connect-revoked": Fault(
        28034, ["Error: 28034", MSG_28034, MSG_28048],
        lambda l: l[B].sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM {login_name(A)}"),
        lambda l: l[B].sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}"),
        in_message=[MSG_28034]),
    "connect-denied": Fault(
        28034, ["Error: 28034", MSG_28034, MSG_28048],
        lambda l: l[B].sql(f"DENY CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}"),
        _regrant, in_message=[MSG_28034]),
    "connect-denied-to-public-while-login-has-grant": Fault(
        28034, ["Error: 28034", MSG_28034, MSG_28048],
        lambda l: l[B].sql(f"DENY CONNECT ON ENDPOINT::{ENDPOINT} TO [public]"),
        lambda l: l[B].sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM [public]"),
        in_message=[MSG_28034]),
    "connect-denied-while-public-has-grant": Fault(
        28034, ["Error: 28034", MSG_28034, MSG_28048],
        lambda l: (l[B].sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO [public]"),
                   l[B].sql(f"DENY CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}")),
        lambda l: l[B].sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM {login_name(A)}"),
        in_message=[MSG_28034]),
    "connect-denied-while-login-has-control": Fault(
        28034, ["Error: 28034", MSG_28034, MSG_28048],
        lambda l: (l[B].sql(f"GRANT CONTROL ON ENDPOINT::{ENDPOINT} TO {login_name(A)}"),
                   l[B].sql(f"DENY CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}")),
        lambda l: l[B].sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM {login_name(A)}"),
        in_message=[MSG_28034]),
    "peer-login-disabled": Fault(
        28034, ["Error: 28034", MSG_28034, MSG_28048],
        lambda l: l[B].sql(f"ALTER LOGIN {login_name(A)} DISABLE"),
        lambda l: l[B].sql(f"ALTER LOGIN {login_name(A)} ENABLE"),
        in_message=[MSG_28034]),
    "peer-certificate-dropped": Fault(
        28035, ["Error: 28035", MSG_28035_NOT_FOUND],
        lambda l: l[B].sql(f"DROP CERTIFICATE {cert_name(A)}"),
        lambda l: l[B].sql(f"CREATE CERTIFICATE {cert_name(A)} AUTHORIZATION {user_name(A)} "
                           f"FROM FILE = '{cert_file(A)}'"),
        in_message=[MSG_28035_NOT_FOUND]),
    "other-certificate-imported-for-peer": Fault(
        28035, ["Error: 28035", MSG_28035_NOT_FOUND],
        _import_other_certificate, _reimport_original, in_message=[MSG_28035_NOT_FOUND]),
    "forged-certificate-same-issuer-and-serial": Fault(
        28045, ["Error: 28045", MSG_28045],
        _import_forged_certificate, _reimport_original, in_message=[MSG_28045]),
    "endpoint-disabled": Fault(
        9666, ["Error: 9666", MSG_9666],
        lambda l: ep(l[B], "STATE = DISABLED"), lambda l: ep(l[B], "STATE = STARTED"),
        in_message=[MSG_9666]),
    "encryption-disabled-on-receiver": Fault(
        28027, ["Error: 28027", MSG_28027_ENCRYPTION],
        lambda l: ep(l[B], "FOR DATABASE_MIRRORING (ENCRYPTION = DISABLED)"),
        lambda l: ep(l[B], "FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES)"),
        in_message=[MSG_28027_ENCRYPTION]),
    "encryption-disabled-on-initiator": Fault(
        28027, ["Error: 28027", MSG_28027_ENCRYPTION],
        lambda l: ep(l[A], "FOR DATABASE_MIRRORING (ENCRYPTION = DISABLED)"),
        lambda l: ep(l[A], "FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES)"),
        in_message=[MSG_28027_ENCRYPTION]),
    "rc4-initiator-aes-receiver": Fault(
        28027, ["Error: 28027", MSG_28027_ENCRYPTION],
        lambda l: ep(l[A], "FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM RC4)"),
        lambda l: ep(l[A], "FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES)"),
        in_message=[MSG_28027_ENCRYPTION]),
    "aes-initiator-rc4-receiver": Fault(
        28027, ["Error: 28027", MSG_28027_ENCRYPTION],
        lambda l: ep(l[B], "FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM RC4)"),
        lambda l: ep(l[B], "FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES)"),
        in_message=[MSG_28027_ENCRYPTION]),
    "initiator-certificate-expired": Fault(
        28035, ["Error: 28035", MSG_28035_EXPIRED],
        _use_expired_certificate,
        lambda l: ep(l[A], f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {cert_name(A)})"),
        in_message=[MSG_28035_EXPIRED]),
    "witness-endpoint-probed-as-partner": Fault(
        28027, ["Error: 28027", MSG_28027, "role"],
        lambda l: ep(l[B], "FOR DATABASE_MIRRORING (ROLE = WITNESS)"),
        lambda l: ep(l[B], "FOR DATABASE_MIRRORING (ROLE = ALL)"),
        in_message=[MSG_28027, "role"]),
    "partner-endpoint-probed-as-witness": Fault(
        28027, ["Error: 28027", MSG_28027, "role"],
        lambda l: ep(l[B], "FOR DATABASE_MIRRORING (ROLE = PARTNER)"),
        lambda l: ep(l[B], "FOR DATABASE_MIRRORING (ROLE = ALL)"),
        role="WITNESS", in_message=[MSG_28027, "role"]),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_single_fault_fails_the_probe_and_logs_on_the_receiver(lab, name):
    fault = FAULTS[name]
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    assert_probe_ok(a, b, fault.role)

    fault.apply(l)
    watch = LogWatch(b, *fault.log)
    p = assert_probe_fails(a, b, fault.number, fault.role)
    for text in fault.in_message:
        assert text.lower() in p.message.lower(), (text, p.message)
    for text in fault.log:
        new = watch.new(text)
        assert new, f"{name}: no new line containing {text!r} in {B}'s error log"
    # the logged handshake message itself carries what the probe reports (e.g. 28027 names the role)
    logged = watch.new(fault.log[1])
    assert any(all(t.lower() in line.lower() for t in fault.in_message) for line in logged), logged
    # a refused handshake leaves no connection behind on the initiator
    assert a.sql("SELECT COUNT(*) FROM sys.dm_db_mirroring_connections WHERE is_accept = 0")[0][0] == 0

    fault.undo(l)
    assert_probe_ok(a, b, fault.role)


def test_28034_is_logged_in_the_28048_form_naming_the_login(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    b.sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM {login_name(A)}")
    assert_probe_fails(a, b, 28034)
    (line,) = errorlog(b, MSG_28048)
    # spec §4.2: Database Mirroring login attempt by user '<login>.' failed with error: '<28034 text>'. [CLIENT: ip]
    assert f"'{_msg_no_state(MSG_28034)}" in line
    assert f"[CLIENT: {a.host}]" in line


def test_dropping_a_certificate_owned_by_a_user_keeps_the_login_and_user(lab):
    l = two_way(lab, A, B)
    b = l[B]
    b.sql(f"DROP CERTIFICATE {cert_name(A)}")
    assert b.sql(f"SELECT COUNT(*) FROM sys.certificates WHERE name = N'{cert_name(A)}'")[0][0] == 0
    assert b.sql(f"SELECT COUNT(*) FROM sys.server_principals WHERE name = N'{login_name(A)}'")[0][0] == 1
    assert b.sql(f"SELECT COUNT(*) FROM sys.database_principals WHERE name = N'{user_name(A)}'")[0][0] == 1
    assert_probe_fails(l[A], b, 28035)


def test_stopped_endpoint_does_not_listen(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    assert_probe_ok(a, b)
    watch = LogWatch(b, MSG_9691)
    ep(b, "STATE = STOPPED")
    assert not listening(b.host, PORT)
    p = assert_probe_fails(a, b, 1418)
    assert f'The server network address "{url(b)}" can not be reached or does not exist' in p.message
    assert watch.new(MSG_9691), f"{B}'s error log does not say that the transport stopped listening"
    assert b.sql("SELECT state_desc FROM sys.database_mirroring_endpoints")[0][0] == "STOPPED"
    # the stopped endpoint dropped the connection it had accepted
    assert b.sql("SELECT COUNT(*) FROM sys.dm_db_mirroring_connections")[0][0] == 0

    ep(b, "STATE = STARTED")
    assert listening(b.host, PORT)
    assert_probe_ok(a, b)


def test_disabled_endpoint_listens_but_refuses(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    ep(b, "STATE = DISABLED")
    assert listening(b.host, PORT)
    assert_probe_fails(a, b, 9666)
    ep(b, "STATE = STARTED")
    assert_probe_ok(a, b)


def test_expired_endpoint_certificate_also_logs_28055_on_the_initiator(lab):
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    watch_a = LogWatch(a, "Error: 28055", MSG_28055)
    watch_b = LogWatch(b, MSG_28035_EXPIRED)
    _use_expired_certificate(l)
    # only the expiry is wrong: the receiver has the very certificate, owned by the peer user with CONNECT
    assert certencoded(a, f"{A}_expired") == certencoded(b, f"{A}_expired")
    assert_probe_fails(a, b, 28035)
    assert watch_b.new(MSG_28035_EXPIRED)
    assert watch_a.new("Error: 28055")
    assert watch_a.new(MSG_28055)
    # the other direction is unaffected: B's certificate is valid and A still accepts it
    assert_probe_ok(b, a)


def test_deny_to_public_written_without_brackets(lab):
    """`TO public` / `FROM public` (the keyword, unbracketed) is how GRANT/DENY/REVOKE address the
    public role in T-SQL; DENY to public beats the login's own GRANT."""
    l = two_way(lab, A, B)
    a, b = l[A], l[B]
    b.sql(f"DENY CONNECT ON ENDPOINT::{ENDPOINT} TO public")
    assert_probe_fails(a, b, 28034)
    b.sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM public")
    assert_probe_ok(a, b)
