"""Simulator throughput: delivered events per second of CPU time on one core.

Two workloads with small immutable messages:
* ping-pong: two nodes bouncing one message back and forth;
* broadcast: 5 servers, each delivery of a token makes the receiver broadcast
  to the 4 others with probability-free round-robin forwarding (a 5-server
  broadcast workload with constant traffic).

Run: python benchmarks/simulator.py [--events N]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from labkit import Address, Message, Node
from labkit.sim import RunSettings, Simulation


@dataclass(frozen=True)
class Ball(Message):
    hits: int


class Player(Node):
    def __init__(self, address: Address, peer: Address, serve: bool) -> None:
        super().__init__(address)
        self.peer = peer
        self.serve = serve
        self.hits = 0

    def init(self) -> None:
        if self.serve:
            self.send(Ball(0), self.peer)

    def handle_Ball(self, message: Ball, sender: Address) -> None:
        self.hits = message.hits + 1
        self.send(Ball(self.hits), sender)


@dataclass(frozen=True)
class Token(Message):
    origin: Address
    round: int


class Gossip(Node):
    """Each server, on a token, forwards it to everyone once per round it leads."""

    def __init__(self, address: Address, servers: list[Address]) -> None:
        super().__init__(address)
        self.servers = servers
        self.seen = 0

    def init(self) -> None:
        if self.address == self.servers[0]:
            self.broadcast(Token(self.address, 0), [s for s in self.servers if s != self.address])

    def handle_Token(self, message: Token, sender: Address) -> None:
        self.seen += 1
        index = self.servers.index(self.address)
        # The next server in the ring starts the next round once it hears the token.
        if (message.round + 1) % len(self.servers) == index:
            self.broadcast(Token(self.address, message.round + 1), [s for s in self.servers if s != self.address])


def ping_pong(events: int) -> Simulation:
    sim = Simulation(seed=1, settings=RunSettings(latency=(1, 3)), max_events=events + 10)
    a, b = Address("a"), Address("b")
    sim.add_server(Player(a, b, True))
    sim.add_server(Player(b, a, False))
    sim.run_until(lambda s: s.events_handled >= events, max_millis=10**12)
    return sim


def broadcast(events: int) -> Simulation:
    servers = [Address(f"server{i}") for i in range(1, 6)]
    sim = Simulation(seed=1, settings=RunSettings(latency=(1, 3)), max_events=events + 10)
    for s in servers:
        sim.add_server(Gossip(s, servers))
    sim.run_until(lambda s: s.events_handled >= events, max_millis=10**12)
    return sim


def measure(name: str, fn, events: int) -> None:
    start = time.process_time()
    sim = fn(events)
    cpu = time.process_time() - start
    delivered = sum(sim.message_counts()["delivered_to"].values())
    rate = delivered / cpu
    print(f"{name:<28} {delivered:>10,} delivered in {cpu:6.2f} s CPU  -> {rate:>10,.0f} events/s"
          f"  (target 100,000: {rate / 100_000:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    measure("ping-pong (2 nodes)", ping_pong, args.events)
    measure("broadcast (5 servers)", broadcast, args.events)


if __name__ == "__main__":
    main()
