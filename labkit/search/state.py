"""Search states: nodes, the network as a set of envelopes, and timer queues.

The semantics follow DSLabs. The network is a set of ``(sender, receiver,
message)`` envelopes that are never removed on delivery, so one rule models
loss, duplication, delay and reordering, and sending an envelope already
present changes nothing. Each node has a timer queue; a timer may fire unless
a timer set earlier on the same node has a maximum length no greater than its
minimum length. Timer equality ignores the drawn length.

A state holds its nodes by value: each student node is a
:class:`~labkit.judge.nodes.SnapshotNode` (its encoded state and what its
query methods answered), each client worker the judge's own bookkeeping
around one. A step's outcome is computed by a worker process (the judge
never runs student code) and cached per (node fingerprint, event), so every
state in which that node meets that event reuses it; strategies ask for the
steps they will need in batches (:meth:`System.prepare`). A share of steps,
chosen by their fingerprints, is replayed from the encoded state in a fresh
worker to catch handlers that are not deterministic or keep state outside
the node.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from labkit.client import ClientWorker, InterRequestTimer, Workload
from labkit.judge.nodes import NodeRecipe, Outcome, SnapshotNode
from labkit.node import Address, Effects, LabkitError, Message, Node, Timer, _active
from labkit.values import UnsupportedValueError, brief, mix
from labkit.wire import WireValue, encode

__all__ = ["SearchState", "Event", "HandlerFailure", "SearchError", "NondeterminismError", "System"]

_MASK = (1 << 64) - 1
_TIMER_KEY = -1
_ERROR_TAG = 0x5EA12C4E
_CACHE_LIMIT = 400_000


class SearchError(LabkitError):
    """A search could not be set up or could not go on."""


from labkit.judge.session import NondeterminismError  # noqa: E402  (re-exported: searches raise it)


@dataclass(frozen=True)
class Event:
    """One step of a trace, by value: a message delivery or a timer firing.

    ``kind`` is ``"message"``, ``"timer"``, ``"drop"`` (all pending messages
    set aside) or ``"undrop"`` (those from or to ``node`` brought back).
    ``item`` is the message or timer (encoded, as the judge holds them).
    """

    kind: str
    node: Address | None
    sender: Address | None = None
    item: Any = None
    min_millis: int = 0
    max_millis: int = 0
    direction: str = ""

    def __str__(self) -> str:
        if self.kind == "message":
            return f"{self.sender} -> {self.node}: {brief(self.item, 200)}"
        if self.kind == "timer":
            return f"{self.node}: timer {brief(self.item, 200)}"
        if self.kind == "drop":
            return "(all pending messages set aside)"
        return f"(pending messages {self.direction} {self.node} brought back)"


@dataclass(frozen=True)
class HandlerFailure:
    """A handler raised: the state is terminal."""

    node: Address
    event: Event
    error_type: str
    message: str
    traceback: str

    def explain(self) -> str:
        return f"{self.node} raised {self.error_type}: {self.message}\n  while handling {self.event}\n{self.traceback}"


def as_wire(item: Any) -> WireValue:
    """A message or timer as the judge holds it (encoded), whatever it was given as."""
    return item if type(item) is WireValue else WireValue(encode(item))


class _Transition:
    """The cached outcome of one node handling one event."""

    __slots__ = ("node", "node_fp", "sends", "timers", "failure")

    def __init__(self, node: Any, node_fp: int, sends: tuple, timers: tuple, failure: HandlerFailure | None):
        self.node = node
        self.node_fp = node_fp
        self.sends = sends  # ((sender_idx, receiver_idx, message, message_fp, envelope_fp), ...)
        self.timers = timers  # ((timer, min, max, entry_fp), ...)
        self.failure = failure


FIRST_CHECKED = 16  # the first steps of every node are all replayed: hidden state shows early
_SHARED_LIMIT = 50_000  # parts kept for sharing before the tables start again


class _Nodes:
    """The nodes of a state, and their fingerprints."""

    __slots__ = ("list", "fps")

    def __init__(self, nodes: tuple, fps: tuple[int, ...]) -> None:
        self.list = nodes
        self.fps = fps


class _Network:
    """A set of envelopes ``(sender, receiver, message, message fp, envelope fp)``, in the order
    they were first sent; its fingerprint is the sum of the envelopes'.

    A network is either flat (all its envelopes, their fingerprints sorted in an array) or a
    flat one with a few envelopes added (a step adds one or two): states share the flat part."""

    __slots__ = ("base", "extra", "efps", "fp", "size")

    def __init__(self, envs: tuple, base: "_Network | None" = None, fp: int | None = None) -> None:
        self.base = base
        self.extra = envs
        if base is None:
            self.efps: Any = array("Q", sorted([e[4] for e in envs]))
            self.size = len(envs)
            self.fp = sum(self.efps) & _MASK
        else:
            self.efps = tuple([e[4] for e in envs])
            self.size = base.size + len(envs)
            self.fp = fp

    @property
    def envs(self) -> tuple:
        return self.extra if self.base is None else self.base.extra + self.extra

    def envelope(self, k: int) -> tuple:
        """The ``k``-th envelope."""
        base = self.base
        if base is None:
            return self.extra[k]
        n = base.size
        return base.extra[k] if k < n else self.extra[k - n]

    def has(self, efp: int) -> bool:
        """Whether an envelope with fingerprint ``efp`` is in the set."""
        base = self.base
        if base is not None:
            if efp in self.efps:
                return True
            return base.has(efp)
        fps = self.efps
        k = bisect_left(fps, efp)
        return k < len(fps) and fps[k] == efp

    def fingerprints(self) -> frozenset[int]:
        return frozenset(self.efps) | (self.base.fingerprints() if self.base is not None else frozenset())

    def after(self, added: tuple, fp: int) -> "_Network":
        """This set with ``added`` (new envelopes, whose fingerprints make ``fp``) after its own."""
        if self.base is None:
            base, extra = self, added
        else:
            base, extra = self.base, self.extra + added
        if len(extra) > _EXTRA_LIMIT:
            return _Network(base.extra + extra)
        return _Network(extra, base, fp)


_EXTRA_LIMIT = 8  # envelopes a network adds to a shared flat one before it is flattened itself


class _Timers:
    """Every node's timer queue, with fingerprints and the positions that may fire."""

    __slots__ = ("queues", "fps", "fireable")

    def __init__(self, queues: tuple, fps: tuple[int, ...], fireable: tuple) -> None:
        self.queues = queues
        self.fps = fps
        self.fireable = fireable


