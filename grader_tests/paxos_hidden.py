"""Hidden tests of the Paxos lab, registered on the public lab when this module is imported.

This file is never shipped to students and never reaches a notebook kernel or
a worker: only the judge imports it, in ``labkit course autograde`` (which
finds it in ``grader_tests/``) and ``labkit check-solution --hidden
grader_tests/paxos_hidden.py``.

Numbering: hidden tests are ``PART.101`` and up within each part, so they never
clash with the public numbers (DSLabs's 1-29). Run tests come first (101-119),
search tests from 120. A part's hidden tests need only that part and the
earlier ones: part 1 never checks message counts, wait times or memory.

Every run test with clients also checks that the clients' history is
linearizable. A notebook's hidden cell names its test
(``check_test("paxos", "1.101", ...)``); the judge runs it.
"""

from __future__ import annotations

import random
from typing import Any

from labkit.app import Append, AppendResult, Get, GetResult, Put, PutOk
from labkit.check.predicates import APPENDS_LINEARIZABLE, CLIENTS_DONE, NONE_DECIDED, RESULTS_OK
from labkit.client import Workload
from labkit.labs.paxos import PaxosLogSlotStatus
from labkit.labs.paxos.predicates import LOGS_CONSISTENT, LOGS_CONSISTENT_ALL_SLOTS
from labkit.labs.paxos.tests import (
    LAB,
    MAX_MESSAGES_PER_COMMAND_PER_SERVER,
    add_workers,
    check_batching,
    check_history,
    client_addresses,
    fill_then_collect,
    expect,
    newest_value,
    raw_result,
    repartition,
    run_system,
    run_until_done,
    search_system,
)
from labkit.labs.paxos.workloads import (
    append_different_key_workload,
    append_same_key_workload,
    different_keys_infinite_workload,
    put_get_workload,
    simple_workload,
)
from labkit.node import Address, client, server
from labkit.search.settings import SearchSettings
from labkit.sim.settings import RunSettings
from labkit.sim.simulator import Simulation
from labkit.testing.context import TestContext
from labkit.testing.declare import RUN, SEARCH, UNRELIABLE

__all__: list[str] = []

CHOSEN = PaxosLogSlotStatus.CHOSEN
CLEARED = PaxosLogSlotStatus.CLEARED


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def harsh(rate: float = 1.0, latency: tuple[int, int] = (1, 5), duplication: float = 0.0) -> RunSettings:
    return RunSettings(delivery_rate=rate, latency=latency, duplication_rate=duplication)


def appends_run(t: TestContext, n: int, clients: int, per_client: int, settings: RunSettings | None) -> Simulation:
    """``clients`` workers append to one key on ``n`` servers until done; checks the appends and logs."""
    sim, addresses = run_system(t, n, settings)
    add_workers(t, sim, addresses, 1, clients, append_same_key_workload(per_client))
    run_until_done(t, sim, max_millis=60_000)
    t.check(sim, APPENDS_LINEARIZABLE, LOGS_CONSISTENT_ALL_SLOTS)
    check_history(t, sim)
    return sim


def simple_run(t: TestContext, n: int, settings: RunSettings | None) -> None:
    """One worker runs the 14-command workload with expected results on ``n`` servers."""
    sim, addresses = run_system(t, n, settings)
    add_workers(t, sim, addresses, 1, 1, simple_workload())
    run_until_done(t, sim)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS)
    check_history(t, sim)


def random_groups(rng: random.Random, addresses: list[Address], clients: list[Address]) -> list[list[Address]]:
    """A random cut: all servers together, a majority with the clients, or two groups."""
    shape = rng.random()
    if shape < 0.25:
        return [addresses + clients]
    shuffled = rng.sample(addresses, len(addresses))
    if shape < 0.7:
        size = len(addresses) // 2 + 1
        return [shuffled[:size] + clients, shuffled[size:]]
    cut = rng.randint(1, len(addresses) - 1)
    side = rng.random() < 0.5
    return [shuffled[:cut] + (clients if side else []), shuffled[cut:] + ([] if side else clients)]


