"""Reference solution of the Paxos lab.

One ``PaxosServer`` plays every role of Paxos Made Moderately Complex:

* acceptor: ``ballot`` (the highest ballot seen) and the ``log`` of accepted
  and chosen commands, one entry per slot;
* replica: ``slot_out`` (the next slot to execute) and the application;
* leader: ``active`` once phase 1 of ``ballot`` succeeded, with ``promises``
  collected during phase 1 and ``votes`` counting phase-2 acceptances.

Stable leaders: only the active leader proposes. It sends heartbeats; a
follower that sees two heartbeat checks in a row without hearing from the
leader starts phase 1 with a higher ballot. A leader that sees a higher ballot
becomes a follower.

Garbage collection: followers answer heartbeats with the slot they will
execute next; the leader computes the last slot executed by every server,
sends it in later heartbeats, and everyone forgets the slots up to it. A
follower that is behind gets the decisions it is missing in the same
exchange.

The first ballot ``(0, lowest server)`` needs no phase 1: no acceptor can have
accepted anything under an earlier ballot, so every acceptor starts promised
to it and its leader starts active.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit import AMOApplication, AMOCommand, AMOResult, Address, Application, Command, Message, Node, NoResultYet, Result, Timer
from labkit.labs.paxos import CLIENT_RETRY_MILLIS, Ballot, ClientTimer, PaxosLogSlotStatus, PaxosReply, PaxosRequest

HEARTBEAT_MILLIS = 25
HEARTBEAT_CHECK_MILLIS = 100
BATCH_WINDOW = 8  # proposals in flight before new requests wait to be batched


# ---- commands placed in the log -------------------------------------------------


@dataclass(frozen=True)
class Noop(Command):
    """Fills a hole in the log found after phase 1."""


@dataclass(frozen=True)
class Batch(Command):
    """Several client commands decided in one slot and executed in order."""

    commands: tuple[AMOCommand, ...]


@dataclass(frozen=True)
class Entry:
    """What an acceptor knows about one slot."""

    ballot: Ballot
    command: Command
    chosen: bool


# ---- messages and timers ---------------------------------------------------------


@dataclass(frozen=True)
class P1a(Message):
    ballot: Ballot


@dataclass(frozen=True)
class P1b(Message):
    ballot: Ballot
    entries: tuple[tuple[int, Entry], ...]  # every slot this acceptor still holds


@dataclass(frozen=True)
class P2a(Message):
    ballot: Ballot
    slot: int
    command: Command


@dataclass(frozen=True)
class P2b(Message):
    ballot: Ballot
    slot: int


@dataclass(frozen=True)
class Preempted(Message):
    """Tells a server using an old ballot that a higher one exists."""

    ballot: Ballot


@dataclass(frozen=True)
class Decision(Message):
    slot: int
    command: Command


@dataclass(frozen=True)
class Heartbeat(Message):
    ballot: Ballot
    cleared_through: int  # every server has executed every slot up to here


@dataclass(frozen=True)
class HeartbeatReply(Message):
    ballot: Ballot
    slot_out: int


@dataclass(frozen=True)
class HeartbeatTimer(Timer):
    pass


@dataclass(frozen=True)
class HeartbeatCheckTimer(Timer):
    pass


class PaxosServer(Node):
    def __init__(self, address: Address, servers: list[Address], app: Application) -> None:
        super().__init__(address)
        self.servers = tuple(sorted(servers))
        self.app = AMOApplication(app)
        # acceptor
        self.ballot = Ballot(0, self.servers[0])
        self.log: dict[int, Entry] = {}
        # replica
        self.slot_out = 1
        self.cleared_through = 0
        # leader
        self.active = address == self.servers[0]
        self.promises: dict[Address, tuple[tuple[int, Entry], ...]] | None = None
        self.votes: dict[int, frozenset[Address]] = {}
        self.slot_in = 1
        self.waiting: tuple[AMOCommand, ...] = ()
        self.executed: dict[Address, int] = {}
        # follower
        self.heard_from_leader = False  # since the last heartbeat check
        self.silent_checks = 0  # checks in a row that found no word from the leader

    def init(self) -> None:
        self.set_timer(HeartbeatCheckTimer(), HEARTBEAT_CHECK_MILLIS)
        if self.active and len(self.servers) > 1:
            self.set_timer(HeartbeatTimer(), HEARTBEAT_MILLIS)

    # ---- the four query methods the tests use ---------------------------------

    def status(self, slot: int) -> PaxosLogSlotStatus:
        if slot <= self.cleared_through:
            return PaxosLogSlotStatus.CLEARED
        entry = self.log.get(slot)
        if entry is None:
            return PaxosLogSlotStatus.EMPTY
        return PaxosLogSlotStatus.CHOSEN if entry.chosen else PaxosLogSlotStatus.ACCEPTED

    def command(self, slot: int) -> Command | None:
        entry = self.log.get(slot) if slot > self.cleared_through else None
        if entry is None:
            return None
        command = entry.command
        return command.command if isinstance(command, AMOCommand) else command

    def first_non_cleared(self) -> int:
        return self.cleared_through + 1

    def last_non_empty(self) -> int:
        return max(self.log, default=self.cleared_through)

    # ---- helpers ----------------------------------------------------------------

    @property
    def majority(self) -> int:
        return len(self.servers) // 2 + 1

    def others(self) -> list[Address]:
        return [s for s in self.servers if s != self.address]

    def adopt(self, ballot: Ballot) -> None:
        """Follow a higher ballot: stop leading (or trying to)."""
        if ballot > self.ballot:
            self.ballot = ballot
            self.active = False
            self.promises = None
            self.votes = {}
            self.waiting = ()

    def hear_from(self, sender: Address, ballot: Ballot) -> None:
        if ballot == self.ballot and sender == ballot.leader:
            self.heard_from_leader = True

    # ---- clients ------------------------------------------------------------------

    def handle_PaxosRequest(self, message: PaxosRequest, sender: Address) -> None:
        command = message.command
        if self.app.already_executed(command):
            result = self.app.execute(command)  # the stored result, if still the latest
            if result is not None:
                self.send(PaxosReply(result), sender)
            return
        if not self.active or self.in_flight(command):
            return
        if self.slot_in - self.slot_out >= BATCH_WINDOW:
            self.waiting += (command,)
        else:
            self.propose(command)

    def in_flight(self, command: AMOCommand) -> bool:
        for slot in range(self.slot_out, self.slot_in):
            entry = self.log.get(slot)
            if entry is None:
                continue
            found = entry.command
            if found == command or (isinstance(found, Batch) and command in found.commands):
                return True
        return command in self.waiting

    # ---- phase 2 (leader and acceptors) -----------------------------------------------

    def propose(self, command: Command) -> None:
        slot = self.slot_in
        self.slot_in += 1
        self.send_accept(slot, command)

    def send_accept(self, slot: int, command: Command) -> None:
        """Accept locally (this server is an acceptor too) and ask the others."""
        self.log[slot] = Entry(self.ballot, command, False)
        self.votes[slot] = frozenset({self.address})
        self.broadcast(P2a(self.ballot, slot, command), self.others())
        self.count_votes(slot)

    def handle_P2a(self, message: P2a, sender: Address) -> None:
        self.adopt(message.ballot)
        self.hear_from(sender, message.ballot)
        if message.ballot != self.ballot:
            self.send(Preempted(self.ballot), sender)
            return
        if message.slot > self.cleared_through:
            entry = self.log.get(message.slot)
            if entry is None or not entry.chosen:
                self.log[message.slot] = Entry(message.ballot, message.command, False)
        # The reply names the ballot accepted, so a vote is never counted for another ballot.
        self.send(P2b(message.ballot, message.slot), sender)

    def handle_Preempted(self, message: Preempted, sender: Address) -> None:
        self.adopt(message.ballot)

    def handle_P2b(self, message: P2b, sender: Address) -> None:
        if not self.active or message.ballot != self.ballot or message.slot not in self.votes:
            return
        self.votes[message.slot] = self.votes[message.slot] | {sender}
        self.count_votes(message.slot)

    def count_votes(self, slot: int) -> None:
        if len(self.votes[slot]) < self.majority:
            return
        del self.votes[slot]
        command = self.log[slot].command
        self.log[slot] = Entry(self.ballot, command, True)
        self.broadcast(Decision(slot, command), self.others())
        self.execute_ready()
        if self.waiting and self.slot_in - self.slot_out < BATCH_WINDOW:
            waiting, self.waiting = self.waiting, ()
            self.propose(waiting[0] if len(waiting) == 1 else Batch(waiting))

    def handle_Decision(self, message: Decision, sender: Address) -> None:
        if message.slot > self.cleared_through:
            entry = self.log.get(message.slot)
            ballot = entry.ballot if entry is not None else self.ballot
            self.log[message.slot] = Entry(ballot, message.command, True)
            self.votes.pop(message.slot, None)  # decided elsewhere: stop counting
            self.execute_ready()

    def execute_ready(self) -> None:
        """Execute chosen commands in slot order, stopping at the first gap."""
        while True:
            entry = self.log.get(self.slot_out)
            if entry is None or not entry.chosen:
                return
            commands = entry.command.commands if isinstance(entry.command, Batch) else (entry.command,)
            for command in commands:
                if isinstance(command, AMOCommand):
                    result = self.app.execute(command)
                    if self.active and result is not None:
                        self.send(PaxosReply(result), command.client)
            self.slot_out += 1
            self.slot_in = max(self.slot_in, self.slot_out)

    # ---- phase 1 ----------------------------------------------------------------------

    def start_election(self) -> None:
        if self.promises is not None:
            # Still collecting promises for our own ballot: ask again rather
            # than raising the ballot (which only a higher ballot forces).
            self.broadcast(P1a(self.ballot), [s for s in self.others() if s not in self.promises])
            return
        self.ballot = Ballot(self.ballot.round + 1, self.address)
        self.active = False
        self.votes = {}
        self.waiting = ()
        self.promises = {self.address: self.held_entries()}
        self.broadcast(P1a(self.ballot), self.others())
        self.check_promises()

    def held_entries(self) -> tuple[tuple[int, Entry], ...]:
        return tuple(sorted(self.log.items()))

    def handle_P1a(self, message: P1a, sender: Address) -> None:
        if message.ballot > self.ballot and self.leader_alive() and sender != self.ballot.leader:
            # A live leader exists: a server that lost touch with it (say, across
            # a partition) must not disrupt it. Not promising is always safe.
            return
        self.adopt(message.ballot)
        if message.ballot == self.ballot:
            self.send(P1b(self.ballot, self.held_entries()), sender)
        else:
            self.send(Preempted(self.ballot), sender)

    def handle_P1b(self, message: P1b, sender: Address) -> None:
        if self.promises is None or message.ballot != self.ballot:
            return
        self.promises[sender] = message.entries
        self.check_promises()

    def check_promises(self) -> None:
        if self.promises is None or len(self.promises) < self.majority:
            return
        # For each slot, a chosen command wins; otherwise the command accepted
        # under the highest ballot must be proposed again (PMMC's pmax).
        best: dict[int, Entry] = {}
        for entries in self.promises.values():
            for slot, entry in entries:
                if slot <= self.cleared_through:
                    continue
                known = best.get(slot)
                if known is None or (entry.chosen and not known.chosen) or (
                    not known.chosen and entry.ballot > known.ballot
                ):
                    best[slot] = entry
        self.promises = None
        self.active = True
        self.set_timer(HeartbeatTimer(), HEARTBEAT_MILLIS)
        top = max(best, default=self.cleared_through)
        self.slot_in = max(self.slot_out, top + 1)
        for slot in range(self.slot_out, top + 1):
            entry = best.get(slot)
            if entry is not None and entry.chosen:
                self.log[slot] = Entry(self.ballot, entry.command, True)
                self.broadcast(Decision(slot, entry.command), self.others())
            else:
                self.send_accept(slot, entry.command if entry is not None else Noop())
        self.execute_ready()

    # ---- stable leaders and garbage collection ----------------------------------------------

    def on_HeartbeatTimer(self, timer: HeartbeatTimer) -> None:
        if not self.active:
            return  # this chain of heartbeats ends; a new one starts when leading again
        self.broadcast(Heartbeat(self.ballot, self.cleared_through), self.others())
        # Messages can be lost: ask again for the votes still missing.
        for slot, voters in self.votes.items():
            missing = [s for s in self.others() if s not in voters]
            self.broadcast(P2a(self.ballot, slot, self.log[slot].command), missing)
        self.set_timer(timer, HEARTBEAT_MILLIS)

    def on_HeartbeatCheckTimer(self, timer: HeartbeatCheckTimer) -> None:
        self.set_timer(timer, HEARTBEAT_CHECK_MILLIS)
        if self.active:
            return
        if self.heard_from_leader:
            self.heard_from_leader = False
            self.silent_checks = 0
        elif self.silent_checks < 2:
            self.silent_checks += 1
        if self.silent_checks >= 2:
            self.start_election()  # or, while still collecting promises, ask again

    def leader_alive(self) -> bool:
        """This server leads, or heard from its leader during the last check period."""
        return self.active or self.heard_from_leader or self.silent_checks == 0

    def handle_Heartbeat(self, message: Heartbeat, sender: Address) -> None:
        self.adopt(message.ballot)
        self.hear_from(sender, message.ballot)
        if message.ballot != self.ballot:
            self.send(Preempted(self.ballot), sender)
            return
        self.clear_through(min(message.cleared_through, self.slot_out - 1))
        self.send(HeartbeatReply(self.ballot, self.slot_out), sender)

    def handle_HeartbeatReply(self, message: HeartbeatReply, sender: Address) -> None:
        if not self.active or message.ballot != self.ballot:
            return
        self.executed[sender] = message.slot_out
        # Bring a lagging follower up to date with the decisions it missed.
        for slot in range(max(message.slot_out, self.cleared_through + 1), self.slot_out):
            self.send(Decision(slot, self.log[slot].command), sender)
        if len(self.executed) == len(self.servers) - 1:
            everyone = min(min(self.executed.values()), self.slot_out) - 1
            self.clear_through(everyone)

    def clear_through(self, slot: int) -> None:
        if slot <= self.cleared_through:
            return
        for old in [s for s in self.log if s <= slot]:
            del self.log[old]
            self.votes.pop(old, None)
        self.cleared_through = slot


class PaxosClient(Node):
    def __init__(self, address: Address, servers: list[Address]) -> None:
        super().__init__(address)
        self.servers = tuple(sorted(servers))
        self.seq = 0
        self.request: PaxosRequest | None = None
        self.result: Result | None = None

    def send_command(self, command: Command) -> None:
        self.seq += 1
        self.request = PaxosRequest(AMOCommand(command, self.address, self.seq))
        self.result = None
        self.broadcast(self.request, self.servers)
        self.set_timer(ClientTimer(self.request), CLIENT_RETRY_MILLIS)

    def has_result(self) -> bool:
        return self.result is not None

    def get_result(self) -> Result:
        if self.result is None:
            raise NoResultYet(f"{self.address} has no result for command {self.seq} yet")
        return self.result

    def handle_PaxosReply(self, message: PaxosReply, sender: Address) -> None:
        result: AMOResult = message.result
        if result.client == self.address and result.seq == self.seq and self.result is None:
            self.result = result.result

    def on_ClientTimer(self, timer: ClientTimer) -> None:
        if timer.request == self.request and self.result is None:
            self.broadcast(timer.request, self.servers)
            self.set_timer(timer, CLIENT_RETRY_MILLIS)
