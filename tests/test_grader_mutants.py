"""The mutant catalogue: every patch fits the reference, every mutant imports, and each is caught."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from labkit.testing import load_solution, run_tests
from labkit.testing.check_solution import Mutant, MutantError, load_hidden, load_mutants, write_mutants

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "solutions" / "paxos" / "paxos_server.py"
MUTANTS_DIR = ROOT / "grader_tests" / "mutants"
HIDDEN = ROOT / "grader_tests" / "paxos_hidden.py"
RECORD = MUTANTS_DIR / "record.json"
CATALOGUE = load_mutants(MUTANTS_DIR)


def test_catalogue_has_at_least_twelve_distinct_mutants():
    assert len(CATALOGUE) >= 12
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)
    assert all(m.description for m in CATALOGUE)


def test_every_mutant_applies_once_changes_the_code_and_imports(tmp_path):
    reference = REFERENCE.read_text()
    paths = write_mutants(REFERENCE, CATALOGUE, tmp_path)
    assert set(paths) == {m.name for m in CATALOGUE}
    for name, path in paths.items():
        assert path.read_text() != reference, name
        solution = load_solution(path)
        assert hasattr(solution, "PaxosServer") and hasattr(solution, "PaxosClient"), name


def test_a_patch_that_no_longer_fits_fails_loudly():
    missing = Mutant("gone", "snippet missing", (("no such text", "x"),))
    with pytest.raises(MutantError, match="does not occur"):
        missing.apply(REFERENCE.read_text())
    twice = Mutant("twice", "snippet ambiguous", (("            self.send(Preempted(self.ballot), sender)\n", "pass\n"),))
    with pytest.raises(MutantError, match="occurs 3 times"):
        twice.apply(REFERENCE.read_text())


def test_a_cheap_mutant_is_caught_by_a_run_test(tmp_path):
    (minority,) = [m for m in CATALOGUE if m.name == "minority_quorum"]
    path = write_mutants(REFERENCE, [minority], tmp_path)["minority_quorum"]
    report = run_tests("paxos", numbers=["1.5"], solution=path, out=io.StringIO())
    assert not report.results[0].passed
    assert "got a result with only 2 of 5 servers reachable" in (report.results[0].failure or "")


def test_the_record_names_a_catching_test_for_every_mutant():
    record = json.loads(RECORD.read_text())
    caught = {m["name"]: m["caught_by"] for m in record["mutants"] if m["status"] == "caught"}
    assert set(caught) == {m.name for m in CATALOGUE}


@pytest.mark.slow
@pytest.mark.parametrize("mutant", CATALOGUE, ids=[m.name for m in CATALOGUE])
def test_each_mutant_fails_its_recorded_catching_test(mutant: Mutant, tmp_path):
    load_hidden(HIDDEN)
    record = json.loads(RECORD.read_text())
    (entry,) = [m for m in record["mutants"] if m["name"] == mutant.name]
    path = write_mutants(REFERENCE, [mutant], tmp_path)[mutant.name]
    report = run_tests("paxos", numbers=[entry["caught_by"]], solution=path, include_hidden=True, out=io.StringIO())
    assert not report.results[0].passed, f"{mutant.name} passed {entry['caught_by']}"
