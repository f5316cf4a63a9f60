"""Generated histories: the hard one-key case finishes, and its verdicts stand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from labkit.check.linearizability import LINEARIZABLE, NOT_LINEARIZABLE, check
from labkit.check.models import kv_model

# Every test runs with both search loops: the pure-Python one and the compiled one (if built).
pytestmark = pytest.mark.usefixtures("search_loop")

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "lincheck.py"
_spec = importlib.util.spec_from_file_location("lincheck_benchmark", BENCHMARK)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize("seed", range(6))
def test_one_key_ten_clients_thousand_operations(seed: int) -> None:
    # A real run's history, so linearizable; the budget is a few times what it needs.
    ops = bench.kv_history(seed)
    result = check(ops, kv_model(missing=""), max_steps=200_000, explain=False)
    assert result.verdict == LINEARIZABLE
    assert bench.witness_holds(result)


@pytest.mark.parametrize("seed", range(40))
def test_register_histories_witnesses_replay(seed: int) -> None:
    ops = bench.register_history(seed)
    from labkit.check.models import register_model

    result = check(ops, register_model())
    assert result.verdict in (LINEARIZABLE, NOT_LINEARIZABLE)
    if result.ok:
        assert bench.witness_holds(result)
    else:
        assert result.offending and result.explanation


def test_stale_reads_are_caught() -> None:
    caught = sum(not check(bench.kv_history(seed, clients=5, count=150, keys=3, wrong=0.05), kv_model(missing="")).ok
                 for seed in range(20))
    assert caught >= 10
