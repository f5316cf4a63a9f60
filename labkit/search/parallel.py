"""Breadth-first search on several processes, with exactly the result of one process.

The search runs level by level. Every frontier state has a position in the
level, as a one-process search would order it. Each worker process expands
its share of the frontier against its copy of the visited set and reports
the new successors' fingerprints with their keys (parent position, event
position). The coordinator orders the new states by key, which is the order
in which one process would discover them, cuts the level at the budget, and
gives each state to the worker that produced it with the smallest key. So
the explored states, their count, the first violation or goal and its trace
are the same whatever the number of workers: a verdict never depends on the
machine. A state stays in the process that found it, so each worker rebuilds
the path of its own states from its own records.

Workers are forked (Linux), so they inherit the student's code, the start
state and the predicates without pickling them.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from array import array
from typing import Any

from labkit.node import LabkitError
from labkit.search.engine import (
    _TERMINAL,
    _VALID,
    Progress,
    _Checker,
    _conclude,
    _determinism_period,
    _finish,
    _path,
    _Prober,
    _tally,
    TimeUp,
    bfs,
    random_search,
)

from labkit.search.results import Outcome, SearchResult
from labkit.search.settings import SearchSettings
from labkit.search.state import SearchError, SearchState

__all__ = ["parallel_bfs", "parallel_random_search"]

_MIN_FRONTIER_PER_WORKER = 64
_CHUNK = 4096  # frontier positions expanded between two merges
_payload: dict[str, Any] = {}


def _worker_main(w: int, conn: Any) -> None:
    """Expand this worker's share of the frontier, a range of positions at a time."""
    p = _payload
    start: SearchState = p["start"]
    can, timers_on, checker = p["can"], p["timers_on"], p["checker"]
    visited: set[int] = p["visited"]
    parents: array = p["parents"]
    positions: array = p["positions"]
    frontier: list[tuple[SearchState, int, int]] = p["frontiers"][w]
    _payload.clear()
    next_frontier: list[tuple[SearchState, int, int]] = []
    cursor = 0
    try:
        while True:
            command = conn.recv()
            if command[0] == "expand":
                _, deadline, limit = command
                candidates: dict[int, tuple] = {}
                keys: list[tuple[int, int, int]] = []
                timed_out = False
                while cursor < len(frontier) and frontier[cursor][2] < limit:
                    if time.perf_counter() > deadline:
                        timed_out = True
                        break
                    state, record, gpos = frontier[cursor]
                    cursor += 1
                    for position, event in enumerate(state.events(can, timers_on)):
                        fp, parts = state.step_fp(event)
                        if fp in visited or fp in candidates:
                            continue
                        candidates[fp] = (state, parts, record, position)
                        keys.append((fp, gpos, position))
                conn.send((keys, timed_out))
                kept, new_fps = conn.recv()
                visited.update(new_fps)
                terminal = None
                for fp, gpos in kept:
                    if time.perf_counter() > deadline:
                        break  # the coordinator learns of the time-out from the expansion
                    state, parts, record, position = candidates[fp]
                    child = state.build(parts)
                    parents.append(record)
                    positions.append(position)
                    kind, outcome, detail = checker.classify(child)
                    if kind == _TERMINAL:
                        terminal = (gpos, len(parents) - 1, outcome, detail, child.depth)
                        break
                    if kind == _VALID:
                        next_frontier.append((child, len(parents) - 1, gpos))
                conn.send(terminal)
            elif command[0] == "level":
                frontier, next_frontier, cursor = next_frontier, [], 0
                conn.send(len(frontier))
            elif command[0] == "path":
                conn.send(_path(start, command[1], parents, positions, can, timers_on))
            elif command[0] == "stop":
                return
    except LabkitError as error:  # a problem in the student's code, such as a non-deterministic handler
        conn.send(("error", error))
    except BaseException:  # report, so the coordinator can say what went wrong
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def parallel_bfs(start: SearchState, settings: SearchSettings, *, progress: bool = False,
                 meta: dict[str, Any] | None = None) -> SearchResult:
    """Breadth-first search on ``settings.workers`` processes (see the module docstring)."""
    workers = settings.workers
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: one process gives the same result
        return bfs(start, _one_process(settings), progress=progress, meta=meta)
    clock = time.perf_counter()
    system = start.system
    system.check_every = _determinism_period(settings)
    can = settings.connectivity(system.addresses)
    timers_on = settings.timer_mask(system.addresses)
    checker = _Checker(settings, start.depth)
    budget = settings.max_states
    deadline = clock + settings.max_time if settings.max_time else float("inf")

    # Grow the first levels in this process until every worker can get a fair share.
    parents = array("q", [-1])
    positions = array("l", [0])
    visited = {start.fp}
    kind, _, _ = checker.classify(start)
    if kind != _VALID:
        return bfs(start, _one_process(settings), progress=progress, meta=meta)
    frontier: list[tuple[SearchState, int]] = [(start, 0)]
    while len(frontier) < _MIN_FRONTIER_PER_WORKER * workers:
        next_frontier = []
        for state, index in frontier:
            for position, event in enumerate(state.events(can, timers_on)):
                fp, parts = state.step_fp(event)
                if fp in visited:
                    continue
                visited.add(fp)
                child = state.build(parts)
                parents.append(index)
                positions.append(position)
                kind, _, _ = checker.classify(child)
                if kind == _TERMINAL or (budget is not None and len(visited) >= budget):
                    # Too small to be worth processes: one process gives the same result.
                    return bfs(start, _one_process(settings), progress=progress, meta=meta)
                if time.perf_counter() > deadline:
                    return SearchResult(Outcome.TIME_EXHAUSTED, "bfs", states=len(visited), budget=budget,
                                        depth=child.depth - start.depth, seconds=time.perf_counter() - clock)
                if kind == _VALID:
                    next_frontier.append((child, len(parents) - 1))
        frontier = next_frontier
        if not frontier:
            return bfs(start, _one_process(settings), progress=progress, meta=meta)

    bar = Progress(progress, f"BFS on {workers} processes")
    result = SearchResult(Outcome.SPACE_EXHAUSTED, "bfs", budget=budget)
    depth = frontier[0][0].depth - start.depth
    shares: list[list[tuple[SearchState, int, int]]] = [[] for _ in range(workers)]
    for gpos, (state, record) in enumerate(frontier):
        shares[gpos % workers].append((state, record, gpos))
    _payload.update(start=start, can=can, timers_on=timers_on, checker=checker, visited=visited,
                    parents=parents, positions=positions, frontiers=shares)
    pipes = []
    processes = []
    try:
        for w in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(target=_worker_main, args=(w, theirs), daemon=True)
            process.start()
            theirs.close()
            pipes.append(mine)
            processes.append(process)
        _payload.clear()
        level_size = len(frontier)
        del frontier, shares
        stop = False
        while level_size and not stop:
            new_count = 0
            for limit in range(_CHUNK, level_size + _CHUNK, _CHUNK):
                for pipe in pipes:
                    pipe.send(("expand", deadline, limit))
                replies = [_receive(pipe) for pipe in pipes]
                best: dict[int, tuple[int, int, int]] = {}
                for w, (keys, _) in enumerate(replies):
                    for fp, gpos, position in keys:
                        key = (gpos, position, w)
                        known = best.get(fp)
                        if known is None or key < known:
                            best[fp] = key
                order = sorted(best, key=best.__getitem__)
                if budget is not None and len(visited) + len(order) >= budget:
                    order = order[: budget - len(visited)]
                    result.outcome = Outcome.BUDGET_EXHAUSTED
                kept: list[list[tuple[int, int]]] = [[] for _ in range(workers)]
                for n, fp in enumerate(order):
                    kept[best[fp][2]].append((fp, new_count + n))
                for w, pipe in enumerate(pipes):
                    pipe.send((kept[w], order))
                before = len(visited) - new_count
                visited.update(order)
                terminals = [(t[0], w, t) for w, t in enumerate(_receive(pipe) for pipe in pipes) if t is not None]
                if order and not new_count:
                    depth += 1
                new_count += len(order)
                bar.update(len(visited), depth)
                if terminals:
                    _, w, (gpos, record, outcome, detail, child_depth) = min(terminals, key=lambda x: x[0])
                    pipes[w].send(("path", record))
                    events = _receive(pipes[w])
                    state = start
                    for event in events:
                        state = state.apply(event)  # type: ignore[assignment]
                    result.outcome, result.state = outcome, state
                    result.violation = detail if outcome is Outcome.INVARIANT_VIOLATED else None
                    result.goal = detail if outcome is Outcome.GOAL_FOUND else None
                    result.depth = child_depth - start.depth
                    result.states = before + gpos + 1
                    result.seconds = time.perf_counter() - clock
                    return _finish(result, start, events, meta or {})
                if any(timed_out for _, timed_out in replies) or time.perf_counter() > deadline:
                    result.outcome = Outcome.TIME_EXHAUSTED
                if result.outcome is not Outcome.SPACE_EXHAUSTED:
                    stop = True
                    break
            for pipe in pipes:
                pipe.send(("level",))
            level_size = sum(_receive(pipe) for pipe in pipes)
    finally:
        _stop(pipes, processes)
        bar.close()
    result.depth = depth
    result.states = len(visited)
    result.seconds = time.perf_counter() - clock
    return result


