"""The search semantics ported from DSLabs: network, timers, settings, steps, end conditions."""

from __future__ import annotations

import time

import pytest

from labkit.check.predicates import predicate
from labkit.node import Address, Node
from labkit.search import (
    Event,
    NondeterminismError,
    Outcome,
    SearchError,
    SearchSettings,
    SearchState,
    bfs,
    random_search,
)
from protocols import paxos, twopc
from protocols.tiny import (
    COUNTER,
    Crasher,
    EchoServer,
    GlobalCounter,
    Greeter,
    Hello,
    LambdaNode,
    Ping,
    Pinger,
    Pong,
    RandomNode,
    RandomSender,
    Tick,
    TimerNode,
)

A = Address
S, C = A("s"), A("c")


def enabled(state: SearchState, settings: SearchSettings | None = None) -> list[Event]:
    settings = settings or SearchSettings()
    internal = state.events(settings.connectivity(state.addresses), settings.timer_mask(state.addresses))
    return [state.event_value(e) for e in internal]


def msg(sender: Address, to: Address, item) -> Event:
    return Event("message", to, sender, item)


def echo_state(count: int = 1) -> SearchState:
    return SearchState.initial(servers=[EchoServer(S)], others=[Pinger(C, S, count)])


# --------------------------------------------------------------------------
# The network is a set of envelopes, never emptied by delivery
# --------------------------------------------------------------------------


def test_delivered_messages_stay_deliverable():
    s0 = echo_state()
    s1 = s0.apply(msg(C, S, Ping(1)))
    assert s1 is not None
    assert (C, S, Ping(1)) in s1.network  # still there after delivery
    assert msg(C, S, Ping(1)) in enabled(s1)  # and can be delivered again (duplication)
    assert msg(S, C, Pong(1)) in enabled(s1)


def test_resending_an_envelope_already_present_adds_no_state():
    s1 = echo_state().apply(msg(C, S, Ping(1)))
    s2 = s1.apply(msg(C, S, Ping(1)))  # the stateless server replies Pong(1) again
    assert s2.fp == s1.fp
    assert len(s2.network) == len(s1.network) == 2
    result = bfs(echo_state(), SearchSettings())
    # initial; Ping delivered; Pong delivered. Nothing else.
    assert (result.outcome, result.states) == (Outcome.SPACE_EXHAUSTED, 3)


def test_message_to_a_node_that_does_not_exist_is_never_deliverable():
    state = SearchState.initial(others=[Pinger(C, A("nobody"))])
    assert enabled(state) == []
    assert bfs(state, SearchSettings()).states == 1


# --------------------------------------------------------------------------
# Timer queues
# --------------------------------------------------------------------------


def timer_names(state: SearchState, settings: SearchSettings | None = None) -> list[str]:
    return [e.item.name for e in enabled(state, settings) if e.kind == "timer"]


def test_timer_blocked_by_earlier_timer_with_max_not_above_its_min():
    node = TimerNode(S, [("a", 10, 10), ("b", 10, 10), ("c", 5, 20), ("d", 30, 30), ("e", 9, 12)])
    state = SearchState.initial(servers=[node])
    # b: a.max 10 <= 10 (blocked); c: no earlier max <= 5; d: a.max <= 30 (blocked); e: nothing <= 9.
    assert timer_names(state) == ["a", "c", "e"]


def test_equal_timers_fire_fifo():
    state = SearchState.initial(servers=[TimerNode(S, [("x", 10, 10), ("y", 10, 10), ("x", 10, 10)])])
    assert timer_names(state) == ["x"]
    s1 = state.apply(Event("timer", S, None, Tick("x"), 10, 10))
    assert s1.node(S).fired == ["x"]
    assert timer_names(s1) == ["y"]
    s2 = s1.apply(Event("timer", S, None, Tick("y"), 10, 10))
    assert timer_names(s2) == ["x"]
    assert [t.name for t, _, _ in s2.timers(S)] == ["x"]
    result = bfs(state, SearchSettings())
    assert result.states == 4  # a single FIFO line: x, y, x


