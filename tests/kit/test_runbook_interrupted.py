"""Acceptance: an apply interrupted after any statement, then run again, ends where an uninterrupted run ends.

How the interruption is made — a lab fault, not a mock of the kit: `runbook_helpers.DropAfterStatement(k)`
wraps the sessions the kit opens on the in-process lab instances (recognised by APP=mirrorkit/…). The k-th
changing statement the kit sends runs and commits on the server; then the lab shuts the TDS connection down
before the reply leaves, exactly as when the network fails, the server restarts or the kernel is killed right
after the statement. The kit sees a communication-link failure on a statement that did commit, records it as
failed and stops, leaving a real partial state (statements 1..k committed, nothing after).

For each step of the runbook that changes something — outbound on every instance (master key, certificate,
endpoint, private-key backup: 4 statements), inbound on every partner (login, user, certificate, grant for the
other partner: 4) and witness (outbound on the witness is its own step before it, so the notebook sends the
witness's inbound for both partners, statements 1–8, then both partners' inbound for the witness, its partner
side, statements 9–16) — and for every k, on fresh instances:

1. the earlier runbook steps run uninterrupted (the notebooks' own cells, in process, to keep kernels few);
2. the step runs under papermill with the fault after statement k and fails; its own record shows statements
   1..k−1 ok and statement k failed with the error text, and no seal (the notebook stopped before its last
   cell);
3. the same notebook runs again under papermill in apply mode: it must succeed, doing exactly the statements
   that were still missing (total − k) and exporting the artifact where the step is outbound;
4. the rest of the runbook runs;
5. the catalog of all three instances (names, owners, private-key protection, subjects, backups, endpoint
   settings, logins, users, grants — not ids, dates or thumbprints of freshly generated certificates) equals
   the catalog after an uninterrupted run, every peer certificate is the peer's live endpoint certificate,
   and the probe succeeds in all six directions.
"""
from __future__ import annotations

import pytest

from . import runbook_helpers as H

pytestmark = pytest.mark.timeout(600)

NAMES = ["PARTNER_A", "PARTNER_B", "WITNESS"]
PARTNERS = ["PARTNER_A", "PARTNER_B"]
ROLES = {"PARTNER_A": "partner", "PARTNER_B": "partner", "WITNESS": "witness"}
ORDER = H.runbook_order(PARTNERS, "WITNESS")
PVK = "Interrupted-Pvk-Passw0rd!"
PAIRS = [("PARTNER_A", "PARTNER_B", "PARTNER"), ("PARTNER_B", "PARTNER_A", "PARTNER"),
         ("PARTNER_A", "WITNESS", "WITNESS"), ("PARTNER_B", "WITNESS", "WITNESS"),
         ("WITNESS", "PARTNER_A", "PARTNER"), ("WITNESS", "PARTNER_B", "PARTNER")]
# (notebook, target) → statements an uninterrupted run of that step sends
STEPS = {("outbound", "PARTNER_A"): 4, ("outbound", "PARTNER_B"): 4, ("outbound", "WITNESS"): 4,
         ("inbound", "PARTNER_A"): 4, ("inbound", "PARTNER_B"): 4, ("witness", "WITNESS"): 16}
CASES = [(nb, target, k) for (nb, target), total in STEPS.items() for k in range(1, total + 1)]


def _param_file(lab, directory):
    return H.write_parameter_file(directory, H.parameter_values(
        lab, ROLES, environment="interrupted",
        certificate={"private_key_backup": {"directory": "C:\\mk\\backup", "password": f"env:{H.ENV_PVK}"}}))


def _state(lab) -> dict:
    return {n: H.comparable(H.catalog(lab[n])) for n in NAMES}


