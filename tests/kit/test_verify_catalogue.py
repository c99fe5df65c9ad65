"""verify against a catalogue of misconfigurations, singly and in pairs, on a lab configured by the runbook.

The lab: PARTNER_A, PARTNER_B (partners) and WITNESS, configured by outbound, inbound and witness run in
process (tests/kit/verify_helpers.py). Each fault is applied to the correctly configured lab; verify must
FAIL (WARN for a soon-expiring certificate) naming the right check, instance and peer (pair findings:
instance = acceptor, peer = initiator), its matrix must mark exactly the ordered pairs the fault breaks,
and applying verify's own remediation (remediation_sql on remediation_instance, or the named notebook and
target run in process) must make verify pass again. Only where the fix needs the master-key password, which the
kit must not hold, is verify's remediation advice in words; the test applies the statements it names
(Fault.manual, listed in the assertion messages):
  * the master key without service-master-key encryption (I02): OPEN MASTER KEY DECRYPTION BY PASSWORD;
    ALTER MASTER KEY ADD ENCRYPTION BY SERVICE MASTER KEY; CLOSE MASTER KEY;
an expired or soon-expiring endpoint certificate (I10, P06, and I05 for its name) is fixed by the statement verify
gives: ALTER ENDPOINT … AUTHENTICATION = CERTIFICATE <instance>_dbm_cert, the certificate the parameters name,
which every peer already holds.
One lab serves the whole module; a test that leaves it changed makes the next one rebuild it (LabPool).
"""
from __future__ import annotations

import itertools

import pytest

from tests.kit import verify_helpers as vh

A, B, W = "PARTNER_A", "PARTNER_B", "WITNESS"

# (acceptor, initiator): partner <- partner, witness <- partner, partner <- witness
PAIR_PLACES = [(B, A), (W, B), (A, W)]
INSTANCE_PLACES = {kind: ([A, B] if kind in vh.PARTNER_ONLY else [A, W]) for kind in vh.INSTANCE_KINDS}

SINGLES = ([vh.make(k, acc, ini) for k in vh.PAIR_KINDS for acc, ini in PAIR_PLACES] +
           [vh.make(k, at) for k in vh.INSTANCE_KINDS for at in INSTANCE_PLACES[k]])


def placed(k1: str, k2: str) -> tuple[vh.Fault, vh.Fault]:
    """Two faults of different kinds, placed so that neither hides the other's own findings: a pair fault
    never on a pair that touches the instance of an instance fault, two pair faults on different acceptors."""
    p1, p2 = k1 in vh.PAIR_KINDS, k2 in vh.PAIR_KINDS
    if p1 and p2:
        return vh.make(k1, B, A), vh.make(k2, W, B)
    if p1 != p2:
        pk, ik = (k1, k2) if p1 else (k2, k1)
        if ik in vh.PARTNER_ONLY:
            i_fault, p_fault = vh.make(ik, A), vh.make(pk, W, B)
        else:
            i_fault, p_fault = vh.make(ik, W), vh.make(pk, B, A)
        return (p_fault, i_fault) if p1 else (i_fault, p_fault)
    if k2 in vh.PARTNER_ONLY:
        return vh.make(k1, W), vh.make(k2, A)
    return vh.make(k1, A), vh.make(k2, W)


