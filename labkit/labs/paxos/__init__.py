"""The Paxos lab: multi-instance Paxos (Paxos Made Moderately Complex in one
server role) with stable leaders and garbage collection.

Provided here: ballots, pvalues, the client request and reply messages, a
decision message for composing Paxos with larger protocols, the client's retry
timer and the log-slot status enum. Students write ``PaxosServer(address,
servers, app)`` and ``PaxosClient(address, servers)`` in ``paxos_server.py``,
plus their own messages and timers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from labkit.app import AMOCommand, AMOResult, Command
from labkit.node import Address, Message, Timer

__all__ = [
    "Ballot",
    "PValue",
    "PaxosRequest",
    "PaxosReply",
    "PaxosDecision",
    "ClientTimer",
    "CLIENT_RETRY_MILLIS",
    "PaxosLogSlotStatus",
]

CLIENT_RETRY_MILLIS = 100
"""How long a client waits for a reply before sending its request again."""


@dataclass(frozen=True, order=True)
class Ballot:
    """A ballot number: ordered by round, then by the proposing server's address."""

    round: int
    leader: Address


@dataclass(frozen=True)
class PValue:
    """A proposal: ``command`` proposed for ``slot`` under ``ballot``."""

    ballot: Ballot
    slot: int
    command: Command


@dataclass(frozen=True)
class PaxosRequest(Message):
    """A client's command, sent to the servers."""

    command: AMOCommand


@dataclass(frozen=True)
class PaxosReply(Message):
    """A server's answer to a client's command."""

    result: AMOResult


@dataclass(frozen=True)
class PaxosDecision(Message):
    """A decided command, for code that composes Paxos with a larger protocol."""

    slot: int
    command: Command


@dataclass(frozen=True)
class ClientTimer(Timer):
    """Set by a client when it sends a request; resend if no reply came."""

    request: PaxosRequest


class PaxosLogSlotStatus(Enum):
    """What a server knows about one slot of its log."""

    EMPTY = "empty"
    """No command is known for the slot."""
    ACCEPTED = "accepted"
    """A command was accepted, but is not known to be chosen."""
    CHOSEN = "chosen"
    """The command is known to be chosen for good."""
    CLEARED = "cleared"
    """The slot was garbage-collected at this server."""