@pytest.fixture(scope="module")
def kernels():
    """Kernels started ahead, as `mirrorkit run` starts them (mirrorkit.execution.kernels), so that the cases
    wait for no kernel start; they inherit the secrets' environment, set here before the first starts."""
    from mirrorkit.execution.kernels import KernelPool
    mp = pytest.MonkeyPatch()
    H.secret_env(mp, pvk=PVK)
    pool = KernelPool(2 * len(CASES) + 2, 2, cwd=H.ROOT)
    yield pool
    pool.close()
    mp.undo()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The catalog after an uninterrupted run of the whole runbook."""
    tmp = tmp_path_factory.mktemp("reference")
    lab = H.start_lab(tmp / "lab", *NAMES)
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp, pvk=PVK)
            param_file = _param_file(lab, tmp)
            H.full_runbook(param_file, partners=PARTNERS, witness="WITNESS", certificate_dir=tmp / "certs",
                           in_process=True, expect_ok=True)
            assert H.probe_failures(lab, PAIRS) == []
            return _state(lab)
    finally:
        lab.stop_all()


def test_reference_statement_counts(tmp_path, lab, monkeypatch):
    """The totals the cases below rely on: what each step sends on a fresh lab."""
    H.secret_env(monkeypatch, pvk=PVK)
    l = lab(*NAMES)
    param_file = _param_file(l, tmp_path)
    with H.SessionSpy(list(l.instances.values())) as spy:
        for notebook, target in ORDER:
            before = len(spy.kit_statements)
            H.run_in_process(notebook, param_file, target=target, mode="apply", certificate_dir=tmp_path / "certs",
                             expect_ok=True)
            sent = len(spy.kit_statements) - before
            if (notebook, target) in STEPS:
                assert sent == STEPS[(notebook, target)], (notebook, target, spy.kit_statements[before:])


@pytest.mark.parametrize("notebook,target,k", CASES, ids=[f"{nb}-{t}-after-{k}" for nb, t, k in CASES])
def test_interrupted_then_rerun_ends_like_an_uninterrupted_run(tmp_path, lab, monkeypatch, reference, kernels,
                                                                notebook, target, k):
    H.secret_env(monkeypatch, pvk=PVK)
    l = lab(*NAMES)
    param_file = _param_file(l, tmp_path)
    certs = tmp_path / "certs"
    position = ORDER.index((notebook, target))
    total = STEPS[(notebook, target)]
    # 1. the steps before
    for nb, t in ORDER[:position]:
        H.run_in_process(nb, param_file, target=t, mode="apply", certificate_dir=certs, expect_ok=True)
    # 2. the step, interrupted after statement k
    with H.DropAfterStatement(list(l.instances.values()), k) as fault:
        interrupted = H.run_notebook(notebook, param_file, target=target, mode="apply", certificate_dir=certs,
                                     out_dir=tmp_path / "interrupted", kernels=kernels)
    assert fault.fired and len(fault.seen) == k, f"the fault did not fire after statement {k}: {fault.seen}"
    assert not interrupted.ok, "the kit must notice that its connection died"
    # the interrupted run's own record: where it stopped, and that it did not complete
    shown = interrupted.statements()
    assert [s["ok"] for s in shown] == [True] * (k - 1) + [False], shown
    assert shown[-1]["error"] and shown[-1]["sql"], shown[-1]
    assert fault.seen[-1][0] == shown[-1]["instance"]
    assert f"statement {shown[-1]['step']}" in interrupted.error_text() and "failed" in interrupted.error_text()
    assert "seal" not in interrupted.records, "an interrupted run was sealed as complete"
    # 3. the notebook again, under papermill
    rerun = H.run_notebook(notebook, param_file, target=target, mode="apply", certificate_dir=certs,
                           out_dir=tmp_path / "out", kernels=kernels)
    assert rerun.ok, rerun.describe()
    statements = rerun.statements()
    assert all(s["ok"] for s in statements)
    assert len(statements) == total - k, (
        f"after {k} of {total} statements the re-run must send the {total - k} missing ones, sent: "
        f"{[s['sql'].splitlines()[0] for s in statements]}")
    if notebook in ("outbound", "witness"):
        exported = {r["instance"] for r in rerun.records.get("certificate_artifact", [])}
        assert target in exported and (certs / f"{target}.cer").exists()
    # 4. the rest of the runbook
    for nb, t in ORDER[position + 1:]:
        H.run_in_process(nb, param_file, target=t, mode="apply", certificate_dir=certs, expect_ok=True)
    # 5. the same end state
    assert _state(l) == reference
    for name in NAMES:
        own = H.thumbprint_of(l[name], f"{name}_dbm_cert")
        for other in NAMES:
            if other != name:
                assert H.thumbprint_of(l[other], f"{name}_dbm_cert") == own, f"{other}'s copy of {name}'s certificate"
    assert H.probe_failures(l, PAIRS) == []
