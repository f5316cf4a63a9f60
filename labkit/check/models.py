"""Built-in sequential models for :func:`labkit.check.linearizability.check`.

* :func:`kv_model`: labkit's key-value store (Get, Put, Append), one partition per key.
* :func:`register_model`: a single register with read, write and compare-and-set,
  as in Jepsen's etcd tests.

An output of None always means "any output" (the outcome is unknown or was not
recorded): the step is then legal and has its usual effect.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

from labkit.app import (
    AMOCommand,
    AMOResult,
    Append,
    AppendResult,
    Get,
    GetResult,
    KeyNotFound,
    Put,
    PutOk,
)
from labkit.check.linearizability import Model, Operation

__all__ = [
    "kv_model",
    "register_model",
    "Read",
    "Write",
    "Cas",
    "ReadResult",
    "WriteOk",
    "CasResult",
]


# --------------------------------------------------------------------------
# Key-value store
# --------------------------------------------------------------------------


def _unwrap(value: Any) -> Any:
    if isinstance(value, AMOCommand):
        return value.command
    if isinstance(value, AMOResult):
        return value.result
    return value


def _kv_key(input: Any) -> str:
    command = _unwrap(input)
    if not isinstance(command, (Get, Put, Append)):
        raise TypeError(f"the kv model checks Get, Put and Append commands, not {input!r}")
    return command.key


def _kv_apply(current: str | None, command: Any, output: Any, missing_text: str | None) -> tuple[bool, str | None]:
    """One KV command on one key whose value is ``current`` (None: missing)."""
    result = output.result if isinstance(output, AMOResult) else output
    if isinstance(command, Get):
        if result is None:
            return True, current
        if isinstance(result, GetResult):
            return result.value == current, current
        if isinstance(result, KeyNotFound):
            return current is None or current == missing_text, current
        return False, current
    if isinstance(command, Append):
        new = command.value if current is None else current + command.value
        if result is None:
            return True, new
        return isinstance(result, AppendResult) and result.value == new, new
    if isinstance(command, Put):
        return result is None or isinstance(result, PutOk), command.value
    raise TypeError(f"the kv model checks Get, Put and Append commands, not {command!r}")


def _kv_read_only(input: Any, output: Any) -> bool:
    """A Get never changes the store."""
    return isinstance(input.command if isinstance(input, AMOCommand) else input, Get)


def _describe_kv(input: Any, output: Any) -> str:
    command, result = _unwrap(input), _unwrap(output)
    if isinstance(command, Get):
        what = f"GET {command.key!r}"
    elif isinstance(command, Put):
        what = f"PUT {command.key!r} = {command.value!r}"
    elif isinstance(command, Append):
        what = f"APPEND {command.value!r} to {command.key!r}"
    else:
        what = repr(command)
    if result is None:
        if isinstance(command, Get):
            return f"{what} (result not known)"
        return what
    if isinstance(result, GetResult):
        return f"{what}, which returned {result.value!r}"
    if isinstance(result, KeyNotFound):
        return f"{what}, which returned key-not-found"
    if isinstance(result, PutOk):
        return f"{what}, which returned ok"
    if isinstance(result, AppendResult):
        return f"{what}, which returned {result.value!r}"
    return f"{what}, which returned {result!r}"


class _KeyHistory:
    """What the key-value model's lookahead and overwritten hooks know about the
    operations on one key (``ops``, completed ones first by call); each part is
    worked out when first needed.

    Between Puts a value only grows by appends. So the value that a completed
    Get read (or a completed Append returned) must start with the current
    value, unless a Put can still come first; then it must start with the value
    of one of those Puts (the last one before it). The Puts that can come first
    are the unplaced ones called by its return: a prefix of the Puts by call.
    """

    def __init__(self, ops: list[Operation], missing_text: str | None) -> None:
        self.ops = ops
        self.missing_text = missing_text
        self.n = len(ops)
        self._seen: list[Any] = [_UNKNOWN] * self.n  # the value ops[j] is known to have seen, or None
        self._following = [-1] * (self.n + 1)  # the first j >= i that saw a value (n: none)
        self._following[self.n] = self.n
        self._puts: tuple[list[float], list[int], dict[int, str]] | None = None
        self._observed: tuple[list[str], list[int]] | None = None

    def _observer(self, i: int) -> int:
        following, seen, ops = self._following, self._seen, self.ops
        j = i
        while following[j] < 0:
            value = seen[j]
            if value is _UNKNOWN:
                op = ops[j]
                result = _unwrap(op.output)
                value = seen[j] = (
                    result.value if op.ret is not None and isinstance(result, (GetResult, AppendResult)) else None
                )
            if value is not None:
                following[j] = j
                break
            j += 1
        found = following[j]
        for k in range(i, j):
            following[k] = found
        return found

    def _put_table(self) -> tuple[list[float], list[int], dict[int, str]]:
        if self._puts is None:
            ops = self.ops
            put_calls = sorted((op.call, k) for k, op in enumerate(ops) if isinstance(_unwrap(op.input), Put))
            masks = [0]
            for _, k in put_calls:
                masks.append(masks[-1] | 1 << k)
            values = {k: _unwrap(ops[k].input).value for _, k in put_calls}
            self._puts = ([call for call, _ in put_calls], masks, values)
        return self._puts

    def viable(self, state: str | None, done: int, i: int) -> bool:
        """False if an unplaced completed operation that saw a value, among those
        that may go next (before ``i``) and the first one after them, never can."""
        if state is None:
            return True
        following, seen, n = self._following, self._seen, self.n
        j = (~done & (done + 1)).bit_length() - 1  # the first unplaced operation
        while True:
            j = following[j] if following[j] >= 0 else self._observer(j)
            if j >= n:
                return True
            if done >> j & 1:
                j += 1
                continue
            target = seen[j]
            if not target.startswith(state):
                calls, masks, values = self._put_table()
                pending = masks[bisect_right(calls, self.ops[j].ret)] & ~done
                while pending:
                    low = pending & -pending
                    if target.startswith(values[low.bit_length() - 1]):
                        break
                    pending ^= low
                else:
                    return False
            if j >= i:
                return True
            j += 1

    def dead(self, state: str | None, done: int) -> bool:
        """True if no unplaced operation that observes a value (a Get or an Append
        with its result, a Get of a missing key) observes one starting with
        ``state``: each must then wait for a Put; until it, every operation is
        legal whatever the value, and after it the value is the Put's."""
        if state is None:
            return False
        following, n = self._following, self.n
        j = (~done & (done + 1)).bit_length() - 1
        while True:
            j = following[j] if following[j] >= 0 else self._observer(j)
            if j >= n or not done >> j & 1:
                break
            j += 1
        if j < n and self._seen[j].startswith(state):
            return False  # the next completed read can still see it
        if self._observed is None:
            observed = []
            for j, op in enumerate(self.ops):
                result = _unwrap(op.output)
                if isinstance(result, (GetResult, AppendResult)):
                    observed.append((result.value, j))
                elif isinstance(result, KeyNotFound) and self.missing_text is not None:
                    observed.append((self.missing_text, j))
            observed.sort()
            self._observed = ([value for value, _ in observed], [j for _, j in observed])
        values, where = self._observed
        for k in range(bisect_left(values, state), len(values)):
            if not values[k].startswith(state):
                return True
            if not done >> where[k] & 1:
                return False
        return True


