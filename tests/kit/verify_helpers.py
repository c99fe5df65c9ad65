"""Helpers for the verify acceptance tests (tests/kit/test_verify_*.py) and bench/verify_scaling.py.

* a configured lab: in-process lab instances (tests.conftest.Lab) set up by driving the runbook
  (outbound, inbound, witness) in this process through mirrorkit.notebook.runbook.open_run — no Jupyter kernel;
* verify in process: mirrorkit.verify.collect + evaluate with the runbook's own connections;
* the lab-only probe (sys.sp_mirrorkit_probe) for every ordered pair the topology needs;
* a catalogue of misconfigurations (faults): each knows how to break a correct lab, the findings
  verify must report for it (check, instance, peer, status; the FAIL pair findings are the ordered
  pairs it breaks), the documented T-SQL where verify's remediation is prose only, and how to undo
  itself exactly;
* verify's remediations applied (remediate), a lab pool that rebuilds when a test leaves it changed,
  the whole catalog read view by view (read-only checks), the notebook under papermill and the CLI.

Convention (mirrorkit.verify): a pair finding names instance = acceptor, peer = initiator.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Optional
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

ENV_SA = "MK_VT_SA"                     # connection.password: 'env:MK_VT_SA'
ENV_DMK = "MK_VT_DMK"                   # secrets.master_key_password: 'env:MK_VT_DMK'
DMK_PASSWORD = "Verify-Test-Master-Key-Passw0rd!"
ENDPOINT = "Mirroring"
PORT = 5022
OTHER_PORT = 5023
PEER_PASSWORD = "Other-Login-Passw0rd!1"


# ---------------------------------------------------------------------------------------------
# The lab (tests/conftest.py as pytest loaded it: one address counter for every test)
# ---------------------------------------------------------------------------------------------

def lab_support():
    conftest = ROOT / "tests" / "conftest.py"
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve() == conftest:
            return mod
    if str(ROOT) not in sys.path:                        # bench/ runs outside pytest
        sys.path.insert(0, str(ROOT))
    import tests.conftest as mod
    return mod


def sa_password() -> str:
    return lab_support().SA_PASSWORD


def set_secret_env(environ: Optional[dict] = None) -> None:
    """The env: references the parameter values use (os.environ by default; CLI/papermill inherit it)."""
    target = os.environ if environ is None else environ
    target[ENV_SA] = sa_password()
    target[ENV_DMK] = DMK_PASSWORD


@contextlib.contextmanager
def quiet_runbook():
    """mirrorkit.notebook.runbook shows markdown/tables and writes records through IPython's display; outside a
    kernel they would only print. Silence them while the runbook is driven in process."""
    with mock.patch("mirrorkit.notebook.display.markdown", lambda *a, **k: None), \
            mock.patch("mirrorkit.notebook.display.table", lambda *a, **k: None), \
            mock.patch("mirrorkit.notebook.records.record", lambda *a, **k: None):
        yield


def parameter_values(lab, roles: dict[str, str], *, environment: str = "verifytest",
                     topology: Optional[str] = None, endpoint: Optional[dict] = None,
                     verify: Optional[dict] = None) -> dict:
    """A parameter file's values for lab instances, in the shape of parameters/lab.yaml."""
    values: dict[str, Any] = {"environment": environment}
    if topology is not None:
        values["topology"] = topology
    values["instances"] = [{"name": n, "server": f"{lab[n].host},{lab[n].port}", "role": r}
                           for n, r in roles.items()]
    values["endpoint"] = {"name": ENDPOINT, "port": PORT, **(endpoint or {})}
    values["certificate"] = {}
    values["logins"] = {}
    values["connection"] = {"driver": "FreeTDS", "authentication": "sql", "user": "sa",
                            "password": f"env:{ENV_SA}", "encrypt": "optional", "tds_version": "7.4"}
    values["secrets"] = {"master_key_password": f"env:{ENV_DMK}"}
    values["verify"] = dict(verify or {})
    return values


def write_parameter_file(path: Path, values: dict) -> Path:
    import yaml
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by tests/kit/verify_helpers.py\n" +
                    yaml.safe_dump(values, sort_keys=False, default_flow_style=False), encoding="utf-8")
    return path


def runbook_order(env) -> list[tuple[str, str]]:
    """outbound on every instance, inbound on every partner/replica, then the witness notebook."""
    witness = env.witness
    others = [i.name for i in env.instances if i.role != "witness"]
    steps = [("outbound", n) for n in others] + ([("outbound", witness.name)] if witness else [])
    steps += [("inbound", n) for n in others]
    if witness:
        steps.append(("witness", witness.name))
    return steps


