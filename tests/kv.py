"""A tiny key-value server and client shared by the framework's tests (not a test module)."""

from __future__ import annotations

from dataclasses import dataclass

from labkit import Address, Application, Command, KVStore, Message, Node, NoResultYet, Result
from labkit.sim import RunSettings, Simulation

SERVER = Address("server")


@dataclass(frozen=True)
class Request(Message):
    command: Command


@dataclass(frozen=True)
class Reply(Message):
    result: Result


class KVServer(Node):
    """Executes every request on its application and replies."""

    def __init__(self, address: Address, app: Application | None = None) -> None:
        super().__init__(address)
        self.app = app if app is not None else KVStore()

    def handle_Request(self, message: Request, sender: Address) -> None:
        self.send(Reply(self.app.execute(message.command)), sender)


class KVClient(Node):
    """Sends one command at a time; no retries (use it on a reliable network)."""

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.result: Result | None = None

    def send_command(self, command: Command) -> None:
        self.result = None
        self.send(Request(command), SERVER)

    def has_result(self) -> bool:
        return self.result is not None

    def get_result(self) -> Result:
        if self.result is None:
            raise NoResultYet("none yet")
        return self.result

    def handle_Reply(self, message: Reply, sender: Address) -> None:
        self.result = message.result


def kv_sim(latency: int = 5, seed: int = 0, server: Node | None = None) -> Simulation:
    """A simulation with fixed latency and one KV server at ``SERVER``."""
    sim = Simulation(seed, RunSettings(latency=(latency, latency)))
    sim.add_server(server if server is not None else KVServer(SERVER))
    return sim
