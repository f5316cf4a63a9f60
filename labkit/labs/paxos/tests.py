"""The Paxos lab's public tests: DSLabs's 27 scenarios, split into the parts students build.

Numbers follow DSLabs's lab 3 so the scenarios can be compared one to one.
Part 1 (Multi-Paxos) holds the tests that need only a correct, live
replicated log; part 2 (stable leaders) the efficiency and latency tests;
part 3 (garbage collection) the memory test; part 4 (batching) throughput.
Run tests use virtual time; search budgets are counted in states or steps.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from labkit.app import Append, AppendResult, Get, GetResult, KeyNotFound, KVStore, Put, PutOk, describe
from labkit.check.predicates import (
    ALL_RESULTS_SAME,
    APPENDS_LINEARIZABLE,
    CLIENTS_DONE,
    NONE_DECIDED,
    RESULTS_OK,
    Predicate,
)
from labkit.client import NoResultYet, Workload
from labkit.labs.paxos import PaxosLogSlotStatus
from labkit.labs.paxos.observe import QUERIES
from labkit.labs.paxos.predicates import (
    LOGS_CONSISTENT,
    LOGS_CONSISTENT_ALL_SLOTS,
    MARKERS_VALID,
    chosen_anywhere,
    has_command,
    has_status,
    held_by,
    holders,
    slot_valid,
)
from labkit.labs.paxos.workloads import (
    append_different_key_workload,
    append_same_key_workload,
    different_keys_infinite_workload,
    put_append_get_workload,
    put_get_workload,
    put_workload,
    simple_workload,
)
from labkit.node import Address, client, server
from labkit.search.settings import SearchSettings
from labkit.search.state import SearchState
from labkit.sim.settings import RunSettings
from labkit.sim.simulator import Simulation
from labkit.testing.context import TestContext
from labkit.testing.declare import RUN, SEARCH, UNRELIABLE, Lab

LAB = Lab(
    "paxos",
    solution_module="paxos_server",
    description="Multi-instance Paxos with stable leaders and garbage collection.",
    parts={1: "Multi-Paxos", 2: "Stable leaders", 3: "Garbage collection", 4: "Batching and throughput"},
    queries=QUERIES,
    observer="labkit.labs.paxos.observe:observe_server",
)

UNRELIABLE_RATE = 0.8
MAX_MESSAGES_PER_COMMAND_PER_SERVER = 15  # DSLabs: 75 per command for 5 servers
EMPTY = PaxosLogSlotStatus.EMPTY
CHOSEN = PaxosLogSlotStatus.CHOSEN
CLEARED = PaxosLogSlotStatus.CLEARED
ACCEPTED = PaxosLogSlotStatus.ACCEPTED


# --------------------------------------------------------------------------
# Building systems
# --------------------------------------------------------------------------


def servers(n: int) -> list[Address]:
    return [server(i) for i in range(1, n + 1)]


def run_system(t: TestContext, n: int, settings: RunSettings | None = None) -> tuple[Simulation, list[Address]]:
    """A simulation with ``n`` Paxos servers."""
    sim = t.simulation(settings)
    addresses = servers(n)
    for a in addresses:
        sim.add_server(t.solution.PaxosServer(a, list(addresses), KVStore()))
    return sim, addresses


def add_workers(t: TestContext, sim: Simulation, addresses: list[Address], first: int, count: int,
                workload: Workload) -> None:
    for i in range(first, first + count):
        sim.add_worker(t.solution.PaxosClient(client(i), list(addresses)), workload)


def search_system(t: TestContext, n: int, workloads: list[Workload]) -> SearchState:
    addresses = servers(n)
    return SearchState.initial(
        servers=[t.solution.PaxosServer(a, list(addresses), KVStore()) for a in addresses],
        workers=[(t.solution.PaxosClient(client(i), list(addresses)), w) for i, w in enumerate(workloads, 1)],
    )


def raw_result(t: TestContext, sim: Simulation, who: Address, command: Any, max_millis: int = 10_000) -> Any:
    """Send ``command`` from the raw client ``who`` and wait for its result."""
    sim.send_command(who, command)
    sim.run_until(lambda s: s.has_result(who), max_millis)
    if not sim.has_result(who):
        t.fail(f"{who} got no result for {describe(command)}{_when(t, who)} within {max_millis} ms of virtual time")
    return sim.result(who)


def _when(t: TestContext, who: Address) -> str:
    """When ``who``'s latest command was sent and answered, for the failure picture."""
    record = t.simulations[-1].last_operation(who) if t.simulations else None
    return record.when() if record is not None else ""


def expect(t: TestContext, got: Any, wanted: Any, command: Any, who: Address) -> None:
    t.require(got == wanted, lambda: f"{who} got {describe(got)} for {describe(command)}, expected {describe(wanted)}"
                                     f"{_when(t, who)}")


