"""Builders shared by the tests of labkit.viz: real runs of the ping and Paxos labs, and traces of planted bugs."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from labkit.app import Append, KVStore
from labkit.check.predicates import APPENDS_LINEARIZABLE, CLIENTS_DONE, RESULTS_OK
from labkit.client import Workload
from labkit.labs.paxos.predicates import LOGS_CONSISTENT
from labkit.labs.paxos.workloads import simple_workload
from labkit.labs.ping.tests import SERVER, ping_workload
from labkit.node import client, server
from labkit.search import SearchSettings, SearchState, Trace, bfs, random_search
from labkit.sim import RunSettings, Simulation
from labkit.testing.solution import load_solution

ROOT = Path(__file__).resolve().parent.parent
PING = ROOT / "solutions" / "ping" / "ping_server.py"
PAXOS = ROOT / "solutions" / "paxos" / "paxos_server.py"
ACCEPT_ANY_PONG = ("if self.ping is not None and message.pong.value == self.ping.value:", "if self.ping is not None:")
PHASE1_WITHOUT_QUORUM = ("len(self.promises) < self.majority", "len(self.promises) < 1")


def variant(folder: Path, source: Path, change: tuple[str, str] | None, name: str) -> Path:
    """A copy of a reference solution (with one planted bug if ``change``) under a module name of its own,
    so loading it does not replace the modules other tests imported."""
    text = source.read_text()
    if change is not None:
        assert change[0] in text, f"the reference solution no longer contains {change[0]!r}"
        text = text.replace(change[0], change[1])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(text)
    return path


@functools.lru_cache(maxsize=None)
def reference(name: str) -> Any:
    """The ping or Paxos reference solution, loaded once as ``viz_<name>_reference``."""
    source = {"ping": PING, "paxos": PAXOS}[name]
    return load_solution(variant(Path(tempfile.mkdtemp(prefix="labkit-viz-")), source, None, f"viz_{name}_reference"),
                         lab=name)


def ping_run(settings: RunSettings | None = None, partition: bool = True, seed: int = 3) -> Simulation:
    """Two ping clients; client1 is cut off for the first 100 ms if ``partition``."""
    sol = reference("ping")
    sim = Simulation(seed, settings)
    sim.add_server(sol.PingServer(SERVER))
    for i in (1, 2):
        sim.add_worker(sol.PingClient(client(i), SERVER), ping_workload(["%a-%i"], repeat=5))
    if partition:
        sim.settings.partition([SERVER, client(2)], [client(1)])
        sim.run_for(100)
        sim.settings.reconnect()
    sim.run_until_done(10_000)
    return sim


def paxos_run(n: int = 3, partition: bool = True) -> Simulation:
    """The Paxos reference solution with one client; server3 is cut off from 150 to 300 ms if ``partition``."""
    sol = reference("paxos")
    sim = Simulation(1)
    addresses = [server(i) for i in range(1, n + 1)]
    for a in addresses:
        sim.add_server(sol.PaxosServer(a, list(addresses), KVStore()))
    sim.add_worker(sol.PaxosClient(client(1), list(addresses)), simple_workload())
    if partition:
        sim.run_for(150)
        sim.settings.partition([*addresses[:-1], client(1)], [addresses[-1]])
        sim.run_for(150)
        sim.settings.reconnect()
    sim.run_until_done(5_000)
    sim.run_for(100)
    return sim


def ping_trace(folder: Path) -> Trace:
    """A breadth-first search of a ping client that accepts any pong (3 steps, ends in a duplicate delivery)."""
    path = variant(folder, PING, ACCEPT_ANY_PONG, "viz_ping_any_pong")
    sol = load_solution(path)
    start = SearchState.initial(servers=[sol.PingServer(SERVER)],
                                workers=[(sol.PingClient(client(1), SERVER), ping_workload(["a", "b"]))])
    result = bfs(start, SearchSettings(invariants=[RESULTS_OK], prunes=[CLIENTS_DONE], max_states=10_000))
    assert result.trace is not None
    result.trace.meta["solution"] = str(path)
    return result.trace


def paxos_start(sol: Any, n: int = 3) -> SearchState:
    addresses = [server(i) for i in range(1, n + 1)]
    return SearchState.initial(
        servers=[sol.PaxosServer(a, list(addresses), KVStore()) for a in addresses],
        workers=[(sol.PaxosClient(client(i), list(addresses)), Workload.of([Append("x", str(i))])) for i in (1, 2)],
    )


def paxos_trace(folder: Path) -> Trace:
    """A random search of Paxos whose phase 1 needs no quorum: two values chosen for slot 1."""
    path = variant(folder, PAXOS, PHASE1_WITHOUT_QUORUM, "viz_paxos_phase1_bug")
    start = paxos_start(load_solution(path))
    settings = SearchSettings(invariants=[LOGS_CONSISTENT, APPENDS_LINEARIZABLE], prunes=[CLIENTS_DONE],
                              max_steps=300_000, max_depth=60)
    result = random_search(start, settings, seed=1)
    assert result.trace is not None
    result.trace.meta["solution"] = str(path)
    return result.trace
