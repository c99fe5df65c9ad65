"""Acceptance: verify's checks that no other test exercised, and its remediations against the docs.

* I00 (an instance unreachable: a lab instance stopped), I01 and I03 (nothing configured yet), P03 (the
  acceptor has no endpoint), I09 (the endpoint on a certificate whose private key is protected by a password),
  P08 (the acceptor's copy of the initiator's certificate outside its validity window);
* `mirrorkit verify PARAMS` exits 2, naming the reference, when a connection secret cannot be resolved;
* the remediation table of docs/operations.md is what verify prints: every row's check is produced on the
  lab and its printed remediation matches the row; and the remediation is applied as printed (remediate()).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from mirrorkit.core import verify

from . import runbook_helpers as H
from . import verify_helpers as vh

pytestmark = pytest.mark.timeout(600)

A, B, W = "PARTNER_A", "PARTNER_B", "WITNESS"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


# ---------------------------------------------------------------------------------------------
# The table in docs/operations.md and verify's printed output
# ---------------------------------------------------------------------------------------------

def docs_rows() -> dict[str, list[str]]:
    """check code → the backticked remediations of its row (P06 / P08 rows give both codes)."""
    rows: dict[str, list[str]] = {}
    text = DOCS.read_text(encoding="utf-8")
    table = text[text.index("| Finding | Usual cause | Remediation verify prints |"):]
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        finding, _cause, remedy = [c.strip() for c in line.strip("|").split("|")]
        codes = re.findall(r"\b([IP]\d\d)\b", finding.split(" ", 3)[0] + " " + " ".join(finding.split()[:3]))
        fragments = re.findall(r"`([^`]+)`", remedy)
        assert codes and fragments, line
        for code in codes:
            rows[code] = fragments
    return rows


def fragment_matches(fragment: str, text: str) -> bool:
    """`…` in the docs stands for a name or value."""
    pattern = ".*?".join(re.escape(part.strip()) for part in fragment.split("…"))
    return re.search(pattern, text) is not None


def printed(env, verdict) -> list[tuple[str, str, str, str]]:
    """(status, check, where, fix) as `mirrorkit verify` prints them."""
    out = []
    lines = verify.text_report(env, verdict).splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(WARN|FAIL) (\w\d\d) (.+?): ", line)
        if m:
            fix = lines[i + 1].strip()[len("fix: "):] if i + 1 < len(lines) and \
                lines[i + 1].strip().startswith("fix: ") else ""
            out.append((m.group(1), m.group(2), m.group(3), fix))
    return out


def assert_as_documented(env, verdict, codes) -> None:
    rows = docs_rows()
    shown = printed(env, verdict)
    for code in codes:
        fixes = [fix for _, check, _, fix in shown if check == code]
        assert fixes, f"verify printed no {code}:\n{verify.text_report(env, verdict)}"
        for fix in fixes:
            assert any(fragment_matches(f, fix) for f in rows[code]), \
                f"{code}: verify prints {fix!r}; docs/operations.md says {rows[code]}"


# ---------------------------------------------------------------------------------------------
# A configured mirroring lab shared by the module
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cl(tmp_path_factory):
    c = vh.configured_lab(tmp_path_factory.mktemp("guards-verify"), vh.MIRRORING)
    baseline = vh.trust_state(c)
    yield c, baseline
    c.close()
    c.lab.stop_all()


@dataclass(repr=False)
class OwnerWithoutLogin(vh.Fault):
    """The peer's certificate owned by a user created WITHOUT LOGIN."""
    kind = "owner_without_login"

    def other_user(self, cl):
        return f"{self.peer}_guard_nologin"

    def apply(self, cl):
        cl.sql(self.at, f"CREATE USER [{self.other_user(cl)}] WITHOUT LOGIN")
        cl.sql(self.at, f"ALTER AUTHORIZATION ON CERTIFICATE::[{self.peer_cert(cl)}] TO [{self.other_user(cl)}]")

    def undo(self, cl):
        vh._quietly(cl, self.at, f"ALTER AUTHORIZATION ON CERTIFICATE::[{self.peer_cert(cl)}] TO [{self.user(cl)}]")
        vh._quietly(cl, self.at, f"DROP USER [{self.other_user(cl)}]")

    def expected(self, cl):
        return {("P14", self.at, self.peer, "FAIL"), ("P09", self.at, self.peer, "FAIL")}


