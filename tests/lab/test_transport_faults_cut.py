"""LAB-ONLY fault injection (transport/faults.py): `mirrorkit lab cut A B` drops all traffic between
two instances without closing sockets, `heal` restores it; `mirrorkit lab clock NAME +30d` shifts the
instance's notion of now for certificate checks. Through real lab instances and links."""
from __future__ import annotations

import io
import json
import time

import pytest

from links_helpers import A, B, Pair, wait_for
from mirrorkit_lab import supervisor
from mirrorkit_lab.transport import faults, links


@pytest.fixture
def pair(lab):
    p = Pair(lab)
    yield p
    p.close()


def _advancing(transport, name: str, within: float = 3.0) -> bool:
    first = wait_for(lambda: transport.last_heard(name), within)
    return bool(wait_for(lambda: (transport.last_heard(name) or 0) > first, within))


def test_cut_stops_last_heard_and_heal_restores_it(pair):
    link = pair.link()
    assert _advancing(pair.tb, A) and _advancing(pair.ta, B)
    faults.cut(pair.lab.state_dir, A, B)
    time.sleep(0.5)                                   # both views refresh within 0.2 s
    heard_b, heard_a = pair.tb.last_heard(A), pair.ta.last_heard(B)
    assert link.request({"kind": "ping"}, 1.0) is None
    assert link.send({"kind": "ping"})                # the sender cannot tell a lost network
    time.sleep(2.0)                                   # two heartbeats' worth
    assert pair.tb.last_heard(A) == heard_b and pair.ta.last_heard(B) == heard_a
    assert link.up                                    # sockets stay open: nothing was closed
    assert pair.connection_ids(B, 1)
    faults.heal(pair.lab.state_dir, B, A)
    assert _advancing(pair.tb, A) and _advancing(pair.ta, B)
    assert link.request({"kind": "ping"}, 5)["kind"] == "pong"
    assert link.connects == 1


def test_a_cut_peer_cannot_be_reached_until_healed(pair):
    link = pair.link()
    faults.cut(pair.lab.state_dir, A, B)
    time.sleep(0.5)
    pair.alter(B, "STATE = STOPPED")                  # close the live connection: a reconnect is needed
    pair.alter(B, "STATE = STARTED")
    assert wait_for(lambda: not link.up, 5)
    # the handshake hears nothing from the cut peer and gives up
    assert wait_for(lambda: link.last_outcome.number == 1418, 15), link.last_outcome
    assert not link.up
    faults.heal(pair.lab.state_dir)
    assert link.wait_up(15), link.last_outcome


def test_a_silent_peer_loses_its_connections_after_the_idle_timeout(pair, monkeypatch):
    monkeypatch.setattr(links, "IDLE_TIMEOUT", 2.5)
    link = pair.link()
    faults.cut(pair.lab.state_dir, A, B)
    assert wait_for(lambda: not link.up, 8)
    assert wait_for(lambda: not pair.connection_ids(B, 1), 8)
    faults.heal(pair.lab.state_dir, A, B)
    assert link.wait_up(15), link.last_outcome
    assert link.connects >= 2


def test_the_clock_offset_moves_only_its_instance(pair):
    before = pair.ta.now(), pair.tb.now()
    faults.set_clock(pair.lab.state_dir, A, faults.parse_offset("+30d"))
    time.sleep(0.3)
    shifted = (pair.ta.now() - before[0]).total_seconds()
    assert 30 * 86400 - 5 < shifted < 30 * 86400 + 5
    assert abs((pair.tb.now() - before[1]).total_seconds()) < 5
    faults.set_clock(pair.lab.state_dir, A, None)
    time.sleep(0.3)
    assert abs((pair.ta.now() - before[0]).total_seconds()) < 5


def test_offsets_parse_as_documented():
    assert faults.parse_offset("+30d") == 30 * 86400
    assert faults.parse_offset("-2h") == -7200
    assert faults.parse_offset("+90m") == 5400
    assert faults.parse_offset("+1.5s") == 1.5
    assert faults.parse_offset("reset") is None
    for bad in ("30d", "+2w", "", "+-1d", "+d"):
        with pytest.raises(faults.FaultError):
            faults.parse_offset(bad)


def test_the_commands_write_the_fault_file_for_known_instances(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    supervisor.write_state(state, [supervisor.Recorded(A, "127.0.0.1", 1433, None),
                                   supervisor.Recorded(B, "127.0.0.2", 1433, None)])
    out = io.StringIO()
    supervisor.cut(state, "host_a", "HOST_B", out=out)
    supervisor.cut(state, B, A, out=out)              # the same pair once
    supervisor.clock(state, "host_b", "-2h", out=out)
    data = json.loads((state / faults.FILE).read_text())
    assert data == {"cuts": [[A, B]], "clock": {B: -7200.0}}
    view = faults.FaultView(state, "Host_A")
    assert view.is_cut("host_b") and not view.is_cut("HOST_C") and not view.is_cut(None)
    with pytest.raises(supervisor.LabError, match="not an instance"):
        supervisor.cut(state, A, "HOST_X", out=out)
    with pytest.raises(supervisor.LabError, match="itself"):
        supervisor.cut(state, A, "host_a", out=out)
    with pytest.raises(supervisor.LabError, match="two instance names"):
        supervisor.heal(state, A, None, out=out)
    with pytest.raises(supervisor.LabError, match="clock offset"):
        supervisor.clock(state, A, "soon", out=out)
    supervisor.heal(state, out=out)
    supervisor.clock(state, B, "reset", out=out)
    assert json.loads((state / faults.FILE).read_text()) == {"cuts": [], "clock": {}}
    time.sleep(faults.POLL + 0.05)
    assert not view.is_cut(B)


def test_cli_cut_heal_clock(tmp_path, capsys):
    from mirrorkit_lab.cli import LabCommand
    import argparse
    state = tmp_path / "state"
    state.mkdir()
    supervisor.write_state(state, [supervisor.Recorded(A, "127.0.0.1", 1433, None),
                                   supervisor.Recorded(B, "127.0.0.2", 1433, None)])
    parser = argparse.ArgumentParser()
    LabCommand.add_parser(parser.add_subparsers(dest="command"))

    def run(*argv):
        return LabCommand.run(parser.parse_args(["lab", *argv, "--state-dir", str(state)]))
    assert run("cut", A, B) == 0
    assert run("clock", A, "+30d") == 0
    assert run("clock", A, "whenever") == 2
    assert "clock offset" in capsys.readouterr().err
    assert faults.read(state) == {"cuts": [[A, B]], "clock": {A: 30 * 86400.0}}
    assert run("heal", A, B) == 0
    assert faults.read(state)["cuts"] == []