def test_ranged_timers_fire_in_either_order():
    state = SearchState.initial(servers=[TimerNode(S, [("x", 5, 15), ("y", 5, 15)])])
    assert timer_names(state) == ["x", "y"]
    # fired in either order: {}, [x], [y], [x, y], [y, x]
    assert bfs(state, SearchSettings()).states == 5


def test_equal_ranged_timers_duplicate_fires_once_per_value():
    state = SearchState.initial(servers=[TimerNode(S, [("x", 5, 15), ("x", 5, 15)])])
    assert timer_names(state) == ["x"]
    assert bfs(state, SearchSettings()).states == 3


def test_timer_equality_ignores_the_drawn_length():
    state = SearchState.initial(servers=[TimerNode(S, [("x", 5, 15)], rearm=True)])
    again = state.apply(Event("timer", S, None, Tick("x"), 5, 15))
    assert again.fp == state.fp
    assert bfs(state, SearchSettings()).states == 1


def test_timer_with_other_range_is_another_timer():
    state = SearchState.initial(servers=[TimerNode(S, [("x", 5, 15)])])
    assert state.apply(Event("timer", S, None, Tick("x"), 5, 16)) is None
    assert state.apply(Event("timer", S, None, Tick("x"), 5, 15)) is not None


def test_per_node_timer_delivery():
    nodes = [TimerNode(S, [("x", 5, 5)]), TimerNode(C, [("y", 5, 5)])]
    state = SearchState.initial(servers=nodes)
    off_s = SearchSettings().deliver_timers(False, S)
    assert [(e.node, e.item.name) for e in enabled(state, off_s)] == [(C, "y")]  # type: ignore[attr-defined]
    all_off = SearchSettings().deliver_timers(False)
    assert enabled(state, all_off) == []  # type: ignore[arg-type]
    only_c = SearchSettings().deliver_timers(False).deliver_timers(True, C)
    assert [e.node for e in enabled(state, only_c)] == [C]  # type: ignore[arg-type]
    assert bfs(state, off_s).states == 2  # type: ignore[arg-type]
    assert bfs(state, SearchSettings()).states == 4


# --------------------------------------------------------------------------
# Connectivity settings
# --------------------------------------------------------------------------

X, Y, Z = A("x"), A("y"), A("z")


def greeters() -> SearchState:
    everyone = [X, Y, Z]
    return SearchState.initial(servers=[Greeter(a, everyone) for a in everyone])


def links(settings: SearchSettings) -> set[tuple[str, str]]:
    return {(e.sender.name, e.node.name) for e in enabled(greeters(), settings)}  # type: ignore[union-attr]


ALL = {(a, b) for a in "xyz" for b in "xyz"}
SELF = {(a, a) for a in "xyz"}


def test_all_links_by_default():
    assert links(SearchSettings()) == ALL


def test_partition():
    s = SearchSettings()
    s.partition([X, Y], [Z])
    assert links(s) == SELF | {("x", "y"), ("y", "x")}


def test_link_sender_receiver_node_activity():
    s = SearchSettings()
    s.link_active(X, Y, False)
    assert links(s) == ALL - {("x", "y")}
    s = SearchSettings()
    s.sender_active(X, False)
    assert links(s) == ALL - {("x", "y"), ("x", "z")}
    s = SearchSettings()
    s.receiver_active(Z, False)
    assert links(s) == ALL - {("x", "z"), ("y", "z")}
    s = SearchSettings()
    s.node_active(Y, False)
    assert links(s) == ALL - {("x", "y"), ("z", "y"), ("y", "x"), ("y", "z")}
    s.link_active(Y, Z, True)  # the most specific setting wins
    assert links(s) == ALL - {("x", "y"), ("z", "y"), ("y", "x")}
    s = SearchSettings()
    s.network_active(False)
    assert links(s) == SELF  # a message to oneself is always delivered


def test_partition_limits_the_search():
    s = SearchSettings()
    s.partition([X, Y], [Z])
    result = bfs(greeters(), s)
    # x and y each hear from both of {x, y} in any order (2 bits each), z hears itself.
    assert result.states == 4 * 4 * 2


# --------------------------------------------------------------------------
# Copy-on-write steps
# --------------------------------------------------------------------------