COMBINATIONS = [placed(k1, k2) for k1, k2 in itertools.combinations(sorted(vh.KINDS), 2)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    p = vh.LabPool(tmp_path_factory.mktemp("verify-catalogue"), vh.MIRRORING)
    yield p
    p.close()


def _clean(pool) -> vh.ConfiguredLab:
    cl = pool.get()
    vh.assert_passes(cl.verdict(), "the configured lab before the fault")
    return cl


def _pairs_of(expects) -> set:
    """(initiator, acceptor) matrix keys of the FAIL pair findings."""
    return {(ini, acc) for check, acc, ini, status in expects if ini is not None and status == "FAIL"}


def test_the_catalogue_has_at_least_twelve_kinds():
    assert len(vh.KINDS) >= 12, sorted(vh.KINDS)
    assert len(COMBINATIONS) == len(vh.KINDS) * (len(vh.KINDS) - 1) // 2


@pytest.mark.parametrize("fault", SINGLES, ids=str)
def test_single_fault_is_named_and_its_remediation_makes_verify_pass(pool, fault):
    cl = _clean(pool)
    try:
        fault.apply(cl)
        verdict = cl.verdict()
        expected = fault.expected(cl)
        report = f"{fault}:\n{vh.describe(verdict)}"
        assert not vh.missing(expected, verdict), f"missing {vh.missing(expected, verdict)}\n{report}"
        assert not vh.unexpected(expected, verdict), \
            f"unexpected {[vh.finding_key(f) for f in vh.unexpected(expected, verdict)]}\n{report}"
        if any(status == "FAIL" for *_, status in expected):
            assert verdict.failed, report
        else:
            assert not verdict.failed and verdict.warned, report
        assert vh.not_ok(verdict) == _pairs_of(expected), report
        fixed = vh.remediate(cl, [fault])
        vh.assert_passes(fixed.verdict, f"{fault}: after the remediation {fixed.actions}")
    finally:
        pool.release([fault])


@pytest.mark.parametrize("faults", COMBINATIONS, ids=lambda fs: "+".join(map(str, fs)))
def test_two_faults_are_both_named_and_their_remediations_make_verify_pass(pool, faults):
    cl = _clean(pool)
    try:
        for f in faults:
            f.apply(cl)
        verdict = cl.verdict()
        report = f"{' + '.join(map(str, faults))}:\n{vh.describe(verdict)}"
        signature = set().union(*(f.signature(cl) for f in faults))
        assert not vh.missing(signature, verdict), f"missing {vh.missing(signature, verdict)}\n{report}"
        assert verdict.failed, report
        # nothing is reported that neither fault explains: instance findings of the faults, pair findings on
        # the pairs they break
        expected = set().union(*(f.expected(cl) for f in faults))
        broken = {(acc, ini) for check, acc, ini, status in expected if ini is not None}
        stray = [vh.finding_key(f) for f in vh.problems(verdict)
                 if not (any(vh.expect_matches(e, f) for e in expected) or (f.instance, f.peer) in broken)]
        assert not stray, f"unexplained findings {stray}\n{report}"
        assert vh.not_ok(verdict) <= _pairs_of(expected), report
        fixed = vh.remediate(cl, faults)
        vh.assert_passes(fixed.verdict, f"{' + '.join(map(str, faults))}: after the remediation {fixed.actions}")
    finally:
        pool.release(faults)


def test_remediation_of_a_foreign_owner_gives_the_certificate_back_to_the_peer_user(pool):
    """The peer's certificate owned by a user of another login: verify's remediation must restore the mapping
    the runbook made (the certificate owned by the user the parameters name), not extend CONNECT on the
    endpoint to the other login."""
    fault = vh.make("foreign_owner", B, A)
    cl = _clean(pool)
    try:
        fault.apply(cl)
        fixed = vh.remediate(cl, [fault])
        vh.assert_passes(fixed.verdict, f"{fault}: after {fixed.actions}")
        owner = cl.sql(B, "SELECT dp.name FROM master.sys.certificates AS c JOIN master.sys.database_principals "
                          "AS dp ON dp.principal_id = c.principal_id WHERE c.name = ?",
                       cl.env.certificate_name(A))
        granted = cl.sql(B, "SELECT p.state_desc FROM master.sys.server_permissions AS p WHERE p.class = 105 "
                            "AND SUSER_NAME(p.grantee_principal_id) = ?", fault.other_login(cl))
        assert [r[0] for r in owner] == [cl.env.user_name(A)] and not granted, (
            f"after verify's remediation {fixed.actions}: {cl.env.certificate_name(A)} on {B} is owned by "
            f"{[r[0] for r in owner]} (parameters: {cl.env.user_name(A)}); CONNECT for {fault.other_login(cl)}: "
            f"{[r[0] for r in granted]}")
    finally:
        pool.release([fault])


def test_wrong_certificate_under_another_name_is_fixed_by_inbound(pool):
    """The wrong certificate imported under another name (the peer's own dropped): P07, and the named inbound
    run makes verify pass."""
    fault = vh.make("wrong_peer_certificate_other_name", B, A)
    cl = _clean(pool)
    try:
        fault.apply(cl)
        verdict = cl.verdict()
        assert not vh.missing(fault.expected(cl), verdict), vh.describe(verdict)
        assert vh.not_ok(verdict) == {(A, B)}, vh.describe(verdict)
        p07 = vh.matching(verdict, "P07", B, A)
        assert p07 and (p07[0].notebook, p07[0].notebook_target) == ("inbound", B), vh.describe(verdict)
        fixed = vh.remediate(cl, [fault])
        vh.assert_passes(fixed.verdict, f"{fault}: after {fixed.actions}")
    finally:
        pool.release([fault])


@pytest.mark.parametrize("kind", ["revoke_connect", "deny_connect", "disable_login"])
def test_pair_remediation_sql_runs_on_the_acceptor(pool, kind):
    """For the pair faults that verify fixes with T-SQL, the T-SQL is for the acceptor and names the peer's
    login; the handshake error it predicts is 28034."""
    fault = vh.make(kind, W, A)
    cl = _clean(pool)
    try:
        fault.apply(cl)
        verdict = cl.verdict()
        found = [f for f in vh.problems(verdict) if f.peer == A and f.instance == W]
        assert len(found) == 1, vh.describe(verdict)
        f = found[0]
        assert f.remediation_instance == W and cl.env.login_name(A) in f.remediation_sql, vh.describe(verdict)
        assert f.error_number == 28034, vh.describe(verdict)
    finally:
        pool.release([fault])
