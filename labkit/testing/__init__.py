"""Declaring, running and reporting a lab's tests (CLI, notebook calls, pytest)."""

from labkit.testing.calls import check_test, pytest_cases, test_summary
from labkit.testing.context import TestContext, TestFailure, fail
from labkit.testing.declare import RUN, SEARCH, UNRELIABLE, Lab, LabError, TestSpec
from labkit.testing.runner import Report, TestResult, get_lab, run_tests
from labkit.testing.solution import SolutionError, load_solution, solution_path

__all__ = [
    "Lab",
    "LabError",
    "TestSpec",
    "TestContext",
    "TestFailure",
    "fail",
    "RUN",
    "SEARCH",
    "UNRELIABLE",
    "run_tests",
    "check_test",
    "test_summary",
    "pytest_cases",
    "get_lab",
    "Report",
    "TestResult",
    "SolutionError",
    "solution_path",
    "load_solution",
]
