"""Property tests: histories produced by a real sequential execution are
linearizable, and a corrupted result is caught and explained by operations
that really conflict."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.app import Append, AppendResult, Get, GetResult, KeyNotFound, KVStore, Put
from labkit.check.linearizability import LINEARIZABLE, NOT_LINEARIZABLE, Operation, check
from labkit.check.models import kv_model

# Every test runs with both search loops: the pure-Python one and the compiled one (if built).
pytestmark = pytest.mark.usefixtures("search_loop")

KEYS = ["a", "b"]


@st.composite
def histories(draw: st.DrawFn) -> list[Operation]:
    """Run random commands on a KVStore; each takes effect at 10*k, inside a random interval."""
    count = draw(st.integers(min_value=0, max_value=14))
    store = KVStore()
    ops = []
    for k in range(count):
        kind = draw(st.sampled_from(["get", "put", "append"]))
        key = draw(st.sampled_from(KEYS))
        value = f"{k}."
        command = Get(key) if kind == "get" else Put(key, value) if kind == "put" else Append(key, value)
        result = store.execute(command)
        effect = 10 * k
        call = effect - draw(st.integers(min_value=0, max_value=30))
        unknown = kind != "get" and draw(st.integers(min_value=0, max_value=9)) == 0
        ret = None if unknown else effect + draw(st.integers(min_value=0, max_value=30))
        client = f"client{draw(st.integers(min_value=1, max_value=4))}"
        ops.append(Operation(client, command, None if unknown else result, call, ret))
    return ops


def _corrupt(result: object) -> object:
    if isinstance(result, GetResult):
        return KeyNotFound() if len(result.value) % 2 else GetResult(result.value + "z")
    if isinstance(result, KeyNotFound):
        return GetResult("")
    if isinstance(result, AppendResult):
        return AppendResult(result.value[::-1] + "z")
    return None


def _relax_except(ops: list[Operation], keep: set[int]) -> list[Operation]:
    return [o if o.index in keep else Operation(o.client, o.input, None, o.call, o.ret, o.index) for o in ops]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_sequential_executions_are_linearizable(ops: list[Operation]) -> None:
    result = check(ops, kv_model())
    assert result.verdict == LINEARIZABLE
    placed = [o for o in result.linearization]
    assert len(placed) <= len(ops)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_corrupted_result_is_explained_by_a_real_conflict(ops: list[Operation], data: st.DataObject) -> None:
    targets = [i for i, o in enumerate(ops) if _corrupt(o.output) is not None]
    if not targets:
        return
    victim = data.draw(st.sampled_from(targets))
    bad = list(ops)
    o = bad[victim]
    bad[victim] = Operation(o.client, o.input, _corrupt(o.output), o.call, o.ret)
    model = kv_model()
    result = check(bad, model)
    if result.verdict != NOT_LINEARIZABLE:
        return
    # The fault is on the corrupted key.
    assert result.partition == o.input.key
    assert result.offending and all(off.input.key == o.input.key for off in result.offending)
    conflict = result.minimal_conflict
    assert conflict is not None
    keep = {c.index for c in conflict}
    # The corrupted result is part of the conflict.
    assert victim in keep
    # The conflicting results alone (every other result forgotten) are not linearizable...
    assert check(_relax_except(result.ops, keep), model).verdict == NOT_LINEARIZABLE
    # ...and every one of them is needed.
    for index in keep:
        assert check(_relax_except(result.ops, keep - {index}), model).verdict == LINEARIZABLE
    # The explanation names the corrupted operation.
    assert f"op #{victim}:" in result.explanation


def test_corruption_is_usually_caught() -> None:
    rng = random.Random(7)
    caught = tried = 0
    for _ in range(200):
        store = KVStore()
        ops = []
        for k in range(12):
            key = rng.choice(KEYS)
            command = rng.choice([Get(key), Put(key, f"{k}."), Append(key, f"{k}.")])
            ops.append(Operation(f"c{rng.randint(1, 3)}", command, store.execute(command), 10 * k - rng.randint(0, 12), 10 * k + rng.randint(0, 12)))
        assert check(ops, kv_model()).ok
        targets = [i for i, o in enumerate(ops) if _corrupt(o.output) is not None]
        if not targets:
            continue
        victim = rng.choice(targets)
        o = ops[victim]
        ops[victim] = Operation(o.client, o.input, _corrupt(o.output), o.call, o.ret)
        tried += 1
        caught += not check(ops, kv_model(), explain=False).ok
    assert caught >= 0.7 * tried
