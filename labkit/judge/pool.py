"""The workers behind a search: steps of search states, in batches, on several processes.

A search asks for many steps at once (a frontier's successors, the next
steps of many random probes). :class:`StepPool` splits them over the
session's search workers, sending each step to the worker that produced its
node's state (that worker still has the node live, so the state is not sent;
should it have let the node go, it says so and the step goes again with the
state), collects the outcomes, builds each new state from the attributes
the step changed, and replays the steps chosen for checking in the checker
worker from their encoded state: a different outcome is a handler that is
not a function of the node's state.

Every step's outcome is a pure function of the state and the event, so which
worker ran it, and in which batch, never changes a search's result.
"""

from __future__ import annotations

import select
from typing import Any, NamedTuple, Sequence

from labkit.judge.nodes import NO_OBSERVATIONS, Observations, Outcome, SnapshotNode, StudentError
from labkit.judge.session import CHECKER, NondeterminismError, Session, differences
from labkit.judge.worker import WorkerProcess
from labkit.wire import NodeState, WireError, WireValue, encode

__all__ = ["StepPool", "StepRequest", "BATCH"]

BATCH = 256  # steps sent to one worker at a time
_HOMES_LIMIT = 1_000_000


class StepRequest(NamedTuple):
    """One step for a worker: ``node`` handles a message or timer (``item``, from ``detail``,
    the sender's name) or a method call (``detail`` the method, ``item`` its encoded arguments);
    ``follow`` is a call to make in the same step if a result arrived (a client worker's next command)."""

    node: SnapshotNode
    kind: str
    detail: str | None
    item: WireValue
    follow: tuple[str, tuple] | None


class _Batch:
    """The ops and payloads of one request to one worker."""

    def __init__(self) -> None:
        self.ops: list[list[Any]] = []
        self.payloads: list[str] = []
        self.index: dict[str, int] = {}
        self.positions: list[int] = []

    def add(self, text: str) -> int:
        i = self.index.get(text)
        if i is None:
            i = self.index[text] = len(self.payloads)
            self.payloads.append(text)
        return i

    def step(self, position: int, request: StepRequest, fresh: bool, with_state: bool = True) -> None:
        """Add a step; its node's state is sent only ``with_state`` (or ``fresh``, to replay it)."""
        node = request.node
        follow = None
        if request.follow is not None:
            follow = [request.follow[0], self.add(encode(request.follow[1]))]
        state = self.add(node.value.text) if with_state or fresh else -1
        self.ops.append(["step", node.value.fp, state, request.kind, request.detail, self.add(request.item.text),
                         node.observer, follow, fresh])
        self.positions.append(position)