def run_step(env, notebook: str, target: str, certificate_dir: Path) -> "Any":
    """One runbook notebook's plan + apply, in process (what the notebook's cells call)."""
    from mirrorkit.notebook import runbook
    run = runbook.open_run(notebook, env, target=target, mode="apply", certificate_dir=Path(certificate_dir))
    try:
        with quiet_runbook():
            run.plan()
            blocked = [p for p in run.plans if p.blocked]
            assert not blocked, f"{notebook} {target}: blocked: " + "; ".join(
                f.found for p in blocked for f in p.findings)
            run.apply()
    finally:
        run.close()
    return run


# ---------------------------------------------------------------------------------------------
# A configured lab
# ---------------------------------------------------------------------------------------------

@dataclass
class ConfiguredLab:
    lab: Any                                  # tests.conftest.Lab
    values: dict
    env: Any                                  # mirrorkit.params.Environment
    certificate_dir: Path
    configure_seconds: float = 0.0
    _verify_run: Any = None

    # -- access ------------------------------------------------------------------------------
    def __getitem__(self, name: str):
        return self.lab[name]

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.env.instances]

    def sql(self, name: str, statement: str, *args):
        return self.lab[name].sql(statement, *args)

    def pairs(self) -> list[tuple[str, str]]:
        """Every ordered pair (initiator, acceptor) the topology needs, as verify's matrix keys them."""
        return [(ini.name, acc.name) for acc in self.env.instances for ini in self.env.peers_of(acc)]

    # -- the runbook -----------------------------------------------------------------------------
    def run_notebook(self, notebook: str, target: str):
        return run_step(self.env, notebook, target, self.certificate_dir)

    def configure(self) -> "ConfiguredLab":
        started = time.monotonic()
        for notebook, target in runbook_order(self.env):
            self.run_notebook(notebook, target)
        self.configure_seconds = time.monotonic() - started
        return self

    # -- verify ------------------------------------------------------------------------------------
    def connection(self, inst):
        from mirrorkit.notebook.session import Session
        if self._verify_run is None:
            self._verify_run = Session(self.env)
        return self._verify_run.connection(inst)

    def close(self) -> None:
        if self._verify_run is not None:
            self._verify_run.close()

    def collect(self):
        from mirrorkit.core import verify
        return verify.collect(self.env, self.connection)

    def verdict(self, now: Optional[datetime] = None):
        from mirrorkit.core import verify
        return verify.evaluate(self.env, self.collect(), now)

    # -- the transport ------------------------------------------------------------------------------
    def probe(self, initiator: str, acceptor: str, url: Optional[str] = None) -> tuple:
        """sys.sp_mirrorkit_probe on the initiator towards the acceptor's endpoint URL (the parameters'
        address and port, as partners and the witness are given it), requesting WITNESS when the
        acceptor is the witness, else PARTNER. → (endpoint_url, succeeded, error_number, message)."""
        acc = self.env.instance(acceptor)
        role = "WITNESS" if acc.role == "witness" else "PARTNER"
        rows = self.sql(initiator, "EXEC sys.sp_mirrorkit_probe @endpoint_url = ?, @peer_role = ?",
                        url or self.env.endpoint_url(acc), role)
        assert len(rows) == 1, rows
        u, ok, number, message = rows[0]
        return u, bool(ok), number, message

    def probe_matrix(self) -> dict[tuple[str, str], tuple]:
        return {(i, a): self.probe(i, a) for i, a in self.pairs()}


def new_lab(state_dir: Path, names: Iterable[str]):
    from tests.kit.runbook_helpers import start_lab
    return start_lab(state_dir, *names)


def configured_lab(state_dir: Path, roles: dict[str, str], *, topology: Optional[str] = None,
                   endpoint: Optional[dict] = None, verify: Optional[dict] = None,
                   configure: bool = True) -> ConfiguredLab:
    """Start the instances, build the parameters and (by default) run the whole runbook in process."""
    from mirrorkit.config import parameters as params
    set_secret_env()
    lab = new_lab(Path(state_dir) / "lab", roles)
    try:
        values = parameter_values(lab, roles, topology=topology, endpoint=endpoint, verify=verify)
        env = params.from_values(values)
        cl = ConfiguredLab(lab, values, env, Path(state_dir) / "certificates")
        if configure:
            cl.configure()
    except BaseException:
        lab.stop_all()
        raise
    return cl


MIRRORING = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}


def ag_roles(n: int) -> dict[str, str]:
    return {f"REPLICA_{i}": "replica" for i in range(1, n + 1)}


# ---------------------------------------------------------------------------------------------
# Reading verdicts
# ---------------------------------------------------------------------------------------------

EVIDENCE = ("L01", "L02")            # live evidence (error log, connections): not a configuration check


def problems(verdict) -> list:
    """Every WARN and FAIL finding except the live evidence (an error log keeps old handshake failures)."""
    return [f for f in verdict.findings if f.status != "PASS" and f.check not in EVIDENCE]


def finding_key(f) -> tuple:
    return (f.check, f.instance, f.peer, f.status)


