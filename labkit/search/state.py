"""Search states: nodes, the network as a set of envelopes, and timer queues.

The semantics follow DSLabs. The network is a set of ``(sender, receiver,
message)`` envelopes that are never removed on delivery, so one rule models
loss, duplication, delay and reordering, and sending an envelope already
present changes nothing. Each node has a timer queue; a timer may fire unless
a timer set earlier on the same node has a maximum length no greater than its
minimum length. Timer equality ignores the drawn length.

A step copies only the node that handles the event (copy-on-write). Handlers
are deterministic functions of the node's state and the event, so a step's
outcome is cached per (node fingerprint, event) and reused by every state in
which that node meets that event; a sample of cache hits is re-executed to
catch handlers that are not deterministic.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from labkit.client import ClientWorker, Workload
from labkit.node import Address, Effects, LabkitError, Message, Node, Timer, _active, copy_node, state_fields
from labkit.values import UnsupportedValueError, brief, copy_value, fingerprint, mix

__all__ = ["SearchState", "Event", "HandlerFailure", "SearchError", "NondeterminismError", "System"]

_MASK = (1 << 64) - 1
_TIMER_KEY = -1
_ERROR_TAG = 0x5EA12C4E
_CACHE_LIMIT = 400_000


class SearchError(LabkitError):
    """A search could not be set up or could not go on."""


class NondeterminismError(SearchError):
    """A handler gave two different outcomes for the same state and event."""


@dataclass(frozen=True)
class Event:
    """One step of a trace, by value: a message delivery or a timer firing.

    ``kind`` is ``"message"``, ``"timer"``, ``"drop"`` (all pending messages
    set aside) or ``"undrop"`` (those from or to ``node`` brought back).
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


class _Transition:
    """The cached outcome of one node handling one event."""

    __slots__ = ("node", "node_fp", "sends", "timers", "failure")

    def __init__(self, node: Node, node_fp: int, sends: tuple, timers: tuple, failure: HandlerFailure | None):
        self.node = node
        self.node_fp = node_fp
        self.sends = sends  # ((sender_idx, receiver_idx, message, message_fp, envelope_fp), ...)
        self.timers = timers  # ((timer, min, max, entry_fp), ...)
        self.failure = failure


class System:
    """What the states of one search share: the addresses, roles and the step cache."""

    def __init__(self, addresses: Sequence[Address], servers: Sequence[Address], workers: Sequence[Address],
                 clients: Sequence[Address], check_every: int = 64) -> None:
        self.addresses = tuple(addresses)
        self.index = {a: i for i, a in enumerate(self.addresses)}
        self.server_indices = tuple(self.index[a] for a in servers)
        self.worker_indices = tuple(self.index[a] for a in workers)
        self.client_indices = tuple(self.index[a] for a in clients)
        self.cache: dict[tuple[int, int, int], _Transition] = {}
        self.check_every = check_every  # re-execute one cache hit in this many (0: never, 1: always)
        self._hits = 0
        self.steps_executed = 0
        self.root: SearchState | None = None  # the state the system was built for

    def transition(self, i: int, node: Node, node_fp: int, event: Any, event_fp: int, sender: int) -> _Transition:
        key = (node_fp, sender, event_fp)
        cached = self.cache.get(key)
        if cached is not None:
            self._hits += 1
            if self.check_every and self._hits % self.check_every == 0:
                fresh = self._execute(i, node, event, sender)
                _compare(cached, fresh, self.addresses[i], node, event, sender, self)
            return cached
        result = self._execute(i, node, event, sender)
        if self.check_every == 1:  # full checks: every step is executed twice
            _compare(result, self._execute(i, node, event, sender), self.addresses[i], node, event, sender, self)
        if len(self.cache) >= _CACHE_LIMIT:
            self.cache.clear()
        self.cache[key] = result
        return result

    def _execute(self, i: int, node: Node, event: Any, sender: int) -> _Transition:
        self.steps_executed += 1
        new = copy_node(node)
        effects = Effects(None)  # type: ignore[arg-type]
        address = self.addresses[i]
        failure = None
        _active.append(effects)
        try:
            if sender == _TIMER_KEY:
                new.deliver_timer(copy_value(event))
            else:
                new.deliver_message(copy_value(event), self.addresses[sender])
        except Exception as error:
            failure = _failure(address, self.event_of(i, event, sender), error)
        finally:
            _active.pop()
        try:
            new_fp = fingerprint(new)
        except UnsupportedValueError as error:
            failure = failure or _failure(address, self.event_of(i, event, sender), error, show_trace=False)
            new_fp = hash((_ERROR_TAG, id(new)))
        return _Transition(new, new_fp, self._envelopes(effects.sends), self._entries(effects.timers), failure)

    def _envelopes(self, sends: list) -> tuple:
        out = []
        index = self.index
        for sender, receiver, message in sends:
            r = index.get(receiver)
            if r is None:
                continue  # no such node in this search: the message can never be delivered
            s = index[sender]
            mfp = fingerprint(message)
            out.append((s, r, message, mfp, mix(hash((s, r, mfp)))))
        return tuple(out)

    def _entries(self, timers: list) -> tuple:
        return tuple((timer, lo, hi, hash((fingerprint(timer), lo, hi))) for _, timer, lo, hi in timers)

    def event_of(self, i: int, item: Any, sender: int) -> Event:
        if sender == _TIMER_KEY:
            return Event("timer", self.addresses[i], None, item)
        return Event("message", self.addresses[i], self.addresses[sender], item)


