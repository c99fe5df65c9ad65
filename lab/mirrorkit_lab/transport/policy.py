"""How an endpoint decides about a peer: pure functions over catalog facts.

Sources: t-sql/statements/create-endpoint-transact-sql.md (ENCRYPTION, ALGORITHM,
ROLE, "the endpoint accepting the connection wins"), database-mirroring/
transport-security-database-mirroring-always-on-availability.md, and the 28000
error table for the handshake messages. docs/lab-fidelity.md lists the inferences.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# sys.database_mirroring_endpoints.encryption_algorithm -> (mode, algorithms in preference order)
ENCRYPTION = {
    0: ("DISABLED", ()), 1: ("REQUIRED", ("RC4",)), 2: ("REQUIRED", ("AES",)),
    3: ("SUPPORTED", ("RC4",)), 4: ("SUPPORTED", ("AES",)), 5: ("REQUIRED", ("RC4", "AES")),
    6: ("REQUIRED", ("AES", "RC4")), 7: ("SUPPORTED", ("RC4", "AES")), 8: ("SUPPORTED", ("AES", "RC4")),
}
ALGORITHM_CODE = {"NONE": 0, "RC4": 1, "AES": 2}
ROLE_SERVES = {0: (), 1: ("PARTNER",), 2: ("WITNESS",), 3: ("PARTNER", "WITNESS")}
# sys.database_mirroring_endpoints.connection_auth -> methods in the order tried
AUTH_METHODS = {
    1: ("NTLM",), 2: ("KERBEROS",), 3: ("NEGOTIATE",), 4: ("CERTIFICATE",),
    5: ("NTLM", "CERTIFICATE"), 6: ("KERBEROS", "CERTIFICATE"), 7: ("NEGOTIATE", "CERTIFICATE"),
    8: ("CERTIFICATE", "NTLM"), 9: ("CERTIFICATE", "KERBEROS"), 10: ("CERTIFICATE", "NEGOTIATE"),
}

# handshake failures: (number, state, template)
TEMPLATES = {
    28027: "Connection handshake failed. There is no compatible {}. State {}.",
    28034: "Connection handshake failed. The login '{}' does not have CONNECT permission on the endpoint. State {}.",
    28035: "Connection handshake failed. The certificate used by the peer is invalid due to the following "
           "reason: {}. State {}.",
    28038: "Connection handshake failed. The handshake verification failed. State {}.",
    28045: "Connection handshake failed. The certificate used by the peer does not match the one in MASTER "
           "database with same issuer name and serial number. State {}.",
    28080: "Connection handshake failed. The {} endpoint is not configured. State {}.",
    9666: "The {} protocol transport is disabled or not configured.",
}


@dataclass(frozen=True)
class Refusal:
    """Why an endpoint refused a peer; `login` is set once the peer was mapped to a login."""
    number: int
    text: str
    login: Optional[str] = None

    def logged(self, client: str) -> str:
        """The error-log line, wrapped in 28047/28048 as SQL Server logs handshake failures."""
        if self.login is not None:
            return (f"Database Mirroring login attempt by user '{self.login}.' failed with error: "
                    f"'{self.text}'.  [CLIENT: {client}]")
        return f"Database Mirroring login attempt failed with error: '{self.text}'.  [CLIENT: {client}]"


def refusal(number: int, *args, login: Optional[str] = None) -> Refusal:
    return Refusal(number, TEMPLATES[number].format(*args), login)


def negotiate_encryption(acceptor_code: int, initiator_code: int) -> tuple[Optional[str], Optional[Refusal]]:
    """The algorithm both sides use ('NONE' for none), or why they cannot talk.

    REQUIRED needs the peer to encrypt; DISABLED never encrypts; SUPPORTED encrypts
    when the peer does. With different preference orders the acceptor's order wins.
    """
    a_mode, a_algs = ENCRYPTION[acceptor_code]
    i_mode, i_algs = ENCRYPTION[initiator_code]
    if "DISABLED" in (a_mode, i_mode):
        if "REQUIRED" in (a_mode, i_mode):
            return None, refusal(28027, "encryption algorithm", 21)
        return "NONE", None
    for alg in a_algs:
        if alg in i_algs:
            return alg, None
    return None, refusal(28027, "encryption algorithm", 22)


def common_authentication(acceptor_auth: int, initiator_auth: int) -> Optional[str]:
    a = AUTH_METHODS.get(acceptor_auth, ())
    i = AUTH_METHODS.get(initiator_auth, ())
    for method in a:
        if method in i:
            return method
    return None


def serves(role_code: int, requested: str) -> bool:
    return requested in ROLE_SERVES.get(role_code, ())
