"""Desired state → the missing steps. Pure: inspected state in, a Plan out.

A plan only ever creates, grants, enables or re-owns; anything that would need a drop,
a regeneration or an overwrite is reported as a finding with the exact statement a
DBA can run, never done. An existing endpoint that differs from the parameters is
altered only when the parameters allow it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Optional

from ..access.credentials import Secret, generate_password
from . import codes, tsql
from .artifacts import CertificateArtifact
from .catalog import InstanceState
from .findings import FAIL, NOTE, WARN, Finding, Remediation


@dataclass(frozen=True)
class Step:
    statement: tsql.Statement
    establishes: str

    @property
    def sql(self) -> str:
        return self.statement.redacted()


@dataclass
class Plan:
    instance: str
    notebook: str
    steps: list[Step] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(f.blocks for f in self.findings)

    def block(self, check: str, found: str, fix: Remediation, peer: Optional[str] = None) -> None:
        self.findings.append(Finding(check, self.instance, peer, FAIL, found, fix, blocks=True))

    def note(self, check: str, found: str, fix: Optional[Remediation] = None, status=NOTE) -> None:
        self.findings.append(Finding(check, self.instance, None, status, found, fix))

    @property
    def empty(self) -> bool:
        return not self.steps

    def script(self) -> str:
        """The plan as one redacted T-SQL script (what a DBA would review)."""
        lines = [f"-- {self.notebook} on {self.instance}: {len(self.steps)} statement(s)"]
        for i, s in enumerate(self.steps, 1):
            lines.append(f"\n-- {i}. {s.establishes}")
            lines.append(s.sql)
        return "\n".join(lines) + "\n"


# -- outbound ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutboundSpec:
    instance: str
    certificate_name: str
    subject: str
    lifetime_days: int
    backdate_hours: int
    endpoint_name: str
    port: int
    listener_ip: str              # ALL or an address
    encryption: str               # REQUIRED | SUPPORTED | DISABLED
    algorithm: Optional[str]      # AES | RC4 | AES RC4 | RC4 AES
    role: str                     # PARTNER | WITNESS | ALL
    allow_alter: bool
    master_key_password: Callable[[], Secret]
    backup_directory: Optional[str] = None
    backup_password: Optional[Callable[[], Secret]] = None
    expiry_warning_days: int = 30


def server_path(directory: str, name: str) -> str:
    sep = "\\" if ("\\" in directory or (len(directory) > 1 and directory[1] == ":")) else "/"
    return directory.rstrip("\\/") + sep + name


def plan_outbound(spec: OutboundSpec, state: InstanceState, now: datetime) -> Plan:
    plan = Plan(spec.instance, "outbound")
    add = plan.steps.append
    if not state.master_key:
        add(Step(tsql.create_master_key(spec.master_key_password()), "database master key in master"))
    elif not state.master_key_by_service_key:
        plan.block(
            "I02", "the master key in master is not encrypted by the service master key, so SQL Server cannot open "
            "it on its own to use the endpoint certificate's private key (error 28055 at every handshake)",
            Remediation("OPEN MASTER KEY DECRYPTION BY PASSWORD = N'…'; ALTER MASTER KEY ADD ENCRYPTION BY SERVICE "
                        "MASTER KEY; CLOSE MASTER KEY;"))
    cert = state.certificate(spec.certificate_name)
    creating_cert = cert is None
    if creating_cert:
        start = (now - timedelta(hours=spec.backdate_hours)).replace(microsecond=0)
        expiry = start + timedelta(days=spec.lifetime_days)
        add(Step(tsql.create_certificate(spec.certificate_name, spec.subject, start, expiry),
                 f"endpoint certificate {spec.certificate_name}, valid {start:%Y-%m-%d %H:%M} to "
                 f"{expiry:%Y-%m-%d %H:%M} UTC"))
    else:
        if cert.private_key != "MK":
            plan.block(
                "I09", f"the certificate {cert.name} {codes.PRIVATE_KEY.get(cert.private_key, '')}; an endpoint needs "
                "a private key encrypted by the master key (28055)",
                Remediation(f"set certificate.name to a new name and run again, or DROP CERTIFICATE "
                            f"{tsql.quote_name(cert.name)} if nothing uses it"))
        if cert.expiry <= now:
            plan.block(
                "I10", f"the certificate {cert.name} expired on {cert.expiry:%Y-%m-%d %H:%M} UTC: new mirroring "
                "connections fail (28035)",
                Remediation("create a new certificate under a new certificate.name, run outbound and inbound again, "
                            "then move the endpoint to it with ALTER ENDPOINT … AUTHENTICATION = CERTIFICATE "
                            "(endpoint.allow_alter: true)"))
        elif cert.start > now:
            plan.block("I10", f"the certificate {cert.name} is not valid before {cert.start:%Y-%m-%d %H:%M} UTC",
                       Remediation("wait, or use a new certificate"))
        elif cert.expiry <= now + timedelta(days=spec.expiry_warning_days):
            plan.note("I10", f"the certificate {cert.name} expires on {cert.expiry:%Y-%m-%d} "
                      f"({(cert.expiry - now).days} days)",
                      Remediation("plan a rotation: new certificate.name, outbound and inbound, then ALTER ENDPOINT"))
    _plan_endpoint(spec, state, plan)
    if spec.backup_directory and spec.backup_password and (creating_cert or cert.last_backup is None):
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        stem = f"{spec.certificate_name}_{stamp}"
        add(Step(tsql.backup_certificate_with_private_key(
            spec.certificate_name, server_path(spec.backup_directory, stem + ".cer"),
            server_path(spec.backup_directory, stem + ".pvk"), spec.backup_password()),
            f"private-key backup of {spec.certificate_name} in {spec.backup_directory}"))
    return plan


def _plan_endpoint(spec: OutboundSpec, state: InstanceState, plan: Plan) -> None:
    ep = state.endpoint
    if ep is None:
        plan.steps.append(Step(tsql.create_endpoint(spec.endpoint_name, spec.port, spec.listener_ip,
                                                    spec.certificate_name, spec.encryption, spec.algorithm, spec.role),
                               f"endpoint {spec.endpoint_name} on port {spec.port}, STARTED"))
        return
    if ep.name.lower() != spec.endpoint_name.lower():
        plan.note("I03", f"the instance already has a DATABASE_MIRRORING endpoint named {ep.name}; it is reused "
                  f"(one per instance) instead of creating {spec.endpoint_name}")
    changes: dict[str, object] = {}
    details: list[str] = []
    current_cert = state.certificate_by_id(ep.certificate_id)
    if ep.authentication != "CERTIFICATE" or current_cert is None or \
            current_cert.name.lower() != spec.certificate_name.lower():
        changes["certificate"] = spec.certificate_name
        details.append(f"authentication {ep.authentication}"
                       f"{' with ' + current_cert.name if current_cert and 'CERTIFICATE' in ep.authentication else ''}"
                       f" instead of CERTIFICATE {spec.certificate_name}")
    if ep.port != spec.port:
        changes["port"] = spec.port
        details.append(f"port {ep.port} instead of {spec.port}")
    wanted_ip = None if spec.listener_ip.upper() == "ALL" else spec.listener_ip
    if (ep.ip_address or None) != wanted_ip:
        changes["ip"] = spec.listener_ip
        details.append(f"LISTENER_IP {ep.ip_address or 'ALL'} instead of {spec.listener_ip}")
    wanted_alg = codes.algorithm_desc(spec.encryption, spec.algorithm)
    if ep.algorithm != wanted_alg:
        changes["encryption"] = spec.encryption
        changes["algorithm"] = spec.algorithm
        details.append(f"encryption {ep.algorithm} instead of {wanted_alg}")
    if ep.role != spec.role.upper():
        changes["role"] = spec.role
        details.append(f"role {ep.role} instead of {spec.role.upper()}")
    if ep.state != "STARTED":
        changes["state"] = "STARTED"
        details.append(f"state {ep.state} instead of STARTED")
    if not changes:
        return
    statement = tsql.alter_endpoint(ep.name, **changes)
    if spec.allow_alter:
        plan.steps.append(Step(statement, f"endpoint {ep.name}: " + "; ".join(details)))
    else:
        plan.note("I04", f"the endpoint {ep.name} differs from the parameters: " + "; ".join(details) +
                  ". Altering an in-use endpoint can restart it or cause a failover, so the kit leaves it",
                  Remediation.sql(statement, spec.instance,
                                  "run it in a maintenance window, or set endpoint.allow_alter: true"), status=WARN)


# -- inbound -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeerSpec:
    instance: str
    login: str
    user: str
    certificate_name: str
    artifact: Optional[CertificateArtifact]
    problem: Optional[str] = None            # why no artifact (shown as a blocker)
    file_path: Optional[str] = None          # transfer: file — the peer's .cer on the shared location


def plan_inbound(instance: str, peers: list[PeerSpec], state: InstanceState, notebook: str = "inbound",
                 endpoint_to_come: Optional[str] = None) -> Plan:
    """The steps that make `instance` trust each peer. `endpoint_to_come` names the endpoint an earlier
    section of the same notebook creates, when the plan is a preview made before it exists."""
    plan = Plan(instance, notebook)
    add = plan.steps.append
    ep = state.endpoint
    if ep is None and endpoint_to_come is None:
        plan.block("I03", "the instance has no DATABASE_MIRRORING endpoint",
                   Remediation.run("outbound", instance, f"run notebooks/outbound.ipynb with target {instance} first"))
        return plan
    if ep is None:
        plan.note("I03", f"the endpoint {endpoint_to_come} does not exist yet: the outbound section of this notebook "
                  "creates it, and this section is planned again when it is reached")
    endpoint = ep.name if ep is not None else endpoint_to_come
    for peer in peers:
        if peer.artifact is None:
            plan.block("P07", peer.problem or f"no certificate artifact for {peer.instance}",
                       Remediation.run("outbound", peer.instance,
                                       f"run notebooks/outbound.ipynb with target {peer.instance} first"), peer.instance)
            continue
        login = state.login(peer.login)
        if login is None:
            add(Step(tsql.create_login(peer.login, generate_password(f"login {peer.login}")),
                     f"login {peer.login} for {peer.instance}"))
        elif login.disabled:
            add(Step(tsql.enable_login(peer.login), f"enable login {peer.login}"))
        user = state.user(peer.user)
        if user is None:
            add(Step(tsql.create_user(peer.user, peer.login), f"user {peer.user} for login {peer.login}"))
        elif (user.login or "").lower() != peer.login.lower():
            plan.block("P09", f"user {user.name} exists but maps to "
                       f"{'login ' + user.login if user.login else 'no login'}, not to {peer.login}",
                       Remediation(f"choose another logins.user, or DROP USER {tsql.quote_name(user.name)} if nothing "
                                   "uses it"), peer.instance)
            continue
        cert = state.certificate_by_thumbprint(peer.artifact.thumbprint)
        if cert is None:
            same_name = state.certificate(peer.certificate_name)
            if same_name is not None:
                plan.block("P07", f"certificate {same_name.name} exists with thumbprint 0x{same_name.thumbprint_hex}, "
                           f"but {peer.instance}'s endpoint certificate is 0x{peer.artifact.thumbprint_hex} (a stale "
                           "copy: the peer's connections would fail with 28035)",
                           Remediation.sql(tsql.drop_certificate(same_name.name), instance, "then run this notebook again"),
                           peer.instance)
                continue
            if peer.file_path:
                statement = tsql.create_certificate_from_file(peer.certificate_name, peer.user, peer.file_path)
            else:
                statement = tsql.create_certificate_from_binary(peer.certificate_name, peer.user, peer.artifact.der)
            add(Step(statement, f"{peer.instance}'s certificate (thumbprint 0x{peer.artifact.thumbprint_hex}) "
                                f"owned by {peer.user}"))
        elif (cert.owner or "").lower() != peer.user.lower():
            add(Step(tsql.alter_certificate_owner(cert.name, peer.user),
                     f"certificate {cert.name} owned by {peer.user} instead of {cert.owner}"))
        states = state.endpoint_grants(peer.login) if login is not None else set()
        if "DENY" in states:
            add(Step(tsql.revoke_deny_connect(endpoint, peer.login), f"remove DENY CONNECT for {peer.login}"))
            add(Step(tsql.grant_connect(endpoint, peer.login), f"CONNECT on {endpoint} for {peer.login}"))
        elif not states & {"GRANT", "GRANT_WITH_GRANT_OPTION"}:
            add(Step(tsql.grant_connect(endpoint, peer.login), f"CONNECT on {endpoint} for {peer.login}"))
    return plan
