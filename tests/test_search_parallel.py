"""Searches on several processes give exactly the result of one process."""

from __future__ import annotations

import pytest

from labkit.search import SearchSettings, SearchState, bfs, random_search
from protocols import paxos, twopc


def both(search, make_state, settings_for, **kwargs):
    """Run ``search`` with 1 and with 2 workers."""
    one = search(make_state(), settings_for(1), **kwargs)
    two = search(make_state(), settings_for(2), **kwargs)
    return one, two


def test_exhausted_space_has_equal_state_counts():
    one, two = both(bfs, lambda: SearchState.initial(servers=twopc.make_nodes([True, True, True])),
                    lambda w: SearchSettings(invariants=[twopc.ATOMIC], workers=w))
    assert one.outcome.value == two.outcome.value == "space exhausted"
    assert one.states == two.states == 565
    assert one.depth == two.depth


def test_budget_cut_is_the_same_on_any_number_of_processes():
    one, two = both(bfs, lambda: SearchState.initial(servers=paxos.make_nodes()),
                    lambda w: SearchSettings(invariants=[paxos.AGREEMENT], max_states=20_000, workers=w))
    assert one.outcome.value == two.outcome.value == "budget exhausted"
    assert one.states == two.states == 20_000
    assert one.depth == two.depth


def test_first_violation_and_its_trace_are_the_same():
    one, two = both(bfs, lambda: SearchState.initial(servers=paxos.make_nodes(bug="acceptor")),
                    lambda w: SearchSettings(invariants=[paxos.AGREEMENT], workers=w))
    assert one.outcome.value == two.outcome.value == "invariant violated"
    assert one.states == two.states
    assert one.trace.events == two.trace.events
    assert one.state.fp == two.state.fp


@pytest.mark.parametrize("bug", [None, "proposer"])
def test_random_probes_are_the_same_on_any_number_of_processes(bug):
    one, two = both(random_search, lambda: SearchState.initial(servers=paxos.make_nodes(bug=bug)),
                    lambda w: SearchSettings(invariants=[paxos.AGREEMENT], max_depth=40, max_steps=5_000, workers=w),
                    seed=7)
    assert (one.outcome, one.steps, one.probes, one.depth) == (two.outcome, two.steps, two.probes, two.depth)
    if bug:
        assert one.trace.events == two.trace.events
