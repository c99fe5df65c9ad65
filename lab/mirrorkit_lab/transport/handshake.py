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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from .. import crypto
from ..engine import store
from . import catalog, policy, wire
from .policy import Refusal, refusal

if TYPE_CHECKING:
    from . import MirroringTransport

HANDSHAKE_TIMEOUT = 10.0
LINK_HANDSHAKE_TIMEOUT = 5.0    # a link retries on its own: give up on a silent peer sooner


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


@dataclass
class Peer:
    """Who is on the other end of an authenticated connection (what message handlers are given)."""
    instance_name: Optional[str]     # the peer's @@SERVERNAME, as it announced itself
    login: Optional[str]             # the login its certificate maps to (None if not in our master)
    user: Optional[str]              # the certificate's owner in master (principal_name in the DMV)
    certificate_id: Optional[int]
    url: Optional[str]               # the peer's endpoint URL, when known


@dataclass
class Opened:
    """What initiating produced: the outcome, and on success the socket and the peer."""
    outcome: Outcome
    sock: Optional[socket.socket] = None
    peer: Optional[Peer] = None
    log: list[tuple[str, str]] = field(default_factory=list)   # error-log lines, for the caller to write
    live: Optional[object] = None                                # its registry.LiveConnection


# -- acceptor ---------------------------------------------------------------------------------------------
def accept(transport: "MirroringTransport", sock: socket.socket, client: str) -> None:
    inst = transport.instance
    epoch = transport.registry.epoch
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    conn = store.connect(inst.db_path)
    hello: dict = {}
    try:
        try:
            try:
                hello = wire.recv(sock, "hello")
            except (wire.ProtocolError, OSError):
                # a port check (connect, then close) is not a handshake: nothing to log
                _close(sock)
                return
            if transport.faults.is_cut(str(hello.get("instance", ""))):
                _swallow(sock)          # a lost network: the initiator hears nothing and times out
                return
            live = _accept_checks(transport, conn, sock, hello)
        except Refused as exc:
            inst.errorlog.write("Logon", f"Error: {exc.refusal.number}, Severity: 10, State: 1.")
            inst.errorlog.write("Logon", exc.refusal.logged(client))
            try:
                wire.send(sock, "failure", number=exc.refusal.number, message=exc.refusal.logged(client))
            except OSError:
                pass
            _close(sock)
            return
        except Exception as exc:       # whatever a broken or hostile peer sends, the instance carries on
            inst.errorlog.write("Logon", f"Database Mirroring connection error: the handshake from "
                                         f"{client} failed: {exc}")
            _close(sock)
            return
    finally:
        conn.close()
    peer, algorithm, reply = live
    from .registry import LiveConnection
    requested = str(hello.get("role", "PARTNER")).upper()
    key = f"accept:{peer.instance_name or ''}@{client}"
    link_id = hello.get("link")
    if isinstance(link_id, str) and 0 < len(link_id) <= 64:
        # a link's reconnect replaces its own stale predecessor, never another link or a probe
        key += f"/{requested}/link/{link_id}"
    live_conn = LiveConnection(key, sock, True, peer.user, peer.certificate_id, algorithm)
    # registered before the initiator hears "accept", so both sides show it when the probe returns
    if not transport.registry.add(live_conn, epoch):
        return
    try:
        wire.send(sock, "accept", **reply)
    except OSError:
        transport.registry.remove(key, sock)
        return
    transport.serve(live_conn, peer)


def _swallow(sock: socket.socket) -> None:
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    _close(sock)


def _accept_checks(transport: "MirroringTransport", conn, sock: socket.socket,
                   hello: dict) -> tuple[Peer, str, dict]:
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
    now = transport.now()
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
    fields = {"algorithm": algorithm, "instance": transport.instance.name}
    if own is not None and own_key is not None:
        fields["certificate"] = own.der
        fields["signature"] = crypto.sign_challenge(own_key, _signed(nonce_i, nonce_a))
    claimed_url = hello.get("endpoint_url")
    peer = Peer(str(hello.get("instance") or "") or None, owner.login_name, owner.user_name,
                        match.certificate_id, claimed_url if isinstance(claimed_url, str) else None)
    return peer, algorithm, fields


# -- initiator ----------------------------------------------------------------------------------------------
def initiate(transport: "MirroringTransport", host: str, port: int, url: str, role: str) -> Outcome:
    """The probe's connection: opened, registered under `url` and kept until the peer closes it."""
    opened = open_connection(transport, host, port, url, role, url)
    for process, line in opened.log:
        transport.instance.errorlog.write(process, line)
    if opened.sock is not None:
        transport.watch(url, opened.sock)
    return opened.outcome