# check codes → the fault that produces them on the configured lab
PRODUCERS = {
    "master_key_without_service_key": (lambda: vh.make("master_key_without_service_key", A), ["I02", "P02"]),
    "endpoint_stopped": (lambda: vh.make("endpoint_stopped", A), ["I04", "P04", "P01"]),
    "expired_certificate": (lambda: vh.make("expired_certificate", A), ["I05", "I10", "P06"]),
    "encryption_disabled": (lambda: vh.make("encryption_disabled", A), ["I06", "P12"]),
    "role_witness": (lambda: vh.make("role_witness", A), ["I07", "P13"]),
    "endpoint_other_port": (lambda: vh.make("endpoint_other_port", A), ["I08"]),
    "windows_authentication": (lambda: vh.make("windows_authentication", A), ["P05", "P02"]),
    "drop_peer_certificate": (lambda: vh.make("drop_peer_certificate", B, A), ["P07"]),
    "wrong_peer_certificate": (lambda: vh.make("wrong_peer_certificate", B, A), ["P07"]),
    "owner_without_login": (lambda: OwnerWithoutLogin(B, A), ["P09", "P14"]),
    "disable_login": (lambda: vh.make("disable_login", B, A), ["P10"]),
    "revoke_connect": (lambda: vh.make("revoke_connect", B, A), ["P11"]),
    "deny_connect": (lambda: vh.make("deny_connect", B, A), ["P11"]),
    "foreign_owner": (lambda: vh.make("foreign_owner", B, A), ["P14"]),
}
# produced by the tests further down (fresh or stopped instances, a synthetic validity window)
ELSEWHERE = {"I00": "test_unreachable_instance_is_I00", "P00": "test_unreachable_instance_is_I00",
             "I01": "test_nothing_configured_is_I01_I03_then_P03", "I03": "test_nothing_configured_is_I01_I03_then_P03",
             "P03": "test_nothing_configured_is_I01_I03_then_P03", "P08": "test_copy_outside_its_validity_is_P08",
             "I09": "test_endpoint_certificate_without_its_private_key_is_I09"}


def test_every_row_of_the_docs_table_is_checked():
    covered = {code for _, codes in PRODUCERS.values() for code in codes} | set(ELSEWHERE)
    assert set(docs_rows()) == covered, (sorted(set(docs_rows()) - covered), sorted(covered - set(docs_rows())))


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
def test_remediation_is_as_documented_and_applied_as_printed(cl, producer):
    c, baseline = cl
    make, codes = PRODUCERS[producer]
    fault = make()
    fault.apply(c)
    try:
        verdict = c.verdict()
        assert not vh.missing(fault.expected(c), verdict), vh.describe(verdict)
        assert_as_documented(c.env, verdict, codes)
        fixed = vh.remediate(c, [fault])
        vh.assert_passes(fixed.verdict, f"{fault}: after {fixed.actions}")
        manual = [a for a in fixed.actions if "documented T-SQL" in a]
        # only the master-key password is a secret the kit must not hold
        assert not manual or producer == "master_key_without_service_key", fixed.actions
    finally:
        fault.undo(c)
    assert vh.trust_state(c) == baseline


# ---------------------------------------------------------------------------------------------
# I00: an instance unreachable (the likeliest daily failure)
# ---------------------------------------------------------------------------------------------