def chaos_then_heal(t: TestContext, n: int, settings: RunSettings, workers: int, commands: int,
                    chaos_millis: int) -> None:
    """Workers with expected results run through a random partition schedule, then the network heals
    and every command must complete."""
    sim, addresses = run_system(t, n, settings)
    add_workers(t, sim, addresses, 1, workers, append_different_key_workload(commands))
    clients = client_addresses(sim)
    rng = random.Random(t.seed)
    end = sim.now + chaos_millis
    while sim.now < end:
        sim.settings.partition(*random_groups(rng, addresses, clients))
        sim.run_for(rng.randint(100, 1_500))
    sim.settings.reconnect()
    run_until_done(t, sim, max_millis=30_000)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT)
    check_history(t, sim)


def raw_clients(t: TestContext, sim: Simulation, addresses: list[Address], count: int) -> list[Address]:
    found = [client(i) for i in range(1, count + 1)]
    for c in found:
        sim.add_client(t.solution.PaxosClient(c, list(addresses)))
    return found


def every_slot_decided_everywhere(t: TestContext, sim: Simulation, slots: int) -> None:
    """Each server knows slots 1..``slots`` as CHOSEN or CLEARED (a lagging server caught up)."""
    for s in sim.servers:
        for slot in range(1, slots + 1):
            status = s.status(slot)
            t.require(status in (CHOSEN, CLEARED),
                      f"{s.address} still has slot {slot} {status.name} after every server could talk to the "
                      "leader for 4 s: a server that fell behind must learn the decisions it missed")


# --------------------------------------------------------------------------
# Part 1: Multi-Paxos (run tests)
# --------------------------------------------------------------------------


@LAB.test(101, "Five servers, simple operations", 5, part=1, hidden=True)
def five_server_simple(t: TestContext) -> None:
    simple_run(t, 5, None)


@LAB.test(102, "Seven servers, concurrent appends", 5, part=1, hidden=True)
def seven_server_appends(t: TestContext) -> None:
    appends_run(t, 7, 10, 5, None)


@LAB.test(103, "Duplicated and reordered messages, concurrent appends", 10, part=1, categories=(RUN, UNRELIABLE),
          hidden=True)
def duplicating_network_appends(t: TestContext) -> None:
    appends_run(t, 3, 10, 5, harsh(latency=(1, 40), duplication=0.3))


@LAB.test(104, "Duplicated and reordered messages, expected results", 10, part=1, categories=(RUN, UNRELIABLE),
          hidden=True)
def duplicating_network_results(t: TestContext) -> None:
    sim, addresses = run_system(t, 3, harsh(rate=0.9, latency=(1, 80), duplication=0.4))
    add_workers(t, sim, addresses, 1, 4, append_different_key_workload(15))
    run_until_done(t, sim, max_millis=60_000)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS)
    check_history(t, sim)


@LAB.test(105, "Delivery rate 0.6, five servers, simple operations", 10, part=1, categories=(RUN, UNRELIABLE),
          hidden=True)
def lossy_five_server_simple(t: TestContext) -> None:
    simple_run(t, 5, harsh(rate=0.6))


@LAB.test(106, "Delivery rate 0.6, concurrent appends", 10, part=1, categories=(RUN, UNRELIABLE), hidden=True)
def lossy_appends(t: TestContext) -> None:
    appends_run(t, 5, 8, 5, harsh(rate=0.6, latency=(1, 10)))


@LAB.test(107, "Concurrent appends, unreliable, three more seeds", 10, part=1, categories=(RUN, UNRELIABLE),
          hidden=True)
def appends_more_seeds(t: TestContext) -> None:
    for _ in range(3):  # each simulation of a test gets the next seed
        appends_run(t, 3, 25, 5, harsh(rate=0.8))


@LAB.test(108, "Long partition of a minority, then the majority changes", 10, part=1, hidden=True)
def long_partition(t: TestContext) -> None:
    sim, addresses = run_system(t, 5)
    add_workers(t, sim, addresses, 1, 3, append_different_key_workload(20))
    clients = client_addresses(sim)
    s1, s2, s3, s4, s5 = addresses
    sim.settings.partition([s1, s2, s3] + clients, [s4, s5])
    sim.run_for(10_000)
    sim.settings.partition([s3, s4, s5] + clients, [s1, s2])
    run_until_done(t, sim, max_millis=30_000)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT)
    sim.settings.reconnect()
    add_workers(t, sim, addresses, 4, 2, put_get_workload())
    run_until_done(t, sim)
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT)
    check_history(t, sim)