def _stop(pipes: list[Any], processes: list[Any]) -> None:
    """Tell every worker to stop and wait for it (kill it if it does not)."""
    for pipe in pipes:
        try:
            pipe.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()


def _receive(pipe: Any) -> Any:
    try:
        message = pipe.recv()
    except EOFError:
        raise SearchError("a search worker process ended unexpectedly (out of memory?)") from None
    if isinstance(message, tuple) and message and message[0] == "error":
        if isinstance(message[1], BaseException):
            raise message[1]
        raise SearchError(f"a search worker process failed:\n{message[1]}")
    return message


def _one_process(settings: SearchSettings) -> SearchSettings:
    single = settings.copy()
    single.workers = 1
    return single


# --------------------------------------------------------------------------
# Random probes on several processes
# --------------------------------------------------------------------------


def _prober_main(w: int, workers: int, deadline: float, conn: Any) -> None:
    """Run probes w, w + workers, ... and report each one; stop when told."""
    prober: _Prober = _payload["prober"]
    _payload.clear()
    number = w
    try:
        while not conn.poll():
            steps, depth, terminal = prober.probe(number, deadline)
            conn.send((number, steps, depth, terminal))
            number += workers
    except TimeUp:
        conn.send(("time",))
    except LabkitError as error:
        conn.send(("error", error))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def parallel_random_search(start: SearchState, settings: SearchSettings, seed: int, *, progress: bool = False,
                           meta: dict[str, Any] | None = None) -> SearchResult:
    """Random probes on ``settings.workers`` processes with the result of one process.

    Workers take probe numbers in turn; the coordinator counts finished probes
    strictly in probe order, so the probes counted, the budget cut and the
    first terminal probe are those a single process would have.
    """
    workers = settings.workers
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:
        return random_search(start, _one_process(settings), seed, progress=progress, meta=meta)
    clock = time.perf_counter()
    prober = _Prober(start, settings, seed)
    kind, _, _ = prober.checker.classify(start)
    if kind != _VALID:
        return random_search(start, _one_process(settings), seed, progress=progress, meta=meta)
    budget = settings.max_steps
    deadline = clock + settings.max_time if settings.max_time else float("inf")
    result = SearchResult(Outcome.BUDGET_EXHAUSTED, "random", budget=budget)
    bar = Progress(progress, f"random search on {workers} processes")
    _payload.update(prober=prober)
    pipes, processes = [], []
    try:
        for w in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(target=_prober_main, args=(w, workers, deadline, theirs), daemon=True)
            process.start()
            theirs.close()
            pipes.append(mine)
            processes.append(process)
        _payload.clear()
        waiting: dict[int, tuple] = {}
        while budget is None or result.steps < budget:
            number = result.probes
            while number not in waiting:
                reply = _receive(pipes[number % workers])
                if reply == ("time",):
                    result.outcome = Outcome.TIME_EXHAUSTED
                    raise TimeUp()
                waiting[reply[0]] = reply[1:]
            path = _tally(result, *waiting.pop(number))
            if path is not None:
                result.seconds = time.perf_counter() - clock
                return _conclude(result, prober, path, meta)
            if result.steps == 0:
                result.outcome = Outcome.SPACE_EXHAUSTED
                break
            bar.update(result.steps, result.depth)
    except TimeUp:
        pass
    finally:
        _stop(pipes, processes)
        bar.close()
    result.seconds = time.perf_counter() - clock
    return result
