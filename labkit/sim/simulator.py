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
from labkit.node import Address, Effects, LabkitError, Node, handling
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
from labkit.values import canonical_repr, copy_value

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
    return canonical_repr(item)


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
        self.sent_to: Counter[Address] = Counter()
        self.delivered_to: Counter[Address] = Counter()
        self.sent_by_type: Counter[str] = Counter()
        self.delivered_by_type: Counter[str] = Counter()
        self._event_counts: Counter[tuple[str, str]] = Counter()
        self._current = ""

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
        return node

    def add_worker(self, client: Node, workload: Workload, record_results: bool = True) -> ClientWorker:
        """Add ``client`` driven by a closed-loop worker running ``workload``."""
        worker = ClientWorker(client, workload, record_results=record_results, seed=self.seed)
        self._workers[worker.address] = worker
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

    def _add(self, node: Node) -> Node:
        if not isinstance(node, Node):
            raise SimulationError(f"only Node instances can join a simulation, got {node!r}")
        if node.address in self.nodes:
            raise SimulationError(f"there is already a node at {node.address}")
        self.nodes[node.address] = node
        self._handle(node, "init()", lambda: node.init())
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
        self._handle(client, f"send_command({_describe_item(command)})", lambda: client.send_command(command))
        self._raw_pending[address] = (command, self.now)
        self.log.append(self.now, INVOKE, address, None, command, None)

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
            self._handle(worker, "resume", worker.resume)

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
                if error.what != guard.what or not guard.fired:
                    error.during = self._current  # type: ignore[attr-defined]
                    raise
                if self._current:
                    raise RunawayError(
                        f"{self._current} was still running after {self.wall_limit:g} s of real time: "
                        "look for an endless loop in that handler"
                    ) from None
                raise RunawayError(self._runaway_text(f"ran for {self.wall_limit:g} s of real time")) from None
        return False

    def _runaway_text(self, what: str) -> str:
        top = ", ".join(f"{kind} at {node} ({n:,})" for (node, kind), n in self._event_counts.most_common(3))
        return (
            f"the run {what} and reached only t={self.now} ms of virtual time; the most frequent events were "
            f"{top}. A timer that is set more than once per firing, or a message answered by more than one "
            "message in a loop, makes the number of events explode"
        )

    def _step(self, entry: tuple) -> None:
        time, _, kind, sender, receiver, item, mid = entry
        self.now = time
        node = self.nodes.get(receiver)
        if kind == _MESSAGE:
            if node is None:
                self.log.append(time, DROP, receiver, sender, item, "unknown node")
                return
            if sender != receiver:
                settings = self.settings
                if not settings.can_deliver(sender, receiver):
                    self.log.append(time, DROP, receiver, sender, item, "partition")
                    return
                rate = settings.rate_for(sender, receiver)
                if rate < 1.0 and self.rng.random() >= rate:
                    self.log.append(time, DROP, receiver, sender, item, "loss")
                    return
            message = copy_value(item)
            type_name = type(message).__name__
            self.delivered_to[receiver] += 1
            self.delivered_by_type[type_name] += 1
            self._event_counts[(receiver.name, type_name)] += 1
            self.log.append(time, DELIVER, receiver, sender, message, mid)
            self._handle(node, f"{type_name} from {sender}", lambda: node.deliver_message(message, sender), message)
        else:
            if node is None:
                return
            if not self.settings.timers_active(receiver):
                self.log.append(time, TIMER_OFF, receiver, None, item, None)
                return
            timer = copy_value(item)
            type_name = type(timer).__name__
            self._event_counts[(receiver.name, type_name)] += 1
            self.log.append(time, TIMER_FIRE, receiver, None, timer, None)
            self._handle(node, f"timer {type_name}", lambda: node.deliver_timer(timer), timer)

    def _handle(self, node: Node, event: str, action: Callable[[], Any], item: Any = None) -> None:
        """Run one handler, then apply its effects."""
        self.events_handled += 1
        effects = Effects(self.now)
        worker = self._workers.get(node.address)
        if worker is not None:
            sent_before, results_before = worker.sent, len(worker.results)
        raw_pending = self._raw_pending.get(node.address)
        self._current = f"{node.address}'s handler for {event}"
        try:
            with handling(effects):
                action()
        except DeadlineExceeded:
            raise
        except Exception as error:
            shown = f"{event} ({_describe_item(item)})" if item is not None else event
            self.log.append(self.now, ERROR, node.address, None, None, f"{type(error).__name__}: {error}")
            raise HandlerError(node.address, shown, self.now, error) from error
        self._current = ""
        if worker is not None:
            if len(worker.results) != results_before:
                self.log.append(self.now, RESPONSE, node.address, None, worker.history[len(worker.results) - 1].result, None)
            if worker.sent != sent_before:
                self.log.append(self.now, INVOKE, node.address, None, worker.history[-1].command, None)
        elif raw_pending is not None and node.has_result():  # type: ignore[attr-defined]
            result = node.get_result()  # type: ignore[attr-defined]
            self._raw_history[node.address].append(
                HistoryRecord(node.address, raw_pending[0], result, raw_pending[1], self.now)
            )
            del self._raw_pending[node.address]
            self.log.append(self.now, RESPONSE, node.address, None, result, None)
        self._apply(effects)

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
                self.sent_to[receiver] += 1
                self.sent_by_type[type(message).__name__] += 1
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
        return sum(self.sent_to[a] for a in self._servers)

    def pending_events(self) -> int:
        return len(self._queue)

    def describe(self) -> str:
        return (
            f"seed {self.seed}, t={self.now} ms, {self.events_handled:,} events, "
            f"{sum(self.sent_by_type.values()):,} messages sent, {sum(self.delivered_by_type.values()):,} delivered"
        )