@LAB.test(109, "Leader cut off in the middle of a command", 10, part=1, hidden=True)
def leader_cut_off_mid_command(t: TestContext) -> None:
    """Each server in turn is cut off just after an append was sent: whichever server leads is cut off
    while the command is in flight, and every append must still complete exactly once."""
    sim, addresses = run_system(t, 5)
    c1, c2 = raw_clients(t, sim, addresses, 2)
    expect(t, raw_result(t, sim, c1, Put("foo", "bar")), PutOk(), Put("foo", "bar"), c1)
    value = "bar"
    for victim in addresses:
        command = Append("foo", f"-{victim.name}")
        sim.send_command(c1, command)
        sim.run_for(2)  # the request is on its way; some servers may have accepted it
        sim.settings.partition([victim], [a for a in addresses if a != victim] + [c1, c2])
        sim.run_until(lambda s: s.has_result(c1), 10_000)
        t.require(sim.has_result(c1), f"{c1} got no result within 10 s after {victim} was cut off")
        value += command.value
        expect(t, sim.result(c1), AppendResult(value), command, c1)
        sim.settings.reconnect()
    s1, s2, s3, s4, s5 = addresses
    sim.settings.partition([s1, s2, s3, c2], [s4, s5])
    expect(t, raw_result(t, sim, c2, Get("foo")), GetResult(value), Get("foo"), c2)
    t.check(sim, LOGS_CONSISTENT)
    check_history(t, sim)


@LAB.test(110, "Random partitions, then heal: every command completes", 15, part=1, categories=(RUN, UNRELIABLE),
          hidden=True)
def random_partitions_five(t: TestContext) -> None:
    chaos_then_heal(t, 5, harsh(rate=0.8, latency=(1, 10)), workers=4, commands=30, chaos_millis=15_000)


@LAB.test(111, "Seven servers, random partitions, duplication", 15, part=1, categories=(RUN, UNRELIABLE),
          hidden=True)
def random_partitions_seven(t: TestContext) -> None:
    chaos_then_heal(t, 7, harsh(rate=0.9, latency=(1, 20), duplication=0.2), workers=3, commands=20,
                    chaos_millis=10_000)


@LAB.test(112, "Three servers, random partitions, three more seeds", 15, part=1, categories=(RUN, UNRELIABLE),
          hidden=True)
def random_partitions_three(t: TestContext) -> None:
    for _ in range(3):
        chaos_then_heal(t, 3, harsh(rate=0.8, latency=(1, 30), duplication=0.1), workers=3, commands=15,
                        chaos_millis=8_000)


@LAB.test(113, "Forty clients, unreliable network", 10, part=1, categories=(RUN, UNRELIABLE), hidden=True)
def forty_clients(t: TestContext) -> None:
    appends_run(t, 3, 40, 3, harsh(rate=0.8, latency=(1, 10)))


# --------------------------------------------------------------------------
# Part 1: search tests
# --------------------------------------------------------------------------


@LAB.test(120, "One server alone with the client makes no progress", 10, part=1, categories=(SEARCH,), hidden=True)
def minority_with_first_leader_search(t: TestContext) -> None:
    start = search_system(t, 3, [put_get_workload()])
    settings = SearchSettings(invariants=[NONE_DECIDED], max_states=60_000)
    settings.partition([server(1), client(1)])
    t.bfs(start, settings)
    settings.deliver_timers(False)
    t.bfs(start, settings)


@LAB.test(121, "Seven servers, no progress in a minority of three", 10, part=1, categories=(SEARCH,), hidden=True)
def seven_server_minority_search(t: TestContext) -> None:
    start = search_system(t, 7, [put_get_workload()])
    settings = SearchSettings(invariants=[NONE_DECIDED], max_states=30_000)
    settings.partition([server(1), server(2), server(3), client(1)])
    t.bfs(start, settings)


