"""The ping lab's public tests: reliable, lossy and partitioned networks."""

from __future__ import annotations

from typing import Any

from labkit.check.predicates import CLIENTS_DONE, RESULTS_OK
from labkit.client import NoResultYet, Workload
from labkit.labs.ping import Ping, Pong
from labkit.node import Address, client
from labkit.sim.settings import RunSettings
from labkit.testing.context import TestContext
from labkit.search.settings import SearchSettings
from labkit.search.state import SearchState
from labkit.testing.declare import RUN, SEARCH, UNRELIABLE, Lab

LAB = Lab(
    "ping",
    solution_module="ping_server",
    description="A client pings a server over an unreliable network and retries until it hears back.",
)

SERVER = Address("server")


def ping_workload(texts: list[str], repeat: int = 1, **options: Any) -> Workload:
    """Pings of ``texts`` (placeholders allowed), each expecting the same text back."""
    return Workload.from_strings(
        texts,
        texts,
        repeat=repeat,
        parse_command=Ping,
        parse_result=lambda text, command: Pong(text),
        **options,
    )


def setup(t: TestContext, clients: int, workload: Workload, settings: RunSettings | None = None) -> Any:
    sim = t.simulation(settings)
    sim.add_server(t.solution.PingServer(SERVER))
    for i in range(1, clients + 1):
        sim.add_worker(t.solution.PingClient(client(i), SERVER), workload)
    return sim


@LAB.test(1, "Client contract: send_command, has_result, get_result", 5)
def client_contract(t: TestContext) -> None:
    sim = t.simulation()
    sim.add_server(t.solution.PingServer(SERVER))
    c = client(1)
    sim.add_client(t.solution.PingClient(c, SERVER))
    sim.send_command(c, Ping("hello"))
    t.require(not sim.has_result(c), "has_result() was True right after send_command, before any reply arrived")
    try:
        early = sim.result(c)
    except NoResultYet:
        pass
    else:
        t.require(False, f"get_result() returned {early!r} before the reply arrived; it must raise NoResultYet")
    sim.run_until(lambda s: s.has_result(c), max_millis=1_000)
    t.require(sim.has_result(c), "no result within 1 s of virtual time on a reliable network")
    first, second = sim.result(c), sim.result(c)
    t.require(first == Pong("hello"), f"got {first!r} for Ping('hello'), expected Pong('hello')")
    t.require(first == second, f"get_result() returned {first!r} and then {second!r}: it must repeat the same result")


@LAB.test(2, "Single client, simple pings", 5)
def single_client(t: TestContext) -> None:
    sim = setup(t, 1, ping_workload(["hello", "world", "ping-%i"], repeat=2))
    sim.run_until_done(max_millis=5_000)
    t.check(sim, CLIENTS_DONE, RESULTS_OK)


@LAB.test(3, "Several clients at once", 5)
def several_clients(t: TestContext) -> None:
    sim = setup(t, 5, ping_workload(["%a-%i-%r4"], repeat=20))
    sim.run_until_done(max_millis=10_000)
    t.check(sim, CLIENTS_DONE, RESULTS_OK)


@LAB.test(4, "Lossy network with duplicates", 10, categories=(RUN, UNRELIABLE))
def lossy(t: TestContext) -> None:
    settings = RunSettings(delivery_rate=0.5, latency=(1, 20), duplication_rate=0.2)
    sim = setup(t, 3, ping_workload(["%a-%i"], repeat=20), settings)
    sim.run_until_done(max_millis=60_000)
    t.check(sim, CLIENTS_DONE, RESULTS_OK)


@LAB.test(5, "Client cut off, then reconnected", 10)
def partition_then_heal(t: TestContext) -> None:
    sim = setup(t, 2, ping_workload(["%a-%i"], repeat=5))
    sim.settings.partition([SERVER, client(2)], [client(1)])
    sim.run_for(500)
    cut_off, connected = sim.workers
    if cut_off.results:
        t.fail(f"client1 got {cut_off.results[0]!r} while cut off from the server")
    t.require(connected.done, f"client2 finished only {len(connected.results)} of 5 pings in 500 ms on its side")
    sim.settings.reconnect()
    sim.run_until_done(max_millis=10_000)
    t.check(sim, CLIENTS_DONE, RESULTS_OK)


def search_start(t: TestContext, pings_per_client: list[list[str]]) -> SearchState:
    return SearchState.initial(
        servers=[t.solution.PingServer(SERVER)],
        workers=[
            (t.solution.PingClient(client(i), SERVER), ping_workload(texts))
            for i, texts in enumerate(pings_per_client, 1)
        ],
    )


@LAB.test(6, "Search: every interleaving gives the right pongs", 10, categories=(SEARCH,))
def all_interleavings(t: TestContext) -> None:
    start = search_start(t, [["a", "b"], ["c"]])
    # Safety in every interleaving means little if no interleaving lets the clients finish.
    t.goal_state(start, SearchSettings(invariants=[RESULTS_OK], goals=[CLIENTS_DONE], max_states=20_000),
                 "every client gets all its pongs")
    t.bfs(start, SearchSettings(invariants=[RESULTS_OK], prunes=[CLIENTS_DONE], max_states=200_000))


@LAB.test(7, "Search: a lost request is sent again", 10, categories=(SEARCH,))
def lost_request(t: TestContext) -> None:
    start = search_start(t, [["a"]]).drop_pending_messages()
    t.goal_state(start, SearchSettings(invariants=[RESULTS_OK], goals=[CLIENTS_DONE], max_states=50_000),
                 "the client gets its pong although its first request was lost")
