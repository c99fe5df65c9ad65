"""Links between two lab instances set up per the documented procedure (mirroring_setup.two_way):
messages and requests with the peer's identity, the DMV rows of both sides, handler failures,
reconnects after STOPPED/STARTED and after an ALTER ENDPOINT that restarts the endpoint, and
certificate trust checked at the next connect only (sessions-ag-rotation-spec §3.2, §3.3)."""
from __future__ import annotations

import queue
import threading
import time

import pytest

from links_helpers import A, B, Pair, wait_for
from mirroring_setup import ENDPOINT, LogWatch, errorlog, login_name, url, user_name
from mirrorkit_lab.transport import faults

MSG_9691 = "The Database Mirroring protocol transport has stopped listening for connections."
MSG_9690 = "The Database Mirroring protocol transport is now listening for connections."


@pytest.fixture
def pair(lab):
    p = Pair(lab)
    yield p
    p.close()


def test_link_round_trip_carries_bytes_and_the_peers_identity(pair):
    seen = queue.Queue()
    pair.tb.on_message("note", lambda peer, m: seen.put((peer, m)))
    pair.tb.on_message("echo", lambda peer, m: {"kind": "echoed", "body": m["body"]})
    link = pair.link()
    assert link.up and link.peer_name == B
    assert link.last_outcome.succeeded and link.last_outcome.algorithm == "AES"

    body = {"lsn": 10**20, "rows": [b"\x00\xff" * 100, {"nested": b""}], "text": "é\u2603", "none": None}
    assert link.request({"kind": "echo", "body": body}, 5) == {"kind": "echoed", "body": body}
    assert link.send({"kind": "note", "n": 1})
    peer, message = seen.get(timeout=5)
    assert message == {"kind": "note", "n": 1}
    assert peer.instance_name == A
    assert peer.login == login_name(A)              # B's login mapped from A's certificate
    assert peer.url == url(pair.a)
    # the built-in ping answers with the peer's name
    assert link.request({"kind": "ping"}, 5) == {"kind": "pong", "instance": B}
    # a kind nobody serves: the request comes back empty, at once
    started = time.monotonic()
    assert link.request({"kind": "nobody-serves-this"}, 5) is None
    assert time.monotonic() - started < 2


def test_an_open_link_shows_on_both_sides_and_leaves_when_closed(pair):
    link = pair.link()
    rows_a = pair.a.sql("SELECT is_accept, principal_name, state_desc, encryption_algorithm_desc "
                        "FROM sys.dm_db_mirroring_connections")
    assert [tuple(r) for r in rows_a] == [(False, user_name(B), "LOGGED_IN", "AES")]
    rows_b = wait_for(lambda: pair.b.sql("SELECT is_accept, principal_name FROM sys.dm_db_mirroring_connections"))
    assert [tuple(r) for r in rows_b] == [(True, user_name(A))]
    assert link.request({"kind": "ping"}, 5)
    sends = pair.a.sql("SELECT total_sends FROM sys.dm_db_mirroring_connections")[0][0]
    assert sends >= 1
    link.close()
    assert not link.up
    assert wait_for(lambda: not pair.a.sql("SELECT 1 FROM sys.dm_db_mirroring_connections"))
    assert wait_for(lambda: not pair.b.sql("SELECT 1 FROM sys.dm_db_mirroring_connections"))
    assert not link.send({"kind": "ping"}) and link.request({"kind": "ping"}, 1) is None


def test_a_failing_handler_is_logged_and_the_connection_survives(pair):
    def broken(peer, message):
        raise RuntimeError("handler bug")
    pair.tb.on_message("broken", broken)
    pair.tb.on_message("not-a-dict", lambda peer, m: ["a", "list"])
    link = pair.link()
    ids = wait_for(lambda: pair.connection_ids(B, 1))
    assert link.request({"kind": "broken"}, 5) is None
    assert link.send({"kind": "broken"})
    assert link.request({"kind": "not-a-dict"}, 5) is None
    assert link.request({"kind": "ping"}, 5)["kind"] == "pong"
    assert link.connects == 1 and pair.connection_ids(B, 1) == ids
    lines = errorlog(pair.b, "handler bug")
    assert len(lines) == 2 and "'broken'" in lines[0] and A in lines[0]
    assert errorlog(pair.b, "returned a list")


