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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional

from ..config import parameters as params
from . import tsql
from .catalog import jsonable, query

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

# encryption_algorithm_desc → (mode, algorithms in preference order)
_ENCRYPTION = {
    "NONE": ("DISABLED", ()), "RC4": ("REQUIRED", ("RC4",)), "AES": ("REQUIRED", ("AES",)),
    "NONE, RC4": ("SUPPORTED", ("RC4",)), "NONE, AES": ("SUPPORTED", ("AES",)),
    "RC4, AES": ("REQUIRED", ("RC4", "AES")), "AES, RC4": ("REQUIRED", ("AES", "RC4")),
    "NONE, RC4, AES": ("SUPPORTED", ("RC4", "AES")), "NONE, AES, RC4": ("SUPPORTED", ("AES", "RC4")),
}
_ROLE_SERVES = {"PARTNER": ("PARTNER",), "WITNESS": ("WITNESS",), "ALL": ("PARTNER", "WITNESS"), "NONE": ()}

QUERIES = {
    "server": "SELECT @@SERVERNAME AS server_name, GETUTCDATE() AS utc_now",
    "master_key": """SELECT k.name, d.is_master_key_encrypted_by_server FROM master.sys.symmetric_keys AS k
CROSS JOIN (SELECT is_master_key_encrypted_by_server FROM master.sys.databases WHERE name = N'master') AS d
WHERE k.name = N'##MS_DatabaseMasterKey##'""",
    "endpoints": """SELECT e.name, e.endpoint_id, SUSER_NAME(e.principal_id) AS owner_name, e.principal_id, e.state_desc,
       e.role_desc, e.connection_auth_desc, e.certificate_id, e.encryption_algorithm_desc, t.port, t.ip_address
FROM master.sys.database_mirroring_endpoints AS e JOIN master.sys.tcp_endpoints AS t ON t.endpoint_id = e.endpoint_id""",
    "certificates": """SELECT c.name, c.certificate_id, c.principal_id, dp.name AS owner_name, dp.sid AS owner_sid,
       c.pvt_key_encryption_type, c.issuer_name, c.cert_serial_number, c.start_date, c.expiry_date, c.thumbprint,
       CERTENCODED(c.certificate_id) AS der
FROM master.sys.certificates AS c LEFT JOIN master.sys.database_principals AS dp ON dp.principal_id = c.principal_id
WHERE c.name NOT LIKE N'##%'""",
    "logins": """SELECT name, principal_id, sid, is_disabled, type FROM master.sys.server_principals""",
    "users": """SELECT name, principal_id, sid FROM master.sys.database_principals
WHERE principal_id >= 5 AND principal_id < 16384""",
    "role_members": """SELECT r.name AS role_name, m.principal_id AS member_id FROM master.sys.server_role_members AS rm
JOIN master.sys.server_principals AS r ON r.principal_id = rm.role_principal_id
JOIN master.sys.server_principals AS m ON m.principal_id = rm.member_principal_id""",
    "permissions": """SELECT class, major_id, grantee_principal_id, type, permission_name, state_desc
FROM master.sys.server_permissions WHERE class IN (100, 105)""",
    "connections": """SELECT is_accept, principal_name, peer_certificate_id, state_desc, login_state,
       encryption_algorithm_desc, connect_time FROM sys.dm_db_mirroring_connections""",
    "database_mirroring": """SELECT DB_NAME(database_id) AS database_name, mirroring_state_desc, mirroring_role_desc,
       mirroring_partner_name, mirroring_witness_name, mirroring_witness_state_desc
FROM sys.database_mirroring WHERE mirroring_guid IS NOT NULL""",
}