def test_step_copies_only_the_receiving_node():
    state = greeters()
    before = {a: (set(n.heard), id(n)) for a, n in state.nodes.items()}
    child = state.apply(msg(X, Y, Hello("x")))
    assert child.node(Y).heard == {"x"}
    assert state.node(Y).heard == set()  # the parent is untouched
    assert {a: (set(n.heard), id(n)) for a, n in state.nodes.items()} == before
    assert child.node(Y) is not state.node(Y)
    assert child.node(X) is state.node(X) and child.node(Z) is state.node(Z)
    assert child.depth == state.depth + 1


def test_handler_cannot_alias_message_into_other_states():
    state = greeters()
    a = state.apply(msg(X, Y, Hello("x")))
    b = state.apply(msg(Z, Y, Hello("z")))
    assert a.node(Y).heard == {"x"} and b.node(Y).heard == {"z"}
    assert state.node(Y).heard == set()


# --------------------------------------------------------------------------
# Handler exceptions
# --------------------------------------------------------------------------


def test_handler_exception_is_terminal_with_node_event_and_traceback():
    state = SearchState.initial(servers=[Crasher(S)], others=[Pinger(C, S, 3)])
    result = bfs(state, SearchSettings())
    assert result.outcome is Outcome.EXCEPTION_THROWN
    assert not result.safe
    failure = result.failure
    assert failure is not None and failure.node == S
    assert failure.event == msg(C, S, Ping(2))
    assert failure.error_type == "ZeroDivisionError"
    assert "divide_by" in failure.traceback and "handle_Ping" in failure.traceback
    assert result.state.failure == failure
    assert enabled(result.state) == []  # terminal: nothing more happens
    assert "ZeroDivisionError" in result.trace.render()
    assert result.trace.events[-1] == msg(C, S, Ping(2))
    assert "ZeroDivisionError" in result.summary()


def test_handler_exception_found_by_random_search_and_minimized():
    state = SearchState.initial(servers=[Crasher(S)], others=[Pinger(C, S, 3)])
    result = random_search(state, SearchSettings(max_depth=10), seed=3)
    assert result.outcome is Outcome.EXCEPTION_THROWN
    assert result.trace.events == [msg(C, S, Ping(2))]


# --------------------------------------------------------------------------
# End conditions
# --------------------------------------------------------------------------

TWOPC = lambda: SearchState.initial(servers=twopc.make_nodes([True, True, True]))  # noqa: E731


def test_space_exhausted():
    result = bfs(TWOPC(), SearchSettings(invariants=[twopc.ATOMIC]))
    assert result.outcome is Outcome.SPACE_EXHAUSTED and result.complete and result.safe
    assert result.states == 565
    assert result.trace is None


def test_budget_exhausted_reports_coverage():
    result = bfs(TWOPC(), SearchSettings(max_states=50))
    assert result.outcome is Outcome.BUDGET_EXHAUSTED
    assert result.states == 50
    assert result.complete
    assert f"explored 50 states to depth {result.depth}" in result.coverage()
    assert 0 < result.depth < 13
    steps = random_search(TWOPC(), SearchSettings(max_steps=300, max_depth=20), seed=1)
    assert steps.outcome is Outcome.BUDGET_EXHAUSTED
    # Probes run to their end, so the budget is passed by less than one probe (depth <= 20).
    assert 300 <= steps.steps < 320
    assert f"explored {steps.steps} steps in" in steps.coverage()


def test_random_search_walks_no_probe_past_its_budget():
    """Probes walked side by side stop once the earlier ones use the budget: the steps computed
    stay within one probe of the budget, and the result is that of probes walked one by one."""
    start = SearchState.initial(servers=paxos.make_nodes())
    settings = SearchSettings(invariants=[paxos.AGREEMENT], max_depth=30, max_steps=200)
    result = random_search(start, settings, seed=3)
    assert result.outcome is Outcome.BUDGET_EXHAUSTED and 200 <= result.steps < 230
    assert len(start.system.cache) < 230  # steps computed: at most those walked
    again = random_search(SearchState.initial(servers=paxos.make_nodes()), settings, seed=3)
    assert (again.steps, again.probes, again.depth) == (result.steps, result.probes, result.depth)


