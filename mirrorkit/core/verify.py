"""verify: is the certificate trust in place, and if not, why and how to fix it. Read-only.

Per instance: master key, the one DATABASE_MIRRORING endpoint and its settings, the
endpoint certificate (private key, validity). Per ordered pair (initiator → acceptor)
that the topology needs: the acceptor holds the initiator's certificate, valid, owned
by a user whose login is enabled and may CONNECT; encryption, algorithm and role
compatible; the acceptor's endpoint reachable. The pair checks follow the order of
the documented handshake, so the first failing check is the reason the connection
is refused. Live evidence (mirroring connections, error-log handshake failures) is
reported beside the checks.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from ..config import parameters as params
from . import codes, tsql
from .catalog import Certificate, InstanceState, jsonable, read_state
from .findings import FAIL, PASS, WARN, Finding, Remediation


@dataclass
class Observation:
    """What verify read from one instance: its state, or why it could not be read."""
    name: str
    state: Optional[InstanceState] = None
    error: Optional[str] = None


@dataclass
class Verdict:
    findings: list[Finding]
    matrix: dict[tuple[str, str], str]             # (initiator, acceptor) → "OK" or the reason
    expiry: list[dict]
    observations: dict[str, Observation]
    checked_at: datetime

    @property
    def failed(self) -> bool:
        return any(f.status == FAIL for f in self.findings)

    @property
    def warned(self) -> bool:
        return any(f.status == WARN for f in self.findings)

    @property
    def status(self) -> str:
        return "FAIL" if self.failed else ("WARN" if self.warned else "PASS")


def _run(notebook: str, target: str) -> Remediation:
    return Remediation.run(notebook, target)


def _sql(statement: tsql.Statement, instance: str, advice: str = "") -> Remediation:
    return Remediation.sql(statement, instance, advice)


def _advice(text: str) -> Remediation:
    return Remediation(text)


def trust_notebook(env: params.Environment, initiator: params.Instance, acceptor: params.Instance) -> tuple[str, str]:
    """The notebook (and target) that makes `acceptor` trust `initiator`: the witness notebook for any pair
    with the witness, inbound on the acceptor otherwise."""
    if env.witness is not None and env.witness.name in (initiator.name, acceptor.name):
        return "witness", env.witness.name
    return "inbound", acceptor.name


def back_to_parameters_certificate(env: params.Environment, inst: params.Instance, st: InstanceState,
                                   now: datetime) -> Optional[Remediation]:
    """ALTER ENDPOINT … AUTHENTICATION = CERTIFICATE <the parameters' certificate>, when the endpoint uses
    another one and the parameters' certificate is there, usable (private key by the master key) and valid
    beyond the warning window: the peers trust it after inbound (and the witness notebook). None otherwise."""
    ep, want = st.endpoint, env.certificate_name(inst)
    cert = st.certificate(want)
    current = st.endpoint_certificate
    if ep is None or cert is None or cert.private_key != "MK" or not cert.valid_at(now):
        return None
    if current is not None and current.name.lower() == want.lower() and ep.uses_certificate:
        return None
    if (cert.expiry - now).days < env.verify.expiry_warning_days:
        return None
    return Remediation.sql(tsql.alter_endpoint(ep.name, certificate=want), inst.name,
                           f"move the endpoint to {want}, the certificate the parameters name (run inbound and the "
                           "witness notebook first so that every peer trusts it; altering an in-use endpoint can "
                           "restart it)")


def check_instance(env: params.Environment, inst: params.Instance, obs: Observation, now: datetime) -> list[Finding]:
    out: list[Finding] = []
    add = out.append
    n = inst.name

    def finding(check, status, found, fix=None, number=None):
        add(Finding(check, n, None, status, found, fix, number))

    if obs.error or obs.state is None:
        finding("I00", FAIL, f"cannot connect: {obs.error}",
                _advice("check connection settings, the server, the network and the credentials"))
        return out
    st = obs.state
    if st.server_name and st.server_name.lower() != n.lower():
        finding("I00", WARN, f"the server at {inst.server} reports @@SERVERNAME {st.server_name!r}",
                _advice(f"check instances[].server for {n} in {env.source}"))
    if not st.master_key:
        finding("I01", FAIL, "no database master key in master", _run("outbound", n))
    elif not st.master_key_by_service_key:
        finding("I02", FAIL, "the master key is not encrypted by the service master key: the server cannot open it "
                "to use the endpoint certificate (28055)",
                _advice("OPEN MASTER KEY DECRYPTION BY PASSWORD = N'…'; ALTER MASTER KEY ADD ENCRYPTION BY SERVICE "
                        "MASTER KEY; CLOSE MASTER KEY;"))
    else:
        finding("I01", PASS, "master key present, encrypted by the service master key")
    ep = st.endpoint
    if ep is None:
        finding("I03", FAIL, "no DATABASE_MIRRORING endpoint", _run("outbound", n))
        return out
    finding("I03", PASS, f"endpoint {ep.name}")
    if ep.state != "STARTED":
        finding("I04", FAIL, f"endpoint {ep.name} is {ep.state}", _sql(tsql.alter_endpoint(ep.name, state="STARTED"), n))
    else:
        finding("I04", PASS, "endpoint STARTED")
    want_cert = env.certificate_name(inst)
    cert = st.endpoint_certificate
    to_cert = tsql.alter_endpoint(ep.name, certificate=want_cert)
    move = back_to_parameters_certificate(env, inst, st, now)
    if not ep.uses_certificate or cert is None:
        finding("I05", FAIL, f"endpoint authentication is {ep.authentication}, not certificate",
                _sql(to_cert, n, f"after notebooks/outbound.ipynb target {n} if {want_cert} does not exist"))
    elif cert.name.lower() != want_cert.lower():
        finding("I05", WARN, f"the endpoint authenticates with certificate {cert.name}, the parameters name {want_cert}",
                move or Remediation.run("outbound", n, f"set certificate.name for {n} to {cert.name}, or run "
                                        f"notebooks/outbound.ipynb target {n} with endpoint.allow_alter: true to "
                                        f"create {want_cert} and move the endpoint to it"))
    else:
        finding("I05", PASS, f"CERTIFICATE authentication with {cert.name}")
    want_alg = codes.algorithm_desc(env.endpoint.encryption, env.endpoint.algorithm)
    if ep.algorithm != want_alg:
        finding("I06", FAIL, f"encryption {ep.algorithm}, parameters say {want_alg}",
                _sql(tsql.alter_endpoint(ep.name, encryption=env.endpoint.encryption,
                                         algorithm=env.endpoint.algorithm), n))
    else:
        finding("I06", PASS, f"encryption {want_alg}")
    want_role = env.endpoint_role(inst)
    if ep.role != want_role:
        finding("I07", FAIL, f"role {ep.role}, parameters say {want_role}",
                _sql(tsql.alter_endpoint(ep.name, role=want_role), n))
    else:
        finding("I07", PASS, f"role {want_role}")
    if ep.port != inst.endpoint_port:
        finding("I08", FAIL, f"port {ep.port}, parameters say {inst.endpoint_port}",
                _sql(tsql.alter_endpoint(ep.name, port=inst.endpoint_port), n))
    else:
        finding("I08", PASS, f"port {ep.port}")
    if cert is not None:
        if cert.private_key != "MK":
            finding("I09", FAIL, f"certificate {cert.name} has no private key encrypted by the master key "
                    f"({cert.private_key}): 28055 at every connection",
                    move or Remediation.run("outbound", n, f"create a new endpoint certificate: set certificate.name "
                                            f"and run notebooks/outbound.ipynb target {n} with "
                                            "endpoint.allow_alter: true"))
        else:
            finding("I09", PASS, "private key encrypted by the master key")
        out.append(_validity(n, None, "I10", cert, now, env.verify.expiry_warning_days, "endpoint certificate",
                             move))
    return out


ROTATE = ("rotate (docs/operations.md, Rotating an endpoint certificate): a new certificate.name, outbound, inbound "
          "and the witness notebook, then outbound with endpoint.allow_alter: true (ALTER ENDPOINT … AUTHENTICATION "
          "= CERTIFICATE)")


def _validity(instance: str, peer: Optional[str], check: str, cert: Certificate, now: datetime, warn_days: int,
              what: str, move: Optional[Remediation] = None) -> Finding:
    if cert.expiry < now:
        return Finding(check, instance, peer, FAIL, f"{what} {cert.name} expired on {cert.expiry:%Y-%m-%d %H:%M}",
                       move or _advice(ROTATE), 28035)
    if cert.start > now:
        return Finding(check, instance, peer, FAIL, f"{what} {cert.name} is not valid before "
                       f"{cert.start:%Y-%m-%d %H:%M} UTC",
                       move or _advice("wait, or use a certificate with an earlier START_DATE"), 28035)
    days = (cert.expiry - now).days
    if days < warn_days:
        return Finding(check, instance, peer, WARN, f"{what} {cert.name} expires on {cert.expiry:%Y-%m-%d} "
                       f"({days} days)", move or _advice("plan a rotation before it expires: " + ROTATE))
    return Finding(check, instance, peer, PASS, f"{what} {cert.name} valid until {cert.expiry:%Y-%m-%d}")


def requested_role(acceptor: params.Instance) -> str:
    return "WITNESS" if acceptor.role == "witness" else "PARTNER"


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_pair(env: params.Environment, ini: params.Instance, acc: params.Instance, obs: dict[str, Observation],
               now: datetime, reach: dict) -> tuple[list[Finding], str]:
    """Findings for initiator → acceptor, and the matrix cell ("OK" or the first reason)."""
    si, sa = obs[ini.name].state, obs[acc.name].state
    out: list[Finding] = []
    late: list[Finding] = []   # findings that do not decide the handshake come after the one that does

    def fail(check, found, fix=None, number=None):
        out.append(Finding(check, acc.name, ini.name, FAIL, found, fix, number))
        out.extend(late)
        return out, f"{check}: {found}"

    if si is None or sa is None:
        return fail("P00", "cannot read one of the instances", _advice("see I00"))
    ei, ea = si.endpoint, sa.endpoint
    if ei is None:
        return fail("P01", f"{ini.name}'s own endpoint is missing",
                    Remediation.run("outbound", ini.name), 1486)
    if ei.state != "STARTED":
        return fail("P01", f"{ini.name}'s own endpoint is {ei.state}",
                    _sql(tsql.alter_endpoint(ei.name, state="STARTED"), ini.name), 1486)
    cert_i = si.endpoint_certificate
    if not ei.uses_certificate:
        return fail("P02", f"{ini.name}'s endpoint does not authenticate with a certificate ({ei.authentication})",
                    _advice(f"see I05 on {ini.name}"), 28027)
    if cert_i is None or cert_i.private_key != "MK" or not si.master_key or not si.master_key_by_service_key:
        return fail("P02", f"{ini.name} cannot authenticate with its endpoint certificate",
                    _advice(f"see the instance checks for {ini.name} (I02, I05, I09)"), 28055)
    if ea is None:
        return fail("P03", f"{acc.name} has no DATABASE_MIRRORING endpoint",
                    Remediation.run("outbound", acc.name), 1418)
    # peers connect to the URL the parameters give (TCP://endpoint_address:endpoint_port)
    address = (acc.endpoint_address, acc.endpoint_port)
    if address not in reach:
        reach[address] = reachable(*address)
    start = tsql.alter_endpoint(ea.name, state="STARTED")
    if ea.state == "STOPPED":
        return fail("P04", f"{acc.name}'s endpoint is STOPPED", _sql(start, acc.name), 1418)
    if not reach[address]:
        return fail("P04", f"{acc.name}'s endpoint is not reachable at {address[0]}:{address[1]}",
                    _advice("check the listener address, port and firewall"), 1418)
    if ea.state == "DISABLED":
        return fail("P04", f"{acc.name}'s endpoint is DISABLED", _sql(start, acc.name), 9666)
    if not ea.uses_certificate:
        return fail("P05", f"{acc.name}'s endpoint does not accept certificate authentication ({ea.authentication})",
                    _sql(tsql.alter_endpoint(ea.name, certificate=env.certificate_name(acc)), acc.name,
                         f"after notebooks/outbound.ipynb target {acc.name} if {env.certificate_name(acc)} does not "
                         "exist"), 28027)
    if not cert_i.valid_at(now):
        return fail("P06", f"{ini.name}'s endpoint certificate {cert_i.name} is outside its validity window",
                    back_to_parameters_certificate(env, ini, si, now) or
                    _advice(f"on {ini.name}: " + ROTATE), 28035)
    notebook, nb_target = trust_notebook(env, ini, acc)
    match = sa.certificate_by_thumbprint(cert_i.thumbprint)
    if match is None:
        certs = sa.certificates.values()
        same = next((c for c in certs if c.issuer == cert_i.issuer and c.serial == cert_i.serial), None)
        if same is not None:
            return fail("P07", f"{acc.name} holds certificate {same.name} with {ini.name}'s issuer and serial but "
                        "another key (a stale or forged copy)",
                        _sql(tsql.drop_certificate(same.name), acc.name, f"then run {notebook} on {nb_target}"), 28045)
        named = sa.certificate(env.certificate_name(ini))
        if named is not None:
            # the trust notebooks never replace a certificate: the stale one goes first
            return fail("P07", f"{acc.name}'s certificate {named.name} is not {ini.name}'s endpoint certificate "
                        f"(thumbprint 0x{named.thumbprint_hex}, expected 0x{cert_i.thumbprint_hex})",
                        _sql(tsql.drop_certificate(named.name), acc.name,
                             f"then run notebooks/{notebook}.ipynb target {nb_target}"), 28035)
        return fail("P07", f"{acc.name} has no certificate with {ini.name}'s thumbprint 0x{cert_i.thumbprint_hex}",
                    _run(notebook, nb_target), 28035)
    if not match.valid_at(now):
        return fail("P08", f"{acc.name}'s copy {match.name} of {ini.name}'s certificate is outside its validity window",
                    back_to_parameters_certificate(env, ini, si, now) or _advice(f"on {ini.name}: " + ROTATE), 28035)
    want_user = env.user_name(ini)
    foreign = (match.owner or "").lower() != want_user.lower()
    give_back = tsql.alter_certificate_owner(match.name, want_user)
    if foreign:
        # the handshake accepts any owner whose login may connect, but the documented state is the peer's
        # own user owning its certificate (what the trust notebooks create)
        found = f"certificate {match.name} is owned by {match.owner or 'nobody'}, not by {ini.name}'s user {want_user}"
        if sa.user(want_user) is not None:
            owner_fix = _sql(give_back, acc.name)
        else:
            owner_fix = Remediation.run(
                notebook, nb_target, f"run notebooks/{notebook}.ipynb with target {nb_target} (creates {want_user} "
                "and gives it the certificate)")
        late.append(Finding("P14", acc.name, ini.name, FAIL, found, owner_fix))
    login = sa.login_by_sid(match.owner_sid)
    if login is None and foreign:
        return fail("P09", f"certificate {match.name} is owned by {match.owner or 'nobody'}, which maps to no login",
                    owner_fix, 28034)
    if login is None:
        return fail("P09", f"certificate {match.name} is owned by {match.owner or 'nobody'}, which maps to no login",
                    _sql(give_back, acc.name, f"or run {notebook} on {nb_target}"), 28034)
    want_login = env.login_name(ini)
    if login.disabled and foreign:
        return fail("P10", f"login {login.name} (owner of {match.name}) is disabled", owner_fix, 28034)
    if login.disabled:
        return fail("P10", f"login {login.name} (owner of {match.name}) is disabled",
                    _sql(tsql.enable_login(login.name), acc.name), 28034)
    ok, why = sa.may_connect(login)
    if not ok and foreign:
        return fail("P11", f"login {login.name} may not CONNECT to {ea.name} ({why})", owner_fix, 28034)
    if not ok:
        grant = tsql.grant_connect(ea.name, login.name)
        if why == "DENY":
            grant = tsql.batch(tsql.revoke_deny_connect(ea.name, login.name), grant)
        return fail("P11", f"login {login.name} may not CONNECT to {ea.name} ({why})", _sql(grant, acc.name), 28034)
    mi, ai = codes.encryption_of(ei.algorithm), codes.encryption_of(ea.algorithm)
    if mi and ai:
        want_alg = codes.algorithm_desc(env.endpoint.encryption, env.endpoint.algorithm)
        off = next(((i, e) for i, e in ((acc, ea), (ini, ei)) if e.algorithm != want_alg), None)
        align = (_sql(tsql.alter_endpoint(off[1].name, encryption=env.endpoint.encryption,
                                          algorithm=env.endpoint.algorithm), off[0].name,
                      "align the endpoint with endpoint.encryption / endpoint.algorithm (I06)") if off else
                 _advice("align endpoint.encryption / endpoint.algorithm on both instances (I06)"))
        if "DISABLED" in (mi[0], ai[0]) and "REQUIRED" in (mi[0], ai[0]):
            return fail("P12", f"encryption {ei.algorithm} on {ini.name} against {ea.algorithm} on {acc.name}",
                        align, 28027)
        if "DISABLED" not in (mi[0], ai[0]) and not set(mi[1]) & set(ai[1]):
            return fail("P12", f"no common algorithm: {ei.algorithm} on {ini.name}, {ea.algorithm} on {acc.name}",
                        align, 28027)
    role = requested_role(acc)
    if role not in codes.ROLE_SERVES.get(ea.role, ()):
        return fail("P13", f"{acc.name}'s endpoint role {ea.role} does not serve a {role.lower()} connection",
                    _sql(tsql.alter_endpoint(ea.name, role=env.endpoint_role(acc)), acc.name), 28027)
    out.append(Finding("P00", acc.name, ini.name, PASS, f"{ini.name} → {acc.name}: certificate {match.name} owned by "
                       f"{match.owner} (login {login.name}, {why})" +
                       ("" if login.name.lower() == want_login.lower() else f"; parameters name {want_login}")))
    out.extend(late)
    return out, "OK"


def evidence(env: params.Environment, obs: dict[str, Observation]) -> list[Finding]:
    out = []
    for name, o in obs.items():
        if o.state is None:
            continue
        failures = [r for r in o.state.errorlog if len(r) >= 3 and "handshake failed" in str(r[2]).lower()]
        if failures:
            last = failures[0]
            out.append(Finding("L01", name, None, WARN,
                               f"{len(failures)} handshake failure(s) in the error log in the last "
                               f"{env.verify.errorlog_hours} h; latest {jsonable(last[0])}: {last[2]}",
                               _advice("see the pair checks; the error log names the refused login or certificate")))
        conns = o.state.rows("connections")
        if conns:
            out.append(Finding("L02", name, None, PASS, f"{len(conns)} live mirroring connection(s): " + ", ".join(
                f"{'in' if c['is_accept'] else 'out'} {c['principal_name'] or '?'} {c['state_desc']}" for c in conns)))
    return out


def evaluate(env: params.Environment, obs: dict[str, Observation], now: Optional[datetime] = None) -> Verdict:
    now = now or next((o.state.utc_now for o in obs.values() if o.state and o.state.utc_now), datetime.utcnow())
    findings: list[Finding] = []
    for inst in env.instances:
        findings.extend(check_instance(env, inst, obs[inst.name], now))
    matrix: dict[tuple[str, str], str] = {}
    reach: dict = {}
    for acc in env.instances:
        for ini in env.peers_of(acc):
            pair_findings, cell = check_pair(env, ini, acc, obs, now, reach)
            findings.extend(pair_findings)
            matrix[(ini.name, acc.name)] = cell
    findings.extend(evidence(env, obs))
    expiry = []
    for inst in env.instances:
        st = obs[inst.name].state
        cert = st.endpoint_certificate if st is not None else None
        if cert:
            expiry.append({"instance": inst.name, "certificate": cert.name, "start": cert.start,
                           "expiry": cert.expiry, "days_left": (cert.expiry - now).days})
    return Verdict(findings, matrix, expiry, obs, now)


def collect(env: params.Environment, connect_to) -> dict[str, Observation]:
    """Read every instance; connect_to(instance) returns a pyodbc connection or raises."""
    obs = {}
    for inst in env.instances:
        try:
            conn = connect_to(inst)
        except Exception as exc:
            obs[inst.name] = Observation(inst.name, error=str(exc))
            continue
        try:
            obs[inst.name] = Observation(inst.name, read_state(conn, errorlog_hours=env.verify.errorlog_hours))
        except Exception as exc:
            obs[inst.name] = Observation(inst.name, error=f"reading the catalog failed: {exc}")
    return obs


# -- presentation ------------------------------------------------------------------------------------
def matrix_rows(env: params.Environment, verdict: Verdict) -> tuple[list[str], list[list[str]]]:
    names = [i.name for i in env.instances]
    rows = []
    for ini in names:
        row = [ini]
        for acc in names:
            if ini == acc:
                row.append("—")
            else:
                row.append(verdict.matrix.get((ini, acc), "not needed"))
        rows.append(row)
    return ["initiator \\ acceptor"] + names, rows


def expiry_svg(expiry: list[dict], now: datetime, width: int = 720) -> str:
    """A small timeline of every endpoint certificate's validity, with today marked."""
    if not expiry:
        return "<p>No endpoint certificates.</p>"
    start = min(min(e["start"] for e in expiry), now)
    end = max(max(e["expiry"] for e in expiry), now)
    span = max((end - start).total_seconds(), 1.0)
    left, bar_w, row_h = 200, width - 220, 26

    def x(t: datetime) -> float:
        return left + bar_w * (t - start).total_seconds() / span
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row_h * len(expiry) + 40}" '
             'font-family="sans-serif" font-size="12">']
    for i, e in enumerate(expiry):
        y = 10 + i * row_h
        colour = "#c0392b" if e["expiry"] < now else ("#e67e22" if e["days_left"] < 30 else "#27ae60")
        label = f"{e['instance']}"
        parts.append(f'<text x="4" y="{y + 14}">{_xml(label)}</text>')
        parts.append(f'<rect x="{x(e["start"]):.1f}" y="{y}" width="{max(x(e["expiry"]) - x(e["start"]), 2):.1f}" '
                     f'height="18" fill="{colour}"><title>{_xml(e["certificate"])}: {e["start"]:%Y-%m-%d} → '
                     f'{e["expiry"]:%Y-%m-%d}</title></rect>')
        parts.append(f'<text x="{x(e["expiry"]) + 4:.1f}" y="{y + 14}">{e["expiry"]:%Y-%m-%d} '
                     f'({e["days_left"]} d)</text>')
    nx = x(now)
    parts.append(f'<line x1="{nx:.1f}" y1="4" x2="{nx:.1f}" y2="{row_h * len(expiry) + 14}" stroke="#333" '
                 'stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{nx + 3:.1f}" y="{row_h * len(expiry) + 30}">today {now:%Y-%m-%d}</text></svg>')
    return "".join(parts)


