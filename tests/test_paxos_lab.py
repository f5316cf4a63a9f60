"""The Paxos lab end to end: the reference passes, the stub and broken modules fail clearly,
and each part's tests pass with a solution that has only that part and the earlier ones."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from labkit.labs.paxos.tests import LAB
from labkit.testing import pytest_cases, run_tests
from labkit.testing.check_solution import Mutant
from labkit.testing.declare import SEARCH

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "solutions" / "paxos" / "paxos_server.py"
PIGGYBACK = ROOT / "solutions" / "paxos" / "piggyback" / "paxos_server.py"
STUB = ROOT / "notebooks" / "source" / "paxos" / "paxos_server.py"

PUBLIC = LAB.select()  # hidden tests join LAB.tests only where grader_tests is imported
RUN_ONLY = [t.qualified_number for t in PUBLIC if SEARCH not in t.categories]
SEARCHES = [t.qualified_number for t in PUBLIC if SEARCH in t.categories]

# The reference through every public run test (fast), every search test but the two long random
# searches (slow tier), and those two (1.25 and 1.26, several minutes each: heavy tier).
LONG_SEARCHES = ["1.25", "1.26"]
test_reference_run_tests = pytest_cases("paxos", REFERENCE, numbers=RUN_ONLY)
test_reference_search_tests = pytest.mark.slow(
    pytest_cases("paxos", REFERENCE, numbers=[n for n in SEARCHES if n not in LONG_SEARCHES]))
test_reference_long_searches = pytest.mark.heavy(pytest_cases("paxos", REFERENCE, numbers=LONG_SEARCHES))
# The second reference (another design) through the cheap run tests; all of its tests run in the heavy tier.
test_piggyback_quick_run_tests = pytest_cases("paxos", PIGGYBACK, numbers=["1.2", "1.3", "1.5", "1.7", "1.9"])


def run_quietly(solution: Path, **options: object):
    out = io.StringIO()
    report = run_tests("paxos", solution=solution, out=out, **options)  # type: ignore[arg-type]
    return report, out.getvalue()


def variant(tmp_path: Path, old: str, new: str) -> Path:
    """The reference with one change, written as paxos_server.py in its own folder."""
    folder = tmp_path / "variant"
    folder.mkdir()
    path = folder / "paxos_server.py"
    path.write_text(Mutant("variant", "", ((old, new),)).apply(REFERENCE.read_text()))
    return path


def test_public_suite_covers_dslabs_27_scenarios():
    numbers = {t.number for t in PUBLIC}
    assert set(range(1, 28)) <= numbers  # test 1 is the client contract, 2-27 as in DSLabs
    assert sum(t.points for t in PUBLIC if t.number <= 27) == 355  # DSLabs's total
    assert {t.part for t in PUBLIC} == {1, 2, 3, 4}


def test_untouched_stub_fails_every_test_quickly_with_not_implemented():
    report, text = run_quietly(STUB)
    assert report.passed == 0 and len(report.results) == len(PUBLIC)
    assert report.seconds < 10
    for result in report.results:
        assert "not implemented: Paxos" in (result.failure or ""), result
    assert "Traceback" not in text


def test_syntax_error_fails_all_tests_with_the_error_shown_once(tmp_path):
    broken = tmp_path / "paxos_server.py"
    broken.write_text(REFERENCE.read_text() + "\ndef oops(:\n")
    report, text = run_quietly(broken, numbers=["1.2", "1.3"])
    assert report.passed == 0
    assert text.count("syntax error") == 1
    assert "line" in text


def test_query_method_returning_wrong_type_is_named(tmp_path):
    path = variant(tmp_path, "        return self.cleared_through + 1\n", "        return str(self.cleared_through + 1)\n")
    report, _ = run_quietly(path, numbers=["1.2"])
    failure = report.results[0].failure or ""
    assert "first_non_cleared" in failure and "int" in failure


def test_query_method_that_raises_is_named(tmp_path):
    path = variant(tmp_path, "    def last_non_empty(self) -> int:\n",
                   "    def last_non_empty(self) -> int:\n        raise RuntimeError('broken')\n")
    report, _ = run_quietly(path, numbers=["1.2"])
    failure = report.results[0].failure or ""
    assert "last_non_empty" in failure and "RuntimeError" in failure


def test_two_designs_judged_one_after_the_other_in_one_process():
    """Both references define a HeartbeatTimer, with other fields: as when autograding a class, the
    second submission is judged on its own classes, not on the first one's."""
    for solution in (REFERENCE, PIGGYBACK, REFERENCE):
        report, text = run_quietly(solution, numbers=["1.1"])
        assert report.all_passed, text


@pytest.mark.heavy  # every run test of the lab on a variant
def test_without_garbage_collection_only_part_3_fails(tmp_path):
    path = variant(tmp_path, "        if slot <= self.cleared_through:\n            return\n        for old",
                   "        if True:  # garbage collection left out\n            return\n        for old")
    report, _ = run_quietly(path, exclude_categories=(SEARCH,))
    failed = {r.number for r in report.results if not r.passed}
    assert failed == {"3.11"}


@pytest.mark.slow
def test_batching_is_counted_in_commands_per_slot_whatever_carries_decisions(tmp_path):
    """The second reference carries decisions on its accepts (few messages even unbatched): without
    batching it still fails 4.28, because every command then takes a slot of its own."""
    folder = tmp_path / "unbatched"
    folder.mkdir()
    unbatched = folder / "paxos_server.py"
    unbatched.write_text(Mutant("unbatched", "", (("MAX_IN_FLIGHT = 3 ", "MAX_IN_FLIGHT = 10**9 "),)).apply(
        PIGGYBACK.read_text()))
    report, _ = run_quietly(unbatched, numbers=["4.28"])
    assert "400 commands from 40 clients waiting at once on 3 servers used 400 log slots" in (report.results[0].failure or "")
    report, text = run_quietly(PIGGYBACK, numbers=["4.28"])
    assert report.all_passed, text


@pytest.mark.heavy  # every run test of the lab on a variant
def test_without_batching_only_part_4_fails(tmp_path):
    path = variant(tmp_path, "BATCH_WINDOW = 8 ", "BATCH_WINDOW = 10**9 ")
    report, _ = run_quietly(path, exclude_categories=(SEARCH,))
    failed = {r.number for r in report.results if not r.passed}
    assert failed == {"4.28"}


def test_the_long_searches_say_how_long_they_usually_take():
    headers = {t.qualified_number: t.header for t in PUBLIC}
    for number in ["1.22", "1.25", "1.26"]:
        assert "(usually about" in headers[number], headers[number]
