"""A deterministic discrete-event simulation of nodes on an unreliable network.

Single-threaded, in virtual milliseconds, with one seeded random number
generator: the same seed and the same code give the same run, event for event,
in every process. Loss and connectivity are decided when a message is due for
delivery (as in DSLabs), latency draws reorder messages, duplication sends a
second, independently delayed copy.
"""

from __future__ import annotations

import heapq
import random
import traceback
from collections import Counter
from typing import Any, Callable

from labkit.client import ClientWorker, HistoryRecord, NoResultYet, Workload
from labkit.deadline import DeadlineExceeded, check_deadlines, deadline
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
from labkit.values import brief, copy_value

__all__ = ["Simulation", "HandlerError", "RunawayError", "SimulationError"]

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
        self.traceback = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        super().__init__(
            f"{node} raised {type(error).__name__}: {error}\n  while handling {event} at t={time} ms"
        )


class RunawayError(SimulationError):
    """The run used more real time or more events than allowed (an endless loop or a timer storm)."""


def _describe_item(item: Any) -> str:
    return brief(item)


class Simulation:
    """Nodes, a network and a clock.

    Add nodes with :meth:`add_server`, :meth:`add_client` (a raw client the
    test drives) or :meth:`add_worker` (a client driven by a workload), then
    call :meth:`run_for`, :meth:`run_until` or :meth:`run_until_done`.
    Settings (``sim.settings``) may change between runs; every change is
    logged.
    """

    def __init__(
        self,
        seed: int = 0,
        settings: RunSettings | None = None,
        *,
        max_events: int = 5_000_000,
        wall_limit: float | None = 120.0,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.settings = settings if settings is not None else RunSettings()
        self.settings.on_change(self._log_setting)
        self.now = 0
        self.max_events = max_events
        self.wall_limit = wall_limit
        self.events_handled = 0
        self.log = EventLog()
        self.nodes: dict[Address, Node] = {}
        self._servers: list[Address] = []
        self._raw_clients: list[Address] = []
        self._workers: dict[Address, ClientWorker] = {}
        self._raw_pending: dict[Address, tuple[Any, int]] = {}
        self._raw_history: dict[Address, list[HistoryRecord]] = {}
        self._queue: list[tuple] = []
        self._seq = 0
        self._watched: set[Address] = set()  # clients whose invokes and responses are logged

    # ---- building the system ------------------------------------------------

    def add_server(self, node: Node) -> Node:
        """Add a server node and run its ``init()``."""
        self._add(node)
        self._servers.append(node.address)
        return node

    def add_client(self, node: Node) -> Node:
        """Add a raw client that the test drives with :meth:`send_command`."""
        self._add(node)
        self._raw_clients.append(node.address)
        self._raw_history[node.address] = []
        self._watched.add(node.address)
        return node

    def add_worker(self, client: Node, workload: Workload, record_results: bool = True) -> ClientWorker:
        """Add ``client`` driven by a closed-loop worker running ``workload``."""
        worker = ClientWorker(client, workload, record_results=record_results, seed=self.seed)
        self._workers[worker.address] = worker
        self._watched.add(worker.address)
        self._add(worker)
        return worker

    def add_node(self, node: Node) -> Node:
        """Add any other node (neither a server nor a client)."""
        return self._add(node)

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

    def _add(self, node: Node) -> Node:
        if not isinstance(node, Node):
            raise SimulationError(f"only Node instances can join a simulation, got {node!r}")
        if node.address in self.nodes:
            raise SimulationError(f"there is already a node at {node.address}")
        self.nodes[node.address] = node
        self._call(node, "init()", node.init)
        return node

    # ---- what predicates and tests read -------------------------------------

    @property
    def servers(self) -> list[Node]:
        return [self.nodes[a] for a in self._servers]

    @property
    def workers(self) -> list[ClientWorker]:
        return list(self._workers.values())

    @property
    def clients(self) -> list[Node]:
        """The raw clients (those driven directly by the test)."""
        return [self.nodes[a] for a in self._raw_clients]

    def node(self, address: Address) -> Node:
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
        self._run(lambda: False, end)
        self.now = max(self.now, end)

    def run_until(self, condition: Callable[["Simulation"], Any], max_millis: int = 60_000) -> bool:
        """Run until ``condition(sim)`` holds (checked after every event) or
        ``max_millis`` of virtual time pass. Returns whether it held."""
        if condition(self):
            return True
        return self._run(lambda: bool(condition(self)), self.now + max_millis)

    def run_until_done(self, max_millis: int = 60_000) -> bool:
        """Run until every client worker has finished its workload."""
        workers = list(self._workers.values())
        return self.run_until(lambda _: all(w.done for w in workers), max_millis)

    def _run(self, stop: Callable[[], bool], end_time: int) -> bool:
        queue = self._queue
        with deadline(self.wall_limit, "the simulation") as guard:
            try:
                while queue and queue[0][0] <= end_time:
                    self._step(heapq.heappop(queue))
                    if stop():
                        return True
                    if self.events_handled >= self.max_events:
                        raise RunawayError(self._runaway_text(f"handled {self.events_handled:,} events"))
                    if not self.events_handled & 1023:
                        check_deadlines()
            except DeadlineExceeded as error:
                if not guard.fired:
                    raise
                during = getattr(error, "during", "")
                if during:
                    raise RunawayError(
                        f"{during} was still running after {self.wall_limit:g} s of real time: "
                        "look for an endless loop in that handler"
                    ) from None
                raise RunawayError(self._runaway_text(f"ran for {self.wall_limit:g} s of real time")) from None
        return False

    def _runaway_text(self, what: str) -> str:
        recent = Counter(
            (e.node, e.item.__class__.__name__)
            for e in self.log.of_kind(DELIVER, TIMER_FIRE)[-100_000:]
        )
        top = ", ".join(f"{kind} at {node} ({n:,})" for (node, kind), n in recent.most_common(3))
        return (
            f"the run {what} and reached only t={self.now} ms of virtual time; the most frequent events were "
            f"{top}. A timer that is set more than once per firing, or a message answered by more than one "
            "message in a loop, makes the number of events explode"
        )

    def _step(self, entry: tuple) -> None:
        time, _, kind, sender, receiver, item, mid = entry
        self.now = time
        node = self.nodes.get(receiver)
        log = self.log
        if kind == _MESSAGE:
            if node is None:
                log.append(time, DROP, receiver, sender, item, "unknown node")
                return
            if sender != receiver:
                can_deliver, rate = self.settings.decision(sender, receiver)
                if not can_deliver:
                    log.append(time, DROP, receiver, sender, item, "partition")
                    return
                if rate < 1.0 and self.rng.random() >= rate:
                    log.append(time, DROP, receiver, sender, item, "loss")
                    return
            message = copy_value(item)
            log.append(time, DELIVER, receiver, sender, message, mid)
            self._handle(node, message, sender)
        else:
            if node is None:
                return
            if not self.settings.timers_active(receiver):
                log.append(time, TIMER_OFF, receiver, None, item, None)
                return
            timer = copy_value(item)
            log.append(time, TIMER_FIRE, receiver, None, timer, None)
            self._handle(node, timer, None)

    def _handle(self, node: Node, event: Any, sender: Address | None) -> None:
        """Deliver one message (``sender`` given) or timer to ``node``, then apply its effects."""
        self.events_handled += 1
        effects = Effects(self.now)
        address = node.address
        watched = address in self._watched
        if watched:
            before = self._client_progress(address)
        _active.append(effects)
        try:
            if sender is not None:
                node.deliver_message(event, sender)
            else:
                node.deliver_timer(event)
        except DeadlineExceeded as error:
            error.during = f"{address}'s handler for {self._describe_event(address, event, sender)}"  # type: ignore[attr-defined]
            raise
        except Exception as error:
            self._fail(address, self._describe_event(address, event, sender), error)
        finally:
            _active.pop()
        if watched:
            self._record_client_progress(address, before)
        self._apply(effects)

    def _call(self, node: Node, what: str, action: Callable[[], Any]) -> None:
        """Run ``action`` (``init()``, a client call) as an event of ``node``."""
        effects = Effects(self.now)
        address = node.address
        watched = address in self._watched
        if watched:
            before = self._client_progress(address)
        _active.append(effects)
        try:
            action()
        except DeadlineExceeded as error:
            error.during = f"{address}'s {what}"  # type: ignore[attr-defined]
            raise
        except Exception as error:
            self._fail(address, what, error)
        finally:
            _active.pop()
        if watched:
            self._record_client_progress(address, before)
        self._apply(effects)

    def _describe_event(self, address: Address, event: Any, sender: Address | None) -> str:
        if sender is not None:
            return f"{type(event).__name__} from {sender} ({_describe_item(event)})"
        return f"timer {type(event).__name__} ({_describe_item(event)})"

    def _fail(self, address: Address, what: str, error: Exception) -> None:
        self.log.append(self.now, ERROR, address, None, None, f"{type(error).__name__}: {error}")
        raise HandlerError(address, what, self.now, error) from error

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
                record = worker._lk_history[-1]
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
        rng = self.rng
        queue = self._queue
        log = self.log
        if effects.sends:
            low, high = self.settings.latency
            duplication = self.settings.duplication
            for sender, receiver, message in effects.sends:
                mid = len(log)
                log.append(now, SEND, sender, receiver, message, mid)
                self._seq += 1
                if sender == receiver:
                    heapq.heappush(queue, (now, self._seq, _MESSAGE, sender, receiver, message, mid))
                    continue
                delay = low if low == high else rng.randint(low, high)
                heapq.heappush(queue, (now + delay, self._seq, _MESSAGE, sender, receiver, message, mid))
                if duplication > 0.0 and rng.random() < duplication:
                    delay = low if low == high else rng.randint(low, high)
                    self._seq += 1
                    log.append(now, DUPLICATE, sender, receiver, message, mid)
                    heapq.heappush(queue, (now + delay, self._seq, _MESSAGE, sender, receiver, message, mid))
        for address, timer, low, high in effects.timers:
            length = low if low == high else rng.randint(low, high)
            self._seq += 1
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
                counts["delivered_by_type"][type(e.item).__name__] += 1
            elif e.kind == SEND:
                counts["sent_to"][e.peer] += 1
                counts["sent_by_type"][type(e.item).__name__] += 1
        return counts

    def describe(self) -> str:
        counts = self.message_counts()
        return (
            f"seed {self.seed}, t={self.now} ms, {self.events_handled:,} events, "
            f"{sum(counts['sent_to'].values()):,} messages sent, {sum(counts['delivered_to'].values()):,} delivered"
        )
