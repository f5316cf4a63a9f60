"""Named predicates over a system state, each explaining a failure in one sentence.

A predicate is a name plus a function from a state to ``bool`` or to
``(bool, detail)``. States are what the engines expose: a
:class:`~labkit.sim.Simulation` in run tests, a search state in search tests.
Both offer ``nodes`` (address to node), ``servers``, ``workers`` (client
workers) and ``clients`` (raw clients).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from labkit.app import Append, AppendResult, describe

__all__ = [
    "Predicate",
    "PredicateResult",
    "predicate",
    "find_predicate",
    "RESULTS_OK",
    "CLIENTS_DONE",
    "NONE_DECIDED",
    "ALL_RESULTS_SAME",
    "APPENDS_LINEARIZABLE",
    "client_done",
    "client_has_results",
]


@dataclass(frozen=True)
class PredicateResult:
    """The outcome of evaluating a predicate on one state."""

    name: str
    ok: bool
    detail: str | None = None
    error: str | None = None

    def explain(self, verb: str = "violates") -> str:
        """``State violates "name": detail`` (or the traceback if evaluation raised)."""
        if self.error is not None:
            return f'Checking "{self.name}" raised an exception:\n{self.error}'
        text = f'State {verb} "{self.name}"'
        return f"{text}: {self.detail}" if self.detail else text


class Predicate:
    """A named check on a state. ``p(state)`` is a bool; ``p.evaluate(state)`` explains."""

    def __init__(self, name: str, fn: Callable[[Any], Any], reads_network: bool = False,
                 reads: Iterable[str] | None = None) -> None:
        """``fn(state)`` returns a bool or ``(ok, detail)``; the detail may be a
        function returning the text, so it is built only when shown. Set
        ``reads_network`` if ``fn`` looks at messages in flight, not only at
        node state (searches then cannot share its verdicts between states
        whose nodes are equal). ``reads`` names the only kinds of nodes ``fn``
        looks at (``"servers"``, ``"workers"``, ``"clients"``): searches then
        share its verdict between states whose nodes of those kinds are equal."""
        self.name = name
        self._fn = fn
        self.reads_network = reads_network
        self.reads = _kinds(reads)
        _REGISTRY[name] = self

    def evaluate(self, state: Any) -> PredicateResult:
        try:
            value = self._fn(state)
            if isinstance(value, tuple):
                ok, detail = value
                if callable(detail):
                    detail = detail()
                return PredicateResult(self.name, bool(ok), detail)
        except Exception as error:  # a predicate that raises is a violation that shows the exception
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            return PredicateResult(self.name, False, f"{type(error).__name__}: {error}", text)
        return PredicateResult(self.name, bool(value))

    def __call__(self, state: Any) -> bool:
        return self.check(state) is True

    def check(self, state: Any) -> bool | None:
        """Whether the predicate holds, or None if evaluating it raised."""
        try:
            value = self._fn(state)
        except Exception:
            return None
        return bool(value[0]) if isinstance(value, tuple) else bool(value)

    # ---- combinators -----------------------------------------------------------

    def negate(self) -> "Predicate":
        """True where this predicate is false (the name becomes ``not (...)``)."""

        def fn(state: Any) -> tuple[bool, str | None]:
            r = self.evaluate(state)
            if r.error is not None:
                raise RuntimeError(r.detail)
            return (not r.ok, f'"{self.name}" holds' + (f": {r.detail}" if r.detail else "") if r.ok else None)

        return Predicate(f"not ({self.name})", fn, self.reads_network, self.reads)

    __invert__ = negate

    def and_(self, other: "Predicate") -> "Predicate":
        def fn(state: Any) -> tuple[bool, str | None]:
            for p in (self, other):
                r = p.evaluate(state)
                if r.error is not None:
                    raise RuntimeError(r.detail)
                if not r.ok:
                    return False, f'"{p.name}" fails' + (f": {r.detail}" if r.detail else "")
            return True, None

        return Predicate(f"({self.name}) and ({other.name})", fn, self.reads_network or other.reads_network,
                         _union(self.reads, other.reads))

    __and__ = and_

    def or_(self, other: "Predicate") -> "Predicate":
        def fn(state: Any) -> tuple[bool, str | None]:
            details = []
            for p in (self, other):
                r = p.evaluate(state)
                if r.error is not None:
                    raise RuntimeError(r.detail)
                if r.ok:
                    return True, None
                details.append(f'"{p.name}" fails' + (f": {r.detail}" if r.detail else ""))
            return False, "; ".join(details)

        return Predicate(f"({self.name}) or ({other.name})", fn, self.reads_network or other.reads_network,
                         _union(self.reads, other.reads))

    __or__ = or_

    def implies(self, other: "Predicate") -> "Predicate":
        def fn(state: Any) -> tuple[bool, str | None]:
            r = self.evaluate(state)
            if r.error is not None:
                raise RuntimeError(r.detail)
            if not r.ok:
                return True, None
            s = other.evaluate(state)
            if s.error is not None:
                raise RuntimeError(s.detail)
            return s.ok, (f'"{self.name}" holds but "{other.name}" fails' + (f": {s.detail}" if s.detail else ""))

        return Predicate(f"({self.name}) implies ({other.name})", fn, self.reads_network or other.reads_network,
                         _union(self.reads, other.reads))

    def __repr__(self) -> str:
        return f"Predicate({self.name!r})"


NODE_KINDS = frozenset({"servers", "workers", "clients"})


def _kinds(reads: Iterable[str] | None) -> frozenset[str] | None:
    if reads is None:
        return None
    kinds = frozenset([reads] if isinstance(reads, str) else reads)
    unknown = kinds - NODE_KINDS
    if unknown:
        raise ValueError(f"a predicate reads {', '.join(sorted(NODE_KINDS))}; got {', '.join(sorted(unknown))}")
    return kinds


def _union(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


_REGISTRY: dict[str, "Predicate"] = {}


def find_predicate(name: str) -> Predicate | None:
    """The most recently created predicate called ``name`` (used to re-check saved traces)."""
    return _REGISTRY.get(name)


def predicate(name: str, reads: Iterable[str] | None = None) -> Callable[[Callable[[Any], Any]], Predicate]:
    """Decorator: ``@predicate("Logs consistent")`` turns a function into a Predicate."""

    def wrap(fn: Callable[[Any], Any]) -> Predicate:
        return Predicate(name, fn, reads=reads)

    return wrap


# --------------------------------------------------------------------------
# Built-in predicates over client workers
# --------------------------------------------------------------------------


def _workers(state: Any) -> Iterable[Any]:
    return state.workers


@predicate("Clients got expected results", reads="workers")
def RESULTS_OK(state: Any) -> tuple[bool, str | None]:
    for worker in _workers(state):
        for record, expected in zip(worker.completed, worker.expected_results):
            if expected is not None and record.result != expected:
                return False, (
                    f"{worker.address} got {describe(record.result)} for {describe(record.command)}, "
                    f"expected {describe(expected)}{record.when()}"
                )
    return True, None


@predicate("Clients done", reads="workers")
def CLIENTS_DONE(state: Any) -> tuple[bool, str | None]:
    for worker in _workers(state):
        if not worker.done:
            return False, lambda: _not_done(worker)
    return True, None


def _not_done(worker: Any) -> str:
    if worker.outstanding:
        pending = worker.history[-1]
        sent_at = f", sent at t={pending.invoke}" if pending.invoke is not None else ""
        return f"{worker.address} is still waiting for the result of {describe(pending.command)} (command {worker.sent}{sent_at})"
    return f"{worker.address} has not sent all its commands yet ({worker.sent} sent)"


@predicate("No results returned", reads="workers")
def NONE_DECIDED(state: Any) -> tuple[bool, str | None]:
    for worker in _workers(state):
        if worker.results:
            record = worker.history[0]
            return False, f"{worker.address} got {describe(record.result)} for {describe(record.command)}"
    return True, None


@predicate("All clients got the same results", reads="workers")
def ALL_RESULTS_SAME(state: Any) -> tuple[bool, str | None]:
    workers = list(_workers(state))
    if not workers:
        return True, None
    first = workers[0]
    for other in workers[1:]:
        for i, (a, b) in enumerate(zip(first.results, other.results)):
            if a != b:
                return False, (
                    f"result {i + 1} differs: {first.address} got {describe(a)} but {other.address} got {describe(b)}"
                )
        if len(first.results) != len(other.results):
            return False, (
                f"{first.address} has {len(first.results)} results but {other.address} has {len(other.results)}"
            )
    return True, None


@predicate("Appends linearizable", reads="workers")
def APPENDS_LINEARIZABLE(state: Any) -> tuple[bool, str | None]:
    """DSLabs's check for append workloads: each append's result ends with its own
    value, and the results, sorted by length, each extend the previous one."""
    seen: list[tuple[str, str, Any]] = []
    for worker in _workers(state):
        for record in worker.history:
            if record.result is None or not isinstance(_unwrap(record.command), Append):
                continue
            command = _unwrap(record.command)
            result = _unwrap(record.result)
            if not isinstance(result, AppendResult):
                return False, f"{worker.address} got {describe(result)} as the result of {describe(command)}"
            if not result.value.endswith(command.value):
                return False, (
                    f"{worker.address} got {describe(result)} as the result of {describe(command)}, "
                    f"which does not end with {command.value!r}"
                )
            seen.append((result.value, command.value, worker.address))
    seen.sort(key=lambda entry: (len(entry[0]), entry[0]))
    for (shorter, _, a), (longer, _, b) in zip(seen, seen[1:]):
        if len(shorter) == len(longer) or not longer.startswith(shorter):
            return False, (
                f"{a} saw {shorter!r} and {b} saw {longer!r}: one of them must extend the other, "
                "as if the appends ran one at a time"
            )
    return True, None


def _unwrap(value: Any) -> Any:
    inner = getattr(value, "command", None)
    if inner is not None and hasattr(value, "seq"):
        return inner
    inner = getattr(value, "result", None)
    if inner is not None and hasattr(value, "seq"):
        return inner
    return value


def client_done(address: Any) -> Predicate:
    """The worker at ``address`` has finished its workload."""

    def fn(state: Any) -> tuple[bool, str | None]:
        for worker in _workers(state):
            if worker.address == address:
                return worker.done, None if worker.done else f"{address} has {len(worker.results)} results"
        return False, f"there is no client worker {address}"

    return Predicate(f"{address} done", fn, reads="workers")


def client_has_results(address: Any, count: int) -> Predicate:
    """The worker at ``address`` has at least ``count`` results."""

    def fn(state: Any) -> tuple[bool, str | None]:
        for worker in _workers(state):
            if worker.address == address:
                n = len(worker.results)
                return n >= count, None if n >= count else f"{address} has {n} of {count} results"
        return False, f"there is no client worker {address}"

    return Predicate(f"{address} has {count} results", fn, reads="workers")
