"""The two other routes to the same tests: a call for notebook cells, and pytest."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from labkit.testing.context import TestFailure
from labkit.testing.declare import Lab
from labkit.testing.runner import TestResult, evidence_timeline, get_lab, print_result, print_start, run_one
from labkit.testing.solution import solution_path

GRADING = "LABKIT_GRADING"
"""Set in the notebook kernels that nbgrader runs while grading: tests are then run by the judge, not there."""

__all__ = ["check_test", "pytest_cases", "test_summary", "summary_table"]

_LATEST: dict[tuple[str, str], TestResult] = {}  # this kernel's latest result of each test


def check_test(
    lab: str | Lab,
    number: str,
    solution: str | Path | ModuleType | None = None,
    seed: int | None = None,
    include_hidden: bool = True,
) -> TestResult | None:
    """Run one test (``"1.4"``) and print its result line; raise AssertionError with
    the explanation if it fails. Meant for notebook grade cells.

    The module is read from its file every time (the notebook's kernel never
    imports it), and runs in boxed workers exactly as when it is graded.
    While nbgrader grades the notebook, the cell only says where its result
    will be: the judge grades the module and fills the cell in the feedback."""
    __tracebackhide__ = True
    if os.environ.get(GRADING):  # the judge grades the module; its verdict replaces this cell's output
        message = f"Test {number} is graded by labkit's judge, outside this notebook; its result appears here in your feedback."
        raise NotebookTestFailure(message, message)
    the_lab = get_lab(lab)
    (spec,) = the_lab.select(numbers=[number], include_hidden=include_hidden)
    print_start(spec, sys.stdout)
    # A failing run's log is saved beside the search traces, so the cell can offer the command that draws it.
    result = run_one(spec, solution_path(solution, the_lab.solution_module), seed, _label(solution), Path("traces"),
                     lab=the_lab, progress="notebook" if _in_notebook() else False)
    _LATEST[(the_lab.name, spec.qualified_number)] = result
    print_result(result, spec, sys.stdout, started=True)
    if not result.passed:
        show_failure_picture(result)
        raise NotebookTestFailure(f"{spec.header} failed:\n{result.failure}\n(seed {result.seed})",
                                  f"{spec.header} failed: the explanation is printed above.")
    return result


class NotebookTestFailure(TestFailure):
    """A failed ``check_test``: the message has the whole explanation (for pytest and scripts); in
    a notebook, where the explanation is already printed above, IPython shows only ``headline``
    instead of a traceback through labkit's own code."""

    def __init__(self, message: str, headline: str) -> None:
        super().__init__(message)
        self.headline = headline

    def _render_traceback_(self) -> list[str]:
        return [self.headline]


def summary_table(lab: str | Lab, numbers: list[str], results: dict[str, TestResult | None],
                  hidden_note: str = "runs when graded") -> str:
    """A plain-text table: each test's number, name, verdict and points, then the total."""
    the_lab = get_lab(lab)
    specs = {s.qualified_number: s for s in the_lab.tests}
    rows = []
    earned = available = 0.0
    for number in numbers:
        spec = specs.get(number)
        name = spec.name if spec is not None and not spec.hidden else "(hidden test)"
        points = spec.points if spec is not None else 0.0
        result = results.get(number)
        if result is None:
            verdict, got = (hidden_note if spec is not None and spec.hidden else "not run yet"), "-"
        else:
            verdict, got = ("PASS" if result.passed else "FAIL"), f"{result.points_earned:g}"
            earned += result.points_earned
        available += points
        rows.append((number, name[:60], verdict, f"{got}/{points:g}"))
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("test", "name", "result", "points"))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(("test", "name", "result", "points")), line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows]
    out.append(f"Total: {earned:g} of {available:g} points")
    return "\n".join(out)


def test_summary(lab: str | Lab, numbers: list[str]) -> None:
    """Print the tests of this notebook with the latest result of each run in this session, and the total.
    While nbgrader grades the notebook, the judge fills this cell with the graded results instead."""
    the_lab = get_lab(lab)
    if os.environ.get(GRADING):
        print("Your results, hidden tests included, appear here in your feedback.")
        return
    print(summary_table(the_lab, numbers, {n: _LATEST.get((the_lab.name, n)) for n in numbers}))


test_summary.__test__ = False  # type: ignore[attr-defined]  (a notebook call, not a pytest test)


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where a search shows a live progress line)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show_failure_picture(result: TestResult) -> None:
    """In a notebook, draw the timeline of the failing run or trace under the cell."""
    if result.evidence is None:
        return
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    try:
        figure = evidence_timeline(result, end=True)
    except Exception as error:  # a picture must never hide the verdict
        print(f"(no timeline could be drawn: {type(error).__name__}: {error})")
        return
    display(figure)
    print(f"(The picture shows {figure.get_label()}.)")


def _label(solution: str | Path | ModuleType | None) -> str | None:
    if isinstance(solution, ModuleType):
        return getattr(solution, "__file__", None)
    return None if solution is None else str(solution)


def pytest_cases(
    lab: str | Lab,
    solution: str | Path | ModuleType,
    *,
    parts: list[int] | None = None,
    numbers: list[str] | None = None,
    seed: int | None = None,
    include_hidden: bool = False,
) -> Callable[[Any], None]:
    """A pytest test function parametrized over the lab's tests:

    ``test_ping = pytest_cases("ping", "solutions/ping/ping_server.py")``
    """
    import pytest

    the_lab = get_lab(lab)
    specs = the_lab.select(parts, numbers, include_hidden)

    path = solution_path(solution, the_lab.solution_module)

    @pytest.mark.parametrize("spec", specs, ids=[f"{s.lab}-{s.qualified_number}" for s in specs])
    def test(spec: Any) -> None:
        result = run_one(spec, path, seed, _label(solution), lab=the_lab)
        print(f"{spec.header}: seed {result.seed}")
        if not result.passed:
            pytest.fail(f"{result.failure}\nseed {result.seed}; replay with: {result.replay}", pytrace=False)

    return test
