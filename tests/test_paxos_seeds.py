"""Both reference Paxos solutions pass every public and hidden run test on 20 seeds in a row (sweep tier)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.labs.paxos.tests import LAB
from labkit.testing.check_solution import load_hidden
from labkit.testing.declare import SEARCH
from labkit.testing.runner import run_one

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = {
    "reference": ROOT / "solutions" / "paxos" / "paxos_server.py",
    "piggyback": ROOT / "solutions" / "paxos" / "piggyback" / "paxos_server.py",
}


@pytest.mark.sweep
@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("seed", range(1, 21))
def test_reference_passes_run_tests_on_seed(name, seed):
    load_hidden(ROOT / "grader_tests" / "paxos_hidden.py")
    failures = []
    for spec in LAB.select(include_hidden=True):
        if SEARCH in spec.categories:
            continue
        result = run_one(spec, REFERENCES[name], seed, lab=LAB)
        if not result.passed:
            failures.append(f"{spec.header} (seed {seed}): {result.failure}")
    assert not failures, "\n".join(failures)