def test_unreachable_instance_is_I00(cl, tmp_path):
    c, baseline = cl
    params = vh.write_parameter_file(tmp_path / "params.yaml", c.values)
    c.close()                       # verify's own session holds a connection to W
    c._verify_run = None
    c[W].running.stop()
    try:
        proc = vh.run_cli(params)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert re.search(rf"^FAIL I00 {W}: cannot connect", proc.stdout, re.M), proc.stdout
        verdict = c.verdict()
        assert {(f.check, f.instance, f.status) for f in vh.problems(verdict) if f.peer is None} == \
            {("I00", W, "FAIL")}, vh.describe(verdict)
        # every pair with the witness, both ways, cannot be checked; the partners' pairs still pass
        assert vh.not_ok(verdict) == {(A, W), (B, W), (W, A), (W, B)}, vh.describe(verdict)
        assert all(verdict.matrix[p].startswith("P00") for p in vh.not_ok(verdict))
        assert_as_documented(c.env, verdict, ["I00", "P00"])
    finally:
        c.close()
        c._verify_run = None
        c.lab.restart(W)
    vh.assert_passes(c.verdict(), "after the witness came back")
    assert vh.trust_state(c) == baseline


# ---------------------------------------------------------------------------------------------
# I01, I03, P03: nothing configured, then outbound on one partner only
# ---------------------------------------------------------------------------------------------

def test_nothing_configured_is_I01_I03_then_P03(tmp_path):
    roles = {A: "partner", B: "partner"}
    c = vh.configured_lab(tmp_path, roles, configure=False)
    try:
        params = vh.write_parameter_file(tmp_path / "params.yaml", c.values)
        proc = vh.run_cli(params)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        verdict = c.verdict()
        for name in (A, B):
            for check in ("I01", "I03"):
                (f,) = vh.matching(verdict, check, name, status="FAIL")
                assert (f.notebook, f.notebook_target) == ("outbound", name), vh.describe(verdict)
                assert f"FAIL {check} {name}:" in proc.stdout
        assert_as_documented(c.env, verdict, ["I01", "I03", "P01"])
        # the remediation, done for A only: B's side is now P03 (B has no endpoint to accept A)
        c.run_notebook("outbound", A)
        c.close()
        c._verify_run = None
        verdict = c.verdict()
        (p03,) = vh.matching(verdict, "P03", B, A, "FAIL")
        assert (p03.notebook, p03.notebook_target, p03.error_number) == ("outbound", B, 1418)
        assert verdict.matrix[(A, B)].startswith("P03"), vh.describe(verdict)
        assert_as_documented(c.env, verdict, ["P03"])
        # the rest as verify says: outbound on B, then inbound on both
        fixed = vh.remediate(c)
        vh.assert_passes(fixed.verdict, f"after {fixed.actions}")
        assert {a.split(": ", 1)[1] for a in fixed.actions} == {
            "notebook outbound target PARTNER_B", "notebook inbound target PARTNER_A",
            "notebook inbound target PARTNER_B"}, fixed.actions
    finally:
        c.close()
        c.lab.stop_all()


# ---------------------------------------------------------------------------------------------
# I09: the endpoint certificate's private key is no longer encrypted by the master key
# ---------------------------------------------------------------------------------------------

