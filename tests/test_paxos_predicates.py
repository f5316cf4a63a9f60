"""The Paxos lab's predicates about who holds a command, read through the four query methods only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.app import AMOCommand, Append, Command, Get
from labkit.labs.paxos import PaxosLogSlotStatus
from labkit.labs.paxos.predicates import LOGS_CONSISTENT, chosen_anywhere, held_by, holders
from labkit.node import Address, client, server
from labkit.wire import decode_data, encode

X, Y = Append("foo", "X"), Append("foo", "Y")


@dataclass(frozen=True)
class Batch(Command):
    """A student's batch, as the judge sees it: a record of a class it does not import."""

    commands: tuple[AMOCommand, ...]


class Server:
    """Answers the four queries from a log of ``slot -> (command, chosen)``; slots up to ``cleared`` are gone."""

    def __init__(self, address: Address, log: dict[int, tuple[Any, bool]], cleared: int = 0) -> None:
        self.address, self.log, self.cleared = address, log, cleared

    def status(self, slot: int) -> PaxosLogSlotStatus:
        if slot <= self.cleared:
            return PaxosLogSlotStatus.CLEARED
        if slot not in self.log:
            return PaxosLogSlotStatus.EMPTY
        return PaxosLogSlotStatus.CHOSEN if self.log[slot][1] else PaxosLogSlotStatus.ACCEPTED

    def command(self, slot: int) -> Any:
        return self.log[slot][0] if slot > self.cleared and slot in self.log else None

    def first_non_cleared(self) -> int:
        return self.cleared + 1

    def last_non_empty(self) -> int:
        return max(self.log, default=self.cleared)


class State:
    def __init__(self, *servers: Server) -> None:
        self.servers = list(servers)


def test_holders_finds_a_command_in_any_slot_kept_chosen_or_not() -> None:
    state = State(Server(server(1), {1: (Get("k"), True), 2: (X, False)}),
                  Server(server(2), {1: (X, True)}),
                  Server(server(3), {1: (X, True)}, cleared=1))  # cleared: no longer held
    assert holders(state, X) == [server(1), server(2)]
    assert holders(state, X, chosen=True) == [server(2)]
    assert held_by(X, 2)(state) and not held_by(X, 3)(state)
    assert chosen_anywhere(X)(state) and not chosen_anywhere(Y)(state)
    assert held_by(X, 2).name == "2 servers hold APPEND foo X" and held_by(Y, 1).name == "a server holds APPEND foo Y"


def test_a_command_inside_a_batch_is_held() -> None:
    batch = decode_data(encode(Batch((AMOCommand(Y, client(2), 1), AMOCommand(X, client(1), 1)))))
    assert type(batch).__name__ == "Batch" and not isinstance(batch, Batch)  # the judge's record of it
    state = State(Server(server(1), {1: (batch, True)}), Server(server(2), {}))
    assert holders(state, X, chosen=True) == [server(1)] and holders(state, Get("k")) == []


def test_a_query_that_raises_makes_the_predicate_false_not_the_search_crash() -> None:
    broken = Server(server(1), {1: (X, True)})
    broken.last_non_empty = lambda: 1 / 0  # type: ignore[method-assign]
    result = held_by(X, 1).evaluate(State(broken))
    assert not result.ok and "ZeroDivisionError" in (result.detail or "")


class RememberedServer(Server):
    """A server with the same memo key in every search, as a search node of an equal state has."""

    def memo_key(self) -> Any:
        return (self.address, 1234)


class SearchLikeState(State):
    """A search state: predicates may keep answers in its search's memo tables."""

    def __init__(self, tables: dict[str, dict[Any, Any]], *servers: Server) -> None:
        super().__init__(*servers)
        self.tables = tables

    def memo(self, name: str) -> dict[Any, Any]:
        return self.tables.setdefault(name, {})


def test_log_answers_kept_for_one_search_are_not_used_by_another() -> None:
    agreeing = [RememberedServer(server(i), {1: (X, True)}) for i in (1, 2, 3)]
    first_search: dict[str, dict[Any, Any]] = {}
    assert LOGS_CONSISTENT(SearchLikeState(first_search, *agreeing))
    assert first_search["paxos.logs"], "a search keeps each server's log for its other states"
    # Another search (another submission) whose servers have the same keys but answer otherwise.
    disagreeing = [RememberedServer(server(1), {1: (X, True)}), RememberedServer(server(2), {1: (Y, True)}),
                   RememberedServer(server(3), {1: (X, True)})]
    assert not LOGS_CONSISTENT(SearchLikeState({}, *disagreeing))
    assert not LOGS_CONSISTENT(State(*disagreeing))  # outside a search nothing is kept