class StepPool:
    """Runs search steps on a session's search workers (see the module docstring)."""

    def __init__(self, session: Session, workers: int | None = None) -> None:
        self.session = session
        self.count = workers
        self.homes: dict[int, int] = {}  # state fingerprint -> the worker that has it live
        self._workers: list[WorkerProcess] | None = None

    def use(self, count: int | None) -> None:
        """Run steps on ``count`` workers from now on (None: one per usable CPU); workers no longer
        needed are stopped."""
        if count != self.count:
            if self._workers is not None and count is not None:
                for i in range(count, len(self._workers)):
                    self.session.release(f"search{i}")
            self.count = count
            self._workers = None

    @property
    def workers(self) -> list[WorkerProcess]:
        if self._workers is None or any(w.failed for w in self._workers):
            self._workers = self.session.search_workers(self.count)
        return self._workers

    # ---- steps -----------------------------------------------------------------------------

    def run(self, requests: Sequence[StepRequest], check: Sequence[bool] = ()) -> list[Outcome]:
        """The outcomes of ``requests``, in order; those with ``check`` set are replayed in the checker."""
        workers = self.workers
        n = len(workers)
        outcomes: list[Outcome | None] = [None] * len(requests)
        self._ran_on = [0] * len(requests)
        todo = range(len(requests))
        with_state = [False] * len(requests)
        while todo:
            batches: list[list[_Batch]] = [[] for _ in range(n)]
            for position in todo:
                request = requests[position]
                fp = request.node.value.fp
                w = self.homes.get(fp)
                home = w is not None and w < n
                if not home:
                    w = fp % n
                queue = batches[w]
                if not queue or len(queue[-1].ops) >= BATCH:
                    queue.append(_Batch())
                sent = with_state[position] = not home or outcomes[position] is not None
                queue[-1].step(position, request, False, with_state=sent)
            self._exchange(workers, batches, outcomes, requests)
            todo = [p for p in todo if outcomes[p].missing]  # type: ignore[union-attr]
            for position in todo:
                if with_state[position]:  # else it would be asked again and again
                    raise StudentError(f"the worker's answer is malformed: {_describe(requests[position])} came "
                                       "back as a step of a node it does not have, although its state was sent")
        for position, outcome in enumerate(outcomes):
            assert outcome is not None
            request = requests[position]
            if outcome.followed and request.follow is None:
                raise StudentError(f"the worker's answer is malformed: {_describe(request)} came back with a "
                                   "next command sent, which it was not asked for")
            try:
                outcome.resolve(request.node)
            except WireError as error:
                raise StudentError(f"the worker's answer is malformed: the state after {_describe(request)}: "
                                   f"{error}") from None
            if not outcome.same and outcome.state is not None:
                self.homes[outcome.state.fp] = self._ran_on[position]  # type: ignore[union-attr]
        if len(self.homes) > _HOMES_LIMIT:
            self.homes.clear()
        chosen = [p for p, c in enumerate(check) if c]
        if chosen:
            self._check(requests, outcomes, chosen)  # type: ignore[arg-type]
        self.session.check_budget()
        return outcomes  # type: ignore[return-value]

    def _exchange(self, workers: list[WorkerProcess], batches: list[list[_Batch]], outcomes: list[Outcome | None],
                  requests: Sequence[StepRequest]) -> None:
        """Keep every worker busy with its batches until all are answered."""
        pending = {w: 0 for w in range(len(workers)) if batches[w]}
        for w in pending:
            self._send(workers[w], batches[w][0])
        while pending:
            ready = self._ready([workers[w] for w in pending])
            for w in [w for w in pending if workers[w] in ready]:
                batch = batches[w][pending[w]]
                replies, payloads = self._receive(workers[w], batch, requests)
                values: dict[int, WireValue] = {}
                for position, reply in zip(batch.positions, replies):
                    outcomes[position] = Outcome(reply, payloads, values)
                    self._ran_on[position] = w
                pending[w] += 1
                if pending[w] < len(batches[w]):
                    self._send(workers[w], batches[w][pending[w]])
                else:
                    del pending[w]

    def _send(self, worker: WorkerProcess, batch: _Batch) -> None:
        worker.send_ops(batch.ops, batch.payloads)

    def _receive(self, worker: WorkerProcess, batch: _Batch, requests: Sequence[StepRequest]
                 ) -> tuple[list[dict[str, Any]], list[str]]:
        def doing() -> str:
            if len(batch.positions) == 1:
                return _describe(requests[batch.positions[0]])
            return f"handling a batch of {len(batch.positions)} search steps"

        replies, payloads = worker.receive_replies(len(batch.ops), steps=len(batch.ops), doing=doing)
        self.session._account(replies, payloads)
        return replies, payloads

    def _ready(self, workers: list[WorkerProcess]) -> list[WorkerProcess]:
        if len(workers) == 1:
            return workers
        buffered = [w for w in workers if w.channel.has_buffered()]
        if buffered:
            return buffered
        fds = {w.channel.read_fd: w for w in workers}
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        return [fds[fd] for fd, _ in poller.poll(200)] or workers[:1]

    def _check(self, requests: Sequence[StepRequest], outcomes: list[Outcome], chosen: list[int]) -> None:
        """Replay each chosen step twice in a row in the checker, from its encoded state: a handler
        that reads anything but the node's state and the event (a global, a random number) shows."""
        checker = self.session.worker(CHECKER)
        for start in range(0, len(chosen), BATCH // 2):
            batch = _Batch()
            for position in chosen[start:start + BATCH // 2]:
                batch.step(position, requests[position], True)
                batch.step(position, requests[position], True)
            replies, payloads = self.session.request(checker, batch.ops, batch.payloads, steps=len(batch.ops),
                                                     doing="replaying search steps to check them")
            values: dict[int, WireValue] = {}
            for position, reply in zip(batch.positions, replies):
                again = Outcome(reply, payloads, values)
                difference = differences(outcomes[position], again)
                if difference:
                    from labkit.judge.checks import nondeterminism_message

                    request = requests[position]
                    raise NondeterminismError(nondeterminism_message(
                        request.node.address, request.node.qualified, request.kind, request.detail,
                        request.item.text, difference, outcomes[position], again))

    # ---- starting nodes, calls and queries ------------------------------------------------------

    def start(self, nodes: Sequence[tuple[str, str | None, str | None, str | None]]) -> list[Outcome]:
        """Initial nodes: ``(class, constructor args, state, observer)``; a node given by
        state is rebuilt from it, else constructed; then ``init()`` runs."""
        worker = self.workers[0]
        batch = _Batch()
        for qualified, args, state, observer in nodes:
            if state is not None:
                batch.ops.append(["start", None, batch.add(state), observer])
            else:
                assert args is not None
                batch.ops.append(["start", qualified, batch.add(args), observer])
        replies, payloads = self.session.request(worker, batch.ops, batch.payloads, steps=len(batch.ops),
                                                 doing="making the initial nodes")
        values: dict[int, WireValue] = {}
        outcomes = [Outcome(r, payloads, values) for r in replies]
        for outcome in outcomes:
            if outcome.state is None and outcome.error is None:
                raise StudentError("the worker's answer is malformed: an initial node came back without its state")
            if outcome.state is not None:
                try:
                    outcome.state = NodeState.from_text(outcome.state.text)
                except WireError as error:
                    raise StudentError(f"the worker's answer is malformed: an initial node's state: {error}") from None
                self.homes[outcome.state.fp] = 0
        return outcomes

    def call(self, node: SnapshotNode, method: str, args: tuple) -> Outcome:
        """``node`` calls ``method(*args)`` (a client's ``send_command``) as one step."""
        request = StepRequest(node, "call", method, WireValue(encode(args)), None)
        return self.run([request])[0]

    def ask(self, node: SnapshotNode, calls: list[tuple[str, str]]) -> Observations:
        """Query methods of a search state's node that its observations did not cover."""
        batch = _Batch()
        op = ["query", ["state", node.value.fp, batch.add(node.value.text)],
              [[method, batch.add(key)] for method, key in calls]]
        worker = self.workers[self.homes.get(node.value.fp, node.value.fp % len(self.workers)) % len(self.workers)]
        replies, payloads = self.session.request(worker, [op], batch.payloads,
                                                 doing=f"asking {node.address} a query")
        return Outcome(replies[0], payloads, {}).obs or NO_OBSERVATIONS


def _describe(request: StepRequest) -> str:
    from labkit.judge.nodes import _event_text

    node = request.node
    if request.kind == "call":
        return f"{node.address}'s {request.detail}()"
    from labkit.node import Address

    sender = Address(request.detail) if request.detail else None
    return f"{node.address}'s handler for {_event_text(request.kind, sender, request.item)}"

