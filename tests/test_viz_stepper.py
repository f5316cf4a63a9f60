"""The stepper's logic (delivering, going back, branching, restrictions, replaying a trace) and its widget."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.check.predicates import CLIENTS_DONE
from labkit.labs.ping.tests import SERVER, ping_workload
from labkit.node import client
from labkit.search import SearchSettings, SearchState
from labkit.search.trace import node_changes
from labkit.viz.stepper import Stepper, StepperError
from labkit.viz.stepper_widget import StepperWidget, show_stepper
from test_viz_support import paxos_trace, ping_trace, reference

C1 = client(1)


def ping_start() -> SearchState:
    sol = reference("ping")
    return SearchState.initial(servers=[sol.PingServer(SERVER)],
                               workers=[(sol.PingClient(C1, SERVER), ping_workload(["a"]))])


def index_of(stepper: Stepper, text: str) -> int:
    return next(c.index for c in stepper.choices() if text in str(c))


def test_deliver_back_and_forward():
    s = Stepper(ping_start())
    root = s.state
    assert [str(c) for c in s.inbox(SERVER)] == ["client1 -> server: PingRequest(ping=Ping(value='a'))"]
    assert len(s.timers(C1)) == 1
    request = s.choices()[index_of(s, "PingRequest")]
    after = s.deliver(request)
    assert after.fp == root.step(request.internal).fp
    reply = [c for c in s.inbox(C1)]
    assert len(reply) == 1 and reply[0].new and not reply[0].delivered
    assert [c.delivered for c in s.inbox(SERVER)] == [True]
    assert s.back().fp == root.fp
    assert s.forward().fp == after.fp
    with pytest.raises(StepperError, match="no step ahead"):
        s.forward()
    s.goto(0)
    with pytest.raises(StepperError, match="start state"):
        s.back()


def test_changes_of_the_last_step():
    s = Stepper(ping_start())
    s.deliver(index_of(s, "PingRequest"))
    s.deliver(index_of(s, "PongReply"))
    before, after = s.history[1].state.node(C1), s.state.node(C1)
    assert s.changes() == {C1: node_changes(before, after)}
    assert s.changed_fields(C1) == {"client.pong", "results"}
    assert s.changed_fields(SERVER) == set()


def test_delivering_something_else_from_a_past_state_branches():
    s = Stepper(ping_start())
    s.deliver(index_of(s, "PingRequest"))
    s.back()
    s.deliver(index_of(s, "timer"))
    assert s.branches() == 2 and len(s.history) == 3
    assert [h.id for h in s.branch()] == [0, 2]
    s.back()
    s.deliver(index_of(s, "PingRequest"))  # the same event follows the existing branch
    assert len(s.history) == 3 and s.current == 1
    assert [row[3] for row in s.tree()] == [True, True, False]
    s.goto(2)
    assert [h.id for h in s.branch()] == [0, 2]


def test_settings_restrict_delivery_unless_ignored():
    settings = SearchSettings()
    settings.partition([SERVER], [C1])
    settings.deliver_timers(False, C1)
    s = Stepper(ping_start(), settings)
    assert not any(c.allowed for c in s.choices())
    with pytest.raises(StepperError, match="link client1 -> server is inactive"):
        s.deliver(index_of(s, "PingRequest"))
    with pytest.raises(StepperError, match="timers at client1 are off"):
        s.deliver(index_of(s, "timer"))
    s.ignore_restrictions = True
    assert all(c.allowed for c in s.choices())
    s.deliver(index_of(s, "PingRequest"))
    assert s.position == 1


def test_a_goal_state_blocks_further_steps_and_shows_its_status():
    s = Stepper(ping_start(), SearchSettings(goals=[CLIENTS_DONE]))
    s.deliver(index_of(s, "PingRequest"))
    s.deliver(index_of(s, "PongReply"))
    (status,) = s.predicates()
    assert status.role == "goal" and status.holds and status.alarm
    assert "reaches the goal" in s.blocked()
    assert not any(c.allowed for c in s.choices())
    s.ignore_restrictions = True
    assert s.blocked() is None and any(c.allowed for c in s.choices())


def test_replaying_a_paxos_trace_matches_its_states(tmp_path: Path):
    trace = paxos_trace(tmp_path)
    states = trace.states()
    s = Stepper.from_trace(trace)
    assert s.position == 0 and len(s.branch()) == len(trace.events) + 1
    for k in range(len(trace.events)):
        assert s.forward().fp == states[k + 1].fp
    (invariant,) = s.predicates()
    assert invariant.name == trace.violation.name and not invariant.holds
    assert "violates" in s.blocked()


def test_widget_buttons_drive_the_stepper(tmp_path: Path):
    widget = show_stepper(ping_trace(tmp_path))
    assert isinstance(widget, StepperWidget)
    assert len(widget.nodes.children) == 2
    assert widget.back_button.disabled and not widget.forward_button.disabled
    enabled = [b for b in widget.deliver_buttons if not b.disabled]
    enabled[0].click()
    assert widget.stepper.position == 1 and not widget.back_button.disabled
    widget.back_button.click()
    assert widget.stepper.position == 0
    widget.forward_button.click()
    assert widget.stepper.position == 1
    widget.history.value = 0
    assert widget.stepper.current == 0
    widget.ignore_box.value = True
    assert widget.stepper.ignore_restrictions
    server_panel = widget.nodes.children[0]
    assert any("PingRequest" in getattr(child, "value", "") for row in server_panel.children
               for child in getattr(row, "children", ()))


def test_five_servers_and_a_client_get_compact_panels_showing_what_changed():
    """Six panels fit across a laptop screen: each shows only the fields the last step changed."""
    from labkit.app import Append, KVStore
    from labkit.client import Workload
    from labkit.node import server

    sol = reference("paxos")
    addresses = [server(i) for i in range(1, 6)]
    start = SearchState.initial(
        servers=[sol.PaxosServer(a, list(addresses), KVStore()) for a in addresses],
        workers=[(sol.PaxosClient(C1, list(addresses)), Workload.of([Append("x", "1")]))])
    widget = StepperWidget(Stepper(start))
    assert len(widget.nodes.children) == 6 and not widget.all_fields_box.value
    assert all(panel.layout.min_width == "150px" for panel in widget.nodes.children)
    request = next(c for c in widget.stepper.choices() if "PaxosRequest" in str(c))
    widget._act(widget.stepper.deliver, request.index)
    receiver = widget.stepper.addresses.index(request.node)
    changed = widget.stepper.changed_fields(request.node)
    every = widget.stepper.fields(request.node)
    state_html = widget.nodes.children[receiver].children[1].value
    assert f"{len(every) - len(changed)} unchanged field" in state_html
    assert all(f">{name}:" in state_html for name in changed)
    unchanged = next(name for name in every if name not in changed)
    assert f">{unchanged}:" not in state_html
    widget.all_fields_box.value = True  # every field again, in wider panels
    state_html = widget.nodes.children[receiver].children[1].value
    assert all(f">{name}:" in state_html for name in every) and "unchanged field" not in state_html
    assert widget.nodes.children[0].layout.min_width == "260px"
