"""Pictures for the Paxos notebooks, drawn from real runs of a reference solution.

:func:`render` runs the instructor's reference solution (and a few small buggy
variants of it, made by text patches of the reference source) on short,
deterministic scenarios. It saves each run as a run log (``<name>.jsonl``),
which ``labkit.viz.plot_timeline`` draws without needing the solution's
classes, a PNG of its timeline, and for the garbage-collection scenarios the
number of log slots each server keeps over time (``<name>.sizes.csv``).

``labkit course release --reference solutions/paxos/paxos_server.py`` calls
:func:`render` before generating the student release, so the notebooks ship
with pictures of the current reference. The same render is repeatable: a
scenario's run depends only on its fixed seed.
"""

from __future__ import annotations

import ast
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from labkit.app import Append, KVStore, Put
from labkit.client import Workload
from labkit.labs.paxos.workloads import append_different_key_workload, put_append_get_workload
from labkit.node import client, server
from labkit.sim.settings import RunSettings
from labkit.sim.simulator import Simulation
from labkit.judge.nodes import RemoteSolution as Solution
from labkit.judge.session import Session
from labkit.testing.solution import SolutionError

__all__ = ["VARIANTS", "SCENARIOS", "render", "variant_source", "load_log_sizes", "plot_log_sizes"]

# ---- buggy variants of the reference ---------------------------------------------
# Each variant edits the reference's source by method, so it survives changes
# elsewhere in the file. An edit whose target is missing stops the render with
# a message: the reference changed and the variant must be updated.


