"""A deterministic discrete-event simulation of nodes on an unreliable network.

Single-threaded, in virtual milliseconds: the same seed and the same code
give the same run, event for event, in every process. Every random choice
(a message's latency, whether it is lost or duplicated, a timer's length) is
drawn from the seed and the number of the queue entry it concerns, so it does
not depend on the order in which other events were handled. Loss and
connectivity are decided when a message is due for delivery (as in DSLabs),
latency draws reorder messages, duplication sends a second, independently
delayed copy.

The simulation is the judge's: the nodes it runs live in a worker process of
its session (:mod:`labkit.judge`), which handles each event and says what the
node did. Events due at the same millisecond on nodes of the run go to the
worker in one request when nothing between them could see the difference.
A share of events, chosen by the seed, is replayed from the node's encoded
state in a second worker; a different outcome fails the run.
"""

from __future__ import annotations

import heapq
import traceback
from collections import Counter
from typing import Any, Callable

from labkit.client import ClientWorker, HistoryRecord, NoResultYet, Workload
from labkit.judge.nodes import HostedNode, NodeRecipe, RemoteError
from labkit.node import Address, Effects, LabkitError, Node, _active
from labkit.sim.log import (
    DELIVER,
    DROP,
    DUPLICATE,
    ERROR,
    INVOKE,
    RESPONSE,
    SEND,
    SETTING,
    TIMER_FIRE,
    TIMER_OFF,
    TIMER_SET,
    EventLog,
)
from labkit.sim.settings import RunSettings
from labkit.values import brief, mix
from labkit.wire import type_name
from labkit.wire import encode

__all__ = ["Simulation", "HandlerError", "RunawayError", "SimulationError", "REPLAY_SHARE"]

REPLAY_SHARE = 256
FIRST_REPLAYED = 16  # every node's first events are all replayed: hidden state shows early
"""One event in this many (chosen by the seed) is replayed from its encoded state in a second worker."""
MAX_GROUP = 256  # events sent to the worker in one request

_NO_GROUPS, _GROUPS = 0, 1
_LOSS, _LATENCY, _DUPLICATE, _LENGTH = 1, 2, 3, 4

_MESSAGE = 0
_TIMER = 1


class SimulationError(LabkitError):
    """The simulation could not go on."""


class HandlerError(SimulationError):
    """A node's handler raised an exception."""

    def __init__(self, node: Address, event: str, time: int, error: BaseException) -> None:
        self.node = node
        self.event = event
        self.time = time
        self.error = error
        self.traceback = getattr(error, "traceback_text", "") or "".join(
            traceback.format_exception(type(error), error, error.__traceback__))
        super().__init__(
            f"{node} raised {type(error).__name__}: {error}\n  while handling {event} at t={time} ms"
        )


class RunawayError(SimulationError):
    """The run handled more events than allowed (a timer storm or a message loop)."""


def _describe_item(item: Any) -> str:
    return brief(item)


def _deliver(node: Any, event: Any, sender: Address | None, sample: bool) -> None:
    kind = "message" if sender is not None else "timer"
    if isinstance(node, HostedNode):
        node.step(kind, sender, event, None, sample)
    elif isinstance(node, ClientWorker):
        node.deliver(kind, sender, event, sample)
    elif sender is not None:
        node.deliver_message(event, sender)
    else:
        node.deliver_timer(event)


