"""What a search reports: how it ended, how far it got, and the trace of a failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from labkit.check.predicates import PredicateResult

if TYPE_CHECKING:
    from labkit.search.state import HandlerFailure, SearchState
    from labkit.search.trace import Trace

__all__ = ["Outcome", "SearchResult"]


class Outcome(Enum):
    """How a search ended."""

    SPACE_EXHAUSTED = "space exhausted"
    BUDGET_EXHAUSTED = "budget exhausted"
    TIME_EXHAUSTED = "incomplete"
    INVARIANT_VIOLATED = "invariant violated"
    GOAL_FOUND = "goal found"
    EXCEPTION_THROWN = "exception thrown"


@dataclass
class SearchResult:
    """The end of one search.

    ``states`` counts distinct states explored (breadth-first) and ``steps``
    the steps taken (random probes); ``depth`` is the deepest level reached.
    ``state`` is the goal, violating or failing state, with ``trace`` the
    readable path to it.
    """

    outcome: Outcome
    strategy: str
    states: int = 0
    steps: int = 0
    probes: int = 0
    depth: int = 0
    seconds: float = 0.0
    budget: int | None = None
    state: "SearchState | None" = None
    violation: PredicateResult | None = None
    failure: "HandlerFailure | None" = None
    trace: "Trace | None" = None
    goal: PredicateResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        """No invariant violated and no handler raised."""
        return self.outcome not in (Outcome.INVARIANT_VIOLATED, Outcome.EXCEPTION_THROWN)

    @property
    def complete(self) -> bool:
        """The search did all the work it was asked to do (space or budget exhausted, or it stopped early for a reason)."""
        return self.outcome is not Outcome.TIME_EXHAUSTED

    def coverage(self) -> str:
        """``explored 12,345 states to depth 14 in 2.1 s`` (or steps and probes)."""
        if self.strategy == "bfs":
            amount = f"{self.states:,} state" + ("" if self.states == 1 else "s")
            of = f" of a budget of {self.budget:,}" if self.budget and self.outcome is Outcome.TIME_EXHAUSTED else ""
        else:
            amount = f"{self.steps:,} steps in {self.probes:,} probes"
            of = f" of a budget of {self.budget:,} steps" if self.budget and self.outcome is Outcome.TIME_EXHAUSTED else ""
        return f"explored {amount}{of} to depth {self.depth} in {self.seconds:.1f} s"

    def summary(self) -> str:
        """One line: how the search ended and how far it got."""
        text = f"{self.outcome.value}: {self.coverage()}"
        if self.violation is not None:
            text += f"; {self.violation.explain()}"
        elif self.failure is not None:
            text += f"; {self.failure.node} raised {self.failure.error_type}: {self.failure.message}"
        return text
