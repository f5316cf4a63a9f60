"""Second reference solution of the Paxos lab, built on other design choices than
``solutions/paxos/paxos_server.py`` so that the tests can be checked against two
correct designs. It is a complete ``paxos_server.py``, as a student would submit it.

One ``PaxosServer`` plays every role:

* acceptor: ``promised`` (the highest ballot promised) and the ``log``, one
  ``Slot`` per log slot;
* replica: ``slot_out`` (the next slot to execute) and the application;
* proposer: ``ballot`` while it campaigns (phase 1) or leads, with the
  ``promises`` received in arrival order and the ``votes`` of each slot in
  phase 2;
* follower: ``leader_ballot``, the highest ballot seen, whose server it follows.

Where it differs from the first reference:

* No server starts as leader: every server runs phase 1 in ``init()`` with
  ballot ``(1, itself)``, and the highest ballot that reaches a majority wins.
* No decision message. The leader's ``chosen_through`` (every slot up to it is
  chosen) rides on each ``Accept`` and ``Heartbeat``; a server marks its slots up
  to that mark chosen when it accepted them under the same ballot (it then holds
  the leader's value, which is the chosen one). A server that is behind says so
  in its heartbeat reply and gets the missing slots as ``Accept``\\ s again.
* Every server that executes a command answers the client, not only the leader.
* At most ``MAX_IN_FLIGHT`` slots are being decided at once; requests that arrive
  meanwhile wait and go into the next free slot together, as one ``Batch``.
* A stale heartbeat timer is recognised by the ballot it carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit import AMOApplication, AMOCommand, AMOResult, Address, Application, Command, Message, Node, NoResultYet, Result, Timer
from labkit.labs.paxos import CLIENT_RETRY_MILLIS, Ballot, ClientTimer, PaxosLogSlotStatus, PaxosReply, PaxosRequest

HEARTBEAT_MILLIS = 30
CHECK_MILLIS = 120
MAX_IN_FLIGHT = 3  # slots being decided at once; later requests wait and are batched


# ---- what the log holds -----------------------------------------------------------


@dataclass(frozen=True)
class Noop(Command):
    """Fills a slot that phase 1 found empty below an occupied one."""


@dataclass(frozen=True)
class Batch(Command):
    """Client commands decided together in one slot, executed in order."""

    commands: tuple[AMOCommand, ...]


@dataclass(frozen=True)
class Slot:
    """What this server accepted in one slot, under which ballot, and whether it is known chosen."""

    ballot: Ballot
    command: Command
    chosen: bool


# ---- messages and timers --------------------------------------------------------------


@dataclass(frozen=True)
class Prepare(Message):
    ballot: Ballot


@dataclass(frozen=True)
class Promise(Message):
    ballot: Ballot
    accepted: tuple[tuple[int, Slot], ...]  # every slot this server still holds


@dataclass(frozen=True)
class Accept(Message):
    ballot: Ballot
    slot: int
    command: Command
    chosen_through: int  # the leader knows every slot up to here is chosen


@dataclass(frozen=True)
class Accepted(Message):
    ballot: Ballot
    slot: int


@dataclass(frozen=True)
class Reject(Message):
    """Answers a message whose ballot is below the one the receiver holds."""

    ballot: Ballot


@dataclass(frozen=True)
class Heartbeat(Message):
    ballot: Ballot
    chosen_through: int
    cleared_through: int  # every server has executed every slot up to here


@dataclass(frozen=True)
class Executed(Message):
    """A follower's answer to a heartbeat: the next slot it will execute."""

    ballot: Ballot
    slot_out: int
    chosen_through: int  # the heartbeat's mark: slots below it that are not executed here are missing


@dataclass(frozen=True)
class HeartbeatTimer(Timer):
    ballot: Ballot  # the leadership it was set for; stale once that ends


@dataclass(frozen=True)
class HeartbeatCheckTimer(Timer):
    pass


def client_commands(command: Command) -> tuple[AMOCommand, ...]:
    """The client commands a log entry holds (none for a no-op)."""
    if isinstance(command, Batch):
        return command.commands
    return (command,) if isinstance(command, AMOCommand) else ()


