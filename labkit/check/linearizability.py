"""Linearizability checking for histories of operations against a sequential model.

The search is Wing & Gong's, with Lowe's memoization and Horn & Kroening's
P-compositionality, as in Porcupine. Per partition, calls and returns form one
doubly linked list sorted by time (calls before returns at equal times: the
intervals are closed). Walking the list, a call whose model step is legal is
lifted out and pushed on a stack; reaching a return means that operation can no
longer be placed, so the search backtracks.

Three reductions keep the verdict exact while cutting the search:

* **Identical operations go in real-time order.** Two operations with the same
  input and output whose intervals are ordered (one calls and returns no later
  than the other) can always swap places in a linearization, so the search only
  tries the earlier one first.
* **An operation that leaves the state unchanged is placed at once.** If it is
  legal now it stays legal if moved to the front, so there is nothing to choose.
* **Operations with an unknown outcome are optional.** They may take effect at
  any point after their call, or never. A failed search state with fewer
  optional operations used dominates one with more, so the memo stores, per
  (known operations done, state), the sets of optional operations used.

Partitions are searched interleaved, a few thousand steps at a time, so a hard
but linearizable partition cannot delay the verdict on a quickly illegal one.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence

__all__ = [
    "Operation",
    "Model",
    "LinearizabilityResult",
    "HistoryError",
    "check",
    "history_from_events",
    "describe_client",
    "LINEARIZABLE",
    "NOT_LINEARIZABLE",
    "UNKNOWN",
]

LINEARIZABLE = "linearizable"
NOT_LINEARIZABLE = "not linearizable"
UNKNOWN = "unknown"

# Steps one partition runs before the next partition gets its turn.
_SLICE = 4000
# Effort allowed for shrinking a failure to a minimal conflicting subset.
_MINIMIZE_MAX_OPS = 120
_MINIMIZE_STEPS = 50_000


class HistoryError(ValueError):
    """A history cannot be checked because it is malformed (the message says why)."""


@dataclass(frozen=True)
class Operation:
    """One operation of a history: who ran what, what it returned, and when.

    ``ret`` is None when the outcome is unknown (for example a request that
    timed out): such an operation stays open until the end of the history and
    may take effect at any point after its call, or never. ``index`` names the
    operation in explanations (a line number, a position); when it is None the
    checker uses the position in the list given to :func:`check`.
    """

    client: Hashable
    input: Any
    output: Any
    call: float
    ret: float | None
    index: int | None = None


def _describe_default(input: Any, output: Any) -> str:
    if output is None:
        return f"{input!r} (outcome unknown)"
    return f"{input!r} -> {output!r}"


def _describe_state_default(state: Any) -> str:
    return f"the state was {state!r}"


@dataclass
class Model:
    """A sequential specification.

    ``step(state, input, output)`` returns ``(legal, new_state)`` and must not
    change ``state``. An output of None means "any output": the operation's
    outcome is unknown or was not recorded, so ``step`` must then accept the
    input and return the state after it, whatever it returned.
    ``partition(ops)`` (optional) splits a history into independent parts, for
    example one per key of a key-value store, as a list of ``(key, ops)``.
    ``state_key(state)`` (optional) gives a hashable value that is equal for
    equivalent states (default: the state itself, which must then be hashable).
    ``lookahead(ops)`` (optional) is called once per partition and returns a
    function ``viable(state, done, i)``: False only if ``ops[i]`` can never
    become legal from ``state`` using the operations not yet placed (``done``
    is a bitset: bit j is set once ``ops[j]`` is placed). The checker uses it to
    abandon dead ends early, so it must never answer False wrongly.
    """

    name: str
    init: Callable[[], Any]
    step: Callable[[Any, Any, Any], tuple[bool, Any]]
    partition: Callable[[Sequence[Operation]], list[tuple[Hashable, list[Operation]]]] | None = None
    state_key: Callable[[Any], Hashable] | None = None
    describe_operation: Callable[[Any, Any], str] = _describe_default
    describe_state: Callable[[Any], str] = _describe_state_default
    lookahead: Callable[[list[Operation]], Callable[[Any, int, int], bool]] | None = None


def describe_client(client: Hashable) -> str:
    """How explanations name a client: ``process 3`` for an int, else its string."""
    if isinstance(client, int) and not isinstance(client, bool):
        return f"process {client}"
    return str(client)


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "the end"
    if isinstance(t, float) and t.is_integer():
        return str(int(t))
    return str(t)


@dataclass
class LinearizabilityResult:
    """The verdict of :func:`check` and what a student needs to act on it.

    For a failure, ``partition`` is the key at fault, ``ops`` that partition's
    operations, ``linearization`` the longest partial linearization found (with
    ``states[i]`` the state after ``linearization[i]``), ``offending`` the
    operation that cannot be placed after it and ``minimal_conflict`` a small
    set of operations that cannot be linearized together (None if not found
    cheaply). For a success, ``linearization`` is a witness order of all the
    operations that took effect. ``lanes`` lists, per client, its operations.
    """

    verdict: str
    model: Model
    ops: list[Operation]
    partition: Hashable | None = None
    explanation: str = ""
    linearization: list[Operation] = field(default_factory=list)
    states: list[Any] = field(default_factory=list)
    offending: list[Operation] = field(default_factory=list)
    minimal_conflict: list[Operation] | None = None
    steps: int = 0

    @property
    def ok(self) -> bool:
        """True iff the history is linearizable."""
        return self.verdict == LINEARIZABLE

    @property
    def lanes(self) -> list[tuple[Hashable, list[Operation]]]:
        """``(client, operations)`` per client of ``ops``, in order of first call."""
        by_client: dict[Hashable, list[Operation]] = {}
        for op in sorted(self.ops, key=lambda o: o.call):
            by_client.setdefault(op.client, []).append(op)
        return list(by_client.items())


# --------------------------------------------------------------------------
# The search over one partition
# --------------------------------------------------------------------------


class _Search:
    """A resumable search over one partition. ``run()`` is a generator that
    yields after every slice of steps and returns True (linearizable) or False.

    Operations with a known outcome live in a doubly linked list of calls and
    returns sorted by time. Operations with an unknown outcome (optional) have
    no return and live in a second list of calls; they are tried only after
    every known operation that could go next, so the search first looks for
    orders that use few of them.
    """

    def __init__(self, ops: list[Operation], model: Model) -> None:
        self.ops = ops
        self.model = model
        n = self.n = len(ops)
        self.steps = 0
        # Deepest point reached: (order, states after each, final state, blocking op, candidates)
        self.best_known = -1
        self.best: tuple[list[int], list[Any], Any, int | None, list[int]] | None = None
        self.witness: list[int] = []
        self.witness_states: list[Any] = []

        known = [op.ret is not None for op in ops]
        self.known = known
        events: list[tuple[float, int, int]] = []
        for i, op in enumerate(ops):
            events.append((op.call, 0, i))
            if known[i]:
                events.append((op.ret, 1, i))  # type: ignore[arg-type]
        events.sort()
        # Entries: call of op i is i, return of op i is n + i; then the sentinels.
        head, tail, ohead, otail = 2 * n, 2 * n + 1, 2 * n + 2, 2 * n + 3
        self.head, self.ohead, self.otail = head, ohead, otail
        size = 2 * n + 4
        nxt = [tail] * size
        prv = [head] * size
        pos = [len(events)] * size  # rank in time order; the tails come last
        last, olast = head, ohead
        for rank, (_, kind, i) in enumerate(events):
            e = i if kind == 0 else n + i
            pos[e] = rank
            if kind == 0 and not known[i]:
                nxt[olast] = e
                prv[e] = olast
                olast = e
            else:
                nxt[last] = e
                prv[e] = last
                last = e
        nxt[last] = tail
        prv[tail] = last
        nxt[olast] = otail
        prv[otail] = olast
        self.nxt, self.prv, self.pos = nxt, prv, pos

        # Identical operations (same input and output) are placed in real-time order.
        self.predbit = [0] * n
        groups: dict[Any, list[int]] = {}
        for i, op in enumerate(ops):
            try:
                groups.setdefault((op.input, op.output), []).append(i)
            except TypeError:  # unhashable input or output: no grouping
                pass
        inf = float("inf")
        rets = [inf if op.ret is None else op.ret for op in ops]
        for members in groups.values():
            members.sort(key=lambda i: (ops[i].call, rets[i], i))
            for at in range(1, len(members)):
                i = members[at]
                for j in reversed(members[:at]):
                    if rets[j] <= rets[i]:
                        self.predbit[i] = 1 << j
                        break
        # Step results cached per (input, output) and state key.
        shared: dict[Any, dict[Hashable, Any]] = {}
        self.caches: list[dict[Hashable, Any]] = []
        for op in ops:
            try:
                self.caches.append(shared.setdefault((op.input, op.output), {}))
            except TypeError:
                self.caches.append({})

    def _step(self, i: int, state: Any) -> tuple[Any, Hashable] | None:
        op = self.ops[i]
        legal, new_state = self.model.step(state, op.input, op.output)
        if not legal:
            return None
        key = self.model.state_key
        return new_state, (new_state if key is None else key(new_state))

    def _frontier(self) -> tuple[int | None, list[int]]:
        """The first operation whose return is still in the list, and the calls that could go next."""
        nxt, n, pos = self.nxt, self.n, self.pos
        e = nxt[self.head]
        candidates = []
        while e < n:
            candidates.append(e)
            e = nxt[e]
        o = nxt[self.ohead]
        while o < n and pos[o] < pos[e]:
            candidates.append(o)
            o = nxt[o]
        candidates.sort(key=lambda i: pos[i])
        return (e - n if e < 2 * n else None), candidates

    def _record(self, stack: list[tuple[int, Any, Hashable, bool, int]], state: Any, known_done: int) -> None:
        self.best_known = known_done
        order = [entry[0] for entry in stack]
        states = [entry[1] for entry in stack[1:]] + [state]
        blocking, candidates = self._frontier()
        self.best = (order, states, state, blocking, candidates)

    def run(self, slice_steps: int = _SLICE) -> Iterator[None]:
        n = self.n
        known = self.known
        nxt, prv, pos = self.nxt, self.prv, self.pos
        head, ohead, otail = self.head, self.ohead, self.otail
        predbit = self.predbit
        caches = self.caches
        step = self._step
        viable = None if self.model.lookahead is None else self.model.lookahead(self.ops)
        bits = [1 << i for i in range(n)]
        known_mask = 0
        for i in range(n):
            if known[i]:
                known_mask |= bits[i]
        has_optional = known_mask != (1 << n) - 1
        remaining = known_total = sum(known)

        state = self.model.init()
        sk = state if self.model.state_key is None else self.model.state_key(state)
        lin = 0
        # Stack entries: (op, state before, its key, placed without choice, optional limit)
        stack: list[tuple[int, Any, Hashable, bool, int]] = []
        failed_set: set[tuple[int, Hashable]] = set()
        failed_dom: dict[tuple[int, Hashable], list[int]] = {}
        self._record(stack, state, 0)
        if remaining == 0:
            return True
        miss = object()
        countdown = slice_steps
        steps = 0
        e = nxt[head]  # cursor in the list of known operations
        o = -1  # cursor in the list of optional operations (-1: not walking it)
        limit = 0  # optional operations called before this rank may go next
        while True:
            countdown -= 1
            if not countdown:
                steps += slice_steps
                self.steps = steps
                yield
                countdown = slice_steps
            if o < 0:
                if e >= n:
                    # Reached a return: every known operation that could go next was tried.
                    if not has_optional:
                        cand = -1
                    else:
                        limit = pos[e]
                        o = nxt[ohead]
                        continue
                else:
                    cand = e
            elif o != otail and pos[o] < limit:
                cand = o
            else:
                cand = -1
            if cand >= 0:
                pb = predbit[cand]
                if pb and not lin & pb:
                    if o < 0:
                        e = nxt[e]
                    else:
                        o = nxt[o]
                    continue
                cache = caches[cand]
                r = cache.get(sk, miss)
                if r is miss:
                    r = cache[sk] = step(cand, state)
                if r is None:
                    if o < 0:
                        e = nxt[e]
                    else:
                        o = nxt[o]
                    continue
                ns, nsk = r
                forced = nsk == sk
                if forced and o >= 0:
                    # An optional operation that changes nothing is never needed.
                    o = nxt[o]
                    continue
                nl = lin | bits[cand]
                if has_optional:
                    kb = nl & known_mask
                    seen = failed_dom.get((kb, nsk))
                    pruned = False
                    if seen is not None:
                        ob = nl ^ kb
                        for used in seen:
                            if not used & ~ob:
                                pruned = True
                                break
                else:
                    pruned = (nl, nsk) in failed_set
                if not pruned:
                    stack.append((cand, state, sk, forced, limit))
                    lin = nl
                    state = ns
                    sk = nsk
                    p, q = prv[cand], nxt[cand]
                    nxt[p] = q
                    prv[q] = p
                    if o < 0:
                        r_e = n + cand
                        p, q = prv[r_e], nxt[r_e]
                        nxt[p] = q
                        prv[q] = p
                        remaining -= 1
                        if remaining == 0:
                            self.steps = steps + slice_steps - countdown
                            self.witness = [entry[0] for entry in stack]
                            self.witness_states = [entry[1] for entry in stack[1:]] + [state]
                            return True
                        if known_total - remaining > self.best_known:
                            self._record(stack, state, known_total - remaining)
                    o = -1
                    e = nxt[head]
                    if viable is None or forced:
                        continue
                    # Every operation that could go next, and the one that must go
                    # soonest, must still be able to become legal.
                    b = e
                    while b < n and viable(state, lin, b):
                        b = nxt[b]
                    if b >= n and viable(state, lin, b - n):
                        continue
                    # One of them never can: a dead end.
                elif not forced:
                    if o < 0:
                        e = nxt[e]
                    else:
                        o = nxt[o]
                    continue
                # Otherwise a state-preserving operation led to a known failure: so does this state.
            # Backtrack: nothing more can be placed from the current state.
            while True:
                if not stack:
                    self.steps = steps + slice_steps - countdown
                    return False
                if has_optional:
                    kb = lin & known_mask
                    failed_dom.setdefault((kb, sk), []).append(lin ^ kb)
                else:
                    failed_set.add((lin, sk))
                top, state, sk, forced, limit = stack.pop()
                lin ^= bits[top]
                if known[top]:
                    r_e = n + top
                    prv[nxt[r_e]] = r_e
                    nxt[prv[r_e]] = r_e
                    remaining += 1
                prv[nxt[top]] = top
                nxt[prv[top]] = top
                if not forced:
                    break
            if known[top]:
                o = -1
                e = nxt[top]
            else:
                o = nxt[top]


# --------------------------------------------------------------------------
# check()
# --------------------------------------------------------------------------


def _validate(ops: Sequence[Operation]) -> None:
    for pos, op in enumerate(ops):
        if not isinstance(op, Operation):
            raise HistoryError(f"item {pos} of the history is {op!r}, not an Operation")
        if op.ret is not None and op.ret < op.call:
            raise HistoryError(
                f"operation {_label(op, pos)} of {describe_client(op.client)} returns at t={_fmt_time(op.ret)}, "
                f"before its call at t={_fmt_time(op.call)}"
            )


def _label(op: Operation, pos: int) -> str:
    return f"#{op.index if op.index is not None else pos}"


def _partitions(ops: list[Operation], model: Model) -> list[tuple[Hashable, list[Operation]]]:
    if model.partition is None:
        return [(None, ops)]
    return [(key, list(part)) for key, part in model.partition(ops) if part]


def _run_interleaved(
    searches: list[_Search], max_steps: int | None, time_limit: float | None
) -> tuple[str, int | None, int]:
    """Round-robin the searches. Returns (verdict, index of the failing search, steps)."""
    # The memo holds many small tuples; the cyclic garbage collector would scan
    # them again and again for nothing (they hold no cycles), so pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _interleave(searches, max_steps, time_limit)
    finally:
        if collecting:
            gc.enable()


def _interleave(
    searches: list[_Search], max_steps: int | None, time_limit: float | None
) -> tuple[str, int | None, int]:
    deadline = None if time_limit is None else time.monotonic() + time_limit
    slice_steps = _SLICE if max_steps is None else max(1, min(_SLICE, max_steps))
    active: list[tuple[int, Iterator[None]]] = [(i, s.run(slice_steps)) for i, s in enumerate(searches)]
    while active:
        unfinished: list[tuple[int, Iterator[None]]] = []
        for pos, (i, gen) in enumerate(active):
            try:
                next(gen)
                unfinished.append((i, gen))
            except StopIteration as stop:
                if not stop.value:
                    return NOT_LINEARIZABLE, i, sum(s.steps for s in searches)
            out_of_steps = max_steps is not None and sum(s.steps for s in searches) >= max_steps
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if (out_of_steps or out_of_time) and (unfinished or pos + 1 < len(active)):
                return UNKNOWN, None, sum(s.steps for s in searches)
        active = unfinished
    return LINEARIZABLE, None, sum(s.steps for s in searches)


def check(
    ops: Sequence[Operation],
    model: Model,
    *,
    max_steps: int | None = None,
    time_limit: float | None = None,
    explain: bool = True,
) -> LinearizabilityResult:
    """Decide whether ``ops`` is linearizable with respect to ``model``.

    Returns "unknown" (never a wrong verdict) if ``max_steps`` search steps or
    ``time_limit`` seconds run out first. With ``explain=False`` a failure
    gets no explanation text and no minimal conflict (faster).
    """
    ops = list(ops)
    _validate(ops)
    if any(op.index is None for op in ops):
        ops = [op if op.index is not None else _with_index(op, pos) for pos, op in enumerate(ops)]
    parts = _partitions(ops, model)
    searches = [_Search(part, model) for _, part in parts]
    verdict, bad, steps = _run_interleaved(searches, max_steps, time_limit)
    if verdict == LINEARIZABLE:
        order: list[Operation] = []
        states: list[Any] = []
        for search in searches:
            order.extend(search.ops[i] for i in search.witness)
            states.extend(search.witness_states)
        explanation = (
            f"Linearizable: the {len(ops)} operations fit the {model.name} model in an order that "
            "respects real time."
        )
        return LinearizabilityResult(verdict, model, ops, None, explanation, order, states, steps=steps)
    if verdict == UNKNOWN:
        limit = []
        if max_steps is not None:
            limit.append(f"{max_steps} steps")
        if time_limit is not None:
            limit.append(f"{time_limit} s")
        explanation = (
            f"Unknown: the search ran out of its budget ({' or '.join(limit)}) before reaching a verdict. "
            "This says nothing about the history; give the checker more steps or time, or check a shorter history."
        )
        return LinearizabilityResult(verdict, model, ops, None, explanation, steps=steps)
    assert bad is not None
    key = parts[bad][0]
    search = searches[bad]
    return _explain_failure(search, model, key, model.partition is not None, steps, explain)


def _with_index(op: Operation, pos: int) -> Operation:
    return Operation(op.client, op.input, op.output, op.call, op.ret, pos)


# --------------------------------------------------------------------------
# Explaining a failure
# --------------------------------------------------------------------------


def _op_sentence(model: Model, op: Operation) -> str:
    what = model.describe_operation(op.input, op.output)
    who = describe_client(op.client)
    if op.ret is None:
        return (
            f"{who}: {what} (called at t={_fmt_time(op.call)}, never returned: it may have taken effect "
            "at any later time, or never)"
        )
    return f"{who}: {what} (called at t={_fmt_time(op.call)}, returned at t={_fmt_time(op.ret)})"


def _relaxed(op: Operation) -> Operation:
    return Operation(op.client, op.input, None, op.call, op.ret, op.index)


def _minimal_conflict(ops: list[Operation], model: Model, horizon: float | None) -> list[Operation] | None:
    """A smallest set of results that cannot all be right, given every operation's effect.

    Starting from the operations called by ``horizon`` (if that prefix is
    already not linearizable) it forgets one result at a time (output None:
    "any output") and keeps it forgotten while the history stays not
    linearizable. Forgetting results only adds freedom, so one pass leaves a
    set in which every result is needed. Returns those operations, or None if
    the part is large or the checks need too many steps.
    """
    budget = [_MINIMIZE_STEPS]

    def bad(history: list[Operation]) -> bool | None:
        if budget[0] <= 0:
            return None
        search = _Search(history, model)
        verdict, _, steps = _run_interleaved([search], budget[0], None)
        budget[0] -= max(steps, 1)
        return None if verdict == UNKNOWN else verdict == NOT_LINEARIZABLE

    current = list(ops)
    if horizon is not None:
        prefix = [op for op in ops if op.call <= horizon]
        if len(prefix) < len(ops) and bad(prefix):
            current = prefix
    if len(current) > _MINIMIZE_MAX_OPS:
        return None
    kept = [True] * len(current)
    for i in reversed(range(len(current))):
        if current[i].output is None:
            kept[i] = False
            continue
        kept[i] = False
        trial = [op if keep else _relaxed(op) for op, keep in zip(current, kept)]
        verdict = bad(trial)
        if verdict is None:
            return None
        kept[i] = not verdict
    return [op for op, keep in zip(current, kept) if keep]


def _explain_failure(
    search: _Search, model: Model, key: Hashable, partitioned: bool, steps: int, explain: bool
) -> LinearizabilityResult:
    ops = search.ops
    assert search.best is not None
    order_ids, states, final_state, blocking, candidates = search.best
    order = [ops[i] for i in order_ids]
    # The operation to blame: the first (by return) that could go next but is not
    # possible after the order found; else the one that must go soonest.
    frontier = sorted(set(candidates) | ({blocking} if blocking is not None else set()),
                      key=lambda i: (ops[i].ret is None, ops[i].ret or 0, i))
    illegal = [i for i in frontier if ops[i].ret is not None and search._step(i, final_state) is None]
    culprit = illegal[0] if illegal else blocking
    offending = [ops[culprit]] if culprit is not None else []
    if not explain:
        return LinearizabilityResult(NOT_LINEARIZABLE, model, ops, key, "", order, states, offending, None, steps)
    lines: list[str] = []
    where = f" on key {key!r}" if partitioned else ""
    lines.append(
        f"Not linearizable{where}: no order of these {len(ops)} operations respects both real time "
        f"and the {model.name} model."
    )
    known_total = sum(1 for op in ops if op.ret is not None)
    if order:
        lines.append(
            f"The longest order the checker could build places {search.best_known} of the {known_total} "
            "operations that completed:"
        )
        for number, (op, after) in enumerate(zip(order, states), start=1):
            lines.append(f"  {number}. {_op_sentence(model, op)}; after it {model.describe_state(after)}.")
    else:
        lines.append(f"Not even the first operation can be placed: at the start {model.describe_state(final_state)}.")
    if culprit is not None:
        op = ops[culprit]
        lines.append(f"Next, {_op_sentence(model, op)}.")
        lines.append(f"It must take effect before it returned at t={_fmt_time(op.ret)}.")
        if illegal:
            lines.append(
                f"But after the order above {model.describe_state(final_state)}, and "
                f"{model.describe_operation(op.input, op.output)} is not possible from there."
            )
        else:
            lines.append(
                "It is possible right after the order above, but every way to continue from there "
                "reaches an operation that cannot be placed."
            )
        others = [ops[i] for i in frontier if i != culprit]
        if others:
            lines.append("The other operations that could have gone next were each tried, without success:")
            for other in others:
                lines.append(f"  - {_op_sentence(model, other)}")
    horizon = max((ops[i].ret for i in frontier if ops[i].ret is not None), default=None)
    conflict = _minimal_conflict(ops, model, horizon)
    if conflict is not None:
        if len(conflict) == 1:
            lines.append(
                "This result alone cannot be right, given what every operation did "
                "(forgetting it makes the history linearizable):"
            )
        else:
            lines.append(
                f"These {len(conflict)} results cannot all be right, given what every operation did "
                "(forgetting any one of them makes the history linearizable):"
            )
        for op in sorted(conflict, key=lambda o: (o.call, o.index or 0)):
            lines.append(f"  - op {_label(op, 0)}: {_op_sentence(model, op)}")
    lines.append(
        "Look at where your code produced these results: was one served from a replica that had "
        "missed an earlier completed write, or was a command applied twice or out of order?"
    )
    return LinearizabilityResult(
        NOT_LINEARIZABLE, model, ops, key, "\n".join(lines), order, states, offending, conflict, steps
    )


# --------------------------------------------------------------------------
# Building a history from call and return events
# --------------------------------------------------------------------------


def history_from_events(events: Sequence[tuple[Hashable, str, Any, float]]) -> list[Operation]:
    """Pair ``(client, "call" | "return", input or output, time)`` events into operations.

    Calls still open at the end get ``ret=None`` (outcome unknown). Raises
    :class:`HistoryError` for a return without a call, a second call by a client
    whose previous call is still open, or a return before its call.
    """
    open_calls: dict[Hashable, tuple[Any, float, int]] = {}
    done: list[tuple[int, Operation]] = []
    for number, event in enumerate(events):
        try:
            client, kind, value, t = event
        except (TypeError, ValueError):
            raise HistoryError(
                f"event {number} is {event!r}; expected (client, 'call' or 'return', value, time)"
            ) from None
        who = describe_client(client)
        if kind == "call":
            if client in open_calls:
                previous = open_calls[client]
                raise HistoryError(
                    f"event {number}: {who} calls {value!r} at t={_fmt_time(t)} while its call of "
                    f"{previous[0]!r} from t={_fmt_time(previous[1])} is still open; a client waits for "
                    "each reply before its next call"
                )
            open_calls[client] = (value, t, number)
        elif kind == "return":
            if client not in open_calls:
                raise HistoryError(
                    f"event {number}: {who} gets the response {value!r} at t={_fmt_time(t)} "
                    "but has no open call"
                )
            inp, call_t, call_number = open_calls.pop(client)
            if t < call_t:
                raise HistoryError(
                    f"event {number}: {who} gets the response {value!r} at t={_fmt_time(t)}, "
                    f"before its call of {inp!r} at t={_fmt_time(call_t)}"
                )
            done.append((call_number, Operation(client, inp, value, call_t, t, call_number)))
        else:
            raise HistoryError(f"event {number} has kind {kind!r}; expected 'call' or 'return'")
    for client, (inp, call_t, call_number) in open_calls.items():
        done.append((call_number, Operation(client, inp, None, call_t, None, call_number)))
    done.sort(key=lambda pair: pair[0])
    return [op for _, op in done]
