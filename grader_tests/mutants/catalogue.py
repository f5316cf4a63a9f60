"""Known-buggy variants of solutions/paxos/paxos_server.py, each a classic Paxos mistake.

Every mutant is a patch (exact snippets of the reference replaced), so it stays
small and fails loudly when the reference changes. ``labkit check-solution``
checks that the public and hidden tests catch each one.
"""

from __future__ import annotations

from labkit.testing.check_solution import Mutant

__all__ = ["MUTANTS"]

MUTANTS: list[Mutant] = [
    Mutant(
        "accepts_below_promise",
        "An acceptor accepts a P2a whose ballot is below the one it promised.",
        ((
            "        if message.ballot != self.ballot:\n"
            "            self.send(Preempted(self.ballot), sender)\n"
            "            return\n"
            "        if message.slot > self.cleared_through:\n",
            "        if message.slot > self.cleared_through:\n",
        ),),
    ),
    Mutant(
        "proposes_client_value_over_accepted",
        "After phase 1 the leader re-proposes only chosen slots; slots holding an accepted value get new client commands.",
        ((
            "        top = max(best, default=self.cleared_through)\n",
            "        top = max((s for s, e in best.items() if e.chosen), default=self.cleared_through)\n",
        ),),
    ),
    Mutant(
        "phase1_ignores_accepted_values",
        "After phase 1 the leader fills every slot that is not chosen with a no-op, dropping accepted values.",
        ((
            "                self.send_accept(slot, entry.command if entry is not None else Noop())\n",
            "                self.send_accept(slot, Noop())\n",
        ),),
    ),
    Mutant(
        "phase1_prefers_lowest_ballot",
        "The phase-1 merge keeps the value accepted under the lowest ballot instead of the highest.",
        ((
            "not known.chosen and entry.ballot > known.ballot\n",
            "not known.chosen and entry.ballot < known.ballot\n",
        ),),
    ),
    Mutant(
        "p2b_ballot_not_checked",
        "The leader counts P2b votes without checking that they are for its current ballot.",
        ((
            "if not self.active or message.ballot != self.ballot or message.slot not in self.votes:\n",
            "if not self.active or message.slot not in self.votes:\n",
        ),),
    ),
    Mutant(
        "duplicate_votes_counted",
        "Votes are kept in a list, so a duplicated P2b from one acceptor counts twice.",
        (
            ("        self.votes[slot] = frozenset({self.address})\n", "        self.votes[slot] = (self.address,)\n"),
            ("        self.votes[message.slot] = self.votes[message.slot] | {sender}\n",
             "        self.votes[message.slot] = self.votes[message.slot] + (sender,)\n"),
        ),
    ),
    Mutant(
        "minority_quorum",
        "A quorum is len(servers) // 2, one short of a majority.",
        (("        return len(self.servers) // 2 + 1\n", "        return len(self.servers) // 2\n"),),
    ),
    Mutant(
        "executes_past_holes",
        "A server executes the next chosen slot even when an earlier slot is not decided yet.",
        ((
            "            entry = self.log.get(self.slot_out)\n"
            "            if entry is None or not entry.chosen:\n"
            "                return\n",
            "            ready = [s for s in self.log if s >= self.slot_out and self.log[s].chosen]\n"
            "            if not ready:\n"
            "                return\n"
            "            self.slot_out = min(ready)\n"
            "            entry = self.log[self.slot_out]\n",
        ),),
    ),
    Mutant(
        "executes_duplicates",
        "Commands run on the bare application, so a command that lands in two slots runs twice.",
        ((
            "                    result = self.app.execute(command)\n",
            "                    result = AMOResult(self.app.application.execute(command.command), command.client, command.seq)\n",
        ),),
    ),
    Mutant(
        "gc_up_to_leader_slot_out",
        "The leader garbage-collects everything it has executed itself, without waiting for the other servers.",
        ((
            "        if len(self.executed) == len(self.servers) - 1:\n"
            "            everyone = min(min(self.executed.values()), self.slot_out) - 1\n"
            "            self.clear_through(everyone)\n",
            "        self.clear_through(self.slot_out - 1)\n",
        ),),
    ),
    Mutant(
        "no_election",
        "A follower that stops hearing from the leader never starts phase 1.",
        (("            self.start_election()", "            pass"),),
    ),
    Mutant(
        "leader_never_steps_down",
        "A leader that sees a higher ballot adopts it but stays active, proposing under another server's ballot.",
        ((
            "            self.ballot = ballot\n            self.active = False\n",
            "            self.ballot = ballot\n",
        ),),
    ),
    Mutant(
        "replies_before_chosen",
        "The leader answers a request at once from a scratch copy of the application, before the command is chosen.",
        ((
            "        else:\n            self.propose(command)\n",
            "        else:\n            self.propose(command)\n"
            "        early = __import__('copy').deepcopy(self.app).execute(command)\n"
            "        if early is not None:\n"
            "            self.send(PaxosReply(early), sender)\n",
        ),),
    ),
    Mutant(
        "follower_ignores_decisions",
        "Servers ignore Decision messages, so lagging followers never catch up.",
        ((
            "    def handle_Decision(self, message: Decision, sender: Address) -> None:\n",
            "    def handle_Decision(self, message: Decision, sender: Address) -> None:\n        return\n",
        ),),
    ),
    Mutant(
        "promise_without_raising_ballot",
        "An acceptor answers every P1a with a promise but keeps its old ballot, so it still accepts the old leader's P2a.",
        ((
            "        self.adopt(message.ballot)\n"
            "        if message.ballot == self.ballot:\n"
            "            self.send(P1b(self.ballot, self.held_entries()), sender)\n"
            "        else:\n"
            "            self.send(Preempted(self.ballot), sender)\n",
            "        self.send(P1b(message.ballot, self.held_entries()), sender)\n",
        ),),
    ),
    Mutant(
        "stale_promises_counted",
        "The candidate counts P1b promises without checking that they are for its current ballot.",
        ((
            "        if self.promises is None or message.ballot != self.ballot:\n",
            "        if self.promises is None:\n",
        ),),
    ),
    Mutant(
        "p2a_does_not_raise_ballot",
        "An acceptor accepts a P2a with a higher ballot but keeps its lower promised ballot, so a late P2a of an "
        "older ballot can overwrite the value.",
        ((
            "        self.adopt(message.ballot)\n"
            "        self.hear_from(sender, message.ballot)\n"
            "        if message.ballot != self.ballot:\n"
            "            self.send(Preempted(self.ballot), sender)\n"
            "            return\n"
            "        if message.slot > self.cleared_through:\n",
            "        self.hear_from(sender, message.ballot)\n"
            "        if message.ballot < self.ballot:\n"
            "            self.send(Preempted(self.ballot), sender)\n"
            "            return\n"
            "        if message.slot > self.cleared_through:\n",
        ),),
    ),
    Mutant(
        "phase1_takes_last_promise",
        "After phase 1 the leader re-proposes, per slot, the value of the P1b that completed its majority "
        "(or of any other promise), whatever ballot it was accepted under.",
        (
            ("    def check_promises(self) -> None:\n", "    def check_promises(self, latest: Address | None = None) -> None:\n"),
            ("        self.promises[sender] = message.entries\n        self.check_promises()\n",
             "        self.promises[sender] = message.entries\n        self.check_promises(sender)\n"),
            ("        for entries in self.promises.values():\n",
             "        for _, entries in sorted(self.promises.items(), key=lambda item: (item[0] == latest, item[0])):\n"),
            ("                if known is None or (entry.chosen and not known.chosen) or (\n"
             "                    not known.chosen and entry.ballot > known.ballot\n"
             "                ):\n",
             "                if known is None or not known.chosen:\n"),
        ),
    ),
    Mutant(
        "ballots_by_address_first",
        "Ballots are compared by leader address first and round second, so a new ballot (round + 1) of a "
        "lower-addressed server is below the one it promised.",
        ((
            "# ---- commands placed in the log -------------------------------------------------\n",
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
            "# ---- commands placed in the log -------------------------------------------------\n",
        ),),
    ),
    Mutant(
        "preemption_lowers_ballot",
        "A server takes the ballot of every Preempted message, even one lower than its own, so a late "
        "preemption lowers its promise.",
        ((
            "    def handle_Preempted(self, message: Preempted, sender: Address) -> None:\n"
            "        self.adopt(message.ballot)\n",
            "    def handle_Preempted(self, message: Preempted, sender: Address) -> None:\n"
            "        if message.ballot != self.ballot:\n"
            "            self.active = False\n"
            "            self.promises = None\n"
            "            self.votes = {}\n"
            "            self.waiting = ()\n"
            "        self.ballot = message.ballot\n",
        ),),
    ),
    Mutant(
        "client_never_retries",
        "The client sends each request once and never resends it.",
        ((
            "        if timer.request == self.request and self.result is None:\n"
            "            self.broadcast(timer.request, self.servers)\n"
            "            self.set_timer(timer, CLIENT_RETRY_MILLIS)\n",
            "        pass\n",
        ),),
    ),
    Mutant(
        "client_accepts_old_reply",
        "The client takes a late reply to an earlier command as the result of its current one.",
        ((
            "result.seq == self.seq and self.result is None",
            "result.seq <= self.seq and self.result is None",
        ),),
    ),
]
