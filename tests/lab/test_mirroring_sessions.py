"""Database mirroring sessions on lab instances (issue #11 items 3-7), through pyodbc + FreeTDS:
the documented set-up runs as written, the session synchronizes, fails over and back, SAFETY OFF
with forced service, SUSPEND/RESUME, the documented errors, and the catalog views."""
from __future__ import annotations

import pytest

from tests.lab import mirroring_setup as ms
from tests.lab.mirroring_session import (DB, ROLE, SAFETY, STATE, count_rows, prepare_mirror, q, start_session,
                                         synchronized, three_instances, wait_state)
from tests.lab.test_statements_dba import fails


@pytest.fixture
def session(lab):
    lab_ = three_instances(lab)
    prepare_mirror(lab_)
    start_session(lab_)
    synchronized(lab_)
    return lab_


def test_documented_setup_reaches_synchronized_with_witness_connected(session):
    p, m, w = session["P"], session["M"], session["W"]
    assert q(m, "SELECT state_desc FROM sys.databases WHERE name = ?", DB) == [("RESTORING",)]
    p.sql(f"ALTER DATABASE {DB} SET WITNESS = '{ms.url(w)}'")
    synchronized(session, witness="CONNECTED")
    rows = q(w, "SELECT database_name, safety_level_desc, partner_sync_state_desc FROM "
                 "sys.database_mirroring_witnesses")
    assert rows == [(DB, "FULL", "SYNCHRONIZED")]
    full = q(p, "SELECT mirroring_partner_name, mirroring_partner_instance, mirroring_witness_name, "
                 "mirroring_connection_timeout, mirroring_role_sequence, mirroring_guid FROM sys.database_mirroring "
                 "WHERE database_id = DB_ID(?)", DB)[0]
    assert full[:5] == (ms.url(m), "M", ms.url(w), 10, 1)
    assert q(m, "SELECT mirroring_guid FROM sys.database_mirroring WHERE database_id = DB_ID(?)", DB)[0][0] == full[5]
    # both directions of the partner pair are certificate-authenticated connections
    conns = ms.settled_rows(p, "SELECT is_accept, principal_name FROM sys.dm_db_mirroring_connections", 4)
    assert {r[0] for r in conns} == {True, False}


def test_committed_rows_reach_the_mirror_and_survive_failover_and_back(session):
    p, m = session["P"], session["M"]
    with p.connect(database=DB) as cn:
        cur = cn.cursor()
        for i in range(100, 150):
            cur.execute("INSERT INTO dbo.events (id, note) VALUES (?, N'mirrored')", i)
    assert fails(m.connect().cursor(), f"USE {DB}")[0] == 954         # the mirror is not readable
    p.sql(f"ALTER DATABASE {DB} SET PARTNER FAILOVER")
    wait_state(m, {ROLE: "PRINCIPAL"})
    synchronized(session, principal="M", mirror="P")
    assert count_rows(m) == 53
    with m.connect(database=DB) as cn:
        cn.cursor().execute("INSERT INTO dbo.events (id) VALUES (999)")
    m.sql(f"ALTER DATABASE {DB} SET PARTNER FAILOVER")
    synchronized(session)
    assert count_rows(p) == 54
    assert q(p, "SELECT mirroring_role_sequence FROM sys.database_mirroring WHERE database_id = DB_ID(?)",
                 DB) == [(3,)]


def test_safety_off_and_forced_service(session):
    p, m = session["P"], session["M"]
    p.sql(f"ALTER DATABASE {DB} SET PARTNER SAFETY OFF")
    wait_state(m, {SAFETY: "OFF"})
    assert fails(p.connect().cursor(), f"ALTER DATABASE {DB} SET PARTNER FAILOVER")[0] == 1477
    assert fails(m.connect().cursor(), f"ALTER DATABASE {DB} SET PARTNER FORCE_SERVICE_ALLOW_DATA_LOSS")[0] == 1455
    with p.connect(database=DB) as cn:
        cn.cursor().execute("INSERT INTO dbo.events (id) VALUES (10)")
    session.instances["P"].running.stop()                           # the principal is lost
    wait_state(m, {STATE: "DISCONNECTED"}, timeout=20)
    m.sql(f"ALTER DATABASE {DB} SET PARTNER FORCE_SERVICE_ALLOW_DATA_LOSS")
    wait_state(m, {ROLE: "PRINCIPAL", STATE: "SUSPENDED"})
    assert q(m, f"SELECT state_desc FROM sys.databases WHERE name = '{DB}'") == [("ONLINE",)]
    with m.connect(database=DB) as cn:
        cn.cursor().execute("INSERT INTO dbo.events (id) VALUES (11)")
    p = session.restart("P")                                        # the old principal returns as mirror
    wait_state(p, {ROLE: "MIRROR", STATE: "SUSPENDED"})
    m.sql(f"ALTER DATABASE {DB} SET PARTNER RESUME")
    synchronized(session, principal="M", mirror="P")
    assert sorted(r[0] for r in q(m, f"SELECT id FROM {DB}.dbo.events")) == [1, 2, 3, 10, 11]


def test_suspend_and_resume(session):
    p, m = session["P"], session["M"]
    m.sql(f"ALTER DATABASE {DB} SET PARTNER SUSPEND")                # either partner (spec §1.8.1)
    wait_state(p, {STATE: "SUSPENDED"})
    with p.connect(database=DB) as cn:
        cn.cursor().execute("INSERT INTO dbo.events (id) VALUES (20)")   # runs exposed, does not wait
    wait_state(m, {STATE: "SUSPENDED"})
    p.sql(f"ALTER DATABASE {DB} SET PARTNER RESUME")
    synchronized(session)
    p.sql(f"ALTER DATABASE {DB} SET PARTNER FAILOVER")
    wait_state(m, {ROLE: "PRINCIPAL"})
    assert count_rows(m) == 4


