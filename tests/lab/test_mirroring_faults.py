"""Mirroring sessions under faults (issue #11 items 5, 6 and the trust-fault acceptance): the quorum
and loss matrix of reference spec §1.6 with TIMEOUT 5, network loss with the lab's cut, stopped
endpoints, and trust faults that show at the next reconnect, never on a live connection."""
from __future__ import annotations

import time

import pytest

from mirrorkit_lab.transport import faults
from tests.lab import mirroring_setup as ms
from tests.lab.mirroring_session import (DB, ROLE, STATE, WITNESS, count_rows, mirroring_state, prepare_mirror, q,
                                         start_session, synchronized, three_instances, wait_state)
from tests.lab.test_statements_dba import fails

TIMEOUT = 5


@pytest.fixture
def witnessed(lab):
    lab_ = three_instances(lab)
    prepare_mirror(lab_)
    start_session(lab_)
    synchronized(lab_)
    p, w = lab_["P"], lab_["W"]
    p.sql(f"ALTER DATABASE {DB} SET PARTNER TIMEOUT {TIMEOUT}")
    p.sql(f"ALTER DATABASE {DB} SET WITNESS = '{ms.url(w)}'")
    synchronized(lab_, witness="CONNECTED")
    return lab_


def role_sequence(handle) -> int:
    return q(handle, "SELECT mirroring_role_sequence FROM sys.database_mirroring WHERE database_id = DB_ID(?)",
             DB)[0][0]


def insert(handle, value: int) -> None:
    with handle.connect(database=DB) as cn:
        cn.cursor().execute("INSERT INTO dbo.events (id) VALUES (?)", value)


def test_network_loss_of_the_principal_fails_over_and_it_rejoins_as_mirror(witnessed):
    p, m = witnessed["P"], witnessed["M"]
    insert(p, 100)
    started = time.monotonic()
    faults.cut(witnessed.state_dir, "P", "M")
    faults.cut(witnessed.state_dir, "P", "W")
    wait_state(m, {ROLE: "PRINCIPAL"}, timeout=TIMEOUT + 10)
    assert time.monotonic() - started < TIMEOUT + 6
    # the isolated principal lost quorum: it stops serving the database
    deadline = time.monotonic() + TIMEOUT + 5
    while time.monotonic() < deadline:
        try:
            insert(p, 101)
        except Exception as exc:
            assert "955" in str(exc), exc
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the isolated principal kept serving")
    insert(m, 102)
    faults.heal(witnessed.state_dir)
    synchronized(witnessed, principal="M", mirror="P", witness="CONNECTED")
    assert sorted(r[0] for r in q(m, f"SELECT id FROM {DB}.dbo.events")) == [1, 2, 3, 100, 102]


def test_partner_link_lost_alone_keeps_roles(witnessed):
    p, m = witnessed["P"], witnessed["M"]
    faults.cut(witnessed.state_dir, "P", "M")
    wait_state(p, {STATE: "DISCONNECTED", WITNESS: "CONNECTED"}, timeout=TIMEOUT + 10)
    time.sleep(2)
    assert mirroring_state(m)[ROLE] == "MIRROR"            # the witness still hears the principal: no failover
    insert(p, 200)                                          # principal + witness keep quorum: it serves, exposed
    faults.heal(witnessed.state_dir)
    synchronized(witnessed, witness="CONNECTED")
    assert role_sequence(p) == 1


def test_witness_lost_alone_stays_synchronized(witnessed):
    p, m = witnessed["P"], witnessed["M"]
    witnessed.instances["W"].running.stop()
    wait_state(p, {STATE: "SYNCHRONIZED", WITNESS: "DISCONNECTED"}, timeout=TIMEOUT + 10)
    insert(p, 300)
    wait_state(m, {STATE: "SYNCHRONIZED", WITNESS: "DISCONNECTED"})
    witnessed.restart("W")
    synchronized(witnessed, witness="CONNECTED")


def test_mirror_lost_principal_runs_exposed_then_resynchronizes(witnessed):
    p, m = witnessed["P"], witnessed["M"]
    witnessed.instances["M"].running.stop()
    wait_state(p, {STATE: "DISCONNECTED"}, timeout=TIMEOUT + 10)
    started = time.monotonic()
    for i in range(400, 420):
        insert(p, i)                                        # SAFETY FULL commits do not wait for a lost mirror
    assert time.monotonic() - started < 5
    witnessed.restart("M")
    synchronized(witnessed, witness="CONNECTED")
    p.sql(f"ALTER DATABASE {DB} SET PARTNER FAILOVER")
    wait_state(m, {ROLE: "PRINCIPAL"})
    assert count_rows(m) == 23