_LABKIT_DIR = str(Path(__file__).resolve().parents[1])


def _failure(address: Address, event: Event, error: BaseException, show_trace: bool = True) -> HandlerFailure:
    """The failure, with a traceback of the student's frames only (all frames if none is theirs)."""
    trace = ""
    if show_trace:
        frames = traceback.extract_tb(error.__traceback__)
        theirs = [f for f in frames if not f.filename.startswith(_LABKIT_DIR)] or frames
        trace = "Traceback (most recent call last):\n" + "".join(traceback.format_list(theirs))
        trace += f"{type(error).__name__}: {error}"
    return HandlerFailure(address, event, type(error).__name__, str(error), trace)


def _compare(cached: _Transition, fresh: _Transition, address: Address, node: Node, event: Any, sender: int,
             system: System) -> None:
    same = (
        cached.node_fp == fresh.node_fp
        and tuple(e[4] for e in cached.sends) == tuple(e[4] for e in fresh.sends)
        and tuple(e[3] for e in cached.timers) == tuple(e[3] for e in fresh.timers)
    )
    if same:
        return
    handler = (
        f"{type(node).__name__}.on_{type(event).__name__}" if sender == _TIMER_KEY
        else f"{type(node).__name__}.handle_{type(event).__name__}"
    )
    what = "the messages it sent"
    if cached.node_fp != fresh.node_fp:
        a, b = state_fields(cached.node), state_fields(fresh.node)
        differing = sorted(k for k in set(a) | set(b) if k not in a or k not in b or fingerprint(a[k]) != fingerprint(b[k]))
        what = "attribute " + ", ".join(differing) if differing else "its state"
    elif tuple(e[3] for e in cached.timers) != tuple(e[3] for e in fresh.timers):
        what = "the timers it set"
    raise NondeterminismError(
        f"{handler} is not deterministic: handling {system.event_of(system.index[address], event, sender)} twice "
        f"from the same state of {address} gave different results ({what} differ). Handlers must not use "
        "random numbers, the clock, global variables, or the iteration order of sets of strings"
    )


