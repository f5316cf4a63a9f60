"""The reference Paxos solution passes every public run test on 20 seeds in a row (sweep tier)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.labs.paxos.tests import LAB
from labkit.testing.declare import SEARCH
from labkit.testing.runner import run_one
from labkit.testing.solution import load_solution

REFERENCE = Path(__file__).resolve().parents[1] / "solutions" / "paxos" / "paxos_server.py"
RUN_TESTS = [t for t in LAB.select() if SEARCH not in t.categories]


@pytest.mark.sweep
@pytest.mark.parametrize("seed", range(1, 21))
def test_reference_passes_run_tests_on_seed(seed):
    solution = load_solution(REFERENCE)
    failures = []
    for spec in RUN_TESTS:
        result = run_one(spec, solution, seed)
        if not result.passed:
            failures.append(f"{spec.header} (seed {seed}): {result.failure}")
    assert not failures, "\n".join(failures)