def describe(verdict) -> str:
    lines = [f"{f.status} {f.check} {f.instance}{' <- ' + f.peer if f.peer else ''}: {f.found}"
             + (f"  [remediation: {f.remediation}]" if f.remediation else "")
             + (f"  [sql on {f.remediation_instance}: {f.remediation_sql}]" if f.remediation_sql else "")
             + (f"  [notebook {f.notebook} target {f.notebook_target}]" if f.notebook else "")
             for f in verdict.findings if f.status != "PASS"]
    lines += [f"matrix {i} -> {a}: {r}" for (i, a), r in sorted(verdict.matrix.items())]
    return "\n".join(lines) or "(all PASS)"


def not_ok(verdict) -> set:
    return {k for k, v in verdict.matrix.items() if v != "OK"}


def assert_passes(verdict, context: str = "") -> None:
    """verify passes: no FAIL and no WARN (live evidence aside), every pair of the matrix OK."""
    assert not problems(verdict) and not not_ok(verdict) and not verdict.failed, \
        f"{context}: verify does not pass:\n{describe(verdict)}"


# ---------------------------------------------------------------------------------------------
# Catalog state
# ---------------------------------------------------------------------------------------------

def trust_state(cl: ConfiguredLab) -> dict:
    """What trust depends on, per instance, without ids and modify dates (equal after a correct undo)."""
    out = {}
    for name in cl.names:
        h = cl[name]
        rows = lambda sql: sorted((tuple(r) for r in h.sql(sql)), key=repr)   # noqa: E731
        out[name] = {
            "endpoint": rows("SELECT e.name, e.state_desc, e.role_desc, e.connection_auth_desc, c.name, "
                             "e.encryption_algorithm_desc, t.port, t.ip_address "
                             "FROM master.sys.database_mirroring_endpoints AS e "
                             "JOIN master.sys.tcp_endpoints AS t ON t.endpoint_id = e.endpoint_id "
                             "LEFT JOIN master.sys.certificates AS c ON c.certificate_id = e.certificate_id"),
            "certificates": rows("SELECT c.name, dp.name, c.pvt_key_encryption_type, c.thumbprint "
                                 "FROM master.sys.certificates AS c LEFT JOIN master.sys.database_principals AS dp "
                                 "ON dp.principal_id = c.principal_id WHERE c.name NOT LIKE N'##%'"),
            "logins": rows("SELECT name, type, is_disabled FROM master.sys.server_principals "
                           "WHERE name NOT LIKE N'##%'"),
            "users": rows("SELECT dp.name, sp.name FROM master.sys.database_principals AS dp "
                          "LEFT JOIN master.sys.server_principals AS sp ON sp.sid = dp.sid"),
            "permissions": rows("SELECT p.class, p.permission_name, p.state_desc, SUSER_NAME(p.grantee_principal_id) "
                                "FROM master.sys.server_permissions AS p"),
            "master_key": rows("SELECT is_master_key_encrypted_by_server FROM master.sys.databases "
                               "WHERE name = N'master'"),
        }
    return out


def catalog_views() -> list[tuple[str, str]]:
    """(view, scope) for every catalog view the lab serves, the live sys.dm_* views left out."""
    from mirrorkit_lab.engine.catalog import VIEWS
    return sorted((v.name, v.scope) for v in VIEWS.values() if v.scope != "live")


def full_catalog(handle) -> dict:
    """Every row of every catalog view (server views once, database views in every database), read through
    the client stack: SELECT * FROM <db>.sys.<view>."""
    databases = [r[0] for r in handle.sql("SELECT name FROM master.sys.databases ORDER BY name")]
    out = {}
    with handle.connect() as cn:
        cur = cn.cursor()
        for view, scope in catalog_views():
            for db in (["master"] if scope == "server" else databases):
                cur.execute(f"SELECT * FROM [{db}].sys.{view}")
                cols = [d[0] for d in cur.description]
                rows = sorted((tuple(bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else v for v in r)
                               for r in cur.fetchall()), key=repr)
                out[f"{db}.sys.{view}"] = (cols, rows)
    return out


# ---------------------------------------------------------------------------------------------
# The catalogue of misconfigurations
# ---------------------------------------------------------------------------------------------

_impostors: dict[str, bytes] = {}


def impostor_der(subject: str) -> bytes:
    """A self-signed certificate that is not the peer's (another key, issuer and serial)."""
    if subject not in _impostors:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        now = datetime.utcnow()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
        _impostors[subject] = cert.public_bytes(serialization.Encoding.DER)
    return _impostors[subject]


