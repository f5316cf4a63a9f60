"""Two-phase commit: one coordinator, a few participants whose votes are fixed
by constructor parameters, and a coordinator timeout that aborts.

``BuggyCoordinator`` commits as soon as a *majority* of participants voted yes
(the planted bug): with one "no" voter it can commit while that participant
has already aborted on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from labkit import Address, Message, Node, Timer
from labkit.check.predicates import predicate

VOTE_TIMEOUT_MILLIS = 10
RESEND_MILLIS = 5


@dataclass(frozen=True)
class Prepare(Message):
    pass


@dataclass(frozen=True)
class Vote(Message):
    yes: bool


@dataclass(frozen=True)
class Decide(Message):
    commit: bool


@dataclass(frozen=True)
class VoteTimeout(Timer):
    pass


@dataclass(frozen=True)
class ResendVote(Timer):
    pass


class Coordinator(Node):
    def __init__(self, address: Address, participants: Sequence[Address]) -> None:
        super().__init__(address)
        self.participants = list(participants)
        self.votes: dict[Address, bool] = {}
        self.decision: str | None = None

    def init(self) -> None:
        self.broadcast(Prepare(), self.participants)
        self.set_timer(VoteTimeout(), VOTE_TIMEOUT_MILLIS)

    def decide(self, commit: bool) -> None:
        self.decision = "commit" if commit else "abort"
        self.broadcast(Decide(commit), self.participants)

    def ready_to_commit(self) -> bool:
        return len(self.votes) == len(self.participants) and all(self.votes.values())

    def handle_Vote(self, message: Vote, sender: Address) -> None:
        if self.decision is not None:
            return
        self.votes[sender] = message.yes
        if not message.yes:
            self.decide(False)
        elif self.ready_to_commit():
            self.decide(True)

    def on_VoteTimeout(self, timer: VoteTimeout) -> None:
        if self.decision is None:
            self.decide(False)


class BuggyCoordinator(Coordinator):
    """Planted bug: commits on a majority of yes votes and ignores no votes."""

    def ready_to_commit(self) -> bool:
        return sum(1 for v in self.votes.values() if v) * 2 > len(self.participants)

    def handle_Vote(self, message: Vote, sender: Address) -> None:
        if self.decision is not None:
            return
        self.votes[sender] = message.yes
        if self.ready_to_commit():
            self.decide(True)


class Participant(Node):
    def __init__(self, address: Address, coordinator: Address, vote: bool, resend: bool = True) -> None:
        super().__init__(address)
        self.coordinator = coordinator
        self.vote = vote
        self.resend = resend
        self.voted = False
        self.outcome: str | None = None

    def handle_Prepare(self, message: Prepare, sender: Address) -> None:
        if self.voted:
            return
        self.voted = True
        if not self.vote:
            self.outcome = "abort"  # a "no" voter may abort unilaterally
        self.send(Vote(self.vote), self.coordinator)
        if self.resend and self.outcome is None:
            self.set_timer(ResendVote(), RESEND_MILLIS)

    def on_ResendVote(self, timer: ResendVote) -> None:
        if self.outcome is None:
            self.send(Vote(self.vote), self.coordinator)
            self.set_timer(ResendVote(), RESEND_MILLIS)

    def handle_Decide(self, message: Decide, sender: Address) -> None:
        self.outcome = "commit" if message.commit else "abort"


COORDINATOR = Address("coord")


def participants(n: int) -> list[Address]:
    return [Address(f"p{i}") for i in range(1, n + 1)]


def make_nodes(votes: Sequence[bool], buggy: bool = False, resend: bool = True) -> list[Node]:
    """Fresh nodes: the coordinator first, then one participant per vote."""
    addrs = participants(len(votes))
    cls = BuggyCoordinator if buggy else Coordinator
    return [cls(COORDINATOR, addrs)] + [Participant(a, COORDINATOR, v, resend) for a, v in zip(addrs, votes)]


def _outcomes(nodes) -> dict:
    out = {}
    for node in nodes:
        if isinstance(node, Participant) and node.outcome is not None:
            out[node.address] = node.outcome
        if isinstance(node, Coordinator) and node.decision is not None:
            out[node.address] = node.decision
    return out


def atomic(nodes) -> tuple[bool, str | None]:
    """No two nodes reached different outcomes, and nothing committed after a no vote."""
    outcomes = _outcomes(nodes)
    if len(set(outcomes.values())) > 1:
        return False, "different outcomes: " + ", ".join(f"{a}={o}" for a, o in sorted(outcomes.items()))
    if "commit" in outcomes.values():
        no = [n.address for n in nodes if isinstance(n, Participant) and not n.vote]
        if no:
            return False, f"committed although {no[0]} voted no"
    return True, None


@predicate("2PC atomicity")
def ATOMIC(state) -> tuple[bool, str | None]:
    return atomic([n.state for n in state.nodes.values()])


@predicate("2PC decided")
def DECIDED(state) -> bool:
    return all(n.outcome is not None for n in state.nodes.values() if isinstance(n.state, Participant))
