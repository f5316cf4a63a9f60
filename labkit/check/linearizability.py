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
_MINIMIZE_STEPS = 200_000


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
    """

    name: str
    init: Callable[[], Any]
    step: Callable[[Any, Any, Any], tuple[bool, Any]]
    partition: Callable[[Sequence[Operation]], list[tuple[Hashable, list[Operation]]]] | None = None
    state_key: Callable[[Any], Hashable] | None = None
    describe_operation: Callable[[Any, Any], str] = _describe_default
    describe_state: Callable[[Any], str] = _describe_state_default


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
    yields after every slice of steps and returns True (linearizable) or False."""

    def __init__(self, ops: list[Operation], model: Model) -> None:
        self.ops = ops
        self.model = model
        n = self.n = len(ops)
        self.steps = 0
        # Deepest point reached: (known ops placed, order, states, blocking op, candidates)
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
        head, tail = 2 * n, 2 * n + 1
        self.head = head
        nxt = [tail] * (2 * n + 2)
        prv = [head] * (2 * n + 2)
        last = head
        for _, kind, i in events:
            e = i if kind == 0 else n + i
            nxt[last] = e
            prv[e] = last
            last = e
        nxt[last] = tail
        prv[tail] = last
        self.nxt, self.prv = nxt, prv

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
            for pos in range(1, len(members)):
                i = members[pos]
                for j in reversed(members[:pos]):
                    if rets[j] <= rets[i]:
                        self.predbit[i] = 1 << j
                        break
        # Step results cached per (input, output) and state key.
        caches: dict[Any, dict[Hashable, Any]] = {}
        self.caches = []
        for op in ops:
            try:
                self.caches.append(caches.setdefault((op.input, op.output), {}))
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
        """The first operation whose return is still in the list, and the calls before it."""
        nxt, n = self.nxt, self.n
        e = nxt[self.head]
        candidates = []
        while e < n:
            candidates.append(e)
            e = nxt[e]
        return (e - n if e < 2 * n else None), candidates

    def _record(self, stack: list[tuple[int, Any, Hashable, bool]], state: Any, known_done: int) -> None:
        self.best_known = known_done
        order = [entry[0] for entry in stack]
        states = [entry[1] for entry in stack[1:]] + [state]
        blocking, candidates = self._frontier()
        self.best = (order, states, state, blocking, candidates)

    def run(self, slice_steps: int = _SLICE) -> Iterator[None]:
        n = self.n
        ops_known = self.known
        nxt, prv = self.nxt, self.prv
        head = self.head
        predbit = self.predbit
        caches = self.caches
        step = self._step
        bits = [1 << i for i in range(n)]
        known_mask = 0
        for i in range(n):
            if ops_known[i]:
                known_mask |= bits[i]
        has_optional = known_mask != (1 << n) - 1
        remaining = known_total = sum(ops_known)

        state = self.model.init()
        sk = state if self.model.state_key is None else self.model.state_key(state)
        lin = 0
        stack: list[tuple[int, Any, Hashable, bool]] = []
        failed_set: set[tuple[int, Hashable]] = set()
        failed_dom: dict[tuple[int, Hashable], list[int]] = {}
        self._record(stack, state, 0)
        if remaining == 0:
            return True
        miss = object()
        countdown = slice_steps
        steps = 0
        e = nxt[head]
        while True:
            countdown -= 1
            if not countdown:
                steps += slice_steps
                self.steps = steps
                yield
                countdown = slice_steps
            if e < n:
                pb = predbit[e]
                if pb and not lin & pb:
                    e = nxt[e]
                    continue
                cache = caches[e]
                r = cache.get(sk, miss)
                if r is miss:
                    r = cache[sk] = step(e, state)
                if r is None:
                    e = nxt[e]
                    continue
                ns, nsk = r
                forced = nsk == sk
                if forced and not ops_known[e]:
                    # An optional operation that changes nothing is never needed.
                    e = nxt[e]
                    continue
                nl = lin | bits[e]
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
                    stack.append((e, state, sk, forced))
                    lin = nl
                    state = ns
                    sk = nsk
                    p, q = prv[e], nxt[e]
                    nxt[p] = q
                    prv[q] = p
                    if ops_known[e]:
                        r_e = n + e
                        p, q = prv[r_e], nxt[r_e]
                        nxt[p] = q
                        prv[q] = p
                        remaining -= 1
                        done = known_total - remaining
                        if remaining == 0:
                            self.steps = steps + slice_steps - countdown
                            self.witness = [entry[0] for entry in stack]
                            self.witness_states = [entry[1] for entry in stack[1:]] + [state]
                            return True
                        if done > self.best_known:
                            self._record(stack, state, done)
                    e = nxt[head]
                    continue
                if not forced:
                    e = nxt[e]
                    continue
                # A state-preserving operation led to a known failure: so does this state.
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
                top, state, sk, forced = stack.pop()
                lin ^= bits[top]
                if ops_known[top]:
                    r_e = n + top
                    prv[nxt[r_e]] = r_e
                    nxt[prv[r_e]] = r_e
                    remaining += 1
                prv[nxt[top]] = top
                nxt[prv[top]] = top
                if not forced:
                    break
            e = nxt[top]


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
) -> LinearizabilityResult:
    """Decide whether ``ops`` is linearizable with respect to ``model``.

    Returns "unknown" (never a wrong verdict) if ``max_steps`` search steps or
    ``time_limit`` seconds run out first.
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
    key, part_ops = parts[bad]
    search = searches[bad]
    return _explain_failure(search, model, key, len(parts) > 1 or model.partition is not None, steps)


def _with_index(op: Operation, pos: int) -> Operation:
    return Operation(op.client, op.input, op.output, op.call, op.ret, pos)


# --------------------------------------------------------------------------
# Explaining a failure
# --------------------------------------------------------------------------


def _op_sentence(model: Model, op: Operation) -> str:
    what = model.describe_operation(op.input, op.output)
    if op.ret is None:
        return (
            f"{describe_client(op.client)} called {what} at t={_fmt_time(op.call)} and never heard back "
            "(it may have taken effect at any later time, or never)"
        )
    return (
        f"{describe_client(op.client)} called {what} at t={_fmt_time(op.call)} "
        f"and it returned at t={_fmt_time(op.ret)}"
    )


def _minimal_conflict(ops: list[Operation], model: Model, first: Operation | None) -> list[Operation] | None:
    """Shrink ``ops`` (not linearizable) to a set in which every operation is needed.

    Tries ops called after the blocking operation returned first, then deletes
    one operation at a time while the rest stays not linearizable. Gives up
    (None) if the part is large or the checks need too many steps.
    """
    budget = [_MINIMIZE_STEPS]

    def bad(subset: list[Operation]) -> bool | None:
        if budget[0] <= 0:
            return None
        search = _Search(subset, model)
        verdict, _, steps = _run_interleaved([search], budget[0], None)
        budget[0] -= max(steps, 1)
        if verdict == UNKNOWN:
            return None
        return verdict == NOT_LINEARIZABLE

    current = ops
    if first is not None and first.ret is not None:
        prefix = [op for op in ops if op.call <= first.ret]
        if len(prefix) < len(ops) and bad(prefix):
            current = prefix
    if len(current) > _MINIMIZE_MAX_OPS:
        return None
    changed = True
    while changed:
        changed = False
        # Latest calls first; the blocking operation last.
        order = sorted(range(len(current)), key=lambda i: (current[i] is first, -current[i].call, -i))
        for target in order:
            op = current[target]
            trial = [o for o in current if o is not op]
            verdict = bad(trial)
            if verdict is None:
                return None
            if verdict:
                current = trial
                changed = True
                break
    return current


def _explain_failure(search: _Search, model: Model, key: Hashable, partitioned: bool, steps: int) -> LinearizabilityResult:
    ops = search.ops
    assert search.best is not None
    order_ids, states, final_state, blocking, candidates = search.best
    order = [ops[i] for i in order_ids]
    blocking_op = ops[blocking] if blocking is not None else None
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
            lines.append(f"  {number}. {_op_sentence(model, op)}; then {model.describe_state(after)}.")
    else:
        lines.append(
            f"Not even the first operation can be placed: at the start {model.describe_state(final_state)}."
        )
    offending: list[Operation] = []
    if blocking_op is not None:
        offending.append(blocking_op)
        legal = search._step(blocking, final_state) is not None
        lines.append(
            f"Next, {_op_sentence(model, blocking_op)}, so it must take effect before t={_fmt_time(blocking_op.ret)}."
        )
        if not legal:
            lines.append(
                f"But after the order above {model.describe_state(final_state)}, and "
                f"{model.describe_operation(blocking_op.input, blocking_op.output)} is not possible from there."
            )
        else:
            lines.append(
                "It is possible right after the order above, but every way to continue from there "
                "leads to an operation that cannot be placed."
            )
        others = [ops[i] for i in candidates if i != blocking]
        if others:
            lines.append("Operations that could also have gone next, each tried without success:")
            for op in others:
                lines.append(f"  - {_op_sentence(model, op)}")
    conflict = _minimal_conflict(ops, model, blocking_op)
    if conflict is not None:
        lines.append(f"These {len(conflict)} operations cannot be linearized together (removing any one fixes that):")
        for op in sorted(conflict, key=lambda o: (o.call, o.index or 0)):
            lines.append(f"  - op {_label(op, 0)}: {_op_sentence(model, op)}")
    lines.append(
        "Look for the step in your code where this operation's result was produced: was it served from "
        "a state that missed an earlier completed write, or applied twice?"
    )
    return LinearizabilityResult(
        NOT_LINEARIZABLE,
        model,
        ops,
        key,
        "\n".join(lines),
        order,
        states,
        offending,
        conflict,
        steps,
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