def run_until_done(t: TestContext, sim: Simulation, max_millis: int = 30_000) -> None:
    sim.run_until_done(max_millis)
    t.check(sim, CLIENTS_DONE)


def nodes_size(sim: Simulation) -> int:
    """Characters of encoded state the servers and clients keep (for a client worker, its client only)."""
    return sim.state_size()


def repartition(sim: Simulation, addresses: list[Address], clients: list[Address], rng: random.Random) -> None:
    """Cut the network so that all clients and a random majority of servers are together."""
    majority = rng.sample(addresses, len(addresses) // 2 + 1)
    sim.settings.partition(sorted(majority) + clients)


def client_addresses(sim: Simulation) -> list[Address]:
    return [w.address for w in sim.workers]


# --------------------------------------------------------------------------
# Part 1: Multi-Paxos
# --------------------------------------------------------------------------


@LAB.test(1, "Client contract: send_command returns at once, get_result repeats", 5, part=1)
def client_contract(t: TestContext) -> None:
    sim, addresses = run_system(t, 3)
    c = client(1)
    sim.add_client(t.solution.PaxosClient(c, list(addresses)))
    sim.send_command(c, Get("foo"))
    t.require(not sim.has_result(c), "has_result() was True right after send_command(), before any server answered")
    try:
        early = sim.result(c)
    except NoResultYet:
        pass
    except Exception as error:  # any clear error is acceptable, but say which
        t.note(f"get_result() before the reply raised {type(error).__name__}: {error}")
    else:
        t.fail(f"get_result() returned {early!r} before any reply arrived; raise NoResultYet instead")
    sim.run_until(lambda s: s.has_result(c), 5_000)
    t.require(sim.has_result(c), "no result for GET foo within 5 s of virtual time on a reliable network")
    first, second = sim.result(c), sim.result(c)
    expect(t, first, KeyNotFound(), Get("foo"), c)
    t.require(first == second, f"get_result() returned {first!r} then {second!r}: it must repeat the same result")


def _basic(t: TestContext, settings: RunSettings | None) -> None:
    sim, addresses = run_system(t, 3, settings)
    t.check(sim, MARKERS_VALID)
    for s in sim.servers:
        nc, ne = s.first_non_cleared(), s.last_non_empty()
        t.require((nc, ne) == (1, 0), f"{s.address} starts with first_non_cleared() = {nc} and last_non_empty() = {ne}; expected 1 and 0")
    slots = [slot_valid(i) for i in range(1, 101)]
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS, *slots)
    add_workers(t, sim, addresses, 1, 1, simple_workload())
    run_until_done(t, sim)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS, *slots)
    full = [s.address for s in sim.servers if s.last_non_empty() >= 14]
    t.require(len(full) * 2 > len(addresses), f"only {len(full)} of {len(addresses)} servers have 14 non-empty slots; a majority must")
    for slot in range(1, 15):
        statuses = [s.status(slot) for s in sim.servers]
        t.require(
            any(st in (CHOSEN, CLEARED) for st in statuses),
            f"slot {slot} is neither CHOSEN nor CLEARED on any server after all 14 commands completed",
        )
    check_history(t, sim)


@LAB.test(2, "Single client, simple operations", 5, part=1)
def basic(t: TestContext) -> None:
    _basic(t, None)


