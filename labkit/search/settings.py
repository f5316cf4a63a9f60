"""What a search may do and what it looks for."""

from __future__ import annotations

from typing import Sequence

from labkit.check.predicates import Predicate
from labkit.node import Address, LabkitError
from labkit.sim.settings import NetworkSettings, SettingsError

__all__ = ["SearchSettings", "default_workers"]


def default_workers() -> int:
    """One worker process per CPU this process may use, at most 8 (``LABKIT_WORKERS`` overrides)."""
    from labkit.judge.session import default_workers as usable

    try:
        return usable()
    except LabkitError as error:
        raise SettingsError(str(error)) from None


class SearchSettings(NetworkSettings):
    """Network and timer restrictions plus invariants, goals, prunes and budgets.

    ``max_states`` bounds a breadth-first search by states explored and
    ``max_steps`` bounds random probes by steps taken: budgets are counted in
    work, never in seconds, so a verdict does not depend on the machine.
    ``max_time`` (off unless set) is a real-time guard for exploring by hand;
    when it trips, the result says the search is incomplete. ``workers``
    worker processes run the steps (default: one per usable CPU); the result
    is the same for any number of workers.
    """

    def __init__(
        self,
        *,
        invariants: Sequence[Predicate] = (),
        goals: Sequence[Predicate] = (),
        prunes: Sequence[Predicate] = (),
        max_depth: int | None = None,
        max_states: int | None = 1_000_000,
        max_steps: int | None = 1_000_000,
        max_time: float | None = None,
        workers: int | None = None,
        check_determinism: float = 1 / 128,
    ) -> None:
        super().__init__()
        self.invariants: list[Predicate] = list(invariants)
        self.goals: list[Predicate] = list(goals)
        self.prunes: list[Predicate] = list(prunes)
        self.max_depth = max_depth
        self.max_states = max_states
        self.max_steps = max_steps
        self.max_time = max_time
        self.workers = workers if workers is not None else default_workers()
        if not 0.0 <= check_determinism <= 1.0:
            raise SettingsError("check_determinism is the share of cached steps re-executed: between 0 and 1")
        self.check_determinism = check_determinism

    def add_invariant(self, *predicates: Predicate) -> "SearchSettings":
        self.invariants.extend(predicates)
        return self

    def add_goal(self, *predicates: Predicate) -> "SearchSettings":
        self.goals.extend(predicates)
        return self

    def add_prune(self, *predicates: Predicate) -> "SearchSettings":
        self.prunes.extend(predicates)
        return self

    def clear_goals(self) -> "SearchSettings":
        self.goals.clear()
        return self

    def clear_prunes(self) -> "SearchSettings":
        self.prunes.clear()
        return self

    def clear(self) -> "SearchSettings":
        """Back to defaults: no predicates, all links and timers on (budgets kept)."""
        self.invariants.clear()
        self.goals.clear()
        self.prunes.clear()
        self.max_depth = None
        self.reconnect()
        self.clear_timer_settings()
        return self

    def copy(self) -> "SearchSettings":
        new = SearchSettings(
            invariants=self.invariants,
            goals=self.goals,
            prunes=self.prunes,
            max_depth=self.max_depth,
            max_states=self.max_states,
            max_steps=self.max_steps,
            max_time=self.max_time,
            workers=self.workers,
            check_determinism=self.check_determinism,
        )
        self._copy_into(new)
        return new

    def connectivity(self, addresses: Sequence[Address]) -> tuple[tuple[bool, ...], ...]:
        """``can[i][j]``: may a message from ``addresses[i]`` to ``addresses[j]`` be delivered."""
        return tuple(tuple(self.can_deliver(a, b) for b in addresses) for a in addresses)

    def timer_mask(self, addresses: Sequence[Address]) -> tuple[bool, ...]:
        return tuple(self.timers_active(a) for a in addresses)
