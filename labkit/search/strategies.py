"""Search strategies: breadth-first search and random depth-first probes, on the judge's workers.

Both strategies ask for the steps they will need in batches (a chunk of the
frontier's successors; the next step of many probes walked side by side), so
the workers behind the system (:class:`~labkit.judge.pool.StepPool`) stay busy
and each costs one round trip per batch. Step outcomes are pure functions of
a node's state and the event, so the states explored, their order, the first
violation or goal and its trace are exactly those of one step at a time, on
any number of workers.
"""

from __future__ import annotations

import random
import sys
import time
from array import array
from typing import Any, Callable, Generator

from labkit.check.predicates import PredicateResult
from labkit.search.results import Outcome, SearchResult
from labkit.search.settings import SearchSettings
from labkit.search.state import Event, SearchState
from labkit.search.trace import Trace, minimize, reorder

__all__ = ["bfs", "random_search", "Progress"]

_VALID, _PRUNED, _TERMINAL = 0, 1, 2
CHUNK = 512  # frontier states whose successors are asked for in one batch
PROBES_AT_ONCE = 96  # random probes walked side by side


class Progress:
    """A live status line: explored states (or steps), depth, rate, elapsed time and the share of the
    budget used. ``enabled`` is False (none), True (the terminal's stderr) or ``"notebook"`` (a line
    under the running cell)."""

    def __init__(self, enabled: bool | str, label: str, budget: int | None = None) -> None:
        self.enabled = enabled
        self.label = label
        self.budget = budget
        self._bar: Any = None
        self._last = 0.0
        self._start = time.perf_counter()

    def update(self, done: int, depth: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.5:
            return
        self._last = now
        elapsed = now - self._start
        rate = done / elapsed if elapsed else 0.0
        share = f", {100 * done / self.budget:.0f}% of the budget" if self.budget else ""
        text = f"{self.label}: {done:,} explored, depth {depth}, {rate:,.0f}/s, {elapsed:.0f} s{share}"
        if self._bar is None:
            if self.enabled == "notebook":
                from tqdm.notebook import tqdm
            else:
                from tqdm import tqdm
            # On a terminal, the terminal's own stream: tests capture sys.stderr, and progress is not output.
            where = {} if self.enabled == "notebook" else {"file": sys.__stderr__}
            self._bar = tqdm(total=None, bar_format="{desc}", leave=False, **where)
        self._bar.set_description_str(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Checker:
    """Classifies states against a settings' predicates (in DSLabs's order).

    Verdicts are cached: a predicate over node state gives the same verdict on
    every state whose nodes are equal, and one that reads only some kinds of
    nodes (``Predicate.reads``) on every state whose nodes of those kinds are equal."""

    _CACHE_LIMIT = 500_000

    def __init__(self, settings: SearchSettings, start_depth: int) -> None:
        self.invariants = list(settings.invariants)
        self.goals = list(settings.goals)
        self.prunes = list(settings.prunes)
        self.max_depth = None if settings.max_depth is None else start_depth + settings.max_depth
        self.by_nodes = not any(p.reads_network for p in self.invariants + self.goals + self.prunes)
        self.verdicts: dict[Any, tuple[int, Outcome | None, PredicateResult | None]] = {}
        self._held: dict[int, dict[Any, bool | None]] = {}  # predicate -> its key -> what check() said
        self._keys: dict[int, Callable[[SearchState], Any]] = {}

    def classify(self, state: SearchState) -> tuple[int, Outcome | None, PredicateResult | None]:
        if state.failure is not None:
            return _TERMINAL, Outcome.EXCEPTION_THROWN, None
        key = state.nodes_part.fps if self.by_nodes else state.fp
        verdict = self.verdicts.get(key)
        if verdict is None:
            if len(self.verdicts) >= self._CACHE_LIMIT:
                self.verdicts.clear()
            verdict = self._judge(state)
            self.verdicts[key] = verdict
        if verdict[0] == _VALID and self.max_depth is not None and state.depth >= self.max_depth:
            return _PRUNED, None, None
        return verdict

    def _judge(self, state: SearchState) -> tuple[int, Outcome | None, PredicateResult | None]:
        # As in DSLabs: a predicate that raises violates an invariant, prunes
        # the state as a prune, and is ignored as a goal.
        for p in self.invariants:
            if self._check(p, state) is not True:
                return _TERMINAL, Outcome.INVARIANT_VIOLATED, p.evaluate(state)
        for p in self.goals:
            if self._check(p, state) is True:
                return _TERMINAL, Outcome.GOAL_FOUND, p.evaluate(state)
        for p in self.prunes:
            if self._check(p, state) is not False:
                return _PRUNED, None, None
        return _VALID, None, None

    def _check(self, p: Any, state: SearchState) -> bool | None:
        """``p.check(state)``, cached by what ``p`` reads."""
        held = self._held.get(id(p))
        if held is None:
            held = self._held[id(p)] = {}
            self._keys[id(p)] = _key_of(p, state)
        key = self._keys[id(p)](state)
        if key in held:
            return held[key]
        if len(held) >= self._CACHE_LIMIT:
            held.clear()
        found = held[key] = p.check(state)
        return found


def _key_of(p: Any, state: SearchState) -> Callable[[SearchState], Any]:
    """What ``p``'s verdict depends on in the states of ``state``'s system."""
    if p.reads_network:
        return lambda s: s.fp
    if p.reads is None:
        return lambda s: s.nodes_part.fps
    system = state.system
    by_kind = {"servers": system.server_indices, "workers": system.worker_indices, "clients": system.client_indices}
    indices = sorted({i for kind in p.reads for i in by_kind[kind]})
    return lambda s: tuple([s.nodes_part.fps[i] for i in indices])


def _determinism_period(settings: SearchSettings) -> int:
    share = settings.check_determinism
    return 0 if share <= 0 else max(1, round(1 / share))


def _finish(result: SearchResult, start: SearchState, events: list[Event], meta: dict[str, Any],
            shorten: Callable[[list[Event]], list[Event]] | None = None) -> SearchResult:
    """Attach the final state's full path and, for failures, a readable trace."""
    state = result.state
    if state is None:
        return result
    state.origin = start.path() + tuple(events)
    if result.outcome in (Outcome.INVARIANT_VIOLATED, Outcome.EXCEPTION_THROWN):
        root = start.system.root or start
        path = list(state.origin)
        if shorten is not None:
            path = shorten(path)
        path = reorder(root, path)
        result.trace = Trace(root, path, result.violation, state.failure, dict(meta))
        result.failure = state.failure
    return result


def _deadline(settings: SearchSettings, clock: float) -> float:
    """The developer's optional real-time guard (``max_time``); grading budgets count work instead."""
    return clock + settings.max_time if settings.max_time else float("inf")


def bfs(start: SearchState, settings: SearchSettings, *, progress: bool | str = False,
        meta: dict[str, Any] | None = None) -> SearchResult:
    """Breadth-first search from ``start`` under ``settings``.

    Visited states are kept as 64-bit fingerprints with a parent index and the
    event's position; paths are rebuilt by replay, as TLC and Stateright do.
    """
    clock = time.perf_counter()
    system = start.system
    system.check_every = _determinism_period(settings)
    system.pool.use(settings.workers)
    can = settings.connectivity(system.addresses)
    timers_on = settings.timer_mask(system.addresses)
    checker = _Checker(settings, start.depth)
    budget = settings.max_states
    deadline = _deadline(settings, clock)
    bar = Progress(progress, "BFS", settings.max_states)
    result = SearchResult(Outcome.SPACE_EXHAUSTED, "bfs", budget=budget)

    parents = array("i", [-1])  # each visited state's parent record and event position
    positions = array("I", [0])
    visited = {start.fp}
    kind, outcome, detail = checker.classify(start)
    if kind == _TERMINAL:
        result.outcome, result.state, result.states = outcome, start, 1  # type: ignore[assignment]
        result.violation = detail if outcome is Outcome.INVARIANT_VIOLATED else None
        result.goal = detail if outcome is Outcome.GOAL_FOUND else None
        result.seconds = time.perf_counter() - clock
        return _finish(result, start, [], meta or {})
    frontier = _Level(start, start.depth)
    if kind != _PRUNED:
        frontier.add(start, 0)
    try:
        while frontier:
            next_frontier = _Level(start, frontier.depth + 1)
            for first in range(0, len(frontier), CHUNK):
                chunk = []
                for k in range(first, min(first + CHUNK, len(frontier))):
                    state = frontier.state(k)
                    chunk.append((state, frontier.records[k], state.events(can, timers_on)))
                system.prepare(state.step_inputs(event) for state, _, events in chunk for event in events)
                for state, index, events in chunk:
                    for position, event in enumerate(events):
                        fp, parts = state.step_fp(event)
                        if fp in visited:
                            continue
                        visited.add(fp)
                        child = state.build(parts)
                        parents.append(index)
                        positions.append(position)
                        result.depth = child.depth - start.depth
                        kind, outcome, detail = checker.classify(child)
                        if kind == _TERMINAL:
                            result.outcome, result.state = outcome, child  # type: ignore[assignment]
                            result.violation = detail if outcome is Outcome.INVARIANT_VIOLATED else None
                            result.goal = detail if outcome is Outcome.GOAL_FOUND else None
                            raise _Stop(len(parents) - 1)
                        if kind == _VALID:
                            next_frontier.add(child, len(parents) - 1)
                        if budget is not None and len(visited) >= budget:
                            result.outcome = Outcome.BUDGET_EXHAUSTED
                            raise _Stop(None)
                        if time.perf_counter() > deadline:
                            result.outcome = Outcome.TIME_EXHAUSTED
                            raise _Stop(None)
                bar.update(len(visited), result.depth)
            frontier = next_frontier
    except _Stop as stop:
        if stop.index is not None:
            events = _path(start, stop.index, parents, positions, can, timers_on)
            result.states = len(visited)
            result.seconds = time.perf_counter() - clock
            bar.close()
            return _finish(result, start, events, meta or {})
    finally:
        bar.close()
    result.states = len(visited)
    result.seconds = time.perf_counter() - clock
    return result


class _Level:
    """The states of one BFS level, kept as their parts in parallel lists (a small fraction of
    the states' own size), with each one's record (its position in parents and positions)."""

    def __init__(self, start: SearchState, depth: int) -> None:
        self.start = start
        self.depth = depth
        self.nodes: list[Any] = []
        self.nets: list[Any] = []
        self.timers: list[Any] = []
        self.fps: list[int] = []
        self.records = array("i")

    def add(self, state: SearchState, record: int) -> None:
        self.nodes.append(state.nodes_part)
        self.nets.append(state.net)
        self.timers.append(state.timers_part)
        self.fps.append(state.fp)
        self.records.append(record)

    def state(self, k: int) -> SearchState:
        return self.start.with_parts((self.nodes[k], self.nets[k], self.timers[k], self.fps[k]), self.depth)

    def __len__(self) -> int:
        return len(self.fps)


class _Stop(Exception):
    def __init__(self, index: int | None) -> None:
        self.index = index


def _path(start: SearchState, index: int, parents: Any, positions: Any, can: Any, timers_on: Any) -> list[Event]:
    """The events from ``start`` to record ``index``, rebuilt by replaying event positions."""
    chain = []
    while index > 0:
        chain.append(positions[index])
        index = parents[index]
    state = start
    events: list[Event] = []
    for position in reversed(chain):
        internal = state.events(can, timers_on)[position]
        events.append(state.event_value(internal))
        state = state.step(internal)
    return events


class _Prober:
    """Walks numbered random probes from one start state under one settings."""

    def __init__(self, start: SearchState, settings: SearchSettings, seed: int) -> None:
        self.start = start
        self.seed = seed
        system = start.system
        system.check_every = _determinism_period(settings)
        system.pool.use(settings.workers)
        self.can = settings.connectivity(system.addresses)
        self.timers_on = settings.timer_mask(system.addresses)
        self.checker = _Checker(settings, start.depth)

    def walk(self, number: int, progress: dict[int, int]) -> Generator[tuple, None, tuple[int, int, tuple | None]]:
        """Probe ``number``, step by step: it yields the inputs of each step whose outcome is
        not known yet (the driver has them computed) and returns ``(steps, depth, terminal)``,
        where ``terminal`` is ``(outcome, detail, path)`` if it ended in a terminal state.
        ``progress[number]`` holds the steps taken so far."""
        rng = random.Random(f"{self.seed}:{number}")
        classify = self.checker.classify
        can, timers_on = self.can, self.timers_on
        cache = self.start.system.cache
        state = self.start
        walked: list[tuple[SearchState, tuple]] = []
        deliveries = state.message_events(can)  # kept up to date as the walk adds envelopes
        timers = state.timer_events(timers_on)  # recomputed when a step changes a timer queue
        while True:
            events = deliveries + timers if state.failure is None else []
            chosen = None
            while events:
                k = rng.randrange(len(events))
                event = events[k]
                inputs = state.step_inputs(event)
                key = (inputs[2], inputs[5], inputs[4])
                transition = cache.get(key)
                while transition is None:
                    yield inputs
                    transition = cache.get(key)
                child = state.build(state.step_fp(event, inputs, transition)[1])
                kind, outcome, detail = classify(child)
                if kind != _PRUNED:
                    chosen = child
                    break
                events[k] = events[-1]
                events.pop()
            if chosen is None:
                return len(walked), state.depth - self.start.depth, None
            walked.append((state, event))
            progress[number] = len(walked)
            if chosen.net is not state.net:
                deliveries = deliveries + chosen.message_events(can, len(state.net.envs))
            if chosen.timers_part is not state.timers_part:
                timers = chosen.timer_events(timers_on)
            state = chosen
            if kind == _TERMINAL:
                path = [s.event_value(e) for s, e in walked]
                return len(walked), state.depth - self.start.depth, (outcome, detail, path)


def random_search(start: SearchState, settings: SearchSettings, seed: int = 0, *, progress: bool | str = False,
                  meta: dict[str, Any] | None = None) -> SearchResult:
    """Random depth-first probes from ``start`` (DSLabs's "random search").

    Each probe walks from ``start`` taking a random enabled event whose
    successor is not pruned, until a dead end, the depth limit or a terminal
    state. Probe ``k`` draws from its own generator seeded by ``(seed, k)``.
    Probes are counted in order, each to its end, until one ends in a terminal
    state or the steps taken reach ``settings.max_steps``: many probes are
    walked side by side so their steps go to the workers in batches, and the
    result is that of walking them one after another. A violation found is
    minimized before it is reported.
    """
    clock = time.perf_counter()
    prober = _Prober(start, settings, seed)
    system = start.system
    budget = settings.max_steps
    deadline = _deadline(settings, clock)
    result = SearchResult(Outcome.BUDGET_EXHAUSTED, "random", budget=budget)
    kind, outcome, detail = prober.checker.classify(start)
    if kind == _TERMINAL:
        result.outcome, result.state = outcome, start  # type: ignore[assignment]
        result.violation = detail if outcome is Outcome.INVARIANT_VIOLATED else None
        result.goal = detail if outcome is Outcome.GOAL_FOUND else None
        return _finish(result, start, [], meta or {})
    if kind == _PRUNED:
        result.outcome = Outcome.SPACE_EXHAUSTED
        return result
    bar = Progress(progress, "random search", settings.max_steps)
    walking: dict[int, Generator] = {}
    needs: dict[int, tuple] = {}
    finished: dict[int, tuple] = {}
    taken: dict[int, int] = {}  # steps taken so far by each probe not counted yet
    started = 0
    try:
        while True:
            # Start probes while the earlier ones leave budget (a probe stops once it cannot be counted).
            room = _drop_unneeded(result, budget, started, walking, needs, finished, taken)
            while len(walking) < PROBES_AT_ONCE and room and started - result.probes < 4 * PROBES_AT_ONCE:
                walking[started] = prober.walk(started, taken)
                needs[started] = ()
                taken[started] = 0
                started += 1
            for number in list(walking):
                try:
                    needs[number] = walking[number].send(None)
                except StopIteration as end:
                    finished[number] = end.value
                    del walking[number], needs[number]
            while result.probes in finished:
                taken.pop(result.probes, None)
                path = _tally(result, *finished.pop(result.probes))
                if path is not None:
                    result.seconds = time.perf_counter() - clock
                    return _conclude(result, prober, path, meta)
                if result.steps == 0:  # no step is possible from the start: nothing to explore
                    result.outcome = Outcome.SPACE_EXHAUSTED
                    raise _Stop(None)
                if budget is not None and result.steps >= budget:
                    raise _Stop(None)
            if time.perf_counter() > deadline:
                result.outcome = Outcome.TIME_EXHAUSTED
                raise _Stop(None)
            system.prepare(needs.values())
            bar.update(result.steps, result.depth)
    except _Stop:
        pass
    finally:
        bar.close()
    result.seconds = time.perf_counter() - clock
    return result


def _drop_unneeded(result: SearchResult, budget: int | None, started: int, walking: dict[int, Generator],
                   needs: dict[int, tuple], finished: dict[int, tuple], taken: dict[int, int]) -> bool:
    """Stop walking the probes that can never be counted, and say whether a new probe could be.

    Probes are counted in order until the steps reach the budget; the steps a probe has taken
    so far are a lower bound on its final count, so once the counted steps and those of the
    earlier probes reach the budget, a later probe's steps are never counted."""
    if budget is None:
        return True
    total = result.steps
    for number in range(result.probes, started):
        if total >= budget:
            walking.pop(number, None)
            needs.pop(number, None)
            finished.pop(number, None)
            taken.pop(number, None)
        else:
            total += finished[number][0] if number in finished else taken.get(number, 0)
    return total < budget


def _tally(result: SearchResult, steps: int, depth: int, terminal: tuple | None) -> list[Event] | None:
    """Count one finished probe into ``result``; the path to its terminal state if it ended the search."""
    result.probes += 1
    result.steps += steps
    result.depth = max(result.depth, depth)
    if terminal is None:
        return None
    outcome, detail, path = terminal
    result.outcome = outcome
    result.violation = detail if outcome is Outcome.INVARIANT_VIOLATED else None
    result.goal = detail if outcome is Outcome.GOAL_FOUND else None
    result.notes.append(f"found by probe {result.probes - 1}")
    return path


def _conclude(result: SearchResult, prober: _Prober, path: list[Event], meta: dict[str, Any] | None) -> SearchResult:
    """Rebuild the terminal state from its path, then minimize and attach the trace."""
    start = prober.start
    state = start
    for event in path:
        state = state.apply(event)  # type: ignore[assignment]
    result.state = state
    shorten = _shortener(start, prober.checker, result.outcome) if result.outcome is not Outcome.GOAL_FOUND else None
    return _finish(result, start, path, meta or {}, shorten)


def _shortener(start: SearchState, checker: _Checker, outcome: Outcome | None) -> Callable[[list[Event]], list[Event]]:
    """Minimize a path (from the system's root) while the same kind of failure remains."""
    root = start.system.root or start
    invariants = checker.invariants

    def shorten(path: list[Event]) -> list[Event]:
        prefix = list(start.path())
        suffix = path[len(prefix):]
        base = root
        for event in prefix:
            nxt = base.apply(event)
            if nxt is None:
                return path
            base = nxt
        final = base
        for event in suffix:
            final = final.apply(event) or final
        failing_name = next((p.name for p in invariants if not p(final)), None)
        error_type = final.failure.error_type if final.failure is not None else None

        def fails(state: SearchState) -> bool:
            if outcome is Outcome.EXCEPTION_THROWN:
                return state.failure is not None and state.failure.error_type == error_type
            return any(p.name == failing_name and not p(state) for p in invariants)

        return prefix + minimize(base, suffix, fails)

    return shorten