@LAB.test(3, "Progress with no partition", 5, part=1)
def no_partition(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    c1, c2, c3 = client(1), client(2), client(3)
    for c in (c1, c2, c3):
        sim.add_client(t.solution.PaxosClient(c, list(addresses)))
    expect(t, raw_result(t, sim, c1, Put("foo", "bar")), PutOk(), Put("foo", "bar"), c1)
    expect(t, raw_result(t, sim, c2, Put("foo", "baz")), PutOk(), Put("foo", "baz"), c2)
    expect(t, raw_result(t, sim, c3, Get("foo")), GetResult("baz"), Get("foo"), c3)
    check_history(t, sim)


@LAB.test(4, "Progress in majority", 5, part=1)
def progress_in_majority(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    c1 = client(1)
    sim.add_client(t.solution.PaxosClient(c1, list(addresses)))
    sim.settings.partition([server(1), server(2), server(3), c1])
    expect(t, raw_result(t, sim, c1, Put("foo", "bar")), PutOk(), Put("foo", "bar"), c1)


@LAB.test(5, "No progress in minority", 5, part=1)
def no_progress_in_minority(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    c1 = client(1)
    sim.add_client(t.solution.PaxosClient(c1, list(addresses)))
    sim.settings.partition([server(1), server(2), c1])
    sim.send_command(c1, Put("foo", "bar"))
    sim.run_for(2_000)
    t.require(not sim.has_result(c1), lambda: f"{c1} got a result with only 2 of 5 servers reachable{_when(t, c1)}")


@LAB.test(6, "Progress after partition healed", 5, part=1)
def progress_after_heal(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    c1, c2 = client(1), client(2)
    for c in (c1, c2):
        sim.add_client(t.solution.PaxosClient(c, list(addresses)))
    sim.settings.partition([server(1), server(2), c1])
    sim.send_command(c1, Put("foo", "bar"))
    sim.run_for(2_000)
    t.require(not sim.has_result(c1), lambda: f"{c1} got a result with only 2 of 5 servers reachable{_when(t, c1)}")
    sim.settings.reconnect()
    sim.run_until(lambda s: s.has_result(c1), 10_000)
    t.require(sim.has_result(c1), f"{c1} got no result within 10 s after the partition healed")
    expect(t, sim.result(c1), PutOk(), Put("foo", "bar"), c1)
    expect(t, raw_result(t, sim, c2, Get("foo")), GetResult("bar"), Get("foo"), c2)
    check_history(t, sim)


@LAB.test(7, "One server switches partitions", 10, part=1)
def server_switches_partitions(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    c1, c2 = client(1), client(2)
    for c in (c1, c2):
        sim.add_client(t.solution.PaxosClient(c, list(addresses)))
    sim.settings.partition([server(1), server(2), server(3), c1])
    expect(t, raw_result(t, sim, c1, Put("foo", "bar")), PutOk(), Put("foo", "bar"), c1)
    sim.settings.partition([server(3), server(4), server(5), c2])
    expect(t, raw_result(t, sim, c2, Get("foo")), GetResult("bar"), Get("foo"), c2)
    check_history(t, sim)


def _synchronous_clients(t: TestContext, settings: RunSettings | None) -> None:
    sim, addresses = run_system(t, 3, settings)
    add_workers(t, sim, addresses, 1, 15, Workload())
    for _ in range(20):
        for w in sim.workers:
            w.add_commands(Workload.from_strings(["PUT:foo:%r8"], ["Ok"]))
        sim.resume_clients()
        run_until_done(t, sim)
        for w in sim.workers:
            w.add_commands(Workload.from_strings(["GET:foo"]))
        sim.resume_clients()
        run_until_done(t, sim)
    t.check(sim, RESULTS_OK, ALL_RESULTS_SAME, LOGS_CONSISTENT_ALL_SLOTS)
    check_history(t, sim)


@LAB.test(8, "Multiple clients, synchronous put/get", 10, part=1)
def synchronous_clients(t: TestContext) -> None:
    _synchronous_clients(t, None)


def _concurrent_appends(t: TestContext, settings: RunSettings | None) -> None:
    sim, addresses = run_system(t, 3, settings)
    add_workers(t, sim, addresses, 1, 25, append_same_key_workload(5))
    run_until_done(t, sim)
    t.check(sim, CLIENTS_DONE, APPENDS_LINEARIZABLE, LOGS_CONSISTENT_ALL_SLOTS)
    check_history(t, sim)


@LAB.test(9, "Multiple clients, concurrent appends", 10, part=1)
def concurrent_appends(t: TestContext) -> None:
    _concurrent_appends(t, None)


@LAB.test(12, "Single client, simple operations", 10, part=1, categories=(RUN, UNRELIABLE))
def basic_unreliable(t: TestContext) -> None:
    _basic(t, RunSettings(delivery_rate=UNRELIABLE_RATE))


@LAB.test(13, "Two sequential clients", 10, part=1, categories=(RUN, UNRELIABLE))
def put_get_unreliable(t: TestContext) -> None:
    sim, addresses = run_system(t, 3, RunSettings(delivery_rate=UNRELIABLE_RATE))
    c1, c2 = client(1), client(2)
    for c in (c1, c2):
        sim.add_client(t.solution.PaxosClient(c, list(addresses)))
    expect(t, raw_result(t, sim, c1, Put("foo", "bar")), PutOk(), Put("foo", "bar"), c1)
    expect(t, raw_result(t, sim, c2, Get("foo")), GetResult("bar"), Get("foo"), c2)
    check_history(t, sim)


@LAB.test(14, "Multiple clients, synchronous put/get", 15, part=1, categories=(RUN, UNRELIABLE))
def synchronous_clients_unreliable(t: TestContext) -> None:
    _synchronous_clients(t, RunSettings(delivery_rate=UNRELIABLE_RATE))


@LAB.test(15, "Multiple clients, concurrent appends", 15, part=1, categories=(RUN, UNRELIABLE))
def concurrent_appends_unreliable(t: TestContext) -> None:
    _concurrent_appends(t, RunSettings(delivery_rate=UNRELIABLE_RATE))


# ---- search tests ----------------------------------------------------------


def append(value: str) -> Workload:
    return Workload.of([Append("foo", value)])


@LAB.test(20, "Single client, simple operations", 20, part=1, categories=(SEARCH,))
def basic_search(t: TestContext) -> None:
    start = search_system(t, 3, [put_get_workload()])
    settings = SearchSettings(invariants=[RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS], goals=[~NONE_DECIDED],
                              max_states=200_000)
    settings.partition([server(1), server(2), client(1)])
    first_result = t.goal_state(start, settings, "the first result returned")
    settings.reconnect().clear_goals().add_goal(CLIENTS_DONE)
    t.goal_state(first_result, settings, "all results returned")
    settings.clear_goals().add_prune(CLIENTS_DONE)
    settings.max_states = 210_000
    t.bfs(first_result, settings)
    settings.deliver_timers(False)
    settings.max_states = 160_000
    t.bfs(first_result, settings)


@LAB.test(21, "Single client, no progress in minority", 15, part=1, categories=(SEARCH,))
def no_progress_in_minority_search(t: TestContext) -> None:
    """Two of five servers, cut off with the client, must never decide anything.

    The first search ends at its budget, not by exploring every state, for every
    design that is live: a server of the minority that stops hearing a leader starts
    phase 1 with a higher ballot, and the search can make the other one time out
    while the first is still trying, which then tries a higher ballot, and so on
    without end. (A design that stopped trying would have a finite space here, but
    would never elect a leader again once the partition heals.) The second search,
    with timers off, explores every ordering of the messages already sent. Usually
    takes 5-10 s."""
    start = search_system(t, 5, [put_workload()])
    settings = SearchSettings(invariants=[NONE_DECIDED], max_states=100_000)
    settings.partition([server(1), server(2), client(1)])
    t.bfs(start, settings)
    settings.deliver_timers(False)
    t.bfs(start, settings)


@LAB.test(22, "Two clients, sequential appends visible", 30, part=1, categories=(SEARCH,), usual_seconds=20)
def two_clients_search(t: TestContext) -> None:
    workloads = [Workload.of([Append("foo", "X")], [AppendResult("X")]),
                 Workload.of([Append("foo", "Y")], [AppendResult("XY")])]
    start = search_system(t, 3, workloads)
    settings = SearchSettings(invariants=[RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS], goals=[~NONE_DECIDED],
                              max_states=300_000)
    settings.partition([server(1), server(2), client(1)])
    first_append = t.goal_state(start, settings, "client1's append returned")
    majorities = ([server(1), server(3), client(2)], [server(2), server(3), client(2)])
    for group in majorities:
        settings.partition(group).clear_goals().add_goal(CLIENTS_DONE)
        t.goal_state(first_append, settings, f"client2's append returned in partition {group}")
    settings.clear_goals().add_prune(CLIENTS_DONE)
    for group, budget in zip(majorities, (290_000, 220_000)):
        settings.partition(group)
        settings.max_states = budget
        t.bfs(first_append, settings)
    settings.deliver_timers(False)
    for group in majorities:
        settings.partition(group)
        settings.max_states = 95_000
        t.bfs(first_append, settings)


@LAB.test(23, "Two clients, five servers, multiple leader changes", 20, part=1, categories=(SEARCH,))
def quorum_checking_search(t: TestContext) -> None:
    s1, s2, s3, s4, s5 = servers(5)
    c1, c2 = client(1), client(2)
    x, y = Append("foo", "X"), Append("foo", "Y")
    start = search_system(t, 5, [Workload.of([x]), Workload.of([y])])

    def any_server(name: str, test: Callable[[Any], bool]) -> Predicate:
        return Predicate(name, lambda state: any(test(s) for s in state.servers), reads="servers")

    def base_settings() -> SearchSettings:
        settings = SearchSettings(invariants=[slot_valid(1)], max_states=150_000)
        settings.add_prune(any_server("some server has slot 2 non-empty", lambda s: s.status(2) is not EMPTY))
        settings.add_prune(any_server("some server has slot 1 cleared", lambda s: s.status(1) is CLEARED))
        return settings

    settings = base_settings()
    settings.add_prune(Predicate("server1 or server2 has slot 1 non-empty",
                                 lambda st: any(st.node(a).status(1) is not EMPTY for a in (s1, s2)), reads="servers"))
    settings.add_prune(has_command(s4, 1, y), has_command(s5, 1, x))
    # client1 talks only to server4, client2 only to server5.
    for c, s in ((c1, s4), (c2, s5)):
        settings.node_active(c, False).link_active(c, s, True).link_active(s, c, True)
    settings.node_active(s1, False).node_active(s5, False)
    for a in (s1, s5, c2):
        settings.deliver_timers(False, a)
    settings.add_goal(has_command(s4, 1, x))
    c1_at_s4 = t.goal_state(start, settings, "client1's append accepted at server4")
    settings.clear_goals().add_goal(has_command(s3, 1, x))
    c1_at_s3 = t.goal_state(c1_at_s4, settings, "client1's append accepted at server3")

    settings.node_active(s4, False).node_active(s3, False).node_active(s1, True).node_active(s5, True)
    settings.clear_timer_settings()
    for a in (s4, s3, c1):
        settings.deliver_timers(False, a)
    settings.clear_goals().add_goal(has_command(s5, 1, y))
    c2_at_s5 = t.goal_state(c1_at_s3, settings, "client2's append accepted at server5")
    settings.node_active(s3, True).deliver_timers(True, s3)
    settings.clear_goals().add_goal(has_command(s3, 1, y))
    c2_at_s3 = t.goal_state(c2_at_s5, settings, "client2's append accepted at server3")

    settings = base_settings()
    settings.add_prune(*(has_command(a, 1, y) for a in (s4, s2, s1)))
    for a in (s5, s3, c2):
        settings.node_active(a, False).deliver_timers(False, a)
    settings.link_active(s1, s2, False).link_active(s2, s1, False)
    settings.add_goal(has_command(s1, 1, x))
    c1_at_s1 = t.goal_state(c2_at_s3.drop_pending_messages(), settings, "client1's append accepted at server1")
    settings.clear_goals().add_goal(has_status(s4, 1, CHOSEN))
    t.goal_state(c1_at_s1, settings, "slot 1 chosen at server4")

    settings.link_active(s3, s4, True).clear_goals()
    settings.max_states = 80_000
    t.bfs(c1_at_s1.undrop_messages_from(s3), settings)


@LAB.test(24, "Handling of logs with holes", 0, part=1, categories=(SEARCH,))
def logs_with_holes_search(t: TestContext) -> None:
    workloads = [Workload.of([Append("foo", "x"), Append("foo", "z")]),
                 Workload.of([Append("foo", "y"), Append("foo", "w")])]
    start = search_system(t, 3, workloads)
    settings = SearchSettings(invariants=[APPENDS_LINEARIZABLE, LOGS_CONSISTENT_ALL_SLOTS], prunes=[CLIENTS_DONE],
                              max_states=100_000)
    hole = Predicate(
        "some server has slot 2 chosen while slot 1 is not",
        lambda st: any(s.status(2) is CHOSEN and s.status(1) in (ACCEPTED, EMPTY) for s in st.servers),
        reads="servers",
    )
    settings.add_goal(hole)
    result = t.bfs(start, settings)
    if result.state is None or result.goal is None:
        t.note("no state with a hole in the log was found; not every correct solution has one")
        return
    settings.clear_goals()
    settings.max_states = 200_000
    t.bfs(result.state.drop_pending_messages(), settings)


def _random_search(t: TestContext, n: int, steps: int) -> None:
    start = search_system(t, n, [append("x"), append("y")])
    settings = SearchSettings(invariants=[APPENDS_LINEARIZABLE, LOGS_CONSISTENT], prunes=[CLIENTS_DONE],
                              max_depth=1000, max_steps=steps)
    t.random_search(start, settings)


@LAB.test(25, "Three server random search", 20, part=1, categories=(SEARCH,), usual_seconds=80)
def three_server_random_search(t: TestContext) -> None:
    _random_search(t, 3, 1_600_000)


@LAB.test(26, "Five server random search", 20, part=1, categories=(SEARCH,), usual_seconds=140)
def five_server_random_search(t: TestContext) -> None:
    _random_search(t, 5, 1_200_000)


@LAB.test(27, "Paxos runs in singleton group", 0, part=1, categories=(RUN, SEARCH))
def singleton(t: TestContext) -> None:
    for settings in (None, RunSettings(delivery_rate=UNRELIABLE_RATE)):
        sim, addresses = run_system(t, 1, settings)
        add_workers(t, sim, addresses, 1, 10, append_same_key_workload(30))
        run_until_done(t, sim)
        t.check(sim, CLIENTS_DONE, APPENDS_LINEARIZABLE, LOGS_CONSISTENT_ALL_SLOTS)
        check_history(t, sim)
    start = search_system(t, 1, [append("x"), append("y")])
    t.random_search(start, SearchSettings(invariants=[APPENDS_LINEARIZABLE, LOGS_CONSISTENT], prunes=[CLIENTS_DONE],
                                          max_depth=1000, max_steps=100_000))
    start = search_system(t, 1, [put_append_get_workload()])
    settings = SearchSettings(invariants=[RESULTS_OK], goals=[CLIENTS_DONE], max_depth=6)
    done = t.goal_state(start, settings, "3 commands done within 6 steps")
    t.require(done.depth == 6, f"3 commands took {done.depth} steps; one server must execute and reply while "
                               "handling each request (6 steps: 3 requests and 3 replies), with no messages to itself")
    t.bfs(start, SearchSettings(invariants=[RESULTS_OK], prunes=[CLIENTS_DONE], max_states=100_000))


# ---- ballots: three in play, with accepts still in flight ------------------------


def proposed_alone(t: TestContext, start: SearchState, settings: SearchSettings, command: Any,
                   what: str) -> tuple[SearchState, Address]:
    """Search for a state where exactly one server holds ``command`` (its proposer: the accepts it
    sent are still in flight); returns the state and that server."""
    settings.clear_goals().clear_prunes().add_goal(held_by(command, 1)).add_prune(held_by(command, 2))
    found = t.goal_state(start, settings, what)
    (proposer,) = holders(found, command)
    return found, proposer


def only_timers_at(settings: SearchSettings, addresses: list[Address], on: list[Address]) -> None:
    for a in addresses:
        settings.deliver_timers(a in on, a)


def newest_value(t: TestContext, first_cut_off: Address) -> None:
    """The scenario of test 1.30, with ``first_cut_off`` the server cut off at the start."""
    x, y = Append("foo", "X"), Append("foo", "Y")
    three = servers(3)
    everyone = three + [client(1), client(2)]
    start = search_system(t, 3, [Workload.of([x]), Workload.of([y])])
    settings = SearchSettings(invariants=[LOGS_CONSISTENT_ALL_SLOTS], max_states=40_000)
    first = [a for a in three if a != first_cut_off]
    settings.partition(first + [client(1)])
    only_timers_at(settings, everyone, first)
    x_proposed, p = proposed_alone(t, start, settings, x, "one server holds client1's append, no other does")
    others = [a for a in three if a != p]
    settings.partition(others + [client(2)])
    only_timers_at(settings, everyone, others)
    settings.clear_goals().clear_prunes().add_goal(chosen_anywhere(y))
    y_chosen = t.goal_state(x_proposed, settings, f"client2's append chosen without {p}")
    unaware = [a for a in others if a not in holders(y_chosen, y, chosen=True)[:1]][0]
    settings.clear_goals()
    for group in ([unaware, p], three):
        settings.partition(group)
        only_timers_at(settings, everyone, group)
        t.bfs(y_chosen, settings)


@LAB.test(30, "Three servers, three ballots: a new leader re-proposes the newest value", 15, part=1,
          categories=(SEARCH,))
def newest_value_search(t: TestContext) -> None:
    """With server1 cut off, a leader P among server2 and server3 proposes X and is cut off before anyone
    accepts it; server1 and the remaining server choose Y under a higher ballot. Then (a) the server
    that does not know Y is chosen and P elect a third leader, which must re-propose Y (accepted under
    the highest ballot), not X; and (b) all three talk, with P's old messages still in flight and old
    answers (rejections, preemptions) delivered late. Usually takes 5-10 s."""
    newest_value(t, server(1))


@LAB.test(31, "Five servers, three ballots: an old accept arrives late", 15, part=1, categories=(SEARCH,))
def late_accept_search(t: TestContext) -> None:
    """Server P proposes X and is cut off before anyone accepts it. Three other servers elect a leader
    that proposes Y; Y is chosen by that leader, one of them and a fifth server T that was not part of
    the election. Then P, T and the third server talk again: P's accept of X must not replace Y at T (T
    accepted a higher ballot, which is a promise too), and a new leader must keep Y. Usually takes
    5-10 s."""
    x, y = Append("foo", "X"), Append("foo", "Y")
    s = servers(5)
    everyone = s + [client(1), client(2)]
    start = search_system(t, 5, [Workload.of([x]), Workload.of([y])])
    settings = SearchSettings(invariants=[LOGS_CONSISTENT_ALL_SLOTS], max_states=60_000)
    first = s[:3]
    settings.partition(first + [client(1)])
    only_timers_at(settings, everyone, first)
    x_proposed, p = proposed_alone(t, start, settings, x, "one server holds client1's append, no other does")
    late = min(a for a in first if a != p)  # T: hears nothing of the election, then accepts Y
    electors = [a for a in s if a not in (p, late)]
    settings.partition(electors + [client(2)])
    only_timers_at(settings, everyone, electors)
    y_proposed, leader = proposed_alone(t, x_proposed, settings, y, "a new leader holds client2's append, no other does")
    helper, away = [a for a in electors if a != leader][:2]
    settings.partition([leader, helper, late, client(2)])
    only_timers_at(settings, everyone, [leader])
    settings.clear_goals().clear_prunes().add_goal(chosen_anywhere(y))
    y_chosen = t.goal_state(y_proposed, settings, f"client2's append chosen by {leader}, {helper} and {late}")
    settings.partition([p, late, helper])
    only_timers_at(settings, everyone, [p, late, helper])
    settings.clear_goals()
    settings.max_states = 80_000
    t.bfs(y_chosen, settings)


# --------------------------------------------------------------------------
# Part 2: stable leaders
# --------------------------------------------------------------------------


@LAB.test(10, "Message count", 10, part=2)
def message_count(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    commands = 500
    add_workers(t, sim, addresses, 1, 1, append_same_key_workload(commands))
    run_until_done(t, sim, max_millis=120_000)
    per_command = sim.messages_to_servers() / commands
    allowed = MAX_MESSAGES_PER_COMMAND_PER_SERVER * len(addresses)
    t.note(f"{per_command:.1f} messages to servers per command ({allowed} allowed)")
    t.require(per_command <= allowed, f"Too many messages sent, {allowed} per command allowed, got {per_command:.1f}")
    check_history(t, sim)


@LAB.test(16, "Multiple clients, single partition and heal", 15, part=2)
def single_partition(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    add_workers(t, sim, addresses, 1, 5, different_keys_infinite_workload())
    sim.run_for(5_000)
    t.check(sim, RESULTS_OK)
    sim.settings.partition([server(1), server(2), server(3)] + client_addresses(sim))
    sim.run_for(1_000)
    t.check(sim, RESULTS_OK)
    sim.settings.reconnect()
    sim.run_for(5_000)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT)
    t.check_max_wait(sim, 3_000)
    check_history(t, sim)


def _constant_repartition(t: TestContext, settings: RunSettings | None) -> None:
    sim, addresses = run_system(t, 5, settings)
    add_workers(t, sim, addresses, 1, 5, different_keys_infinite_workload(10))
    rng = random.Random(t.seed)
    clients = client_addresses(sim)
    end = sim.now + 30_000
    while sim.now < end:
        for _ in range(2):
            sim.settings.reconnect()
            repartition(sim, addresses, clients, rng)
            sim.run_for(2_000)
        sim.settings.reconnect()
        sim.run_for(2_000)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT)
    t.check_max_wait(sim, 2_000)
    check_history(t, sim)


@LAB.test(17, "Constant repartitioning, check maximum wait time", 20, part=2, usual_seconds=20)
def constant_repartition(t: TestContext) -> None:
    _constant_repartition(t, None)


@LAB.test(18, "Constant repartitioning, check maximum wait time", 30, part=2, categories=(RUN, UNRELIABLE))
def constant_repartition_unreliable(t: TestContext) -> None:
    _constant_repartition(t, RunSettings(delivery_rate=UNRELIABLE_RATE))


@LAB.test(19, "Constant repartitioning, full throughput", 30, part=2, categories=(RUN, UNRELIABLE))
def repartition_full_throughput(t: TestContext) -> None:
    sim, addresses = run_system(t, 5, RunSettings(delivery_rate=UNRELIABLE_RATE))
    add_workers(t, sim, addresses, 1, 2, different_keys_infinite_workload())
    rng = random.Random(t.seed)
    clients = client_addresses(sim)
    end = sim.now + 50_000
    while sim.now < end:
        repartition(sim, addresses, clients, rng)
        sim.run_for(5_000)
        repartition(sim, addresses, clients, rng)
        sim.run_for(1_000)
        sim.settings.reconnect()
        sim.run_for(5_000)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT)
    check_history(t, sim)
    for address in clients:
        sim.remove_node(address)
    add_workers(t, sim, addresses, 3, 2, append_different_key_workload(10))
    sim.settings.reconnect()
    run_until_done(t, sim)
    t.check(sim, RESULTS_OK)


# --------------------------------------------------------------------------
# Part 3: garbage collection
# --------------------------------------------------------------------------


GC_LIMIT = 2 * 1024 * 1024  # bytes of node state allowed once old slots are garbage-collected


def fill_then_collect(t: TestContext, sim: Simulation, who: Address, value_chars: int) -> tuple[int, int]:
    """With the network as the caller set it, 20 PUTs of ``value_chars``-character values
    from the raw client ``who``; then reconnect, 20 small PUTs and 4 s of quiet. Fails
    unless the large values were held and the nodes' state ends under GC_LIMIT.
    Returns the state sizes after the large PUTs and at the end."""
    rng = random.Random(t.seed)
    for _ in range(2):
        for key in range(10):
            value = rng.randbytes(value_chars // 2).hex()
            shown = Put(str(key), f"<{value_chars:,} characters>")
            expect(t, raw_result(t, sim, who, Put(str(key), value)), PutOk(), shown, who)
    after_puts = nodes_size(sim)
    stored = 20 * value_chars
    t.require(after_puts > stored, f"the nodes hold only {after_puts:,} bytes after storing {stored:,} bytes of values")
    sim.settings.reconnect()
    for _ in range(2):
        for key in range(10):
            expect(t, raw_result(t, sim, who, Put(str(key), "foo")), PutOk(), Put(str(key), "foo"), who)
    sim.run_for(4_000)
    end = nodes_size(sim)
    t.require(end < GC_LIMIT, f"the nodes still use {end:,} bytes after all servers executed everything "
                              f"({GC_LIMIT:,} allowed): slots executed by every server must be garbage-collected")
    return after_puts, end


@LAB.test(11, "Old commands garbage collected", 15, part=3)
def clears_memory(t: TestContext) -> None:
    sim, addresses = run_system(t, 3)
    c1 = client(1)
    sim.add_client(t.solution.PaxosClient(c1, list(addresses)))
    sim.settings.partition([server(2), server(3), c1])
    start = nodes_size(sim)
    t.require(start < GC_LIMIT, f"the nodes use {start:,} bytes before any command; at most {GC_LIMIT:,} allowed")
    after_puts, end = fill_then_collect(t, sim, c1, 1_000_000)
    t.note(f"node state: {start:,} bytes at start, {after_puts:,} after the large puts, {end:,} at the end")


# --------------------------------------------------------------------------
# Part 4: batching and throughput
# --------------------------------------------------------------------------

BATCHING_COMMANDS_PER_SLOT = 2.0  # on average, with 40 clients waiting at once
BATCHING_CLIENTS = 40


def check_batching(t: TestContext, n: int, commands_each: int) -> None:
    """40 clients appending at once to ``n`` servers: on average at least two commands per log slot.

    Batching puts waiting requests into one slot, however decisions travel, so the
    test counts the slots the log used (``last_non_empty()``, which counts cleared
    slots too) against the commands the clients completed."""
    sim, addresses = run_system(t, n)
    add_workers(t, sim, addresses, 1, BATCHING_CLIENTS, append_same_key_workload(commands_each))
    run_until_done(t, sim, max_millis=60_000)
    t.check(sim, APPENDS_LINEARIZABLE, LOGS_CONSISTENT_ALL_SLOTS)
    commands = BATCHING_CLIENTS * commands_each
    slots = max(s.last_non_empty() for s in sim.servers)
    per_slot = commands / max(slots, 1)
    t.note(f"{commands} commands in {slots} log slots: {per_slot:.1f} per slot "
           f"(at least {BATCHING_COMMANDS_PER_SLOT:g} expected)")
    t.require(per_slot >= BATCHING_COMMANDS_PER_SLOT,
              f"{commands} commands from {BATCHING_CLIENTS} clients waiting at once on {n} servers used {slots} log "
              f"slots, {per_slot:.1f} commands per slot; at least {BATCHING_COMMANDS_PER_SLOT:g} are expected: while "
              "slots are being decided, let new requests wait and put them together into the next slot")
    check_history(t, sim)


@LAB.test(28, "Many clients: requests batched", 10, part=4)
def batching(t: TestContext) -> None:
    check_batching(t, 3, 10)


@LAB.test(29, "Efficiency report: messages per command by type", 0, part=4)
def efficiency_report(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    commands = 200
    add_workers(t, sim, addresses, 1, 1, append_same_key_workload(commands))
    run_until_done(t, sim, max_millis=60_000)
    n = len(addresses)
    counts = sim.message_counts()["sent_by_type"]
    t.note(f"{n} servers, 1 client, {commands} commands, reliable network: messages sent per command")
    for name, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        t.note(f"  {name:<20} {count / commands:6.2f}")
    total = sum(counts.values()) / commands
    t.note(f"  {'total':<20} {total:6.2f}")
    t.note(f"Minimum with a stable leader: {n} requests + {2 * (n - 1)} for the accept phase "
           f"(+{n - 1} with explicit decisions) + 1 reply (+{n - 1} if every server replies) = "
           f"{n + 2 * (n - 1) + 1} to {n + 4 * (n - 1) + 1}, plus heartbeats")


# --------------------------------------------------------------------------
# Linearizability of every run's client history
# --------------------------------------------------------------------------


def check_history(t: TestContext, sim: Simulation) -> None:
    """Every run test with clients also checks that what the clients saw is linearizable."""
    from labkit.check.history_predicates import KV_LINEARIZABLE

    t.check(sim, KV_LINEARIZABLE)