class Simulation:
    """Nodes, a network and a clock.

    Add nodes with :meth:`add_server`, :meth:`add_client` (a raw client the
    test drives) or :meth:`add_worker` (a client driven by a workload), then
    call :meth:`run_for`, :meth:`run_until` or :meth:`run_until_done`.
    A node is given as a recipe of the submitted module
    (``t.solution.PaxosServer(address, ...)``), made in the worker, or as a
    node object of trusted code (a framework test's), sent there by value.
    Settings (``sim.settings``) may change between runs; every change is
    logged.
    """

    def __init__(
        self,
        seed: int = 0,
        settings: RunSettings | None = None,
        *,
        max_events: int = 5_000_000,
        max_pending: int = 200_000,
        session: Any = None,
        replay_share: int = REPLAY_SHARE,
    ) -> None:
        self.seed = seed
        self.session = session
        self._own_session = False
        self.replay_share = replay_share
        self.settings = settings if settings is not None else RunSettings()
        self.settings.on_change(self._log_setting)
        self.now = 0
        self.max_events = max_events
        self.max_pending = max_pending
        self.events_handled = 0
        self._replayed: dict[Address, int] = {}
        self.log = EventLog()
        self.nodes: dict[Address, Any] = {}
        self._servers: list[Address] = []
        self._raw_clients: list[Address] = []
        self._workers: dict[Address, ClientWorker] = {}
        self._raw_pending: dict[Address, tuple[Any, int]] = {}
        self._raw_history: dict[Address, list[HistoryRecord]] = {}
        self._queue: list[tuple] = []
        self._seq = 0
        self._watched: set[Address] = set()  # clients whose invokes and responses are logged

    # ---- building the system ------------------------------------------------

    def add_server(self, node: NodeRecipe | Node) -> HostedNode:
        """Add a server node and run its ``init()``."""
        handle = self._add(self._hosted(node, "server"))
        self._servers.append(handle.address)
        return handle

    def add_client(self, node: NodeRecipe | Node) -> HostedNode:
        """Add a raw client that the test drives with :meth:`send_command`."""
        handle = self._hosted(node, "client")
        self._raw_history[handle.address] = []
        self._watched.add(handle.address)
        self._add(handle)
        self._raw_clients.append(handle.address)
        return handle

    def add_worker(self, client: NodeRecipe | Node, workload: Workload, record_results: bool = True) -> ClientWorker:
        """Add ``client`` driven by a closed-loop worker running ``workload``."""
        worker = ClientWorker(self._hosted(client, "client"), workload, record_results=record_results, seed=self.seed)
        self._workers[worker.address] = worker
        self._watched.add(worker.address)
        self._add(worker)
        return worker

    def add_node(self, node: NodeRecipe | Node) -> HostedNode:
        """Add any other node (neither a server nor a client)."""
        return self._add(self._hosted(node, "other"))

    def _hosted(self, node: NodeRecipe | Node, role: str) -> HostedNode:
        """The handle of ``node`` in this run's worker (the node is made there when added)."""
        from labkit.judge.session import Session

        if isinstance(node, NodeRecipe):
            if self.session is None:
                self.session = node.session
            elif node.session is not self.session:
                raise SimulationError("every node of a run must come from the same submission")
            start: NodeRecipe | str = node
            address, qualified = node.address, node.qualified
        elif isinstance(node, Node) and not isinstance(node, ClientWorker):
            if self.session is None:
                self.session, self._own_session = Session(label=type(node).__module__), True
            self.session.add_module_of(type(node))
            start, address = encode(node), node.address
            qualified = f"{type(node).__module__}:{type(node).__qualname__}"
        else:
            raise SimulationError(f"only nodes can join a simulation, got {node!r}")
        if address in self.nodes:
            raise SimulationError(f"there is already a node at {address}")
        session = self.session
        observer = "client" if role == "client" else ("server" if role == "server" and "server" in session.observers else None)
        key = f"{id(self)}:{address.name}"
        queries = ("has_result", "get_result") if role == "client" else session.queries
        return HostedNode(session, key, start, address, qualified, role, observer if role == "client" else None, queries,
                          observer)

    def remove_node(self, address: Address) -> None:
        """Take a node out; messages to it are dropped from now on."""
        if address not in self.nodes:
            raise SimulationError(f"there is no node {address} to remove")
        del self.nodes[address]
        for group in (self._servers, self._raw_clients):
            if address in group:
                group.remove(address)
        self._workers.pop(address, None)
        self._watched.discard(address)

    def _add(self, node: Any) -> Any:
        if node.address in self.nodes:
            raise SimulationError(f"there is already a node at {node.address}")
        self.nodes[node.address] = node
        self._call(node, "init()", node.init)
        return node

    # ---- what predicates and tests read -------------------------------------

    @property
    def servers(self) -> list[HostedNode]:
        return [self.nodes[a] for a in self._servers]

    @property
    def workers(self) -> list[ClientWorker]:
        return list(self._workers.values())

    @property
    def clients(self) -> list[HostedNode]:
        """The raw clients (those driven directly by the test)."""
        return [self.nodes[a] for a in self._raw_clients]

    def node(self, address: Address) -> Any:
        try:
            return self.nodes[address]
        except KeyError:
            raise SimulationError(f"there is no node {address}") from None

    def histories(self) -> list[HistoryRecord]:
        """Every client operation of the run with virtual invoke and response times."""
        records: list[HistoryRecord] = []
        for worker in self._workers.values():
            records.extend(worker.history)
        for address in self._raw_clients:
            records.extend(self._raw_history.get(address, []))
            pending = self._raw_pending.get(address)
            if pending is not None:
                records.append(HistoryRecord(address, pending[0], None, pending[1], None))
        return records

    def last_operation(self, address: Address) -> HistoryRecord | None:
        """The latest operation of the client at ``address`` (answered or still waiting), or None."""
        found = [r for r in self.histories() if r.client == address]
        return max(found, key=lambda r: r.invoke or 0) if found else None

    def max_wait(self) -> tuple[Address | None, int]:
        """The client that waited longest for one result, and how long (ms)."""
        best: tuple[Address | None, int] = (None, 0)
        for worker in self._workers.values():
            wait = worker.max_wait(self.now)
            if wait > best[1]:
                best = (worker.address, wait)
        return best

    # ---- driving raw clients ----------------------------------------------------

    def send_command(self, address: Address, command: Any) -> None:
        """Call ``send_command(command)`` on the raw client at ``address``, now."""
        client = self.node(address)
        if address not in self._raw_history:
            raise SimulationError(f"{address} is not a raw client; add it with add_client()")
        self._raw_pending.pop(address, None)
        self.log.append(self.now, INVOKE, address, None, command, None)
        self._call(client, f"send_command({_describe_item(command)})", lambda: client.send_command(command))
        if not client.has_result():  # type: ignore[attr-defined]
            self._raw_pending[address] = (command, self.now)

    def has_result(self, address: Address) -> bool:
        return bool(self.node(address).has_result())  # type: ignore[attr-defined]

    def result(self, address: Address) -> Any:
        """The raw client's ``get_result()``; raises NoResultYet if it has none."""
        client = self.node(address)
        if not client.has_result():  # type: ignore[attr-defined]
            raise NoResultYet(f"{address} has no result yet")
        return client.get_result()  # type: ignore[attr-defined]

    def resume_clients(self) -> None:
        """Let idle workers send the next command (after ``add_commands``)."""
        for worker in self._workers.values():
            self._call(worker, "resume", worker.resume)

    # ---- running -------------------------------------------------------------------

    def run_for(self, millis: int) -> None:
        """Advance virtual time by ``millis``, handling every event due until then."""
        end = self.now + millis
        self._run(lambda: False, end, _GROUPS)
        self.now = max(self.now, end)

    def run_until(self, condition: Callable[["Simulation"], Any], max_millis: int = 60_000) -> bool:
        """Run until ``condition(sim)`` holds (checked after every event) or
        ``max_millis`` of virtual time pass. Returns whether it held."""
        if condition(self):
            return True
        return self._run(lambda: bool(condition(self)), self.now + max_millis, _NO_GROUPS)

    def run_until_done(self, max_millis: int = 60_000) -> bool:
        """Run until every client worker has finished its workload."""
        workers = list(self._workers.values())
        if all(w.done for w in workers):
            return True
        # Only a client worker's own events change whether it is done, and those are never grouped.
        return self._run(lambda: all(w.done for w in workers), self.now + max_millis, _GROUPS)

    def _run(self, stop: Callable[[], bool], end_time: int, grouping: int) -> bool:
        queue = self._queue
        pop = heapq.heappop
        while queue and queue[0][0] <= end_time:
            first = pop(queue)
            if grouping and self._groupable(first) and queue and queue[0][0] == first[0] and self._groupable(queue[0]):
                group = [first]
                while queue and queue[0][0] == first[0] and len(group) < MAX_GROUP and self._groupable(queue[0]):
                    group.append(pop(queue))
                self._step_group(group)
            else:
                self._step(first)
            if stop():
                return True
            if self.events_handled >= self.max_events:
                raise RunawayError(self._runaway_text(f"handled {self.events_handled:,} events"))
            if len(queue) > self.max_pending:
                raise RunawayError(self._runaway_text(f"had {len(queue):,} messages and timers pending at once"))
        return False

    def _groupable(self, entry: tuple) -> bool:
        """Events for nodes of the run's worker can share a request (a client worker's cannot:
        what it asks its client to do next depends on the answer before)."""
        return type(self.nodes.get(entry[4])) is HostedNode

    def _draw(self, key: int, purpose: int) -> int:
        """A 64-bit number fixed by the seed, a queue entry's number and what it is for."""
        return mix(hash((self.seed, key, purpose)))

    def _chance(self, key: int, purpose: int) -> float:
        return self._draw(key, purpose) / 18446744073709551616.0

    def _between(self, low: int, high: int, key: int, purpose: int) -> int:
        return low if low == high else low + self._draw(key, purpose) % (high - low + 1)

    def _runaway_text(self, what: str) -> str:
        return (
            f"the run {what} and reached only t={self.now} ms of virtual time; {self.busiest_events()}. "
            "A timer that is set more than once per firing, or a message answered by more than one "
            "message in a loop, makes the number of events explode"
        )

    def busiest_events(self) -> str:
        """The most frequent recent events and the pending timers, by type: what grew."""
        recent = Counter((e.node, type_name(e.item)) for e in self.log.of_kind(DELIVER, TIMER_FIRE)[-100_000:])
        top = ", ".join(f"{kind} at {node} ({n:,})" for (node, kind), n in recent.most_common(3)) or "none"
        pending = Counter(type_name(entry[5]) for entry in self._queue if entry[2] == _TIMER)
        timers = ", ".join(f"{kind} ({n:,})" for kind, n in pending.most_common(3)) or "none"
        return f"the most frequent recent events were {top}; the timers pending are {timers}"

    def _step(self, entry: tuple) -> None:
        node = self._arrive(entry)
        if node is not None:
            self._handle(node, entry[5], entry[3] if entry[2] == _MESSAGE else None)

    def _arrive(self, entry: tuple) -> Any:
        """Log the entry's arrival (delivery, firing or drop); the node to handle it, or None."""
        time, seq, kind, sender, receiver, item, mid = entry
        self.now = time
        node = self.nodes.get(receiver)
        log = self.log
        if kind == _MESSAGE:
            if node is None:
                log.append(time, DROP, receiver, sender, item, "unknown node")
                return None
            if sender != receiver:
                can_deliver, rate = self.settings.decision(sender, receiver)
                if not can_deliver:
                    log.append(time, DROP, receiver, sender, item, "partition")
                    return None
                if rate < 1.0 and self._chance(seq, _LOSS) >= rate:
                    log.append(time, DROP, receiver, sender, item, "loss")
                    return None
            log.append(time, DELIVER, receiver, sender, item, mid)
            return node
        if node is None:
            return None
        if not self.settings.timers_active(receiver):
            log.append(time, TIMER_OFF, receiver, None, item, None)
            return None
        log.append(time, TIMER_FIRE, receiver, None, item, None)
        return node

    def _step_group(self, group: list[tuple]) -> None:
        """Events due at the same millisecond at nodes of the run's worker, in one request.

        Arrivals are decided first (they do not depend on what the others do),
        then the worker handles the delivered ones in order; their effects are
        applied in that order, so the run is the one of one event at a time."""
        now = self.now
        decided = []
        log_length = len(self.log)
        for entry in group:
            node = self._arrive(entry)
            if node is not None:
                decided.append((entry, node))
        del self.log._events[log_length:]  # arrivals are logged again below, each before its effects
        self.now = now
        counter = self.events_handled
        items = []
        for entry, node in decided:
            counter += 1
            items.append((node, "message" if entry[2] == _MESSAGE else "timer",
                          entry[3] if entry[2] == _MESSAGE else None, entry[5], self._sampled(counter, node.address)))
        outcomes = iter(self.session.events(items) if items else [])
        for entry in group:
            node = self._arrive(entry)
            if node is None:
                continue
            outcome = next(outcomes)
            sender = entry[3] if entry[2] == _MESSAGE else None
            self.events_handled += 1
            self._call(node, lambda: self._describe_event(node.address, entry[5], sender),
                       lambda: node.absorb(outcome))
            if self.events_handled >= self.max_events:
                raise RunawayError(self._runaway_text(f"handled {self.events_handled:,} events"))

    def _sampled(self, count: int, address: Address) -> bool:
        """Whether the ``count``-th event (at ``address``) is replayed in the checker: each node's
        first FIRST_REPLAYED events, then one in ``replay_share``."""
        if self.replay_share <= 0:
            return False
        if self.replay_share == 1 or mix(hash((self.seed, count))) % self.replay_share == 0:
            return True
        done = self._replayed.get(address, 0)
        if done < FIRST_REPLAYED:
            self._replayed[address] = done + 1
            return True
        return False

    def _handle(self, node: Any, event: Any, sender: Address | None) -> None:
        """Deliver one message (``sender`` given) or timer to ``node``, then apply its effects."""
        self.events_handled += 1
        sample = self._sampled(self.events_handled, node.address)
        self._call(node, lambda: self._describe_event(node.address, event, sender),
                   lambda: _deliver(node, event, sender, sample))

    def _call(self, node: Any, what: str | Callable[[], str], action: Callable[[], Any]) -> None:
        """Run ``action`` (an event, ``init()``, a client call) as an event of ``node``."""
        effects = Effects(self.now)
        address = node.address
        watched = address in self._watched
        if watched:
            before = self._client_progress(address)
        _active.append(effects)
        try:
            action()
        except LabkitError:
            raise
        except Exception as error:
            self._apply(effects)
            self._fail(address, what() if callable(what) else what, error)
        finally:
            _active.pop()
        if watched:
            self._record_client_progress(address, before)
        self._apply(effects)

    def _describe_event(self, address: Address, event: Any, sender: Address | None) -> str:
        if sender is not None:
            return f"{type_name(event)} from {sender} ({_describe_item(event)})"
        return f"timer {type_name(event)} ({_describe_item(event)})"

    def _fail(self, address: Address, what: str, error: Exception) -> None:
        self.log.append(self.now, ERROR, address, None, None, f"{type(error).__name__}: {error}")
        raise HandlerError(address, what, self.now, error) from None

    def _client_progress(self, address: Address) -> tuple[int, int]:
        worker = self._workers.get(address)
        if worker is not None:
            return worker.sent, len(worker.results)
        return 0, 0

    def _record_client_progress(self, address: Address, before: tuple[int, int]) -> None:
        """Log invokes and responses of the client at ``address`` after an event."""
        worker = self._workers.get(address)
        if worker is not None:
            sent_before, results_before = before
            if len(worker.results) != results_before:
                record = worker.completed[-1]
                self.log.append(self.now, RESPONSE, address, None, record.result, None)
            if worker.sent != sent_before:
                self.log.append(self.now, INVOKE, address, None, worker.history[-1].command, None)
            return
        pending = self._raw_pending.get(address)
        client = self.nodes.get(address)
        if pending is not None and client is not None and client.has_result():  # type: ignore[attr-defined]
            result = client.get_result()  # type: ignore[attr-defined]
            self._raw_history[address].append(HistoryRecord(address, pending[0], result, pending[1], self.now))
            del self._raw_pending[address]
            self.log.append(self.now, RESPONSE, address, None, result, None)

    def _apply(self, effects: Effects) -> None:
        now = self.now
        queue = self._queue
        log = self.log
        if effects.sends:
            low, high = self.settings.latency
            duplication = self.settings.duplication
            for sender, receiver, message in effects.sends:
                mid = len(log)
                log.append(now, SEND, sender, receiver, message, mid)
                self._seq += 1
                seq = self._seq
                if sender == receiver:
                    heapq.heappush(queue, (now, seq, _MESSAGE, sender, receiver, message, mid))
                    continue
                delay = self._between(low, high, seq, _LATENCY)
                heapq.heappush(queue, (now + delay, seq, _MESSAGE, sender, receiver, message, mid))
                if duplication > 0.0 and self._chance(seq, _DUPLICATE) < duplication:
                    self._seq += 1
                    delay = self._between(low, high, self._seq, _LATENCY)
                    log.append(now, DUPLICATE, sender, receiver, message, mid)
                    heapq.heappush(queue, (now + delay, self._seq, _MESSAGE, sender, receiver, message, mid))
        for address, timer, low, high in effects.timers:
            self._seq += 1
            length = self._between(low, high, self._seq, _LENGTH)
            log.append(now, TIMER_SET, address, None, timer, length)
            heapq.heappush(queue, (now + length, self._seq, _TIMER, None, address, timer, None))

    def _log_setting(self, description: str) -> None:
        self.log.append(self.now, SETTING, None, None, None, description)

    # ---- summaries --------------------------------------------------------------

    def messages_to_servers(self) -> int:
        """Messages sent to servers so far (as DSLabs counts them: enqueued, not delivered)."""
        servers = set(self._servers)
        return sum(1 for e in self.log.of_kind(SEND) if e.peer in servers)

    def message_counts(self) -> dict[str, Counter[Any]]:
        """Counters of messages: ``sent_to`` and ``delivered_to`` per node,
        ``sent_by_type`` and ``delivered_by_type`` per message class."""
        counts: dict[str, Counter[Any]] = {
            "sent_to": Counter(), "delivered_to": Counter(), "sent_by_type": Counter(), "delivered_by_type": Counter()
        }
        for e in self.log.of_kind(SEND, DUPLICATE, DELIVER):
            if e.kind == DELIVER:
                counts["delivered_to"][e.node] += 1
                counts["delivered_by_type"][type_name(e.item)] += 1
            elif e.kind == SEND:
                counts["sent_to"][e.peer] += 1
                counts["sent_by_type"][type_name(e.item)] += 1
        return counts

    def state_size(self) -> int:
        """Characters of encoded state the servers and clients keep (for a client worker, its client only)."""
        handles = list(self.servers) + [w.client for w in self.workers] + list(self.clients)
        return sum(h.state_size for h in handles)

    def close(self) -> None:
        """Stop the run's worker if the run started it (runs made by a test share the test's)."""
        if self._own_session and self.session is not None:
            self.session.close()

    def describe(self) -> str:
        counts = self.message_counts()
        return (
            f"seed {self.seed}, t={self.now} ms, {self.events_handled:,} events, "
            f"{sum(counts['sent_to'].values()):,} messages sent, {sum(counts['delivered_to'].values()):,} delivered"
        )