class SearchState:
    """One state of the system under search. Immutable once built."""

    __slots__ = ("system", "node_list", "node_fps", "envs", "env_fps", "net_fp", "dropped", "dropped_fps",
                 "dropped_fp", "queues", "queue_fps", "fp", "depth", "failure", "origin")

    # ---- construction -----------------------------------------------------------

    @classmethod
    def initial(
        cls,
        servers: Iterable[Node] = (),
        workers: Iterable[tuple[Node, Workload]] = (),
        clients: Iterable[Node] = (),
        others: Iterable[Node] = (),
    ) -> "SearchState":
        """The start state: nodes added in order, each ``init()`` run (client
        workers send their first command here)."""
        nodes = (
            [("server", n) for n in servers]
            + [("worker", ClientWorker(c, w)) for c, w in workers]
            + [("client", n) for n in clients]
            + [("other", n) for n in others]
        )
        system = cls._system(nodes)
        envs: list[tuple] = []
        queues: list[tuple] = []
        for _, node in nodes:
            effects = Effects(None)  # type: ignore[arg-type]
            _active.append(effects)
            try:
                node.init()
            except Exception as error:
                raise SearchError(f"{node.address}.init() raised {type(error).__name__}: {error}") from error
            finally:
                _active.pop()
            envs.extend(system._envelopes(effects.sends))
            queues.append(system._entries(effects.timers))
        return cls._assemble(system, [n for _, n in nodes], envs, queues, [])

    @classmethod
    def restored(
        cls,
        nodes: Sequence[tuple[str, Node]],
        network: Sequence[tuple[Address, Address, Message]],
        dropped: Sequence[tuple[Address, Address, Message]],
        timers: Sequence[Sequence[tuple[Timer, int, int]]],
    ) -> "SearchState":
        """A state rebuilt from saved parts (``init()`` is not run again)."""
        system = cls._system(list(nodes))
        sends = [(s, r, m) for s, r, m in network]
        set_aside = [(s, r, m) for s, r, m in dropped]
        queues = [system._entries([(None, t, lo, hi) for t, lo, hi in q]) for q in timers]
        return cls._assemble(system, [n for _, n in nodes], system._envelopes(sends), queues,
                             list(system._envelopes(set_aside)))

    @staticmethod
    def _system(nodes: list[tuple[str, Node]]) -> System:
        if not nodes:
            raise SearchError("a search needs at least one node in its initial state")
        for _, node in nodes:
            if not isinstance(node, Node):
                raise SearchError(f"{node!r} is not a Node; every node of a search must subclass labkit.Node")
        addresses = [n.address for _, n in nodes]
        duplicates = sorted({a.name for a in addresses if addresses.count(a) > 1})
        if duplicates:
            raise SearchError(f"two nodes share the address {duplicates[0]}")
        by_role = {role: [n.address for r, n in nodes if r == role] for role in ("server", "worker", "client")}
        return System(addresses, by_role["server"], by_role["worker"], by_role["client"])

    @classmethod
    def _assemble(cls, system: System, nodes: list[Node], envs: Sequence[tuple], queues: list[tuple],
                  dropped: list[tuple]) -> "SearchState":
        state = cls.__new__(cls)
        state.system = system
        state.depth = 0
        state.failure = None
        state.origin = ()
        state.node_list = tuple(nodes)
        try:
            state.node_fps = tuple(fingerprint(n) for n in nodes)
        except UnsupportedValueError as error:
            raise SearchError(f"the initial state cannot be explored: {error}") from None
        unique: dict[int, tuple] = {}
        for env in envs:
            unique.setdefault(env[4], env)
        state.envs = tuple(unique.values())
        state.env_fps = frozenset(unique)
        state.net_fp = sum(unique) & _MASK
        state.dropped = tuple({e[4]: e for e in dropped}.values())
        state.dropped_fps = frozenset(e[4] for e in state.dropped)
        state.dropped_fp = sum(state.dropped_fps) & _MASK
        state.queues = tuple(queues)
        state.queue_fps = tuple(hash(tuple(e[3] for e in q)) for q in queues)
        state.fp = state._fingerprint()
        system.root = state
        return state

    def _fingerprint(self) -> int:
        fp = hash((self.node_fps, self.net_fp, self.dropped_fp, self.queue_fps))
        return hash((fp, _ERROR_TAG)) if self.failure is not None else fp

    def _derive(self) -> "SearchState":
        new = SearchState.__new__(SearchState)
        new.system = self.system
        new.node_list = self.node_list
        new.node_fps = self.node_fps
        new.envs = self.envs
        new.env_fps = self.env_fps
        new.net_fp = self.net_fp
        new.dropped = self.dropped
        new.dropped_fps = self.dropped_fps
        new.dropped_fp = self.dropped_fp
        new.queues = self.queues
        new.queue_fps = self.queue_fps
        new.depth = self.depth
        new.failure = None
        new.origin = self.origin
        return new

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
        envs = self.envs
        return [(0, k) for k in range(first, len(envs)) if can[envs[k][0]][envs[k][1]]]

    def timer_events(self, timers_on: tuple[bool, ...]) -> list[tuple]:
        """The timers that may fire here (the queue rule; equal timers once)."""
        out: list[tuple] = []
        for i, queue in enumerate(self.queues):
            if not queue or not timers_on[i]:
                continue
            bound = None
            seen: set[int] = set()
            for pos, entry in enumerate(queue):
                if (bound is None or bound > entry[1]) and entry[3] not in seen:
                    out.append((1, i, pos))
                seen.add(entry[3])
                if bound is None or entry[2] < bound:
                    bound = entry[2]
        return out

    def step_fp(self, event: tuple) -> tuple[int, tuple]:
        """The successor's fingerprint, and what :meth:`build` needs to make it."""
        system = self.system
        if event[0] == 0:
            s, r, message, mfp, _ = self.envs[event[1]]
            i = r
            t = system.transition(i, self.node_list[i], self.node_fps[i], message, mfp, s)
            queue = self.queues[i]
        else:
            _, i, pos = event
            queue = self.queues[i]
            timer, lo, hi, efp = queue[pos]
            t = system.transition(i, self.node_list[i], self.node_fps[i], timer, efp, _TIMER_KEY)
            queue = queue[:pos] + queue[pos + 1:]
        if t.timers:
            queue = queue + t.timers
        queue_fp = hash(tuple(e[3] for e in queue)) if (event[0] == 1 or t.timers) else self.queue_fps[i]
        new_envs: list[tuple] = []
        net_fp = self.net_fp
        if t.sends:
            env_fps = self.env_fps
            for env in t.sends:
                efp = env[4]
                if efp not in env_fps and all(e[4] != efp for e in new_envs):
                    new_envs.append(env)
                    net_fp += efp
            net_fp &= _MASK
        node_fps = self.node_fps[:i] + (t.node_fp,) + self.node_fps[i + 1:]
        queue_fps = self.queue_fps[:i] + (queue_fp,) + self.queue_fps[i + 1:]
        fp = hash((node_fps, net_fp, self.dropped_fp, queue_fps))
        if t.failure is not None:
            fp = hash((fp, _ERROR_TAG))
        return fp, (i, t, node_fps, new_envs, net_fp, queue, queue_fps, fp)

    def build(self, parts: tuple) -> "SearchState":
        """The successor described by :meth:`step_fp`'s second value."""
        i, t, node_fps, new_envs, net_fp, queue, queue_fps, fp = parts
        new = self._derive()
        new.node_list = self.node_list[:i] + (t.node,) + self.node_list[i + 1:]
        new.node_fps = node_fps
        if new_envs:
            new.envs = self.envs + tuple(new_envs)
            new.env_fps = self.env_fps | {e[4] for e in new_envs}
            new.net_fp = net_fp
        new.queues = self.queues[:i] + (queue,) + self.queues[i + 1:]
        new.queue_fps = queue_fps
        new.depth = self.depth + 1
        new.failure = t.failure
        new.fp = fp
        return new

    def step(self, event: tuple) -> "SearchState":
        return self.build(self.step_fp(event)[1])

    def event_value(self, event: tuple) -> Event:
        """The event by value, as traces store it."""
        if event[0] == 0:
            s, r, message, _, _ = self.envs[event[1]]
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
            efp = mix(hash((s, r, fingerprint(event.item))))
            if efp in self.env_fps:
                for k, env in enumerate(self.envs):
                    if env[4] == efp:
                        return (0, k)
            return None
        if event.kind == "timer":
            i = index.get(event.node)  # type: ignore[arg-type]
            if i is None:
                return None
            efp = hash((fingerprint(event.item), event.min_millis, event.max_millis))
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
        new.dropped = self.dropped + tuple(e for e in self.envs if e[4] not in self.dropped_fps)
        new.dropped_fps = frozenset(e[4] for e in new.dropped)
        new.dropped_fp = sum(new.dropped_fps) & _MASK
        new.envs, new.env_fps, new.net_fp = (), frozenset(), 0
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
        added = [e for e in back if e[4] not in self.env_fps]
        new.envs = self.envs + tuple(added)
        new.env_fps = self.env_fps | {e[4] for e in added}
        new.net_fp = (self.net_fp + sum(e[4] for e in added)) & _MASK
        new.dropped = tuple(keep)
        new.dropped_fps = frozenset(e[4] for e in keep)
        new.dropped_fp = sum(new.dropped_fps) & _MASK
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
    def nodes(self) -> dict[Address, Node]:
        """Address to node, as in a simulation."""
        return dict(zip(self.system.addresses, self.node_list))

    def node(self, address: Address) -> Node:
        i = self.system.index.get(address)
        if i is None:
            raise SearchError(f"there is no node {address} in this search")
        return self.node_list[i]

    @property
    def servers(self) -> list[Node]:
        return [self.node_list[i] for i in self.system.server_indices]

    @property
    def workers(self) -> list[ClientWorker]:
        return [self.node_list[i] for i in self.system.worker_indices]  # type: ignore[misc]

    @property
    def clients(self) -> list[Node]:
        return [self.node_list[i] for i in self.system.client_indices]

    @property
    def network(self) -> list[tuple[Address, Address, Message]]:
        """Deliverable-in-principle envelopes ``(sender, receiver, message)``."""
        a = self.system.addresses
        return [(a[e[0]], a[e[1]], e[2]) for e in self.envs]

    def timers(self, address: Address) -> list[tuple[Timer, int, int]]:
        """The timer queue of a node, in the order set: ``(timer, min, max)``."""
        return [(e[0], e[1], e[2]) for e in self.queues[self.system.index[address]]]

    def __repr__(self) -> str:
        return f"SearchState(depth={self.depth}, {len(self.node_list)} nodes, {len(self.envs)} messages)"
