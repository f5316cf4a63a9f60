"""Linearizability checking for histories of operations against a sequential model.

The search is Wing & Gong's, with Lowe's memoization and Horn & Kroening's
P-compositionality, as in Porcupine. A history is split into independent
partitions (one per key of a key-value store) and each is searched for an
order of its operations that respects real time and the model: an operation
may go next only if it was called no later than every unplaced operation
returned (intervals are closed). A legal next operation is placed and pushed
on a stack; when nothing can go next the search backtracks. The memo skips a
(set of placed operations, state) pair seen before: its future is the same.
Step results are cached per state for operations that share the very same
input and output objects (the readers in ``histories`` share equal values).

Every shortcut below keeps the verdict exact. Each comes with its proof,
because a wrong "not linearizable" costs a correct student points.

* **A partition without overlaps is replayed.** If each operation returned
  before the next was called, the only order that respects real time is the
  order of the calls. With several partitions these are replayed before any
  search starts; one that fails is the verdict, whatever the others hold.
* **Identical operations go in real-time order.** Let j and i have the same
  input and output (the very same objects), with ``call_j <= call_i`` and ``ret_j <= ret_i``. In any
  valid order with i before j, swapping the two gives a valid order: the
  model sees the same sequence of steps, and every real-time constraint
  still holds (j moves earlier, but nothing that must precede j was placed
  after i; i moves later, but no later than where j was, and j returned no
  later than i did). Each swap raises the sum of (rank * position), so
  swapping ends, in an order where j comes before i. The search therefore
  places i only after j. Both must have known outcomes, or both unknown
  (then "i taken effect and j not" becomes "j taken effect" in i's place).
* **A read placed at once.** If the model says an operation is read-only
  (``Model.read_only``: it leaves every state in which it is legal
  unchanged) and it is legal now and may go next, it is placed without
  trying anything else first. In any valid completion it can be moved to
  the front: it changes no state, so every other operation sees the same
  states, and nothing unplaced must precede it (it may go next). So if
  placing it fails, the state before fails too. (This is not true of an
  operation that only happens to leave *this* state unchanged, such as a
  write of the value already held: moved earlier, it would not reset the
  state later. Such operations get no shortcut.)
* **Operations with an unknown outcome are optional.** They may take effect
  at any point after their call, or never, and they never constrain when
  others go. A search state with fewer of them placed dominates one with
  more and the same state and completed operations: every continuation of
  the second is a continuation of the first. So the memo skips a state
  dominated by one already seen, and an optional operation that would leave
  the current state unchanged is not placed (the result is dominated).
  They are tried only after every completed operation that could go next.
* **Lookahead** (``Model.lookahead``, the key-value model has one): after a
  step, if the model shows that no valid order can go on (some operation can
  never become legal again), the step is a dead end.
* **Overwritten states** (``Model.overwritten``, the key-value model has
  one): if the model shows that the ways to go on from (placed set, state)
  are the same whatever the state, the memo keys it as "overwritten", so an
  order of appends that a later Put wipes out is explored once, not once per
  order. A memo entry stands for configurations whose ways to go on are
  those of the one that made it, under either kind of key, so a hit is
  always right.
The two hooks cost a call per step, so a search starts asking them only
once it has backtracked a little; pruning less never changes a verdict.

Partitions are searched interleaved, a few thousand steps at a time, so a hard
but linearizable partition cannot delay the verdict on a quickly illegal one.

The search loop exists twice: in Python (``_Search._run_python``) and compiled
(``_searchcore.c``, built at install when a C compiler is there). The compiled
one runs the same loop, trial for trial, with the model still in Python (its
step is called once per operation class and state, as the Python loop's step
cache does); it only keeps the memo as bitsets and numbered state keys. Both
give the same verdict, witness, explanation and step count; the tests run
every lincheck test on both.

A failure is explained by the longest order found, the operation that cannot
follow it, and a minimal set of results that cannot all be right. Forgetting
a result (output None) keeps the operation's effect and only adds freedom,
so a shrinking trial that fails keeps failing with more results kept. Trials
may run on the operations called by a time t, those still running at t made
open-ended with their results forgotten: if the whole history had a valid
order, the operations placed by t in it would be a valid order of that
prefix, so a conflict there is a conflict in the history. A read-only
operation whose result is forgotten is legal anywhere and changes nothing,
so trials leave it out.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from operator import lt
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
_MINIMIZE_STEPS = 50_000
# Operations of the longest partial order listed in an explanation (the last ones).
_SHOW_LAST = 5

# Operations a search takes back before it starts asking the model's pruning
# hooks: each costs a call per step, and only a search that backtracks gains.
_LOOKAHEAD_AFTER = 16
_OVERWRITTEN_AFTER = 64
# Step-cache markers: an illegal step, and a state not tried yet.
_ILLEGAL = object()
_MISS = object()
# The memo's key for every state that Model.overwritten says no remaining operation can see.
_OVERWRITTEN = object()

try:  # the compiled search loop, built at install when a C compiler is there
    from labkit.check import _searchcore as _core
except ImportError:  # pragma: no cover - depends on the build
    _core = None


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
    ``read_only(input, output)`` (optional) is True only if that operation
    leaves every state in which it is legal unchanged (a read, a failed
    compare-and-set); the checker then places it as soon as it is legal.
    ``lookahead(ops)`` (optional) is called once per partition and returns a
    function ``viable(state, done, i)``: False only if no valid order can go on
    from ``state`` with the operations in ``done`` placed (a bitset: bit j is
    set once ``ops[j]`` is placed), for example because some operation can
    never become legal again. ``ops`` lists the completed operations by call,
    then the others; after each step the checker calls it with ``i`` the first
    completed operation that cannot go next yet (every unplaced completed one
    before it may). It must never answer False wrongly.
    ``overwritten(ops)`` (optional) is called once per partition and returns a
    function ``dead(state, done)``: True only if the valid ways to go on with
    the operations in ``done`` placed are the same whatever this state is,
    because every operation that could still observe it must wait until it
    has been overwritten (a value that no remaining Get can read before the
    next Put). The memo then counts all such states as one.
    """

    name: str
    init: Callable[[], Any]
    step: Callable[[Any, Any, Any], tuple[bool, Any]]
    partition: Callable[[Sequence[Operation]], list[tuple[Hashable, list[Operation]]]] | None = None
    state_key: Callable[[Any], Hashable] | None = None
    describe_operation: Callable[[Any, Any], str] = _describe_default
    describe_state: Callable[[Any], str] = _describe_state_default
    lookahead: Callable[[list[Operation]], Callable[[Any, int, int], bool]] | None = None
    read_only: Callable[[Any, Any], bool] | None = None
    overwritten: Callable[[list[Operation]], Callable[[Any, int], bool]] | None = None


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


