"""What a test body receives: its seed, the student's module and checking helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from labkit.check.predicates import Predicate
from labkit.judge.nodes import RemoteSolution
from labkit.search.results import Outcome, SearchResult
from labkit.search.settings import SearchSettings
from labkit.search.state import SearchState
from labkit.search.strategies import bfs, random_search
from labkit.sim.settings import RunSettings
from labkit.sim.simulator import REPLAY_SHARE, Simulation
from labkit.testing.declare import TestSpec

__all__ = ["TestContext", "TestFailure", "fail"]


class TestFailure(AssertionError):
    """A test's check failed; the message is the explanation shown to the student."""

    __test__ = False


def fail(message: str) -> None:
    """Fail the current test (or notebook cell) with ``message``."""
    __tracebackhide__ = True
    raise TestFailure(message)


class TestContext:
    """Handed to every test body as ``t``.

    ``t.seed`` fixes all randomness; ``t.solution`` is the student's module,
    seen from the judge (its classes make nodes in the test's workers);
    ``t.simulation()`` builds a seeded simulation that the runner keeps so a
    failure can show its event log.
    """

    __test__ = False

    def __init__(self, spec: TestSpec, seed: int, solution: RemoteSolution, trace_dir: Path | None = None, *,
                 checks: bool = False, progress: bool | str = False) -> None:
        self.spec = spec
        self.seed = seed
        self.solution = solution
        self.session = solution._session
        self.trace_dir = trace_dir
        self.checks = checks  # replay every step in a fresh worker to catch non-deterministic handlers
        self.progress = progress
        self.simulations: list[Simulation] = []
        self.searches: list[SearchResult] = []
        self.traces: list[Path] = []
        self.notes: list[str] = []

    def simulation(self, settings: RunSettings | None = None, **options: Any) -> Simulation:
        """A new simulation seeded with this test's seed (the k-th one gets seed + k)."""
        options.setdefault("replay_share", 1 if self.checks else REPLAY_SHARE)
        sim = Simulation(self.seed + len(self.simulations), settings, session=self.session, **options)
        self.simulations.append(sim)
        return sim

    def check(self, state: Any, *predicates: Predicate) -> None:
        """Fail with the first predicate's explanation that does not hold on ``state``."""
        __tracebackhide__ = True
        for p in predicates:
            result = p.evaluate(state)
            if not result.ok:
                fail(result.explain())

    def check_not(self, state: Any, predicate: Predicate, why: str) -> None:
        """Fail with ``why`` if ``predicate`` holds on ``state``."""
        __tracebackhide__ = True
        result = predicate.evaluate(state)
        if result.ok:
            fail(why)

    def check_max_wait(self, sim: Simulation, limit_millis: int) -> None:
        """Fail if any client worker waited ``limit_millis`` or longer for one result."""
        __tracebackhide__ = True
        address, wait = sim.max_wait()
        if wait >= limit_millis:
            fail(f"{address} waited too long for a result: {wait} ms of virtual time ({limit_millis} ms allowed)")

    # ---- search tests ---------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {
            "lab": self.spec.lab,
            "test": self.spec.qualified_number,
            "name": self.spec.name,
            "seed": self.seed,
            "solution": str(self.session.solution_path) if self.session.solution_path else None,
        }

    def _save(self, result: SearchResult) -> str:
        if result.trace is None or self.trace_dir is None:
            return ""
        stage = len(self.searches)
        path = self.trace_dir / f"{self.spec.lab}-{self.spec.qualified_number}-search{stage}.trace.json"
        result.trace.save(path)
        self.traces.append(path)
        return f"\nThe trace is saved in {path}; replay it with: labkit replay {path}"

    def _judge(self, result: SearchResult, what: str) -> None:
        __tracebackhide__ = True
        self.searches.append(result)
        if result.outcome in (Outcome.INVARIANT_VIOLATED, Outcome.EXCEPTION_THROWN):
            heading = (
                f"{what} found a state that violates an invariant"
                if result.outcome is Outcome.INVARIANT_VIOLATED
                else f"{what} found a step where a handler raised an exception"
            )
            trace = result.trace.render() if result.trace is not None else ""
            fail(f"{heading} ({result.coverage()}):\n{trace}{self._save(result)}")
        if result.outcome is Outcome.TIME_EXHAUSTED:
            fail(f"{what} is incomplete: it {result.coverage()} and reached its real-time guard (max_time) first")

    def _tuned(self, settings: SearchSettings) -> SearchSettings:
        if not self.checks:
            return settings
        checked = settings.copy()
        checked.check_determinism = 1.0
        return checked

    def bfs(self, state: SearchState, settings: SearchSettings) -> SearchResult:
        """Breadth-first search; fails on a violation, an exception or an incomplete search."""
        __tracebackhide__ = True
        result = bfs(state, self._tuned(settings), progress=self.progress, meta=self._meta())
        self._judge(result, "The breadth-first search")
        self.note(f"BFS: {result.outcome.value}, {result.coverage()}")
        return result

    def random_search(self, state: SearchState, settings: SearchSettings) -> SearchResult:
        """Random probes seeded by this test's seed; fails like :meth:`bfs`."""
        __tracebackhide__ = True
        result = random_search(state, self._tuned(settings), seed=self.seed, progress=self.progress,
                               meta=self._meta())
        self._judge(result, "The random search")
        self.note(f"random search: {result.outcome.value}, {result.coverage()}")
        return result

    def goal_state(self, state: SearchState, settings: SearchSettings, name: str = "") -> SearchState:
        """Breadth-first search that must reach one of ``settings.goals``; returns the state found."""
        __tracebackhide__ = True
        result = self.bfs(state, settings)
        if result.outcome is not Outcome.GOAL_FOUND:
            goals = " or ".join(f'"{g.name}"' for g in settings.goals) or "(no goal given)"
            label = f" ({name})" if name else ""
            how = {
                Outcome.SPACE_EXHAUSTED: "every reachable state was explored",
                Outcome.BUDGET_EXHAUSTED: "the search used its whole budget",
            }.get(result.outcome, result.outcome.value)
            fail(
                f"Could not find a state matching {goals}{label}: {how} ({result.coverage()}) and none matched. "
                "Check that your nodes make progress in this situation"
            )
        assert result.state is not None
        return result.state

    def require(self, condition: bool, message: str | Callable[[], str]) -> None:
        """Fail with ``message`` unless ``condition`` holds (a function giving the message is called only then)."""
        __tracebackhide__ = True
        if not condition:
            fail(message() if callable(message) else message)

    def fail(self, message: str) -> None:
        """Fail the test with ``message``."""
        __tracebackhide__ = True
        fail(message)

    def note(self, message: str) -> None:
        """Record a line printed under the test's result (figures, coverage)."""
        self.notes.append(message)
