"""Your Paxos implementation: a PaxosServer that plays every role of
Paxos Made Moderately Complex, and a PaxosClient.

Write your own messages and timers here too (P1a, P1b, P2a, P2b, Heartbeat,
HeartbeatCheckTimer, ...), as frozen dataclasses:

    @dataclass(frozen=True)
    class P1a(Message):
        ballot: Ballot

Rules every node follows:
* Handlers are called by name: a message of class P1a goes to
  ``handle_P1a(self, message, sender)``, a timer of class HeartbeatTimer to
  ``on_HeartbeatTimer(self, timer)``.
* Send only from ``init()`` or a handler, never from ``__init__``.
* Be deterministic: no random numbers, no clock, no global variables, no
  threads, no sleeping. Keep all state in attributes of ``self``.
* Never send a message to yourself; call the method you need directly.

Every method below that still raises NotImplementedError is one you need to
write. The notebooks say which part of the lab needs which method.
"""

from __future__ import annotations

from dataclasses import dataclass  # noqa: F401

# What you need is imported here; some of it only once you write your own messages and timers.
from labkit import AMOApplication, AMOCommand, Address, Application, Command, Message, Node, NoResultYet, Result, Timer  # noqa: F401
from labkit.labs.paxos import (  # noqa: F401
    CLIENT_RETRY_MILLIS,
    Ballot,
    ClientTimer,
    PaxosLogSlotStatus,
    PaxosReply,
    PaxosRequest,
    PValue,
)


def _todo(what: str) -> NotImplementedError:
    return NotImplementedError(f"not implemented: {what}")


class PaxosServer(Node):
    """One Paxos server: acceptor, replica and leader at once.

    ``servers`` lists every server's address, this one's included. ``app`` is
    the application to replicate (a KVStore in the tests); wrap it in
    AMOApplication so each client command runs at most once.
    """

    def __init__(self, address: Address, servers: list[Address], app: Application) -> None:
        super().__init__(address)
        self.servers = tuple(sorted(servers))
        self.app = AMOApplication(app)
        # TODO: add the state each role needs (ballot, log, slot_out, ...).

    def init(self) -> None:
        """Runs once before any event: set your periodic timers here."""
        # TODO: start the timers your design needs (for example a heartbeat check).

    # ---- the four query methods the tests call on every state -----------------
    # They read only this server's state, work for any slot >= 1, are cheap and
    # change nothing. Slots are numbered from 1.

    def status(self, slot: int) -> PaxosLogSlotStatus:
        """The status of ``slot`` in this server's log: CLEARED once garbage-collected
        (even if it was chosen before), CHOSEN if known to be chosen, ACCEPTED if a
        command was accepted but is not known to be chosen, EMPTY otherwise."""
        raise _todo("PaxosServer.status: return the PaxosLogSlotStatus of the slot in this server's log")

    def command(self, slot: int) -> Command | None:
        """The command in ``slot`` (accepted or chosen), unwrapped from any
        AMOCommand; None when the slot is EMPTY or CLEARED."""
        raise _todo("PaxosServer.command: return the command in the slot (not its AMOCommand wrapper), or None")

    def first_non_cleared(self) -> int:
        """The first slot not garbage-collected yet (1 until anything is cleared)."""
        raise _todo("PaxosServer.first_non_cleared: return the first slot that has not been garbage-collected")

    def last_non_empty(self) -> int:
        """The last slot that is not EMPTY (0 when nothing was ever accepted)."""
        raise _todo("PaxosServer.last_non_empty: return the last slot that is not EMPTY, or 0")

    # ---- client requests -----------------------------------------------------

    def handle_PaxosRequest(self, message: PaxosRequest, sender: Address) -> None:
        """A client's command. Reply at once if it was already executed; if this
        server is the active leader, propose it; otherwise ignore it (the client
        sends it to every server and retries)."""
        raise _todo("PaxosServer.handle_PaxosRequest: propose the client's command, or reply if it was executed")

    # TODO: add handle_<Message> methods for your own messages and
    # on_<Timer> methods for your own timers.


class PaxosClient(Node):
    """A client: sends one command at a time to every server and retries on a timer.

    The three client methods return at once; the tests drive them.
    """

    def __init__(self, address: Address, servers: list[Address]) -> None:
        super().__init__(address)
        self.servers = tuple(sorted(servers))
        # TODO: add the state a client needs (sequence number, current request, result).

    def send_command(self, command: Command) -> None:
        """Start ``command``: wrap it in an AMOCommand with the next sequence
        number, send a PaxosRequest to every server and set a ClientTimer."""
        raise _todo("PaxosClient.send_command: send the command to every server and set a ClientTimer")

    def has_result(self) -> bool:
        """True once the result of the latest command has arrived."""
        raise _todo("PaxosClient.has_result: say whether the latest command's result has arrived")

    def get_result(self) -> Result:
        """The result of the latest command, the same on every call; raise
        NoResultYet if it has not arrived."""
        raise _todo("PaxosClient.get_result: return the latest command's result, or raise NoResultYet")

    def handle_PaxosReply(self, message: PaxosReply, sender: Address) -> None:
        """A server's reply: keep its result if it answers the latest command."""
        raise _todo("PaxosClient.handle_PaxosReply: keep the result if it answers the latest command")

    def on_ClientTimer(self, timer: ClientTimer) -> None:
        """If the command this timer was set for still has no result, send it again and reset the timer."""
        raise _todo("PaxosClient.on_ClientTimer: resend the request if its result has not arrived, and reset the timer")