def _by_call(op: Operation) -> float:
    return op.call


def _order_python(ops: Sequence[Operation]) -> tuple[list[Operation], list[float], list[float], list[float]]:
    """The operations in search order (completed ones by call, then the others by
    call) with the completed ones' calls and returns and the others' calls."""
    krets: list[float] = [op.ret for op in ops]  # type: ignore[misc]
    if None in krets:
        known = [op for op in ops if op.ret is not None]
        optional = [op for op in ops if op.ret is None]
        krets = [op.ret for op in known]  # type: ignore[misc]
    else:
        known = list(ops)
        optional = []
    kcalls = [op.call for op in known]
    if any(map(lt, krets, kcalls)):
        raise HistoryError("an operation returns before its call")
    if kcalls != sorted(kcalls):
        known.sort(key=_by_call)
        kcalls = [op.call for op in known]
        krets = [op.ret for op in known]  # type: ignore[misc]
    ocalls = [op.call for op in optional]
    if ocalls != sorted(ocalls):
        optional.sort(key=_by_call)
        ocalls = [op.call for op in optional]
    return (known + optional if optional else known), kcalls, krets, ocalls


class _Search:
    """A resumable search over one partition. ``run()`` is a generator that
    yields after every slice of steps (operations placed) and returns True
    (linearizable) or False.

    Operations are renumbered: those with a known outcome first, by call time
    (0 .. nk-1), then the optional ones by call time (nk .. n-1); ``ops`` is in
    that order and bit j of a placed set stands for ``ops[j]``. The completed
    operations that may go next are the unplaced ones among the first
    ``bisect(kcalls, ret)`` by call, where ``ret`` is the earliest return of an
    unplaced completed operation (and likewise for the optional ones). What
    the search needs per operation (its step cache, its identical predecessor,
    that bound) is worked out the first time the search reaches it: an illegal
    history is often refuted long before its end.

    The search tracks state keys only (``Model.state_key``, by default the
    state itself); ``states`` maps each key to a state it stands for.
    """

    def __init__(self, ops: Sequence[Operation], model: Model, forgotten: set[int] | None = None) -> None:
        ordered = _core.order(ops) if _core is not None else None
        self.ops, self.kcalls, self.krets, self.ocalls = ordered if ordered is not None else _order_python(ops)
        # Explanations search with some results forgotten (operations named by id):
        # their output counts as None, "any output".
        self.forgotten = forgotten
        self.outputs = (
            [None if id(op) in forgotten else op.output for op in self.ops] if forgotten
            else [op.output for op in self.ops]
        )
        self.model = model
        self.n = len(self.ops)
        self.nk = len(self.kcalls)
        self.steps = 0
        # Operations whose result was found impossible somewhere: a failure's suspects.
        self.blamed: set[int] = set()
        self.states: dict[Hashable, Any] = {}
        # The deepest point reached (most completed operations placed), for
        # explanations: the stack there (op, key before, ...), the key after,
        # and where the window of candidates stood.
        self.best_stack: list[tuple[int, Hashable, int, int]] = []
        self.best_key: Hashable = None
        self.best_window = (0, 0)
        self.best_depth = 0
        self.rorder: list[int] = []
        self.witness: list[int] = []
        self.witness_keys: list[Hashable] = []

    def run(self, slice_steps: int = _SLICE) -> Iterator[None]:
        model = self.model
        state = model.init()
        if model.state_key is None:
            sk = state
        else:
            sk = model.state_key(state)
            self.states[sk] = state
        self.best_key = sk
        if self.nk == 0:
            return True
        if self.n == self.nk and all(map(lt, self.krets, self.kcalls[1:])):
            # Each operation returned before the next was called: the only
            # order that respects real time is this one.
            return self._replay(state, sk)
        core = self._compiled(state, sk)
        if core is None:
            return (yield from self._run_python(sk, slice_steps))
        return (yield from self._run_compiled(core, slice_steps))

    def _compiled(self, state: Any, sk: Hashable) -> Any:
        """The compiled search loop set up for this search, or None (not built, or
        times it cannot compare exactly: then the Python loop runs)."""
        if _core is None:
            return None
        model = self.model
        try:
            return _core.Search(
                self.ops, self.outputs, self.nk, self.kcalls, self.krets, self.ocalls, model.step,
                model.state_key, model.read_only, self.states, sk, state, model.lookahead, model.overwritten,
                self._as_seen, _LOOKAHEAD_AFTER, _OVERWRITTEN_AFTER,
            )
        except OverflowError:
            return None

    def _run_compiled(self, core: Any, slice_steps: int) -> Iterator[None]:
        """The compiled loop: the same search, step for step, as _run_python."""
        while True:
            found = core.resume(slice_steps)
            if found is not None:
                break
            self.steps = core.steps
            yield
        (self.steps, blamed, self.best_depth, self.best_stack, self.best_key, self.best_window,
         self.rorder, self.witness, self.witness_keys) = core.outcome()
        self.blamed.update(blamed)
        return found

    def _run_python(self, sk: Hashable, slice_steps: int) -> Iterator[None]:
        """The search loop, from the initial state key ``sk``."""
        ops, outputs = self.ops, self.outputs
        n, nk = self.n, self.nk
        model = self.model
        step = model.step
        keyf = model.state_key
        keyless = keyf is None
        read_only = model.read_only
        kcalls, krets, ocalls = self.kcalls, self.krets, self.ocalls
        states = self.states
        # The model's pruning hooks start once the search has backtracked a little.
        viable = dead = None
        hooks = model.lookahead is not None or model.overwritten is not None
        self.rorder = rorder = sorted(range(nk), key=krets.__getitem__)
        rorder.append(n)  # a sentinel: done[n] stays False
        khi = [-1] * nk  # per completed op j: how many completed ops were called by its return
        ohi = [-1] * nk  # the same for optional ops, offset by nk
        has_optional = n > nk
        # Per operation, set when the search first reaches it: the step cache
        # (state key -> key after, or _ILLEGAL) it shares with the operations
        # that have the very same input and output objects, whether it is
        # read-only, and the identical operation that must go before it
        # (n + 1, always done, when there is none).
        caches: list[dict[Hashable, Hashable] | None] = [None] * n
        ro = [False] * n
        pred = [n + 1] * n
        classes: dict[tuple[int, int], tuple[dict[Hashable, Hashable], bool, list[int]]] = {}
        done = [False] * (n + 2)
        done[n + 1] = True
        illegal = _ILLEGAL
        miss = _MISS
        # klin: completed operations placed (bits 0..nk-1); olin: optional ones (bits nk..n-1).
        klin = olin = 0
        # Stack entries: (op, state key before, klo before, rp before)
        stack: list[tuple[int, Hashable, int, int]] = []
        push, pop = stack.append, stack.pop
        seen: set[tuple[int, Hashable]] = set()
        blamed = self.blamed
        dominated: dict[tuple[int, Hashable], list[int]] = {}
        yield_at = slice_steps  # the next yield comes at the first dead end after this many steps
        pops = 0  # operations placed = pops + len(stack)
        depth = best_depth = 0  # completed operations placed (now, at most)
        klo = 0  # the first unplaced completed operation by call
        rp = 0  # rorder[rp]: the unplaced completed operation that returns first
        j = rorder[0]
        hi = khi[j] = bisect_right(kcalls, krets[j])
        phase = 0  # 0: trying completed operations, 1: trying optional ones
        c = 0
        while True:
            while c < hi:
                if done[c]:
                    c += 1
                    continue
                cache = caches[c]
                if cache is None:
                    inp, out = ops[c].input, outputs[c]
                    ident = (id(inp), id(out))
                    cls = classes.get(ident)
                    if cls is None:
                        cls = classes[ident] = ({}, read_only is not None and bool(read_only(inp, out)), [])
                    cache, ro[c], members = cls
                    caches[c] = cache
                    if members:
                        if c < nk:
                            mine = krets[c]
                            for p in reversed(members):
                                if p < nk and krets[p] <= mine:
                                    pred[c] = p
                                    break
                        elif members[-1] >= nk:
                            pred[c] = members[-1]
                    members.append(c)
                if not done[pred[c]]:
                    c += 1
                    continue
                nsk = cache.get(sk, miss)
                if nsk is miss:
                    legal, ns = step(sk if keyless else states[sk], ops[c].input, outputs[c])
                    if not legal:
                        nsk = illegal
                    elif keyless:
                        nsk = ns
                    else:
                        nsk = keyf(ns)
                        states.setdefault(nsk, ns)
                    cache[sk] = nsk
                if nsk is illegal:
                    blamed.add(c)
                    c += 1
                    continue
                if phase:
                    # An optional operation; one that changes nothing is never needed.
                    if nsk == sk:
                        c += 1
                        continue
                    nol = olin | 1 << c
                    dkey = (klin, _OVERWRITTEN if dead is not None and dead(
                        nsk if keyless else states[nsk], klin | nol) else nsk)
                    others = dominated.get(dkey)
                    if others is None:
                        dominated[dkey] = [nol]
                    else:
                        for other in others:
                            if not other & ~nol:
                                break
                        else:
                            other = -1
                        if other != -1:
                            c += 1
                            continue
                        others.append(nol)
                    push((c, sk, klo, rp))
                    done[c] = True
                    olin = nol
                    sk = nsk
                    phase = 0
                    hi = khi[rorder[rp]]
                elif ro[c]:
                    # A legal read: placed at once, no memo, no lookahead (nothing changed).
                    push((c, sk, klo, rp))
                    done[c] = True
                    klin |= 1 << c
                    depth += 1
                    if c == rorder[rp]:
                        rp += 1
                        while done[rorder[rp]]:
                            rp += 1
                        if rp == nk:
                            return self._found(stack, sk, pops)
                        j = rorder[rp]
                        hi = khi[j]
                        if hi < 0:
                            hi = khi[j] = bisect_right(kcalls, krets[j])
                    if c == klo:
                        klo += 1
                        while done[klo]:
                            klo += 1
                    c = klo
                    continue
                else:
                    nkl = klin | 1 << c
                    dkey = (nkl, _OVERWRITTEN if dead is not None and dead(
                        nsk if keyless else states[nsk], nkl | olin) else nsk)
                    if has_optional:
                        others = dominated.get(dkey)
                        if others is None:
                            dominated[dkey] = [olin]
                        else:
                            for other in others:
                                if not other & ~olin:
                                    break
                            else:
                                other = -1
                            if other != -1:
                                c += 1
                                continue
                            others.append(olin)
                    elif dkey in seen:
                        c += 1
                        continue
                    else:
                        seen.add(dkey)
                    push((c, sk, klo, rp))
                    done[c] = True
                    klin = nkl
                    sk = nsk
                    depth += 1
                    if c == rorder[rp]:
                        rp += 1
                        while done[rorder[rp]]:
                            rp += 1
                        if rp == nk:
                            return self._found(stack, sk, pops)
                        j = rorder[rp]
                        hi = khi[j]
                        if hi < 0:
                            hi = khi[j] = bisect_right(kcalls, krets[j])
                    if c == klo:
                        klo += 1
                        while done[klo]:
                            klo += 1
                c = klo
                if viable is None:
                    continue
                if viable(sk if keyless else states[sk], klin | olin, min(hi, nk - 1)):
                    continue
                break  # the lookahead sees a dead end
            else:
                if not phase and has_optional:
                    phase = 1
                    c = nk
                    j = rorder[rp]
                    hi = ohi[j]
                    if hi < 0:
                        hi = ohi[j] = nk + bisect_right(ocalls, krets[j])
                    continue
            # A dead end: nothing more can be placed from here. Backtrack.
            if hooks and pops >= _LOOKAHEAD_AFTER:
                if viable is None and model.lookahead is not None:
                    viable = model.lookahead(self._as_seen())
                if pops >= _OVERWRITTEN_AFTER:
                    hooks = False
                    if model.overwritten is not None:
                        dead = model.overwritten(self._as_seen())
            if depth > best_depth:
                best_depth = self.best_depth = depth
                self.best_stack = stack[:]
                self.best_key = sk
                self.best_window = (klo, rp)
            if pops + len(stack) >= yield_at:
                self.steps = pops + len(stack)
                yield
                yield_at = self.steps + slice_steps
            while True:
                if not stack:
                    self.steps = pops
                    return False
                c, sk, klo, rp = pop()
                pops += 1
                done[c] = False
                if c >= nk:
                    olin ^= 1 << c
                    phase = 1
                    hi = ohi[rorder[rp]]
                    break
                klin ^= 1 << c
                depth -= 1
                if not ro[c]:
                    phase = 0
                    hi = khi[rorder[rp]]
                    break
            c += 1

    def _as_seen(self) -> list[Operation]:
        """The operations as the search sees them (forgotten results as None), for the model's hooks."""
        if not self.forgotten:
            return self.ops
        return [
            op if out is op.output else Operation(op.client, op.input, out, op.call, op.ret, op.index)
            for op, out in zip(self.ops, self.outputs)
        ]

    def _found(self, stack: list[tuple[int, Hashable, int, int]], sk: Hashable, pops: int) -> bool:
        """Record the witness once every completed operation is placed."""
        self.steps = pops + len(stack)
        self.witness = [entry[0] for entry in stack]
        self.witness_keys = [entry[1] for entry in stack[1:]]
        self.witness_keys.append(sk)
        return True

    def _replay(self, state: Any, sk: Hashable) -> bool:
        """Check a partition whose operations do not overlap, in their only order."""
        step = self.model.step
        keyf = self.model.state_key
        states = self.states
        stack: list[tuple[int, Hashable, int, int]] = []
        for c, (op, out) in enumerate(zip(self.ops, self.outputs)):
            legal, state = step(state, op.input, out)
            if not legal:
                self.steps = self.best_depth = c
                self.best_stack = stack
                self.best_key = sk
                self.best_window = (c, c)
                self.rorder = list(range(self.nk)) + [self.n]
                return False
            stack.append((c, sk, c, c))
            if keyf is None:
                sk = state
            else:
                sk = keyf(state)
                states.setdefault(sk, state)
        self.steps = len(stack)
        self.witness = list(range(len(stack)))
        self.witness_keys = [entry[1] for entry in stack[1:]] + [sk]
        return True

    def state(self, key: Hashable) -> Any:
        """A state whose key is ``key``."""
        return key if self.model.state_key is None else self.states[key]

    def witness_states(self) -> list[Any]:
        """The state after each operation of the witness order."""
        if self.model.state_key is None:
            return list(self.witness_keys)
        return [self.states[key] for key in self.witness_keys]

    def deepest(self) -> tuple[list[int], list[Any], Any, int | None, list[int]]:
        """Where the search got furthest: the order of operations placed, the state
        after each and at the end, the unplaced completed operation that returns
        first there, and every operation that could go next."""
        state = self.state
        stack = self.best_stack
        order = [entry[0] for entry in stack]
        keys = [entry[1] for entry in stack[1:]] + ([self.best_key] if stack else [])
        after = keys if self.model.state_key is None else [self.states[key] for key in keys]
        klo, rp = self.best_window
        placed = set(order)
        blocking = self.rorder[rp] if self.rorder and self.rorder[rp] < self.nk else None
        candidates: list[int] = []
        if blocking is not None:
            bound = self.krets[blocking]
            candidates = [j for j in range(klo, bisect_right(self.kcalls, bound)) if j not in placed]
            candidates += [
                j for j in range(self.nk, self.nk + bisect_right(self.ocalls, bound)) if j not in placed
            ]
        return order, after, state(self.best_key), blocking, candidates

    def legal(self, i: int, state: Any) -> bool:
        """Whether ``ops[i]`` may take effect from ``state``."""
        return bool(self.model.step(state, self.ops[i].input, self.outputs[i])[0])


