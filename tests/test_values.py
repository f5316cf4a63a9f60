"""Value semantics: order-independent, process-stable fingerprints and boundary copies."""

from __future__ import annotations

import enum
import itertools
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import Address, Get, Message, Node, Put, UnsupportedValueError, copy_value, fingerprint
from labkit.node import copy_node
from labkit.sim import Simulation
from labkit.values import canonical_repr, is_immutable


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclass
class Box:
    items: list
    tags: set = field(default_factory=set)


@dataclass(frozen=True)
class Carrier(Message):
    items: list


@dataclass(frozen=True)
class Sealed(Message):
    items: tuple
    names: frozenset
    where: Point
    color: Color


class Holder(Node):
    """A node whose state is whatever the test puts in it."""


def holder(**attrs: object) -> Holder:
    node = Holder(Address("h"))
    for k, v in attrs.items():
        setattr(node, k, v)
    return node


# ---- equal values, equal fingerprints --------------------------------------------


def test_dict_and_set_insertion_order_does_not_matter() -> None:
    words = [f"w{i}" for i in range(30)]
    forward = {w: i for i, w in enumerate(words)}
    backward = {w: forward[w] for w in reversed(words)}
    assert list(forward) != list(backward)
    assert fingerprint(forward) == fingerprint(backward)
    s1, s2 = set(), set()
    for w in words:
        s1.add(w)
    for w in reversed(words):
        s2.add(w)
    assert fingerprint(s1) == fingerprint(s2)
    assert fingerprint(frozenset(words)) == fingerprint(frozenset(reversed(words)))


def test_nested_state_in_nodes_compares_by_value() -> None:
    def state(order: int) -> Holder:
        log = {i: Point(i, -i) for i in (range(10) if order else reversed(range(10)))}
        peers = {Address(f"s{i}") for i in (range(5) if order else reversed(range(5)))}
        return holder(log=log, peers=peers, box=Box([1, [2, 3]], {"a", "b"}), color=Color.RED, pair=(1, "x"))

    assert fingerprint(state(0)) == fingerprint(state(1))
    # attribute order does not matter either
    assert fingerprint(holder(a=1, b=[2])) == fingerprint(holder(b=[2], a=1))


@pytest.mark.parametrize(
    "make",
    [
        lambda: {"k": [1, 2, {"n": (3, 4)}]},
        lambda: [{1, 2}, frozenset({"a"}), (None, True, 1.5, b"x")],
        lambda: Point(1, 2),
        lambda: Box([Point(1, 2)], {"t"}),
        lambda: Color.BLUE,
        lambda: {Color.RED: Box([], set()), Color.BLUE: (Point(0, 0),)},
        lambda: Put("k", "v"),
        lambda: Sealed((1, 2), frozenset({"a"}), Point(3, 4), Color.RED),
        lambda: Address("server1"),
    ],
)
def test_supported_values_fingerprint_and_copy(make) -> None:
    a, b = make(), make()
    assert fingerprint(a) == fingerprint(b)
    copied = copy_value(a)
    assert copied == a and fingerprint(copied) == fingerprint(a)


# ---- different values, different fingerprints -------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ((1, 2), [1, 2]),
        ({1: 2}, {2: 1}),
        ({1: 2, 3: 4}, {1: 4, 3: 2}),
        ({1, 2}, frozenset({1, 2})),
        ({}, set()),
        ((), []),
        (None, ()),
        ("1", 1),
        ("", b""),
        (Get("a"), Put("a", "")),
        (Get("a"), Get("b")),
        (Point(1, 2), Point(2, 1)),
        (Point(1, 2), (1, 2)),
        (Color.RED, Color.BLUE),
        (Color.RED, 1),
        ([[1], [2]], [[2], [1]]),
        ({(1, 2), (3, 4)}, {(1, 4), (3, 2)}),
        (Box([1]), Box([2])),
    ],
)
def test_different_values_have_different_fingerprints(a, b) -> None:
    assert fingerprint(a) != fingerprint(b)


def test_swapped_values_never_collide() -> None:
    """Regression: summing raw tuple hashes made most of these collide."""
    perms = list(itertools.permutations(range(7)))
    assert len({fingerprint(dict(enumerate(p))) for p in perms}) == len(perms)
    assert len({fingerprint({(i, x) for i, x in enumerate(p)}) for p in perms}) == len(perms)
    assert len({fingerprint(holder(**{f"a{i}": x for i, x in enumerate(p)})) for p in perms}) == len(perms)