_UNKNOWN = object()


def kv_model(missing: Any = KeyNotFound, *, partitioned: bool = True) -> Model:
    """labkit's key-value store semantics.

    Inputs are Get/Put/Append (possibly wrapped in AMOCommand), outputs are
    GetResult/KeyNotFound/PutOk/AppendResult (possibly wrapped in AMOResult).
    ``missing`` says what a read of a key that was never written returns:
    ``KeyNotFound`` (labkit's KVStore) or a string such as ``""`` (the
    Porcupine kv files), in which case the key starts with that value.
    With ``partitioned=False`` the whole map is one state (much slower; for
    comparison only).
    """
    if missing is KeyNotFound or isinstance(missing, KeyNotFound):
        missing_text: str | None = None
    elif isinstance(missing, str):
        missing_text = missing
    else:
        raise ValueError(f"missing must be KeyNotFound or a string such as '', not {missing!r}")

    def describe_value(value: str | None) -> str:
        return "the key did not exist yet" if value is None else f"the value was {value!r}"

    if partitioned:

        def step(state: str | None, input: Any, output: Any) -> tuple[bool, str | None]:
            kind = type(input)
            # The common cases first, without unwrapping: a Get that read a value, an
            # Append whose result is not recorded, a Put.
            if kind is Get and type(output) is GetResult:
                return output.value == state, state
            if kind is Append and output is None:
                return True, input.value if state is None else state + input.value
            if kind is Put and (output is None or type(output) is PutOk):
                return True, input.value
            return _kv_apply(state, input.command if isinstance(input, AMOCommand) else input, output, missing_text)

        def partition(ops: Sequence[Operation]) -> list[tuple[Hashable, list[Operation]]]:
            parts: dict[str, list[Operation]] = {}
            for op in ops:
                command = op.input
                kind = type(command)
                if kind is AMOCommand:
                    command = command.command
                    kind = type(command)
                if kind is not Get and kind is not Put and kind is not Append:
                    key = _kv_key(command)
                else:
                    key = command.key
                part = parts.get(key)
                if part is None:
                    parts[key] = [op]
                else:
                    part.append(op)
            return list(parts.items())

        last: list[Any] = [None, None]  # the last partition analysed: lookahead and overwritten share it

        def analysis(ops: list[Operation]) -> _KeyHistory:
            if last[0] is not ops:
                last[:] = [ops, _KeyHistory(ops, missing_text)]
            return last[1]

        def lookahead(ops: list[Operation]) -> Callable[[str | None, int, int], bool]:
            return analysis(ops).viable

        def overwritten(ops: list[Operation]) -> Callable[[str | None, int], bool]:
            return analysis(ops).dead

        return Model(
            name="key-value store",
            init=lambda: missing_text,
            step=step,
            partition=partition,
            describe_operation=_describe_kv,
            describe_state=describe_value,
            lookahead=lookahead,
            read_only=_kv_read_only,
            overwritten=overwritten,
        )

    # Whole map as one state: a tuple of (key, value) pairs sorted by key.
    def step_map(state: tuple[tuple[str, str], ...], input: Any, output: Any) -> tuple[bool, Any]:
        command = _unwrap(input)
        key = _kv_key(command)
        values = dict(state)
        legal, new = _kv_apply(values.get(key, missing_text), command, output, missing_text)
        if new is None or values.get(key, missing_text) == new:
            return legal, state
        values[key] = new
        return legal, tuple(sorted(values.items()))

    def describe_map(state: tuple[tuple[str, str], ...]) -> str:
        if not state:
            return "the store was empty"
        return "the store held " + ", ".join(f"{k!r} = {v!r}" for k, v in state)

    return Model(
        name="key-value store (whole map)",
        init=tuple,
        step=step_map,
        describe_operation=_describe_kv,
        describe_state=describe_map,
        read_only=_kv_read_only,
    )


