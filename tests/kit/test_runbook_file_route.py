"""certificate.transfer: file — the documented route: BACKUP CERTIFICATE … TO FILE on the peer (outbound),
CREATE CERTIFICATE … FROM FILE on the target (inbound), through a location every server reaches (a UNC
share, which the lab maps to one directory common to its instances)."""
from __future__ import annotations

from tests.kit import runbook_helpers as H


def test_the_file_route_gives_working_trust(tmp_path, lab, monkeypatch):
    l = lab("PARTNER_A", "PARTNER_B")
    H.secret_env(monkeypatch)
    values = H.parameter_values(l, {"PARTNER_A": "partner", "PARTNER_B": "partner"})
    values["certificate"] = {"transfer": "file", "file_share": r"\\fileserver\certs"}
    param_file = H.write_parameter_file(tmp_path, values)
    statements = []
    for notebook, target in [("outbound", "PARTNER_A"), ("outbound", "PARTNER_B"),
                             ("inbound", "PARTNER_A"), ("inbound", "PARTNER_B")]:
        run = H.run_in_process(notebook, param_file, target=target, mode="apply",
                               certificate_dir=tmp_path / "certs")
        assert run.ok, run.error
        statements += [o["sql"] for o in run.namespace["run"].applied]
    from_file = [s for s in statements if "FROM FILE" in s]
    assert len(from_file) == 2 and all(r"\\fileserver\certs" in s for s in from_file)
    assert not [s for s in statements if "FROM BINARY" in s]
    # the public certificates are on the share, and each side trusts the other
    shared = l["PARTNER_A"].instance.fs.resolve(r"\\fileserver\certs\PARTNER_A.cer")
    assert shared.exists() and shared == l["PARTNER_B"].instance.fs.resolve(r"\\fileserver\certs\PARTNER_A.cer")
    for a, b in (("PARTNER_A", "PARTNER_B"), ("PARTNER_B", "PARTNER_A")):
        assert H.probe(l[a], l[b], "PARTNER")[1], f"{a} -> {b}"
