"""Reference solution of the ping lab."""

from labkit import Address, Node, NoResultYet
from labkit.labs.ping import RETRY_MILLIS, Ping, PingApplication, PingRequest, PingTimer, Pong, PongReply


class PingServer(Node):
    """Answers every request; it keeps no per-client state."""

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.app = PingApplication()

    def handle_PingRequest(self, message: PingRequest, sender: Address) -> None:
        self.send(PongReply(self.app.execute(message.ping)), sender)


class PingClient(Node):
    """Sends one ping at a time and resends it until the matching pong arrives."""

    def __init__(self, address: Address, server_address: Address) -> None:
        super().__init__(address)
        self.server_address = server_address
        self.ping: Ping | None = None
        self.pong: Pong | None = None

    def send_command(self, command: Ping) -> None:
        self.ping = command
        self.pong = None
        self.send(PingRequest(command), self.server_address)
        self.set_timer(PingTimer(command), RETRY_MILLIS)

    def has_result(self) -> bool:
        return self.pong is not None

    def get_result(self) -> Pong:
        if self.pong is None:
            raise NoResultYet(f"{self.address} has no reply to {self.ping} yet")
        return self.pong

    def handle_PongReply(self, message: PongReply, sender: Address) -> None:
        # A late or duplicated reply to an older ping is ignored.
        if self.ping is not None and message.pong.value == self.ping.value:
            self.pong = message.pong

    def on_PingTimer(self, timer: PingTimer) -> None:
        # Stale timers (for an older ping, or after the reply) are ignored.
        if timer.ping == self.ping and self.pong is None:
            self.send(PingRequest(timer.ping), self.server_address)
            self.set_timer(timer, RETRY_MILLIS)