def test_endpoint_certificate_without_its_private_key_is_I09(tmp_path):
    """SQL Server (and the lab) refuse an endpoint on a certificate without a master-key-encrypted private key
    (28055), so I09 arises afterwards: here the master key was regenerated with FORCE while it could not be
    opened, and the private keys it protected are lost (pvt_key_encryption_type NA). verify names it, and its
    remediation — a new certificate.name, outbound with endpoint.allow_alter: true — done as printed, followed
    by what verify then says, makes verify pass."""
    roles = {A: "partner", B: "partner"}
    c = vh.configured_lab(tmp_path, roles)
    try:
        c.sql(A, "ALTER MASTER KEY DROP ENCRYPTION BY SERVICE MASTER KEY")
        c.sql(A, f"ALTER MASTER KEY FORCE REGENERATE WITH ENCRYPTION BY PASSWORD = N'{vh.DMK_PASSWORD}'")
        c.sql(A, f"OPEN MASTER KEY DECRYPTION BY PASSWORD = N'{vh.DMK_PASSWORD}'; "
                 "ALTER MASTER KEY ADD ENCRYPTION BY SERVICE MASTER KEY; CLOSE MASTER KEY;")
        assert c.sql(A, "SELECT pvt_key_encryption_type FROM master.sys.certificates WHERE name = ?",
                     f"{A}_dbm_cert")[0][0] == "NA"
        verdict = c.verdict()
        (i09,) = vh.matching(verdict, "I09", A, status="FAIL")
        assert (i09.notebook, i09.notebook_target) == ("outbound", A), vh.describe(verdict)
        assert "set certificate.name" in i09.remediation and "endpoint.allow_alter: true" in i09.remediation
        assert vh.matching(verdict, "P02", B, A, "FAIL") and vh.not_ok(verdict) == {(A, B)}, vh.describe(verdict)
        assert_as_documented(c.env, verdict, ["I09", "P02"])
        # as printed: a new certificate.name and outbound on A with endpoint.allow_alter: true
        from mirrorkit.config import parameters as params
        values = {**c.values, "certificate": {"name": "{instance}_dbm_cert_2"},
                  "endpoint": {**c.values["endpoint"], "allow_alter": True}}
        c.close()
        # a new certificate_dir: the kit never overwrites A's previous artifact (docs/operations.md, rotation)
        c = dataclasses.replace(c, values=values, env=params.from_values(values), _verify_run=None,
                                certificate_dir=tmp_path / "certificates-2")
        c.run_notebook("outbound", A)
        assert not vh.matching(c.verdict(), "I09", A, status="FAIL")
        fixed = vh.remediate(c)          # then what verify says: B's outbound, inbound on both
        vh.assert_passes(fixed.verdict, f"after {fixed.actions}")
        assert H.probe_failures(c.lab, [(A, B, "PARTNER"), (B, A, "PARTNER")]) == []
    finally:
        c.close()
        c.lab.stop_all()


# ---------------------------------------------------------------------------------------------
# P08: the acceptor's copy outside its validity window
# ---------------------------------------------------------------------------------------------

def test_copy_outside_its_validity_is_P08(cl):
    """The copy is found by thumbprint, the SHA-1 of the very DER the initiator's certificate has, so on a
    real catalog its dates are the initiator's: P06 (the initiator's certificate) always comes first, and no
    lab state reaches P08. Its check is exercised on the lab's real catalogs with the acceptor's copy of A's
    certificate read as expired — verify must FAIL P08 for that pair only, with the documented remediation."""
    c, _ = cl
    obs = c.collect()
    st = obs[B].state
    copy = st.certificate(c.env.certificate_name(A))
    own = obs[A].state.endpoint_certificate
    assert copy.thumbprint == own.thumbprint and (copy.start, copy.expiry) == (own.start, own.expiry)
    now = obs[B].state.utc_now
    expired = dataclasses.replace(copy, start=now - timedelta(days=30), expiry=now - timedelta(days=1))
    certificates = dict(st.certificates)
    certificates[copy.name.lower()] = expired
    obs[B] = dataclasses.replace(obs[B], state=dataclasses.replace(st, certificates=certificates))
    verdict = verify.evaluate(c.env, obs)
    (p08,) = vh.matching(verdict, "P08", B, A, "FAIL")
    assert p08.error_number == 28035 and vh.not_ok(verdict) == {(A, B)}, vh.describe(verdict)
    assert_as_documented(c.env, verdict, ["P08"])


# ---------------------------------------------------------------------------------------------
# mirrorkit verify: an unreachable secret is exit 2
# ---------------------------------------------------------------------------------------------

def test_cli_verify_exits_2_for_an_unset_env_secret(cl, tmp_path, monkeypatch):
    c, _ = cl
    values = {**c.values, "connection": {**c.values["connection"], "password": "env:MK_GUARDS_NOT_SET"}}
    params = vh.write_parameter_file(tmp_path / "params.yaml", values)
    monkeypatch.delenv("MK_GUARDS_NOT_SET", raising=False)
    with H.SessionSpy([c[n] for n in c.names]) as spy:
        proc = vh.run_cli(params)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "MK_GUARDS_NOT_SET" in proc.stderr and "connection.password" in proc.stderr, proc.stderr
    assert "I00" not in proc.stdout + proc.stderr and proc.stdout == "", proc.stdout
    assert vh.sa_password() not in proc.stdout + proc.stderr
    assert spy.kit_logins == [], "verify reached an instance before its secrets resolved"