@LAB.test(122, "Two clients, appends through other majorities", 15, part=1, categories=(SEARCH,), hidden=True)
def two_clients_other_majorities_search(t: TestContext) -> None:
    workloads = [Workload.of([Append("foo", "X")], [AppendResult("X")]),
                 Workload.of([Append("foo", "Y")], [AppendResult("XY")])]
    start = search_system(t, 3, workloads)
    settings = SearchSettings(invariants=[RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS], goals=[~NONE_DECIDED],
                              max_states=100_000)
    settings.partition([server(2), server(3), client(1)])
    first = t.goal_state(start, settings, "client1's append returned without server1")
    settings.partition([server(1), server(2), client(2)]).clear_goals().add_goal(CLIENTS_DONE)
    t.goal_state(first, settings, "client2's append returned in the other majority")
    settings.clear_goals().add_prune(CLIENTS_DONE)
    settings.max_states = 60_000
    t.bfs(first, settings)


@LAB.test(123, "Three servers, three clients, random search", 15, part=1, categories=(SEARCH,), hidden=True)
def three_clients_random_search(t: TestContext) -> None:
    workloads = [Workload.of([Append("foo", v)]) for v in "xyz"]
    start = search_system(t, 3, workloads)
    settings = SearchSettings(invariants=[APPENDS_LINEARIZABLE, LOGS_CONSISTENT], prunes=[CLIENTS_DONE],
                              max_depth=600, max_steps=300_000)
    t.random_search(start, settings)


@LAB.test(124, "Five servers, two appends each, random search", 15, part=1, categories=(SEARCH,), hidden=True)
def five_server_two_appends_random_search(t: TestContext) -> None:
    workloads = [Workload.of([Append("foo", "x"), Append("foo", "z")]),
                 Workload.of([Append("foo", "y"), Append("foo", "w")])]
    start = search_system(t, 5, workloads)
    settings = SearchSettings(invariants=[APPENDS_LINEARIZABLE, LOGS_CONSISTENT], prunes=[CLIENTS_DONE],
                              max_depth=600, max_steps=200_000)
    t.random_search(start, settings)


@LAB.test(125, "Three servers, three ballots, the highest server cut off first", 10, part=1, categories=(SEARCH,),
          hidden=True)
def newest_value_other_roles_search(t: TestContext) -> None:
    """Test 1.30 with server3 cut off at the start instead of server1, so ballots meet in the other order.
    Usually takes 5-10 s."""
    newest_value(t, server(3))


# --------------------------------------------------------------------------
# Part 2: stable leaders
# --------------------------------------------------------------------------


def message_budget(t: TestContext, n: int, commands: int) -> None:
    sim, addresses = run_system(t, n)
    add_workers(t, sim, addresses, 1, 1, append_same_key_workload(commands))
    run_until_done(t, sim, max_millis=120_000)
    per_command = sim.messages_to_servers() / commands
    allowed = MAX_MESSAGES_PER_COMMAND_PER_SERVER * n
    t.note(f"{per_command:.1f} messages to servers per command ({allowed} allowed)")
    t.require(per_command <= allowed, f"Too many messages sent, {allowed} per command allowed, got {per_command:.1f}")
    check_history(t, sim)


@LAB.test(101, "Message count, three servers", 5, part=2, hidden=True)
def message_count_three(t: TestContext) -> None:
    message_budget(t, 3, 300)


@LAB.test(102, "Message count, seven servers", 5, part=2, hidden=True)
def message_count_seven(t: TestContext) -> None:
    message_budget(t, 7, 200)


def wait_bounded(t: TestContext, sim: Simulation, limit: int) -> None:
    t.check(sim, RESULTS_OK, LOGS_CONSISTENT)
    t.check_max_wait(sim, limit)
    check_history(t, sim)


@LAB.test(103, "The leader cut off: a new leader takes over quickly", 10, part=2, hidden=True)
def new_leader_quickly(t: TestContext) -> None:
    """Each server in turn is cut off for 2 s, so whichever server leads is cut off once: clients
    must not wait more than 2 s."""
    sim, addresses = run_system(t, 5)
    add_workers(t, sim, addresses, 1, 3, different_keys_infinite_workload(10))
    clients = client_addresses(sim)
    sim.run_for(2_000)
    for victim in addresses:
        sim.settings.partition([victim], [a for a in addresses if a != victim] + clients)
        sim.run_for(2_000)
        sim.settings.reconnect()
        sim.run_for(1_000)
    wait_bounded(t, sim, 2_000)