def _xml(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def text_report(env: params.Environment, verdict: Verdict) -> str:
    """Plain-text output for `mirrorkit verify` (schedulers read the exit code)."""
    lines = [f"mirrorkit verify {env.environment}: " + verdict.status +
             f" at {verdict.checked_at:%Y-%m-%d %H:%M:%S} UTC", ""]
    for f in verdict.findings:
        if f.status == PASS:
            continue
        where = f.instance + (f" ← {f.peer}" if f.peer else "")
        lines.append(f"{f.status} {f.check} {where}: {f.found}")
        if f.remediation:
            lines.append(f"     fix: {f.remediation}")
    header, rows = matrix_rows(env, verdict)
    lines.append("")
    lines.append("trust matrix (row connects to column):")
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        lines.append("  " + "  ".join(str(v)[:60].ljust(min(w, 60)) for v, w in zip(r, widths)))
    lines.append("")
    for e in verdict.expiry:
        lines.append(f"certificate {e['certificate']} on {e['instance']}: expires {e['expiry']:%Y-%m-%d} "
                     f"({e['days_left']} days)")
    return "\n".join(lines) + "\n"


def verdict_record(env: params.Environment, verdict: Verdict) -> dict:
    return {
        "status": verdict.status,
        "checked_at": verdict.checked_at.isoformat(timespec="seconds"),
        "findings": [f.as_record() for f in verdict.findings],
        "matrix": [{"initiator": i, "acceptor": a, "result": r} for (i, a), r in verdict.matrix.items()],
        "expiry": [{k: jsonable(v) for k, v in e.items()} for e in verdict.expiry],
    }