def test_documented_errors(session):
    p, m, w = session["P"], session["M"], session["W"]
    pc, mc = p.connect().cursor(), m.connect().cursor()
    assert fails(pc, f"ALTER DATABASE {DB} SET PARTNER = '{ms.url(m)}'")[0] == 1405
    assert fails(mc, f"ALTER DATABASE {DB} SET WITNESS = '{ms.url(w)}'")[0] == 1470
    assert fails(mc, f"ALTER DATABASE {DB} SET PARTNER SAFETY OFF")[0] == 1470
    assert fails(pc, f"ALTER DATABASE {DB} SET WITNESS = '{ms.url(m)}'")[0] == 1429
    assert fails(pc, f"ALTER DATABASE {DB} SET WITNESS OFF")[0] == 1439
    assert fails(pc, f"ALTER DATABASE {DB} SET PARTNER TIMEOUT 40000")[0] == 1476
    assert fails(pc, f"DROP DATABASE {DB}")[0] == 1468
    assert fails(pc, f"ALTER DATABASE {DB} SET RECOVERY SIMPLE")[0] == 1468
    pc.execute("CREATE DATABASE lonely")
    assert fails(pc, "ALTER DATABASE lonely SET PARTNER SUSPEND")[0] == 1416
    assert fails(pc, "ALTER DATABASE lonely SET PARTNER = 'TCP://127.0.0.1:1'")[0] == 1418
    p.sql(f"ALTER DATABASE {DB} SET PARTNER TIMEOUT 2")               # below the minimum: 5
    wait_state(m, {STATE: "SYNCHRONIZED"})
    assert q(p, "SELECT mirroring_connection_timeout FROM sys.database_mirroring WHERE database_id = DB_ID(?)",
                 DB) == [(5,)]


def test_set_partner_preconditions(lab):
    lab_ = three_instances(lab)
    p, m = lab_["P"], lab_["M"]
    prepare_mirror(lab_)
    pc = p.connect().cursor()
    # the mirror has not been told about the principal yet (order is significant, spec §1.2)
    assert fails(pc, f"ALTER DATABASE {DB} SET PARTNER = '{ms.url(m)}'")[0] == 1416
    # a mirror restored from the full backup alone lacks the log chain
    p.sql("CREATE DATABASE nolog")
    p.sql("BACKUP DATABASE nolog TO DISK = 'C:\\nolog.bak' WITH FORMAT")
    m.instance.fs.copy(p.instance.fs, "C:\\nolog.bak", "C:\\nolog.bak")
    m.sql("RESTORE DATABASE nolog FROM DISK = 'C:\\nolog.bak' WITH NORECOVERY")
    m.sql(f"ALTER DATABASE nolog SET PARTNER = '{ms.url(p)}'")
    assert fails(pc, f"ALTER DATABASE nolog SET PARTNER = '{ms.url(m)}'")[0] == 1478
    # an online copy on the mirror cannot become a mirror
    m.sql("CREATE DATABASE online_copy")
    p.sql("CREATE DATABASE online_copy")
    assert fails(pc, f"ALTER DATABASE online_copy SET PARTNER = '{ms.url(m)}'")[0] == 1464
    assert fails(pc, f"ALTER DATABASE {DB} SET PARTNER = '{ms.url(p)}'")[0] == 1452


def test_revoked_connect_fails_set_partner_with_1418_and_logs_the_cause(lab):
    lab_ = three_instances(lab)
    p, m = lab_["P"], lab_["M"]
    prepare_mirror(lab_)
    m.sql(f"REVOKE CONNECT ON ENDPOINT::{ms.ENDPOINT} FROM {ms.login_name('P')}")
    watch = ms.LogWatch(m, "28034")
    m.sql(f"ALTER DATABASE {DB} SET PARTNER = '{ms.url(p)}'")
    assert fails(p.connect().cursor(), f"ALTER DATABASE {DB} SET PARTNER = '{ms.url(m)}'")[0] == 1418
    assert watch.new("28034"), "the refusing peer logs why"


def test_alter_endpoint_keeping_trust_reconnects_without_failover(session):
    p, m, w = session["P"], session["M"], session["W"]
    p.sql(f"ALTER DATABASE {DB} SET WITNESS = '{ms.url(w)}'")
    synchronized(session, witness="CONNECTED")
    watch = ms.LogWatch(m, "stopped listening")
    m.sql(f"ALTER ENDPOINT {ms.ENDPOINT} STATE = STOPPED")
    m.sql(f"ALTER ENDPOINT {ms.ENDPOINT} STATE = STARTED")
    assert watch.new("stopped listening")
    with p.connect(database=DB) as cn:
        cn.cursor().execute("INSERT INTO dbo.events (id) VALUES (30)")
    synchronized(session, witness="CONNECTED")
    assert q(p, "SELECT mirroring_role_sequence FROM sys.database_mirroring WHERE database_id = DB_ID(?)",
                 DB) == [(1,)]


def test_partner_off_leaves_the_mirror_restoring(session):
    p, m = session["P"], session["M"]
    p.sql(f"ALTER DATABASE {DB} SET PARTNER OFF")
    wait_state(m, {ROLE: None})
    assert q(p, "SELECT mirroring_guid FROM sys.database_mirroring WHERE database_id = DB_ID(?)", DB) == [(None,)]
    assert q(m, "SELECT state_desc FROM sys.databases WHERE name = ?", DB) == [("RESTORING",)]
    m.sql(f"RESTORE DATABASE {DB} WITH RECOVERY")
    assert count_rows(m) == 3
