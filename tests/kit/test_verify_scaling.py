"""verify of an availability group of nine replicas (topology availability_group, role replica) finishes and
passes: 72 ordered pairs, every one OK, and the matrix agrees with the transport. bench/verify_scaling.py
times 2..9 replicas (docs/performance.md, "verify")."""
from __future__ import annotations

import time

import pytest

from tests.kit import verify_helpers as vh

N = 9
LIMIT_S = 30.0      # about 0.1 s on the 2-core machine (docs/performance.md); generous for a loaded CI


@pytest.fixture(scope="module")
def ag(tmp_path_factory):
    cl = vh.configured_lab(tmp_path_factory.mktemp("verify-ag9"), vh.ag_roles(N), topology="availability_group")
    yield cl
    cl.close()
    cl.lab.stop_all()


def test_nine_replicas_verify_passes(ag):
    from mirrorkit.core import verify
    assert len(ag.env.instances) == N and all(i.role == "replica" for i in ag.env.instances)
    started = time.monotonic()
    verdict = verify.evaluate(ag.env, verify.collect(ag.env, ag.connection))
    seconds = time.monotonic() - started
    vh.assert_passes(verdict, "nine replicas")
    assert set(verdict.matrix) == {(a, b) for a in ag.names for b in ag.names if a != b}
    assert len(verdict.matrix) == N * (N - 1) == 72
    assert seconds < LIMIT_S, f"verify of {N} replicas took {seconds:.1f} s"
    # every replica: its instance checks, and a PASS for each of its 8 incoming pairs
    for name in ag.names:
        assert [f.check for f in verdict.findings if f.instance == name and f.peer and f.status == "PASS"] \
            == ["P00"] * (N - 1)
        assert ag.env.endpoint_role(name) == "ALL"


def test_nine_replicas_one_fault_breaks_exactly_its_pairs(ag):
    """A replica whose endpoint is STOPPED: the 16 pairs that touch it fail, the 56 others stay OK, and the
    transport agrees on the pairs of the stopped replica and a sample of the others."""
    fault = vh.make("endpoint_stopped", "REPLICA_5")
    fault.apply(ag)
    try:
        verdict = ag.verdict()
        assert not vh.missing(fault.expected(ag), verdict), vh.describe(verdict)
        assert not vh.unexpected(fault.expected(ag), verdict), vh.describe(verdict)
        broken = {k for k in verdict.matrix if "REPLICA_5" in k}
        assert vh.not_ok(verdict) == broken and len(broken) == 16, vh.describe(verdict)
        sample = sorted(broken) + [("REPLICA_1", "REPLICA_9"), ("REPLICA_9", "REPLICA_1"), ("REPLICA_4", "REPLICA_6")]
        for ini, acc in sample:
            _, ok, number, message = ag.probe(ini, acc)
            assert ok == (verdict.matrix[(ini, acc)] == "OK"), (ini, acc, verdict.matrix[(ini, acc)], number, message)
    finally:
        fault.undo(ag)
    vh.assert_passes(ag.verdict(), "after the undo")