_leaves = st.one_of(st.integers(-5, 5), st.text("abc", max_size=2), st.none())
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text("ab", max_size=2), inner, max_size=3),
        st.frozensets(st.integers(0, 4), max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(_values, _values)
def test_fingerprint_agrees_with_structural_equality(a, b) -> None:
    assert (fingerprint(a) == fingerprint(b)) == (canonical_repr(a) == canonical_repr(b))


# ---- caching -------------------------------------------------------------------------


def test_frozen_dataclass_fingerprint_is_cached_and_reused() -> None:
    p = Sealed((1, 2), frozenset({"a"}), Point(3, 4), Color.RED)
    first = fingerprint(p)
    assert p.__dict__["_lk_fp"] == first
    object.__setattr__(p, "_lk_fp", 12345)  # a reused cache returns whatever is stored
    assert fingerprint(p) == 12345
    assert p == Sealed((1, 2), frozenset({"a"}), Point(3, 4), Color.RED)  # the cache is not a field


def test_frozen_dataclass_holding_a_list_is_not_cached() -> None:
    c = Carrier([1])
    before = fingerprint(c)
    assert "_lk_fp" not in c.__dict__
    c.items.append(2)
    assert fingerprint(c) != before and fingerprint(c) == fingerprint(Carrier([1, 2]))


# ---- across processes -------------------------------------------------------------------

_PRINT_FINGERPRINTS = textwrap.dedent(
    """
    import enum
    from dataclasses import dataclass
    from labkit import Address, Put, fingerprint
    from labkit.values import canonical_repr

    class Mode(enum.Enum):
        LEADER = 1
        FOLLOWER = 2

    @dataclass(frozen=True)
    class Entry:
        term: int
        command: object

    state = {
        "peers": {f"server{i}" for i in range(8)},
        "addresses": frozenset(Address(f"client{i}") for i in range(8)),
        "log": {str(i): Entry(i, Put(f"k{i}", "v")) for i in range(6)},
        "mode": Mode.LEADER,
        "nested": [{"a": {"x", "y"}}, ("t", 1.5, None)],
    }
    print(fingerprint(state))
    print(fingerprint(state["peers"]), fingerprint("server1"), fingerprint(Mode.FOLLOWER))
    print(canonical_repr(state))
    """
)


def test_fingerprints_are_identical_across_hash_seeds(tmp_path: Path) -> None:
    script = tmp_path / "fp.py"
    script.write_text(_PRINT_FINGERPRINTS)
    outputs = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, str(script)], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == 3


# ---- boundary copies ---------------------------------------------------------------------


class Sender(Node):
    def __init__(self, address: Address, to: list[Address]) -> None:
        super().__init__(address)
        self.to = to
        self.items = [1]

    def init(self) -> None:
        self.broadcast(Carrier(self.items), self.to)
        self.items.append(99)  # mutating after the send must not reach anyone


class Keeper(Node):
    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.kept: list = []
        self.received: list = []

    def handle_Carrier(self, message: Carrier, sender: Address) -> None:
        self.kept = message.items  # keeps the delivered list
        message.items.append(str(self.address))  # and scribbles on it

    def handle_Sealed(self, message: Sealed, sender: Address) -> None:
        self.received.append(message)


def test_mutations_do_not_cross_node_boundaries() -> None:
    sim = Simulation(seed=4)
    b = sim.add_server(Keeper(Address("b")))
    c = sim.add_server(Keeper(Address("c")))
    a = sim.add_server(Sender(Address("a"), [b.address, c.address]))
    sim.run_for(50)
    assert a.items == [1, 99]
    assert b.kept == [1, "b"] and c.kept == [1, "c"]
    sent = sim.log.of_kind("send")[0].item
    assert sent.items == [1]  # the logged message is untouched too


class Forward(Node):
    def __init__(self, address: Address, message: Sealed) -> None:
        super().__init__(address)
        self.message = message

    def init(self) -> None:
        self.send(self.message, Address("b"))


def test_immutable_values_are_shared_not_copied() -> None:
    message = Sealed((1, (2, 3)), frozenset({"a"}), Point(1, 2), Color.RED)
    assert is_immutable(message)
    assert copy_value(message) is message
    for value in [(1, "a", (2.5, None)), frozenset({1}), "text", Color.RED, Point(0, 0)]:
        assert copy_value(value) is value

    sim = Simulation(seed=1)
    keeper = sim.add_server(Keeper(Address("b")))
    sim.add_server(Forward(Address("a"), message))
    sim.run_for(10)
    assert keeper.received[0] == message


def test_mutable_values_are_deep_copied() -> None:
    value = {"a": [1, [2]], "b": Box([3], {"x"}), "c": (1, [4])}
    copied = copy_value(value)
    assert copied == value
    assert copied["a"][1] is not value["a"][1]
    assert copied["b"] is not value["b"] and copied["b"].items is not value["b"].items
    assert copied["c"][1] is not value["c"][1]
    node = holder(state=value)
    twin = copy_node(node)
    twin.state["a"][1].append(5)
    assert value["a"][1] == [2] and fingerprint(node) != fingerprint(twin)


# ---- unsupported values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, kind",
    [
        (lambda: (lambda x: x), "a lambda"),
        (lambda: (i for i in range(3)), "a generator"),
        (threading.Lock, "_thread.lock"),
        (lambda: open(__file__), "an open file"),
    ],
)
def test_unsupported_attribute_is_named_with_its_path_and_type(make, kind: str) -> None:
    bad = make()
    try:
        node = holder(ok=1, table={"k": [0, bad]})
        for action in (fingerprint, copy_node):
            with pytest.raises(UnsupportedValueError) as info:
                action(node)
            assert "table['k'][1]" in str(info.value) and kind in str(info.value)
        top = holder(callback=bad)
        with pytest.raises(UnsupportedValueError, match=rf"{kind}.* at callback"):
            copy_node(top)
        with pytest.raises(UnsupportedValueError, match=rf"{kind}.* at callback"):
            fingerprint(top)
    finally:
        if hasattr(bad, "close"):
            bad.close()


class SendsALambda(Node):
    def init(self) -> None:
        self.send(Carrier([lambda: 0]), Address("b"))


def test_sending_a_message_holding_a_lambda_names_the_field() -> None:
    with pytest.raises(Exception, match=r"a lambda at items\[0\]"):
        Simulation().add_server(SendsALambda(Address("a")))
