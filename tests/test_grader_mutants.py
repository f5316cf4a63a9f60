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
CATALOGUE = load_mutants(MUTANTS_DIR)
# Each reference with the folder of its catalogue and record.
REFERENCES = {
    "reference": (REFERENCE, MUTANTS_DIR),
    "piggyback": (ROOT / "solutions" / "paxos" / "piggyback" / "paxos_server.py", MUTANTS_DIR / "piggyback"),
}
EVERY_MUTANT = [(name, mutant) for name, (_, folder) in REFERENCES.items() for mutant in load_mutants(folder)]
# The kinds of ballot bug the searches are aimed at, in both catalogues.
BALLOT_BUGS = {
    "reference": {"p2a_does_not_raise_ballot", "phase1_takes_last_promise", "ballots_by_address_first",
                  "preemption_lowers_ballot"},
    "piggyback": {"accept_does_not_raise_promise", "phase1_takes_last_promise", "ballots_by_address_first",
                  "reject_sets_promise"},
}


def test_catalogue_has_at_least_twelve_distinct_mutants():
    assert len(CATALOGUE) >= 12
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)
    assert all(m.description for m in CATALOGUE)


@pytest.mark.parametrize("which", sorted(REFERENCES))
def test_every_mutant_applies_once_changes_the_code_and_imports(which, tmp_path):
    solution_path, folder = REFERENCES[which]
    catalogue = load_mutants(folder)
    reference = solution_path.read_text()
    paths = write_mutants(solution_path, catalogue, tmp_path)
    assert set(paths) == {m.name for m in catalogue}
    for name, path in paths.items():
        assert path.read_text() != reference, name
        solution = load_solution(path)
        assert hasattr(solution, "PaxosServer") and hasattr(solution, "PaxosClient"), name


@pytest.mark.parametrize("which", sorted(REFERENCES))
def test_both_catalogues_hold_the_ballot_bugs(which):
    assert BALLOT_BUGS[which] <= {m.name for m in load_mutants(REFERENCES[which][1])}


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


@pytest.mark.parametrize("which", sorted(REFERENCES))
def test_the_record_names_a_catching_test_for_every_mutant(which):
    solution_path, folder = REFERENCES[which]
    record = json.loads((folder / "record.json").read_text())
    assert record["reference"]["status"] == "passed" and record["reference"]["description"].endswith(
        str(solution_path.relative_to(ROOT)))
    caught = {m["name"]: m["caught_by"] for m in record["mutants"] if m["status"] == "caught"}
    assert set(caught) == {m.name for m in load_mutants(folder)}
    for entry in record["mutants"]:  # the catcher is the first test that failed in the run recorded
        failed = [number for number, result in entry["results"].items() if not result["passed"]]
        assert failed[:1] == [entry["caught_by"]], entry["name"]


@pytest.mark.slow
@pytest.mark.parametrize("which,mutant", EVERY_MUTANT, ids=[f"{w}-{m.name}" for w, m in EVERY_MUTANT])
def test_each_mutant_fails_its_recorded_catching_test(which: str, mutant: Mutant, tmp_path):
    load_hidden(HIDDEN)
    solution_path, folder = REFERENCES[which]
    record = json.loads((folder / "record.json").read_text())
    (entry,) = [m for m in record["mutants"] if m["name"] == mutant.name]
    path = write_mutants(solution_path, [mutant], tmp_path)[mutant.name]
    report = run_tests("paxos", numbers=[entry["caught_by"]], solution=path, include_hidden=True, out=io.StringIO())
    assert not report.results[0].passed, f"{mutant.name} passed {entry['caught_by']}"
