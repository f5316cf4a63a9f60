"""The checker against a brute-force one, on small concurrent histories, for every model.

The brute force tries every order that respects real time (an operation with
an unknown outcome anywhere after its call, or never) and nothing else: no
memo, no shortcut. Histories are drawn to hit the hard cases: few values,
repeated values and empty strings, writes of the value already held, equal
timestamps (intervals are closed), operations that never return, reads that
timed out. Every verdict must agree; a witness must be a real linearization;
a minimal conflict must really conflict and need every one of its results.
The default tier runs a few hundred histories per model, ``-m heavy`` thousands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.app import Append, AppendResult, Get, GetResult, KeyNotFound, KVStore, Put, PutOk
from labkit.check.linearizability import LINEARIZABLE, NOT_LINEARIZABLE, Model, Operation, check
from labkit.check.models import Cas, CasResult, Read, ReadResult, Write, WriteOk, kv_model, register_model

# Every test runs with both search loops: the pure-Python one and the compiled one (if built).
pytestmark = pytest.mark.usefixtures("search_loop")

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- the brute force ----------------------------------------------------------------


def brute_force(ops: Sequence[Operation], model: Model) -> bool:
    """True iff some order of ``ops`` respects real time and the model.

    A partitioned model is run as the product of its partitions: the state is
    one component per partition and each operation steps its own component.
    """
    parts = model.partition(ops) if model.partition is not None else [(None, list(ops))]
    component = {id(op): k for k, (_, part) in enumerate(parts) for op in part}
    known = [op for op in ops if op.ret is not None]

    def may_go_next(op: Operation, placed: frozenset[int]) -> bool:
        return not any(
            id(other) not in placed and other.ret is not None and other.ret < op.call for other in ops
        )

    def search(placed: frozenset[int], state: tuple[Any, ...]) -> bool:
        if all(id(op) in placed for op in known):
            return True
        for op in ops:
            if id(op) in placed or not may_go_next(op, placed):
                continue
            k = component[id(op)]
            legal, after = model.step(state[k], op.input, op.output)
            if legal and search(placed | {id(op)}, state[:k] + (after,) + state[k + 1 :]):
                return True
        return False

    return search(frozenset(), tuple(model.init() for _ in parts))


def assert_agrees(ops: list[Operation], model: Model) -> None:
    """The checker's verdict is the brute force's, and what it shows is true."""
    truth = brute_force(ops, model)
    result = check(ops, model)
    assert result.verdict == (LINEARIZABLE if truth else NOT_LINEARIZABLE), _show(ops)
    if truth:
        _assert_witness(result.linearization, result.states, result.ops, model)
        return
    assert result.offending and result.explanation
    conflict = result.minimal_conflict
    if conflict is not None:
        keep = {id(op) for op in conflict}
        assert conflict and all(op.output is not None for op in conflict)
        assert not brute_force(_forget_except(result.ops, keep), model), _show(ops)
        for op in conflict:
            assert brute_force(_forget_except(result.ops, keep - {id(op)}), model), _show(ops)


def _assert_witness(order: list[Operation], states: list[Any], ops: list[Operation], model: Model) -> None:
    assert len({id(op) for op in order}) == len(order)
    assert {id(op) for op in ops if op.ret is not None} <= {id(op) for op in order} <= {id(op) for op in ops}
    assert len(states) == len(order)
    parts = model.partition(ops) if model.partition is not None else [(None, ops)]
    where = {id(op): k for k, (_, part) in enumerate(parts) for op in part}
    state: dict[int, Any] = {}
    placed: list[Operation] = []
    for op, after in zip(order, states):
        k = where[id(op)]
        for earlier in placed:
            if where[id(earlier)] == k:
                assert not (op.ret is not None and op.ret < earlier.call), "the witness breaks real time"
        legal, new = model.step(state.get(k, model.init()), op.input, op.output)
        assert legal, "the witness has an illegal step"
        key = model.state_key or (lambda s: s)
        assert key(new) == key(after)
        state[k] = new
        placed.append(op)


def _forget_except(ops: list[Operation], keep: set[int]) -> list[Operation]:
    return [op if id(op) in keep else Operation(op.client, op.input, None, op.call, op.ret, op.index) for op in ops]


def _show(ops: list[Operation]) -> str:
    return "\n".join(f"{op.client}: {op.input!r} -> {op.output!r} [{op.call}, {op.ret}]" for op in ops)


# ---- drawing concurrent histories ----------------------------------------------------


def chance(draw: st.DrawFn, percent: int) -> bool:
    return draw(st.integers(0, 99)) < percent


@dataclass
class Kind:
    """How to draw operations for one model: an input, and its true output and next state."""

    model: Model
    init: Callable[[], Any]
    draw_input: Callable[[st.DrawFn], Any]
    run: Callable[[Any, Any], tuple[Any, Any]]  # (state, input) -> (output, new state)
    wrong_output: Callable[[st.DrawFn, Any], Any]  # a plausible output, often wrong
    read: Callable[[Any], bool] = lambda inp: False  # may time out and still return


@st.composite
def histories(draw: st.DrawFn, kind: Kind) -> list[Operation]:
    """2-5 processes, 1-8 operations, small integer times; the outputs come from
    running the operations at points inside their intervals, then some are
    replaced by plausible wrong ones."""
    processes = draw(st.integers(2, 5))
    count = draw(st.integers(1, 8))
    clock = [draw(st.integers(0, 3)) for _ in range(processes)]
    stopped: set[int] = set()
    drafts: list[tuple[int, Any, int, int | None, int | None]] = []  # process, input, call, ret, point
    for _ in range(count):
        p = draw(st.integers(0, processes - 1))
        if p in stopped:
            continue
        call = clock[p]
        inp = kind.draw_input(draw)
        if chance(draw, 15):  # never returns; this process is done
            stopped.add(p)
            point = call + draw(st.integers(0, 6)) if chance(draw, 60) else None
            drafts.append((p, inp, call, None, point))
            continue
        ret = call + draw(st.integers(0, 4))
        drafts.append((p, inp, call, ret, draw(st.integers(call, ret))))
        clock[p] = ret + draw(st.integers(1, 3))
    ties = draw(st.permutations(range(len(drafts))))
    order = sorted((k for k, d in enumerate(drafts) if d[4] is not None), key=lambda k: (drafts[k][4], ties[k]))
    outputs: dict[int, Any] = {}
    state = kind.init()
    for k in order:
        outputs[k], state = kind.run(state, drafts[k][1])
    wrong = draw(st.sampled_from([0, 10, 30]))
    ops = []
    for k, (p, inp, call, ret, _) in enumerate(drafts):
        if ret is None:
            ops.append(Operation(p, inp, None, call, None))
            continue
        out = outputs[k]
        if kind.read(inp) and chance(draw, 10):
            out = None  # a read that timed out: it returned, with no result
        elif chance(draw, wrong):
            out = kind.wrong_output(draw, inp)
        ops.append(Operation(p, inp, out, call, ret))
    return ops


VALUES = ["", "", "x", "y", "xy"]


def _kv_kind(missing: Any, append_results: bool, keys: int, partitioned: bool = True) -> Kind:
    names = ["k", "j", "i"][:keys]

    def draw_input(draw: st.DrawFn) -> Any:
        key = draw(st.sampled_from(names))
        kind = draw(st.sampled_from(["get", "get", "put", "append", "append"]))
        if kind == "get":
            return Get(key)
        return (Put if kind == "put" else Append)(key, draw(st.sampled_from(VALUES)))

    def run(state: tuple[tuple[str, str], ...], inp: Any) -> tuple[Any, Any]:
        current = dict(state)
        value = current.get(inp.key)
        if isinstance(inp, Get):
            if value is None:
                return (KeyNotFound() if missing is KeyNotFound else GetResult(missing)), state
            return GetResult(value), state
        if isinstance(inp, Put):
            current[inp.key] = inp.value
            return PutOk(), tuple(sorted(current.items()))
        new = (value if value is not None else ("" if missing is KeyNotFound else missing)) + inp.value
        current[inp.key] = new
        return (AppendResult(new) if append_results else None), tuple(sorted(current.items()))

    def wrong_output(draw: st.DrawFn, inp: Any) -> Any:
        if isinstance(inp, Get):
            return draw(st.sampled_from([GetResult(v) for v in ["", "x", "y", "xy", "yx", "xx"]] + [KeyNotFound()]))
        if isinstance(inp, Put):
            return PutOk()
        if not append_results:
            return None
        return AppendResult(draw(st.sampled_from(["", "x", "y", "xy", "yx", "xyx"])))

    return Kind(kv_model(missing=missing, partitioned=partitioned), tuple, draw_input, run, wrong_output,
                read=lambda inp: isinstance(inp, Get))


def _register_kind() -> Kind:
    def draw_input(draw: st.DrawFn) -> Any:
        kind = draw(st.sampled_from(["read", "read", "write", "write", "cas"]))
        if kind == "read":
            return Read()
        if kind == "write":
            return Write(draw(st.sampled_from([1, 1, 2])))
        return Cas(draw(st.sampled_from([None, 1, 2])), draw(st.sampled_from([1, 2])))

    def run(state: Any, inp: Any) -> tuple[Any, Any]:
        if isinstance(inp, Read):
            return ReadResult(state), state
        if isinstance(inp, Write):
            return WriteOk(), inp.value
        if state == inp.expected:
            return CasResult(True), inp.new
        return CasResult(False), state

    def wrong_output(draw: st.DrawFn, inp: Any) -> Any:
        if isinstance(inp, Read):
            return ReadResult(draw(st.sampled_from([None, 1, 2])))
        if isinstance(inp, Write):
            return WriteOk()
        return CasResult(draw(st.booleans()))

    return Kind(register_model(), lambda: None, draw_input, run, wrong_output, read=lambda inp: isinstance(inp, Read))


# ---- user models: what a course developer might write ---------------------------------


def _queue_kind() -> Kind:
    """A FIFO queue; no partition, no read_only, no state_key (states are tuples)."""

    def step(state: tuple[Any, ...], inp: Any, out: Any) -> tuple[bool, Any]:
        if inp[0] == "enq":
            return out is None or out == "ok", state + (inp[1],)
        if not state:
            return out is None or out == "empty", state
        return out is None or out == state[0], state[1:]

    def run(state: tuple[Any, ...], inp: Any) -> tuple[Any, Any]:
        if inp[0] == "enq":
            return "ok", state + (inp[1],)
        return ("empty", state) if not state else (state[0], state[1:])

    return Kind(
        Model("queue", tuple, step), tuple,
        lambda draw: ("enq", draw(st.sampled_from("ab"))) if draw(st.booleans()) else ("deq",),
        run,
        lambda draw, inp: "ok" if inp[0] == "enq" else draw(st.sampled_from(["a", "b", "empty"])),
    )


def _plain_register_kind() -> Kind:
    """A register written by a user, with no hints at all: writes of the value held are common."""

    def step(state: int, inp: Any, out: Any) -> tuple[bool, Any]:
        if inp[0] == "w":
            return True, inp[1]
        return out is None or out == state, state

    return Kind(
        Model("plain register", lambda: 0, step), lambda: 0,
        lambda draw: ("w", draw(st.sampled_from([0, 0, 1]))) if draw(st.booleans()) else ("r",),
        lambda state, inp: (("ok", inp[1]) if inp[0] == "w" else (state, state)),
        lambda draw, inp: "ok" if inp[0] == "w" else draw(st.sampled_from([0, 1, 2])),
        read=lambda inp: inp[0] == "r",
    )


def _set_kind() -> Kind:
    """A set with unhashable states (state_key) and read-only queries declared."""

    def step(state: set[str], inp: Any, out: Any) -> tuple[bool, Any]:
        op, item = inp
        if op == "has":
            return out is None or out == (item in state), state
        if op == "add":
            return out is None or out == "ok", state | {item}
        return out is None or out == (item in state), state - {item}

    def run(state: set[str], inp: Any) -> tuple[Any, Any]:
        op, item = inp
        if op == "has":
            return item in state, state
        if op == "add":
            return "ok", state | {item}
        return item in state, state - {item}

    model = Model(
        "set", set, step,
        state_key=frozenset,
        read_only=lambda inp, out: inp[0] == "has" or (inp[0] == "remove" and out is False),
    )
    return Kind(
        model, set,
        lambda draw: (draw(st.sampled_from(["has", "has", "add", "remove"])), draw(st.sampled_from("ab"))),
        run,
        lambda draw, inp: "ok" if inp[0] == "add" else draw(st.booleans()),
        read=lambda inp: inp[0] == "has",
    )


KINDS = {
    "kv-empty-porcupine": _kv_kind("", append_results=False, keys=2),
    "kv-empty-results": _kv_kind("", append_results=True, keys=3),
    "kv-keynotfound": _kv_kind(KeyNotFound, append_results=True, keys=2),
    "kv-one-key-appends": _kv_kind("", append_results=False, keys=1),
    "kv-whole-map": _kv_kind("", append_results=True, keys=2, partitioned=False),
    "register": _register_kind(),
    "queue": _queue_kind(),
    "plain-register": _plain_register_kind(),
    "set": _set_kind(),
}


@pytest.mark.parametrize("name", list(KINDS))
@FAST
@given(data=st.data())
def test_agrees_with_brute_force(name: str, data: st.DataObject) -> None:
    kind = KINDS[name]
    assert_agrees(data.draw(histories(kind)), kind.model)


@pytest.mark.heavy
@pytest.mark.parametrize("name", list(KINDS))
@SLOW
@given(data=st.data())
def test_agrees_with_brute_force_thousands(name: str, data: st.DataObject) -> None:
    kind = KINDS[name]
    assert_agrees(data.draw(histories(kind)), kind.model)


@pytest.mark.parametrize("name", list(KINDS))
def test_the_strategy_draws_both_verdicts(name: str) -> None:
    """Without both kinds of history the comparison would prove little."""
    kind = KINDS[name]
    seen: set[bool] = set()

    @settings(max_examples=300, database=None, deadline=None, derandomize=True)
    @given(histories(kind))
    def collect(ops: list[Operation]) -> None:
        seen.add(brute_force(ops, kind.model))

    collect()
    assert seen == {True, False}


# ---- the cases found by comparison with Porcupine, and their kin ------------------------------


def op(client: Hashable, inp: Any, out: Any, call: float, ret: float | None) -> Operation:
    return Operation(client, inp, out, call, ret)


def test_a_put_of_the_value_held_can_go_later() -> None:
    # append, put, get: linearizable, though the put leaves "" unchanged when it could first go.
    ops = [
        op(0, Put("k", ""), PutOk(), 1, 3),
        op(1, Append("k", "A"), None, 2, 4),
        op(0, Get("k"), GetResult(""), 5, 6),
    ]
    assert check(ops, kv_model(missing="")).ok
    assert brute_force(ops, kv_model(missing=""))


def test_a_write_of_the_value_held_can_go_later() -> None:
    # write 1; then write 1 and write 2 concurrently; then read 1: write 2 before the second write 1.
    ops = [
        op(0, Write(1), WriteOk(), 0, 1),
        op(1, Write(1), WriteOk(), 2, 5),
        op(2, Write(2), WriteOk(), 3, 4),
        op(0, Read(), ReadResult(1), 6, 7),
    ]
    assert check(ops, register_model()).ok
    assert brute_force(ops, register_model())
