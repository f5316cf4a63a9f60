"""Same seed and code give the same event log, byte for byte, in every process; other seeds differ."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import PING_SOLUTION

GOSSIP_NODES = textwrap.dedent(
    """
    from dataclasses import dataclass
    from labkit import Message, Node, Timer

    @dataclass(frozen=True)
    class Rumor(Message):
        words: frozenset
        known: frozenset

    @dataclass(frozen=True)
    class Gossip(Timer):
        round: int

    class Gossiper(Node):
        def __init__(self, address, peers):
            super().__init__(address)
            self.peers = set(peers)          # a set of addresses, iterated when sending
            self.words = {f"w-{address}"}    # a set of strings, only sent as a value
            self.heard = {}

        def init(self):
            self.set_timer(Gossip(0), 3, 9)

        def on_Gossip(self, timer):
            for peer in self.peers:
                self.send(Rumor(frozenset(self.words), frozenset(self.peers)), peer)
            if timer.round < 15:
                self.set_timer(Gossip(timer.round + 1), 3, 9)

        def handle_Rumor(self, message, sender):
            self.words |= message.words
            self.peers |= message.known - {self.address}
            self.heard[sender] = self.heard.get(sender, 0) + 1
    """
)

SCENARIOS = textwrap.dedent(
    """
    import sys
    from gossip_nodes import Gossiper
    from labkit import Address
    from labkit.labs.ping.tests import SERVER, ping_workload
    from labkit.node import client
    from labkit.sim import RunSettings, Simulation
    from labkit.testing import load_solution

    def gossip(seed):
        sim = Simulation(seed, RunSettings(delivery_rate=0.7, latency=(1, 12), duplication_rate=0.2))
        names = [Address(f"node{i}") for i in range(6)]
        for i, a in enumerate(names):
            sim.add_server(Gossiper(a, {names[(i + 1) % 6], names[(i + 2) % 6]}))
        sim.run_for(40)
        sim.settings.partition(names[:3], names[3:])
        sim.run_for(40)
        sim.settings.reconnect()
        sim.run_for(80)
        return sim.log.to_text()

    def ping(seed):
        solution = load_solution(sys.argv[1])
        sim = Simulation(seed, RunSettings(delivery_rate=0.5, latency=(1, 20), duplication_rate=0.2))
        sim.add_server(solution.PingServer(SERVER))
        for i in range(1, 4):
            sim.add_worker(solution.PingClient(client(i), SERVER), ping_workload(["%a-%i-%r4"], repeat=10))
        assert sim.run_until_done(max_millis=60_000)
        return sim.log.to_text()

    for seed in map(int, sys.argv[2:]):
        sys.stdout.write(gossip(seed) + "=====\\n" + ping(seed) + "#####\\n")
    """
)


def run_scenarios(tmp_path: Path, hash_seed: str, *seeds: int) -> list[str]:
    script = tmp_path / "scenarios.py"
    script.write_text(SCENARIOS)
    (tmp_path / "gossip_nodes.py").write_text(GOSSIP_NODES)
    done = subprocess.run(
        [sys.executable, str(script), str(PING_SOLUTION), *map(str, seeds)],
        env={"PYTHONHASHSEED": hash_seed}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("#####\n")[:-1]


def test_same_seed_same_log_across_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    first = run_scenarios(tmp_path, "1", 11, 11)
    second = run_scenarios(tmp_path, "2", 11)
    assert first[0] == first[1] == second[0]
    gossip, ping = first[0].split("=====\n")
    assert "drop" in gossip and "duplicate" in gossip and "partition" in gossip and "Rumor" in gossip
    assert "drop" in ping and "duplicate" in ping and "response" in ping
    assert len(gossip.splitlines()) > 500


def test_different_seeds_give_different_logs(tmp_path: Path) -> None:
    logs = run_scenarios(tmp_path, "0", 1, 2, 3)
    gossips = {hashlib.sha256(log.split("=====\n")[0].encode()).hexdigest() for log in logs}
    pings = {hashlib.sha256(log.split("=====\n")[1].encode()).hexdigest() for log in logs}
    assert len(gossips) == 3 and len(pings) == 3
