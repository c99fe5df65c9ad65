"""The sections notebooks are composed of: outbound on an instance, and an instance's trust in peers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..access.connection import ConnectionFailed
from ..access.credentials import SecretError
from ..config.parameters import Instance
from ..core import artifacts, plan as planning, tsql
from ..core.findings import Remediation
from ..core.plan import Plan
from . import display, records
from .errors import RunbookError
from .run import Context, Section, utcnow


@dataclass
class Outbound(Section):
    """Microsoft's outbound procedure on one instance, then the public certificate exported."""
    instance: Instance
    key = "outbound"

    @property
    def title(self) -> str:
        return f"outbound on {self.instance.name}"

    def instances(self, ctx: Context) -> list[Instance]:
        return [self.instance]

    def plan(self, ctx: Context, *, preview: bool) -> list[Plan]:
        return [planning.plan_outbound(outbound_spec(ctx, self.instance), ctx.session.state(self.instance), utcnow())]

    def after(self, ctx: Context) -> None:
        export_certificate(ctx, self.instance)


@dataclass
class Trust(Section):
    """`acceptor` trusts each of `peers` (Microsoft's inbound procedure, per peer)."""
    acceptors: tuple[Instance, ...]
    peers_of: dict                  # acceptor name → the peers it must trust
    key: str = "inbound"
    label: str = "inbound"          # the plan's name in the record
    pending: Optional[str] = None   # the instance an earlier section of the notebook sets up (outbound)

    @property
    def title(self) -> str:
        return f"{self.label} on {', '.join(a.name for a in self.acceptors)}"

    def instances(self, ctx: Context) -> list[Instance]:
        return list(self.acceptors)

    def plan(self, ctx: Context, *, preview: bool) -> list[Plan]:
        out = []
        for acc in self.acceptors:
            peers = self.peers_of[acc.name]
            specs = []
            for peer in peers:
                spec = peer_spec(ctx, peer)
                if preview and peer.name == self.pending and spec.artifact is None:
                    continue        # the outbound section exports it: announced below, planned when reached
                specs.append(spec)
            to_come = ctx.env.endpoint.name if preview and acc.name == self.pending else None
            p = planning.plan_inbound(acc.name, specs, ctx.session.state(acc), notebook=self.label,
                                      endpoint_to_come=to_come)
            if len(specs) < len(peers):
                p.note("P07", f"{self.pending}'s certificate is not exported yet: the outbound section of this "
                       "notebook creates and exports it, and this section imports it when it is reached",
                       Remediation("nothing to do: apply the notebook"))
            out.append(p)
        return out


def outbound_spec(ctx: Context, inst: Instance) -> planning.OutboundSpec:
    env = ctx.env
    e, c = env.endpoint, env.certificate
    backup = c.private_key_backup
    return planning.OutboundSpec(
        instance=inst.name, certificate_name=env.certificate_name(inst),
        subject=env.certificate_subject(inst), lifetime_days=c.lifetime_days,
        backdate_hours=c.backdate_hours, endpoint_name=e.name, port=inst.endpoint_port,
        listener_ip=e.listener_ip, encryption=e.encryption, algorithm=e.algorithm,
        role=env.endpoint_role(inst), allow_alter=e.allow_alter,
        master_key_password=lambda: ctx.session.secret(env.secrets.master_key_password, "secrets.master_key_password"),
        backup_directory=backup.directory if backup else None,
        backup_password=(lambda: ctx.session.secret(backup.password, "certificate.private_key_backup.password"))
        if backup else None,
        expiry_warning_days=env.verify.expiry_warning_days)


def peer_spec(ctx: Context, peer: Instance) -> planning.PeerSpec:
    """What the acceptor needs to trust `peer`: its artifact, checked against the live peer."""
    env = ctx.env
    art, problem = None, None
    try:
        art = artifacts.load(ctx.certificate_dir, peer.name)
    except artifacts.ArtifactError as exc:
        problem = str(exc)
    if art is not None:
        problem = _check_against_live_peer(ctx, peer, art)
        if problem:
            art = None
    file_path = None
    if art is not None and env.certificate.transfer == "file":
        file_path = planning.server_path(env.certificate.file_share, artifacts.file_stem(peer.name) + ".cer")
    return planning.PeerSpec(peer.name, env.login_name(peer), env.user_name(peer), env.certificate_name(peer), art,
                             problem, file_path)


def _check_against_live_peer(ctx: Context, peer: Instance, art: artifacts.CertificateArtifact) -> Optional[str]:
    name = ctx.env.certificate_name(peer)
    try:
        # the certificate the parameters name (during a rotation it is not yet the endpoint's)
        der = ctx.session.certencoded(peer, name)
    except (ConnectionFailed, SecretError) as exc:
        ctx.notes.append(f"{peer.name} was not reachable to confirm its certificate thumbprint; using the "
                         f"artifact 0x{art.thumbprint_hex} ({exc.__class__.__name__})")
        return None
    if der is None:
        return f"{peer.name} has no certificate {name}; run outbound on {peer.name}"
    live = artifacts.describe(peer.name, art.certificate_name, der)
    if live.thumbprint != art.thumbprint:
        return (f"the artifact for {peer.name} (thumbprint 0x{art.thumbprint_hex}) is stale: {name} on {peer.name} is "
                f"0x{live.thumbprint_hex}; run outbound on {peer.name} again")
    return None


def export_certificate(ctx: Context, inst: Instance) -> Optional[artifacts.CertificateArtifact]:
    """Export the public part of the certificate the parameters name for this instance."""
    env = ctx.env
    name = env.certificate_name(inst)
    der = ctx.session.certencoded(inst, name)
    if der is None:
        return None
    art = artifacts.describe(inst.name, name, der)
    cer, meta = artifacts.export(ctx.certificate_dir, art)
    if env.certificate.transfer == "file":
        path = planning.server_path(env.certificate.file_share, artifacts.file_stem(inst.name) + ".cer")
        cur = ctx.session.connection(inst).cursor()
        try:
            cur.execute(tsql.backup_certificate(art.certificate_name, path).render())
        except Exception as exc:
            if "15240" not in str(exc):   # already there: never overwritten
                raise RunbookError(f"{inst.name}: BACKUP CERTIFICATE to {path} failed: {exc}") from None
        finally:
            cur.close()
    records.record("certificate_artifact", {**art.metadata(), "files": [str(cer), str(meta)]},
                   f"{inst.name} thumbprint 0x{art.thumbprint_hex}, expires {art.not_after:%Y-%m-%d}")
    display.markdown(f"Exported {inst.name}'s public certificate: `{cer}` (thumbprint 0x{art.thumbprint_hex}, "
                     f"valid until {art.not_after:%Y-%m-%d %H:%M} UTC)")
    return art