def test_request_times_out_and_send_refuses_what_cannot_travel(pair):
    release = threading.Event()
    pair.tb.on_message("slow", lambda peer, m: release.wait(10) and {"kind": "late"})
    link = pair.link()
    started = time.monotonic()
    assert link.request({"kind": "slow"}, 0.3) is None
    assert 0.25 < time.monotonic() - started < 2
    release.set()
    # the late reply finds nobody waiting; the next request gets its own reply
    assert link.request({"kind": "ping"}, 5)["kind"] == "pong"
    assert not link.send({"kind": "x", "value": object()})
    assert not link.send({"no kind": 1})
    assert link.request({"kind": "ping"}, 5)["kind"] == "pong"


def test_a_link_to_nowhere_stays_down_and_says_why(pair):
    link = pair.ta.link(f"TCP://{pair.b.host}:7999", "PARTNER")
    pair.links.append(link)
    assert wait_for(lambda: link.last_outcome is not None)
    assert not link.up and link.last_outcome.number == 1418
    assert "can not be reached" in link.last_outcome.message
    assert not link.send({"kind": "ping"})


def test_link_reconnects_after_the_acceptor_endpoint_stopped_and_started(pair):
    link = pair.link()
    watch = LogWatch(pair.b, MSG_9691, MSG_9690)
    pair.alter(B, "STATE = STOPPED")
    assert wait_for(lambda: not link.up, 5)
    assert wait_for(lambda: link.last_outcome.number == 1418, 5)
    assert watch.new(MSG_9691) and not watch.new(MSG_9690)
    time.sleep(1.5)                   # several retries while stopped
    assert not link.up
    pair.alter(B, "STATE = STARTED")
    started = time.monotonic()
    assert link.wait_up(5), link.last_outcome
    assert time.monotonic() - started < 3      # backoff is at most 1 s between attempts
    assert link.connects == 2
    assert link.request({"kind": "ping"}, 5)["kind"] == "pong"


def test_a_stopped_endpoint_cannot_initiate_and_logs_that_once(pair):
    pair.alter(A, "STATE = STOPPED")
    watch = LogWatch(pair.a, "Database Mirroring Transport is disabled")
    link = pair.link(up=False)
    assert wait_for(lambda: link.last_outcome is not None and link.last_outcome.number == 1486, 5)
    time.sleep(2.5)
    assert not link.up
    assert len(watch.new("Database Mirroring Transport is disabled")) == 1
    pair.alter(A, "STATE = STARTED")
    assert link.wait_up(5), link.last_outcome


@pytest.mark.parametrize("side,clause", [
    (B, "FOR DATABASE_MIRRORING (ROLE = PARTNER)"),
    (B, "FOR DATABASE_MIRRORING (ENCRYPTION = SUPPORTED ALGORITHM AES)"),
    (A, "FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES RC4)"),
])
def test_alter_endpoint_closes_both_directions_and_links_come_back(pair, side, clause):
    ab, ba = pair.link(A, B), pair.link(B, A)
    before = {A: pair.connection_ids(A, 0) | pair.connection_ids(A, 1),
              B: pair.connection_ids(B, 0) | pair.connection_ids(B, 1)}
    assert all(len(v) == 2 for v in before.values()), before
    watch = LogWatch(pair.lab[side], MSG_9691, MSG_9690)
    pair.alter(side, clause)
    assert wait_for(lambda: ab.connects == 2 and ba.connects == 2 and ab.up and ba.up, 10), \
        (ab.connects, ba.connects, ab.last_outcome, ba.last_outcome)
    assert len(watch.new(MSG_9691)) == 1 and len(watch.new(MSG_9690)) == 1
    for name in (A, B):
        after = wait_for(lambda: (lambda ids: len(ids) == 2 and ids)(
            pair.connection_ids(name, 0) | pair.connection_ids(name, 1)))
        assert after and not after & before[name], (name, before[name], after)
    assert ab.request({"kind": "ping"}, 5) and ba.request({"kind": "ping"}, 5)


