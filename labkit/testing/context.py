"""What a test body receives: its seed, the student's module and checking helpers."""

from __future__ import annotations

from typing import Any

from labkit.check.predicates import Predicate
from labkit.sim.settings import RunSettings
from labkit.sim.simulator import Simulation
from labkit.testing.declare import TestSpec
from labkit.testing.solution import Solution

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

    ``t.seed`` fixes all randomness; ``t.solution`` is the student's module;
    ``t.simulation()`` builds a seeded simulation that the runner keeps so a
    failure can show its event log.
    """

    __test__ = False

    def __init__(self, spec: TestSpec, seed: int, solution: Solution) -> None:
        self.spec = spec
        self.seed = seed
        self.solution = solution
        self.simulations: list[Simulation] = []
        self.notes: list[str] = []

    def simulation(self, settings: RunSettings | None = None, **options: Any) -> Simulation:
        """A new simulation seeded with this test's seed (the k-th one gets seed + k)."""
        sim = Simulation(self.seed + len(self.simulations), settings, **options)
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

    def require(self, condition: bool, message: str) -> None:
        """Fail with ``message`` unless ``condition`` holds."""
        __tracebackhide__ = True
        if not condition:
            fail(message)

    def fail(self, message: str) -> None:
        """Fail the test with ``message``."""
        __tracebackhide__ = True
        fail(message)

    def note(self, message: str) -> None:
        """Record a line printed under the test's result (figures, coverage)."""
        self.notes.append(message)