def _queue_fp(queue: tuple) -> int:
    return hash(tuple([e[3] for e in queue]))


def _unique(envs: Iterable[tuple]) -> tuple:
    """Envelopes without repeats, each where it first appears."""
    unique: dict[int, tuple] = {}
    for env in envs:
        unique.setdefault(env[4], env)
    return tuple(unique.values())


_NO_ENVELOPES = _Network(())


def _fireable(queue: tuple) -> tuple[int, ...]:
    """The positions of a timer queue's entries that may fire: DSLabs's queue rule (a timer may
    fire before an earlier-set one only if its longest wait is shorter than the other's shortest),
    and only the first of equal timers."""
    positions: list[int] = []
    bound = None
    seen: set[int] = set()
    for pos, entry in enumerate(queue):
        if (bound is None or bound > entry[1]) and entry[3] not in seen:
            positions.append(pos)
        seen.add(entry[3])
        if bound is None or entry[2] < bound:
            bound = entry[2]
    return tuple(positions)


class System:
    """What the states of one search share: addresses, roles, the step cache and the workers.

    ``check_every``: one step in this many (chosen by its fingerprint), and
    each node's first FIRST_CHECKED steps, are replayed in the checker
    worker; 1 replays every step, 0 none.
    """

    def __init__(self, addresses: Sequence[Address], servers: Sequence[Address], workers: Sequence[Address],
                 clients: Sequence[Address], session: Any, check_every: int = 64) -> None:
        self.addresses = tuple(addresses)
        self.index = {a: i for i, a in enumerate(self.addresses)}
        self.server_indices = tuple(self.index[a] for a in servers)
        self.worker_indices = tuple(self.index[a] for a in workers)
        self.client_indices = tuple(self.index[a] for a in clients)
        self.session = session
        self.cache: dict[tuple[int, int, int], _Transition] = {}
        self.snapshots: dict[tuple[int, int], SnapshotNode] = {}
        self.check_every = check_every
        self._first_checks: dict[int, int] = {}
        self.steps_executed = 0
        self.root: SearchState | None = None  # the state the system was built for
        self._pool: Any = None
        # What predicates keep per node state (SearchState.memo): for this search only, since the
        # answers of query methods come from this submission's code and this search's workers.
        self.memo: dict[str, dict[Any, Any]] = {}
        # Parts of states shared by every state that has them (see SearchState); kept while few.
        self._node_sets: dict[tuple, _Nodes] = {}
        self._networks: dict[tuple, _Network] = {}
        self._timer_sets: dict[tuple, _Timers] = {}

    @property
    def pool(self) -> Any:
        if self._pool is None:
            from labkit.judge.pool import StepPool

            self._pool = StepPool(self.session)
        return self._pool

    # ---- steps ------------------------------------------------------------------------

    def transition(self, i: int, node: Any, fp: int, event: WireValue, event_fp: int, sender: int) -> _Transition:
        key = (fp, sender, event_fp)
        cached = self.cache.get(key)
        if cached is None:
            self.prepare([(i, node, fp, event, event_fp, sender)])
            cached = self.cache[key]
        return cached

    def _checked(self, key: tuple[int, int, int], node_index: int) -> bool:
        """Whether a new step is replayed in the checker: each node's first FIRST_CHECKED steps, then
        one in ``check_every`` (by fingerprint, so the same on any number of workers)."""
        if self.check_every <= 0:
            return False
        if self.check_every == 1 or mix(hash(key)) % self.check_every == 0:
            return True
        done = self._first_checks.get(node_index, 0)
        if done < FIRST_CHECKED:
            self._first_checks[node_index] = done + 1
            return True
        return False

    def prepare(self, steps: Iterable[tuple[int, Any, int, WireValue, int, int]]) -> None:
        """Compute, in batches on the workers, every step of ``steps`` not cached yet."""
        wanted: dict[tuple[int, int, int], tuple[int, Any, WireValue, int]] = {}
        cache = self.cache
        for i, node, fp, event, event_fp, sender in steps:
            key = (fp, sender, event_fp)
            if key not in cache and key not in wanted:
                wanted[key] = (i, node, event, sender)
        if not wanted:
            return
        if len(cache) + len(wanted) >= _CACHE_LIMIT:
            cache.clear()
        requests = []
        keys = []
        for key, (i, node, event, sender) in wanted.items():
            request = self._request(i, node, event, sender)
            if request is None:  # handled by the judge alone (a client worker's own timer)
                cache[key] = self._own_step(i, node, event)
                continue
            keys.append(key)
            requests.append(request)
        if not requests:
            return
        self.steps_executed += len(requests)
        check = [self._checked(k, wanted[k][0]) for k in keys]
        outcomes = self.pool.run(requests, check)
        for key, outcome, (i, node, event, sender) in zip(keys, outcomes, (wanted[k] for k in keys)):
            cache[key] = self._result(i, node, event, sender, outcome)

    def _request(self, i: int, node: Any, event: WireValue, sender: int) -> Any:
        from labkit.judge.pool import StepRequest

        kind = "timer" if sender == _TIMER_KEY else "message"
        sender_name = None if sender == _TIMER_KEY else self.addresses[sender].name
        if isinstance(node, ClientWorker):
            client = node.client
            if kind == "timer" and _is_pacing(event):
                number = event.value.number
                if number != node.sent + 1 or node.outstanding or not node._has_command(number):
                    return None
                command = node._command_and_result(number)[0]
                return StepRequest(client, "call", "send_command", WireValue(encode((command,))), None)
            follow = node.follow_up()
            return StepRequest(client, kind, sender_name, event, follow)
        return StepRequest(node, kind, sender_name, event, None)

    def _own_step(self, i: int, node: Any, event: WireValue) -> _Transition:
        return _Transition(node, node.fp, (), (), None)

    def _result(self, i: int, node: Any, event: WireValue, sender: int, outcome: Outcome) -> _Transition:
        address = self.addresses[i]
        failure = None
        if outcome.error is not None:
            error = outcome.error
            failure = HandlerFailure(address, self.event_of(i, event, sender), str(error.get("type", "Exception")),
                                     str(error.get("message", "")),
                                     "" if error.get("state") else str(error.get("traceback", "")))
        extra: list[tuple[Any, Any, int, int]] = []
        if isinstance(node, ClientWorker):
            client = node.client
            new_client = self._snapshot(i, client, outcome.state, outcome.obs_after or outcome.obs)
            new = node.copy()
            new.client = new_client
            if failure is None:
                effects = Effects(None)  # type: ignore[arg-type]
                _active.append(effects)
                try:
                    if sender == _TIMER_KEY and _is_pacing(event):
                        new.sent = event.value.number
                        new._lk_invoked_at = None
                    else:
                        new.absorb(outcome, None)
                except Exception as error:  # get_result() misbehaved
                    failure = HandlerFailure(address, self.event_of(i, event, sender), type(error).__name__,
                                             str(error), getattr(error, "traceback_text", ""))
                finally:
                    _active.pop()
                extra = [(address, self._encoded_timer(t), lo, hi) for _, t, lo, hi in effects.timers]
        else:
            new = self._snapshot(i, node, outcome.state, outcome.obs)
        sends = self._envelopes([(address, to, m) for to, m in outcome.sends])
        timers = self._entries([(address, t, lo, hi) for t, lo, hi in outcome.timers] + extra)
        return _Transition(new, new.fp, sends, timers, failure)

    def _snapshot(self, i: int, node: SnapshotNode, state: Any, obs: Any) -> SnapshotNode:
        """Node ``i`` in ``state`` after a step of ``node``: ``node`` itself if nothing changed, else
        the one snapshot of that state (shared by every transition that reaches it)."""
        if state is None or (state is node.value and (obs is node.obs or (obs is not None and obs.same_as(node.obs)))):
            return node
        if state is node.value:  # the same state answering differently (the checker's replays tell)
            return node.with_state(state, obs)
        if obs is None and node.observer is not None:  # a step that raised: nothing observed
            return node.with_state(state, obs)
        key = (i, state.fp)
        found = self.snapshots.get(key)
        if found is None or found.value != state:
            if len(self.snapshots) >= _CACHE_LIMIT:
                self.snapshots.clear()
            found = self.snapshots[key] = node.with_state(state, obs)
        return found

    # ---- parts shared between states ---------------------------------------------------

    def nodes_of(self, nodes: tuple, fps: tuple[int, ...]) -> _Nodes:
        """The one :class:`_Nodes` of these nodes (by their fingerprints)."""
        table = self._node_sets
        found = table.get(fps)
        if found is None:
            if len(table) >= _SHARED_LIMIT:
                table.clear()
            found = table[fps] = _Nodes(nodes, fps)
        return found

    def network_after(self, network: _Network, added: tuple, fp: int) -> _Network:
        """``network`` with the envelopes ``added`` after its own (one object for equal arguments)."""
        key = (network, tuple([e[4] for e in added]))
        table = self._networks
        found = table.get(key)
        if found is None:
            if len(table) >= _SHARED_LIMIT:
                table.clear()
            found = table[key] = network.after(added, fp)
        return found

    def timers_of(self, timers: _Timers, i: int, queue: tuple, queue_fp: int) -> _Timers:
        """``timers`` with node ``i``'s queue replaced by ``queue``."""
        fps = timers.fps[:i] + (queue_fp,) + timers.fps[i + 1:]
        table = self._timer_sets
        found = table.get(fps)
        if found is None:
            if len(table) >= _SHARED_LIMIT:
                table.clear()
            found = table[fps] = _Timers(timers.queues[:i] + (queue,) + timers.queues[i + 1:], fps,
                                         timers.fireable[:i] + (_fireable(queue),) + timers.fireable[i + 1:])
        return found

    def _encoded_timer(self, timer: Any) -> WireValue:
        return as_wire(timer)

    def _envelopes(self, sends: list) -> tuple:
        out = []
        index = self.index
        for sender, receiver, message in sends:
            r = index.get(receiver)
            if r is None:
                continue  # no such node in this search: the message can never be delivered
            s = index[sender]
            message = as_wire(message)
            mfp = message.fp
            out.append((s, r, message, mfp, mix(hash((s, r, mfp)))))
        return tuple(out)

    def _entries(self, timers: list) -> tuple:
        out = []
        for _, timer, lo, hi in timers:
            timer = as_wire(timer)
            out.append((timer, lo, hi, hash((timer.fp, lo, hi))))
        return tuple(out)

    def event_of(self, i: int, item: Any, sender: int) -> Event:
        if sender == _TIMER_KEY:
            return Event("timer", self.addresses[i], None, item)
        return Event("message", self.addresses[i], self.addresses[sender], item)


