"""Clients, the closed-loop workers that drive them, and workloads.

A *client* is a :class:`~labkit.node.Node` that also implements the
:class:`Client` protocol. Tests drive it through a :class:`ClientWorker`,
which sends the commands of a :class:`Workload` one at a time, records every
result with its invoke and response times, and compares results with the
expected ones.
"""

from __future__ import annotations

import functools
import random
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

from labkit.app import (
    Append,
    AppendResult,
    Command,
    Get,
    GetResult,
    KeyNotFound,
    Put,
    PutOk,
    Result,
)
from labkit.node import Address, LabkitError, Message, Node, Timer, current_effects

__all__ = [
    "Client",
    "NoResultYet",
    "ClientWorker",
    "Workload",
    "WorkloadError",
    "HistoryRecord",
    "parse_kv_command",
    "parse_kv_result",
]


class NoResultYet(LabkitError):
    """Raised by ``Client.get_result()`` when the latest command has no result yet."""


@runtime_checkable
class Client(Protocol):
    """What every client node offers. Clients are closed-loop: one command at a time."""

    def send_command(self, command: Command) -> None:
        """Start ``command`` and return at once; the result arrives later."""

    def has_result(self) -> bool:
        """True once the result of the latest command has arrived."""

    def get_result(self) -> Result:
        """The result of the latest command (the same on every call);
        raises :class:`NoResultYet` before it has arrived."""


class WorkloadError(LabkitError):
    """A workload string that does not parse, or a workload used wrongly."""


# --------------------------------------------------------------------------
# KV command strings
# --------------------------------------------------------------------------


def parse_kv_command(text: str) -> Command:
    """Parse ``PUT:key:value``, ``APPEND:key:value`` or ``GET:key``."""
    parts = text.split(":", 2)
    op = parts[0].upper()
    if op == "GET" and len(parts) == 2:
        return Get(parts[1])
    if op in ("PUT", "APPEND") and len(parts) == 3:
        return Put(parts[1], parts[2]) if op == "PUT" else Append(parts[1], parts[2])
    raise WorkloadError(
        f"cannot parse the command {text!r}: expected PUT:key:value, APPEND:key:value or GET:key"
    )


