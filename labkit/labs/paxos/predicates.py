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
from labkit.wire import Record

__all__ = [
    "MARKERS_VALID",
    "LOGS_CONSISTENT",
    "LOGS_CONSISTENT_ALL_SLOTS",
    "slot_valid",
    "has_status",
    "has_command",
    "holders",
    "held_by",
    "chosen_anywhere",
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


class _Log:
    """One server's log as the predicates read it: each query asked once. A search state's
    server never changes, so its log is kept for every state that holds the same server."""

    __slots__ = ("server", "_markers", "_problem", "_slots")

    def __init__(self, server: Any) -> None:
        self.server = server
        self._markers: tuple[int, int] | None = None
        self._problem: str | None | bool = False  # False: not checked yet
        self._slots: dict[int, tuple[PaxosLogSlotStatus, Any]] = {}

    @property
    def address(self) -> Address:
        return self.server.address

    def markers(self) -> tuple[int, int]:
        if self._markers is None:
            self._markers = _markers(self.server)
        return self._markers

    def status(self, slot: int) -> PaxosLogSlotStatus:
        found = self._slots.get(slot)
        return found[0] if found is not None else _status(self.server, slot)

    def slot(self, slot: int) -> tuple[PaxosLogSlotStatus, Any]:
        """``(status(slot), command(slot))``."""
        found = self._slots.get(slot)
        if found is None:
            found = self._slots[slot] = (_status(self.server, slot), _call(self.server, "command", slot))
        return found

    def markers_problem(self) -> str | None:
        """What is wrong with this server's markers, or None."""
        if self._problem is False:
            self._problem = _markers_problem(self)
        return self._problem  # type: ignore[return-value]


_LOGS_LIMIT = 100_000


def _logs(state: Any) -> list[_Log]:
    """The servers' logs; in a search, a server's log is shared by every state of that search
    holding the same server (never across searches: answers come from one submission's code)."""
    memo = getattr(state, "memo", None)
    table = memo("paxos.logs") if memo is not None else None
    logs = []
    for server in state.servers:
        memo_key = getattr(type(server), "memo_key", None)
        key = memo_key(server) if memo_key is not None and table is not None else None
        if key is None:
            logs.append(_Log(server))
            continue
        log = table.get(key)
        if log is None:
            if len(table) >= _LOGS_LIMIT:
                table.clear()
            log = table[key] = _Log(server)
        logs.append(log)
    return logs


def _guarded(fn: Any) -> Any:
    def check(state: Any) -> tuple[bool, str | None]:
        try:
            return fn(state)
        except QueryError as error:
            return False, str(error)

    return check


def _markers_problem(log: _Log) -> str | None:
    a = log.address
    nc, ne = log.markers()
    if nc < 1:
        return f"{a}.first_non_cleared() is {nc}; it must be at least 1"
    if ne < 0:
        return f"{a}.last_non_empty() is {ne}; it must be at least 0"
    if log.status(nc) is CLEARED:
        return f"{a}: slot {nc} is first_non_cleared() but its status is CLEARED"
    if ne > 0 and log.status(ne) is EMPTY:
        return f"{a}: slot {ne} is last_non_empty() but its status is EMPTY"
    if nc > 1 and log.status(nc - 1) is not CLEARED:
        return f"{a}: slot {nc - 1}, just before first_non_cleared() = {nc}, is not CLEARED"
    after = log.status(ne + 1)
    if after is not EMPTY:
        return f"{a}: slot {ne + 1}, just after last_non_empty() = {ne}, is {after.name}, not EMPTY"
    if nc > ne + 1:
        return f"{a}: first_non_cleared() = {nc} is more than last_non_empty() + 1 = {ne + 1}"
    return None


def _markers_valid(state: Any, logs: list[_Log] | None = None) -> tuple[bool, str | None]:
    for log in logs if logs is not None else _logs(state):
        problem = log.markers_problem()
        if problem is not None:
            return False, problem
    return True, None


MARKERS_VALID = Predicate("Log markers valid", _guarded(_markers_valid), reads="servers")


def _check_slot(logs: list[_Log], slot: int) -> str | None:
    """The first problem with ``slot`` across servers, or None."""
    chosen = None
    chosen_at: Address | None = None
    statuses = []
    for log in logs:
        a = log.address
        nc, ne = log.markers()
        status, command = log.slot(slot)
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
    if votes * 2 <= len(logs):
        if chosen_at is not None:
            return f"{describe(chosen)} chosen for slot {slot} without a majority accepting"
        return f"Slot {slot} cleared without a majority accepting"
    return None


def slot_valid(slot: int) -> Predicate:
    """The servers' logs agree on ``slot``: markers respected, at most one chosen
    command, and a chosen or cleared slot backed by a majority."""

    def check(state: Any) -> tuple[bool, str | None]:
        logs = _logs(state)
        for log in logs:
            log.markers()
        problem = _check_slot(logs, slot)
        return problem is None, problem

    return Predicate(f"Logs consistent for slot {slot}", _guarded(check), reads="servers")


def _logs_consistent(all_slots: bool) -> Any:
    def check(state: Any) -> tuple[bool, str | None]:
        logs = _logs(state)
        ok, detail = _markers_valid(state, logs)
        if not ok:
            return ok, detail
        if not logs:
            return True, None
        markers = [log.markers() for log in logs]
        first = 1 if all_slots else min(nc for nc, _ in markers)
        last = max(ne for _, ne in markers)
        for slot in range(first, last + 1):
            problem = _check_slot(logs, slot)
            if problem is not None:
                return False, problem
        return True, None

    return _guarded(check)


LOGS_CONSISTENT = Predicate("Active log slots consistent", _logs_consistent(False), reads="servers")
LOGS_CONSISTENT_ALL_SLOTS = Predicate("Non-empty log slots consistent", _logs_consistent(True), reads="servers")


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

    return Predicate(f"{address} has slot {slot} {status.name}", _guarded(check), reads="servers")


def has_command(address: Address, slot: int, command: Any) -> Predicate:
    """``address`` holds ``command`` (accepted or chosen) in ``slot``."""

    def check(state: Any) -> tuple[bool, str | None]:
        found = _call(_server(state, address), "command", slot)
        return found == command, None if found == command else f"{address} has {describe(found)} in slot {slot}"

    return Predicate(f"{address} has {describe(command)} in slot {slot}", _guarded(check), reads="servers")


def _includes(value: Any, command: Any) -> bool:
    """``value`` is ``command``, or a batch (any value holding AMOCommands) that holds it."""
    if value == command:
        return True
    if isinstance(value, AMOCommand):
        return value.command == command
    if isinstance(value, (tuple, list, frozenset, set)):
        return any(_includes(item, command) for item in value)
    if isinstance(value, Record):
        return any(_includes(getattr(value, name), command) for name in value.fields())
    return False


def _holds(server: Any, command: Any, chosen: bool = False) -> bool:
    nc, ne = _markers(server)
    return any(_includes(_call(server, "command", slot), command)
               and (not chosen or _status(server, slot) is CHOSEN) for slot in range(nc, ne + 1))


def holders(state: Any, command: Any, chosen: bool = False) -> list[Address]:
    """The servers that hold ``command`` (accepted or chosen, alone or in a batch) in a slot they keep;
    with ``chosen``, only those that know it is chosen."""
    return [server.address for server in state.servers if _holds(server, command, chosen)]


def held_by(command: Any, count: int) -> Predicate:
    """At least ``count`` servers hold ``command`` in some slot (see :func:`holders`)."""

    def check(state: Any) -> bool:
        return len(holders(state, command)) >= count

    servers = "a server holds" if count == 1 else f"{count} servers hold"
    return Predicate(f"{servers} {describe(command)}", _guarded(check), reads="servers")


def chosen_anywhere(command: Any) -> Predicate:
    """Some server has ``command`` in a CHOSEN slot."""

    def check(state: Any) -> bool:
        return any(_holds(server, command, chosen=True) for server in state.servers)

    return Predicate(f"{describe(command)} chosen at a server", _guarded(check), reads="servers")
