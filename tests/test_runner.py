"""Declaring and selecting tests, the runner's output and JSON, and the Python and pytest routes."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import NO_RETRY_FAILS, PING_NUMBERS, PING_SOLUTION, ROOT, verdicts_failing

from labkit.node import Address
from labkit.sim import Simulation
from labkit.testing import Lab, LabError, TestContext, check_test, run_tests, test_summary
from labkit.testing.declare import RUN, SEARCH, UNRELIABLE


def demo_lab() -> Lab:
    lab = Lab("demo", solution_module="demo_solution", parts={1: "one", 2: "two"})

    @lab.test(1, "passes", 5)
    def passes(t: TestContext) -> None:
        node = Simulation(t.seed).add_server(t.solution.Answerer(Address("a")))
        t.require(node.answer == 42, "wrong answer")

    @lab.test(2, "fails", 3, categories=(RUN, UNRELIABLE))
    def fails(t: TestContext) -> None:
        t.fail(f"always fails (seed {t.seed})")

    @lab.test(1, "searches", 2, part=2, categories=(SEARCH,))
    def searches(t: TestContext) -> None:
        t.note("explored 0 states")

    @lab.test(2, "crashes", 1, part=2)
    def crashes(t: TestContext) -> None:
        {}["nope"]

    @lab.test(3, "hidden", 1, part=2, hidden=True)
    def hidden(t: TestContext) -> None:
        pass

    return lab


@pytest.fixture
def solution(tmp_path: Path) -> Path:
    path = tmp_path / "demo_solution.py"
    path.write_text(DEMO_SOLUTION)
    return path


DEMO_SOLUTION = textwrap.dedent(
    """
    import time
    from dataclasses import dataclass
    from labkit import Node, Timer

    class Answerer(Node):
        def init(self):
            self.answer = 42

    @dataclass(frozen=True)
    class Tick(Timer):
        pass

    class Spinner(Node):
        \"\"\"Spends 2 ms of CPU time on every 1 ms tick.\"\"\"

        def init(self):
            self.set_timer(Tick(), 1)

        def on_Tick(self, timer):
            end = time.process_time() + 0.002
            while time.process_time() < end:
                pass
            self.set_timer(Tick(), 1)
    """
)


# ---- declaring and selecting ----------------------------------------------------------


def test_declared_tests_are_sorted_and_described() -> None:
    lab = demo_lab()
    assert [t.qualified_number for t in lab.tests] == ["1.1", "1.2", "2.1", "2.2", "2.3"]
    spec = lab.tests[1]
    assert spec.header == "TEST 1.2: fails [RUN, UNRELIABLE] (3pts)"
    assert lab.tests[4].header.endswith("(1pt)")
    assert spec.default_seed == demo_lab().tests[1].default_seed != lab.tests[0].default_seed


def test_selection_by_part_and_number() -> None:
    lab = demo_lab()
    numbers = lambda specs: [s.qualified_number for s in specs]  # noqa: E731
    assert numbers(lab.select()) == ["1.1", "1.2", "2.1", "2.2"]
    assert numbers(lab.select(include_hidden=True))[-1] == "2.3"
    assert numbers(lab.select(parts=[2])) == ["2.1", "2.2"]
    assert numbers(lab.select(numbers=["1.2", "2.1"])) == ["1.2", "2.1"]
    assert numbers(lab.select(parts=[2], numbers=["2"])) == ["2.2"]
    assert numbers(lab.select(exclude_categories=(SEARCH,))) == ["1.1", "1.2", "2.2"]
    with pytest.raises(LabError, match=r"test number 2 is ambiguous across parts \[1, 2\].*PART.NUMBER"):
        lab.select(numbers=["2"])
    with pytest.raises(LabError, match="has no test 1.9"):
        lab.select(numbers=["1.9"])
    with pytest.raises(LabError, match="has no part 7"):
        lab.select(parts=[7])


def test_single_part_lab_accepts_plain_numbers() -> None:
    lab = Lab("one", solution_module="x")
    for n in (1, 2):
        lab.test(n, f"t{n}", 1)(lambda t: None)
    assert [s.qualified_number for s in lab.select(numbers=["2"])] == ["1.2"]


def test_declaration_errors() -> None:
    lab = demo_lab()
    with pytest.raises(LabError, match="already has a test 1.1"):
        lab.test(1, "again", 1)(lambda t: None)
    with pytest.raises(LabError, match="unknown test category 'fast'"):
        lab.test(9, "x", 1, categories=("fast",))
    with pytest.raises(LabError, match="has no part 3"):
        lab.test(9, "x", 1, part=3)


# ---- the runner ----------------------------------------------------------------------------


def test_runner_output_json_and_isolation(solution: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    json_path = tmp_path / "results.json"
    report = run_tests(demo_lab(), solution=solution, out=out, json_path=json_path)
    text = out.getvalue()
    assert re.search(r"^TEST 1\.1: passes \[RUN\] \(5pts\) \.\.\. PASS \(\d+\.\ds\)$", text, re.M)
    assert re.search(r"^TEST 1\.2: fails \[RUN, UNRELIABLE\] \(3pts\) \.\.\. FAIL \(\d+\.\ds\)$", text, re.M)
    assert "    explored 0 states" in text
    assert "Tests passed: 2/4\nPoints: 7/11 (64%)\n" in text and text.rstrip().endswith("FAIL")
    seed = demo_lab().tests[1].default_seed
    assert f"always fails (seed {seed})" in text
    assert f"seed {seed}; replay with: labkit test demo -n 1.2 --seed {seed} --solution {solution}" in text
    crash = report.results[3]
    assert "unexpected KeyError" in crash.failure and "{}[\"nope\"]" in crash.failure
    data = json.loads(json_path.read_text())
    assert data == report.to_dict()
    assert (data["lab"], data["passed"], data["tests"], data["points_earned"], data["points_available"]) == ("demo", 2, 4, 7, 11)
    by_number = {r["number"]: r for r in data["results"]}
    assert by_number["1.2"]["passed"] is False and by_number["1.2"]["points_earned"] == 0
    assert by_number["1.2"]["categories"] == ["run", "unreliable"] and by_number["1.2"]["seed"] == seed
    assert by_number["2.1"]["notes"] == ["explored 0 states"] and by_number["1.1"]["failure"] is None


def test_seed_option_is_used_by_every_test(solution: Path) -> None:
    report = run_tests(demo_lab(), numbers=["1.2"], seed=777, solution=solution, out=io.StringIO())
    (result,) = report.results
    assert result.seed == 777 and result.failure == "always fails (seed 777)"
    assert result.replay.endswith("--seed 777 --solution " + str(solution))


def test_all_pass_summary(solution: Path) -> None:
    out = io.StringIO()
    report = run_tests(demo_lab(), numbers=["1.1"], solution=solution, out=out)
    assert report.all_passed and out.getvalue().rstrip().endswith("ALL PASS")
    assert "Points: 5/5 (100%)" in out.getvalue()


def test_a_test_over_its_cpu_budget_fails_alone(solution: Path) -> None:
    lab = Lab("slowpoke", solution_module="demo_solution")

    @lab.test(1, "spins", 1, cpu_seconds=0.3)
    def spins(t: TestContext) -> None:
        sim = Simulation(t.seed)
        sim.add_server(t.solution.Spinner(Address("s")))
        sim.run_for(100_000)

    @lab.test(2, "fine", 1)
    def fine(t: TestContext) -> None:
        pass

    report = run_tests(lab, solution=solution, out=io.StringIO())
    first, second = report.results
    assert not first.passed and "more than the 0.3 s this test allows" in first.failure
    assert second.passed


def test_empty_selection_is_an_error(solution: Path) -> None:
    with pytest.raises(LabError, match="no test of lab demo matches"):
        run_tests(demo_lab(), parts=[1], exclude_categories=(RUN,), solution=solution, out=io.StringIO())


def test_unknown_lab() -> None:
    with pytest.raises(LabError, match="there is no lab 'nolab'; the labs are: .*ping"):
        run_tests("nolab", solution=PING_SOLUTION, out=io.StringIO())


# ---- the three routes agree ------------------------------------------------------------------


def verdicts_from_python(solution: Path) -> dict[str, bool]:
    report = run_tests("ping", solution=solution, out=io.StringIO())
    return {r.number: r.passed for r in report.results}


def test_summary_lists_the_latest_result_of_each_test_and_the_total(capsys: pytest.CaptureFixture[str]) -> None:
    check_test("ping", "1.1", solution=PING_SOLUTION)
    capsys.readouterr()
    test_summary("ping", ["1.1", "1.2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["test", "name", "result", "points"]
    assert lines[2].startswith("1.1 ") and lines[2].split()[-2:] == ["PASS", "5/5"]
    assert lines[3].startswith("1.2 ") and "not run yet" in lines[3] and lines[3].endswith("-/5")
    assert lines[-1] == "Total: 5 of 10 points"


def verdicts_from_check_test(solution: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, bool]:
    verdicts = {}
    for number in PING_NUMBERS:
        try:
            check_test("ping", number, solution=solution)
        except AssertionError as error:
            assert f"TEST {number}:" in str(error) and "failed:" in str(error) and "seed" in str(error)
            verdicts[number] = False
        else:
            verdicts[number] = True
        assert f"TEST {number}:" in capsys.readouterr().out
    return verdicts


def verdicts_from_cli(solution: Path) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "test", "ping", "--solution", str(solution)],
        capture_output=True, text=True, cwd=ROOT,
    )
    return {m[0]: m[1] == "PASS" for m in re.findall(r"^TEST (\d\.\d): .* \.\.\. (PASS|FAIL)", done.stdout, re.M)}


def verdicts_from_pytest(solution: Path, tmp_path: Path) -> tuple[dict[str, bool], str]:
    test_file = tmp_path / "test_ping_lab_cases.py"
    test_file.write_text(
        textwrap.dedent(
            f"""
            from labkit.testing import pytest_cases
            test_ping = pytest_cases("ping", {str(solution)!r})
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    found = re.findall(r"^(PASSED|FAILED) \S+::test_ping\[ping-(\d\.\d)\]", done.stdout, re.M)
    return {number: outcome == "PASSED" for outcome, number in found}, done.stdout


def test_the_three_routes_give_the_same_verdicts(
    no_retry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = verdicts_failing(*NO_RETRY_FAILS)
    assert verdicts_from_python(no_retry) == expected
    assert verdicts_from_check_test(no_retry, capsys) == expected
    assert verdicts_from_cli(no_retry) == expected
    from_pytest, output = verdicts_from_pytest(no_retry, tmp_path)
    assert from_pytest == expected
    assert 'State violates "Clients done"' in output and "replay with: labkit test ping -n 1.4 --seed" in output


def test_a_long_test_says_in_its_header_how_long_it_usually_takes() -> None:
    lab = Lab("timed", solution_module="x")

    @lab.test(1, "Quick", 1)
    def quick(t: TestContext) -> None:
        pass

    @lab.test(2, "Long search", 5, categories=(SEARCH,), usual_seconds=45)
    def long_search(t: TestContext) -> None:
        pass

    quick_spec, long_spec = lab.tests
    assert quick_spec.header == "TEST 1.1: Quick [RUN] (1pt)"
    assert long_spec.header == "TEST 1.2: Long search [SEARCH] (5pts) (usually about 45 s)"
