"""Property: random combinations of faults applied to a working pair (HOST_A initiates, HOST_B
receives) make the probe fail exactly when at least one fault is present; removing them makes
it succeed again. Some settings are deliberately neutral (ROLE = PARTNER for a partner probe,
ENCRYPTION = SUPPORTED against REQUIRED, ALGORITHM RC4 AES against AES): they must not fail it."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from mirroring_setup import (ENDPOINT, PORT, cert_file, cert_name, certencoded, copy_cert_file,
                             forged_certificate, hex_literal, login_name, two_way, url, user_name)

A, B = "HOST_A", "HOST_B"

# dimension -> {value: is it a fault?}; the first value is the working setup
DIMENSIONS = {
    "permission": {"grant": False, "revoked": True, "denied": True},
    "login": {"enabled": False, "disabled": True},
    "peer_certificate": {"original": False, "dropped": True, "other": True, "forged": True},
    "receiver_state": {"STARTED": False, "STOPPED": True, "DISABLED": True},
    # (no RC4 on the receiver: it would make the initiator's RC4 a working setting)
    "receiver_encryption": {"REQUIRED ALGORITHM AES": False, "SUPPORTED ALGORITHM AES": False, "DISABLED": True},
    "initiator_encryption": {"REQUIRED ALGORITHM AES": False, "REQUIRED ALGORITHM RC4 AES": False,
                             "REQUIRED ALGORITHM RC4": True},
    "receiver_role": {"ALL": False, "PARTNER": False, "WITNESS": True},
    "initiator_certificate": {"valid": False, "expired": True},
}
BASELINE = {dim: next(iter(values)) for dim, values in DIMENSIONS.items()}
# the error a lone fault gives
SINGLE = {("permission", "revoked"): 28034, ("permission", "denied"): 28034, ("login", "disabled"): 28034,
          ("peer_certificate", "dropped"): 28035, ("peer_certificate", "other"): 28035,
          ("peer_certificate", "forged"): 28045, ("receiver_state", "STOPPED"): 1418,
          ("receiver_state", "DISABLED"): 9666, ("receiver_encryption", "DISABLED"): 28027,
          ("initiator_encryption", "REQUIRED ALGORITHM RC4"): 28027, ("receiver_role", "WITNESS"): 28027,
          ("initiator_certificate", "expired"): 28035}

configurations = st.fixed_dictionaries({
    dim: st.one_of(st.just(BASELINE[dim]), st.sampled_from(list(values)))   # the working value more often
    for dim, values in DIMENSIONS.items()})


class Pair:
    def __init__(self, lab):
        self.lab = lab
        self.cn = {n: lab[n].connect() for n in (A, B)}
        a = lab[A]
        # material for the certificate faults, made once
        self.run(A, f"CREATE CERTIFICATE {A}_other WITH SUBJECT = '{A} certificate for database mirroring'")
        self.run(A, f"BACKUP CERTIFICATE {A}_other TO FILE = 'C:\\{A}_other.cer'")
        copy_cert_file(lab, A, B, f"C:\\{A}_other.cer")
        self.forged = forged_certificate(certencoded(a, cert_name(A)))
        self.run(A, f"CREATE CERTIFICATE {A}_expired WITH SUBJECT = '{A} expired certificate', "
                    "START_DATE = '2020-01-01', EXPIRY_DATE = '2021-01-01'")
        self.run(A, f"BACKUP CERTIFICATE {A}_expired TO FILE = 'C:\\{A}_expired.cer'")
        copy_cert_file(lab, A, B, f"C:\\{A}_expired.cer")
        self.run(B, f"CREATE CERTIFICATE {A}_expired AUTHORIZATION {user_name(A)} FROM FILE = 'C:\\{A}_expired.cer'")

    def run(self, name: str, statement: str):
        cur = self.cn[name].cursor()
        cur.execute(statement)
        try:
            return cur.fetchall()
        except Exception:
            return []

    def probe(self):
        (row,) = self.run(A, f"EXEC sys.sp_mirrorkit_probe @endpoint_url = N'{url(self.lab[B], PORT)}', "
                             "@peer_role = N'PARTNER'")
        return bool(row[1]), row[2], row[3]

    def set(self, dim: str, value: str) -> None:
        """Change one dimension from the working setup to `value`, or back (value = baseline)."""
        ep = f"ALTER ENDPOINT {ENDPOINT}"
        if dim == "permission":
            self.run(B, f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM {login_name(A)}")
            if value == "grant":
                self.run(B, f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}")
            elif value == "denied":
                self.run(B, f"DENY CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}")
        elif dim == "login":
            self.run(B, f"ALTER LOGIN {login_name(A)} {'ENABLE' if value == 'enabled' else 'DISABLE'}")
        elif dim == "peer_certificate":
            if self.run(B, f"SELECT 1 FROM sys.certificates WHERE name = N'{cert_name(A)}'"):
                self.run(B, f"DROP CERTIFICATE {cert_name(A)}")
            create = f"CREATE CERTIFICATE {cert_name(A)} AUTHORIZATION {user_name(A)} FROM "
            if value == "original":
                self.run(B, create + f"FILE = '{cert_file(A)}'")
            elif value == "other":
                self.run(B, create + f"FILE = 'C:\\{A}_other.cer'")
            elif value == "forged":
                self.run(B, create + f"BINARY = {hex_literal(self.forged)}")
        elif dim == "receiver_state":
            self.run(B, f"{ep} STATE = {value}")
        elif dim == "receiver_encryption":
            self.run(B, f"{ep} FOR DATABASE_MIRRORING (ENCRYPTION = {value})")
        elif dim == "initiator_encryption":
            self.run(A, f"{ep} FOR DATABASE_MIRRORING (ENCRYPTION = {value})")
        elif dim == "receiver_role":
            self.run(B, f"{ep} FOR DATABASE_MIRRORING (ROLE = {value})")
        elif dim == "initiator_certificate":
            cert = cert_name(A) if value == "valid" else f"{A}_expired"
            self.run(A, f"{ep} FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {cert})")
        else:
            raise AssertionError(dim)

    def close(self):
        for cn in self.cn.values():
            cn.close()


def test_probe_fails_exactly_when_a_fault_is_present(lab):
    pair = Pair(two_way(lab, A, B))
    try:
        ok, number, message = pair.probe()
        assert ok, (number, message)

        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(configurations)
        def check(config):
            changed = {dim: v for dim, v in config.items() if v != BASELINE[dim]}
            faults = {(dim, v) for dim, v in changed.items() if DIMENSIONS[dim][v]}
            try:
                for dim, value in changed.items():
                    pair.set(dim, value)
                ok, number, message = pair.probe()
                assert ok == (not faults), (changed, number, message)
                if len(faults) == 1:
                    assert number == SINGLE[next(iter(faults))], (changed, number, message)
            finally:
                for dim in reversed(list(changed)):
                    pair.set(dim, BASELINE[dim])
            ok, number, message = pair.probe()
            assert ok, ("not restored after", changed, number, message)

        check()
    finally:
        pair.close()
