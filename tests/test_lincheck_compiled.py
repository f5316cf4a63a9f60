"""The compiled search loop (labkit.check._searchcore) is the Python loop, step for step:
the same verdict, witness, explanation, minimal conflict and step count on every
Porcupine file and on generated histories that reach the pruning hooks, and the
Python loop takes over when times are not plain numbers."""

from __future__ import annotations

import importlib.util
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import pytest

from labkit.check import linearizability
from labkit.check.histories import read_etcd_log, read_kv_edn
from labkit.check.linearizability import LinearizabilityResult, Model, Operation, check
from labkit.check.models import Read, ReadResult, Write, WriteOk, kv_model, register_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "porcupine-data"
_spec = importlib.util.spec_from_file_location("lincheck_benchmark", ROOT / "benchmarks" / "lincheck.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

needs_core = pytest.mark.skipif(linearizability._core is None, reason="the compiled search loop is not built")


def _fields(result: LinearizabilityResult) -> tuple[Any, ...]:
    def ids(ops: list[Operation] | None) -> list[int] | None:
        return None if ops is None else [op.index for op in ops]  # type: ignore[misc]

    return (result.verdict, result.explanation, ids(result.linearization), result.states, ids(result.offending),
            ids(result.minimal_conflict), result.partition, result.steps)


def _both(run: Callable[[], LinearizabilityResult], monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _fields(run())
    with monkeypatch.context() as patch:
        patch.setattr(linearizability, "_core", None)
        python = _fields(run())
    assert compiled == python


def _files() -> list[str]:
    return sorted(str(p.relative_to(DATA)) for p in DATA.glob("*/*") if p.suffix in (".log", ".txt")) or ["none"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_built_where_a_compiler_is() -> None:
    assert linearizability._core is not None, "pip install -e . builds labkit/check/_searchcore.c"


@needs_core
@pytest.mark.skipif(not DATA.is_dir(), reason=f"Porcupine test data not found at {DATA}")
@pytest.mark.parametrize("file", _files())
@pytest.mark.parametrize("explain", [False, True])
def test_porcupine_files_step_for_step(file: str, explain: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if file.startswith("jepsen"):
        ops, model = read_etcd_log(DATA / file), register_model()
    else:
        ops, model = read_kv_edn(DATA / file), kv_model(missing="")
    _both(lambda: check(ops, model, explain=explain), monkeypatch)


@needs_core
@pytest.mark.parametrize("seed", range(12))
def test_generated_histories_step_for_step(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    kv = bench.kv_history(seed, clients=6, count=150, keys=2, wrong=0.05)
    _both(lambda: check(kv, kv_model(missing="")), monkeypatch)
    register = bench.register_history(seed, count=80)
    _both(lambda: check(register, register_model()), monkeypatch)
    _both(lambda: check(register, register_model(), max_steps=40), monkeypatch)


@needs_core
def test_state_keys_and_exceptions_reach_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def step(state: frozenset[int], inp: Any, out: Any) -> tuple[bool, Any]:
        if inp == "boom":
            raise RuntimeError("the model failed")
        return True, state | {inp}

    ops = [Operation(c, c, "ok", 0, 2) for c in range(3)] + [Operation(9, 5, "ok", 1, 3)]
    model = Model("set", frozenset, step, state_key=lambda s: tuple(sorted(s)))
    _both(lambda: check(ops, model), monkeypatch)
    with pytest.raises(RuntimeError, match="the model failed"):
        check(ops + [Operation(8, "boom", "ok", 1, 3)], model)


@needs_core
def test_times_that_are_not_plain_numbers_use_the_python_loop() -> None:
    big = 2**60  # beyond what a double holds exactly
    ops = [
        Operation(1, Write(1), WriteOk(), Fraction(0), Fraction(3)),
        Operation(2, Read(), ReadResult(1), Fraction(1), Fraction(2)),
        Operation(3, Read(), ReadResult(1), big, big + 1),
        Operation(4, Read(), ReadResult(None), big + 1, big + 1),
    ]
    assert linearizability._core.order(ops[:2]) is None and linearizability._core.order(ops[2:]) is None
    assert check(ops[:3], register_model()).ok
    assert not check(ops, register_model()).ok
