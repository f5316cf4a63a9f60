"""Applications that nodes replicate: commands, results, the key-value store and
the at-most-once wrapper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.node import Address, LabkitError

__all__ = [
    "Command",
    "Result",
    "Application",
    "KVStore",
    "Get",
    "Put",
    "Append",
    "GetResult",
    "KeyNotFound",
    "PutOk",
    "AppendResult",
    "AMOCommand",
    "AMOResult",
    "AMOApplication",
    "describe",
]


class Command:
    """Base class of commands. Subclass it as ``@dataclass(frozen=True)``."""

    __slots__ = ()

    @property
    def read_only(self) -> bool:
        """True for commands that never change the application's state."""
        return False


class Result:
    """Base class of results. Subclass it as ``@dataclass(frozen=True)``."""

    __slots__ = ()


class Application:
    """A deterministic state machine: ``execute(command) -> result``."""

    def execute(self, command: Command) -> Result:
        raise NotImplementedError


# --------------------------------------------------------------------------
# Key-value store
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Get(Command):
    key: str

    @property
    def read_only(self) -> bool:
        return True


@dataclass(frozen=True)
class Put(Command):
    key: str
    value: str


@dataclass(frozen=True)
class Append(Command):
    key: str
    value: str


@dataclass(frozen=True)
class GetResult(Result):
    value: str


@dataclass(frozen=True)
class KeyNotFound(Result):
    pass


@dataclass(frozen=True)
class PutOk(Result):
    pass


@dataclass(frozen=True)
class AppendResult(Result):
    """The value of the key after the append."""

    value: str


class KVStore(Application):
    """A map from string keys to string values.

    ``Get`` of a missing key returns ``KeyNotFound``; ``Append`` to a missing key
    creates it and returns the new value.
    """

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def execute(self, command: Command) -> Result:
        if isinstance(command, Get):
            if command.key in self.data:
                return GetResult(self.data[command.key])
            return KeyNotFound()
        if isinstance(command, Put):
            self.data[command.key] = command.value
            return PutOk()
        if isinstance(command, Append):
            value = self.data.get(command.key, "") + command.value
            self.data[command.key] = value
            return AppendResult(value)
        raise LabkitError(f"KVStore cannot execute {command!r}: it knows only Get, Put and Append")


# --------------------------------------------------------------------------
# At-most-once execution
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AMOCommand(Command):
    """A command tagged with the client that sent it and the client's sequence number."""

    command: Command
    client: Address
    seq: int

    @property
    def read_only(self) -> bool:
        return self.command.read_only


@dataclass(frozen=True)
class AMOResult(Result):
    """The result of an ``AMOCommand``, tagged the same way."""

    result: Result
    client: Address
    seq: int


class AMOApplication(Application):
    """Wraps an application so each client's command runs at most once.

    Clients are closed-loop (one outstanding command), so only the latest
    result per client is kept. Executing a command a second time returns the
    stored result; an older command returns None (its client has moved on).
    """

    def __init__(self, application: Application) -> None:
        self.application = application
        self.last_results: dict[Address, AMOResult] = {}

    def already_executed(self, command: AMOCommand) -> bool:
        last = self.last_results.get(command.client)
        return last is not None and last.seq >= command.seq

    def execute(self, command: Any) -> AMOResult | None:  # type: ignore[override]
        if not isinstance(command, AMOCommand):
            raise LabkitError(f"AMOApplication executes only AMOCommand values, got {command!r}")
        last = self.last_results.get(command.client)
        if last is not None and last.seq >= command.seq:
            return last if last.seq == command.seq else None
        result = AMOResult(self.application.execute(command.command), command.client, command.seq)
        self.last_results[command.client] = result
        return result

    def execute_read_only(self, command: Command) -> Result:
        """Run a read-only command directly on the wrapped application."""
        if not command.read_only:
            raise LabkitError(f"{command!r} is not read-only")
        inner = command.command if isinstance(command, AMOCommand) else command
        return self.application.execute(inner)


def describe(value: Any) -> str:
    """A short, readable rendering of a command or result for failure messages:
    ``PUT foo bar``, ``GET foo``, ``'xy'``, ``KeyNotFound``, ``Ok``."""
    from labkit.values import brief

    if isinstance(value, (AMOCommand, AMOResult)):
        return describe(value.command if isinstance(value, AMOCommand) else value.result)
    if isinstance(value, Get):
        return f"GET {value.key}"
    if isinstance(value, (Put, Append)):
        shown = value.value if len(value.value) <= 60 else value.value[:57] + "..."
        return f"{type(value).__name__.upper()} {value.key} {shown}"
    if isinstance(value, (GetResult, AppendResult)):
        return brief(value.value, 80)
    if isinstance(value, KeyNotFound):
        return "KeyNotFound"
    if isinstance(value, PutOk):
        return "Ok"
    if value is None:
        return "nothing"
    return brief(value)
