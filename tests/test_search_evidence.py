"""Evidence that labkit's breadth-first search explores exactly the right states.

Each small protocol's state space is enumerated twice: by labkit's ``bfs`` and
by an independent brute force written here from DSLabs's rules, using plain
Python data (``copy.deepcopy`` of nodes, a canonical frozen representation for
equality, a frozenset network, timer queues as tuples) and nothing from
``labkit.search`` or ``labkit.values``. The counts must agree exactly, with
timers on and off and under partitions. Planted bugs must be found at the
shortest depth, and by seeded random search with a short, replayable trace.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Iterable

import pytest

from labkit.node import Address, Effects, Node, handling
from labkit.search import Outcome, SearchSettings, SearchState, bfs, random_search
from protocols import paxos, twopc

# --------------------------------------------------------------------------
# The independent brute force
# --------------------------------------------------------------------------


def freeze(v: Any) -> Any:
    """A hashable, order-independent representation of a value (my own equality)."""
    t = type(v)
    if v is None or t in (bool, int, float, str):
        return v
    if t is Address:
        return ("@", v.name)
    if t is tuple:
        return ("t",) + tuple(freeze(x) for x in v)
    if t is list:
        return ("l",) + tuple(freeze(x) for x in v)
    if t in (set, frozenset):
        return ("s", frozenset(freeze(x) for x in v))
    if t is dict:
        return ("d", frozenset((freeze(k), freeze(x)) for k, x in v.items()))
    if dataclasses.is_dataclass(v):
        return (t.__qualname__,) + tuple(freeze(getattr(v, f.name)) for f in dataclasses.fields(v))
    if hasattr(v, "__dict__"):
        return (t.__qualname__, frozenset((k, freeze(x)) for k, x in vars(v).items() if not k.startswith("_lk_")))
    raise TypeError(f"cannot freeze {v!r}")


class BruteForce:
    """Global state = (nodes, network {key: (from, to, msg)}, timer queues [(timer, lo, hi, key)])."""

    def __init__(self, make_nodes: Callable[[], list[Node]],
                 can: Callable[[Address, Address], bool] = lambda f, t: True,
                 timers_on: Callable[[Address], bool] = lambda a: True) -> None:
        self.make_nodes, self.can, self.timers_on = make_nodes, can, timers_on

    def initial(self) -> tuple:
        nodes = self.make_nodes()
        net: dict = {}
        queues = []
        for n in nodes:
            eff = Effects(None)  # type: ignore[arg-type]
            with handling(eff):
                n.init()
            self._add(net, nodes, eff.sends)
            queues.append(tuple((t, lo, hi, (freeze(t), lo, hi)) for _, t, lo, hi in eff.timers))
        return (nodes, net, queues)

    @staticmethod
    def _add(net: dict, nodes: list[Node], sends: Iterable[tuple]) -> None:
        names = {n.address for n in nodes}
        for f, t, m in sends:
            if t in names:
                net.setdefault((f.name, t.name, freeze(m)), (f, t, m))

    @staticmethod
    def key(s: tuple) -> tuple:
        nodes, net, queues = s
        return (tuple(freeze(n) for n in nodes), frozenset(net), tuple(tuple(e[3] for e in q) for q in queues))

    def successors(self, s: tuple) -> Iterable[tuple]:
        nodes, net, queues = s
        idx = {n.address: i for i, n in enumerate(nodes)}
        for f, t, m in list(net.values()):
            if f != t and not self.can(f, t):
                continue
            i = idx[t]
            node = copy.deepcopy(nodes[i])
            eff = Effects(None)  # type: ignore[arg-type]
            with handling(eff):
                node.deliver_message(copy.deepcopy(m), f)
            yield self._next(s, i, node, eff, queues[i])
        for i, q in enumerate(queues):
            if not self.timers_on(nodes[i].address):
                continue
            seen = set()
            for pos, (tm, lo, hi, k) in enumerate(q):
                # DSLabs: deliverable unless an earlier-set timer has max <= this one's min.
                if any(q[j][2] <= lo for j in range(pos)) or k in seen:
                    continue
                seen.add(k)
                first = next(j for j, e in enumerate(q) if e[3] == k)  # firing removes the first equal entry
                node = copy.deepcopy(nodes[i])
                eff = Effects(None)  # type: ignore[arg-type]
                with handling(eff):
                    node.deliver_timer(copy.deepcopy(tm))
                yield self._next(s, i, node, eff, q[:first] + q[first + 1:])

    def _next(self, s: tuple, i: int, node: Node, eff: Effects, queue: tuple) -> tuple:
        nodes, net, queues = s
        nodes2 = list(nodes)
        nodes2[i] = node
        net2 = dict(net)
        self._add(net2, nodes2, eff.sends)
        queues2 = list(queues)
        queues2[i] = tuple(queue) + tuple((t, lo, hi, (freeze(t), lo, hi)) for _, t, lo, hi in eff.timers)
        return (nodes2, net2, queues2)

    def bfs(self, max_depth: int | None = None,
            invariant: Callable[[list[Node]], tuple[bool, Any]] | None = None) -> tuple[int, int | None]:
        """(states seen, depth of the shortest violation or None)."""
        s0 = self.initial()
        seen = {self.key(s0)}
        frontier = [s0]
        depth = 0
        while frontier and (max_depth is None or depth < max_depth):
            nxt = []
            for s in frontier:
                for c in self.successors(s):
                    k = self.key(c)
                    if k in seen:
                        continue
                    seen.add(k)
                    if invariant is not None and not invariant(c[0])[0]:
                        return len(seen), depth + 1
                    nxt.append(c)
            frontier = nxt
            depth += 1
        return len(seen), None


_SHORTEST: dict[str, int | None] = {}


def shortest_violation(name: str, make, plain, partition) -> int | None:
    """The brute force's shortest violation depth, computed once per planted bug."""
    if name not in _SHORTEST:
        can = groups_can(*partition) if partition else (lambda f, t: True)
        _SHORTEST[name] = BruteForce(make, can).bfs(invariant=plain)[1]
    return _SHORTEST[name]


