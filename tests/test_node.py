"""The node model: addresses, event dispatch, effects and the errors for misuse."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from labkit import Address, Message, MissingHandlerError, Node, NodeError, Timer
from labkit.app import Command, Result
from labkit.node import Effects, handling
from labkit.sim import Simulation
from labkit.sim.log import DELIVER, DROP, TIMER_FIRE, TIMER_SET


@dataclass(frozen=True)
class Hello(Message):
    text: str


@dataclass(frozen=True)
class Tick(Timer):
    n: int


@dataclass(frozen=True)
class Unhandled(Message):
    pass


@dataclass(frozen=True)
class Silent(Timer):
    pass


A, B, C = Address("a"), Address("b"), Address("c")


class Recorder(Node):
    """Remembers every event it handles."""

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.seen: list[tuple] = []
        self.initialised = False

    def init(self) -> None:
        self.initialised = True

    def handle_Hello(self, message: Hello, sender: Address) -> None:
        self.seen.append(("hello", message.text, sender))

    def on_Tick(self, timer: Tick) -> None:
        self.seen.append(("tick", timer.n))


def run_effects(action) -> Effects:
    effects = Effects()
    with handling(effects):
        action()
    return effects


# ---- Address ------------------------------------------------------------------


def test_address_is_ordered_hashable_value() -> None:
    assert Address("x") == Address("x")
    assert sorted([Address("c"), Address("a"), Address("b")]) == [A, B, C]
    assert Address("a") < Address("b")
    assert len({Address("a"), Address("a"), Address("b")}) == 2
    assert {Address("a"): 1}[Address("a")] == 1
    assert str(Address("server1")) == "server1"


def test_address_rejects_empty_or_non_string_name() -> None:
    with pytest.raises(NodeError, match="non-empty string"):
        Address("")
    with pytest.raises(NodeError):
        Address(3)  # type: ignore[arg-type]


def test_address_hash_is_the_same_in_every_process() -> None:
    code = "from labkit import Address; print(hash(Address('server1')), [a.name for a in {Address(f's{i}') for i in range(20)}])"
    outputs = set()
    for seed in ("1", "2", "random"):
        env = {"PYTHONHASHSEED": seed, "PATH": ""}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert str(hash(Address("server1"))) == outputs.pop().split()[0]


def test_value_base_classes() -> None:
    for base in (Message, Timer, Command, Result):
        @dataclass(frozen=True)
        class Sub(base):  # type: ignore[valid-type,misc]
            x: int

        assert Sub(1) == Sub(1) and Sub(1) != Sub(2)
        assert hash(Sub(1)) == hash(Sub(1))
        assert isinstance(Sub(1), base)


# ---- dispatch -----------------------------------------------------------------


def test_init_runs_once_and_handlers_dispatch_by_class_name() -> None:
    sim = Simulation(seed=1)
    a = Recorder(A)
    assert not a.initialised
    assert sim.add_server(a).initialised  # init() ran in the run's worker
    a.deliver_message(Hello("hi"), B)
    a.deliver_timer(Tick(3))
    assert a.seen == [("hello", "hi", B), ("tick", 3)]


def test_missing_message_handler_names_the_method() -> None:
    with pytest.raises(MissingHandlerError, match=r"no method handle_Unhandled\(self, message, sender\)"):
        Recorder(A).deliver_message(Unhandled(), B)


def test_missing_timer_handler_names_the_method() -> None:
    with pytest.raises(MissingHandlerError, match=r"no method on_Silent\(self, timer\)"):
        Recorder(A).deliver_timer(Silent())


def test_handler_lookup_is_per_class() -> None:
    class Other(Node):
        def handle_Hello(self, message: Hello, sender: Address) -> None:
            self.got = message

    Recorder(A).deliver_message(Hello("x"), B)
    other = Other(B)
    other.deliver_message(Hello("y"), A)
    assert other.got == Hello("y")
    with pytest.raises(MissingHandlerError):
        Other(B).deliver_timer(Tick(1))


# ---- effects ------------------------------------------------------------------


def test_send_broadcast_and_timers_are_collected_in_order() -> None:
    node = Recorder(A)

    def act() -> None:
        node.send(Hello("1"), B)
        node.broadcast(Hello("2"), [B, C])
        node.set_timer(Tick(1), 10)
        node.set_timer(Tick(2), 5, 15)

    effects = run_effects(act)
    assert [(s, d, m) for s, d, m in effects.sends] == [(A, B, Hello("1")), (A, B, Hello("2")), (A, C, Hello("2"))]
    assert effects.timers == [(A, Tick(1), 10, 10), (A, Tick(2), 5, 15)]


class Ranged(Node):
    def init(self) -> None:
        for i in range(50):
            self.set_timer(Tick(i), 5, 9)

    def on_Tick(self, timer: Tick) -> None:
        pass


class Once(Node):
    def init(self) -> None:
        self.set_timer(Tick(1), 7)

    def on_Tick(self, timer: Tick) -> None:
        self.fired_at = "fired"


def test_ranged_timer_length_stays_in_range() -> None:
    sim = Simulation(seed=3)
    sim.add_server(Ranged(A))
    lengths = [e.detail for e in sim.log.of_kind(TIMER_SET)]
    assert set(lengths) <= set(range(5, 10)) and len(set(lengths)) > 1
    sim.run_for(9)
    assert len(sim.log.of_kind(TIMER_FIRE)) == 50


def test_fixed_timer_fires_exactly_after_its_length() -> None:
    sim = Simulation(seed=0)
    sim.add_server(Once(A))
    sim.run_for(6)
    assert not sim.log.of_kind(TIMER_FIRE)
    sim.run_for(1)
    (fire,) = sim.log.of_kind(TIMER_FIRE)
    assert fire.time == 7


@pytest.mark.parametrize(
    "action, pattern",
    [
        (lambda n: n.send("hello", B), r"send needs a Message, got str 'hello'"),
        (lambda n: n.send(Hello("x"), "b"), r"send needs an Address to send to, got 'b'"),
        (lambda n: n.broadcast(Hello("x"), ["b"]), r"broadcast needs Addresses"),
        (lambda n: n.broadcast(42, [B]), r"broadcast needs a Message"),
        (lambda n: n.set_timer(Hello("x"), 5), r"set_timer needs a Timer"),
        (lambda n: n.set_timer(Tick(1), 0), r"at least 1 ms, got 0"),
        (lambda n: n.set_timer(Tick(1), -3, 4), r"at least 1 ms"),
        (lambda n: n.set_timer(Tick(1), 10, 5), r"minimum length 10 ms exceeds its maximum 5 ms"),
        (lambda n: n.set_timer(Tick(1), 2.5), r"whole milliseconds"),
    ],
)
def test_misuse_gives_a_clear_error(action, pattern: str) -> None:
    node = Recorder(A)
    with pytest.raises(NodeError, match=pattern):
        run_effects(lambda: action(node))


def test_send_from_constructor_is_a_clear_error() -> None:
    class Eager(Node):
        def __init__(self, address: Address) -> None:
            super().__init__(address)
            self.send(Hello("too early"), B)

    with pytest.raises(NodeError, match=r"outside of an event.*never in the constructor.*init\(\)"):
        Eager(A)


def test_set_timer_from_constructor_is_a_clear_error() -> None:
    class Eager(Node):
        def __init__(self, address: Address) -> None:
            super().__init__(address)
            self.set_timer(Tick(1), 5)

    with pytest.raises(NodeError, match="outside of an event"):
        Eager(A)


def test_node_needs_an_address() -> None:
    with pytest.raises(NodeError, match="must be an Address"):
        Recorder("a")  # type: ignore[arg-type]


# ---- delivery through the simulator ----------------------------------------------


class Greeter(Node):
    def __init__(self, address: Address, to: list[Address]) -> None:
        super().__init__(address)
        self.to = to

    def init(self) -> None:
        self.broadcast(Hello(f"from {self.address}"), self.to)


def test_messages_reach_their_handlers() -> None:
    sim = Simulation(seed=2)
    b, c = sim.add_server(Recorder(B)), sim.add_server(Recorder(C))
    sim.add_server(Greeter(A, [B, C]))
    sim.run_for(100)
    assert b.seen == [("hello", "from a", A)] and c.seen == [("hello", "from a", A)]


def test_message_to_unknown_address_is_dropped_and_logged() -> None:
    sim = Simulation(seed=2)
    b = sim.add_server(Recorder(B))
    sim.add_server(Greeter(A, [Address("nobody"), B]))
    sim.run_for(100)
    (drop,) = sim.log.of_kind(DROP)
    assert drop.node == Address("nobody") and drop.peer == A and drop.detail == "unknown node"
    assert "unknown node" in sim.log.to_text()
    assert len(sim.log.of_kind(DELIVER)) == 1 and b.seen
