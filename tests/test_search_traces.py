"""Counterexample traces: causal reordering, no-op removal, rendering, files, replay, reproducibility."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from labkit.check.predicates import predicate
from labkit.node import Address, client
from labkit.search import Event, Outcome, SearchSettings, SearchState, Trace, TraceError, bfs, random_search
from labkit.search.trace import reorder, replay
from protocols import paxos, twopc
from protocols.tiny import EchoServer, Ping, Pinger, Pinger2, Pong, Relay

from labkit.labs.ping import Ping as LabPing
from labkit.labs.ping import PingRequest
from labkit.labs.ping.tests import SERVER, ping_workload
from labkit.testing.solution import load_solution

PING = load_solution(Path(__file__).resolve().parent.parent / "solutions" / "ping" / "ping_server.py", "ping")

A = Address


def msg(sender: Address, to: Address, item) -> Event:
    return Event("message", to, sender, item)


# --------------------------------------------------------------------------
# Reordering by happens-before
# --------------------------------------------------------------------------

C1, C2, R1, R2, R3, R4 = (A(n) for n in ("c1", "c2", "r1", "r2", "r3", "r4"))


def chains() -> SearchState:
    return SearchState.initial(
        servers=[Relay(R1, R2), Relay(R2, None), Relay(R3, R4), Relay(R4, None)],
        others=[Pinger(C1, R1, 1), Pinger2(C2, R3)],
    )


def test_reorder_groups_causal_chains_and_keeps_the_final_state():
    root = chains()
    interleaved = [
        msg(C1, R1, Ping(1)),
        msg(C2, R3, Ping(2)),
        msg(R1, R2, Ping(1)),
        msg(R3, R4, Ping(2)),
    ]
    final = replay(root, interleaved)[-1]
    ordered = reorder(root, interleaved)
    assert replay(root, ordered)[-1].fp == final.fp
    assert sorted(map(str, ordered)) == sorted(map(str, interleaved))
    chain_of = ["a" if e.item == Ping(1) else "b" for e in ordered]
    assert chain_of in (["a", "a", "b", "b"], ["b", "b", "a", "a"]), [str(e) for e in ordered]
    # the chain that contains the last event comes last
    assert ordered[-1] == interleaved[-1]


def test_reorder_keeps_causal_order_within_a_chain():
    root = chains()
    events = [msg(C2, R3, Ping(2)), msg(C1, R1, Ping(1)), msg(R3, R4, Ping(2)), msg(R1, R2, Ping(1))]
    ordered = reorder(root, events)
    assert ordered.index(msg(C1, R1, Ping(1))) < ordered.index(msg(R1, R2, Ping(1)))
    assert ordered.index(msg(C2, R3, Ping(2))) < ordered.index(msg(R3, R4, Ping(2)))
    assert replay(root, ordered)[-1].fp == replay(root, events)[-1].fp


def test_reorder_removes_no_op_steps():
    s, c = A("s"), A("c")
    root = SearchState.initial(servers=[EchoServer(s)], others=[Pinger(c, s, 2)])
    events = [msg(c, s, Ping(1)), msg(c, s, Ping(1)), msg(s, c, Pong(1)), msg(s, c, Pong(1)),
              msg(c, s, Ping(2)), msg(s, c, Pong(2))]
    ordered = reorder(root, events)
    assert sorted(map(str, ordered)) == sorted(map(str, [msg(c, s, Ping(1)), msg(s, c, Pong(1)),
                                                         msg(c, s, Ping(2)), msg(s, c, Pong(2))]))
    # (a no-op as the very last event is kept on purpose: it is the event the trace ends on)
    assert replay(root, ordered)[-1].fp == replay(root, events)[-1].fp


def test_random_search_trace_has_no_no_ops_and_replays():
    make = lambda: paxos.make_nodes(bug="acceptor")  # noqa: E731
    settings = SearchSettings(invariants=[paxos.AGREEMENT], max_depth=40)
    result = random_search(SearchState.initial(servers=make()), settings, seed=11)
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    states = result.trace.states()
    assert all(a.fp != b.fp for a, b in zip(states, states[1:]))
    assert not paxos.AGREEMENT(states[-1])
    assert len(result.trace.events) <= 14


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


@predicate("client1 has no result")
def NO_RESULT(state):
    w = state.workers[0]
    return not w.results, f"results {w.results}"


def ping_result():
    state = SearchState.initial(
        servers=[PING.PingServer(SERVER)],
        workers=[(PING.PingClient(client(1), SERVER), ping_workload(["hello", "world"]))],
    )
    return bfs(state, SearchSettings(invariants=[NO_RESULT]))


def test_render_numbers_events_and_shows_only_changed_fields():
    result = ping_result()
    text = result.trace.render()
    lines = text.splitlines()
    assert lines[0] == "1. client1 -> server: PingRequest(ping=Ping(value='hello'))"
    assert lines[1].startswith("2. server -> client1: PongReply(")
    assert "     client1: results: appended [Pong(value='hello')]" in lines
    assert "     client1: sent: 1 -> 2" in lines
    assert not any("server_address" in line or "address" in line.split(":")[1] for line in lines[2:-1])
    assert lines[-1] == "State violates \"client1 has no result\": results [Pong(value='hello')]"


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def saved(tmp_path: Path) -> tuple[Path, SearchState]:
    result = ping_result()
    path = result.trace.save(tmp_path / "ping.trace.json")
    return path, result.state


def test_save_load_round_trip_replays_to_the_same_state(tmp_path):
    path, final = saved(tmp_path)
    loaded = Trace.load(path)
    assert loaded.events == ping_result().trace.events
    assert loaded.states()[-1].fp == final.fp
    assert loaded.violation is not None and loaded.violation.name == "client1 has no result"
    assert loaded.render() == ping_result().trace.render()


def test_save_load_paxos_violation(tmp_path):
    partition = [[A("p1"), A("a1"), A("a2")], [A("p2"), A("a2"), A("a3")]]
    settings = SearchSettings(invariants=[paxos.AGREEMENT])
    settings.partition(*partition)
    result = bfs(SearchState.initial(servers=paxos.make_nodes(bug="proposer")), settings)
    loaded = Trace.load(result.trace.save(tmp_path / "paxos.json"))
    assert loaded.states()[-1].fp == result.state.fp
    assert not paxos.AGREEMENT(loaded.states()[-1])


def test_save_load_after_drop(tmp_path):
    @predicate("p1 and p2 prepared")
    def prepared(state):
        return state.node(A("p1")).voted and state.node(A("p2")).voted

    start = SearchState.initial(servers=twopc.make_nodes([True, True, False], buggy=True))
    goal = bfs(start, SearchSettings(goals=[prepared]).deliver_timers(False))  # type: ignore[arg-type]
    staged = goal.state.drop_pending_messages().undrop_messages_from(A("p2"))
    result = bfs(staged, SearchSettings(invariants=[twopc.ATOMIC]))
    loaded = Trace.load(result.trace.save(tmp_path / "drop.json"))
    assert loaded.states()[-1].fp == result.state.fp


def _edit(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_not_json_rejected(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("this is not json {")
    with pytest.raises(TraceError, match="not valid JSON"):
        Trace.load(path)


def test_truncated_file_rejected(tmp_path):
    path, _ = saved(tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(TraceError, match="not valid JSON"):
        Trace.load(path)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(TraceError, match="no trace file"):
        Trace.load(tmp_path / "nope.json")


def test_wrong_format_rejected(tmp_path):
    path, _ = saved(tmp_path)
    _edit(path, lambda d: d.__setitem__("format", "something-else"))
    with pytest.raises(TraceError, match="not a labkit trace"):
        Trace.load(path)
    path.write_text("[1, 2, 3]")
    with pytest.raises(TraceError, match="not a labkit trace"):
        Trace.load(path)


def test_wrong_version_rejected(tmp_path):
    path, _ = saved(tmp_path)
    _edit(path, lambda d: d.__setitem__("version", 99))
    with pytest.raises(TraceError, match="version 99"):
        Trace.load(path)


def test_truncated_events_rejected(tmp_path):
    path, _ = saved(tmp_path)
    _edit(path, lambda d: d["events"][0].pop("kind"))
    with pytest.raises(TraceError, match="damaged or incomplete"):
        Trace.load(path)
    path2, _ = saved(tmp_path / "2")
    _edit(path2, lambda d: d.pop("events"))
    with pytest.raises(TraceError, match="damaged or incomplete"):
        Trace.load(path2)


def test_class_that_no_longer_exists_rejected(tmp_path):
    path, _ = saved(tmp_path)
    text = path.read_text().replace("ping_server:PingServer", "ping_server:PingServerGone")
    path.write_text(text)
    with pytest.raises(TraceError, match="PingServerGone"):
        Trace.load(path).states()
    path.write_text(text.replace("ping_server:PingServerGone", "no_such_module_xyz:PingServer"))
    with pytest.raises(TraceError, match="no_such_module_xyz"):
        Trace.load(path).states()


def test_damaged_violation_field_rejected(tmp_path):
    path, _ = saved(tmp_path)
    _edit(path, lambda d: d.__setitem__("violation", {"nonsense": 1}))
    with pytest.raises(TraceError):
        Trace.load(path)


def test_event_that_no_longer_applies(tmp_path):
    path, _ = saved(tmp_path)

    def change(d):
        d["events"][0]["item"] = d["events"][0]["item"].replace('"hello"', '"edited"')

    _edit(path, change)
    loaded = Trace.load(path)
    assert loaded.events[0] == msg(client(1), SERVER, PingRequest(LabPing("edited")))
    with pytest.raises(TraceError, match="event 1 no longer applies"):
        loaded.states()
    path2, _ = saved(tmp_path / "2")
    _edit(path2, lambda d: d["events"][1].__setitem__("item", d["events"][1]["item"].replace('"hello"', '"zzz"')))
    with pytest.raises(TraceError, match="event 2 no longer applies"):
        Trace.load(path2).states()


# --------------------------------------------------------------------------
# Reproducible random search
# --------------------------------------------------------------------------


def _random(seed: int):
    settings = SearchSettings(invariants=[paxos.AGREEMENT], max_depth=40)
    return random_search(SearchState.initial(servers=paxos.make_nodes(bug="proposer")), settings, seed=seed)


def test_random_search_is_reproducible():
    a, b = _random(5), _random(5)
    assert a.outcome is b.outcome is Outcome.INVARIANT_VIOLATED
    assert (a.steps, a.probes, a.depth) == (b.steps, b.probes, b.depth)
    assert a.trace.events == b.trace.events
    assert a.state.fp == b.state.fp


def test_different_seeds_may_differ():
    runs = {(r.steps, r.probes) for r in (_random(s) for s in (1, 2, 3))}
    assert len(runs) > 1
