"""The example ping lab: the reference passes every test; classic mistakes fail the right ones."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

from conftest import NO_RETRY_FAILS, PING_SOLUTION, verdicts_failing

from labkit.labs.ping import Ping, PingApplication, Pong
from labkit.testing import get_lab, run_tests


def passed(solution: Path, **options: object) -> dict[str, bool]:
    report = run_tests("ping", solution=solution, out=io.StringIO(), **options)  # type: ignore[arg-type]
    return {r.number: r.passed for r in report.results}


def test_lab_declaration() -> None:
    lab = get_lab("ping")
    assert [t.qualified_number for t in lab.tests][:5] == ["1.1", "1.2", "1.3", "1.4", "1.5"]
    assert all(t.points > 0 for t in lab.tests) and lab.solution_module == "ping_server"


def test_application() -> None:
    assert PingApplication().execute(Ping("x")) == Pong("x")


def test_reference_solution_passes_under_many_seeds() -> None:
    for seed in range(10):
        assert all(passed(PING_SOLUTION, seed=seed).values()), seed


def test_client_without_retries_fails_only_the_unreliable_tests(no_retry: Path) -> None:
    assert passed(no_retry) == verdicts_failing(*NO_RETRY_FAILS)


def test_client_accepting_stale_replies_fails(make_variant: Callable[..., Path]) -> None:
    sloppy = make_variant(("if self.ping is not None and message.pong.value == self.ping.value:", "if True:"))
    assert not passed(sloppy, numbers=["1.4"])["1.4"]


def test_client_with_early_result_fails_the_contract(make_variant: Callable[..., Path]) -> None:
    eager = make_variant(("        return self.pong is not None", "        return True"))
    report = run_tests("ping", numbers=["1.1"], solution=eager, out=io.StringIO())
    assert "has_result() was True right after send_command" in report.results[0].failure