class PaxosServer(Node):
    def __init__(self, address: Address, servers: list[Address], app: Application) -> None:
        super().__init__(address)
        self.servers = tuple(sorted(servers))
        self.app = AMOApplication(app)
        nothing = Ballot(0, self.servers[0])  # below every ballot a server campaigns with
        # acceptor
        self.promised = nothing
        self.log: dict[int, Slot] = {}
        # replica
        self.slot_out = 1
        self.cleared_through = 0
        # proposer
        self.ballot: Ballot | None = None  # set while campaigning or leading
        self.leading = False
        self.promises: tuple[tuple[Address, tuple[tuple[int, Slot], ...]], ...] = ()
        self.votes: dict[int, frozenset[Address]] = {}
        self.next_slot = 1
        self.waiting: tuple[AMOCommand, ...] = ()
        self.executed_at: dict[Address, int] = {}
        # follower
        self.leader_ballot = nothing
        self.leader_active = False  # the leader of leader_ballot was heard proposing or beating
        self.heard = False  # from that leader since the last check
        self.silent_checks = 0

    def init(self) -> None:
        self.set_timer(HeartbeatCheckTimer(), CHECK_MILLIS)
        self.campaign()

    # ---- the four query methods -------------------------------------------------------

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
        return entry.command.command if isinstance(entry.command, AMOCommand) else entry.command

    def first_non_cleared(self) -> int:
        return self.cleared_through + 1

    def last_non_empty(self) -> int:
        return max(self.log, default=self.cleared_through)

    # ---- helpers ----------------------------------------------------------------------

    def others(self) -> list[Address]:
        return [s for s in self.servers if s != self.address]

    def is_majority(self, count: int) -> bool:
        return 2 * count > len(self.servers)

    def held(self) -> tuple[tuple[int, Slot], ...]:
        return tuple(sorted(self.log.items()))

    def follow(self, ballot: Ballot) -> None:
        """Note a ballot seen; a higher one than ours ends our campaign or leadership."""
        if ballot > self.leader_ballot:
            self.leader_ballot = ballot
            self.leader_active = False
        if self.ballot is not None and ballot > self.ballot:
            self.ballot = None
            self.leading = False
            self.promises = ()
            self.votes = {}
            self.waiting = ()

    def promise(self, ballot: Ballot) -> None:
        self.follow(ballot)
        if ballot > self.promised:
            self.promised = ballot

    def hear(self, sender: Address, ballot: Ballot, proposing: bool) -> None:
        if ballot == self.leader_ballot and sender == ballot.leader:
            self.heard = True
            self.leader_active = self.leader_active or proposing

    def loyal(self) -> bool:
        """This server leads, or its leader was heard proposing and has not been silent for two checks."""
        return self.leading or (self.leader_active and self.silent_checks < 2)

    # ---- clients ------------------------------------------------------------------------

    def handle_PaxosRequest(self, message: PaxosRequest, sender: Address) -> None:
        command = message.command
        if self.app.already_executed(command):
            result = self.app.execute(command)
            if result is not None:
                self.send(PaxosReply(result), sender)
            return
        if not self.leading or command in self.waiting or self.in_flight(command):
            return
        if self.next_slot - self.slot_out < MAX_IN_FLIGHT:
            self.propose(command)
        else:
            self.waiting += (command,)

    def in_flight(self, command: AMOCommand) -> bool:
        return any(entry is not None and command in client_commands(entry.command)
                   for entry in map(self.log.get, range(self.slot_out, self.next_slot)))

    # ---- phase 1 ------------------------------------------------------------------------

    def campaign(self) -> None:
        """Phase 1 with a ballot above every ballot this server has seen."""
        top = max(self.promised.round, self.leader_ballot.round)
        self.ballot = Ballot(top + 1, self.address)
        self.leading = False
        self.votes = {}
        self.waiting = ()
        self.promise(self.ballot)
        self.promises = ((self.address, self.held()),)
        self.broadcast(Prepare(self.ballot), self.others())
        self.count_promises()

    def handle_Prepare(self, message: Prepare, sender: Address) -> None:
        if message.ballot < self.promised:
            self.send(Reject(self.promised), sender)
            return
        if message.ballot > self.promised and self.loyal() and sender != self.leader_ballot.leader:
            return  # our leader is alive: do not help unseat it (not promising is always safe)
        self.promise(message.ballot)
        self.hear(sender, message.ballot, proposing=False)
        self.send(Promise(message.ballot, self.held()), sender)

    def handle_Promise(self, message: Promise, sender: Address) -> None:
        if self.leading or message.ballot != self.ballot or any(who == sender for who, _ in self.promises):
            return
        self.promises += ((sender, message.accepted),)
        self.count_promises()

    def count_promises(self) -> None:
        if not self.is_majority(len(self.promises)):
            return
        # Per slot: a chosen command if any server knows one, else the one accepted under the highest ballot.
        best: dict[int, Slot] = {}
        for _, accepted in self.promises:
            for slot, entry in accepted:
                known = best.get(slot)
                if known is None or (entry.chosen and not known.chosen) or (
                        not known.chosen and entry.ballot > known.ballot):
                    best[slot] = entry
        assert self.ballot is not None
        self.leading = True
        self.promises = ()
        self.executed_at = {}
        top = max(best, default=0)
        self.next_slot = max(self.slot_out, top + 1)
        for slot in range(self.slot_out, top + 1):
            entry = best.get(slot)
            if entry is None:
                self.send_accept(slot, Noop())
            else:
                self.send_accept(slot, entry.command, chosen=entry.chosen)
        self.execute_chosen()
        if len(self.servers) > 1:
            self.set_timer(HeartbeatTimer(self.ballot), HEARTBEAT_MILLIS)

    # ---- phase 2 ----------------------------------------------------------------------

    def propose(self, command: Command) -> None:
        slot = self.next_slot
        self.next_slot += 1
        self.send_accept(slot, command)

    def send_accept(self, slot: int, command: Command, chosen: bool = False) -> None:
        """Accept ``command`` here (this server is an acceptor too) and ask the others to."""
        assert self.ballot is not None
        self.log[slot] = Slot(self.ballot, command, chosen)
        self.broadcast(Accept(self.ballot, slot, command, self.slot_out - 1), self.others())
        if not chosen:
            self.votes[slot] = frozenset({self.address})
            self.tally(slot)

    def handle_Accept(self, message: Accept, sender: Address) -> None:
        if message.ballot < self.promised:
            self.send(Reject(self.promised), sender)
            return
        self.promise(message.ballot)
        self.hear(sender, message.ballot, proposing=True)
        if message.slot > self.cleared_through:
            entry = self.log.get(message.slot)
            if entry is None or not entry.chosen:
                self.log[message.slot] = Slot(message.ballot, message.command, False)
        self.send(Accepted(message.ballot, message.slot), sender)
        self.learn_chosen(message.ballot, message.chosen_through)

    def handle_Accepted(self, message: Accepted, sender: Address) -> None:
        if self.leading and message.ballot == self.ballot and message.slot in self.votes:
            self.votes[message.slot] |= {sender}
            self.tally(message.slot)

    def tally(self, slot: int) -> None:
        if not self.is_majority(len(self.votes[slot])):
            return
        del self.votes[slot]
        entry = self.log[slot]
        self.log[slot] = Slot(entry.ballot, entry.command, True)
        self.execute_chosen()
        if self.waiting and self.next_slot - self.slot_out < MAX_IN_FLIGHT:
            waiting, self.waiting = self.waiting, ()
            self.propose(waiting[0] if len(waiting) == 1 else Batch(waiting))

    def handle_Reject(self, message: Reject, sender: Address) -> None:
        self.follow(message.ballot)

    def learn_chosen(self, ballot: Ballot, through: int) -> None:
        """The leader of ``ballot`` knows slots up to ``through`` are chosen: ours accepted under
        ``ballot`` hold its value, so they are chosen too."""
        for slot in range(self.slot_out, through + 1):
            entry = self.log.get(slot)
            if entry is not None and not entry.chosen and entry.ballot == ballot:
                self.log[slot] = Slot(entry.ballot, entry.command, True)
        self.execute_chosen()

    def execute_chosen(self) -> None:
        """Execute chosen slots in order, up to the first one not known chosen, answering each client."""
        while (entry := self.log.get(self.slot_out)) is not None and entry.chosen:
            for command in client_commands(entry.command):
                result = self.app.execute(command)
                if result is not None:
                    self.send(PaxosReply(result), command.client)
            self.slot_out += 1
        self.next_slot = max(self.next_slot, self.slot_out)

    # ---- stable leaders and garbage collection ----------------------------------------------

    def on_HeartbeatTimer(self, timer: HeartbeatTimer) -> None:
        if not self.leading or timer.ballot != self.ballot:
            return
        self.broadcast(Heartbeat(self.ballot, self.slot_out - 1, self.cleared_through), self.others())
        for slot, voters in self.votes.items():  # ask again for the votes still missing
            missing = [s for s in self.others() if s not in voters]
            self.broadcast(Accept(self.ballot, slot, self.log[slot].command, self.slot_out - 1), missing)
        self.set_timer(timer, HEARTBEAT_MILLIS)

    def on_HeartbeatCheckTimer(self, timer: HeartbeatCheckTimer) -> None:
        self.set_timer(timer, CHECK_MILLIS)
        if self.leading:
            return
        if self.heard:
            self.heard = False
            self.silent_checks = 0
            return
        self.silent_checks = min(self.silent_checks + 1, 2)
        if self.silent_checks < 2:
            return
        if self.ballot is None:
            self.campaign()
        else:  # still campaigning: ask again those that have not promised
            promised = {who for who, _ in self.promises}
            self.broadcast(Prepare(self.ballot), [s for s in self.others() if s not in promised])

    def handle_Heartbeat(self, message: Heartbeat, sender: Address) -> None:
        if message.ballot < self.leader_ballot:
            self.send(Reject(self.leader_ballot), sender)
            return
        self.follow(message.ballot)
        self.hear(sender, message.ballot, proposing=True)
        self.learn_chosen(message.ballot, message.chosen_through)
        self.clear_through(min(message.cleared_through, self.slot_out - 1))
        self.send(Executed(message.ballot, self.slot_out, message.chosen_through), sender)

    def handle_Executed(self, message: Executed, sender: Address) -> None:
        if not self.leading or message.ballot != self.ballot:
            return
        self.executed_at[sender] = message.slot_out
        # A follower that is behind gets the slots it misses again, under this ballot.
        for slot in range(max(message.slot_out, self.cleared_through + 1), message.chosen_through + 1):
            self.send(Accept(self.ballot, slot, self.log[slot].command, self.slot_out - 1), sender)
        if len(self.executed_at) == len(self.servers) - 1:
            self.clear_through(min(min(self.executed_at.values()), self.slot_out) - 1)

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
        self.outstanding: PaxosRequest | None = None  # the request still waiting for its result
        self.result: Result | None = None

    def send_command(self, command: Command) -> None:
        self.seq += 1
        self.outstanding = PaxosRequest(AMOCommand(command, self.address, self.seq))
        self.result = None
        self.broadcast(self.outstanding, self.servers)
        self.set_timer(ClientTimer(self.outstanding), CLIENT_RETRY_MILLIS)

    def has_result(self) -> bool:
        return self.result is not None

    def get_result(self) -> Result:
        if self.result is None:
            raise NoResultYet(f"{self.address} is still waiting for the result of command {self.seq}")
        return self.result

    def handle_PaxosReply(self, message: PaxosReply, sender: Address) -> None:
        answer: AMOResult = message.result
        if self.outstanding is not None and answer.seq == self.seq and answer.client == self.address:
            self.result = answer.result
            self.outstanding = None

    def on_ClientTimer(self, timer: ClientTimer) -> None:
        if timer.request == self.outstanding:
            self.broadcast(timer.request, self.servers)
            self.set_timer(timer, CLIENT_RETRY_MILLIS)
