"""Breadth-first search on several processes that explores exactly the states of one.

The search runs level by level. Each worker process owns a share of the
frontier and expands it against its copy of the visited set; the coordinator
collects the fingerprints of the new successors, gives each to exactly one
worker (the first, in worker order, that found it), and tells every worker
the full set of new fingerprints. So each level adds the same set of states
as a one-process search would, and exhausted spaces have equal state counts.
A state stays in the process that found it, so every worker can rebuild the
path of its own states from its own records.

Workers are forked (Linux), so they inherit the student's code, the start
state and the predicates without pickling them.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from array import array
from typing import Any

from labkit.search.engine import _TERMINAL, _VALID, Progress, _Checker, _determinism_period, _finish, _path, bfs
from labkit.search.results import Outcome, SearchResult
from labkit.search.settings import SearchSettings
from labkit.node import LabkitError
from labkit.search.state import SearchError, SearchState

__all__ = ["parallel_bfs"]

_MIN_FRONTIER_PER_WORKER = 64
_payload: dict[str, Any] = {}


def _worker_main(w: int, conn: Any) -> None:
    """Expand this worker's share of each level on request."""
    p = _payload
    start: SearchState = p["start"]
    can, timers_on, checker = p["can"], p["timers_on"], p["checker"]
    visited: set[int] = p["visited"]
    parents: array = p["parents"]
    positions: array = p["positions"]
    frontier: list[tuple[SearchState, int]] = p["frontiers"][w]
    _payload.clear()
    try:
        while True:
            command = conn.recv()
            if command[0] == "expand":
                deadline = command[1]
                candidates: dict[int, tuple] = {}
                timed_out = False
                for n, (state, index) in enumerate(frontier):
                    if not n & 63 and time.perf_counter() > deadline:
                        timed_out = True
                        break
                    for position, event in enumerate(state.events(can, timers_on)):
                        fp, parts = state.step_fp(event)
                        if fp in visited or fp in candidates:
                            continue
                        candidates[fp] = (state, parts, index, position)
                conn.send((list(candidates), timed_out))
                keep, new_fps = conn.recv()
                visited.update(new_fps)
                next_frontier: list[tuple[SearchState, int]] = []
                terminal = None
                for fp in keep:
                    state, parts, index, position = candidates[fp]
                    child = state.build(parts)
                    parents.append(index)
                    positions.append(position)
                    record = len(parents) - 1
                    kind, outcome, detail = checker.classify(child)
                    if kind == _TERMINAL:
                        if terminal is None:
                            terminal = (record, outcome, detail, child.depth)
                    elif kind == _VALID:
                        next_frontier.append((child, record))
                frontier = next_frontier
                depth = frontier[0][0].depth if frontier else None
                conn.send((len(frontier), depth, terminal))
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
    except ValueError:  # no fork on this platform: one process explores the same states
        return bfs(start, _one_process(settings), progress=progress, meta=meta)
    clock = time.perf_counter()
    system = start.system
    system.check_every = _determinism_period(settings)
    can = settings.connectivity(system.addresses)
    timers_on = settings.timer_mask(system.addresses)
    checker = _Checker(settings, start.depth)
    budget = settings.max_states
    deadline = clock + settings.max_time if settings.max_time else float("inf")
    bar = Progress(progress, f"BFS on {workers} processes")
    result = SearchResult(Outcome.SPACE_EXHAUSTED, "bfs", budget=budget)

    # Grow the first levels in this process until every worker can get a fair share.
    parents = array("q", [-1])
    positions = array("l", [0])
    visited = {start.fp}
    kind, outcome, detail = checker.classify(start)
    if kind != _VALID:
        return bfs(start, _one_process(settings), progress=progress, meta=meta)
    frontier: list[tuple[SearchState, int]] = [(start, 0)]
    while frontier and len(frontier) < _MIN_FRONTIER_PER_WORKER * workers:
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
                kind, outcome, detail = checker.classify(child)
                stop = kind == _TERMINAL or (budget is not None and len(visited) >= budget)
                if stop:  # too small to be worth processes: finish in this process
                    return bfs(start, _one_process(settings), progress=progress, meta=meta)
                if kind == _VALID:
                    next_frontier.append((child, len(parents) - 1))
        frontier = next_frontier
    if not frontier:  # the whole space was smaller than one share per worker
        return bfs(start, _one_process(settings), progress=progress, meta=meta)

    depth = frontier[0][0].depth - start.depth
    _payload.update(
        start=start, can=can, timers_on=timers_on, checker=checker, visited=visited, parents=parents,
        positions=positions, frontiers=[frontier[w::workers] for w in range(workers)],
    )
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
        while True:
            for pipe in pipes:
                pipe.send(("expand", deadline))
            replies = [_receive(pipe) for pipe in pipes]
            owner: dict[int, int] = {}
            for w, (fps, _) in enumerate(replies):
                for fp in fps:
                    owner.setdefault(fp, w)
            new_fps = list(owner)
            if budget is not None and len(visited) + len(new_fps) > budget:
                new_fps = new_fps[: budget - len(visited)]
                result.outcome = Outcome.BUDGET_EXHAUSTED
            keep: list[list[int]] = [[] for _ in range(workers)]
            for fp in new_fps:
                keep[owner[fp]].append(fp)
            for w, pipe in enumerate(pipes):
                pipe.send((keep[w], new_fps))
            visited.update(new_fps)
            summaries = [_receive(pipe) for pipe in pipes]
            if any(timed_out for _, timed_out in replies):
                result.outcome = Outcome.TIME_EXHAUSTED
            terminal = next(((w, t) for w, (_, _, t) in enumerate(summaries) if t is not None), None)
            depths = [d for _, d, _ in summaries if d is not None]
            if depths:
                depth = max(depths) - start.depth
            bar.update(len(visited), depth)
            if terminal is not None:
                w, (record, outcome, detail, child_depth) = terminal
                pipes[w].send(("path", record))
                events = _receive(pipes[w])
                state = start
                for event in events:
                    state = state.apply(event)  # type: ignore[assignment]
                result.outcome, result.state = outcome, state
                result.violation = detail if outcome is Outcome.INVARIANT_VIOLATED else None
                result.goal = detail if outcome is Outcome.GOAL_FOUND else None
                result.depth = child_depth - start.depth
                result.states = len(visited)
                result.seconds = time.perf_counter() - clock
                return _finish(result, start, events, meta or {})
            if result.outcome is not Outcome.SPACE_EXHAUSTED or not any(size for size, _, _ in summaries):
                break
            if time.perf_counter() > deadline:
                result.outcome = Outcome.TIME_EXHAUSTED
                break
    finally:
        for pipe in pipes:
            try:
                pipe.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        bar.close()
    result.depth = depth
    result.states = len(visited)
    result.seconds = time.perf_counter() - clock
    return result


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