def _is_pacing(timer: WireValue) -> bool:
    return timer.text.startswith(_PACING_PREFIX)


_PACING_PREFIX = '["O","labkit.client:InterRequestTimer",'


class SearchState:
    """One state of the system under search. Immutable once built.

    A state is its nodes, its network, its set-aside messages and its timer
    queues, each an object shared with every state that has the same one
    (a step changes one node and adds to the network), so a state of its own
    costs little more than its fingerprint.
    """

    __slots__ = ("system", "nodes_part", "net", "dropped_net", "timers_part", "fp", "depth", "failure", "origin")

    # ---- construction -----------------------------------------------------------

    @classmethod
    def initial(
        cls,
        servers: Iterable[Any] = (),
        workers: Iterable[tuple[Any, Workload]] = (),
        clients: Iterable[Any] = (),
        others: Iterable[Any] = (),
        *,
        session: Any = None,
    ) -> "SearchState":
        """The start state: nodes added in order, each ``init()`` run (client
        workers send their first command here). Nodes are recipes of the
        submitted module (``t.solution.PaxosServer(...)``) or node objects of
        trusted code, sent to the workers by value."""
        entries: list[tuple[str, Any, Workload | None]] = (
            [("server", n, None) for n in servers]
            + [("worker", c, w) for c, w in workers]
            + [("client", n, None) for n in clients]
            + [("other", n, None) for n in others]
        )
        if not entries:
            raise SearchError("a search needs at least one node in its initial state")
        session = _session_of([node for _, node, _ in entries], session)
        starts = []
        for role, node, _ in entries:
            if isinstance(node, NodeRecipe):
                starts.append((role, node.address, node.qualified, node.args, None))
            elif isinstance(node, Node) and not isinstance(node, ClientWorker):
                session.add_module_of(type(node))
                try:
                    state = encode(node)
                except UnsupportedValueError as error:
                    raise SearchError(f"the initial state of {node.address} cannot be searched: {error}") from None
                starts.append((role, node.address, f"{type(node).__module__}:{type(node).__qualname__}", None,
                               state))
            else:
                raise SearchError(f"{node!r} is not a Node; every node of a search must subclass labkit.Node")
        system = cls._system([(role, address) for role, address, _, _, _ in starts], session)
        pool = system.pool
        outcomes = pool.start([(qualified, args, state, _observer(role, session))
                               for role, _, qualified, args, state in starts])
        nodes: list[Any] = []
        envs: list[tuple] = []
        queues: list[tuple] = []
        for (role, address, qualified, _, _), outcome, (_, _, workload) in zip(starts, outcomes, entries):
            if outcome.error is not None:
                error = outcome.error
                raise SearchError(f"{address}'s {'constructor' if error.get('phase') == 'constructor' else 'init()'} "
                                  f"raised {error.get('type')}: {error.get('message')}\n{error.get('traceback', '')}")
            assert outcome.state is not None
            snapshot = SnapshotNode(address, qualified, "client" if role in ("worker", "client") else role,
                                    _queries(role, session), outcome.state, outcome.obs,
                                    _observer(role, session), pool.ask)
            sends = [(address, to, m) for to, m in outcome.sends]
            timers = [(address, t, lo, hi) for t, lo, hi in outcome.timers]
            node: Any = snapshot
            if role == "worker":
                assert workload is not None
                worker = ClientWorker(snapshot, workload)
                if worker._has_command(1):
                    command = worker._command_and_result(1)[0]
                    sent = pool.call(snapshot, "send_command", (command,))
                    if sent.error is not None:
                        raise SearchError(f"{address}.send_command() raised {sent.error.get('type')}: "
                                          f"{sent.error.get('message')}")
                    worker.client = snapshot.with_state(sent.state or snapshot.value, sent.obs)
                    worker.sent = 1
                    worker._lk_invoked_at = None
                    sends += [(address, to, m) for to, m in sent.sends]
                    timers += [(address, t, lo, hi) for t, lo, hi in sent.timers]
                node = worker
            nodes.append(node)
            envs.extend(system._envelopes(sends))
            queues.append(system._entries(timers))
        return cls._assemble(system, nodes, envs, queues, [])

    @classmethod
    def restored(
        cls,
        nodes: Sequence[tuple[str, Any]],
        network: Sequence[tuple[Address, Address, Any]],
        dropped: Sequence[tuple[Address, Address, Any]],
        timers: Sequence[Sequence[tuple[Any, int, int]]],
        session: Any,
    ) -> "SearchState":
        """A state rebuilt from saved parts (``init()`` is not run again): nodes are
        snapshots and client workers, messages and timers encoded values."""
        system = cls._system([(role, node.address) for role, node in nodes], session)
        for _, node in nodes:
            snapshot = node.client if isinstance(node, ClientWorker) else node
            snapshot._asker = system.pool.ask
        sends = [(s, r, m) for s, r, m in network]
        set_aside = [(s, r, m) for s, r, m in dropped]
        queues = [system._entries([(None, t, lo, hi) for t, lo, hi in q]) for q in timers]
        return cls._assemble(system, [n for _, n in nodes], system._envelopes(sends), queues,
                             list(system._envelopes(set_aside)))

    @staticmethod
    def _system(nodes: list[tuple[str, Address]], session: Any) -> System:
        addresses = [a for _, a in nodes]
        duplicates = sorted({a.name for a in addresses if addresses.count(a) > 1})
        if duplicates:
            raise SearchError(f"two nodes share the address {duplicates[0]}")
        by_role = {role: [a for r, a in nodes if r == role] for role in ("server", "worker", "client")}
        return System(addresses, by_role["server"], by_role["worker"], by_role["client"], session)

    @classmethod
    def _assemble(cls, system: System, nodes: list[Any], envs: Sequence[tuple], queues: list[tuple],
                  dropped: list[tuple]) -> "SearchState":
        state = cls.__new__(cls)
        state.system = system
        state.depth = 0
        state.failure = None
        state.origin = ()
        node_list = tuple(nodes)
        state.nodes_part = _Nodes(node_list, tuple(n.fp for n in node_list))
        state.net = _Network(_unique(envs))
        state.dropped_net = _Network(_unique(dropped))
        queues = tuple(queues)
        state.timers_part = _Timers(queues, tuple(_queue_fp(q) for q in queues), tuple(_fireable(q) for q in queues))
        state.fp = state._fingerprint()
        system.root = state
        return state

    def memo(self, name: str) -> dict[Any, Any]:
        """A table called ``name`` that predicates may keep answers in, keyed by
        :meth:`~labkit.judge.nodes.NodeHandle.memo_key`; shared by every state of this search
        (its stages included) and by no other search."""
        table = self.system.memo.get(name)
        if table is None:
            table = self.system.memo[name] = {}
        return table

    def with_parts(self, parts: tuple, depth: int) -> "SearchState":
        """The state of this one's search (and stage) at ``depth`` with ``parts``: its nodes,
        network and timers, and its fingerprint (what sets it apart, a failure aside)."""
        new = SearchState.__new__(SearchState)
        new.system = self.system
        new.nodes_part, new.net, new.timers_part, new.fp = parts
        new.dropped_net = self.dropped_net
        new.depth = depth
        new.failure = None
        new.origin = self.origin
        return new

    def _fingerprint(self) -> int:
        fp = hash((self.nodes_part.fps, self.net.fp, self.dropped_net.fp, self.timers_part.fps))
        return hash((fp, _ERROR_TAG)) if self.failure is not None else fp

    def _derive(self) -> "SearchState":
        new = SearchState.__new__(SearchState)
        new.system = self.system
        new.nodes_part = self.nodes_part
        new.net = self.net
        new.dropped_net = self.dropped_net
        new.timers_part = self.timers_part
        new.depth = self.depth
        new.failure = None
        new.origin = self.origin
        return new

    # ---- the parts, as predicates, traces and pictures read them ----------------------

    @property
    def node_list(self) -> tuple:
        return self.nodes_part.list

    @property
    def node_fps(self) -> tuple[int, ...]:
        return self.nodes_part.fps

    @property
    def envs(self) -> tuple:
        """Envelopes ``(sender index, receiver index, message, message fp, envelope fp)``, in the order sent."""
        return self.net.envs

    @property
    def env_fps(self) -> frozenset[int]:
        return self.net.fingerprints()

    @property
    def dropped(self) -> tuple:
        """The set-aside envelopes."""
        return self.dropped_net.envs

    @property
    def dropped_fps(self) -> frozenset[int]:
        return self.dropped_net.fingerprints()

    @property
    def queues(self) -> tuple:
        """Each node's timer queue: entries ``(timer, min, max, entry fp)`` in the order set."""
        return self.timers_part.queues

    @property
    def fireable(self) -> tuple:
        return self.timers_part.fireable

    # ---- events -----------------------------------------------------------------------

    def events(self, can: tuple[tuple[bool, ...], ...], timers_on: tuple[bool, ...]) -> list[tuple]:
        """Internal events enabled here: ``(0, k)`` delivers envelope k, ``(1, i, pos)``
        fires the timer at ``pos`` in node i's queue."""
        if self.failure is not None:
            return []
        return self.message_events(can) + self.timer_events(timers_on)

    def message_events(self, can: tuple[tuple[bool, ...], ...], first: int = 0) -> list[tuple]:
        """The enabled deliveries of envelopes ``first`` and later. A successor's
        envelopes extend its parent's, so a walk can add only the new ones."""
        envs = self.net.envs
        return [(0, k) for k in range(first, len(envs)) if can[envs[k][0]][envs[k][1]]]

    def timer_events(self, timers_on: tuple[bool, ...]) -> list[tuple]:
        """The timers that may fire here (the queue rule; equal timers once), kept per node and
        recomputed only for the node whose queue a step changed."""
        out: list[tuple] = []
        for i, positions in enumerate(self.timers_part.fireable):
            if positions and timers_on[i]:
                out.extend([(1, i, pos) for pos in positions])
        return out

    def step_inputs(self, event: tuple) -> tuple[int, Any, int, WireValue, int, int]:
        """What the step of ``event`` depends on: ``(node index, node, its fingerprint, item,
        item fingerprint, sender index or -1 for a timer)`` (see :meth:`System.prepare`)."""
        nodes = self.nodes_part
        if event[0] == 0:
            s, r, message, mfp, _ = self.net.envelope(event[1])
            return r, nodes.list[r], nodes.fps[r], message, mfp, s
        _, i, pos = event
        timer, _, _, efp = self.timers_part.queues[i][pos]
        return i, nodes.list[i], nodes.fps[i], timer, efp, _TIMER_KEY

    def step_fp(self, event: tuple, inputs: tuple | None = None, t: _Transition | None = None) -> tuple[int, tuple]:
        """The successor's fingerprint, and what :meth:`build` needs to make it (``inputs``, the
        event's :meth:`step_inputs`, and ``t``, its transition, when the caller has them)."""
        i, node, fp, item, item_fp, sender = inputs or self.step_inputs(event)
        if t is None:
            t = self.system.transition(i, node, fp, item, item_fp, sender)
        timers = self.timers_part
        queue = timers.queues[i]
        if event[0] == 1:
            pos = event[2]
            queue = queue[:pos] + queue[pos + 1:]
        if t.timers:
            queue = queue + t.timers
        queue_fps = timers.fps
        if event[0] == 1 or t.timers:
            queue_fps = queue_fps[:i] + (_queue_fp(queue),) + queue_fps[i + 1:]
        net = self.net
        added: list[tuple] = []
        net_fp = net.fp
        if t.sends:
            has = net.has
            for env in t.sends:
                efp = env[4]
                if not has(efp) and all(e[4] != efp for e in added):
                    added.append(env)
                    net_fp += efp
            net_fp &= _MASK
        fps = self.nodes_part.fps
        node_fps = fps if fps[i] == t.node_fp else fps[:i] + (t.node_fp,) + fps[i + 1:]
        fp = hash((node_fps, net_fp, self.dropped_net.fp, queue_fps))
        if t.failure is not None:
            fp = hash((fp, _ERROR_TAG))
        return fp, (i, t, node_fps, added, net_fp, queue, queue_fps, fp)

    def build(self, parts: tuple) -> "SearchState":
        """The successor described by :meth:`step_fp`'s second value."""
        i, t, node_fps, added, net_fp, queue, queue_fps, fp = parts
        system = self.system
        new = SearchState.__new__(SearchState)
        new.system = system
        nodes = self.nodes_part
        if node_fps is nodes.fps and t.node is nodes.list[i]:
            new.nodes_part = nodes
        else:
            new.nodes_part = system.nodes_of(nodes.list[:i] + (t.node,) + nodes.list[i + 1:], node_fps)
        new.net = system.network_after(self.net, tuple(added), net_fp) if added else self.net
        timers = self.timers_part
        new.timers_part = timers if queue_fps is timers.fps else system.timers_of(timers, i, queue, queue_fps[i])
        new.dropped_net = self.dropped_net
        new.depth = self.depth + 1
        new.failure = t.failure
        new.origin = self.origin
        new.fp = fp
        return new

    def step(self, event: tuple) -> "SearchState":
        return self.build(self.step_fp(event)[1])

    def event_value(self, event: tuple) -> Event:
        """The event by value, as traces store it."""
        if event[0] == 0:
            s, r, message, _, _ = self.net.envelope(event[1])
            return Event("message", self.system.addresses[r], self.system.addresses[s], message)
        _, i, pos = event
        timer, lo, hi, _ = self.queues[i][pos]
        return Event("timer", self.system.addresses[i], None, timer, lo, hi)

    def find_event(self, event: Event) -> tuple | None:
        """The internal event matching ``event`` by value, or None if it does not apply here."""
        index = self.system.index
        if event.kind == "message":
            s, r = index.get(event.sender), index.get(event.node)  # type: ignore[arg-type]
            if s is None or r is None:
                return None
            efp = mix(hash((s, r, as_wire(event.item).fp)))
            if self.net.has(efp):
                for k, env in enumerate(self.envs):
                    if env[4] == efp:
                        return (0, k)
            return None
        if event.kind == "timer":
            i = index.get(event.node)  # type: ignore[arg-type]
            if i is None:
                return None
            efp = hash((as_wire(event.item).fp, event.min_millis, event.max_millis))
            bound = None
            for pos, entry in enumerate(self.queues[i]):
                if entry[3] == efp:
                    # The first equal entry, and only if no earlier timer must fire first.
                    return (1, i, pos) if bound is None or bound > entry[1] else None
                if bound is None or entry[2] < bound:
                    bound = entry[2]
        return None

    def apply(self, event: Event) -> "SearchState | None":
        """The state after ``event`` (by value), or None if it does not apply here."""
        if event.kind == "drop":
            return self.drop_pending_messages()
        if event.kind == "undrop":
            return self.undrop_messages(event.node, event.direction)  # type: ignore[arg-type]
        internal = self.find_event(event)
        if internal is None:
            return None
        nxt = self.step(internal)
        nxt.origin = self.origin + (event,)
        return nxt

    # ---- narrowing --------------------------------------------------------------------

    def drop_pending_messages(self) -> "SearchState":
        """Set every message in the network aside: only messages sent from now on can be delivered."""
        new = self._derive()
        dropped = self.dropped_net
        new.dropped_net = _Network(dropped.envs + tuple(e for e in self.net.envs if not dropped.has(e[4])))
        new.net = _NO_ENVELOPES
        new.origin = self.path() + (Event("drop", None),)
        new.depth = 0
        new.fp = new._fingerprint()
        return new

    def undrop_messages(self, address: Address, direction: str = "from") -> "SearchState":
        """Bring back the set-aside messages ``from`` or ``to`` ``address`` (``"all"`` for all)."""
        if direction not in ("from", "to", "all"):
            raise SearchError(f"direction must be 'from', 'to' or 'all', got {direction!r}")
        i = self.system.index.get(address) if address is not None else None
        if direction != "all" and i is None:
            raise SearchError(f"there is no node {address} in this search")
        side = 0 if direction == "from" else 1
        back = [e for e in self.dropped if direction == "all" or e[side] == i]
        keep = [e for e in self.dropped if e not in back]
        new = self._derive()
        new.net = _Network(self.net.envs + tuple(e for e in back if not self.net.has(e[4])))
        new.dropped_net = _Network(tuple(keep))
        new.origin = self.path() + (Event("undrop", address, direction=direction),)
        new.depth = 0
        new.fp = new._fingerprint()
        return new

    def undrop_messages_from(self, address: Address) -> "SearchState":
        return self.undrop_messages(address, "from")

    def undrop_messages_to(self, address: Address) -> "SearchState":
        return self.undrop_messages(address, "to")

    def path(self) -> tuple[Event, ...]:
        """Events from the system's first state to this one. Exact for states
        made by :meth:`apply`, by the narrowing methods and for the states
        searches return; a search's inner states only carry their stage's path."""
        return self.origin

    # ---- what predicates read ----------------------------------------------------------

    @property
    def addresses(self) -> tuple[Address, ...]:
        return self.system.addresses

    @property
    def nodes(self) -> dict[Address, Any]:
        """Address to node, as in a simulation."""
        return dict(zip(self.system.addresses, self.node_list))

    def node(self, address: Address) -> Any:
        i = self.system.index.get(address)
        if i is None:
            raise SearchError(f"there is no node {address} in this search")
        return self.node_list[i]

    @property
    def servers(self) -> list[SnapshotNode]:
        return [self.node_list[i] for i in self.system.server_indices]

    @property
    def workers(self) -> list[ClientWorker]:
        return [self.node_list[i] for i in self.system.worker_indices]  # type: ignore[misc]

    @property
    def clients(self) -> list[SnapshotNode]:
        return [self.node_list[i] for i in self.system.client_indices]

    @property
    def network(self) -> list[tuple[Address, Address, WireValue]]:
        """Deliverable-in-principle envelopes ``(sender, receiver, message)``."""
        a = self.system.addresses
        return [(a[e[0]], a[e[1]], e[2]) for e in self.envs]

    def timers(self, address: Address) -> list[tuple[WireValue, int, int]]:
        """The timer queue of a node, in the order set: ``(timer, min, max)``."""
        return [(e[0], e[1], e[2]) for e in self.queues[self.system.index[address]]]

    def __repr__(self) -> str:
        return f"SearchState(depth={self.depth}, {len(self.node_list)} nodes, {len(self.envs)} messages)"


def _session_of(nodes: list[Any], given: Any) -> Any:
    """The session of a search: the one given, the submission's, or a new one for trusted nodes."""
    from labkit.judge.session import Session

    sessions = {id(n.session): n.session for n in nodes if isinstance(n, NodeRecipe)}
    if given is not None:
        sessions.setdefault(id(given), given)
    if len(sessions) > 1:
        raise SearchError("every node of a search must come from the same submission")
    if sessions:
        return next(iter(sessions.values()))
    first = next((n for n in nodes if isinstance(n, Node)), None)
    return Session(label=type(first).__module__ if first is not None else "search")


def _observer(role: str, session: Any) -> str | None:
    if role in ("worker", "client"):
        return "client"
    if role == "server" and "server" in session.observers:
        return "server"
    return None


def _queries(role: str, session: Any) -> frozenset[str]:
    if role in ("worker", "client"):
        return frozenset({"has_result", "get_result"})
    return frozenset(session.queries) if role == "server" else frozenset()
