"""Visualization speed: drawing a 500-event timeline, and the stepper's answer to one deliver.

Targets: a timeline of 500 logged events in under 2 s (built and saved as PNG);
a deliver on a Paxos-sized state (5 servers, 2 clients, 40 steps in) in under
200 ms, including what the widget reads afterwards (choices and predicates).

Run: python benchmarks/viz.py
"""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

from labkit.app import Append, KVStore
from labkit.check.predicates import APPENDS_LINEARIZABLE, CLIENTS_DONE
from labkit.client import Workload
from labkit.labs.paxos.predicates import LOGS_CONSISTENT
from labkit.labs.paxos.workloads import simple_workload
from labkit.node import client, server
from labkit.search import SearchSettings, SearchState
from labkit.sim import Simulation
from labkit.testing.solution import load_solution
from labkit.viz.stepper import Stepper
from labkit.viz.stepper_widget import StepperWidget
from labkit.viz.timeline import plot_timeline

PAXOS = Path(__file__).resolve().parent.parent / "solutions" / "paxos" / "paxos_server.py"


def best_of(runs: int, action) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def timeline_benchmark(sol) -> None:
    sim = Simulation(1)
    addresses = [server(i) for i in (1, 2, 3)]
    for a in addresses:
        sim.add_server(sol.PaxosServer(a, list(addresses), KVStore()))
    sim.add_worker(sol.PaxosClient(client(1), list(addresses)), simple_workload())
    sim.run_until(lambda s: len(s.log) >= 500)
    log = sim.log
    draw = best_of(3, lambda: plot_timeline(log, fold=()))
    save = best_of(3, lambda: plot_timeline(log, fold=()).savefig(io.BytesIO(), format="png", dpi=100))
    print(f"timeline of {len(log)} events ({sum(e.kind == 'deliver' for e in log)} arrows): "
          f"built in {draw * 1000:.0f} ms, built and saved as PNG in {save * 1000:.0f} ms (target < 2000 ms)")


def stepper_benchmark(sol) -> None:
    addresses = [server(i) for i in range(1, 6)]
    start = SearchState.initial(
        servers=[sol.PaxosServer(a, list(addresses), KVStore()) for a in addresses],
        workers=[(sol.PaxosClient(client(i), list(addresses)), Workload.of([Append("x", str(k)) for k in range(5)]))
                 for i in (1, 2)],
    )
    stepper = Stepper(start, SearchSettings(invariants=[LOGS_CONSISTENT, APPENDS_LINEARIZABLE], prunes=[CLIENTS_DONE]),
                      ignore_restrictions=True)
    rng = random.Random(7)
    for _ in range(40):
        options = [c for c in stepper.choices() if c.allowed and not c.delivered]
        stepper.deliver(rng.choice(options))
    choice = next(c for c in stepper.choices() if c.allowed and not c.delivered)
    widget = StepperWidget(stepper)

    def logic() -> None:
        stepper.deliver(choice)
        stepper.choices()
        stepper.predicates()
        stepper.back()

    def with_widget() -> None:
        stepper.deliver(choice)
        widget.refresh()
        stepper.back()

    pending = len(stepper.choices())
    print(f"stepper deliver on a 5-server state ({pending} pending events): logic {best_of(5, logic) * 1000:.1f} ms, "
          f"with the widget redrawn {best_of(5, with_widget) * 1000:.1f} ms (target < 200 ms)")


def main() -> None:
    sol = load_solution(PAXOS)
    timeline_benchmark(sol)
    stepper_benchmark(sol)


if __name__ == "__main__":
    main()
