"""Acceptance: after Microsoft's two-way certificate setup (spec §1.1 + §1.2) on two lab
instances, the endpoints connect in both directions and each side shows the connection in
sys.dm_db_mirroring_connections (spec §3.12, §4.1, §7 item 7)."""
from __future__ import annotations

from mirroring_setup import (ENDPOINT, assert_probe_ok, cert_id, cert_name, settled_rows, two_way, url,
                             user_name)

DMV = ("SELECT is_accept, principal_name, peer_certificate_id, encryption_algorithm, "
       "encryption_algorithm_desc, state, state_desc, login_state FROM sys.dm_db_mirroring_connections "
       "ORDER BY is_accept")


def test_probe_succeeds_in_both_directions(lab):
    l = two_way(lab)
    a, b = l["HOST_A"], l["HOST_B"]
    pa = assert_probe_ok(a, b)
    pb = assert_probe_ok(b, a)
    assert "AES" in pa.message and "AES" in pb.message


def test_probe_returns_one_row_with_the_documented_columns(lab):
    l = two_way(lab)
    a, b = l["HOST_A"], l["HOST_B"]
    with a.connect() as cn:
        cur = cn.cursor()
        cur.execute(f"EXEC sys.sp_mirrorkit_probe @endpoint_url = N'{url(b)}', @peer_role = N'PARTNER'")
        assert [d[0] for d in cur.description] == ["endpoint_url", "succeeded", "error_number", "message"]
        rows = cur.fetchall()
    assert len(rows) == 1
    assert rows[0][0] == url(b) and rows[0][1] in (True, 1) and rows[0][2] is None


def test_initiator_and_acceptor_show_the_connection(lab):
    l = two_way(lab)
    a, b = l["HOST_A"], l["HOST_B"]
    assert a.sql(DMV) == [] and b.sql(DMV) == []
    assert_probe_ok(a, b)

    (on_a,) = a.sql(DMV)
    (on_b,) = settled_rows(b, DMV, 1)
    # initiator: is_accept 0; the peer is B, known on A by A's copy of B's certificate (owned by HOST_B_user)
    assert tuple(on_a) == (False, user_name("HOST_B"), cert_id(a, cert_name("HOST_B")), 2, "AES", 4,
                           "LOGGED_IN", 12)
    # acceptor: is_accept 1; principal_name = owner of the peer certificate, peer_certificate_id = B's local id
    assert tuple(on_b) == (True, user_name("HOST_A"), cert_id(b, cert_name("HOST_A")), 2, "AES", 4,
                           "LOGGED_IN", 12)
    # the local id of the peer's certificate, not the id it has on its own instance
    assert cert_id(b, cert_name("HOST_A")) != cert_id(a, cert_name("HOST_A"))


def test_both_directions_give_two_connections_on_each_side(lab):
    l = two_way(lab)
    a, b = l["HOST_A"], l["HOST_B"]
    assert_probe_ok(a, b)
    assert_probe_ok(b, a)
    for me, peer in ((a, "HOST_B"), (b, "HOST_A")):
        rows = settled_rows(me, DMV, 2)
        expected = [(flag, user_name(peer), cert_id(me, cert_name(peer)), 2, "AES", 4, "LOGGED_IN", 12)
                    for flag in (False, True)]
        assert rows == expected, (me.name, rows)


def test_probing_again_replaces_the_connection(lab):
    l = two_way(lab)
    a, b = l["HOST_A"], l["HOST_B"]
    for _ in range(3):
        assert_probe_ok(a, b)
    assert len(a.sql(DMV)) == 1
    # the acceptor may take a moment to notice that the initiator closed the older connections
    assert len(settled_rows(b, DMV, 1)) == 1


def test_endpoint_catalog_after_the_documented_setup(lab):
    l = two_way(lab)
    for h in (l["HOST_A"], l["HOST_B"]):
        rows = h.sql("SELECT name, role_desc, state_desc, connection_auth_desc, encryption_algorithm_desc, "
                     "certificate_id FROM sys.database_mirroring_endpoints")
        assert [tuple(r) for r in rows] == [(ENDPOINT, "ALL", "STARTED", "CERTIFICATE", "AES",
                                             cert_id(h, cert_name(h.name)))]


def _encryption(h, value: str) -> None:
    h.sql(f"ALTER ENDPOINT {ENDPOINT} FOR DATABASE_MIRRORING (ENCRYPTION = {value})")


def test_the_accepting_endpoint_wins_the_algorithm_order(lab):
    """spec §1.7 / §4.1 item 7: with both algorithms in different orders, the acceptor's order wins."""
    l = two_way(lab)
    a, b = l["HOST_A"], l["HOST_B"]
    _encryption(a, "REQUIRED ALGORITHM RC4 AES")
    _encryption(b, "REQUIRED ALGORITHM AES RC4")
    assert "AES" in assert_probe_ok(a, b).message
    assert "RC4" in assert_probe_ok(b, a).message
    q = "SELECT is_accept, encryption_algorithm, encryption_algorithm_desc FROM sys.dm_db_mirroring_connections"
    assert sorted(settled_rows(a, q, 2)) == [(False, 2, "AES"), (True, 1, "RC4")]
    assert sorted(settled_rows(b, q, 2)) == [(False, 1, "RC4"), (True, 2, "AES")]


def test_supported_meets_disabled_without_encryption(lab):
    """spec §1.7: SUPPORTED encrypts only if the other side supports or requires it."""
    l = two_way(lab)
    a, b = l["HOST_A"], l["HOST_B"]
    _encryption(a, "SUPPORTED ALGORITHM AES")
    _encryption(b, "DISABLED")
    assert_probe_ok(a, b)
    assert_probe_ok(b, a)
    q = "SELECT encryption_algorithm, encryption_algorithm_desc FROM sys.dm_db_mirroring_connections"
    assert settled_rows(a, q, 2) == [(0, "NONE")] * 2
    _encryption(b, "SUPPORTED ALGORITHM AES")
    assert_probe_ok(a, b)
    assert settled_rows(b, q + " WHERE is_accept = 1", 1) == [(2, "AES")]