@dataclass
class Finding:
    check: str
    instance: str
    peer: Optional[str]
    status: str
    found: str
    remediation: str = ""
    remediation_sql: Optional[str] = None      # T-SQL to run on remediation_instance
    remediation_instance: Optional[str] = None
    notebook: Optional[str] = None              # or: the notebook and target to run
    notebook_target: Optional[str] = None
    error_number: Optional[int] = None          # the handshake error this predicts

    def as_record(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Snapshot:
    """What verify read from one instance (None when it could not connect)."""
    name: str
    error: Optional[str] = None
    tables: dict = field(default_factory=dict)
    utc_now: Optional[datetime] = None
    errorlog: list = field(default_factory=list)

    def rows(self, key: str) -> list[dict]:
        cols, rows = self.tables.get(key, ([], []))
        return [dict(zip(cols, r)) for r in rows]

    @property
    def endpoint(self) -> Optional[dict]:
        eps = self.rows("endpoints")
        return eps[0] if eps else None

    def certificate_by_id(self, cid: int) -> Optional[dict]:
        return next((c for c in self.rows("certificates") if c["certificate_id"] == cid), None)

    @property
    def master_key(self) -> Optional[dict]:
        rows = self.rows("master_key")
        return rows[0] if rows else None


def read_snapshot(name: str, conn, errorlog_hours: int) -> Snapshot:
    snap = Snapshot(name)
    for key, sql in QUERIES.items():
        try:
            snap.tables[key] = query(conn, sql)
        except Exception as exc:   # a view the server does not offer (older versions): keep going
            snap.tables[key] = ([], [])
            if key in ("endpoints", "certificates", "logins", "permissions", "master_key"):
                raise
            snap.tables[key + "_error"] = str(exc)
    server = snap.rows("server")
    snap.utc_now = server[0]["utc_now"] if server else datetime.utcnow()
    start = snap.utc_now - timedelta(hours=errorlog_hours)
    try:
        cur = conn.cursor()
        cur.execute("EXEC master.sys.xp_readerrorlog 0, 1, N'handshake', NULL, ?, NULL, N'desc'", start)
        snap.errorlog = [tuple(r) for r in cur.fetchall()]
        cur.close()
    except Exception:
        snap.errorlog = []
    return snap


# -- the checks -------------------------------------------------------------------------------------
@dataclass
class Verdict:
    findings: list[Finding]
    matrix: dict[tuple[str, str], str]             # (initiator, acceptor) → "OK" or the reason
    expiry: list[dict]
    snapshots: dict[str, Snapshot]
    checked_at: datetime

    @property
    def failed(self) -> bool:
        return any(f.status == FAIL for f in self.findings)

    @property
    def warned(self) -> bool:
        return any(f.status == WARN for f in self.findings)


def _ep_sql(endpoint: str, clause: str) -> str:
    return f"ALTER ENDPOINT {tsql.quote_name(endpoint)} {clause};"


def check_instance(env: params.Environment, inst: params.Instance, snap: Snapshot, now: datetime) -> list[Finding]:
    out: list[Finding] = []
    add = out.append
    n = inst.name
    if snap.error:
        add(Finding("I00", n, None, FAIL, f"cannot connect: {snap.error}",
                    "check connection settings, the server, the network and the credentials"))
        return out
    server = snap.rows("server")
    if server and server[0]["server_name"] and server[0]["server_name"].lower() != n.lower():
        add(Finding("I00", n, None, WARN, f"the server at {inst.server} reports @@SERVERNAME "
                    f"{server[0]['server_name']!r}", f"check instances[].server for {n} in {env.source}"))
    mk = snap.master_key
    if mk is None:
        add(Finding("I01", n, None, FAIL, "no database master key in master",
                    f"run notebooks/outbound.ipynb with target {n}", notebook="outbound", notebook_target=n))
    elif not mk["is_master_key_encrypted_by_server"]:
        add(Finding("I02", n, None, FAIL, "the master key is not encrypted by the service master key: the server "
                    "cannot open it to use the endpoint certificate (28055)",
                    "OPEN MASTER KEY DECRYPTION BY PASSWORD = N'…'; ALTER MASTER KEY ADD ENCRYPTION BY SERVICE "
                    "MASTER KEY; CLOSE MASTER KEY;"))
    else:
        add(Finding("I01", n, None, PASS, "master key present, encrypted by the service master key"))
    ep = snap.endpoint
    if ep is None:
        add(Finding("I03", n, None, FAIL, "no DATABASE_MIRRORING endpoint",
                    f"run notebooks/outbound.ipynb with target {n}", notebook="outbound", notebook_target=n))
        return out
    name = ep["name"]
    add(Finding("I03", n, None, PASS, f"endpoint {name}"))
    if ep["state_desc"] != "STARTED":
        sql = _ep_sql(name, "STATE = STARTED")
        add(Finding("I04", n, None, FAIL, f"endpoint {name} is {ep['state_desc']}", sql, sql, n))
    else:
        add(Finding("I04", n, None, PASS, "endpoint STARTED"))
    want_cert = env.certificate_name(inst)
    cert = snap.certificate_by_id(ep["certificate_id"]) if ep["certificate_id"] else None
    if "CERTIFICATE" not in (ep["connection_auth_desc"] or "") or cert is None:
        sql = _ep_sql(name, f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {tsql.quote_name(want_cert)})")
        add(Finding("I05", n, None, FAIL, f"endpoint authentication is {ep['connection_auth_desc']}, not certificate",
                    sql + f"  -- after notebooks/outbound.ipynb target {n} if {want_cert} does not exist", sql, n))
    elif cert["name"].lower() != want_cert.lower():
        add(Finding("I05", n, None, WARN, f"the endpoint authenticates with certificate {cert['name']}, the "
                    f"parameters name {want_cert}", f"set certificate.name for {n}, or move the endpoint: " +
                    _ep_sql(name, f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {tsql.quote_name(want_cert)})")))
    else:
        add(Finding("I05", n, None, PASS, f"CERTIFICATE authentication with {cert['name']}"))
    from .plan import algorithm_desc
    want_alg = algorithm_desc(env.endpoint.encryption, env.endpoint.algorithm)
    if ep["encryption_algorithm_desc"] != want_alg:
        enc = env.endpoint.encryption.upper()
        clause = f"ENCRYPTION = {enc}" + (f" ALGORITHM {env.endpoint.algorithm.upper()}"
                                          if enc != "DISABLED" and env.endpoint.algorithm else "")
        sql = _ep_sql(name, f"FOR DATABASE_MIRRORING ({clause})")
        add(Finding("I06", n, None, FAIL, f"encryption {ep['encryption_algorithm_desc']}, parameters say {want_alg}",
                    sql, sql, n))
    else:
        add(Finding("I06", n, None, PASS, f"encryption {want_alg}"))
    want_role = env.endpoint_role(inst)
    if ep["role_desc"] != want_role:
        sql = _ep_sql(name, f"FOR DATABASE_MIRRORING (ROLE = {want_role})")
        add(Finding("I07", n, None, FAIL, f"role {ep['role_desc']}, parameters say {want_role}", sql, sql, n))
    else:
        add(Finding("I07", n, None, PASS, f"role {want_role}"))
    if ep["port"] != inst.endpoint_port:
        sql = _ep_sql(name, f"AS TCP (LISTENER_PORT = {inst.endpoint_port})")
        add(Finding("I08", n, None, FAIL, f"port {ep['port']}, parameters say {inst.endpoint_port}", sql, sql, n))
    else:
        add(Finding("I08", n, None, PASS, f"port {ep['port']}"))
    if cert is not None:
        if cert["pvt_key_encryption_type"] != "MK":
            add(Finding("I09", n, None, FAIL, f"certificate {cert['name']} has no private key encrypted by the master "
                        f"key ({cert['pvt_key_encryption_type']}): 28055 at every connection",
                        f"create a new endpoint certificate: set certificate.name and run notebooks/outbound.ipynb "
                        f"target {n} with endpoint.allow_alter: true", notebook="outbound", notebook_target=n))
        else:
            add(Finding("I09", n, None, PASS, "private key encrypted by the master key"))
        out.append(_validity(n, None, "I10", cert, now, env.verify.expiry_warning_days, "endpoint certificate"))
    return out


def _validity(instance: str, peer: Optional[str], check: str, cert: dict, now: datetime, warn_days: int,
              what: str) -> Finding:
    if cert["expiry_date"] < now:
        return Finding(check, instance, peer, FAIL, f"{what} {cert['name']} expired on {cert['expiry_date']:%Y-%m-%d %H:%M}",
                       "rotate: a new certificate (certificate.name), outbound and inbound again, then ALTER ENDPOINT",
                       error_number=28035)
    if cert["start_date"] > now:
        return Finding(check, instance, peer, FAIL, f"{what} {cert['name']} is not valid before "
                       f"{cert['start_date']:%Y-%m-%d %H:%M} UTC", "wait, or use a certificate with an earlier START_DATE",
                       error_number=28035)
    days = (cert["expiry_date"] - now).days
    if days < warn_days:
        return Finding(check, instance, peer, WARN, f"{what} {cert['name']} expires on {cert['expiry_date']:%Y-%m-%d} "
                       f"({days} days)", "plan a rotation before it expires")
    return Finding(check, instance, peer, PASS, f"{what} {cert['name']} valid until {cert['expiry_date']:%Y-%m-%d}")


def _may_connect(acc: Snapshot, login: dict, endpoint: dict) -> tuple[bool, str]:
    """CONNECT on the endpoint: sysadmin, the endpoint owner, or a GRANT (CONNECT, CONTROL, CONTROL SERVER)
    to the login, public or one of its server roles, with no DENY."""
    roles = {r["role_name"] for r in acc.rows("role_members") if r["member_id"] == login["principal_id"]}
    if "sysadmin" in roles:
        return True, "sysadmin"
    if endpoint["principal_id"] == login["principal_id"]:
        return True, "endpoint owner"
    by_name = {p["name"]: p["principal_id"] for p in acc.rows("logins")}
    ids = {login["principal_id"], by_name.get("public", 2)} | {by_name[r] for r in roles if r in by_name}
    states = set()
    for p in acc.rows("permissions"):
        if p["grantee_principal_id"] not in ids:
            continue
        code = (p["type"] or "").strip()
        if p["class"] == 105 and p["major_id"] == endpoint["endpoint_id"] and code in ("CO", "CL"):
            states.add(p["state_desc"])
        elif p["class"] == 100 and code == "CL":
            states.add(p["state_desc"])
    if "DENY" in states:
        return False, "DENY"
    if states & {"GRANT", "GRANT_WITH_GRANT_OPTION"}:
        return True, "granted"
    return False, "no grant"


def requested_role(acceptor: params.Instance) -> str:
    return "WITNESS" if acceptor.role == "witness" else "PARTNER"


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_pair(env: params.Environment, ini: params.Instance, acc: params.Instance, snaps: dict[str, Snapshot],
               now: datetime, reach: dict) -> tuple[list[Finding], str]:
    """Findings for initiator → acceptor, and the matrix cell ("OK" or the first reason)."""
    si, sa = snaps[ini.name], snaps[acc.name]
    out: list[Finding] = []

    late: list[Finding] = []   # findings that do not decide the handshake come after the one that does

    def fail(check, found, remediation="", sql=None, on=None, notebook=None, target=None, number=None):
        out.append(Finding(check, acc.name, ini.name, FAIL, found, remediation, sql, on, notebook, target, number))
        out.extend(late)
        return out, f"{check}: {found}"

    if si.error or sa.error:
        return fail("P00", "cannot read one of the instances", "see I00")
    ei, ea = si.endpoint, sa.endpoint
    if ei is None or ei["state_desc"] != "STARTED":
        return fail("P01", f"{ini.name}'s own endpoint is {'missing' if ei is None else ei['state_desc']}",
                    "see the instance checks for " + ini.name, number=1486)
    cert_i = si.certificate_by_id(ei["certificate_id"]) if ei["certificate_id"] else None
    mk = si.master_key
    if "CERTIFICATE" not in (ei["connection_auth_desc"] or ""):
        return fail("P02", f"{ini.name}'s endpoint does not authenticate with a certificate "
                    f"({ei['connection_auth_desc']})", f"see I05 on {ini.name}", number=28027)
    if cert_i is None or cert_i["pvt_key_encryption_type"] != "MK" or mk is None or \
            not mk["is_master_key_encrypted_by_server"]:
        return fail("P02", f"{ini.name} cannot authenticate with its endpoint certificate", "see the instance "
                    f"checks for {ini.name} (I02, I05, I09)", number=28055)
    if ea is None:
        return fail("P03", f"{acc.name} has no DATABASE_MIRRORING endpoint", f"run outbound on {acc.name}",
                    notebook="outbound", target=acc.name, number=1418)
    # peers connect to the URL the parameters give (TCP://endpoint_address:endpoint_port)
    address = (acc.endpoint_address, acc.endpoint_port)
    if address not in reach:
        reach[address] = reachable(*address)
    if ea["state_desc"] == "STOPPED" or not reach[address]:
        why = "STOPPED" if ea["state_desc"] == "STOPPED" else f"not reachable at {address[0]}:{address[1]}"
        sql = _ep_sql(ea["name"], "STATE = STARTED") if ea["state_desc"] == "STOPPED" else None
        return fail("P04", f"{acc.name}'s endpoint is {why}", sql or "check the listener address, port and firewall",
                    sql, acc.name if sql else None, number=1418)
    if ea["state_desc"] == "DISABLED":
        sql = _ep_sql(ea["name"], "STATE = STARTED")
        return fail("P04", f"{acc.name}'s endpoint is DISABLED", sql, sql, acc.name, number=9666)
    if "CERTIFICATE" not in (ea["connection_auth_desc"] or ""):
        return fail("P05", f"{acc.name}'s endpoint does not accept certificate authentication "
                    f"({ea['connection_auth_desc']})", "see I05 on " + acc.name, number=28027)
    if not (cert_i["start_date"] <= now <= cert_i["expiry_date"]):
        return fail("P06", f"{ini.name}'s endpoint certificate {cert_i['name']} is outside its validity window",
                    f"rotate {ini.name}'s certificate (see I10)", number=28035)
    thumb = bytes(cert_i["thumbprint"])
    certs = sa.rows("certificates")
    match = next((c for c in certs if bytes(c["thumbprint"]) == thumb), None)
    inbound = dict(notebook="inbound", target=acc.name)
    if match is None:
        same = next((c for c in certs if c["issuer_name"] == cert_i["issuer_name"]
                     and c["cert_serial_number"] == cert_i["cert_serial_number"]), None)
        if same is not None:
            sql = f"DROP CERTIFICATE {tsql.quote_name(same['name'])};"
            return fail("P07", f"{acc.name} holds certificate {same['name']} with {ini.name}'s issuer and serial "
                        f"but another key (a stale or forged copy)", sql + f"  -- then run inbound on {acc.name}",
                        sql, acc.name, number=28045)
        named = next((c for c in certs if c["name"].lower() == env.certificate_name(ini).lower()), None)
        if named is not None:
            # inbound never replaces a certificate: the stale one goes first
            sql = f"DROP CERTIFICATE {tsql.quote_name(named['name'])};"
            return fail("P07", f"{acc.name}'s certificate {named['name']} is not {ini.name}'s endpoint certificate "
                        f"(thumbprint 0x{bytes(named['thumbprint']).hex().upper()}, expected "
                        f"0x{thumb.hex().upper()})", sql + f"  -- then run notebooks/inbound.ipynb target {acc.name}",
                        sql, acc.name, number=28035)
        return fail("P07", f"{acc.name} has no certificate with {ini.name}'s thumbprint 0x{thumb.hex().upper()}",
                    f"run notebooks/inbound.ipynb with target {acc.name}", number=28035, **inbound)
    if not (match["start_date"] <= now <= match["expiry_date"]):
        return fail("P08", f"{acc.name}'s copy {match['name']} of {ini.name}'s certificate is outside its validity "
                    "window", f"rotate {ini.name}'s certificate", number=28035)
    want_user = env.user_name(ini)
    foreign = (match["owner_name"] or "").lower() != want_user.lower()
    if foreign:
        # the handshake accepts any owner whose login may connect, but the documented state is the peer's
        # own user owning its certificate (what inbound creates)
        have_user = any(u["name"].lower() == want_user.lower() for u in sa.rows("users"))
        sql = f"ALTER AUTHORIZATION ON CERTIFICATE::{tsql.quote_name(match['name'])} TO {tsql.quote_name(want_user)};"
        found = (f"certificate {match['name']} is owned by {match['owner_name'] or 'nobody'}, not by "
                 f"{ini.name}'s user {want_user}")
        if have_user:
            late.append(Finding("P14", acc.name, ini.name, FAIL, found, sql, sql, acc.name))
        else:
            late.append(Finding("P14", acc.name, ini.name, FAIL, found,
                               f"run notebooks/inbound.ipynb with target {acc.name} (creates {want_user} and gives "
                               "it the certificate)", notebook="inbound", notebook_target=acc.name))
    login = next((lg for lg in sa.rows("logins") if match["owner_sid"] is not None and lg["sid"] == match["owner_sid"]), None)
    if login is None and foreign:
        return fail("P09", f"certificate {match['name']} is owned by {match['owner_name'] or 'nobody'}, which maps "
                    "to no login", "see P14", number=28034)
    if login is None:
        sql = f"ALTER AUTHORIZATION ON CERTIFICATE::{tsql.quote_name(match['name'])} TO {tsql.quote_name(want_user)};"
        return fail("P09", f"certificate {match['name']} is owned by {match['owner_name'] or 'nobody'}, which maps to "
                    "no login", sql + f"  -- or run inbound on {acc.name}", sql, acc.name, number=28034)
    want_login = env.login_name(ini)
    if login["is_disabled"] and foreign:
        return fail("P10", f"login {login['name']} (owner of {match['name']}) is disabled", "see P14", number=28034)
    if login["is_disabled"]:
        sql = f"ALTER LOGIN {tsql.quote_name(login['name'])} ENABLE;"
        return fail("P10", f"login {login['name']} (owner of {match['name']}) is disabled", sql, sql, acc.name,
                    number=28034)
    ok, why = _may_connect(sa, login, ea)
    if not ok and foreign:
        return fail("P11", f"login {login['name']} may not CONNECT to {ea['name']} ({why})", "see P14", number=28034)
    if not ok:
        ep_name = tsql.quote_name(ea["name"])
        who = tsql.quote_name(login["name"])
        if why == "DENY":
            sql = f"REVOKE CONNECT ON ENDPOINT::{ep_name} FROM {who}; GRANT CONNECT ON ENDPOINT::{ep_name} TO {who};"
        else:
            sql = f"GRANT CONNECT ON ENDPOINT::{ep_name} TO {who};"
        return fail("P11", f"login {login['name']} may not CONNECT to {ea['name']} ({why})", sql, sql, acc.name,
                    number=28034)
    mi, ai = _ENCRYPTION.get(ei["encryption_algorithm_desc"]), _ENCRYPTION.get(ea["encryption_algorithm_desc"])
    if mi and ai:
        if "DISABLED" in (mi[0], ai[0]) and "REQUIRED" in (mi[0], ai[0]):
            return fail("P12", f"encryption {ei['encryption_algorithm_desc']} on {ini.name} against "
                        f"{ea['encryption_algorithm_desc']} on {acc.name}", "align endpoint.encryption (see I06)",
                        number=28027)
        if "DISABLED" not in (mi[0], ai[0]) and not set(mi[1]) & set(ai[1]):
            return fail("P12", f"no common algorithm: {ei['encryption_algorithm_desc']} on {ini.name}, "
                        f"{ea['encryption_algorithm_desc']} on {acc.name}", "align endpoint.algorithm (see I06)",
                        number=28027)
    role = requested_role(acc)
    if role not in _ROLE_SERVES.get(ea["role_desc"], ()):
        return fail("P13", f"{acc.name}'s endpoint role {ea['role_desc']} does not serve a {role.lower()} connection",
                    "see I07 on " + acc.name, number=28027)
    out.append(Finding("P00", acc.name, ini.name, PASS, f"{ini.name} → {acc.name}: certificate {match['name']} owned by "
                       f"{match['owner_name']} (login {login['name']}, {why})" +
                       ("" if login["name"].lower() == want_login.lower() else f"; parameters name {want_login}")))
    out.extend(late)
    return out, "OK"


def evidence(env: params.Environment, snaps: dict[str, Snapshot]) -> list[Finding]:
    out = []
    for name, snap in snaps.items():
        failures = [r for r in snap.errorlog if len(r) >= 3 and "handshake failed" in str(r[2]).lower()]
        if failures:
            last = failures[0]
            out.append(Finding("L01", name, None, WARN,
                               f"{len(failures)} handshake failure(s) in the error log in the last "
                               f"{env.verify.errorlog_hours} h; latest {jsonable(last[0])}: {last[2]}",
                               "see the pair checks; the error log names the refused login or certificate"))
        conns = snap.rows("connections")
        if conns:
            out.append(Finding("L02", name, None, PASS, f"{len(conns)} live mirroring connection(s): " + ", ".join(
                f"{'in' if c['is_accept'] else 'out'} {c['principal_name'] or '?'} {c['state_desc']}" for c in conns)))
    return out


def evaluate(env: params.Environment, snaps: dict[str, Snapshot], now: Optional[datetime] = None) -> Verdict:
    now = now or next((s.utc_now for s in snaps.values() if s.utc_now), datetime.utcnow())
    findings: list[Finding] = []
    for inst in env.instances:
        findings.extend(check_instance(env, inst, snaps[inst.name], now))
    matrix: dict[tuple[str, str], str] = {}
    reach: dict = {}
    for acc in env.instances:
        for ini in env.peers_of(acc):
            pair_findings, cell = check_pair(env, ini, acc, snaps, now, reach)
            findings.extend(pair_findings)
            matrix[(ini.name, acc.name)] = cell
    findings.extend(evidence(env, snaps))
    expiry = []
    for inst in env.instances:
        snap = snaps[inst.name]
        ep = snap.endpoint if not snap.error else None
        cert = snap.certificate_by_id(ep["certificate_id"]) if ep and ep["certificate_id"] else None
        if cert:
            expiry.append({"instance": inst.name, "certificate": cert["name"], "start": cert["start_date"],
                           "expiry": cert["expiry_date"], "days_left": (cert["expiry_date"] - now).days})
    return Verdict(findings, matrix, expiry, snaps, now)


def collect(env: params.Environment, connect_to) -> dict[str, Snapshot]:
    """Read every instance; connect_to(instance) returns a pyodbc connection or raises."""
    snaps = {}
    for inst in env.instances:
        try:
            conn = connect_to(inst)
        except Exception as exc:
            snaps[inst.name] = Snapshot(inst.name, error=str(exc))
            continue
        try:
            snaps[inst.name] = read_snapshot(inst.name, conn, env.verify.errorlog_hours)
        except Exception as exc:
            snaps[inst.name] = Snapshot(inst.name, error=f"reading the catalog failed: {exc}")
    return snaps



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
    lines = [f"mirrorkit verify {env.environment}: " +
             ("FAIL" if verdict.failed else ("WARN" if verdict.warned else "PASS")) +
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
        "status": "FAIL" if verdict.failed else ("WARN" if verdict.warned else "PASS"),
        "checked_at": verdict.checked_at.isoformat(timespec="seconds"),
        "findings": [f.as_record() for f in verdict.findings],
        "matrix": [{"initiator": i, "acceptor": a, "result": r} for (i, a), r in verdict.matrix.items()],
        "expiry": [{k: jsonable(v) for k, v in e.items()} for e in verdict.expiry],
    }
