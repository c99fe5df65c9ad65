"""verify's trust matrix agrees with the transport.

For every ordered pair the topology needs, verify predicts "OK" or a reason; the lab's mirroring transport
decides for real when the initiator connects: EXEC sys.sp_mirrorkit_probe on the initiator, towards the
acceptor's endpoint URL as the parameters give it to the peers (TCP://<endpoint_address>:<endpoint_port>),
asking for WITNESS when the acceptor is the witness, else PARTNER. The prediction (OK or not) must equal the
probe's outcome, pair by pair: for every fault of the catalogue alone, and for random combinations of faults
(hypothesis, derandomized so CI sees the same examples every run; no shrinking, each example costs about a
second). Between examples the faults are undone (or the lab rebuilt when an undo left it changed).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from tests.kit import verify_helpers as vh

A, B, W = "PARTNER_A", "PARTNER_B", "WITNESS"
NAMES = list(vh.MIRRORING)
PARTNERS = [n for n, r in vh.MIRRORING.items() if r == "partner"]
# (acceptor, initiator) for every ordered pair of the mirroring topology
PAIRS = [(B, A), (W, A), (A, B), (W, B), (A, W), (B, W)]

SINGLES = ([vh.make(k, acc, ini) for k in vh.PAIR_KINDS for acc, ini in [(B, A), (A, W)]] +
           [vh.make(k, at) for k in vh.INSTANCE_KINDS for at in ([A, B] if k in vh.PARTNER_ONLY else [A, W])])


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    p = vh.LabPool(tmp_path_factory.mktemp("verify-transport"), vh.MIRRORING)
    yield p
    p.close()


def compare(cl: vh.ConfiguredLab, faults) -> None:
    verdict = cl.verdict()
    probes = cl.probe_matrix()
    assert set(verdict.matrix) == set(probes) == set(cl.pairs())
    disagree = {pair: (verdict.matrix[pair], probes[pair][1:]) for pair in probes
                if (verdict.matrix[pair] == "OK") != probes[pair][1]}
    assert not disagree, (
        f"faults {faults}: verify's matrix disagrees with the transport on "
        + "; ".join(f"{i} -> {a}: verify {pred!r}, probe {'OK' if ok else 'refused'} ({number}: {message})"
                    for (i, a), (pred, (ok, number, message)) in sorted(disagree.items()))
        + f"\n{vh.describe(verdict)}")


def test_configured_lab_every_pair_connects(pool):
    cl = pool.get()
    verdict = cl.verdict()
    vh.assert_passes(verdict, "configured lab")
    probes = cl.probe_matrix()
    assert all(ok for _, ok, _, _ in probes.values()), probes
    compare(cl, [])


@pytest.mark.parametrize("fault", SINGLES, ids=str)
def test_single_fault_matrix_equals_probe(pool, fault):
    cl = pool.get()
    try:
        fault.apply(cl)
        compare(cl, [fault])
    finally:
        pool.release([fault])


@st.composite
def fault_sets(draw):
    """One to three faults: at most one per instance for the instance faults (they replace the endpoint's
    settings), at most one per ordered pair for the pair faults."""
    faults, instances, pairs = [], set(), set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(sorted(vh.KINDS)))
        if kind in vh.PAIR_KINDS:
            acc, ini = draw(st.sampled_from(PAIRS))
            if (acc, ini) not in pairs:
                pairs.add((acc, ini))
                faults.append(vh.make(kind, acc, ini))
        else:
            at = draw(st.sampled_from(PARTNERS if kind in vh.PARTNER_ONLY else NAMES))
            if at not in instances:
                instances.add(at)
                faults.append(vh.make(kind, at))
    return faults


@settings(max_examples=20, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow], print_blob=False, database=None)
@given(faults=fault_sets())
def test_random_fault_combinations_matrix_equals_probe(pool, faults):
    cl = pool.get()
    try:
        for f in faults:
            f.apply(cl)
        compare(cl, faults)
    finally:
        pool.release(faults)


# faults that are a WARN only: the handshake still succeeds, so verify predicts no error on any pair
NON_BREAKING = {"expiring_certificate"}


def affected_pairs(cl: vh.ConfiguredLab, fault) -> list[tuple[str, str]]:
    """(initiator, acceptor) for every pair whose handshake involves the fault's place."""
    if fault.peer is not None:
        return [(fault.peer, fault.at)]
    return sorted({(ini, acc) for acc, ini in vh.incoming(cl, fault.at) + vh.outgoing(cl, fault.at)})


@pytest.mark.parametrize("fault", SINGLES, ids=str)
def test_single_fault_predicted_error_number_equals_probe(pool, fault):
    """Each failing pair finding carries error_number, "the handshake error this predicts": for every pair the
    transport refuses, it is the error number the probe reports. A fault that only warns (an expiring
    certificate) breaks no handshake: on every pair it touches the probe succeeds and verify predicts no error."""
    cl = pool.get()
    try:
        fault.apply(cl)
        verdict = cl.verdict()
        refused = sorted(vh.not_ok(verdict))
        if fault.kind in NON_BREAKING:
            pairs = affected_pairs(cl, fault)
            assert pairs, f"{fault}: no pair involves {fault.at}"
            assert any(f.status == "WARN" and f.instance == fault.at for f in verdict.findings), \
                f"{fault}: verify does not warn about it\n{vh.describe(verdict)}"
            wrong = []
            for ini, acc in pairs:
                _, ok, number, message = cl.probe(ini, acc)
                predicted = [f for f in verdict.findings if f.instance == acc and f.peer == ini
                             and (f.status == "FAIL" or f.error_number is not None)]
                if not ok or predicted or verdict.matrix[(ini, acc)] != "OK":
                    wrong.append(f"{ini} -> {acc}: probe {'OK' if ok else f'refused {number} ({message})'}, "
                                 f"verify {verdict.matrix[(ini, acc)]!r}, predicted errors "
                                 f"{[(f.check, f.error_number) for f in predicted]}")
            assert not wrong, f"{fault} must not break a handshake:\n" + "\n".join(wrong)
            return
        assert refused, f"{fault}: verify predicts no refused pair\n{vh.describe(verdict)}"
        wrong = []
        for ini, acc in refused:
            _, ok, number, message = cl.probe(ini, acc)
            predicted = [f for f in verdict.findings if f.instance == acc and f.peer == ini and f.status == "FAIL"]
            if not ok and (not predicted or predicted[0].error_number != number):
                wrong.append(f"{ini} -> {acc}: verify {predicted[0].check if predicted else None} predicts "
                             f"{predicted[0].error_number if predicted else None}, the probe fails with {number} "
                             f"({message})")
        assert not wrong, f"{fault}:\n" + "\n".join(wrong)
    finally:
        pool.release([fault])
