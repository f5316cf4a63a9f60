"""Single-decree Paxos: three acceptors, two proposers with distinct values.

Ballots are ``(round, proposer index)`` tuples. Acceptors keep ``votes``, the
set of every ``(ballot, value)`` they ever accepted (a history variable), so a
learner check can tell which values were *chosen* (accepted by a majority in
one ballot). Proposers learn their own value chosen from ``Accepted`` replies.
A proposer may retry with a higher round on a timer, up to ``max_round``.

Planted bugs: ``BuggyAcceptor`` accepts a ballot below its promise;
``BuggyProposer`` ignores the values reported in phase 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from labkit import Address, Message, Node, Timer
from labkit.check.predicates import predicate

Ballot = tuple  # (round, proposer index)


@dataclass(frozen=True)
class Prepare(Message):
    ballot: Ballot


@dataclass(frozen=True)
class Promise(Message):
    ballot: Ballot
    accepted: Any  # (ballot, value) or None


@dataclass(frozen=True)
class Accept(Message):
    ballot: Ballot
    value: str


@dataclass(frozen=True)
class Accepted(Message):
    ballot: Ballot


@dataclass(frozen=True)
class RetryTimer(Timer):
    round: int


class Acceptor(Node):
    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.promised: Ballot | None = None
        self.accepted: tuple | None = None
        self.votes: set[tuple] = set()

    def handle_Prepare(self, message: Prepare, sender: Address) -> None:
        if self.promised is None or message.ballot >= self.promised:
            self.promised = message.ballot
            self.send(Promise(message.ballot, self.accepted), sender)

    def may_accept(self, ballot: Ballot) -> bool:
        return self.promised is None or ballot >= self.promised

    def handle_Accept(self, message: Accept, sender: Address) -> None:
        if self.may_accept(message.ballot):
            self.promised = message.ballot if self.promised is None else max(self.promised, message.ballot)
            self.accepted = (message.ballot, message.value)
            self.votes.add((message.ballot, message.value))
            self.send(Accepted(message.ballot), sender)


class BuggyAcceptor(Acceptor):
    """Planted bug: accepts any ballot, even one below its promise."""

    def may_accept(self, ballot: Ballot) -> bool:
        return True


class Proposer(Node):
    def __init__(self, address: Address, acceptors: Sequence[Address], value: str, index: int,
                 max_round: int = 1) -> None:
        super().__init__(address)
        self.acceptors = list(acceptors)
        self.value = value
        self.index = index
        self.max_round = max_round
        self.ballot: Ballot = (1, index)
        self.phase = 1
        self.promises: dict[Address, Any] = {}
        self.proposal: str | None = None
        self.accepts: set[Address] = set()
        self.decided: str | None = None

    def init(self) -> None:
        self.start()

    def start(self) -> None:
        self.phase = 1
        self.promises = {}
        self.accepts = set()
        self.proposal = None
        self.broadcast(Prepare(self.ballot), self.acceptors)
        if self.ballot[0] < self.max_round:
            self.set_timer(RetryTimer(self.ballot[0]), 10)

    def majority(self) -> int:
        return len(self.acceptors) // 2 + 1

    def choose(self) -> str:
        reported = [a for a in self.promises.values() if a is not None]
        return max(reported)[1] if reported else self.value

    def handle_Promise(self, message: Promise, sender: Address) -> None:
        if message.ballot != self.ballot or self.phase != 1:
            return
        self.promises[sender] = message.accepted
        if len(self.promises) >= self.majority():
            self.phase = 2
            self.proposal = self.choose()
            self.broadcast(Accept(self.ballot, self.proposal), self.acceptors)

    def handle_Accepted(self, message: Accepted, sender: Address) -> None:
        if message.ballot != self.ballot or self.phase != 2:
            return
        self.accepts.add(sender)
        if len(self.accepts) >= self.majority():
            self.phase = 3
            self.decided = self.proposal

    def on_RetryTimer(self, timer: RetryTimer) -> None:
        if self.decided is None and timer.round == self.ballot[0] and self.ballot[0] < self.max_round:
            self.ballot = (self.ballot[0] + 1, self.index)
            self.start()


class BuggyProposer(Proposer):
    """Planted bug: ignores the values acceptors report in phase 1."""

    def choose(self) -> str:
        return self.value


ACCEPTORS = [Address("a1"), Address("a2"), Address("a3")]
PROPOSERS = [Address("p1"), Address("p2")]
VALUES = ["x", "y"]


def make_nodes(bug: str | None = None, max_round: int = 1) -> list[Node]:
    """Fresh nodes: three acceptors then two proposers. ``bug`` is None, "acceptor" or "proposer"."""
    acc_cls = BuggyAcceptor if bug == "acceptor" else Acceptor
    prop_cls = BuggyProposer if bug == "proposer" else Proposer
    acceptors: list[Node] = [acc_cls(a) for a in ACCEPTORS]
    proposers: list[Node] = [prop_cls(p, ACCEPTORS, v, i + 1, max_round) for i, (p, v) in enumerate(zip(PROPOSERS, VALUES))]
    return acceptors + proposers


def chosen_values(nodes) -> set[str]:
    """Values accepted by a majority of acceptors in the same ballot."""
    acceptors = [n for n in nodes if isinstance(n, Acceptor)]
    counts: dict[tuple, int] = {}
    for a in acceptors:
        for vote in a.votes:
            counts[vote] = counts.get(vote, 0) + 1
    return {vote[1] for vote, c in counts.items() if c * 2 > len(acceptors)}


def agreement(nodes) -> tuple[bool, str | None]:
    chosen = chosen_values(nodes)
    learned = {n.decided for n in nodes if isinstance(n, Proposer) and n.decided is not None}
    if len(chosen) > 1:
        return False, f"two values chosen: {sorted(chosen)}"
    if len(learned) > 1:
        return False, f"proposers learned different values: {sorted(learned)}"
    return True, None


@predicate("Paxos agreement")
def AGREEMENT(state) -> tuple[bool, str | None]:
    return agreement([n.state for n in state.nodes.values()])


@predicate("Paxos value learned")
def LEARNED(state) -> bool:
    return any(n.decided is not None for n in state.nodes.values() if isinstance(n.state, Proposer))