def groups_can(*groups: Iterable[str]) -> Callable[[Address, Address], bool]:
    sets = [set(g) for g in groups]
    return lambda f, t: any(f.name in g and t.name in g for g in sets)


def labkit_count(make: Callable[[], list[Node]], settings: SearchSettings) -> tuple[int, Outcome]:
    result = bfs(SearchState.initial(servers=make()), settings)
    return result.states, result.outcome


A = Address

# --------------------------------------------------------------------------
# State counts: labkit BFS versus the brute force
# --------------------------------------------------------------------------

TWOPC_ALL_YES = lambda: twopc.make_nodes([True, True, True])  # noqa: E731
TWOPC_ONE_NO = lambda: twopc.make_nodes([True, True, False])  # noqa: E731
PAXOS = lambda: paxos.make_nodes()  # noqa: E731
PAXOS_R2 = lambda: paxos.make_nodes(max_round=2)  # noqa: E731


def _settings(partition: list[list[str]] | None = None, timers: bool = True, max_depth: int | None = None,
              **kw: Any) -> SearchSettings:
    s = SearchSettings(max_depth=max_depth, **kw)
    if partition is not None:
        s.partition(*[[A(n) for n in g] for g in partition])
    if not timers:
        s.deliver_timers(False)
    return s


CASES = [
    # name, factory, partition, timers, max_depth, expected count (pinned from both enumerations)
    ("2pc all yes", TWOPC_ALL_YES, None, True, None, 565),
    ("2pc all yes, no timers", TWOPC_ALL_YES, None, False, None, None),
    ("2pc one no", TWOPC_ONE_NO, None, True, None, 338),
    ("2pc one no, no timers", TWOPC_ONE_NO, None, False, None, None),
    ("2pc partition p3 away", TWOPC_ALL_YES, [["coord", "p1", "p2"], ["p3"]], True, None, None),
    ("2pc partition, no timers", TWOPC_ALL_YES, [["coord", "p1", "p2"], ["p3"]], False, None, None),
    ("paxos one proposer cut off", PAXOS, [["p1", "a1", "a2", "a3"], ["p2"]], True, None, 722),
    ("paxos overlapping groups", PAXOS, [["p1", "a1", "a2"], ["p2", "a2", "a3"]], True, None, 1089),
    ("paxos depth 8", PAXOS, None, True, 8, 2497),
    ("paxos 2 rounds depth 6, timers", PAXOS_R2, None, True, 6, None),
    ("paxos 2 rounds depth 6, no timers", PAXOS_R2, None, False, 6, None),
]


@pytest.mark.parametrize("name,make,partition,timers,max_depth,expected", CASES, ids=[c[0] for c in CASES])
def test_state_count_matches_brute_force(name, make, partition, timers, max_depth, expected):
    settings = _settings(partition, timers, max_depth)
    states, outcome = labkit_count(make, settings)
    assert outcome is Outcome.SPACE_EXHAUSTED
    can = groups_can(*partition) if partition else (lambda f, t: True)
    brute, _ = BruteForce(make, can, lambda a: timers).bfs(max_depth=max_depth)
    assert states == brute, f"{name}: labkit {states} states, brute force {brute}"
    if expected is not None:
        assert states == expected