def _method(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise SolutionError(f"the reference defines no method {name}; update VARIANTS in labkit/labs/paxos/pictures.py")


def _drop_resends(source: str) -> str:
    """on_HeartbeatTimer without its loops that send P2a again."""
    lines = source.splitlines(keepends=True)
    method = _method(ast.parse(source), "on_HeartbeatTimer")
    loops = [s for s in method.body if isinstance(s, ast.For) and "P2a" in ast.unparse(s)]
    if not loops:
        raise SolutionError("on_HeartbeatTimer has no loop resending P2a; update VARIANTS in labkit/labs/paxos/pictures.py")
    for loop in reversed(loops):
        del lines[loop.lineno - 1:loop.end_lineno]
    return "".join(lines)


def _replace_body(name: str, body: str) -> Callable[[str], str]:
    """Replace the body of method ``name`` with ``body`` (indented for a method)."""
    def edit(source: str) -> str:
        lines = source.splitlines(keepends=True)
        method = _method(ast.parse(source), name)
        first = method.body[0].lineno - 1
        lines[first:method.end_lineno] = [body]
        return "".join(lines)
    return edit


def _set_constant(name: str, value: str) -> Callable[[str], str]:
    def edit(source: str) -> str:
        text, count = re.subn(rf"^{name} = .*$", f"{name} = {value}", source, count=1, flags=re.MULTILINE)
        if not count:
            raise SolutionError(f"the reference has no constant {name}; update VARIANTS in labkit/labs/paxos/pictures.py")
        return text
    return edit


VARIANTS: dict[str, list[Callable[[str], str]]] = {
    # Phase 2 is sent once; a lost P2a is never sent again, so its slot stays
    # undecided and the client's retries are ignored as "already in flight".
    "forgets_lost_p2a": [_drop_resends],
    # A follower that does not wait for silent heartbeat checks: it starts
    # phase 1 at every check, so servers keep preempting one another.
    "impatient_follower": [
        _replace_body("on_HeartbeatCheckTimer",
                      "        self.set_timer(timer, HEARTBEAT_CHECK_MILLIS)\n"
                      "        if not self.active:\n"
                      "            self.promises = None\n"
                      "            self.start_election()\n"),
    ],
    # Garbage collection removed: slots are never cleared.
    "no_garbage_collection": [_replace_body("clear_through", "        return\n")],
    # Batching removed: every request gets a slot of its own at once.
    "no_batching": [_set_constant("BATCH_WINDOW", "10**9")],
}


def variant_source(reference_source: str, variant: str) -> str:
    """The reference source with ``variant``'s edits applied."""
    text = reference_source
    for edit in VARIANTS[variant]:
        text = edit(text)
    return text


# ---- scenarios ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A short run: ``build`` sets up and runs a simulation of ``solution``."""

    name: str
    variant: str | None
    build: Callable[[Solution], Simulation]
    sizes: bool = False  # also sample the kept log slots over time
    title: str = ""


def _servers(solution: Solution, n: int, settings: RunSettings | None = None, seed: int = 1) -> Simulation:
    sim = Simulation(seed, settings)
    addresses = [server(i) for i in range(1, n + 1)]
    for a in addresses:
        sim.add_server(solution.PaxosServer(a, list(addresses), KVStore()))
    return sim


def _add_workers(sim: Simulation, solution: Solution, count: int, workload: Callable[[], Workload]) -> None:
    addresses = [s.address for s in sim.servers]
    for i in range(1, count + 1):
        sim.add_worker(solution.PaxosClient(client(i), list(addresses)), workload())


def normal_case(solution: Solution) -> Simulation:
    """Three servers, one client, three commands on a reliable network."""
    sim = _servers(solution, 3)
    _add_workers(sim, solution, 1, put_append_get_workload)
    sim.run_until_done(2_000)
    sim.run_for(5)
    return sim


def lost_p2a(solution: Solution) -> Simulation:
    """The leader is cut off for 20 ms just as it sends phase 2: its P2a messages are lost."""
    sim = _servers(solution, 3)
    addresses = [s.address for s in sim.servers]
    _add_workers(sim, solution, 1, lambda: Workload.of([Put("a", "1"), Append("a", "2")]))
    sim.settings.partition([addresses[0], client(1)], addresses[1:])
    sim.run_for(20)
    sim.settings.reconnect()
    sim.run_until_done(400)
    sim.run_for(5)
    return sim


def leader_change(solution: Solution) -> Simulation:
    """The first leader is cut off after two commands; the others elect a new leader and go on."""
    sim = _servers(solution, 3)
    addresses = [s.address for s in sim.servers]
    _add_workers(sim, solution, 1, lambda: append_different_key_workload(4))
    sim.run_until(lambda s: len(s.workers[0].results) >= 2, 1_000)
    sim.settings.partition([addresses[0]], addresses[1:] + [client(1)])
    sim.run_until_done(2_000)
    sim.run_for(5)
    return sim


def dueling(solution: Solution) -> Simulation:
    """Five commands from one client on three servers, followers judged by their heartbeat checks."""
    sim = _servers(solution, 3)
    _add_workers(sim, solution, 1, lambda: append_different_key_workload(5))
    sim.run_until_done(1_500)
    sim.run_for(400)  # let the heartbeat checks run a while longer
    return sim


def lagging_server(solution: Solution) -> Simulation:
    """Server 3 is cut off during ten puts, then rejoins; everyone keeps talking for a while."""
    sim = _servers(solution, 3)
    addresses = [s.address for s in sim.servers]
    _add_workers(sim, solution, 1, lambda: Workload.of([Put(f"k{i}", "v") for i in range(10)]))
    sim.settings.partition(addresses[:2] + [client(1)], addresses[2:])
    sim.run_until_done(2_000)
    sim.run_for(50)
    sim.settings.reconnect()
    return sim


def many_clients(solution: Solution) -> Simulation:
    """Eight clients append at once to three servers."""
    sim = _servers(solution, 3)
    _add_workers(sim, solution, 8, lambda: append_different_key_workload(2))
    sim.run_until_done(3_000)
    sim.run_for(5)
    return sim


SCENARIOS: list[Scenario] = [
    Scenario("normal_case", None, normal_case, title="Three commands, reliable network (reference)"),
    Scenario("lost_p2a_recovered", None, lost_p2a, title="Leader cut off while sending P2a (reference resends it)"),
    Scenario("lost_p2a_stuck", "forgets_lost_p2a", lost_p2a,
             title="Leader cut off while sending P2a (variant that never resends: stuck)"),
    Scenario("leader_change", None, leader_change, title="First leader cut off after two commands (reference)"),
    Scenario("stable_leader", None, dueling, title="Heartbeats keep one leader (reference)"),
    Scenario("dueling_leaders", "impatient_follower", dueling,
             title="Followers that do not wait for two silent checks (variant)"),
    Scenario("gc_reference", None, lagging_server, sizes=True, title="A lagging server rejoins (reference)"),
    Scenario("gc_missing", "no_garbage_collection", lagging_server, sizes=True,
             title="A lagging server rejoins (variant without garbage collection)"),
    Scenario("batching", None, many_clients, title="Eight clients at once (reference, batching)"),
    Scenario("no_batching", "no_batching", many_clients, title="Eight clients at once (variant without batching)"),
]

SIZE_SAMPLE_MILLIS = 10
SIZE_SAMPLE_UNTIL = 250  # ms of virtual time after the lagging server rejoins


def _kept_slots(node: Any) -> int:
    return node.last_non_empty() - node.first_non_cleared() + 1


def render(reference: str | Path, out: str | Path) -> list[Path]:
    """Run every scenario with ``reference`` (or its variants) and save run logs,
    PNG timelines and log-size samples into ``out``. Returns the files written."""
    from labkit.labs.paxos.tests import LAB
    from labkit.viz.stats import sample_log_sizes
    from labkit.viz.timeline import plot_timeline

    reference = Path(reference)
    if not reference.is_file():
        raise SolutionError(f"there is no reference solution {reference}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = reference.read_text(encoding="utf-8")
    written: list[Path] = []
    sessions: dict[str | None, Session] = {}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            for scenario in SCENARIOS:
                if scenario.variant not in sessions:
                    path = reference
                    if scenario.variant is not None:
                        path = Path(scratch) / f"paxos_{scenario.variant}.py"
                        path.write_text(variant_source(source, scenario.variant), encoding="utf-8")
                    sessions[scenario.variant] = Session(solution=path, observers=LAB.observers, queries=LAB.queries)
                sim = scenario.build(sessions[scenario.variant].solution())
                if scenario.sizes:
                    samples = sample_log_sizes(sim, _kept_slots, every=SIZE_SAMPLE_MILLIS,
                                               until=sim.now + SIZE_SAMPLE_UNTIL)
                    csv = out / f"{scenario.name}.sizes.csv"
                    samples.to_csv(csv, index=False)
                    written.append(csv)
                log = out / f"{scenario.name}.jsonl"
                sim.log.save(log, {"scenario": scenario.name, "variant": scenario.variant or "reference",
                                   "title": scenario.title})
                written.append(log)
                png = out / f"{scenario.name}.png"
                plot_timeline(log, title=scenario.title).savefig(png, dpi=80)
                written.append(png)
        finally:
            for session in sessions.values():
                session.close()
    return written


def load_log_sizes(path: str | Path) -> Any:
    """The (time, node, size) samples saved by :func:`render` as a DataFrame."""
    import pandas as pd

    return pd.read_csv(path)


def plot_log_sizes(name: str, folder: str | Path = "pictures") -> Any:
    """Slots each server keeps over time in the saved scenario ``name`` (a Figure)."""
    from labkit.viz.stats import plot_log_sizes as draw

    folder = Path(folder)
    figure = draw(load_log_sizes(folder / f"{name}.sizes.csv"), folder / f"{name}.jsonl",
                  ylabel="log slots kept (last non-empty - first non-cleared + 1)")
    figure.axes[0].set_title(name.replace("_", " "))
    return figure
