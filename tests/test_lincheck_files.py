"""Every Porcupine test history with a known verdict gets exactly that verdict."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from labkit.check.histories import read_etcd_log, read_kv_edn
from labkit.check.linearizability import LINEARIZABLE, NOT_LINEARIZABLE, UNKNOWN, check
from labkit.check.models import kv_model, register_model

# Every test runs with both search loops: the pure-Python one and the compiled one (if built).
pytestmark = pytest.mark.usefixtures("search_loop")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "porcupine-data"
needs_data = pytest.mark.skipif(not (DATA / "expected.csv").is_file(), reason=f"Porcupine test data not found at {DATA}")


def _rows() -> list[dict[str, str]]:
    if not (DATA / "expected.csv").is_file():
        return []
    with open(DATA / "expected.csv", newline="") as f:
        return list(csv.DictReader(f))


def _load(row: dict[str, str]):
    if row["model"] == "etcd":
        return read_etcd_log(DATA / row["file"]), register_model()
    return read_kv_edn(DATA / row["file"]), kv_model(missing="")


@needs_data
@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["file"])
def test_expected_verdict(row: dict[str, str]) -> None:
    ops, model = _load(row)
    assert len(ops) == int(row["ops"])
    assert sum(op.ret is None for op in ops) == int(row["info_ops"])
    expected = LINEARIZABLE if row["expected"] == "ok" else NOT_LINEARIZABLE
    result = check(ops, model)
    assert result.verdict == expected
    if not result.ok:
        assert result.offending and result.explanation


@needs_data
@pytest.mark.parametrize("name", ["c01-ok", "c01-bad", "c10-ok", "c10-bad"])
def test_unpartitioned_kv_agrees(name: str) -> None:
    ops = read_kv_edn(DATA / "kv" / f"{name}.txt")
    result = check(ops, kv_model(missing="", partitioned=False), explain=False)
    assert result.verdict == (LINEARIZABLE if name.endswith("ok") else NOT_LINEARIZABLE)


@needs_data
def test_empty_file_is_empty_history() -> None:
    ops = read_etcd_log(DATA / "jepsen" / "etcd_095.log")
    assert ops == []
    assert check(ops, register_model()).ok


@needs_data
@pytest.mark.parametrize("row", [r for r in _rows() if r["model"] == "etcd"][::4], ids=lambda r: r["file"])
def test_tiny_budget_gives_unknown_never_wrong(row: dict[str, str]) -> None:
    ops, model = _load(row)
    expected = LINEARIZABLE if row["expected"] == "ok" else NOT_LINEARIZABLE
    for steps in (1, 5, 20):
        result = check(ops, model, max_steps=steps)
        assert result.verdict in (UNKNOWN, expected)
        if result.verdict == UNKNOWN:
            assert "budget" in result.explanation


@needs_data
def test_a_budget_too_small_gives_unknown() -> None:
    ops = read_kv_edn(DATA / "kv" / "c50-ok.txt")
    for steps in (10, 1000):
        assert check(ops, kv_model(missing=""), max_steps=steps).verdict == UNKNOWN
    assert check(ops, kv_model(missing=""), max_steps=10**9).verdict == LINEARIZABLE


@needs_data
def test_deterministic_explanation() -> None:
    ops, model = read_kv_edn(DATA / "kv" / "c10-bad.txt"), kv_model(missing="")
    first, second = check(ops, model), check(ops, model)
    assert first.explanation == second.explanation
    assert first.partition == second.partition