def test_principal_endpoint_stopped_fails_over(witnessed):
    p, m = witnessed["P"], witnessed["M"]
    p.sql(f"ALTER ENDPOINT {ms.ENDPOINT} STATE = STOPPED")
    wait_state(m, {ROLE: "PRINCIPAL"}, timeout=TIMEOUT + 10)
    assert role_sequence(m) == 2
    p.sql(f"ALTER ENDPOINT {ms.ENDPOINT} STATE = STARTED")
    synchronized(witnessed, principal="M", mirror="P", witness="CONNECTED")


def test_expired_endpoint_certificate_shows_only_at_the_next_reconnect(witnessed):
    p, m = witnessed["P"], witnessed["M"]
    watch = ms.LogWatch(p, "Certificate expired")
    for name in ("P", "M", "W"):                                     # three years pass: every certificate expired
        faults.set_clock(witnessed.state_dir, name, 3 * 365 * 86400.0)
    time.sleep(TIMEOUT + 1)
    wait_state(p, {STATE: "SYNCHRONIZED"})                           # live connections are never re-checked
    insert(p, 500)
    m.sql(f"ALTER ENDPOINT {ms.ENDPOINT} STATE = STOPPED")           # the next connect re-runs the handshake
    m.sql(f"ALTER ENDPOINT {ms.ENDPOINT} STATE = STARTED")
    wait_state(p, {STATE: "DISCONNECTED"}, timeout=TIMEOUT + 10)
    assert mirroring_state(m)[ROLE] == "MIRROR"
    for name in ("P", "M", "W"):
        faults.set_clock(witnessed.state_dir, name, None)
    synchronized(witnessed, witness="CONNECTED")
    assert watch.new("Certificate expired") or ms.errorlog(m, "Certificate expired"), \
        "the refusing side logs the expired certificate"


def test_replaced_peer_certificate_disconnects_at_reconnect_with_cause_logged(witnessed):
    p, m = witnessed["P"], witnessed["M"]
    real = ms.certencoded(m, ms.cert_name("P"))
    m.sql(f"DROP CERTIFICATE {ms.cert_name('P')}")
    m.sql(f"CREATE CERTIFICATE {ms.cert_name('P')} AUTHORIZATION {ms.user_name('P')} "
          f"FROM BINARY = 0x{ms.forged_certificate(real).hex()}")
    watch = ms.LogWatch(m, "28045")
    wait_state(p, {STATE: "SYNCHRONIZED"})                   # nothing happens until a reconnect
    p.sql(f"ALTER ENDPOINT {ms.ENDPOINT} STATE = STOPPED")
    p.sql(f"ALTER ENDPOINT {ms.ENDPOINT} STATE = STARTED")
    wait_state(m, {STATE: "DISCONNECTED"}, timeout=TIMEOUT + 10)
    deadline = time.monotonic() + 10
    while not watch.new("28045") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert watch.new("28045"), "the refusing peer logs the certificate mismatch"


def test_witness_endpoint_of_the_wrong_role_refuses_set_witness(lab):
    lab_ = ms.full_mesh(lab, {"P": "PARTNER", "M": "PARTNER", "W": "PARTNER"})
    prepare_mirror(lab_)
    start_session(lab_)
    synchronized(lab_)
    number, _ = fails(lab_["P"].connect().cursor(), f"ALTER DATABASE {DB} SET WITNESS = '{ms.url(lab_['W'])}'")
    assert number == 1427


def test_encryption_mismatch_refuses_set_partner(lab):
    lab_ = three_instances(lab)
    p, m = lab_["P"], lab_["M"]
    prepare_mirror(lab_)
    m.sql(f"ALTER ENDPOINT {ms.ENDPOINT} FOR DATABASE_MIRRORING (ENCRYPTION = DISABLED)")
    m.sql(f"ALTER DATABASE {DB} SET PARTNER = '{ms.url(p)}'")
    assert fails(p.connect().cursor(), f"ALTER DATABASE {DB} SET PARTNER = '{ms.url(m)}'")[0] == 1418


def test_principal_lost_while_the_witness_is_gone_does_not_fail_over(witnessed):
    p, m = witnessed["P"], witnessed["M"]
    witnessed.instances["W"].running.stop()
    wait_state(m, {WITNESS: "DISCONNECTED"}, timeout=TIMEOUT + 10)
    witnessed.instances["P"].running.stop()
    wait_state(m, {STATE: "DISCONNECTED"}, timeout=TIMEOUT + 10)
    time.sleep(TIMEOUT + 2)
    # no quorum for the mirror: it stays the mirror and the database stays unavailable (spec §1.6)
    assert mirroring_state(m)[ROLE] == "MIRROR"
    assert fails(m.connect().cursor(), f"USE {DB}")[0] == 954
    witnessed.restart("W")
    witnessed.restart("P")
    synchronized(witnessed, witness="CONNECTED")
    assert role_sequence(p) == 1