def test_alter_endpoint_that_changes_nothing_keeps_the_connections(pair):
    link = pair.link()
    watch = LogWatch(pair.b, MSG_9691)
    pair.alter(B, "STATE = STARTED")
    time.sleep(1.0)
    assert link.up and link.connects == 1
    assert not watch.new(MSG_9691)


def test_an_expired_certificate_is_refused_at_the_next_connect_not_before(pair):
    link = pair.link()
    assert link.request({"kind": "ping"}, 5)
    heard = pair.tb.last_heard(A)
    # B's clock moves past A's certificate expiry (one year from CREATE CERTIFICATE)
    faults.set_clock(pair.lab.state_dir, B, faults.parse_offset("+400d"))
    time.sleep(1.5)                                       # the view refreshes within 0.2 s
    assert link.up and link.connects == 1
    assert link.request({"kind": "ping"}, 5)["kind"] == "pong"
    assert pair.tb.last_heard(A) > heard                  # the live connection is never re-validated
    watch = LogWatch(pair.b, "Certificate expired")
    pair.alter(B, "STATE = STOPPED")
    pair.alter(B, "STATE = STARTED")
    assert wait_for(lambda: link.last_outcome.number == 28035, 10), link.last_outcome
    assert "Certificate expired" in link.last_outcome.message and not link.up
    assert watch.new("Certificate expired")               # the cause, in the refusing peer's log
    faults.set_clock(pair.lab.state_dir, B, None)
    assert link.wait_up(10), link.last_outcome


def test_revoked_connect_is_refused_at_reconnect_with_its_number(pair):
    link = pair.link()
    pair.b.sql(f"REVOKE CONNECT ON ENDPOINT::{ENDPOINT} FROM {login_name(A)}")
    time.sleep(0.5)
    assert link.up and link.request({"kind": "ping"}, 5)       # live connections are not re-checked
    watch = LogWatch(pair.b, "does not have CONNECT permission")
    pair.alter(B, "STATE = STOPPED")
    pair.alter(B, "STATE = STARTED")
    assert wait_for(lambda: link.last_outcome.number == 28034, 10), link.last_outcome
    assert login_name(A) in link.last_outcome.message and not link.up
    assert watch.new("does not have CONNECT permission")
    pair.b.sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}")
    assert link.wait_up(10), link.last_outcome


def test_drop_endpoint_closes_the_links_and_they_return_with_a_new_one(pair):
    link = pair.link()
    watch = LogWatch(pair.b, MSG_9691)
    pair.b.sql(f"DROP ENDPOINT {ENDPOINT}")
    assert wait_for(lambda: not link.up, 5)
    assert watch.new(MSG_9691)
    pair.b.sql(f"CREATE ENDPOINT {ENDPOINT} STATE = STARTED AS TCP (LISTENER_PORT = 7024, LISTENER_IP = ALL) "
               f"FOR DATABASE_MIRRORING (AUTHENTICATION = CERTIFICATE {B}_cert, "
               f"ENCRYPTION = REQUIRED ALGORITHM AES, ROLE = ALL)")
    pair.b.sql(f"GRANT CONNECT ON ENDPOINT::{ENDPOINT} TO {login_name(A)}")
    assert link.wait_up(10), link.last_outcome


def test_two_links_to_the_same_peer_and_role_coexist(pair):
    first, second = pair.link(), pair.link()
    assert wait_for(lambda: len(pair.connection_ids(B, 1)) == 2, 5)
    time.sleep(1.5)
    assert first.up and second.up and first.connects == second.connects == 1
    witness = pair.link(role="WITNESS")
    assert witness.request({"kind": "ping"}, 5) and first.request({"kind": "ping"}, 5)
    assert len(pair.connection_ids(B, 1)) == 3
