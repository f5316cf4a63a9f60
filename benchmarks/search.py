"""Model-checking speed and memory on the Paxos lab's search scenarios.

Runs the reference solution through:
* BFS like test 20's safety stage (3 servers, 1 client, from the first result),
* BFS like test 22's safety stage (3 servers, 2 clients, partition {s1, s3, c2}),
* random probes like tests 25 and 26 (3 and 5 servers, 2 clients),
each on one process and on all cores, and prints states (or steps) per second
of wall time, the speedup, and the bytes kept per visited state.

For scale (../shared/reference/dslabs-notes.md section 7): DSLabs explores
5-9.5 thousand states/s in BFS on one core (2.5 thousand on 5 servers) and
takes 62-79 thousand random-probe steps/s on one core.
Targets: 20,000 states/s BFS and 30,000 steps/s random on one process (3
servers), at least 1.7x that with 2 processes, at most 100 bytes per state.

Run: python benchmarks/search.py [--states N] [--steps N] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from array import array
from pathlib import Path
from typing import Any

from labkit.app import Append, AppendResult
from labkit.check.predicates import APPENDS_LINEARIZABLE, CLIENTS_DONE, NONE_DECIDED, RESULTS_OK
from labkit.client import Workload
from labkit.labs.paxos import tests as paxos_tests
from labkit.labs.paxos.predicates import LOGS_CONSISTENT, LOGS_CONSISTENT_ALL_SLOTS
from labkit.labs.paxos.workloads import put_get_workload
from labkit.node import client, server
from labkit.search import SearchSettings, SearchState, bfs, random_search
from labkit.testing.solution import load_solution

REFERENCE = Path(__file__).resolve().parents[1] / "solutions" / "paxos" / "paxos_server.py"


class _Context:
    def __init__(self, solution: Any) -> None:
        self.solution = solution


def first_result_state(ctx: _Context) -> SearchState:
    """Test 20's start: the state where the client got its first result in partition {s1, s2, c1}."""
    start = paxos_tests.search_system(ctx, 3, [put_get_workload()])
    settings = SearchSettings(invariants=[RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS], goals=[~NONE_DECIDED])
    settings.partition([server(1), server(2), client(1)])
    state = bfs(start, settings).state
    assert state is not None
    return state


def first_append_state(ctx: _Context) -> SearchState:
    """Test 22's start: client1's append returned in partition {s1, s2, c1}."""
    workloads = [Workload.of([Append("foo", "X")], [AppendResult("X")]),
                 Workload.of([Append("foo", "Y")], [AppendResult("XY")])]
    start = paxos_tests.search_system(ctx, 3, workloads)
    settings = SearchSettings(invariants=[RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS], goals=[~NONE_DECIDED])
    settings.partition([server(1), server(2), client(1)])
    state = bfs(start, settings).state
    assert state is not None
    return state


def bytes_per_state(states: int) -> float:
    """Bytes the BFS keeps per visited state: the fingerprint set plus parent and event records."""
    visited = set(range(2**62, 2**62 + states))  # 64-bit ints, as fingerprints are
    ints = sum(sys.getsizeof(x) for x in list(visited)[:1000]) / 1000
    records = array("q", [0]).itemsize + array("l", [0]).itemsize
    return (sys.getsizeof(visited) + ints * states) / states + records


def time_bfs(start: SearchState, settings: SearchSettings, workers: int) -> tuple[float, int]:
    settings.workers = workers
    began = time.perf_counter()
    result = bfs(start, settings)
    return time.perf_counter() - began, result.states


def time_random(start: SearchState, settings: SearchSettings, workers: int) -> tuple[float, int]:
    settings.workers = workers
    began = time.perf_counter()
    result = random_search(start, settings, seed=1)
    return time.perf_counter() - began, result.steps


def row(name: str, unit: str, one: tuple[float, int], many: tuple[float, int], workers: int, target: float) -> None:
    rate1 = one[1] / one[0]
    rate_n = many[1] / many[0]
    print(f"{name:<44} {one[1]:>9,} {unit:<6} 1 proc {rate1:>8,.0f}/s ({rate1 / target:4.2f}x target)  "
          f"{workers} procs {rate_n:>8,.0f}/s (speedup {rate_n / rate1:4.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=200_000, help="BFS budget per run")
    parser.add_argument("--steps", type=int, default=150_000, help="random-probe budget per run")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="worker processes for the parallel runs (default: the CPUs this process may use)")
    args = parser.parse_args()
    ctx = _Context(load_solution(REFERENCE))
    w = args.workers
    print(f"machine: {len(os.sched_getaffinity(0))} usable CPUs; comparing 1 process with {w}")

    # Every run starts from a freshly built state, so no run profits from the
    # step cache another run filled.
    def bfs_settings(partition: list | None = None) -> SearchSettings:
        settings = SearchSettings(invariants=[RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS], prunes=[CLIENTS_DONE],
                                  max_states=args.states)
        if partition:
            settings.partition(partition)
        return settings

    row("BFS, test 20 safety stage (3 servers)", "states",
        time_bfs(first_result_state(ctx), bfs_settings(), 1), time_bfs(first_result_state(ctx), bfs_settings(), w), w,
        20_000)
    group = [server(1), server(3), client(2)]
    row("BFS, test 22 safety stage (3 servers)", "states",
        time_bfs(first_append_state(ctx), bfs_settings(group), 1),
        time_bfs(first_append_state(ctx), bfs_settings(group), w), w, 20_000)

    for n, test in ((3, 25), (5, 26)):
        def fresh() -> SearchState:
            return paxos_tests.search_system(ctx, n, [paxos_tests.append("x"), paxos_tests.append("y")])

        settings = SearchSettings(invariants=[APPENDS_LINEARIZABLE, LOGS_CONSISTENT], prunes=[CLIENTS_DONE],
                                  max_depth=1000, max_steps=args.steps)
        row(f"random probes, test {test} ({n} servers)", "steps",
            time_random(fresh(), settings, 1), time_random(fresh(), settings, w), w, 30_000)

    print(f"bytes kept per visited state: {bytes_per_state(1_000_000):.0f} (target at most 100)")


if __name__ == "__main__":
    main()
