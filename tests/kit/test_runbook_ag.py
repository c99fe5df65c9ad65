"""Acceptance: a four-replica availability-group parameter file gives a full mesh.

outbound on all four replicas, then inbound on all four (papermill, apply mode); every replica then
trusts the three others and the lab's probe succeeds for all 12 ordered pairs (as PARTNER).
"""
from __future__ import annotations

import hashlib
import itertools

import pytest

from . import runbook_helpers as H

pytestmark = pytest.mark.timeout(600)

REPLICAS = ["AG_R1", "AG_R2", "AG_R3", "AG_R4"]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ag")
    lab = H.start_lab(tmp / "lab", *REPLICAS)
    try:
        with pytest.MonkeyPatch.context() as mp:
            H.secret_env(mp)
            param_file = H.write_parameter_file(tmp, H.parameter_values(
                lab, {n: "replica" for n in REPLICAS}, environment="ag", topology="availability_group"))
            runs = []
            for notebook in ("outbound", "inbound"):
                for name in REPLICAS:
                    runs.append(H.run_notebook(notebook, param_file, target=name, mode="apply",
                                               certificate_dir=tmp / "certs", out_dir=tmp / "out"))
            yield lab, runs, tmp / "certs"
    finally:
        lab.stop_all()


def _require_runs(runs) -> None:
    failed = [r.describe() for r in runs if not r.ok]
    assert not failed, "\n\n".join(failed)


def test_every_run_succeeds_with_the_expected_statements(mesh):
    lab, runs, _ = mesh
    _require_runs(runs)
    for run in runs:
        statements = run.records.get("statement", [])
        expected = 3 if run.notebook == "outbound" else 4 * 3      # login, user, certificate, grant per peer
        assert len(statements) == expected and all(s["ok"] for s in statements), (run.target, run.plan_sql())
        assert run.records["seal"][-1]["status"] == "ok"


@pytest.mark.parametrize("name", REPLICAS)
def test_replica_end_state(mesh, name):
    lab, runs, cert_dir = mesh
    _require_runs(runs)
    state = H.catalog(lab[name])
    peers = [p for p in REPLICAS if p != name]
    assert state["master_key"] == [("##MS_DatabaseMasterKey##", "AES_256", True)]
    assert state["endpoints"] == [{
        "name": "Mirroring", "state": "STARTED", "role": "ALL", "auth": "CERTIFICATE",
        "certificate": f"{name}_dbm_cert", "encrypted": True, "algorithm": "AES", "port": 5022, "ip": None,
        "owner": "sa"}]
    assert sorted((c["name"], c["owner"], c["private_key"]) for c in state["certificates"]) == sorted(
        [(f"{name}_dbm_cert", "dbo", "MK")] + [(f"{p}_dbm_cert", f"{p}_dbm_user", "NA") for p in peers])
    for c in state["certificates"]:
        owner = c["name"][:-len("_dbm_cert")]
        assert c["thumbprint"] == hashlib.sha1((cert_dir / f"{owner}.cer").read_bytes()).digest(), c["name"]
    assert sorted(state["logins"]) == sorted([("sa", "SQL_LOGIN", False)] +
                                             [(f"{p}_dbm_login", "SQL_LOGIN", False) for p in peers])
    assert sorted(state["users"]) == sorted((f"{p}_dbm_user", "SQL_USER", f"{p}_dbm_login") for p in peers)
    assert sorted(state["permissions"]) == sorted(("Mirroring", "CONNECT", "GRANT", f"{p}_dbm_login")
                                                  for p in peers)


def test_probe_succeeds_for_all_twelve_ordered_pairs(mesh):
    lab, runs, _ = mesh
    _require_runs(runs)
    pairs = [(a, b, "PARTNER") for a, b in itertools.permutations(REPLICAS, 2)]
    assert len(pairs) == 12
    assert H.probe_failures(lab, pairs) == []
