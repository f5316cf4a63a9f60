"""A worker's kept search nodes: copies share nothing mutable, and a step's changes are exact."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from labkit.node import Address, Node, copy_node
from labkit.wire import NodeState, encode
from labkit.worker.snapshot import Kept, state_of


@dataclass(frozen=True)
class Entry:
    ballot: int
    command: str


@dataclass
class Box:
    items: list = field(default_factory=list)


class Store:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.boxes = [Box([1])]


class Server(Node):
    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.count = 1
        self.log: dict[int, Entry] = {1: Entry(1, "x")}
        self.seen: set[int] = {1, 2}
        self.order = [Entry(0, "a")]
        self.store = Store()
        self.pairs = [[1, 2]]


def kept(node: Node) -> Kept:
    return Kept(node, state_of(node))


def test_state_is_the_canonical_encoding_attribute_by_attribute():
    node = Server(Address("s1"))
    state = state_of(node)
    assert state.text == encode(node)
    assert state.fp == NodeState.from_text(encode(node)).fp


def test_a_copy_is_copy_node_and_shares_nothing_mutable():
    node = Server(Address("s1"))
    copy = kept(node).copy()
    assert encode(copy) == encode(copy_node(node))
    assert copy.log is not node.log and copy.log[1] is node.log[1]  # immutable entries are shared
    assert copy.store is not node.store and copy.store.data is not node.store.data
    assert copy.store.boxes[0] is not node.store.boxes[0]
    assert copy.pairs[0] is not node.pairs[0]
    copy.store.boxes[0].items.append(2)
    copy.pairs[0].append(3)
    assert node.store.boxes[0].items == [1] and node.pairs == [[1, 2]]


def mutations():
    def count(n):
        n.count += 1

    def log(n):
        n.log[2] = Entry(1, "y")

    def same_log_entry_rebuilt(n):
        n.log[1] = Entry(1, "x")

    def bool_for_int(n):
        n.count = True  # 1 == True, but the encodings differ

    def float_for_int(n):
        n.log[1] = Entry(1.0, "x")  # Entry(1, 'x') == Entry(1.0, 'x')

    def nested(n):
        n.store.boxes[0].items.append(5)

    def store(n):
        n.store.data["k"] = "v"

    def set_member(n):
        n.seen.add(3)

    def added(n):
        n.extra = 1

    def removed(n):
        del n.order

    def nothing(n):
        _ = n.log.get(3)

    def reassigned_equal(n):
        n.order = [Entry(0, "a")]

    return [count, log, same_log_entry_rebuilt, bool_for_int, float_for_int, nested, store, set_member, added, removed,
            nothing, reassigned_equal]


@pytest.mark.parametrize("mutate", mutations(), ids=lambda f: f.__name__)
def test_changes_are_exactly_the_attributes_whose_encoding_changed(mutate):
    node = Server(Address("s1"))
    k = kept(node)
    copy = k.copy()
    mutate(copy)
    before, after = state_of(node), state_of(copy)
    expected_changed = {n: t for n, t in after.attributes().items() if before.attributes().get(n) != t}
    expected_gone = set(before.attributes()) - set(after.attributes())
    found = k.changes(copy)
    if not expected_changed and not expected_gone:
        assert found is None
        return
    assert found is not None
    changed, gone, _ = found
    assert dict(changed) == expected_changed and set(gone) == expected_gone
    child = k.child(copy, found)
    assert child.state.fp == after.fp and child.state.text == encode(copy)
    # The child is kept in its turn: its copies and their changes are exact too.
    grandchild = child.copy()
    assert child.changes(grandchild) is None
    grandchild.count = 7
    assert child.changes(grandchild)[0] == [("count", "7")]



def test_the_judge_takes_changed_attributes_only_as_single_canonical_values():
    """What a worker says changed is untrusted: an encoding that would spill into the next attribute is
    refused, and one written another way is taken in canonical form, so the state's encoding and its
    fingerprint always agree."""
    from labkit.judge.nodes import Outcome, StudentError

    node = Server(Address("s1"))
    state = state_of(node)
    for spilling in ('2,"extra",3', '2 3', '[1'):
        with pytest.raises(StudentError, match="malformed"):
            Outcome({"attrs": [["count", 0]]}, [spilling], {})
    spaced = Outcome({"attrs": [["order", 0]]}, ['[ "L" , ["T", 1] ]'], {})
    spaced.resolve(type("Snapshot", (), {"value": state, "obs": None})())
    assert spaced.state.text == NodeState.from_text(spaced.state.text).text
    assert spaced.state.fp == NodeState.from_text(spaced.state.text).fp
    assert spaced.state.attributes()["order"] == '["L",["T",1]]'
