"""The ping lab: write PingServer and PingClient here (the tour notebook says what each does).

Handlers are called by name: a PingRequest goes to ``handle_PingRequest(self,
message, sender)``, a PingTimer to ``on_PingTimer(self, timer)``. Send only
from ``init()`` or a handler, never from ``__init__``; keep all state in
attributes of ``self``; no clock, no random numbers, no threads.
"""

from __future__ import annotations

from labkit import Address, Node, NoResultYet  # noqa: F401
from labkit.labs.ping import RETRY_MILLIS, Ping, PingApplication, PingRequest, PingTimer, Pong, PongReply  # noqa: F401


def _todo(what: str) -> NotImplementedError:
    return NotImplementedError(f"not implemented: {what}")


class PingServer(Node):
    """Answers every PingRequest with a PongReply to its sender."""

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        # TODO: the application that turns a Ping into its Pong.

    def handle_PingRequest(self, message: PingRequest, sender: Address) -> None:
        raise _todo("PingServer.handle_PingRequest: send the Pong for the request's Ping back to the sender")


class PingClient(Node):
    """Sends one Ping at a time to the server and resends it until the matching Pong arrives."""

    def __init__(self, address: Address, server_address: Address) -> None:
        super().__init__(address)
        self.server_address = server_address
        # TODO: the ping being sent and its pong, once it has arrived.

    def send_command(self, command: Ping) -> None:
        raise _todo("PingClient.send_command: send a PingRequest to the server and set a PingTimer")

    def has_result(self) -> bool:
        raise _todo("PingClient.has_result: say whether the pong for the current ping has arrived")

    def get_result(self) -> Pong:
        raise _todo("PingClient.get_result: return the pong for the current ping, or raise NoResultYet")

    def handle_PongReply(self, message: PongReply, sender: Address) -> None:
        raise _todo("PingClient.handle_PongReply: keep the pong if it answers the current ping")

    def on_PingTimer(self, timer: PingTimer) -> None:
        raise _todo("PingClient.on_PingTimer: resend the ping if its pong has not arrived, and set the timer again")
