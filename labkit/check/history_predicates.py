"""Linearizability of the client histories recorded in a run, as a predicate.

Every client worker (and raw client) of a simulation records each command
with its virtual invoke and response times; a command still outstanding at
the end has an unknown outcome (it may or may not have taken effect).
"""

from __future__ import annotations

from typing import Any

from labkit.app import KeyNotFound
from labkit.check.linearizability import LinearizabilityResult, Model, Operation, check
from labkit.check.models import kv_model
from labkit.check.predicates import Predicate
from labkit.client import HistoryRecord

__all__ = ["history_operations", "check_run_history", "linearizable", "KV_LINEARIZABLE"]

MAX_CHECK_STEPS = 5_000_000
"""Steps the checker may take on one run's history before answering "unknown"."""


def history_operations(records: list[HistoryRecord]) -> list[Operation]:
    """Recorded client commands as operations for the linearizability checker."""
    ops = []
    for record in records:
        if record.invoke is None:
            raise ValueError("this history has no times (it comes from a search); check it with APPENDS_LINEARIZABLE")
        ops.append(Operation(record.client, record.command, record.result, record.invoke, record.response))
    return ops


def check_run_history(state: Any, model: Model, max_steps: int = MAX_CHECK_STEPS) -> LinearizabilityResult:
    """Check the histories recorded in ``state`` (a simulation) against ``model``."""
    return check(history_operations(state.histories()), model, max_steps=max_steps)


def linearizable(model: Model, name: str = "Client operations linearizable") -> Predicate:
    """A predicate: the clients' recorded history is linearizable under ``model``.

    A history too hard to decide within the step budget passes with no verdict
    ("unknown" is never reported as a violation)."""

    def fn(state: Any) -> tuple[bool, str | None]:
        result = check_run_history(state, model)
        if result.verdict == "not linearizable":
            return False, result.explanation
        return True, None

    return Predicate(name, fn)


KV_LINEARIZABLE = linearizable(kv_model(missing=KeyNotFound), "Client operations linearizable (key-value store)")