# --------------------------------------------------------------------------
# Register with compare-and-set (Jepsen etcd)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """Read the register."""


@dataclass(frozen=True)
class Write:
    """Write ``value`` to the register."""

    value: Any


@dataclass(frozen=True)
class Cas:
    """Compare-and-set: if the register holds ``expected``, make it ``new``."""

    expected: Any
    new: Any


@dataclass(frozen=True)
class ReadResult:
    """A read returned ``value`` (None: nothing was ever written)."""

    value: Any


@dataclass(frozen=True)
class WriteOk:
    """A write completed."""


@dataclass(frozen=True)
class CasResult:
    """A compare-and-set completed: ``ok`` says whether it succeeded."""

    ok: bool


def _register_step(state: Any, input: Any, output: Any) -> tuple[bool, Any]:
    kind = type(input)
    if kind is Read:
        if output is None:
            return True, state
        if type(output) is not ReadResult:
            raise TypeError(f"a register read returns ReadResult, not {output!r}")
        return output.value == state, state
    if kind is Write:
        if output is not None and type(output) is not WriteOk:
            raise TypeError(f"a register write returns WriteOk, not {output!r}")
        return True, input.value
    if kind is Cas:
        matches = state == input.expected
        if output is None:
            return True, (input.new if matches else state)
        if type(output) is not CasResult:
            raise TypeError(f"a register cas returns CasResult, not {output!r}")
        if output.ok:
            return matches, input.new
        return not matches, state
    raise TypeError(f"the register model checks Read, Write and Cas, not {input!r}")


def _show(value: Any) -> str:
    return "nil" if value is None else repr(value)


def _describe_register(input: Any, output: Any) -> str:
    if isinstance(input, Read):
        if output is None:
            return "read (result not known)"
        return f"read, which returned {_show(output.value)}"
    if isinstance(input, Write):
        return f"write {_show(input.value)}"
    if isinstance(input, Cas):
        what = f"cas from {_show(input.expected)} to {_show(input.new)}"
        if output is None:
            return what
        return f"{what}, which {'succeeded' if output.ok else 'failed'}"
    return f"{input!r} -> {output!r}"


def _describe_register_state(state: Any) -> str:
    if state is None:
        return "the register was still nil (never written)"
    return f"the register held {_show(state)}"


def _register_read_only(input: Any, output: Any) -> bool:
    """A read never changes the register, nor does a compare-and-set known to have failed."""
    return type(input) is Read or (type(input) is Cas and type(output) is CasResult and not output.ok)


def register_model() -> Model:
    """A single register starting as nil, with Read, Write and Cas (etcd's Jepsen tests)."""
    return Model(
        name="register",
        init=lambda: None,
        step=_register_step,
        describe_operation=_describe_register,
        describe_state=_describe_register_state,
        read_only=_register_read_only,
    )