def parse_kv_result(text: str, command: Command) -> Result:
    """Parse an expected result for ``command``: ``Ok``, ``KeyNotFound`` or a value."""
    if isinstance(command, Put):
        if text.lower() not in ("ok", "putok"):
            raise WorkloadError(f"the expected result of {text!r} for a PUT must be 'Ok'")
        return PutOk()
    if isinstance(command, Append):
        return AppendResult(text)
    if text == "KeyNotFound":
        return KeyNotFound()
    return GetResult(text)


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%(r|n)(\d*)|%a|%i([+-]1)?")
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Workload:
    """The commands a client worker sends, with optional expected results.

    Build one from command objects (``Workload(commands=[...])``) or from
    strings with :meth:`from_strings`. String placeholders:

    ``%r`` / ``%rN``: a random alphanumeric string of 8 / N characters;
    ``%n`` / ``%nN``: a random integer in 1..100 / 1..N;
    ``%a``: the client's address; ``%i``, ``%i-1``, ``%i+1``: the 1-based
    command number, one less, one more.

    Within one pass over the command strings, each random placeholder (say
    ``%r8``) takes one value, shared by the commands and expected results of
    that pass, so ``PUT:k:%r8`` followed by ``GET:k`` expecting ``%r8`` works.
    Random values come from the workload's own seed, so a workload always
    produces the same commands.
    """

    command_strings: tuple[str, ...] = ()
    result_strings: tuple[str, ...] | None = None
    commands: tuple[Command, ...] | None = None
    results: tuple[Result, ...] | None = None
    repeat: int = 1
    infinite: bool = False
    millis_between_requests: int = 0
    seed: int = 0
    parse_command: Callable[[str], Command] = parse_kv_command
    parse_result: Callable[[str, Command], Result] = parse_kv_result

    def __post_init__(self) -> None:
        if self.commands is None and not self.command_strings and (self.infinite or self.repeat != 1):
            raise WorkloadError("an infinite or repeated workload needs at least one command")
        if self.commands is not None and self.command_strings:
            raise WorkloadError("give either command objects or command strings, not both")
        if self.result_strings is not None and len(self.result_strings) != len(self.command_strings):
            raise WorkloadError(
                f"{len(self.command_strings)} command strings but {len(self.result_strings)} result strings"
            )
        if self.results is not None and (self.commands is None or len(self.results) != len(self.commands)):
            raise WorkloadError("expected results must match the commands one to one")
        if self.repeat < 1:
            raise WorkloadError(f"repeat must be at least 1, got {self.repeat}")
        if self.millis_between_requests < 0:
            raise WorkloadError("millis_between_requests cannot be negative")
        for text in self.command_strings + (self.result_strings or ()):
            for match in re.finditer(r"%[^rnai]", text):
                raise WorkloadError(f"unknown placeholder {match.group()!r} in {text!r}: use %r %rN %n %nN %a %i")
        # Parse every string once with dummy values so a bad one fails when the test is built.
        for number in range(1, len(self.command_strings) + 1):
            self.command_and_result(number, Address("client"))

    # ---- construction helpers ----------------------------------------------

    @classmethod
    def from_strings(
        cls,
        commands: Sequence[str],
        results: Sequence[str] | None = None,
        **options: Any,
    ) -> "Workload":
        """A workload of command strings (KV syntax by default) with optional expected results."""
        return cls(
            command_strings=tuple(commands),
            result_strings=None if results is None else tuple(results),
            **options,
        )

    @classmethod
    def of(cls, commands: Sequence[Command], results: Sequence[Result] | None = None, **options: Any) -> "Workload":
        """A workload of ready-made command objects with optional expected results."""
        return cls(commands=tuple(commands), results=None if results is None else tuple(results), **options)

    # ---- what workers ask ----------------------------------------------------

    @property
    def size(self) -> int | None:
        """How many commands the workload has; None if infinite."""
        if self.infinite:
            return None
        base = len(self.commands) if self.commands is not None else len(self.command_strings)
        return base * self.repeat

    @property
    def has_results(self) -> bool:
        return self.results is not None or self.result_strings is not None

    def has_command(self, number: int) -> bool:
        size = self.size
        return size is None or number <= size

    def command(self, number: int, address: Address, salt: str = "") -> Command:
        """The ``number``-th command (1-based) for the client at ``address``."""
        return self.command_and_result(number, address, salt)[0]

    def command_and_result(self, number: int, address: Address, salt: str = "") -> tuple[Command, Result | None]:
        """The ``number``-th command and its expected result (None if none is expected).

        ``salt`` varies the random placeholders between uses of one workload
        (a worker passes its run's seed and the workload's position)."""
        return _generate(self, number, address, salt)

    def _command_and_result(self, number: int, address: Address, salt: str) -> tuple[Command, Result | None]:
        if not self.has_command(number):
            raise WorkloadError(f"the workload has only {self.size} commands, not {number}")
        if self.commands is not None:
            i = (number - 1) % len(self.commands)
            return self.commands[i], (self.results[i] if self.results is not None else None)
        n = len(self.command_strings)
        i = (number - 1) % n
        pass_number = (number - 1) // n
        # Draw this pass's random tokens in one fixed order (all command strings,
        # then all result strings), so every command and result of the pass sees
        # the same values.
        tokens: dict[str, str] = {}
        rng = random.Random(f"{self.seed}:{salt}:{address.name}:{pass_number}")
        for text in self.command_strings + (self.result_strings or ()):
            self._replace(text, number, address, tokens, rng)
        command = self.parse_command(self._replace(self.command_strings[i], number, address, tokens, rng))
        if self.result_strings is None:
            return command, None
        result_text = self._replace(self.result_strings[i], number, address, tokens, rng)
        return command, self.parse_result(result_text, command)

    @staticmethod
    def _replace(text: str, number: int, address: Address, tokens: dict[str, str], rng: random.Random) -> str:
        def substitute(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "%a":
                return address.name
            if whole.startswith("%i"):
                offset = match.group(3)
                return str(number + (int(offset) if offset else 0))
            if whole not in tokens:
                kind, digits = match.group(1), match.group(2)
                if kind == "r":
                    tokens[whole] = "".join(rng.choice(_ALPHANUMERIC) for _ in range(int(digits or 8)))
                else:
                    tokens[whole] = str(rng.randint(1, int(digits or 100)))
            return tokens[whole]

        return _PLACEHOLDER.sub(substitute, text)

    def __iter__(self) -> Iterator[Command]:
        if self.infinite:
            raise WorkloadError("cannot list an infinite workload")
        address = Address("client")
        return iter([self.command(i, address) for i in range(1, (self.size or 0) + 1)])


# --------------------------------------------------------------------------
# Client workers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRecord:
    """One completed or pending command of a worker, with engine times.

    ``response`` is None while the command is outstanding. Searches have no
    clock, so there both times are None.
    """

    client: Address
    command: Command
    result: Result | None
    invoke: int | None
    response: int | None

    def when(self) -> str:
        """`` (invoked at t=.., answered at t=..)``, `` (sent at t=..)`` while outstanding, or nothing in a
        search; failure pictures read these words to find the part of a run to draw."""
        if self.invoke is None:
            return ""
        if self.response is None:
            return f" (sent at t={self.invoke})"
        return f" (invoked at t={self.invoke}, answered at t={self.response})"


@dataclass(frozen=True)
class InterRequestTimer(Timer):
    """Paces a rate-limited workload: the next command goes out when it fires."""

    number: int


@functools.lru_cache(maxsize=1 << 16)
def _generate(workload: Workload, number: int, address: Address, salt: str) -> tuple[Command, Result | None]:
    return workload._command_and_result(number, address, salt)


class ClientWorker(Node):
    """A framework node (in the judge) that drives a student client through a workload.

    The worker lives at the client's address. Every message and timer for the
    client goes to the client, in its worker process; with each event the
    worker asks whether a result arrived and, if the next command should go
    out at once, has the client send it in the same step. It records every
    result with its invoke and response times. Its state (what searches
    compare) is the client's state, the number of commands sent and the
    results received.
    """

    def __init__(self, client: Any, workload: Workload, record_results: bool = True, seed: int = 0) -> None:
        super().__init__(client.address)
        self.client = client
        self.results: list[Result | None] = []
        self.sent = 0
        self._lk_segments: list[tuple[int, Workload]] = [(0, workload)]
        self._lk_seed = seed
        self._lk_record = record_results
        self._lk_history: list[HistoryRecord] = []
        self._lk_result_fps: tuple[int, ...] = ()
        self._lk_invoked_at: int | None = 0
        self._lk_max_wait = 0

    def copy(self) -> "ClientWorker":
        """A copy that shares nothing mutable with this worker (searches step copies)."""
        new = object.__new__(ClientWorker)
        new.__dict__.update(self.__dict__)
        new.results = list(self.results)
        new._lk_segments = list(self._lk_segments)
        new._lk_history = list(self._lk_history)
        return new

    @property
    def fp(self) -> int:
        """What a search compares: the client's state, the commands sent and the results received."""
        return hash((self.client.fp, self.sent, self._lk_result_fps, len(self._lk_segments)))

    # ---- workload ----------------------------------------------------------------

    def _command_and_result(self, number: int) -> tuple[Command, Result | None]:
        for offset, workload in reversed(self._lk_segments):
            if number > offset:
                return workload.command_and_result(number - offset, self.address, f"{self._lk_seed}:{offset}")
        raise WorkloadError(f"no command number {number}")

    def _has_command(self, number: int) -> bool:
        offset, workload = self._lk_segments[-1]
        return number > offset and workload.has_command(number - offset)

    def add_commands(self, workload: Workload) -> None:
        """Queue ``workload``'s commands after all commands queued so far.

        Call :meth:`labkit.sim.Simulation.resume_clients` (or ``resume``) to
        send the first one if the worker is idle."""
        offset, last = self._lk_segments[-1]
        if last.size is None:
            raise WorkloadError("cannot add commands after an infinite workload")
        self._lk_segments.append((offset + last.size, workload))

    @property
    def workload(self) -> Workload:
        """The workload being run (the latest one added)."""
        return self._lk_segments[-1][1]

    # ---- state queries -----------------------------------------------------------

    @property
    def done(self) -> bool:
        """True when no command is outstanding and the workload has no more."""
        return self.sent == len(self.results) and not self._has_command(self.sent + 1)

    @property
    def outstanding(self) -> bool:
        return self.sent > len(self.results)

    @property
    def history(self) -> list[HistoryRecord]:
        """Every command this worker sent, with invoke/response times (pending last)."""
        records = list(self._lk_history)
        if self.outstanding:
            command = self._command_and_result(self.sent)[0]
            records.append(HistoryRecord(self.address, command, None, self._lk_invoked_at, None))
        return records

    @property
    def completed(self) -> list[HistoryRecord]:
        """The completed commands with their results (kept even when ``record_results`` is off)."""
        return self._lk_history

    @property
    def expected_results(self) -> list[Result | None]:
        """The expected result of each completed command (None where none was given)."""
        return [self._command_and_result(n)[1] for n in range(1, len(self._lk_history) + 1)]

    def max_wait(self, now: int) -> int:
        """The longest wait for one result, counting an outstanding command up to ``now``."""
        waiting = now - self._lk_invoked_at if self.outstanding and self._lk_invoked_at is not None else 0
        return max(self._lk_max_wait, waiting)

    # ---- events (what the engines call) ------------------------------------------------------

    def follow_up(self) -> tuple[str, tuple[Command]] | None:
        """The call that sends the next command in the same step, should a result arrive with this event."""
        if not self.outstanding:
            return None
        number = self.sent + 1
        if not self._has_command(number) or self._lk_segments[-1][1].millis_between_requests > 0:
            return None
        return "send_command", (self._command_and_result(number)[0],)

    def absorb(self, outcome: Any, now: int | None) -> None:
        """Take in what the client did in one step: a result that arrived, and the next command
        if the step sent it (``outcome.followed``); a rate-limited workload sets its timer instead."""
        if not self.outstanding or not _answered(outcome.obs):
            return
        result = _result(outcome.obs)
        command = self._command_and_result(self.sent)[0]
        self.results.append(result.value if self._lk_record else None)
        self._lk_result_fps = self._lk_result_fps + (result.fp,)
        self._lk_history.append(HistoryRecord(self.address, command, result.value, self._lk_invoked_at, now))
        if now is not None and self._lk_invoked_at is not None:
            self._lk_max_wait = max(self._lk_max_wait, now - self._lk_invoked_at)
        number = self.sent + 1
        if outcome.followed:
            self.sent = number
            self._lk_invoked_at = now
        elif self._has_command(number):
            self.set_timer(InterRequestTimer(number), self._lk_segments[-1][1].millis_between_requests)

    def init(self) -> None:
        self.client.init()
        self.resume()

    def deliver_message(self, message: Any, sender: Address) -> Any:
        self.deliver("message", sender, message)

    def deliver_timer(self, timer: Any) -> Any:
        self.deliver("timer", None, timer)

    def deliver(self, kind: str, sender: Address | None, item: Any, sample: bool = False) -> None:
        """One event for the client (a pacing timer of the worker's own is handled here)."""
        if type(item) is InterRequestTimer:
            if item.number == self.sent + 1 and not self.outstanding and self._has_command(item.number):
                self._send(item.number)
            return
        outcome = self.client.step(kind, sender, item, self.follow_up(), sample)
        self.absorb(outcome, current_effects().now)

    def resume(self) -> None:
        """Send the next command if the worker is idle and has one."""
        if not self.outstanding and self._has_command(self.sent + 1):
            self._send(self.sent + 1)

    def _send(self, number: int) -> None:
        self.sent = number
        self._lk_invoked_at = current_effects().now
        self.client.call("send_command", self._command_and_result(number)[0])

    def __repr__(self) -> str:
        return f"ClientWorker({self.client.class_name} at {self.address})"


_NO_ARGS = '["T"]'


def _answered(obs: Any) -> bool:
    found = obs.find("has_result", _NO_ARGS) if obs is not None else None
    return found is not None and found[1] is None and found[0] is True


def _result(obs: Any) -> Any:
    """The result the client reported (its encoding), or an error raised by get_result()."""
    from labkit.judge.nodes import remote_exception
    from labkit.wire import WireValue

    found = obs.find("get_result", _NO_ARGS)
    text = obs.text_of("get_result", _NO_ARGS)
    if found is None or found[1] is not None or text is None:
        raise remote_exception((found or (None, None))[1] or {
            "type": "NoResultYet", "message": "has_result() was True but get_result() gave nothing"})
    value = WireValue(text)
    value._value = found[0]
    return value
