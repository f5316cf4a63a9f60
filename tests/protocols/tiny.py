"""Tiny nodes that exercise one search rule each (not real protocols)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from labkit import Address, Message, Node, Timer


@dataclass(frozen=True)
class Ping(Message):
    n: int


@dataclass(frozen=True)
class Pong(Message):
    n: int


@dataclass(frozen=True)
class Hello(Message):
    origin: str


@dataclass(frozen=True)
class Tick(Timer):
    name: str


class EchoServer(Node):
    """Stateless: answers every Ping with a Pong (so duplicates change nothing)."""

    def handle_Ping(self, message: Ping, sender: Address) -> None:
        self.send(Pong(message.n), sender)


class Pinger(Node):
    """Sends Ping(1..count) to ``to`` in init and records the pongs it gets."""

    def __init__(self, address: Address, to: Address, count: int = 1) -> None:
        super().__init__(address)
        self.to = to
        self.count = count
        self.pongs: set[int] = set()

    def init(self) -> None:
        for n in range(1, self.count + 1):
            self.send(Ping(n), self.to)

    def handle_Pong(self, message: Pong, sender: Address) -> None:
        self.pongs.add(message.n)


class Relay(Node):
    """A chain link: forwards Ping(n) as Ping(n) to ``next`` (or answers with Pong at the end)."""

    def __init__(self, address: Address, next_hop: Address | None) -> None:
        super().__init__(address)
        self.next_hop = next_hop
        self.seen: list[int] = []

    def handle_Ping(self, message: Ping, sender: Address) -> None:
        self.seen.append(message.n)
        if self.next_hop is not None:
            self.send(Ping(message.n), self.next_hop)


class Greeter(Node):
    """Sends Hello to every peer and to itself in init; counts greetings."""

    def __init__(self, address: Address, peers: Sequence[Address]) -> None:
        super().__init__(address)
        self.peers = list(peers)
        self.heard: set[str] = set()

    def init(self) -> None:
        self.broadcast(Hello(self.address.name), self.peers)

    def handle_Hello(self, message: Hello, sender: Address) -> None:
        self.heard.add(message.origin)


class TimerNode(Node):
    """Sets the timers given as (name, min, max) in init; records firing order."""

    def __init__(self, address: Address, timers: Sequence[tuple[str, int, int]], rearm: bool = False) -> None:
        super().__init__(address)
        self.initial_timers = list(timers)
        self.rearm = rearm
        self.fired: list[str] = []

    def init(self) -> None:
        for name, lo, hi in self.initial_timers:
            self.set_timer(Tick(name), lo, hi)

    def on_Tick(self, timer: Tick) -> None:
        if self.rearm:
            # Same timer, same range: the state must equal the one before firing.
            spec = next(t for t in self.initial_timers if t[0] == timer.name)
            self.set_timer(Tick(timer.name), spec[1], spec[2])
        else:
            self.fired.append(timer.name)


class Crasher(Node):
    """Raises while handling a Ping with n == 2."""

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.got: list[int] = []

    def handle_Ping(self, message: Ping, sender: Address) -> None:
        self.got.append(message.n)
        if message.n == 2:
            self.divide_by(0)

    def divide_by(self, d: int) -> float:
        return 1 / d


COUNTER = [0]


class Pinger2(Pinger):
    """Sends ``Ping(2)`` at start."""

    def init(self) -> None:
        self.send(Ping(2), self.to)


class GlobalCounter(Node):
    """Nondeterministic: stamps each Ping with a global counter."""

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.stamp = 0

    def handle_Ping(self, message: Ping, sender: Address) -> None:
        COUNTER[0] += 1
        self.stamp = COUNTER[0]


class RandomNode(Node):
    """Nondeterministic: draws a random number on each Ping."""

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.luck = 0.0

    def handle_Ping(self, message: Ping, sender: Address) -> None:
        self.luck = random.random()


class RandomSender(Node):
    """Nondeterministic only in what it sends."""

    def handle_Ping(self, message: Ping, sender: Address) -> None:
        self.send(Pong(random.randrange(1 << 30)), sender)


class LambdaNode(Node):
    """Holds a function in its state (not allowed)."""

    def __init__(self, address: Address, eager: bool) -> None:
        super().__init__(address)
        self.config = {"key": (lambda x: x) if eager else None}

    def handle_Ping(self, message: Ping, sender: Address) -> None:
        self.config["key"] = lambda x: x + 1
