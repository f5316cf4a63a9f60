"""The ping lab: the smallest client/server system, and a tour of labkit.

A client sends a ``Ping`` to a server and waits for the matching ``Pong``.
Messages can be lost, so the client retries on a timer until the reply comes.
Provided here: the application, its command and result, the two messages and
the retry timer. Students write ``PingServer(address)`` and
``PingClient(address, server_address)`` in ``ping_server.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.app import Application, Command, Result
from labkit.node import Message, Timer

__all__ = ["Ping", "Pong", "PingApplication", "PingRequest", "PongReply", "PingTimer", "RETRY_MILLIS"]

RETRY_MILLIS = 10
"""How long a client waits for a reply before sending its request again."""


@dataclass(frozen=True)
class Ping(Command):
    value: str


@dataclass(frozen=True)
class Pong(Result):
    value: str


class PingApplication(Application):
    """Answers every Ping with a Pong carrying the same value."""

    def execute(self, command: Command) -> Result:
        if not isinstance(command, Ping):
            raise ValueError(f"PingApplication executes only Ping commands, got {command!r}")
        return Pong(command.value)


@dataclass(frozen=True)
class PingRequest(Message):
    ping: Ping


@dataclass(frozen=True)
class PongReply(Message):
    pong: Pong


@dataclass(frozen=True)
class PingTimer(Timer):
    """Set when a request is sent; when it fires, resend if the reply has not come."""

    ping: Ping