def test_depth_limit():
    full = bfs(TWOPC(), SearchSettings())
    limited = bfs(TWOPC(), SearchSettings(max_depth=3))
    assert limited.outcome is Outcome.SPACE_EXHAUSTED
    assert limited.states < full.states
    assert limited.depth == 3


def test_invariant_violated():
    @predicate("nobody committed")
    def no_commit(state):
        done = [n.address for n in state.nodes.values() if getattr(n, "outcome", None) == "commit"]
        return not done, f"{done} committed"

    result = bfs(TWOPC(), SearchSettings(invariants=[no_commit]))
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    assert result.violation.name == "nobody committed"
    assert "committed" in result.violation.explain()
    assert not no_commit(result.state)


def test_goal_found_and_goal_never_found():
    result = bfs(TWOPC(), SearchSettings(goals=[twopc.DECIDED]))
    assert result.outcome is Outcome.GOAL_FOUND
    assert result.goal is not None and result.goal.ok
    assert twopc.DECIDED(result.state)

    impossible = predicate("impossible")(lambda s: False)
    result = bfs(TWOPC(), SearchSettings(goals=[impossible]))
    assert result.outcome is Outcome.SPACE_EXHAUSTED
    assert result.states == 565


def test_prune_stops_expansion():
    full = bfs(TWOPC(), SearchSettings())
    pruned = bfs(TWOPC(), SearchSettings(prunes=[twopc.DECIDED]))
    assert pruned.outcome is Outcome.SPACE_EXHAUSTED and pruned.states < full.states


def test_time_guard_gives_incomplete_outcome():
    calls = [0]

    @predicate("slow")
    def slow(state):
        calls[0] += 1
        time.sleep(0.002)
        return True

    start = time.perf_counter()
    result = bfs(SearchState.initial(servers=paxos.make_nodes()), SearchSettings(invariants=[slow], max_time=0.05))
    assert time.perf_counter() - start < 5
    assert result.outcome is Outcome.TIME_EXHAUSTED
    assert not result.complete
    assert result.outcome.value == "incomplete"
    assert "explored" in result.coverage()
    assert result.states < 521_284


def test_time_guard_trips_promptly_with_a_very_slow_predicate():
    calls = [0]

    @predicate("very slow")
    def very_slow(state):
        calls[0] += 1
        if calls[0] <= 20:
            time.sleep(0.05)  # 20 slow states: 1 s, far beyond max_time
        return True

    result = bfs(SearchState.initial(servers=paxos.make_nodes()), SearchSettings(invariants=[very_slow], max_time=0.2))
    assert result.outcome is Outcome.TIME_EXHAUSTED
    assert calls[0] <= 20, f"the search went on for {calls[0]} predicate calls after its 0.2 s guard"


def test_random_search_time_guard():
    result = random_search(SearchState.initial(servers=paxos.make_nodes()),
                           SearchSettings(max_time=0.05, max_steps=None, max_depth=30), seed=1)
    assert result.outcome is Outcome.TIME_EXHAUSTED and not result.complete


class _Spinning:
    """A seed that counts the probes random_search starts (it formats the seed once per probe)."""

    def __init__(self, limit: int) -> None:
        self.calls = 0
        self.limit = limit

    def __format__(self, spec: str) -> str:
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError(f"random_search started more than {self.limit} probes that took no step")
        return "0"


def test_random_search_with_no_possible_step_ends():
    seed = _Spinning(10_000)
    state = SearchState.initial(servers=[EchoServer(S)])  # nothing to do at all
    result = random_search(state, SearchSettings(max_steps=100), seed=seed)  # type: ignore[arg-type]
    assert result.outcome is Outcome.SPACE_EXHAUSTED


def test_predicate_that_raises_is_a_violation_showing_the_exception():
    @predicate("fragile")
    def fragile(state):
        if any(getattr(n, "decision", None) for n in state.nodes.values()):
            raise KeyError("no such slot")
        return True

    result = bfs(TWOPC(), SearchSettings(invariants=[fragile]))
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    assert result.violation.name == "fragile"
    assert result.violation.error is not None and "KeyError" in result.violation.error
    assert "raised an exception" in result.violation.explain()
    assert "KeyError" in result.trace.render()


