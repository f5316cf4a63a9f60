"""The Paxos lab's predicates over servers' logs, each failure explained in one sentence.

They read servers only through the four query methods (``status``,
``command``, ``first_non_cleared``, ``last_non_empty``), whose rules are
checked too: a query that raises or returns the wrong type is reported as
such.
"""

from __future__ import annotations

from typing import Any

from labkit.app import AMOCommand, describe
from labkit.check.predicates import Predicate
from labkit.labs.paxos import PaxosLogSlotStatus
from labkit.node import Address

__all__ = [
    "MARKERS_VALID",
    "LOGS_CONSISTENT",
    "LOGS_CONSISTENT_ALL_SLOTS",
    "slot_valid",
    "has_status",
    "has_command",
    "QueryError",
]

EMPTY = PaxosLogSlotStatus.EMPTY
ACCEPTED = PaxosLogSlotStatus.ACCEPTED
CHOSEN = PaxosLogSlotStatus.CHOSEN
CLEARED = PaxosLogSlotStatus.CLEARED


class QueryError(Exception):
    """A server's query method raised or returned a value of the wrong type."""


def _call(server: Any, method: str, *args: Any) -> Any:
    try:
        return getattr(server, method)(*args)
    except AttributeError as error:
        if not hasattr(server, method):
            raise QueryError(f"{server.address} has no method {method}(); the tests need it") from None
        raise QueryError(f"{server.address}.{method}{args} raised AttributeError: {error}") from None
    except Exception as error:
        shown = f"({args[0]})" if args else "()"
        raise QueryError(f"{server.address}.{method}{shown} raised {type(error).__name__}: {error}") from None


def _markers(server: Any) -> tuple[int, int]:
    nc = _call(server, "first_non_cleared")
    ne = _call(server, "last_non_empty")
    for name, value in (("first_non_cleared", nc), ("last_non_empty", ne)):
        if type(value) is not int:
            raise QueryError(f"{server.address}.{name}() returned {value!r}; it must return an int")
    return nc, ne


def _status(server: Any, slot: int) -> PaxosLogSlotStatus:
    status = _call(server, "status", slot)
    if not isinstance(status, PaxosLogSlotStatus):
        raise QueryError(f"{server.address}.status({slot}) returned {status!r}; it must return a PaxosLogSlotStatus")
    return status


def _guarded(fn: Any) -> Any:
    def check(state: Any) -> tuple[bool, str | None]:
        try:
            return fn(state)
        except QueryError as error:
            return False, str(error)

    return check


def _markers_valid(state: Any) -> tuple[bool, str | None]:
    for server in state.servers:
        a = server.address
        nc, ne = _markers(server)
        if nc < 1:
            return False, f"{a}.first_non_cleared() is {nc}; it must be at least 1"
        if ne < 0:
            return False, f"{a}.last_non_empty() is {ne}; it must be at least 0"
        if _status(server, nc) is CLEARED:
            return False, f"{a}: slot {nc} is first_non_cleared() but its status is CLEARED"
        if ne > 0 and _status(server, ne) is EMPTY:
            return False, f"{a}: slot {ne} is last_non_empty() but its status is EMPTY"
        if nc > 1 and _status(server, nc - 1) is not CLEARED:
            return False, f"{a}: slot {nc - 1}, just before first_non_cleared() = {nc}, is not CLEARED"
        after = _status(server, ne + 1)
        if after is not EMPTY:
            return False, f"{a}: slot {ne + 1}, just after last_non_empty() = {ne}, is {after.name}, not EMPTY"
        if nc > ne + 1:
            return False, f"{a}: first_non_cleared() = {nc} is more than last_non_empty() + 1 = {ne + 1}"
    return True, None


MARKERS_VALID = Predicate("Log markers valid", _guarded(_markers_valid))