def test_timers_change_the_space():
    """Guard against a vacuous comparison: the timer settings really matter here."""
    on, _ = labkit_count(TWOPC_ALL_YES, _settings(timers=True))
    off, _ = labkit_count(TWOPC_ALL_YES, _settings(timers=False))
    one, _ = labkit_count(TWOPC_ALL_YES, _settings().deliver_timers(False, A("coord")))  # type: ignore[arg-type]
    assert off < one < on
    brute_one, _ = BruteForce(TWOPC_ALL_YES, timers_on=lambda a: a != A("coord")).bfs()
    assert one == brute_one


def test_per_link_and_node_activity_counts():
    s = _settings()
    s.link_active(A("p1"), A("coord"), False)
    s.node_active(A("p3"), False)
    labkit, outcome = labkit_count(TWOPC_ALL_YES, s)
    assert outcome is Outcome.SPACE_EXHAUSTED

    def can(f: Address, t: Address) -> bool:
        if (f.name, t.name) == ("p1", "coord"):
            return False
        return "p3" not in (f.name, t.name)

    assert labkit == BruteForce(TWOPC_ALL_YES, can).bfs()[0]


@pytest.mark.parametrize("make,depth", [pytest.param(PAXOS, 9, marks=pytest.mark.slow),
                                        pytest.param(PAXOS_R2, 7, marks=pytest.mark.slow),
                                        pytest.param(PAXOS, 10, marks=pytest.mark.heavy),
                                        pytest.param(PAXOS_R2, 8, marks=pytest.mark.heavy)])
def test_paxos_deeper_counts_slow(make, depth):
    states, _ = labkit_count(make, _settings(max_depth=depth))
    assert states == BruteForce(make).bfs(max_depth=depth)[0]


# --------------------------------------------------------------------------
# Planted bugs
# --------------------------------------------------------------------------

BUGS = [
    # name, factory, invariant predicate, plain invariant, partition
    ("2pc majority commit", lambda: twopc.make_nodes([True, True, False], buggy=True), twopc.ATOMIC, twopc.atomic, None),
    ("paxos acceptor below promise", lambda: paxos.make_nodes(bug="acceptor"), paxos.AGREEMENT, paxos.agreement,
     [["p1", "a1", "a2"], ["p2", "a2", "a3"]]),
    ("paxos proposer ignores phase 1", lambda: paxos.make_nodes(bug="proposer"), paxos.AGREEMENT, paxos.agreement,
     [["p1", "a1", "a2"], ["p2", "a2", "a3"]]),
]


@pytest.mark.parametrize("name,make,inv,plain,partition", BUGS, ids=[b[0] for b in BUGS])
def test_planted_bug_found_at_shortest_depth(name, make, inv, plain, partition):
    shortest = shortest_violation(name, make, plain, partition)
    assert shortest is not None, "the brute force must find the planted bug"
    result = bfs(SearchState.initial(servers=make()), _settings(partition, invariants=[inv]))
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    assert result.violation is not None and result.violation.name == inv.name
    assert result.depth == shortest
    assert len(result.trace.events) == shortest
    assert len(result.state.path()) == shortest
    final = result.trace.states()[-1]
    assert final.fp == result.state.fp
    assert not inv(final)


@pytest.mark.parametrize("name,make,inv,plain,partition", BUGS, ids=[b[0] for b in BUGS])
def test_planted_bug_found_by_random_search(name, make, inv, plain, partition):
    shortest = shortest_violation(name, make, plain, partition)
    assert shortest is not None
    # Probes need a depth limit: the network never shrinks, so a walk can go on forever.
    settings = _settings(partition, invariants=[inv], max_depth=3 * shortest, max_steps=200_000)
    result = random_search(SearchState.initial(servers=make()), settings, seed=7)
    assert result.outcome is Outcome.INVARIANT_VIOLATED, result.summary()
    events = result.trace.events
    assert shortest <= len(events) <= shortest + 2, result.trace.render()
    final = result.trace.states()[-1]
    assert not inv(final)
    assert not plain([n.state for n in final.nodes.values()])[0]


@pytest.mark.slow
def test_paxos_bug_without_partition_slow():
    make = lambda: paxos.make_nodes(bug="proposer")  # noqa: E731
    _, shortest = BruteForce(make).bfs(invariant=paxos.agreement)
    result = bfs(SearchState.initial(servers=make()), SearchSettings(invariants=[paxos.AGREEMENT]))
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    assert result.depth == shortest == 12


def test_correct_protocols_are_safe():
    r = bfs(SearchState.initial(servers=TWOPC_ONE_NO()), _settings(invariants=[twopc.ATOMIC]))
    assert r.outcome is Outcome.SPACE_EXHAUSTED and r.safe
    r = bfs(SearchState.initial(servers=PAXOS()),
            _settings([["p1", "a1", "a2"], ["p2", "a2", "a3"]], invariants=[paxos.AGREEMENT]))
    assert r.outcome is Outcome.SPACE_EXHAUSTED and r.safe
