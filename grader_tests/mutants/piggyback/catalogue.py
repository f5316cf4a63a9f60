"""Known-buggy variants of solutions/paxos/piggyback/paxos_server.py, the second reference.

The same classic Paxos mistakes as ``grader_tests/mutants/catalogue.py``, written
for this design (an election at start-up, decisions as a mark on Accept and
Heartbeat, replies from every server, batching behind a window of slots in
flight), plus the mistakes that belong to that design.
"""

from __future__ import annotations

from labkit.testing.check_solution import Mutant

__all__ = ["MUTANTS"]

MUTANTS: list[Mutant] = [
    Mutant(
        "accepts_below_promise",
        "An acceptor accepts an Accept whose ballot is below the one it promised.",
        ((
            "        if message.ballot < self.promised:\n"
            "            self.send(Reject(self.promised), sender)\n"
            "            return\n"
            "        self.promise(message.ballot)\n",
            "        self.promise(message.ballot)\n",
        ),),
    ),
    Mutant(
        "accept_does_not_raise_promise",
        "An acceptor accepts an Accept with a higher ballot but keeps its lower promise, so a late Accept of an "
        "older ballot can overwrite the value.",
        ((
            "            return\n        self.promise(message.ballot)\n        self.hear(sender, message.ballot, proposing=True)\n",
            "            return\n        self.follow(message.ballot)\n        self.hear(sender, message.ballot, proposing=True)\n",
        ),),
    ),
    Mutant(
        "phase1_takes_last_promise",
        "After phase 1 the leader re-proposes, per slot, the value of the last promise received that holds one, "
        "whatever ballot it was accepted under.",
        ((
            "                if known is None or (entry.chosen and not known.chosen) or (\n"
            "                        not known.chosen and entry.ballot > known.ballot):\n",
            "                if known is None or not known.chosen:\n",
        ),),
    ),
    Mutant(
        "ballots_by_address_first",
        "Ballots are compared by leader address first and round second, so a new ballot (round + 1) of a "
        "lower-addressed server is below the one it promised.",
        ((
            "# ---- what the log holds -----------------------------------------------------------\n",
            "@dataclass(frozen=True)\n"
            "class Ballot:\n"
            "    round: int\n"
            "    leader: Address\n"
            "\n"
            "    def __lt__(self, other: 'Ballot') -> bool:\n"
            "        return (self.leader, self.round) < (other.leader, other.round)\n"
            "\n"
            "    def __gt__(self, other: 'Ballot') -> bool:\n"
            "        return other < self\n"
            "\n"
            "    def __le__(self, other: 'Ballot') -> bool:\n"
            "        return not other < self\n"
            "\n"
            "    def __ge__(self, other: 'Ballot') -> bool:\n"
            "        return not self < other\n"
            "\n"
            "\n"
            "# ---- what the log holds -----------------------------------------------------------\n",
        ),),
    ),
    Mutant(
        "reject_sets_promise",
        "A server takes the ballot of every Reject as its promise, even one lower than the promise it holds.",
        ((
            "    def handle_Reject(self, message: Reject, sender: Address) -> None:\n        self.follow(message.ballot)\n",
            "    def handle_Reject(self, message: Reject, sender: Address) -> None:\n        self.follow(message.ballot)\n"
            "        self.promised = message.ballot\n",
        ),),
    ),
    Mutant(
        "mark_ignores_ballot",
        "A follower marks every slot up to the leader's chosen mark as chosen, even one it accepted under an "
        "older ballot (which may hold another value).",
        ((
            "            if entry is not None and not entry.chosen and entry.ballot == ballot:\n",
            "            if entry is not None and not entry.chosen:\n",
        ),),
    ),
    Mutant(
        "proposes_client_value_over_accepted",
        "After phase 1 the leader re-proposes only chosen slots; slots holding an accepted value get new client "
        "commands.",
        ((
            "        top = max(best, default=0)\n",
            "        top = max((s for s, e in best.items() if e.chosen), default=0)\n",
        ),),
    ),
    Mutant(
        "phase1_ignores_accepted_values",
        "After phase 1 the leader fills every slot that is not chosen with a no-op, dropping accepted values.",
        ((
            "            if entry is None:\n                self.send_accept(slot, Noop())\n",
            "            if entry is None or not entry.chosen:\n                self.send_accept(slot, Noop())\n",
        ),),
    ),
    Mutant(
        "phase1_prefers_lowest_ballot",
        "The phase-1 merge keeps the value accepted under the lowest ballot instead of the highest.",
        (("not known.chosen and entry.ballot > known.ballot):\n", "not known.chosen and entry.ballot < known.ballot):\n"),),
    ),
    Mutant(
        "votes_ballot_not_checked",
        "The leader counts Accepted votes without checking that they are for its current ballot.",
        ((
            "        if self.leading and message.ballot == self.ballot and message.slot in self.votes:\n",
            "        if self.leading and message.slot in self.votes:\n",
        ),),
    ),
    Mutant(
        "duplicate_votes_counted",
        "Votes are kept in a tuple, so a duplicated Accepted from one acceptor counts twice.",
        (
            ("            self.votes[slot] = frozenset({self.address})\n", "            self.votes[slot] = (self.address,)\n"),
            ("            self.votes[message.slot] |= {sender}\n", "            self.votes[message.slot] += (sender,)\n"),
        ),
    ),
    Mutant(
        "minority_quorum",
        "A quorum is half of the servers, rounded down: one short of a majority.",
        (("        return 2 * count > len(self.servers)\n", "        return 2 * count >= len(self.servers) - 1\n"),),
    ),
    Mutant(
        "stale_promises_counted",
        "The candidate counts promises without checking that they are for its current ballot.",
        ((
            "        if self.leading or message.ballot != self.ballot or any(who == sender for who, _ in self.promises):\n",
            "        if self.leading or self.ballot is None or any(who == sender for who, _ in self.promises):\n",
        ),),
    ),
    Mutant(
        "promise_without_raising_promise",
        "An acceptor answers a higher Prepare with a promise but keeps its old promise, so it still accepts the "
        "old leader's Accepts.",
        ((
            "        self.promise(message.ballot)\n        self.hear(sender, message.ballot, proposing=False)\n",
            "        self.follow(message.ballot)\n        self.hear(sender, message.ballot, proposing=False)\n",
        ),),
    ),
    Mutant(
        "executes_past_holes",
        "A server executes the next chosen slot even when an earlier slot is not decided yet.",
        ((
            "        while (entry := self.log.get(self.slot_out)) is not None and entry.chosen:\n",
            "        while (ready := [s for s in sorted(self.log) if s >= self.slot_out and self.log[s].chosen]):\n"
            "            self.slot_out = ready[0]\n"
            "            entry = self.log[self.slot_out]\n",
        ),),
    ),
    Mutant(
        "executes_duplicates",
        "Commands run on the bare application, so a command that lands in two slots runs twice.",
        ((
            "                result = self.app.execute(command)\n",
            "                result = AMOResult(self.app.application.execute(command.command), command.client, command.seq)\n",
        ),),
    ),
    Mutant(
        "gc_up_to_leader_slot_out",
        "The leader garbage-collects everything it has executed itself, without waiting for the other servers.",
        ((
            "        if len(self.executed_at) == len(self.servers) - 1:\n"
            "            self.clear_through(min(min(self.executed_at.values()), self.slot_out) - 1)\n",
            "        self.clear_through(self.slot_out - 1)\n",
        ),),
    ),
    Mutant(
        "no_catch_up",
        "The leader never sends a lagging follower the slots it missed.",
        ((
            "            self.send(Accept(self.ballot, slot, self.log[slot].command, self.slot_out - 1), sender)\n",
            "            pass\n",
        ),),
    ),
    Mutant(
        "no_election",
        "A follower that stops hearing from the leader never starts phase 1.",
        (("        if self.ballot is None:\n            self.campaign()\n", "        if self.ballot is None:\n            pass\n"),),
    ),
    Mutant(
        "leader_never_steps_down",
        "A leader that sees a higher ballot notes it but stays in office, proposing under its old ballot.",
        ((
            "        if self.ballot is not None and ballot > self.ballot:\n",
            "        if self.ballot is not None and ballot > self.ballot and not self.leading:\n",
        ),),
    ),
    Mutant(
        "replies_before_chosen",
        "The leader answers a request at once from a scratch copy of the application, before the command is chosen.",
        ((
            "        if self.next_slot - self.slot_out < MAX_IN_FLIGHT:\n            self.propose(command)\n",
            "        if self.next_slot - self.slot_out < MAX_IN_FLIGHT:\n            self.propose(command)\n"
            "            early = __import__('copy').deepcopy(self.app).execute(command)\n"
            "            if early is not None:\n"
            "                self.send(PaxosReply(early), sender)\n",
        ),),
    ),
    Mutant(
        "client_never_retries",
        "The client sends each request once and never resends it.",
        ((
            "        if timer.request == self.outstanding:\n"
            "            self.broadcast(timer.request, self.servers)\n"
            "            self.set_timer(timer, CLIENT_RETRY_MILLIS)\n",
            "        pass\n",
        ),),
    ),
    Mutant(
        "client_accepts_old_reply",
        "The client takes a late reply to an earlier command as the result of its current one.",
        ((
            "answer.seq == self.seq and answer.client == self.address",
            "answer.seq <= self.seq and answer.client == self.address",
        ),),
    ),
]