def open_connection(transport: "MirroringTransport", host: str, port: int, url: str, role: str, key: str,
                    *, link: Optional[str] = None) -> Opened:
    """Run the handshake as initiator and register the connection under `key`; the caller writes
    `Opened.log` to the error log (a link writes a repeated failure once) and owns the socket.
    `link` is the link's id (None for a probe): the acceptor keys the connection by it."""
    inst = transport.instance
    log: list[tuple[str, str]] = []
    conn = store.connect(inst.db_path)
    try:
        ep = catalog.endpoint(conn)
        if ep is None:
            return _local_failure(log, 28080, policy.TEMPLATES[28080].format("Database Mirroring", 1))
        if ep.state != 0:
            return _local_failure(log, 1486, "Database Mirroring Transport is disabled in the endpoint "
                                             "configuration.")
        cert = key_ = None
        if "CERTIFICATE" in policy.AUTH_METHODS.get(ep.connection_auth, ()):
            cert = catalog.certificate(conn, ep.certificate_id)
            key_ = catalog.endpoint_private_key(conn, cert) if cert else None
            if cert is None or key_ is None:
                return _local_failure(log, 28055, _msg28055(cert.name if cert else str(ep.certificate_id)))
            if not cert.valid_at(transport.now()):
                # the peer refuses it too (28035); the local log says why
                log.append(("spid20s", "Error: 28055, Severity: 16, State: 1."))
                log.append(("spid20s", _msg28055(cert.name)))
        own_url = f"TCP://{ep.ip_address or inst.host}:{ep.port}"
        hello_fields = dict(auth=ep.connection_auth, encryption=ep.encryption_algorithm, role=role,
                            instance=inst.name, protocol=wire.PROTOCOL, link=link, endpoint_url=own_url)
    finally:
        conn.close()
    transport.registry.remove(key)
    epoch = transport.registry.epoch
    timeout = LINK_HANDSHAKE_TIMEOUT if link is not None else HANDSHAKE_TIMEOUT
    try:
        # leave from the instance's own address, as a real host would
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(inst.host, 0) if ":" not in host else None)
    except OSError:
        return Opened(_unreachable(inst, url), log=log)
    try:
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        nonce_i = os.urandom(32)
        if cert is not None:
            hello_fields["certificate"] = cert.der
        wire.send(sock, "hello", nonce=nonce_i, **hello_fields)
        reply = wire.recv(sock, ("challenge", "failure"))
        if reply["type"] == "challenge":
            if key_ is None:
                raise Refused(refusal(28027, "authentication protocol", 11))
            wire.send(sock, "proof", signature=crypto.sign_challenge(
                key_, _signed(reply["nonce"], nonce_i, cert.thumbprint)))
            reply = wire.recv(sock, ("accept", "failure"))
        if reply["type"] == "failure":
            _close(sock)
            number, message = int(reply["number"]), str(reply["message"])
            log.append(("spid20s", f"Database mirroring connection error {number} '{message}' for '{url}'."))
            return Opened(Outcome(False, number, message), log=log)
    except (wire.ProtocolError, OSError, KeyError, ValueError, TypeError):
        _close(sock)
        return Opened(_unreachable(inst, url), log=log)
    except Refused as exc:
        _close(sock)
        return Opened(Outcome(False, exc.refusal.number, exc.refusal.text), log=log)
    peer_name = reply.get("instance") if isinstance(reply.get("instance"), str) else None
    if transport.faults.is_cut(peer_name):
        _close(sock)
        return Opened(_unreachable(inst, url), log=log)
    algorithm = str(reply.get("algorithm") or "NONE")
    user, login, peer_cert_id = _identify_acceptor(inst, reply, nonce_i)
    from .registry import LiveConnection
    live = LiveConnection(key, sock, False, user, peer_cert_id, algorithm)
    if not transport.registry.add(live, epoch):
        return Opened(Outcome(False, 1418, f"the local endpoint stopped while connecting to {url}"), log=log)
    return Opened(Outcome(True, None, f"Connected to {url}: certificate authentication, encryption {algorithm}.",
                          algorithm), sock, Peer(peer_name, login, user, peer_cert_id, url), log, live)


def _identify_acceptor(inst, reply: dict, nonce_i: bytes) -> tuple[Optional[str], Optional[str], Optional[int]]:
    """Find the acceptor's certificate in our master (for the DMV): (user, login, certificate_id);
    not a condition of success."""
    der = reply.get("certificate")
    if not isinstance(der, bytes):
        return None, None, None
    try:
        info = crypto.certificate_info(der)
    except (crypto.CryptoError, ValueError):
        return None, None, None
    conn = store.connect(inst.db_path)
    try:
        for c in catalog.certificates_by_issuer_serial(conn, info.issuer_name, info.serial_text):
            if c.thumbprint == info.thumbprint:
                owner = catalog.certificate_owner(conn, c)
                return owner.user_name, owner.login_name, c.certificate_id
    finally:
        conn.close()
    return None, None, None


def _msg28055(name: str) -> str:
    return (f"The certificate '{name}' is not valid for endpoint authentication. The certificate must have a "
            "private key encrypted with the database master key and current UTC date has to be between the "
            "certificate start date and the certificate expiration date.")


def _local_failure(log: list, number: int, message: str) -> Opened:
    log.append(("spid20s", f"Error: {number}, Severity: 16, State: 1."))
    log.append(("spid20s", message))
    return Opened(Outcome(False, number, message), log=log)


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
