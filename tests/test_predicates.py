"""Built-in predicates and their one-sentence explanations; combinators; raising predicates."""

from __future__ import annotations

from kv import SERVER, KVClient, KVServer, kv_sim

from labkit import Address, Append, AppendResult, Application, Command, KVStore, Result, Workload
from labkit.check.predicates import (
    ALL_RESULTS_SAME,
    APPENDS_LINEARIZABLE,
    CLIENTS_DONE,
    NONE_DECIDED,
    RESULTS_OK,
    Predicate,
    client_done,
    client_has_results,
    predicate,
)
from labkit.sim import Simulation

C1, C2 = Address("client1"), Address("client2")


def run(workloads: dict[Address, Workload], server_app: Application | None = None, millis: int = 1_000) -> Simulation:
    sim = kv_sim(server=KVServer(SERVER, server_app))
    for address, workload in workloads.items():
        sim.add_worker(KVClient(address), workload)
    sim.run_until_done(max_millis=millis)
    return sim


class PerClientStore(Application):
    """A wrong store: every client sees its own copy of the data."""

    def __init__(self) -> None:
        self.stores: dict[str, KVStore] = {}
        self.turn = 0

    def execute(self, command: Command) -> Result:
        self.turn += 1
        return self.stores.setdefault(str(self.turn % 2), KVStore()).execute(command)


class DroppingStore(KVStore):
    """A wrong store: appends of 'y' are lost."""

    def execute(self, command: Command) -> Result:
        if isinstance(command, Append) and command.value == "y":
            return AppendResult(self.data.get(command.key, ""))
        return super().execute(command)


def test_results_ok_holds_and_fails_with_one_sentence() -> None:
    good = run({C1: Workload.from_strings(["APPEND:foo:x", "APPEND:foo:y"], ["x", "xy"])})
    assert RESULTS_OK.evaluate(good).ok and RESULTS_OK(good)
    bad = run({C2: Workload.from_strings(["APPEND:foo:x", "APPEND:foo:y"], ["x", "xyy"])})
    result = RESULTS_OK.evaluate(bad)
    assert not result.ok
    when = "(invoked at t=10, answered at t=20)"  # the run's times, which pictures of the failure centre on
    assert result.detail == f"client2 got 'xy' for APPEND foo y, expected 'xyy' {when}"
    assert result.explain() == f"State violates \"Clients got expected results\": client2 got 'xy' for APPEND foo y, expected 'xyy' {when}"


def test_clients_done() -> None:
    done = run({C1: Workload.from_strings(["GET:a"])})
    assert CLIENTS_DONE(done)
    sim = kv_sim()
    sim.settings.partition([SERVER], [C1])
    sim.add_worker(KVClient(C1), Workload.from_strings(["GET:a", "GET:b"]))
    sim.run_for(50)
    result = CLIENTS_DONE.evaluate(sim)
    assert not result.ok
    assert result.detail == "client1 is still waiting for the result of GET a (command 1, sent at t=0)"
    assert not client_done(C1)(sim) and not client_has_results(C1, 1)(sim)
    assert client_has_results(C1, 0)(sim)
    assert client_done(Address("nobody")).evaluate(sim).detail == "there is no client worker nobody"


def test_none_decided() -> None:
    sim = kv_sim()
    sim.add_worker(KVClient(C1), Workload.from_strings(["PUT:a:1"]))
    assert NONE_DECIDED(sim)
    sim.run_until_done()
    result = NONE_DECIDED.evaluate(sim)
    assert not result.ok and result.detail == "client1 got Ok for PUT a 1"


def test_all_results_same() -> None:
    same = run({C1: Workload.from_strings(["GET:k"]), C2: Workload.from_strings(["GET:k"])})
    assert ALL_RESULTS_SAME(same)
    differ = run({C1: Workload.from_strings(["GET:k"]), C2: Workload.from_strings(["PUT:k:v"])})
    result = ALL_RESULTS_SAME.evaluate(differ)
    assert not result.ok
    assert result.detail == "result 1 differs: client1 got KeyNotFound but client2 got Ok"


def test_appends_linearizable() -> None:
    both = {C1: Workload.from_strings(["APPEND:foo:x"], repeat=3), C2: Workload.from_strings(["APPEND:foo:y"], repeat=3)}
    assert APPENDS_LINEARIZABLE(run(both))
    split = APPENDS_LINEARIZABLE.evaluate(run(both, PerClientStore()))
    assert not split.ok and "one of them must extend the other" in split.detail
    lost = APPENDS_LINEARIZABLE.evaluate(run({C1: Workload.from_strings(["APPEND:foo:x", "APPEND:foo:y"])}, DroppingStore()))
    assert not lost.ok
    assert lost.detail == "client1 got 'x' as the result of APPEND foo y, which does not end with 'y'"


# ---- combinators -------------------------------------------------------------------------


class State:
    """A bare state for combinator tests: just a number and no workers."""

    workers: list = []

    def __init__(self, n: int) -> None:
        self.n = n


EVEN = Predicate("even", lambda s: (s.n % 2 == 0, None if s.n % 2 == 0 else f"{s.n} is odd"))
SMALL = Predicate("small", lambda s: s.n < 10)


def test_negate_and_or_implies() -> None:
    two, three, twelve, thirteen = State(2), State(3), State(12), State(13)
    assert (~EVEN)(three) and not EVEN.negate()(two)
    assert EVEN.negate().name == "not (even)"
    assert EVEN.negate().evaluate(two).detail == '"even" holds'
    both = EVEN & SMALL
    assert both.name == "(even) and (small)"
    assert both(two) and not both(twelve) and not both(three)
    assert both.evaluate(three).detail == '"even" fails: 3 is odd'
    assert both.evaluate(twelve).detail == '"small" fails'
    either = EVEN | SMALL
    assert either(three) and either(twelve) and not either(thirteen)
    assert either.evaluate(thirteen).detail == '"even" fails: 13 is odd; "small" fails'
    rule = SMALL.implies(EVEN)
    assert rule(two) and rule(thirteen) and not rule(three)
    assert rule.evaluate(three).detail == '"small" holds but "even" fails: 3 is odd'


def test_a_raising_predicate_is_a_violation_showing_the_exception() -> None:
    @predicate("Boom")
    def boom(state: object) -> bool:
        return {}["missing"]

    assert not boom(State(1))
    result = boom.evaluate(State(1))
    assert not result.ok and result.detail == "KeyError: 'missing'"
    text = result.explain()
    assert text.startswith('Checking "Boom" raised an exception:') and "Traceback" in text and "KeyError" in text
    combined = (EVEN & boom).evaluate(State(2))
    assert not combined.ok and "KeyError" in combined.detail
    assert not boom.negate()(State(1))