def test_a_predicate_reading_only_servers_is_checked_once_per_server_state():
    """Verdicts of a predicate that declares what it reads are shared by states whose nodes of
    that kind are equal; the search's result is the same as without the declaration."""
    calls = {"servers": 0, "all": 0}

    def counting(kind):
        def fn(state):
            calls[kind] += 1
            return True
        return fn

    servers_only = predicate("server state fine", reads="servers")(counting("servers"))
    everything = predicate("state fine")(counting("all"))
    result = bfs(echo_state(3), SearchSettings(invariants=[servers_only, everything]))
    assert result.outcome is Outcome.SPACE_EXHAUSTED
    assert calls["servers"] == 1  # the echo server never changes
    assert 1 < calls["all"] <= result.states  # once per combination of node states
    with pytest.raises(ValueError):
        predicate("bad", reads="messages")(lambda state: True)


# --------------------------------------------------------------------------
# Staged searches and dropped messages
# --------------------------------------------------------------------------


def test_staged_search_from_a_goal_state():
    @predicate("p1 voted")
    def p1_voted(state):
        return state.node(A("p1")).voted

    start = SearchState.initial(servers=twopc.make_nodes([True, True, False], buggy=True))
    first = bfs(start, SearchSettings(goals=[p1_voted]))
    assert first.outcome is Outcome.GOAL_FOUND
    prefix = first.state.path()
    assert len(prefix) == first.depth == 1
    second = bfs(first.state, SearchSettings(invariants=[twopc.ATOMIC]))
    assert second.outcome is Outcome.INVARIANT_VIOLATED
    full = second.state.path()
    assert full[: len(prefix)] == prefix
    assert len(full) == len(prefix) + second.depth
    final = second.trace.states()[-1]
    assert final.fp == second.state.fp and not twopc.ATOMIC(final)
    # the trace starts from the very first state, not from the goal state
    assert second.trace.root.fp == start.fp


def test_drop_and_undrop_pending_messages():
    state = SearchState.initial(servers=twopc.make_nodes([True, True, True]))
    state = state.apply(msg(twopc.COORDINATOR, A("p1"), twopc.Prepare()))
    assert len(state.network) == 4  # three Prepares and p1's Vote
    dropped = state.drop_pending_messages()
    assert dropped.network == []
    assert [e for e in enabled(dropped) if e.kind == "message"] == []
    assert dropped.fp != state.fp
    back_from = dropped.undrop_messages_from(twopc.COORDINATOR)
    assert sorted(str(r) for _, r, _ in back_from.network) == ["p1", "p2", "p3"]
    back_to = dropped.undrop_messages_to(twopc.COORDINATOR)
    assert back_to.network == [(A("p1"), twopc.COORDINATOR, twopc.Vote(True))]
    both = back_from.undrop_messages_to(twopc.COORDINATOR)
    assert {e for e in both.network} == {e for e in state.network}
    assert [e.kind for e in both.path()][-3:] == ["drop", "undrop", "undrop"]
    # only timers remain after the drop
    result = bfs(dropped, SearchSettings().deliver_timers(False))  # type: ignore[arg-type]
    assert result.outcome is Outcome.SPACE_EXHAUSTED and result.states == 1


def test_staged_search_after_drop_finds_bug_with_replayable_trace():
    @predicate("p1 and p2 prepared")
    def prepared(state):
        return state.node(A("p1")).voted and state.node(A("p2")).voted

    start = SearchState.initial(servers=twopc.make_nodes([True, True, False], buggy=True))
    goal = bfs(start, SearchSettings(goals=[prepared]).deliver_timers(False))  # type: ignore[arg-type]
    assert goal.outcome is Outcome.GOAL_FOUND and goal.depth == 2
    staged = goal.state.drop_pending_messages().undrop_messages_from(A("p2"))  # only p2's vote is back
    assert [str(e.kind) for e in staged.path()] == ["message", "message", "drop", "undrop"]
    result = bfs(staged, SearchSettings(invariants=[twopc.ATOMIC]))
    # p1's vote was set aside: only its ResendVote timer can bring it back
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    events = result.trace.events
    assert any(e.kind == "drop" for e in events)
    assert any(e.kind == "timer" and e.node == A("p1") for e in events)
    final = result.trace.states()[-1]
    assert final.fp == result.state.fp and not twopc.ATOMIC(final)