@LAB.test(104, "Constant repartitioning, three servers, duplication", 15, part=2, categories=(RUN, UNRELIABLE),
          hidden=True)
def constant_repartition_three(t: TestContext) -> None:
    sim, addresses = run_system(t, 3, harsh(rate=0.9, latency=(1, 10), duplication=0.2))
    add_workers(t, sim, addresses, 1, 3, different_keys_infinite_workload(10))
    rng = random.Random(t.seed)
    clients = client_addresses(sim)
    for _ in range(5):
        repartition(sim, addresses, clients, rng)
        sim.run_for(2_000)
        sim.settings.reconnect()
        sim.run_for(2_000)
    wait_bounded(t, sim, 2_000)


@LAB.test(105, "Constant repartitioning, seven servers, unreliable", 15, part=2, categories=(RUN, UNRELIABLE),
          hidden=True)
def constant_repartition_seven(t: TestContext) -> None:
    sim, addresses = run_system(t, 7, harsh(rate=0.8))
    add_workers(t, sim, addresses, 1, 3, different_keys_infinite_workload(10))
    rng = random.Random(t.seed)
    clients = client_addresses(sim)
    for _ in range(4):
        repartition(sim, addresses, clients, rng)
        sim.run_for(2_000)
        sim.settings.reconnect()
        sim.run_for(2_000)
    wait_bounded(t, sim, 2_000)


# --------------------------------------------------------------------------
# Part 3: garbage collection
# --------------------------------------------------------------------------



def big_puts_with_server_cut_off(t: TestContext, n: int, cut_off: list[Address],
                                 settings: RunSettings | None = None) -> tuple[Simulation, list[Address], Address]:
    """``n`` servers; while ``cut_off`` cannot talk, 20 PUTs of 200,000 characters; then reconnect and
    20 small PUTs, and let everyone talk for 4 s."""
    sim, addresses = run_system(t, n, settings)
    (c1,) = raw_clients(t, sim, addresses, 1)
    sim.settings.partition([a for a in addresses if a not in cut_off] + [c1], cut_off)
    after_puts, end = fill_then_collect(t, sim, c1, 200_000)
    t.note(f"node state: {after_puts:,} bytes after the large puts, {end:,} at the end")
    return sim, addresses, c1


@LAB.test(101, "Garbage collected with two of five servers cut off", 5, part=3, hidden=True)
def gc_five_servers(t: TestContext) -> None:
    sim, _, _ = big_puts_with_server_cut_off(t, 5, [server(1), server(2)])
    check_history(t, sim)


@LAB.test(102, "Lagging server catches up after garbage collection", 10, part=3, hidden=True)
def lagging_server_catches_up(t: TestContext) -> None:
    sim, addresses, c1 = big_puts_with_server_cut_off(t, 3, [server(3)])
    every_slot_decided_everywhere(t, sim, 40)
    s1, s2, s3 = addresses
    for group in ([s2, s3, c1], [s1, s3, c1]):  # the server that lagged is needed for a majority
        sim.settings.partition(group)
        for key in range(10):
            expect(t, raw_result(t, sim, c1, Get(str(key))), GetResult("foo"), Get(str(key)), c1)
    t.check(sim, LOGS_CONSISTENT)
    check_history(t, sim)


@LAB.test(103, "Garbage collected on an unreliable network", 10, part=3, categories=(RUN, UNRELIABLE), hidden=True)
def gc_unreliable(t: TestContext) -> None:
    sim, _, _ = big_puts_with_server_cut_off(t, 3, [server(2)], harsh(rate=0.8))
    check_history(t, sim)


# --------------------------------------------------------------------------
# Part 4: batching and throughput
# --------------------------------------------------------------------------

@LAB.test(101, "Many clients batched, five servers", 5, part=4, hidden=True)
def batching_five(t: TestContext) -> None:
    check_batching(t, 5, 8)


@LAB.test(102, "Batches stay correct under loss and duplication", 5, part=4, categories=(RUN, UNRELIABLE),
          hidden=True)
def batching_unreliable(t: TestContext) -> None:
    appends_run(t, 3, 40, 5, harsh(rate=0.8, latency=(1, 20), duplication=0.2))
