"""Step through a system by hand, as in DSLabs's visual debugger: the logic, without widgets.

From a start state (or a trace's), deliver any pending message or timer, go
back and forward, and branch by delivering something else from a past state;
every state visited stays in a tree. The search settings' restrictions
(inactive links, disabled timers, states that are terminal, pruned or reach a
goal) are respected unless ``ignore_restrictions`` is set; the timer-queue
rule is part of the semantics and always holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.check.predicates import Predicate, find_predicate
from labkit.node import Address, LabkitError
from labkit.search.settings import SearchSettings
from labkit.search.state import Event, SearchState
from labkit.search.trace import Trace, same_value, node_changes, node_fields

__all__ = ["Stepper", "StepperError", "Choice", "HistoryNode", "PredicateStatus"]


class StepperError(LabkitError):
    """A step that cannot be taken here."""


@dataclass(frozen=True)
class Choice:
    """A message or timer pending in the current state; ``index`` is what :meth:`Stepper.deliver` takes."""

    index: int
    event: Event
    internal: tuple
    allowed: bool  # deliverable now under the rules in force
    delivered: bool  # already delivered on this branch (delivering it again is a duplicate)
    new: bool  # sent or set by the last step

    @property
    def kind(self) -> str:
        return self.event.kind

    @property
    def node(self) -> Address:
        return self.event.node  # type: ignore[return-value]

    def __str__(self) -> str:
        return str(self.event)


@dataclass
class HistoryNode:
    """One visited state: the event that led to it from its parent, and the branches taken from it."""

    id: int
    state: SearchState
    parent: int | None
    event: Event | None
    delivered_fp: int | None = None  # the envelope the event delivered, if a message
    children: list[int] = field(default_factory=list)
    next: int | None = None  # the child that forward() goes to


@dataclass(frozen=True)
class PredicateStatus:
    """A predicate of the settings on the current state."""

    role: str  # "invariant", "goal" or "prune"
    name: str
    holds: bool
    detail: str | None

    @property
    def alarm(self) -> bool:
        """A violated invariant, a reached goal or an active prune: the search would stop here."""
        return not self.holds if self.role == "invariant" else self.holds


class Stepper:
    """A tree of visited states with a current one, stepped one event at a time."""

    def __init__(self, start: SearchState, settings: SearchSettings | None = None, *,
                 ignore_restrictions: bool = False) -> None:
        self.settings = settings if settings is not None else SearchSettings()
        self.ignore_restrictions = ignore_restrictions
        self.history: list[HistoryNode] = [HistoryNode(0, start, None, None)]
        self.current = 0
        system = start.system
        self.addresses: list[Address] = [system.addresses[i] for i in (
            *system.server_indices, *system.worker_indices, *system.client_indices)]
        self.addresses += [a for a in system.addresses if a not in self.addresses]

    @classmethod
    def from_trace(cls, trace: Trace, settings: SearchSettings | None = None) -> "Stepper":
        """A stepper at the trace's start with its events as the branch ahead (forward() follows them).

        Without settings, the trace's violated predicate (if it can be found) is the one invariant shown.
        """
        if settings is None:
            found = find_predicate(trace.violation.name) if trace.violation is not None else None
            settings = SearchSettings(invariants=[found] if found is not None else [])
        stepper = cls(trace.root, settings, ignore_restrictions=True)
        for event in trace.events:
            stepper.deliver(event)
        stepper.current = 0
        stepper.ignore_restrictions = False
        return stepper

    # ---- where we are -----------------------------------------------------------

    @property
    def node(self) -> HistoryNode:
        return self.history[self.current]

    @property
    def state(self) -> SearchState:
        return self.node.state

    @property
    def last_event(self) -> Event | None:
        return self.node.event

    def path(self) -> list[HistoryNode]:
        """From the start to the current state."""
        nodes = [self.node]
        while nodes[-1].parent is not None:
            nodes.append(self.history[nodes[-1].parent])  # type: ignore[index]
        return nodes[::-1]

    def branch(self) -> list[HistoryNode]:
        """The current branch: the path to here, then on along the steps forward() would retrace."""
        nodes = self.path()
        while nodes[-1].next is not None:
            nodes.append(self.history[nodes[-1].next])
        return nodes

    @property
    def position(self) -> int:
        """How many steps the current state is from the start."""
        return len(self.path()) - 1

    def branches(self) -> int:
        """How many branches the tree has (its leaves)."""
        return sum(1 for h in self.history if not h.children)

    # ---- what the current state offers --------------------------------------------

    def blocked(self) -> str | None:
        """Why no event may be delivered here under the rules in force, or None."""
        state = self.state
        if state.failure is not None:
            return f"{state.failure.node} raised {state.failure.error_type}: nothing more can happen"
        if self.ignore_restrictions:
            return None
        for status in self.predicates():
            if status.alarm:
                verb = {"invariant": "violates", "goal": "reaches the goal", "prune": "is pruned by"}[status.role]
                return f'this state {verb} "{status.name}"'
        return None

    def choices(self) -> list[Choice]:
        """Every pending message and timer, each marked allowed or not."""
        state = self.state
        n = len(state.system.addresses)
        if self.ignore_restrictions:
            can = tuple(tuple(True for _ in range(n)) for _ in range(n))
            timers_on = tuple(True for _ in range(n))
        else:
            can = self.settings.connectivity(state.system.addresses)
            timers_on = self.settings.timer_mask(state.system.addresses)
        allowed = set(state.events(can, timers_on)) if self.blocked() is None else set()
        delivered = {h.delivered_fp for h in self.path() if h.delivered_fp is not None}
        parent = self.history[self.node.parent].state if self.node.parent is not None else None
        out: list[Choice] = []
        for k, env in enumerate(state.envs):
            internal = (0, k)
            new = parent is not None and env[4] not in parent.env_fps
            out.append(Choice(len(out), state.event_value(internal), internal, internal in allowed,
                              env[4] in delivered, new))
        fresh = self._new_timers()
        for i, queue in enumerate(state.queues):
            for pos in range(len(queue)):
                internal = (1, i, pos)
                out.append(Choice(len(out), state.event_value(internal), internal, internal in allowed, False,
                                  (i, pos) in fresh))
        return out

    def _new_timers(self) -> set[tuple[int, int]]:
        """(node index, queue position) of the timers set by the last step."""
        node = self.node
        if node.parent is None or node.event is None or node.event.node is None or node.event.kind not in (
                "message", "timer"):
            return set()
        i = self.state.system.index[node.event.node]
        before = len(self.history[node.parent].state.queues[i]) - (1 if node.event.kind == "timer" else 0)
        return {(i, pos) for pos in range(before, len(self.state.queues[i]))}

    def inbox(self, address: Address) -> list[Choice]:
        """The messages pending for ``address``."""
        return [c for c in self.choices() if c.kind == "message" and c.node == address]

    def timers(self, address: Address) -> list[Choice]:
        """The timers pending at ``address``, in the order they were set."""
        return [c for c in self.choices() if c.kind == "timer" and c.node == address]

    def fields(self, address: Address) -> dict[str, Any]:
        """The state fields of the node at ``address``."""
        return node_fields(self.state.node(address))

    def changes(self) -> dict[Address, list[str]]:
        """What the last step changed: ``field: before -> after`` lines of the node that handled it."""
        node = self.node
        event = node.event
        if node.parent is None or event is None or event.node is None or event.kind not in ("message", "timer"):
            return {}
        before = self.history[node.parent].state.node(event.node)
        return {event.node: node_changes(before, self.state.node(event.node))}

    def changed_fields(self, address: Address) -> set[str]:
        """The names of the fields of ``address`` that the last step changed."""
        node = self.node
        if node.parent is None:
            return set()
        old = node_fields(self.history[node.parent].state.node(address))
        new = node_fields(self.state.node(address))
        return {k for k in new if k not in old or not same_value(old[k], new[k])}

    def predicates(self) -> list[PredicateStatus]:
        """The settings' invariants, goals and prunes evaluated on the current state."""
        out = []
        groups: list[tuple[str, list[Predicate]]] = [
            ("invariant", self.settings.invariants), ("goal", self.settings.goals), ("prune", self.settings.prunes)]
        for role, predicates in groups:
            for p in predicates:
                result = p.evaluate(self.state)
                out.append(PredicateStatus(role, p.name, result.ok, result.detail))
        return out

    # ---- moving ----------------------------------------------------------------------

    def deliver(self, choice: int | Choice | Event) -> SearchState:
        """Deliver a pending message or timer (by index in :meth:`choices`, as a Choice or as an Event).

        Delivering from a past state something other than what came next
        starts a new branch; delivering the same thing again follows the
        existing one. Returns the new current state.
        """
        if isinstance(choice, Event):
            event = choice
            if event.kind in ("drop", "undrop"):
                return self._move(event, self.state.apply(event), None)  # type: ignore[arg-type]
            internal = self.state.find_event(event)
            if internal is None:
                raise StepperError(f"{event} is not pending in this state")
            picked = next(c for c in self.choices() if c.internal == internal)
        else:
            options = self.choices()
            if isinstance(choice, Choice):
                choice = choice.index
            if not 0 <= choice < len(options):
                raise StepperError(f"there is no pending event number {choice}; there are {len(options)}")
            picked = options[choice]
        if not picked.allowed:
            raise StepperError(f"{picked} cannot be delivered now: {self._why_not(picked)}")
        state = self.state
        fp = state.envs[picked.internal[1]][4] if picked.kind == "message" else None
        return self._move(picked.event, state.step(picked.internal), fp)

    def _why_not(self, choice: Choice) -> str:
        reason = self.blocked()
        if reason is not None:
            return reason
        if choice.kind == "message":
            return f"the link {choice.event.sender} -> {choice.node} is inactive in these settings"
        if not self.settings.timers_active(choice.node):
            return f"timers at {choice.node} are off in these settings"
        return "a timer set earlier on this node, with a shorter or equal length, must fire first"

    def _move(self, event: Event, state: SearchState, fp: int | None) -> SearchState:
        here = self.node
        for child in here.children:
            if self.history[child].state.fp == state.fp and self.history[child].event == event:
                here.next = child
                self.current = child
                return self.state
        node = HistoryNode(len(self.history), state, here.id, event, fp)
        self.history.append(node)
        here.children.append(node.id)
        here.next = node.id
        self.current = node.id
        return state

    def back(self) -> SearchState:
        """Go to the previous state (the next one is remembered for forward())."""
        if self.node.parent is None:
            raise StepperError("this is the start state; there is no step to go back")
        self.current = self.node.parent
        return self.state

    def forward(self) -> SearchState:
        """Redo the step taken from here most recently (or the trace's next step)."""
        if self.node.next is None:
            raise StepperError("there is no step ahead on this branch; deliver an event instead")
        self.current = self.node.next
        return self.state

    def goto(self, node_id: int) -> SearchState:
        """Jump to any visited state (time travel); the branch becomes the one through it."""
        if not 0 <= node_id < len(self.history):
            raise StepperError(f"there is no visited state number {node_id}")
        self.current = node_id
        child = self.history[node_id]
        while child.parent is not None:
            self.history[child.parent].next = child.id
            child = self.history[child.parent]
        return self.state

    def tree(self) -> list[tuple[int, int, str, bool]]:
        """Every visited state depth-first: ``(id, depth, event text, on the current branch)``."""
        on_branch = {h.id for h in self.branch()}
        rows: list[tuple[int, int, str, bool]] = []
        stack = [(0, 0)]
        while stack:
            node_id, depth = stack.pop()
            h = self.history[node_id]
            rows.append((h.id, depth, str(h.event) if h.event is not None else "start", h.id in on_branch))
            stack.extend((c, depth + 1) for c in reversed(h.children))
        return rows