def test_staged_search_from_hand_applied_state():
    start = SearchState.initial(servers=twopc.make_nodes([True, True, False], buggy=True))
    s = start.apply(msg(twopc.COORDINATOR, A("p1"), twopc.Prepare()))
    s = s.apply(msg(twopc.COORDINATOR, A("p2"), twopc.Prepare()))
    assert len(s.path()) == 2
    result = bfs(s, SearchSettings(invariants=[twopc.ATOMIC]))
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    assert result.trace.states()[-1].fp == result.state.fp


# --------------------------------------------------------------------------
# Non-determinism and unsupported state
# --------------------------------------------------------------------------


def _two_paths_to(server: Node) -> SearchState:
    # The ping can be delivered before or after an unrelated timer fires, so
    # the server meets the same event from the same state twice (a cache hit).
    return SearchState.initial(servers=[server], others=[Pinger(C, S), TimerNode(A("t"), [("x", 5, 5)])])


@pytest.mark.parametrize("node,attribute", [(GlobalCounter, "stamp"), (RandomNode, "luck")])
def test_nondeterministic_handler_is_detected(node, attribute):
    COUNTER[0] = 0
    with pytest.raises(NondeterminismError) as info:
        bfs(_two_paths_to(node(S)), SearchSettings(check_determinism=1.0))
    text = str(info.value)
    assert f"{node.__name__}.handle_Ping" in text
    assert f"attribute {attribute}" in text


def test_nondeterministic_sends_are_detected():
    with pytest.raises(NondeterminismError, match="RandomSender.handle_Ping .*messages it sent"):
        bfs(_two_paths_to(RandomSender(S)), SearchSettings(check_determinism=1.0))


def test_determinism_check_off_does_not_raise():
    # (each delivery stamps a new value, so the space is infinite: bound it)
    result = bfs(_two_paths_to(GlobalCounter(S)), SearchSettings(check_determinism=0.0, max_states=300))
    assert result.outcome is Outcome.BUDGET_EXHAUSTED


def test_lambda_in_initial_state_named_by_path():
    with pytest.raises(SearchError, match=r"lambda at config\['key'\]"):
        SearchState.initial(servers=[LambdaNode(S, eager=True)])


def test_lambda_stored_by_a_handler_is_reported_with_path():
    state = SearchState.initial(servers=[LambdaNode(S, eager=False)], others=[Pinger(C, S)])
    result = bfs(state, SearchSettings())
    assert result.outcome is Outcome.EXCEPTION_THROWN
    assert result.failure.node == S
    assert "lambda" in result.failure.message and "config['key']" in result.failure.message


def test_empty_or_non_node_initial_state_rejected():
    with pytest.raises(SearchError, match="at least one node"):
        SearchState.initial()
    with pytest.raises(SearchError, match="is not a Node"):
        SearchState.initial(servers=[object()])  # type: ignore[list-item]
    with pytest.raises(SearchError, match="share the address"):
        SearchState.initial(servers=[EchoServer(S), EchoServer(S)])


def test_apply_refuses_a_timer_blocked_by_the_queue_rule():
    state = SearchState.initial(servers=[TimerNode(S, [("a", 10, 10), ("b", 10, 10)])])
    assert timer_names(state) == ["a"]
    assert state.apply(Event("timer", S, None, Tick("b"), 10, 10)) is None


def test_minimized_trace_respects_timer_order():
    b_fired = predicate("b never fires")(lambda s: "b" not in s.node(S).fired)
    state = SearchState.initial(servers=[TimerNode(S, [("a", 10, 10), ("b", 10, 10)])])
    assert bfs(state, SearchSettings(invariants=[b_fired])).depth == 2  # a must fire first
    result = random_search(state, SearchSettings(invariants=[b_fired], max_depth=5), seed=0)
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    assert [e.item.name for e in result.trace.events] == ["a", "b"]
