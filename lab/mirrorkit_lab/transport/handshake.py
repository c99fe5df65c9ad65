"""The certificate handshake between two lab endpoints, over TCP.

initiator                                   acceptor
  hello(certificate, nonce_i, auth, encryption, role) ->
                                            <- challenge(nonce_a)   or failure
  proof(sign(nonce_a | nonce_i | thumbprint)) ->
                                            <- accept(algorithm, certificate, sign(nonce_i | nonce_a))
                                               or failure(number, message)

The acceptor decides in the order SQL Server's documentation describes the checks
(endpoint state, authentication, peer certificate, its owner's login and CONNECT,
encryption, role) and writes each refusal to its error log.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from .. import crypto
from ..engine import store
from . import catalog, policy, wire
from .policy import Refusal, refusal

if TYPE_CHECKING:
    from . import MirroringTransport

HANDSHAKE_TIMEOUT = 10.0


def _signed(*parts: bytes) -> bytes:
    return b"mirrorkit-dbm-proof\x00" + b"\x00".join(parts)


class Refused(Exception):
    def __init__(self, refusal: Refusal):
        super().__init__(refusal.text)
        self.refusal = refusal


@dataclass
class Outcome:
    succeeded: bool
    number: Optional[int]
    message: str
    algorithm: Optional[str] = None


# -- acceptor ---------------------------------------------------------------------------------------------
def accept(transport: "MirroringTransport", sock: socket.socket, client: str) -> None:
    inst = transport.instance
    epoch = transport.registry.epoch
    sock.settimeout(HANDSHAKE_TIMEOUT)
    conn = store.connect(inst.db_path)
    hello: dict = {}
    try:
        try:
            try:
                hello = wire.recv(sock, "hello")
            except wire.ProtocolError:
                # a port check (connect, then close) is not a handshake: nothing to log
                _close(sock)
                return
            live = _accept_checks(conn, sock, hello)
        except Refused as exc:
            inst.errorlog.write("Logon", f"Error: {exc.refusal.number}, Severity: 10, State: 1.")
            inst.errorlog.write("Logon", exc.refusal.logged(client))
            try:
                wire.send(sock, "failure", number=exc.refusal.number, message=exc.refusal.logged(client))
            except OSError:
                pass
            _close(sock)
            return
        except (wire.ProtocolError, OSError, ValueError, KeyError, TypeError) as exc:
            inst.errorlog.write("Logon", f"Database Mirroring connection error: the handshake from "
                                         f"{client} failed: {exc}")
            _close(sock)
            return
    finally:
        conn.close()
    principal, peer_cert_id, algorithm, reply = live
    from .registry import LiveConnection
    key = f"accept:{hello.get('instance', '')}@{client}"
    # registered before the initiator hears "accept", so both sides show it when the probe returns
    if not transport.registry.add(LiveConnection(key, sock, True, principal, peer_cert_id, algorithm), epoch):
        return
    try:
        wire.send(sock, "accept", **reply)
    except OSError:
        transport.registry.remove(key, sock)
        return
    transport.watch(key, sock)


def _accept_checks(conn, sock: socket.socket, hello: dict) -> tuple[Optional[str], int, str, dict]:
    ep = catalog.endpoint(conn)
    if ep is None or ep.state == 1:
        raise Refused(refusal(28080, "Database Mirroring", 1))
    if ep.state == 2:
        raise Refused(refusal(9666, "Database Mirroring"))
    method = policy.common_authentication(ep.connection_auth, int(hello["auth"]))
    if method is None:
        raise Refused(refusal(28027, "authentication protocol", 11))
    if method != "CERTIFICATE":
        # the lab has no Windows domain: SSPI (NTLM/Kerberos) never succeeds
        raise Refused(refusal(28027, "authentication protocol", 31))
    der = hello.get("certificate")
    if not isinstance(der, bytes):
        raise Refused(refusal(28035, "The certificate is missing", 81))
    try:
        info = crypto.certificate_info(der)
    except crypto.CryptoError:
        raise Refused(refusal(28035, "The certificate is not valid", 82)) from None
    nonce_i = hello.get("nonce")
    if not isinstance(nonce_i, bytes) or len(nonce_i) != 32:
        raise wire.ProtocolError("bad nonce")
    nonce_a = os.urandom(32)
    wire.send(sock, "challenge", nonce=nonce_a)
    proof = wire.recv(sock, "proof")
    if not crypto.verify_challenge(der, _signed(nonce_a, nonce_i, info.thumbprint), proof.get("signature", b"")):
        raise Refused(refusal(28038, 41))
    now = store.utcnow()
    if now > info.not_after:
        raise Refused(refusal(28035, "Certificate expired", 87))
    if now < info.not_before:
        raise Refused(refusal(28035, "Certificate not yet valid", 88))
    candidates = catalog.certificates_by_issuer_serial(conn, info.issuer_name, info.serial_text)
    if not candidates:
        raise Refused(refusal(28035, "Certificate not found", 89))
    match = next((c for c in candidates if c.thumbprint == info.thumbprint), None)
    if match is None:
        raise Refused(refusal(28045, 70))
    if not match.valid_at(now):
        raise Refused(refusal(28035, "Certificate expired" if now > match.expiry else "Certificate not yet valid", 90))
    owner = catalog.certificate_owner(conn, match)
    if owner.login_id is None:
        raise Refused(refusal(28034, owner.user_name or match.name, 84, login=owner.user_name or match.name))
    if owner.login_disabled or not catalog.may_connect(conn, owner.login_id, ep.name):
        raise Refused(refusal(28034, owner.login_name, 84, login=owner.login_name))
    algorithm, why = policy.negotiate_encryption(ep.encryption_algorithm, int(hello["encryption"]))
    if why is not None:
        raise Refused(Refusal(why.number, why.text, owner.login_name))
    requested = str(hello.get("role", "PARTNER")).upper()
    if not policy.serves(ep.role, requested):
        raise Refused(refusal(28027, f"endpoint role for a {requested.lower()} connection", 23,
                              login=owner.login_name))
    own = catalog.certificate(conn, ep.certificate_id) if ep.certificate_id else None
    own_key = catalog.endpoint_private_key(conn, own) if own else None
    fields = {"algorithm": algorithm}
    if own is not None and own_key is not None:
        fields["certificate"] = own.der
        fields["signature"] = crypto.sign_challenge(own_key, _signed(nonce_i, nonce_a))
    return owner.user_name, match.certificate_id, algorithm, fields


# -- initiator ----------------------------------------------------------------------------------------------
def initiate(transport: "MirroringTransport", host: str, port: int, url: str, role: str) -> Outcome:
    inst = transport.instance
    conn = store.connect(inst.db_path)
    try:
        ep = catalog.endpoint(conn)
        if ep is None:
            return _local_failure(inst, 28080, policy.TEMPLATES[28080].format("Database Mirroring", 1))
        if ep.state != 0:
            return _local_failure(inst, 1486, "Database Mirroring Transport is disabled in the endpoint "
                                              "configuration.")
        cert = key = None
        if "CERTIFICATE" in policy.AUTH_METHODS.get(ep.connection_auth, ()):
            cert = catalog.certificate(conn, ep.certificate_id)
            key = catalog.endpoint_private_key(conn, cert) if cert else None
            if cert is None or key is None:
                return _local_failure(inst, 28055, _msg28055(cert.name if cert else str(ep.certificate_id)))
            if not cert.valid_at(store.utcnow()):
                # the peer refuses it too (28035); the local log says why
                inst.errorlog.write("spid20s", "Error: 28055, Severity: 16, State: 1.")
                inst.errorlog.write("spid20s", _msg28055(cert.name))
        hello_fields = dict(auth=ep.connection_auth, encryption=ep.encryption_algorithm, role=role,
                            instance=inst.name, protocol=wire.PROTOCOL)
    finally:
        conn.close()
    transport.registry.remove(url)
    epoch = transport.registry.epoch
    try:
        # leave from the instance's own address, as a real host would
        sock = socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT,
                                        source_address=(inst.host, 0) if ":" not in host else None)
    except OSError:
        return _unreachable(inst, url)
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        nonce_i = os.urandom(32)
        if cert is not None:
            hello_fields["certificate"] = cert.der
        wire.send(sock, "hello", nonce=nonce_i, **hello_fields)
        reply = wire.recv(sock, ("challenge", "failure"))
        if reply["type"] == "challenge":
            if key is None:
                raise Refused(refusal(28027, "authentication protocol", 11))
            wire.send(sock, "proof", signature=crypto.sign_challenge(
                key, _signed(reply["nonce"], nonce_i, cert.thumbprint)))
            reply = wire.recv(sock, ("accept", "failure"))
        if reply["type"] == "failure":
            _close(sock)
            number, message = int(reply["number"]), str(reply["message"])
            inst.errorlog.write("spid20s", f"Database mirroring connection error {number} '{message}' for "
                                           f"'{url}'.")
            return Outcome(False, number, message)
    except (wire.ProtocolError, OSError, KeyError, ValueError, TypeError):
        _close(sock)
        return _unreachable(inst, url)
    except Refused as exc:
        _close(sock)
        return Outcome(False, exc.refusal.number, exc.refusal.text)
    algorithm = str(reply.get("algorithm") or "NONE")
    principal, peer_cert_id = _identify_acceptor(inst, reply, nonce_i)
    from .registry import LiveConnection
    if not transport.registry.add(LiveConnection(url, sock, False, principal, peer_cert_id, algorithm), epoch):
        return Outcome(False, 1418, f"the local endpoint stopped while connecting to {url}")
    transport.watch(url, sock)
    return Outcome(True, None, f"Connected to {url}: certificate authentication, encryption {algorithm}.",
                   algorithm)


def _identify_acceptor(inst, reply: dict, nonce_i: bytes) -> tuple[Optional[str], Optional[int]]:
    """Find the acceptor's certificate in our master (for the DMV); not a condition of success."""
    der = reply.get("certificate")
    if not isinstance(der, bytes):
        return None, None
    try:
        info = crypto.certificate_info(der)
    except crypto.CryptoError:
        return None, None
    conn = store.connect(inst.db_path)
    try:
        for c in catalog.certificates_by_issuer_serial(conn, info.issuer_name, info.serial_text):
            if c.thumbprint == info.thumbprint:
                owner = catalog.certificate_owner(conn, c)
                return owner.user_name, c.certificate_id
    finally:
        conn.close()
    return None, None


def _msg28055(name: str) -> str:
    return (f"The certificate '{name}' is not valid for endpoint authentication. The certificate must have a "
            "private key encrypted with the database master key and current UTC date has to be between the "
            "certificate start date and the certificate expiration date.")


def _local_failure(inst, number: int, message: str) -> Outcome:
    inst.errorlog.write("spid20s", f"Error: {number}, Severity: 16, State: 1.")
    inst.errorlog.write("spid20s", message)
    return Outcome(False, number, message)


def _unreachable(inst, url: str) -> Outcome:
    message = (f'The server network address "{url}" can not be reached or does not exist. Check the network '
               "address name and that the ports for the local and remote endpoints are operational.")
    return Outcome(False, 1418, message)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