# --------------------------------------------------------------------------
# check()
# --------------------------------------------------------------------------


def _validate(ops: list[Operation]) -> None:
    """Raise a HistoryError naming the first malformed item of ``ops``, if any."""
    for pos, op in enumerate(ops):
        if not isinstance(op, Operation):
            raise HistoryError(f"item {pos} of the history is {op!r}, not an Operation")
        try:
            backwards = op.ret is not None and op.ret < op.call
        except TypeError:
            raise HistoryError(
                f"operation {_label(op, pos)} of {describe_client(op.client)} has call time {op.call!r} and "
                f"return time {op.ret!r}; times must be numbers (the return None if it never returned)"
            ) from None
        if backwards:
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
    if len(searches) == 1 and max_steps is None and time_limit is None:
        run = searches[0].run(_SLICE)
        while True:
            try:
                next(run)
            except StopIteration as stop:
                if stop.value:
                    return LINEARIZABLE, None, searches[0].steps
                return NOT_LINEARIZABLE, 0, searches[0].steps
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
            if max_steps is None and deadline is None:
                continue
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
    ``time_limit`` seconds run out first. A step places one operation; budgets
    are checked whenever the search backtracks, so a search may finish a run
    of placements beyond them. With ``explain=False`` a failure gets no
    explanation text and no minimal conflict (faster).
    """
    ops = list(ops)
    try:
        if None in [op.index for op in ops]:
            ops = [op if op.index is not None else _with_index(op, pos) for pos, op in enumerate(ops)]
        parts = _partitions(ops, model)
        # With several partitions, the sequential ones are replayed first: a
        # _Search costs more to set up than such a partition costs to check.
        replayed: dict[int, list[Any]] = {}
        for pos, (_, part) in enumerate(parts if len(parts) > 1 else ()):
            after = _replay_sequential(part, model)
            if after is None:
                continue
            if len(after) < len(part):
                # Not linearizable: search it alone, for the explanation.
                search = _Search(part, model)
                _run_interleaved([search], None, None)
                steps = len(after) + sum(len(states) for states in replayed.values())
                return _explain_failure(search, part, model, parts[pos][0], True, steps, explain)
            replayed[pos] = after
        pending = [pos for pos in range(len(parts)) if pos not in replayed]
        searches = [_Search(parts[pos][1], model) for pos in pending]
    except (AttributeError, TypeError, HistoryError):
        _validate(ops)  # names the malformed operation, if there is one
        raise
    verdict, bad, steps = _run_interleaved(searches, max_steps, time_limit)
    steps += sum(len(states) for states in replayed.values())
    if verdict == LINEARIZABLE:
        order: list[Operation] = []
        states: list[Any] = []
        searched = dict(zip(pending, searches))
        for pos, (_, part) in enumerate(parts):
            if pos in replayed:
                order.extend(part)
                states.extend(replayed[pos])
                continue
            search = searched[pos]
            order.extend(search.ops[i] for i in search.witness)
            states.extend(search.witness_states())
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
    key, part = parts[pending[bad]]
    return _explain_failure(searches[bad], part, model, key, model.partition is not None, steps, explain)


def _replay_sequential(part: list[Operation], model: Model) -> list[Any] | None:
    """None if operations of ``part`` overlap (or one returns before its call);
    else each returned before the next was called, the only order that
    respects real time is the list's, and this gives the state after each of
    its operations up to the first illegal one (all of them if it is legal)."""
    step = model.step
    state = model.init()
    after: list[Any] = []
    legal = True
    last = None
    for op in part:
        ret = op.ret
        if ret is None or ret < op.call or (last is not None and not last < op.call):
            return None
        last = ret
        if legal:
            legal, state = step(state, op.input, op.output)
            if legal:
                after.append(state)
    return after


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


class _Shrinker:
    """Finds a minimal set of results that cannot all be right (QuickXplain).

    A trial keeps the results of some candidate operations and forgets the
    others (output None: "any output", the operation still takes effect).
    Forgetting results only adds freedom, so a trial that is linearizable
    stays so with fewer results kept, and one that is not stays so with
    more: both are remembered, and a trial whose kept results fit an earlier
    witness order needs no search at all.
    """

    def __init__(self, ops: list[Operation], model: Model, budget: int) -> None:
        self.ops = ops
        self.model = model
        self.budget = budget
        # Positions (in ops) of the operations with a result.
        self.candidates = [j for j, op in enumerate(ops) if op.output is not None]
        # Per candidate, once a trial needs it: whether it is read-only with its
        # result forgotten. Such an operation is then legal anywhere and changes
        # nothing, so trials leave it out (the same orders work without it).
        self.idle: dict[int, bool] = {}
        self.bad: list[frozenset[int]] = []
        self.good: list[frozenset[int]] = []
        # Witness orders of linearizable trials: {position in ops: place in the order}, states after each.
        self.witnesses: list[tuple[dict[int, int], list[int], list[Any]]] = []

    def fails(self, keep: frozenset[int]) -> bool | None:
        """True if the results of ``ops[j]`` for j in ``keep`` cannot all be
        right; None if the budget ran out."""
        if any(bad <= keep for bad in self.bad):
            return True
        if any(keep <= good for good in self.good) or any(self._fits(keep, *w) for w in self.witnesses):
            return False
        if self.budget <= 0:
            return None
        idle, read_only = self.idle, self.model.read_only
        trial, forgotten = [], set()
        for j, op in enumerate(self.ops):
            if op.output is not None and j not in keep:
                if j not in idle:
                    idle[j] = read_only is not None and bool(read_only(op.input, None))
                if idle[j]:
                    continue
                forgotten.add(id(op))
            trial.append(op)
        search = _Search(trial, self.model, forgotten)
        verdict, _, steps = _run_interleaved([search], self.budget, None)
        self.budget -= max(steps, 1)
        if verdict == UNKNOWN:
            return None
        if verdict == NOT_LINEARIZABLE:
            self.bad.append(keep)
            return True
        self.good.append(keep)
        where = {id(op): j for j, op in enumerate(self.ops)}
        sequence = [where[id(search.ops[i])] for i in search.witness]
        self.witnesses.append(({j: place for place, j in enumerate(sequence)}, sequence, search.witness_states()))
        return False

    def _fits(self, keep: frozenset[int], order: dict[int, int], sequence: list[int], states: list[Any]) -> bool:
        """Whether a witness order found with fewer results also fits these: every
        kept result is possible where its operation stands, with the same effect.
        A read-only operation that the witness left out (its result was forgotten)
        fits if it can go in between, at a place that respects real time."""
        step, key, ops = self.model.step, self.model.state_key, self.ops
        init = self.model.init()
        inserted: list[tuple[int, int]] = []
        for j in keep:
            op = ops[j]
            place = order.get(j)
            if place is None:
                place = self._insertion(op, sequence, states, init)
                if place is None:
                    return False
                inserted.append((place, j))
                continue
            legal, after = step(states[place - 1] if place else init, op.input, op.output)
            if not legal:
                return False
            if (after if key is None else key(after)) != (states[place] if key is None else key(states[place])):
                return False
        for place, j in inserted:  # the inserted reads among themselves
            for other_place, other in inserted:
                if other_place < place and ops[j].ret < ops[other].call:  # type: ignore[operator]
                    return False
        return True

    def _insertion(self, op: Operation, sequence: list[int], states: list[Any], init: Any) -> int | None:
        """Where a read-only ``op`` can go in a witness order (before ``sequence[place]``), or None."""
        read_only = self.model.read_only
        if op.ret is None or read_only is None or not read_only(op.input, op.output):
            return None
        ops = self.ops
        low, high = 0, len(sequence)
        for place, j in enumerate(sequence):
            other = ops[j]
            if other.ret is not None and other.ret < op.call:
                low = place + 1
            if op.ret < other.call and place < high:
                high = place
        for place in range(low, high + 1):
            legal, _ = self.model.step(states[place - 1] if place else init, op.input, op.output)
            if legal:
                return place
        return None

    def shrink(self, order: list[int]) -> list[int] | None:
        """A minimal failing subset of ``order`` (which fails as a whole), or None."""
        try:
            return self._quickxplain(frozenset(), False, order)
        except _OutOfBudget:
            return None

    def _quickxplain(self, base: frozenset[int], changed: bool, candidates: list[int]) -> list[int]:
        if changed:
            verdict = self.fails(base)
            if verdict is None:
                raise _OutOfBudget
            if verdict:
                return []
        if len(candidates) == 1:
            return candidates
        half = len(candidates) // 2
        first, second = candidates[:half], candidates[half:]
        from_second = self._quickxplain(base | frozenset(first), True, second)
        from_first = self._quickxplain(base | frozenset(from_second), bool(from_second), first)
        return from_first + from_second


class _OutOfBudget(Exception):
    """The shrinking of a failure ran out of search steps."""


def _minimal_conflict(
    part: list[Operation], model: Model, horizon: float | None, culprit: Operation | None, suspects: list[Operation]
) -> list[Operation] | None:
    """A smallest set of results that cannot all be right, given every operation's effect.

    It works on the operations called by ``horizon`` if they already fail, with
    those still running then made open-ended (they may or may not have taken
    effect by then, and their results are forgotten): a conflict there is one in
    the whole history. If they do not, it tries twice as many operations, up to
    the whole partition. It tries the culprit's result alone, then adds the
    ``suspects`` (results the search found impossible somewhere) one by one
    until the kept results fail, and drops those not needed; if the suspects
    are not enough, it shrinks all results with QuickXplain. Returns None if
    the checks need too many steps.
    """
    ops = part
    if horizon is not None:
        prefix = [op for op in part if op.call <= horizon]
        if len(prefix) < len(part):
            ops = [
                op if op.ret is not None and op.ret <= horizon else Operation(
                    op.client, op.input, None, op.call, None, op.index
                )
                for op in prefix
            ]
    shrinker = _Shrinker(ops, model, _MINIMIZE_STEPS)
    position = {id(op): j for j, op in enumerate(ops)}
    results = set(shrinker.candidates)
    kept = [position[id(op)] for op in [culprit, *suspects] if op is not None and position.get(id(op)) in results]
    kept = list(dict.fromkeys(kept))
    if kept and shrinker.fails(frozenset(kept[:1])):
        return [ops[kept[0]]]
    if ops is not part and shrinker.fails(frozenset(results)) is not True:
        # The failure needs later operations: twice as many (or all of them).
        calls = sorted(op.call for op in part)
        wider = 2 * len(ops)
        return _minimal_conflict(part, model, calls[wider] if wider < len(calls) else None, culprit, suspects)
    trial: list[int] = []
    for j in kept:
        trial.append(j)
        verdict = shrinker.fails(frozenset(trial))
        if verdict is None:
            return None
        if verdict:
            # Every result added before the last was not enough: drop the ones not needed.
            for other in trial[:-1]:
                fewer = frozenset(trial) - {other}
                verdict = shrinker.fails(fewer)
                if verdict is None:
                    return None
                if verdict:
                    trial.remove(other)
            return [ops[j] for j in sorted(trial)]
    everything = sorted(results, key=lambda j: j not in kept)
    if ops is part and shrinker.fails(frozenset(everything)) is not True:
        return None
    found = shrinker.shrink(everything)
    return None if found is None else [ops[j] for j in sorted(found)]


def _explain_failure(
    search: _Search,
    part: list[Operation],
    model: Model,
    key: Hashable,
    partitioned: bool,
    steps: int,
    explain: bool,
) -> LinearizabilityResult:
    ops = search.ops
    order_ids, states, final_state, blocking, candidates = search.deepest()
    order = [ops[i] for i in order_ids]
    # The operation to blame: the first (by return) that could go next but is not
    # possible after the order found; else the one that must go soonest.
    frontier = sorted(set(candidates) | ({blocking} if blocking is not None else set()),
                      key=lambda i: (ops[i].ret is None, ops[i].ret or 0, i))
    illegal = [i for i in frontier if ops[i].ret is not None and not search.legal(i, final_state)]
    culprit = illegal[0] if illegal else blocking
    offending = [ops[culprit]] if culprit is not None else []
    if not explain:
        return LinearizabilityResult(NOT_LINEARIZABLE, model, part, key, "", order, states, offending, None, steps)
    lines: list[str] = []
    where = f" on key {key!r}" if partitioned else ""
    lines.append(
        f"Not linearizable{where}: no order of these {len(ops)} operations respects both real time "
        f"and the {model.name} model."
    )
    if order:
        shown = order[-_SHOW_LAST:]
        first = len(order) - len(shown)
        lines.append(
            f"The longest order the checker could build places {search.best_depth} of the {search.nk} "
            "operations that completed" + (f"; its last {len(shown)}:" if first else ":")
        )
        for number, (op, after) in enumerate(zip(shown, states[first:]), start=first + 1):
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
    suspects = sorted((ops[i] for i in search.blamed), key=lambda op: (-op.ret, op.call))  # type: ignore[operator]
    conflict = _minimal_conflict(part, model, horizon, ops[culprit] if culprit is not None else None, suspects)
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
        NOT_LINEARIZABLE, model, part, key, "\n".join(lines), order, states, offending, conflict, steps
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
