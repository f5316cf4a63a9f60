"""The hidden Paxos tests: out of the installed labkit's reach, passed by the reference,
fair to each part, and reported in notebooks without their source."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from labkit.labs.paxos.tests import LAB
from labkit.course.grading import hidden_summary
from labkit.testing import check_test, run_tests
from labkit.testing.runner import run_one
from labkit.testing.check_solution import load_hidden, load_mutants, write_mutants
from labkit.testing.declare import SEARCH

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "solutions" / "paxos" / "paxos_server.py"
PIGGYBACK = ROOT / "solutions" / "paxos" / "piggyback" / "paxos_server.py"
HIDDEN = ROOT / "grader_tests" / "paxos_hidden.py"
LABKIT_SCRIPT = Path(sys.executable).parent / "labkit"


@pytest.fixture(scope="module")
def hidden() -> ModuleType:
    return load_hidden(HIDDEN)


def hidden_numbers(*, search: bool) -> list[str]:
    load_hidden(HIDDEN)
    return [t.qualified_number for t in LAB.select(include_hidden=True)
            if t.hidden and (SEARCH in t.categories) == search]


def variant(tmp_path: Path, old: str, new: str) -> Path:
    source = REFERENCE.read_text()
    assert source.count(old) == 1, f"the reference no longer contains {old!r}"
    path = tmp_path / "variant" / "paxos_server.py"
    path.parent.mkdir()
    path.write_text(source.replace(old, new))
    return path


def test_installed_labkit_does_not_register_the_hidden_tests(tmp_path):
    code = ("from labkit.labs.paxos.tests import LAB\n"
            "print(sum(t.hidden for t in LAB.tests), max(t.number for t in LAB.tests))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout.split() == ["0", "31"]


def test_cli_with_hidden_flag_lists_no_hidden_test_without_grader_tests(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([str(LABKIT_SCRIPT), "test", "paxos", "--hidden", "-p", "3", "--solution", str(REFERENCE),
                           "--json", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["number"] for r in json.loads(out.read_text())["results"]] == ["3.11"]
    missing = subprocess.run([str(LABKIT_SCRIPT), "test", "paxos", "--hidden", "-n", "1.101", "--solution",
                              str(REFERENCE)], capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode == 2 and "has no test 1.101" in missing.stderr


def test_hidden_tests_are_hidden_numbered_from_101_in_every_part(hidden):
    tests = [t for t in LAB.tests if t.hidden]
    assert {t.part for t in tests} == {1, 2, 3, 4}
    assert all(t.number >= 101 and t.points > 0 for t in tests)
    assert not [t for t in LAB.tests if not t.hidden and t.number >= 101]
    assert LAB.select() == [t for t in LAB.tests if not t.hidden]


def test_reference_passes_every_hidden_run_test(hidden):
    report = run_tests("paxos", numbers=hidden_numbers(search=False), solution=REFERENCE, include_hidden=True,
                       out=io.StringIO())
    assert report.all_passed, [(r.number, r.failure) for r in report.results if not r.passed]
    assert max(r.seconds for r in report.results) < 30


# The two hidden searches that take minutes (1.123 and 1.124) run in the heavy tier.
LONG_HIDDEN_SEARCHES = ["1.123", "1.124"]


@pytest.mark.slow
def test_reference_passes_the_shorter_hidden_search_tests(hidden):
    numbers = [n for n in hidden_numbers(search=True) if n not in LONG_HIDDEN_SEARCHES]
    assert len(numbers) >= 3
    report = run_tests("paxos", numbers=numbers, solution=REFERENCE, include_hidden=True, out=io.StringIO())
    assert report.all_passed, [(r.number, r.failure) for r in report.results if not r.passed]


@pytest.mark.heavy
def test_reference_passes_the_long_hidden_search_tests(hidden):
    assert set(LONG_HIDDEN_SEARCHES) <= set(hidden_numbers(search=True))
    report = run_tests("paxos", numbers=LONG_HIDDEN_SEARCHES, solution=REFERENCE, include_hidden=True,
                       out=io.StringIO())
    assert report.all_passed, [(r.number, r.failure) for r in report.results if not r.passed]


@pytest.mark.heavy  # the whole suite, searches included
def test_second_reference_passes_every_public_and_hidden_test(hidden):
    report = run_tests("paxos", solution=PIGGYBACK, include_hidden=True, out=io.StringIO())
    assert report.all_passed, [(r.number, r.failure) for r in report.results if not r.passed]


@pytest.mark.heavy  # every run test of the lab on a variant
def test_without_garbage_collection_only_hidden_part_3_fails(hidden, tmp_path):
    path = variant(tmp_path, "        if slot <= self.cleared_through:\n            return\n        for old",
                   "        if True:  # garbage collection left out\n            return\n        for old")
    report = run_tests("paxos", numbers=hidden_numbers(search=False), solution=path, include_hidden=True,
                       out=io.StringIO())
    assert {r.number for r in report.results if not r.passed} == {"3.101", "3.102", "3.103"}


@pytest.mark.heavy  # every run test of the lab on a variant
def test_without_batching_only_hidden_part_4_fails(hidden, tmp_path):
    path = variant(tmp_path, "BATCH_WINDOW = 8 ", "BATCH_WINDOW = 10**9 ")
    report = run_tests("paxos", numbers=hidden_numbers(search=False), solution=path, include_hidden=True,
                       out=io.StringIO())
    assert {r.number for r in report.results if not r.passed} == {"4.101"}


def test_a_failing_hidden_test_is_summed_up_in_one_sentence(hidden, tmp_path):
    (minority,) = [m for m in load_mutants(ROOT / "grader_tests" / "mutants") if m.name == "minority_quorum"]
    path = write_mutants(REFERENCE, [minority], tmp_path)["minority_quorum"]
    (spec,) = LAB.select(numbers=["1.120"], include_hidden=True)
    result = run_one(spec, path, lab=LAB)
    assert not result.passed and result.seed is not None
    summary = hidden_summary(result)
    assert len(summary.splitlines()) == 1 and summary.endswith(".") and len(summary) <= 170
    for secret in ("seed", str(result.seed), "replay", "trace", "labkit test", "paxos_hidden", "->"):
        assert secret not in summary, secret


def test_the_reference_passes_a_hidden_test_through_check_test(hidden, capsys):
    check_test("paxos", "1.109", solution=REFERENCE)
    out = capsys.readouterr().out
    assert "TEST 1.109" in out and "PASS" in out
