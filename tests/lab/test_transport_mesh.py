"""Acceptance: two partners and a witness with the full certificate exchange (spec §1.5:
logins, users and certificates for every other instance on every instance) connect in all six
directions: partners to each other as PARTNER, partners to the witness as WITNESS, the
witness to the partners as PARTNER."""
from __future__ import annotations

import pytest

from mirroring_setup import (assert_probe_fails, assert_probe_ok, cert_id, cert_name, full_mesh, settled_rows,
                             user_name)

DIRECTIONS = [("P1", "P2", "PARTNER"), ("P2", "P1", "PARTNER"),
              ("P1", "W", "WITNESS"), ("P2", "W", "WITNESS"),
              ("W", "P1", "PARTNER"), ("W", "P2", "PARTNER")]


@pytest.mark.parametrize("partner_roles", [("PARTNER", "PARTNER"), ("ALL", "ALL"), ("PARTNER", "ALL")],
                         ids=lambda r: "-".join(r))
def test_full_mesh_probes_in_all_six_directions(lab, partner_roles):
    l = full_mesh(lab, {"P1": partner_roles[0], "P2": partner_roles[1], "W": "WITNESS"})
    for source, target, role in DIRECTIONS:
        assert_probe_ok(l[source], l[target], role)
    # every instance now has an initiated and an accepted connection with each of the two others
    for me in ("P1", "P2", "W"):
        rows = settled_rows(l[me], "SELECT is_accept, principal_name, peer_certificate_id, state_desc, "
                                   "login_state FROM sys.dm_db_mirroring_connections", 4)
        got = sorted((bool(r[0]), r[1], r[2], r[3], r[4]) for r in rows)
        want = sorted((flag, user_name(peer), cert_id(l[me], cert_name(peer)), "LOGGED_IN", 12)
                      for peer in ("P1", "P2", "W") if peer != me for flag in (False, True))
        assert got == want, me


def test_witness_endpoint_serves_only_witness_connections_in_the_mesh(lab):
    l = full_mesh(lab, {"P1": "PARTNER", "P2": "PARTNER", "W": "WITNESS"})
    # the witness's endpoint refuses a partner connection; a PARTNER endpoint refuses a witness connection
    p = assert_probe_fails(l["P1"], l["W"], 28027, "PARTNER")
    assert "role" in p.message
    p = assert_probe_fails(l["P1"], l["P2"], 28027, "WITNESS")
    assert "role" in p.message
    assert_probe_ok(l["P1"], l["W"], "WITNESS")
    assert_probe_ok(l["P1"], l["P2"], "PARTNER")