def _q(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def _date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _quietly(cl: ConfiguredLab, name: str, statement: str) -> Optional[str]:
    try:
        cl.sql(name, statement)
        return None
    except Exception as exc:          # undo is idempotent: "already so" is fine
        return str(exc)


Expect = tuple  # (check or "A|B" alternatives, instance, peer, status)


@dataclass
class Fault:
    """One misconfiguration at one place. Pair faults: `at` is the acceptor, `peer` the initiator (verify's
    convention: instance = acceptor, peer = initiator). Instance faults: `at` is the instance."""
    at: str
    peer: Optional[str] = None
    saved: dict = field(default_factory=dict)
    kind = "?"
    scope = "pair"
    manual_checks = ()              # checks whose remediation is prose only (see manual())

    def __str__(self) -> str:
        return f"{self.kind}@{self.at}" + (f"<-{self.peer}" if self.peer else "")

    __repr__ = __str__

    # names --------------------------------------------------------------------------------------
    def login(self, cl):
        return cl.env.login_name(self.peer)

    def user(self, cl):
        return cl.env.user_name(self.peer)

    def peer_cert(self, cl):
        return cl.env.certificate_name(self.peer)

    # behaviour ----------------------------------------------------------------------------------
    def apply(self, cl: ConfiguredLab) -> None:
        raise NotImplementedError

    def undo(self, cl: ConfiguredLab) -> None:
        """Restore exactly what the runbook had configured (idempotent)."""
        raise NotImplementedError

    def expected(self, cl: ConfiguredLab) -> set:
        """Every WARN/FAIL finding verify must report for this fault alone (live evidence aside)."""
        raise NotImplementedError

    def signature(self, cl: ConfiguredLab) -> set:
        """The findings that name this fault even beside another fault elsewhere."""
        return self.expected(cl)

    def manual(self, cl: ConfiguredLab, finding) -> Optional[str]:
        """Apply the documented T-SQL for a prose-only remediation of `finding`; None when not ours."""
        return None


def expect_matches(expect: Expect, f) -> bool:
    check, instance, peer, status = expect
    return f.check in check.split("|") and f.instance == instance and f.peer == peer and f.status == status


def missing(expects: Iterable[Expect], verdict) -> list:
    return [e for e in expects if not any(expect_matches(e, f) for f in verdict.findings)]


def unexpected(expects: Iterable[Expect], verdict) -> list:
    expects = list(expects)
    return [f for f in problems(verdict) if not any(expect_matches(e, f) for e in expects)]


def incoming(cl, at: str) -> list[tuple[str, str]]:
    """(acceptor, initiator) = (at, p) for every peer p that connects to `at`."""
    return [(at, p.name) for p in cl.env.peers_of(at)]


def outgoing(cl, at: str) -> list[tuple[str, str]]:
    """(acceptor, initiator) = (p, at) for every peer p that `at` connects to."""
    return [(p.name, at) for p in cl.env.instances if p.name != at and
            at in [q.name for q in cl.env.peers_of(p)]]


def pair_expects(check: str, pairs, status: str = "FAIL") -> set:
    return {(check, acc, ini, status) for acc, ini in pairs}


# -- pair faults: on the acceptor `at`, about the initiator `peer` ----------------------------------

@dataclass(repr=False)
class RevokeConnect(Fault):
    kind = "revoke_connect"

    def apply(self, cl):
        cl.sql(self.at, f"REVOKE CONNECT ON ENDPOINT::{_q(ENDPOINT)} FROM {_q(self.login(cl))}")

    def undo(self, cl):
        _quietly(cl, self.at, f"REVOKE CONNECT ON ENDPOINT::{_q(ENDPOINT)} FROM {_q(self.login(cl))}")
        _quietly(cl, self.at, f"GRANT CONNECT ON ENDPOINT::{_q(ENDPOINT)} TO {_q(self.login(cl))}")

    def expected(self, cl):
        return {("P11", self.at, self.peer, "FAIL")}


@dataclass(repr=False)
class DenyConnect(RevokeConnect):
    kind = "deny_connect"

    def apply(self, cl):
        cl.sql(self.at, f"DENY CONNECT ON ENDPOINT::{_q(ENDPOINT)} TO {_q(self.login(cl))}")


@dataclass(repr=False)
class DisableLogin(Fault):
    kind = "disable_login"

    def apply(self, cl):
        cl.sql(self.at, f"ALTER LOGIN {_q(self.login(cl))} DISABLE")

    def undo(self, cl):
        _quietly(cl, self.at, f"ALTER LOGIN {_q(self.login(cl))} ENABLE")

    def expected(self, cl):
        return {("P10", self.at, self.peer, "FAIL")}


def _certencoded(cl, at: str, name: str) -> Optional[bytes]:
    rows = cl.sql(at, "SELECT CERTENCODED(CERT_ID(?))", name)
    return bytes(rows[0][0]) if rows and rows[0][0] is not None else None


def _thumbprint(cl, at: str, name: str) -> Optional[bytes]:
    rows = cl.sql(at, "SELECT thumbprint FROM master.sys.certificates WHERE name = ?", name)
    return bytes(rows[0][0]) if rows else None


@dataclass(repr=False)
class DropPeerCertificate(Fault):
    kind = "drop_peer_certificate"

    def apply(self, cl):
        self.saved["der"] = _certencoded(cl, self.at, self.peer_cert(cl))
        self.saved["thumbprint"] = _thumbprint(cl, self.at, self.peer_cert(cl))
        cl.sql(self.at, f"DROP CERTIFICATE {_q(self.peer_cert(cl))}")

    def undo(self, cl):
        name = self.peer_cert(cl)
        if _thumbprint(cl, self.at, name) == self.saved.get("thumbprint"):
            return
        _quietly(cl, self.at, f"DROP CERTIFICATE {_q(name)}")
        cl.sql(self.at, f"CREATE CERTIFICATE {_q(name)} AUTHORIZATION {_q(self.user(cl))} "
                        f"FROM BINARY = 0x{self.saved['der'].hex()}")

    def expected(self, cl):
        return {("P07", self.at, self.peer, "FAIL")}


@dataclass(repr=False)
class WrongPeerCertificate(DropPeerCertificate):
    """Another certificate imported, under the name the parameters give the peer's certificate and owned by
    the peer's user, the peer's own certificate dropped (the wrong .cer file imported)."""
    kind = "wrong_peer_certificate"

    def apply(self, cl):
        super().apply(cl)
        der = impostor_der(f"{self.peer} another certificate")
        cl.sql(self.at, f"CREATE CERTIFICATE {_q(self.peer_cert(cl))} AUTHORIZATION {_q(self.user(cl))} "
                        f"FROM BINARY = 0x{der.hex()}")


@dataclass(repr=False)
class WrongPeerCertificateOtherName(DropPeerCertificate):
    """The same, the wrong certificate imported under another name."""
    kind = "wrong_peer_certificate_other_name"

    def other(self, cl):
        return f"{self.peer}_vt_wrong_cert"

    def apply(self, cl):
        super().apply(cl)
        der = impostor_der(f"{self.peer} another certificate")
        cl.sql(self.at, f"CREATE CERTIFICATE {_q(self.other(cl))} AUTHORIZATION {_q(self.user(cl))} "
                        f"FROM BINARY = 0x{der.hex()}")

    def undo(self, cl):
        super().undo(cl)
        _quietly(cl, self.at, f"DROP CERTIFICATE {_q(self.other(cl))}")


@dataclass(repr=False)
class ForeignOwner(Fault):
    """The peer's certificate owned by a user of another login (ALTER AUTHORIZATION ON CERTIFICATE)."""
    kind = "foreign_owner"

    def other_login(self, cl):
        return f"{self.peer}_vt_other_login"

    def other_user(self, cl):
        return f"{self.peer}_vt_other_user"

    def apply(self, cl):
        cl.sql(self.at, f"CREATE LOGIN {_q(self.other_login(cl))} WITH PASSWORD = N'{PEER_PASSWORD}'")
        cl.sql(self.at, f"CREATE USER {_q(self.other_user(cl))} FOR LOGIN {_q(self.other_login(cl))}")
        cl.sql(self.at, f"ALTER AUTHORIZATION ON CERTIFICATE::{_q(self.peer_cert(cl))} TO {_q(self.other_user(cl))}")

    def undo(self, cl):
        _quietly(cl, self.at, f"ALTER AUTHORIZATION ON CERTIFICATE::{_q(self.peer_cert(cl))} TO {_q(self.user(cl))}")
        _quietly(cl, self.at, f"REVOKE CONNECT ON ENDPOINT::{_q(ENDPOINT)} FROM {_q(self.other_login(cl))}")
        _quietly(cl, self.at, f"DROP USER {_q(self.other_user(cl))}")
        _quietly(cl, self.at, f"DROP LOGIN {_q(self.other_login(cl))}")

    def expected(self, cl):
        # P14: not owned by the peer's own user (the documented state); P11: and that login may not CONNECT
        return {("P14", self.at, self.peer, "FAIL"), ("P09|P11", self.at, self.peer, "FAIL")}


# -- instance faults on `at` -------------------------------------------------------------------------

@dataclass(repr=False)
class InstanceFault(Fault):
    scope = "instance"

    def own_cert(self, cl):
        return cl.env.certificate_name(self.at)

    def alter(self, cl, clause: str) -> None:
        cl.sql(self.at, f"ALTER ENDPOINT {_q(ENDPOINT)} {clause}")


@dataclass(repr=False)
class ExpiredCertificate(InstanceFault):
    """A new endpoint certificate whose validity ended, exported and imported to every peer (owned by the
    instance's user there) and the endpoint moved to it: only the dates are wrong."""
    kind = "expired_certificate"

    def name(self, cl):
        return f"{self.at}_vt_{self.kind}"

    def window(self, cl) -> tuple[datetime, datetime]:
        now = datetime.utcnow()
        return now - timedelta(days=400), now - timedelta(days=2)

    def apply(self, cl):
        start, expiry = self.window(cl)
        name = self.name(cl)
        cl.sql(self.at, f"CREATE CERTIFICATE {_q(name)} WITH SUBJECT = N'{self.at} {self.kind}', "
                        f"START_DATE = '{_date(start)}', EXPIRY_DATE = '{_date(expiry)}'")
        der = _certencoded(cl, self.at, name)
        for acc, _ in outgoing(cl, self.at):
            cl.sql(acc, f"CREATE CERTIFICATE {_q(name)} AUTHORIZATION {_q(cl.env.user_name(self.at))} "
                        f"FROM BINARY = 0x{der.hex()}")
        self.alter(cl, f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {_q(name)})")

    def undo(self, cl):
        _quietly(cl, self.at, f"ALTER ENDPOINT {_q(ENDPOINT)} FOR DATABASE_MIRRORING "
                              f"(AUTHENTICATION = CERTIFICATE {_q(self.own_cert(cl))})")
        for n in [self.at] + [acc for acc, _ in outgoing(cl, self.at)]:
            _quietly(cl, n, f"DROP CERTIFICATE {_q(self.name(cl))}")

    def expected(self, cl):
        return ({("I10", self.at, None, "FAIL"), ("I05", self.at, None, "WARN")}
                | pair_expects("P06", outgoing(cl, self.at)))

    def signature(self, cl):
        return {("I10", self.at, None, "FAIL")}


@dataclass(repr=False)
class ExpiringCertificate(ExpiredCertificate):
    """The same with a certificate that expires within verify.expiry_warning_days: WARN, not FAIL."""
    kind = "expiring_certificate"

    def window(self, cl):
        now = datetime.utcnow()
        return now - timedelta(days=1), now + timedelta(days=max(cl.env.verify.expiry_warning_days // 3, 2))

    def expected(self, cl):
        return {("I10", self.at, None, "WARN"), ("I05", self.at, None, "WARN")}

    def signature(self, cl):
        return {("I10", self.at, None, "WARN")}


@dataclass(repr=False)
class EndpointStopped(InstanceFault):
    kind = "endpoint_stopped"

    def apply(self, cl):
        self.alter(cl, "STATE = STOPPED")

    def undo(self, cl):
        _quietly(cl, self.at, f"ALTER ENDPOINT {_q(ENDPOINT)} STATE = STARTED")

    def expected(self, cl):
        return ({("I04", self.at, None, "FAIL")} | pair_expects("P04", incoming(cl, self.at))
                | pair_expects("P01", outgoing(cl, self.at)))

    def signature(self, cl):
        return {("I04", self.at, None, "FAIL")}


@dataclass(repr=False)
class EndpointOtherPort(InstanceFault):
    """The endpoint listens on another port than the parameters' (the peers are given TCP://host:5022)."""
    kind = "endpoint_other_port"

    def apply(self, cl):
        self.alter(cl, f"AS TCP (LISTENER_PORT = {OTHER_PORT})")

    def undo(self, cl):
        _quietly(cl, self.at, f"ALTER ENDPOINT {_q(ENDPOINT)} AS TCP (LISTENER_PORT = {PORT})")

    def expected(self, cl):
        return {("I08", self.at, None, "FAIL")} | pair_expects("P04", incoming(cl, self.at))

    def signature(self, cl):
        return {("I08", self.at, None, "FAIL")}


@dataclass(repr=False)
class EncryptionDisabled(InstanceFault):
    kind = "encryption_disabled"
    clause = "ENCRYPTION = DISABLED"

    def apply(self, cl):
        self.alter(cl, f"FOR DATABASE_MIRRORING ({self.clause})")

    def undo(self, cl):
        _quietly(cl, self.at, f"ALTER ENDPOINT {_q(ENDPOINT)} FOR DATABASE_MIRRORING "
                              "(ENCRYPTION = REQUIRED ALGORITHM AES)")

    def expected(self, cl):
        return ({("I06", self.at, None, "FAIL")} | pair_expects("P12", incoming(cl, self.at))
                | pair_expects("P12", outgoing(cl, self.at)))

    def signature(self, cl):
        return {("I06", self.at, None, "FAIL")}


@dataclass(repr=False)
class AlgorithmRC4(EncryptionDisabled):
    kind = "algorithm_rc4"
    clause = "ENCRYPTION = REQUIRED ALGORITHM RC4"


@dataclass(repr=False)
class RoleWitness(InstanceFault):
    """ROLE = WITNESS on a partner (or replica): it no longer serves partner connections."""
    kind = "role_witness"

    def apply(self, cl):
        self.alter(cl, "FOR DATABASE_MIRRORING (ROLE = WITNESS)")

    def undo(self, cl):
        _quietly(cl, self.at, f"ALTER ENDPOINT {_q(ENDPOINT)} FOR DATABASE_MIRRORING "
                              f"(ROLE = {cl.env.endpoint_role(self.at)})")

    def expected(self, cl):
        return {("I07", self.at, None, "FAIL")} | pair_expects("P13", incoming(cl, self.at))

    def signature(self, cl):
        return {("I07", self.at, None, "FAIL")}


@dataclass(repr=False)
class WindowsAuthentication(InstanceFault):
    kind = "windows_authentication"

    def apply(self, cl):
        self.alter(cl, "FOR DATABASE_MIRRORING (AUTHENTICATION = WINDOWS NEGOTIATE)")

    def undo(self, cl):
        _quietly(cl, self.at, f"ALTER ENDPOINT {_q(ENDPOINT)} FOR DATABASE_MIRRORING "
                              f"(AUTHENTICATION = CERTIFICATE {_q(self.own_cert(cl))})")

    def expected(self, cl):
        return ({("I05", self.at, None, "FAIL")} | pair_expects("P05", incoming(cl, self.at))
                | pair_expects("P02", outgoing(cl, self.at)))

    def signature(self, cl):
        return {("I05", self.at, None, "FAIL")}


@dataclass(repr=False)
class MasterKeyWithoutServiceKey(InstanceFault):
    """ALTER MASTER KEY DROP ENCRYPTION BY SERVICE MASTER KEY: the server cannot open the endpoint
    certificate's private key by itself."""
    kind = "master_key_without_service_key"
    manual_checks = ("I02",)

    def apply(self, cl):
        cl.sql(self.at, "ALTER MASTER KEY DROP ENCRYPTION BY SERVICE MASTER KEY")

    def restore(self, cl):
        # the documented remediation (prose in verify, with the master-key password from secrets)
        cl.sql(self.at, f"OPEN MASTER KEY DECRYPTION BY PASSWORD = N'{DMK_PASSWORD}'; "
                        "ALTER MASTER KEY ADD ENCRYPTION BY SERVICE MASTER KEY; CLOSE MASTER KEY;")

    def undo(self, cl):
        try:
            self.restore(cl)
        except Exception:
            pass

    def expected(self, cl):
        return {("I02", self.at, None, "FAIL")} | pair_expects("P02", outgoing(cl, self.at))

    def signature(self, cl):
        return {("I02", self.at, None, "FAIL")}

    def manual(self, cl, finding):
        if finding.check == "I02" and finding.instance == self.at:
            # the fix needs the master-key password, which the kit must not hold: verify names the statements
            for statement in ("OPEN MASTER KEY DECRYPTION BY PASSWORD = N'…'",
                              "ALTER MASTER KEY ADD ENCRYPTION BY SERVICE MASTER KEY", "CLOSE MASTER KEY"):
                assert statement in finding.remediation, (statement, finding.remediation)
            self.restore(cl)
            return (f"{self.at}: OPEN MASTER KEY DECRYPTION BY PASSWORD = N'…'; ALTER MASTER KEY ADD ENCRYPTION "
                    "BY SERVICE MASTER KEY; CLOSE MASTER KEY")
        return None


PAIR_KINDS = {c.kind: c for c in (RevokeConnect, DenyConnect, DisableLogin, DropPeerCertificate,
                                  WrongPeerCertificate, ForeignOwner)}
INSTANCE_KINDS = {c.kind: c for c in (ExpiredCertificate, ExpiringCertificate, EndpointStopped,
                                      EndpointOtherPort, EncryptionDisabled, AlgorithmRC4, RoleWitness,
                                      WindowsAuthentication, MasterKeyWithoutServiceKey)}
KINDS = {**PAIR_KINDS, **INSTANCE_KINDS}
PARTNER_ONLY = {"role_witness"}


def make(kind: str, at: str, peer: Optional[str] = None) -> Fault:
    cls = KINDS.get(kind) or {WrongPeerCertificateOtherName.kind: WrongPeerCertificateOtherName}[kind]
    return cls(at, peer)


# ---------------------------------------------------------------------------------------------
# Applying verify's remediations
# ---------------------------------------------------------------------------------------------

@dataclass
class Remediation:
    verdict: Any                     # the verdict after the last round
    actions: list = field(default_factory=list)
    unresolved: list = field(default_factory=list)


def remediate(cl: ConfiguredLab, faults: Iterable[Fault] = (), rounds: int = 4) -> Remediation:
    """Apply what verify says, round by round, until it passes: remediation_sql on remediation_instance;
    the named notebook and target (in process, through mirrorkit.notebook.runbook.open_run). Only where the fix
    needs a secret the kit must not hold (the master-key password: I02) is the remediation advice in words; the
    fault then applies the statements the advice names (Fault.manual) and the actions list it."""
    faults = list(faults)
    out = Remediation(cl.verdict())
    for _ in range(rounds):
        todo = problems(out.verdict)
        if not todo and not out.verdict.failed:
            return out
        done: set = set()
        out.unresolved = []
        for f in todo:
            if f.remediation_sql:
                key = ("sql", f.remediation_instance, f.remediation_sql)
                if key in done:
                    continue
                done.add(key)
                assert f.remediation_instance, f"{f.check} {f.instance}: remediation_sql without remediation_instance"
                try:
                    cl.sql(f.remediation_instance, f.remediation_sql)
                except Exception as exc:
                    raise AssertionError(f"{f.check} {f.instance} <- {f.peer}: its remediation_sql failed on "
                                         f"{f.remediation_instance}: {f.remediation_sql}\n{exc}") from None
                out.actions.append(f"{f.check}: on {f.remediation_instance}: {f.remediation_sql}")
            elif f.notebook:
                key = ("notebook", f.notebook, f.notebook_target)
                if key in done:
                    continue
                done.add(key)
                try:
                    cl.run_notebook(f.notebook, f.notebook_target)
                except Exception as exc:
                    raise AssertionError(f"{f.check} {f.instance} <- {f.peer}: its remediation, notebook "
                                         f"{f.notebook} with target {f.notebook_target}, failed: {exc}") from None
                out.actions.append(f"{f.check}: notebook {f.notebook} target {f.notebook_target}")
            else:
                for fault in faults:
                    key = ("manual", str(fault))
                    if key in done:
                        continue
                    note = fault.manual(cl, f)
                    if note:
                        done.add(key)
                        out.actions.append(f"{f.check}: documented T-SQL: {note}")
                        break
                else:
                    out.unresolved.append(f)
        out.verdict = cl.verdict()
        if not done:
            break
    return out


# ---------------------------------------------------------------------------------------------
# A pool: one configured lab reused by many tests, rebuilt when a test leaves it changed
# ---------------------------------------------------------------------------------------------

class LabPool:
    def __init__(self, base_dir: Path, roles: dict[str, str], **kw):
        self.base_dir = Path(base_dir)
        self.roles = roles
        self.kw = kw
        self.current: Optional[ConfiguredLab] = None
        self.baseline: Optional[dict] = None
        self.builds = 0

    def _build(self) -> None:
        self.discard()
        self.builds += 1
        self.current = configured_lab(self.base_dir / f"build{self.builds}", self.roles, **self.kw)
        self.baseline = trust_state(self.current)

    def get(self) -> ConfiguredLab:
        if self.current is None:
            self._build()
        return self.current

    def release(self, faults: Iterable[Fault] = ()) -> bool:
        """Undo the faults; keep the lab when its trust state is the configured one again, else rebuild
        on the next get(). True when the lab was kept."""
        cl = self.current
        if cl is None:
            return False
        try:
            for fault in reversed(list(faults)):
                fault.undo(cl)
            if trust_state(cl) == self.baseline:
                return True
        except Exception:
            pass
        self.discard()
        return False

    def discard(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current.lab.stop_all()
            self.current = None

    close = discard


def matching(verdict, check: str, instance: str, peer: Optional[str] = None, status: Optional[str] = None) -> list:
    return [f for f in verdict.findings if f.check == check and f.instance == instance and f.peer == peer
            and (status is None or f.status == status)]


# ---------------------------------------------------------------------------------------------
# The notebook (papermill) and the CLI
# ---------------------------------------------------------------------------------------------

@dataclass
class NotebookOutcome:
    output: Path
    error: Optional[BaseException]
    records: dict
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None

    def verify_record(self) -> Optional[dict]:
        recs = self.records.get("verify") or []
        return recs[-1] if recs else None

    def shown_error(self) -> str:
        """What the executed notebook shows of its failure: error outputs and streams of the failing cell."""
        import nbformat
        if not self.output.exists():
            return ""
        nb = nbformat.read(str(self.output), as_version=4)
        parts = []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    parts += [f"{out.get('ename')}: {out.get('evalue')}", *out.get("traceback", [])]
                elif out.get("output_type") == "stream":
                    parts.append(out.get("text", ""))
                elif out.get("output_type") in ("display_data", "execute_result"):
                    parts.append(str(out.get("data", {}).get("text/markdown", "")))
        return "\n".join(parts)


def run_verify_notebook(cl: ConfiguredLab, out_dir: Path, name: str = "verify") -> NotebookOutcome:
    """notebooks/verify.ipynb under papermill with the lab's parameter file (-p parameters_file FILE), in a
    kernel that inherits this process's environment (the env: secret references)."""
    import papermill
    from mirrorkit.notebook.records import read_records
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.ipynb"
    parameters = {"parameters_file": str(write_parameter_file(out_dir / f"{name}.params.yaml", cl.values))}
    started = time.monotonic()
    error = None
    try:
        papermill.execute_notebook(str(NOTEBOOKS / "verify.ipynb"), str(output), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, cwd=str(ROOT))
    except Exception as exc:            # PapermillExecutionError: a cell raised (the output is written)
        error = exc
    records = read_records(output) if output.exists() else {}
    return NotebookOutcome(output, error, records, time.monotonic() - started)


def run_cli(params_file: Path, *extra: str, timeout: int = 120):
    """python -m mirrorkit verify PARAMS …, from the repository root, with the secrets in its environment."""
    import subprocess
    env = dict(os.environ)
    set_secret_env(env)
    return subprocess.run([sys.executable, "-m", "mirrorkit", "verify", str(params_file), *extra], cwd=str(ROOT),
                          env=env, capture_output=True, text=True, timeout=timeout)