def _check_slot(state: Any, slot: int, markers: dict[Address, tuple[int, int]]) -> str | None:
    """The first problem with ``slot`` across servers, or None."""
    servers = state.servers
    chosen = None
    chosen_at: Address | None = None
    statuses = []
    for server in servers:
        a = server.address
        nc, ne = markers[a]
        status = _status(server, slot)
        command = _call(server, "command", slot)
        statuses.append((status, command))
        if slot < nc and status is not CLEARED:
            return f"{a}: slot {slot} is below first_non_cleared() = {nc} but its status is {status.name}, not CLEARED"
        if slot > ne and status is not EMPTY:
            return f"{a}: slot {slot} is after last_non_empty() = {ne} but its status is {status.name}, not EMPTY"
        if status in (EMPTY, CLEARED) and command is not None:
            return f"{a}: slot {slot} is {status.name} but command({slot}) returned {describe(command)} instead of None"
        if isinstance(command, AMOCommand):
            return f"{a}.command({slot}) returned an AMOCommand; return the command inside it"
        if status is CHOSEN:
            if chosen_at is not None and command != chosen:
                return (
                    f"{chosen_at} and {a} have different commands chosen for slot {slot}: "
                    f"{describe(chosen)} and {describe(command)}"
                )
            chosen, chosen_at = command, a
    settled = [s for s, _ in statuses if s in (CHOSEN, CLEARED)]
    if not settled:
        return None
    votes = sum(
        1
        for status, command in statuses
        if status in (CHOSEN, CLEARED) or (status is ACCEPTED and (chosen_at is None or command == chosen))
    )
    if votes * 2 <= len(servers):
        if chosen_at is not None:
            return f"{describe(chosen)} chosen for slot {slot} without a majority accepting"
        return f"Slot {slot} cleared without a majority accepting"
    return None


def slot_valid(slot: int) -> Predicate:
    """The servers' logs agree on ``slot``: markers respected, at most one chosen
    command, and a chosen or cleared slot backed by a majority."""

    def check(state: Any) -> tuple[bool, str | None]:
        markers = {s.address: _markers(s) for s in state.servers}
        problem = _check_slot(state, slot, markers)
        return problem is None, problem

    return Predicate(f"Logs consistent for slot {slot}", _guarded(check))


def _logs_consistent(all_slots: bool) -> Any:
    def check(state: Any) -> tuple[bool, str | None]:
        ok, detail = _markers_valid(state)
        if not ok:
            return ok, detail
        markers = {s.address: _markers(s) for s in state.servers}
        if not markers:
            return True, None
        first = 1 if all_slots else min(nc for nc, _ in markers.values())
        last = max(ne for _, ne in markers.values())
        for slot in range(first, last + 1):
            problem = _check_slot(state, slot, markers)
            if problem is not None:
                return False, problem
        return True, None

    return _guarded(check)


LOGS_CONSISTENT = Predicate("Active log slots consistent", _logs_consistent(False))
LOGS_CONSISTENT_ALL_SLOTS = Predicate("Non-empty log slots consistent", _logs_consistent(True))


def _server(state: Any, address: Address) -> Any:
    for server in state.servers:
        if server.address == address:
            return server
    raise QueryError(f"there is no server {address}")


def has_status(address: Address, slot: int, status: PaxosLogSlotStatus) -> Predicate:
    """``address``'s slot has ``status``."""

    def check(state: Any) -> tuple[bool, str | None]:
        found = _status(_server(state, address), slot)
        return found is status, None if found is status else f"{address} has slot {slot} {found.name}"

    return Predicate(f"{address} has slot {slot} {status.name}", _guarded(check))


def has_command(address: Address, slot: int, command: Any) -> Predicate:
    """``address`` holds ``command`` (accepted or chosen) in ``slot``."""

    def check(state: Any) -> tuple[bool, str | None]:
        found = _call(_server(state, address), "command", slot)
        return found == command, None if found == command else f"{address} has {describe(found)} in slot {slot}"

    return Predicate(f"{address} has {describe(command)} in slot {slot}", _guarded(check))
