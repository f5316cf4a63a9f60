"""Write the course's source notebooks (run from anywhere: ``python notebooks/make_notebooks.py``).

The prose lives here; the graded cells come from the labs' test registries, so
the notebooks always list every public test and every hidden test of each part
with its points. Re-run this after adding or renumbering a test (public ones in
``labkit/labs/<lab>/tests.py``, hidden ones in ``grader_tests/``);
``tests/test_course_notebooks.py`` fails while the notebooks are out of date.

Cells get fixed ids and carry no outputs, so regenerating gives the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

COURSE = Path(__file__).resolve().parent
REPO = COURSE.parent
PAXOS = COURSE / "source" / "paxos"
TOUR = COURSE / "source" / "tour"

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

SETUP = """\
%matplotlib inline
from labkit.testing import check_test, test_summary
from labkit.viz.timeline import plot_timeline"""


SUMMARY_ID = "summary"  # the closing cell; the judge fills it in the feedback (labkit.course.grading)


def _meta(grade_id: str, *, grade: bool = False, points: float | None = None) -> dict:
    nbgrader = {"grade": grade, "solution": False, "locked": True, "grade_id": grade_id, "schema_version": 3}
    if grade:
        nbgrader["points"] = points
    return {"nbgrader": nbgrader}


class Builder:
    """Collects read-only cells with unique, stable ids."""

    def __init__(self) -> None:
        self.cells: list = []
        self.counts: dict[str, int] = {}
        self.tested: list[tuple[str, str]] = []

    def _id(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}-{self.counts[kind]}"

    def md(self, text: str) -> None:
        grade_id = self._id("text")
        cell = new_markdown_cell(text.strip("\n"), metadata=_meta(grade_id))
        cell.id = grade_id
        self.cells.append(cell)

    def code(self, source: str) -> None:
        grade_id = self._id("code")
        cell = new_code_cell(source.strip("\n"), metadata=_meta(grade_id))
        cell.id = grade_id
        self.cells.append(cell)

    def test(self, lab: str, spec, solution: str) -> None:
        grade_id = f"test-{spec.part}-{spec.number}"
        if spec.hidden:
            source = (
                f"# Hidden test {spec.qualified_number} ({spec.points:g} points): it runs when your work is graded.\n"
                "### BEGIN HIDDEN TESTS\n"
                f'check_test("{lab}", "{spec.qualified_number}", solution="{solution}");\n'
                "### END HIDDEN TESTS"
            )
        else:
            source = (f"# Test {spec.qualified_number}: {spec.name} ({spec.points:g} points)\n"
                      f'check_test("{lab}", "{spec.qualified_number}", solution="{solution}");')
        # A failing test raises on purpose; the tag lets Run All go on to the next test.
        cell = new_code_cell(source, metadata={**_meta(grade_id, grade=True, points=spec.points),
                                               "tags": ["raises-exception"]})
        cell.id = grade_id
        self.cells.append(cell)
        if not spec.hidden:  # students' labkit does not know the hidden tests; the judge fills them in
            self.tested.append((lab, spec.qualified_number))

    def summary(self) -> None:
        """The closing cell: every test above with its latest result and points, and the total."""
        if not self.tested:
            return
        lab = self.tested[0][0]
        numbers = ", ".join(f'"{number}"' for _, number in self.tested)
        self.md("## Your results\n\nRe-run this cell after the tests above for the table of this notebook's "
                "tests and points. In your graded feedback it shows the graded results, hidden tests included.")
        cell = new_code_cell(f'test_summary("{lab}", [{numbers}])', metadata=_meta(SUMMARY_ID))
        cell.id = SUMMARY_ID
        self.cells.append(cell)

    def notebook(self):
        self.summary()
        nb = new_notebook(cells=self.cells, metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
        nbformat.validate(nb)
        return nb


def write(nb, path: Path) -> None:
    from nbgrader.nbgraderformat import MetadataValidator

    MetadataValidator().validate_nb(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def paxos_specs(part: int) -> list:
    """Public and hidden tests of one part, in order: public first, then hidden."""
    sys.path.insert(0, str(REPO / "grader_tests"))
    import paxos_hidden  # noqa: F401  (registers the hidden tests on the lab)

    from labkit.testing import get_lab

    specs = get_lab("paxos").select(parts=[part], include_hidden=True)
    return [s for s in specs if not s.hidden] + [s for s in specs if s.hidden]


# --------------------------------------------------------------------------
# Shared pieces of the Paxos notebooks
# --------------------------------------------------------------------------

WORKING = """\
## How to work on this part

* Your code goes in **`paxos_server.py`**, the file next to this notebook. Open it in
  JupyterLab's editor, write, save. Every part of the lab adds to the same file.
* The test cells at the bottom load `paxos_server.py` **afresh from the file each time
  they run**, so after saving you only re-run a test cell. If you also `import
  paxos_server` in cells of your own to experiment, Python keeps the first version it
  imported: call `importlib.reload(paxos_server)` after each edit, or run
  `%load_ext autoreload` and `%autoreload 2` once at the top of your session.
* The same tests run from a terminal, with the same verdicts:

  ```
  labkit test paxos --part {part} --solution paxos_server.py       # this part's public tests
  labkit test paxos -n {example} --solution paxos_server.py        # one test
  ```

  Add `--save-traces traces` to keep the run log or trace of each failing test, and
  `labkit viz FILE` to draw it.
* Every test has a fixed seed. A failing test prints the seed and a command that replays
  exactly the same run, and draws the timeline of that run under the cell.
* Hidden tests (the cells that say so) use the same checks on other scenarios. They run
  only when your work is graded; the public tests of every part are the best way to get
  them right."""


def test_section(b: Builder, part: int, intro: str) -> None:
    b.md(intro)
    for spec in paxos_specs(part):
        b.test("paxos", spec, "paxos_server.py")


# --------------------------------------------------------------------------
# Part 1
# --------------------------------------------------------------------------


def part1() -> Builder:
    b = Builder()
    b.md("""\
# Paxos, part 1: a replicated log with Multi-Paxos

In this lab you build a key-value store that keeps working while servers are cut off and
messages are lost, delayed, duplicated or reordered. Several servers keep a copy of the
store. Clients send commands; the servers agree, slot by slot, on one shared **log** of
commands and each server executes that log in order on its own copy. Agreement on each
slot is one instance of Paxos, which is why the protocol is called *multi-instance* (or
Multi-) Paxos.

What "working" means here:

* **Linearizable**: whatever the network does, each client's results must be the ones a
  single, correct server would have given if it had executed the commands one at a time,
  in an order that respects real time (a command that finished before another started
  comes first).
* **Live in a majority**: whenever a majority of servers can talk to each other (and to the
  client) with reasonable delays, commands complete. A minority must never decide anything
  on its own.

The lab has four parts, one notebook each: the protocol itself (this one), stable leaders,
garbage collection, and batching. Read *Paxos Made Simple* for the idea and *Paxos Made
Moderately Complex* (PMMC) for the multi-slot protocol this lab follows.""")
    b.md(WORKING.format(part=1, example="1.2"))
    b.code(SETUP)
    b.md("""\
## From PMMC's roles to one `PaxosServer`

PMMC describes the protocol with separate processes: *replicas* that receive client
requests and execute decided commands, *acceptors* that vote, *leaders* that propose, and
short-lived *scouts* (phase 1) and *commanders* (phase 2) that leaders spawn. In this lab
there is only one kind of server, and **each `PaxosServer` plays every role at once**.
Nothing is spawned: what a scout or commander would remember becomes ordinary attributes
of the server.

| PMMC role | what it keeps, as attributes of your server |
|---|---|
| acceptor | the highest ballot it has seen, and what it accepted in each slot |
| replica | the next slot to execute (`slot_out`), the application (an `AMOApplication` around the key-value store) |
| leader | its own ballot, whether it is *active* (phase 1 succeeded), the next free slot (`slot_in`) |
| scout (phase 1) | the promises (P1b replies) collected so far for the current ballot |
| commander (phase 2) | for each slot being decided, which acceptors have accepted it |

Because the acceptor and the replica live in the same server, one log is enough: for each
slot, keep the ballot it was accepted under, the command, and whether it is known to be
chosen. That single log is also what the four query methods below read.

The provided pieces are in `labkit.labs.paxos`: `Ballot(round, leader)` (ordered by round,
then by the leader's address), `PValue(ballot, slot, command)`, the client's
`PaxosRequest` and the server's `PaxosReply`, the client's `ClientTimer`, and
`PaxosLogSlotStatus`. You define every other message and timer yourself, as frozen
dataclasses in `paxos_server.py`.""")
    b.md("""\
## One command, start to finish

Below is a real run of a correct solution: three servers, one client, three commands (a
PUT, an APPEND and a GET), nothing lost. Time goes left to right; each arrow is a message,
coloured by type. Follow the first command:

1. the client sends its `PaxosRequest` to **every** server (it does not know who leads);
2. the active leader (`server1`) puts the command in its next free slot, accepts it itself,
   and sends a `P2a` ("accept this command in this slot under my ballot") to the others;
3. the others accept and answer `P2b`; with its own vote the leader now has a majority
   (2 of 3), so the command is **chosen**;
4. the leader executes it, replies to the client, and tells the others with a `Decision`, so
   that they execute it too.

The other servers ignore the client's request: only the leader proposes. Counting
messages between servers, one command costs 2(n-1) for the accept phase and n-1 more for
the decisions; the client adds n requests and one reply. The small grey dots are
heartbeats, which part 2 explains.""")
    b.code('plot_timeline("pictures/normal_case.jsonl")')
    b.md("""\
## When the leader changes

A leader is only a leader while no one has seen a higher ballot. When a server decides the
leader is gone, it picks a ballot higher than any it has seen and runs **phase 1**: it sends
`P1a` to everyone, and each acceptor that has not seen a higher ballot promises to ignore
lower ones and answers `P1b` with everything it has accepted. With a majority of promises,
the new leader must re-propose, in every slot, the command accepted under the highest
ballot among the replies (PMMC's *pmax*): that command may already have been chosen,
and Paxos's safety rests on never proposing anything else for that slot. Slots where no
reply shows anything (holes) can be filled with a no-op command, so that later slots can
be executed.

In this run the first leader is cut off after two commands (the orange band shows the
partition; crosses are messages dropped). The client keeps retrying; after a while
`server2` runs phase 1, becomes the leader and the remaining commands complete.""")
    b.code('plot_timeline("pictures/leader_change.jsonl")')
    b.md("""\
## A typical failure: a message lost once, waited for forever

The network may lose any message, so every step that waits for a reply needs a way to ask
again. Here the leader is cut off for 20 ms right when it sends its first `P2a`s. In the
first picture the server never sends them again: the slot is never chosen, and when the
client retries, the leader ignores the request because the command "is already being
decided". Nothing moves for the rest of the run, and a test would stop with the client still
waiting (the blue bar never ends).""")
    b.code('plot_timeline("pictures/lost_p2a_stuck.jsonl")')
    b.md("""\
The reference solution resends the `P2a` of every slot still short of a majority each time
its heartbeat timer fires, so the same start ends well:""")
    b.code('plot_timeline("pictures/lost_p2a_recovered.jsonl")')
    b.md("""\
When one of your tests fails, its cell draws a picture like these of the failing run (or of
the shortest sequence of events a search found), so you can see which message went
missing or which server decided what. For a wrong or missing answer, the picture shows the
part of the run around that client's command, with the messages that led to the answer
(or that the command set off) drawn bold and labelled. A failing search also saves its
counterexample, and its output ends with the line that opens it in the **stepper**
(`show_stepper("traces/...")`, shown in the tour), where you replay it one event at a time
and try other orders.

## Choices that are yours

The lab fixes the interface, not the design. Some decisions you will make, with what each
one costs:

* **The first leader.** Any server may start phase 1. A common shortcut: every server starts
  with the ballot `Ballot(0, lowest address)` and that server starts active. This is safe,
  because nothing can have been accepted under a lower ballot, and it saves an election
  at start-up. A server with a higher ballot later still wins.
* **How a server notices a silent leader.** Part 1 already needs *something*, since the tests
  cut leaders off and expect progress: a periodic timer that starts phase 1 when the leader
  has not been heard from for a while. Part 2 turns this into a proper heartbeat protocol; it
  is fine to build that now.
* **Who replies to the client.** The leader alone, or every server that executes the command.
* **How others learn a decision.** An explicit `Decision` message, or piggybacked on the next
  `P2a`. Either is fine for the tests' message budget.
* **What a `P1b` carries.** At least every accepted command with its ballot; sending the
  chosen ones as such lets a new leader skip re-proposing them.
* **Duplicates.** A client resends its request until it gets an answer, so the same command
  can end up in two slots. `AMOApplication` executes each client's sequence number at most
  once and remembers the last result, so executing a duplicate is harmless and answering
  a resent request is a lookup.
* **One server alone.** With one server, a majority is that server: it must decide, execute
  and reply while handling the request, without sending itself messages (test 1.27 counts
  the steps).

Rules every node follows: handlers are deterministic (no clock, no `random`, no threads,
no sleeping, no globals), all state lives in attributes, and a server never sends a
message to itself: it calls the method it needs directly.""")
    b.md("""\
## What to write for part 1

In `paxos_server.py`:

* **`PaxosServer.__init__`**: the state of every role (see the table above). The constructor
  must not send or set timers.
* **`PaxosServer.init`**: start your periodic timer(s).
* The four **query methods** the tests call on every state they check. They read only this
  server's log, accept any slot ≥ 1, are cheap, and change nothing:
  * `status(slot)`: `CLEARED` for a garbage-collected slot (part 3; until then nothing is
    cleared), otherwise `CHOSEN` if known chosen, `ACCEPTED` if accepted, else `EMPTY`;
  * `command(slot)`: the command in the slot, **unwrapped** from its `AMOCommand`, or `None` for
    an empty or cleared slot;
  * `first_non_cleared()`: 1 until anything is garbage-collected;
  * `last_non_empty()`: the highest slot that is not empty, 0 for an empty log.
* **`handle_PaxosRequest`**: reply at once if the command was already executed; propose it if
  this server is the active leader; otherwise ignore it.
* Your **messages** (for example `P1a`, `P1b`, `P2a`, `P2b`, `Decision`) and their
  `handle_<Message>` methods, and your **timers** with their `on_<Timer>` methods.
* **`PaxosClient`**: `send_command` (wrap the command in an `AMOCommand` with the next
  sequence number, send a `PaxosRequest` to every server, set a `ClientTimer`),
  `has_result`, `get_result` (raise `NoResultYet` before the answer), `handle_PaxosReply`
  (keep only the answer to the latest command) and `on_ClientTimer` (resend while there is
  no answer; ignore stale timers).

To experiment outside the tests, build a small run yourself, for example:

```python
import importlib, paxos_server
importlib.reload(paxos_server)               # your latest saved version
from labkit import KVStore, server, client
from labkit.sim import Simulation
from labkit.labs.paxos.workloads import simple_workload
sim = Simulation(seed=1)
servers = [server(i) for i in (1, 2, 3)]
for a in servers:
    sim.add_server(paxos_server.PaxosServer(a, servers, KVStore()))
sim.add_worker(paxos_server.PaxosClient(client(1), servers), simple_workload())
sim.run_until_done(5_000)
plot_timeline(sim, window=(0, 50))
```""")
    test_section(b, 1, """\
## The tests of part 1

Every test checks, at the end of each run, that no handler raised and that the
clients' history is linearizable. Many also check the logs themselves through your query
methods: no two servers may have different chosen commands in a slot, a chosen slot must
have been accepted by a majority, and the markers must agree with the statuses (slots
below `first_non_cleared()` are cleared, slots above `last_non_empty()` are empty).

* **Run tests** (1.1-1.15) drive clients through a simulated network: the client contract,
  simple operations, progress with a majority and none in a minority, a partition that heals,
  a server that moves between partitions, many clients at once, and the same on a network
  that loses 20% of messages.
* **Search tests** (1.20-1.31) explore every ordering of events a small system allows, up to a
  budget: one client in a majority must finish and a minority must never decide (1.20, 1.21),
  two clients in overlapping majorities (1.22), a leader that must not count stale votes as
  a quorum (1.23), logs with holes (1.24), random deep explorations (1.25, 1.26), a single
  server (1.27), and three ballots in play while old accepts, rejections and preemptions are
  still in flight (1.30, 1.31): whoever leads next must re-propose the value accepted under the
  highest ballot, and a server must never go back on a ballot it promised or accepted. A search
  that passes within its budget is evidence, not proof.
* Tests marked hidden run the same checks on other scenarios when your work is graded.

The long search tests take a minute or more each. Run one test with its cell, or all of them
from a terminal while you read.""")
    return b


# --------------------------------------------------------------------------
# Part 2
# --------------------------------------------------------------------------


def part2() -> Builder:
    b = Builder()
    b.md("""\
# Paxos, part 2: stable leaders

Part 1 works as soon as *some* server eventually leads. This part makes leadership
**stable**: one leader stays in charge as long as it can talk to a majority, and the others
only try to take over when it has gone quiet. Without that, servers that each think the
leader is gone keep starting phase 1 with ever higher ballots, preempt one another, and
spend their time electing instead of deciding commands.""")
    b.md(WORKING.format(part=2, example="2.10"))
    b.code(SETUP)
    b.md("""\
## The heartbeat protocol

* **Followers stay quiet.** A leader that learns of a higher ballot (a `P1a`, a `P2a`, a
  heartbeat, or an explicit "preempted" reply) does not start phase 1 again at once. It
  becomes a follower of that ballot's server.
* **The active leader sends heartbeats.** It broadcasts a `Heartbeat` to the other servers
  on a short periodic timer (for example every 25 ms).
* **Every server checks.** Every server runs a periodic `HeartbeatCheckTimer` (for example
  every 100 ms). A follower that sees **two checks in a row** without hearing from the
  leader it follows (the server of the highest ballot it has seen) starts phase 1 with a
  higher ballot.

Why two checks and not one: a heartbeat sent just after one check and delayed a little
would otherwise trigger an election while the leader is fine. Fixed timer lengths are
enough; PMMC's adaptive timeouts (AIMD) are optional.

This is an **optimisation only**. Two servers can still believe they lead at the same time,
for instance on both sides of a partition that has just healed. Safety does not depend on a
single leader: ballots and majorities guarantee that at most one command is chosen per
slot, whoever proposes.""")
    b.md("""\
## A correct run: one leader, quiet followers

Three servers, one client, five commands, then a while with nothing to do. The heartbeats
and their replies are drawn as small grey dots on the receiving lane (the title counts
them); the short ticks are timers firing. After the commands, the only traffic is the
heartbeat, and no one runs phase 1.""")
    b.code('plot_timeline("pictures/stable_leader.jsonl")')
    b.md("""\
## A typical failure: impatient followers

The same start with a bug: each follower starts phase 1 at every check, whether or not it
heard from the leader. Every 100 ms `P1a`, `P1b` and `Preempted` messages cross as the
servers take the leadership from one another. Safety still holds here, but the messages
per command and the waiting times grow, and under a steady load commands can wait a long
time for a leader to stay in charge long enough to finish them. Tests 2.10 and 2.16-2.19
measure exactly that.""")
    b.code('plot_timeline("pictures/dueling_leaders.jsonl")')
    b.md("""\
Counting messages by type from the two runs makes the difference plain:""")
    b.code("""\
from labkit.viz.stats import messages_per_command
messages_per_command("pictures/stable_leader.jsonl").join(
    messages_per_command("pictures/dueling_leaders.jsonl"), lsuffix=" (stable)", rsuffix=" (impatient)", how="outer")""")
    b.md("""\
## What to write for part 2

In `paxos_server.py`:

* a `Heartbeat` message (with at least the leader's ballot) and its `handle_Heartbeat`: adopt
  a higher ballot, and note that the leader was heard from;
* two timers, for example `HeartbeatTimer` (the leader's periodic broadcast) and
  `HeartbeatCheckTimer` (every server's periodic check), with their `on_...` methods, set
  first in `init()` and set again each time they fire (timers cannot be cancelled: a timer
  that is no longer needed is simply ignored when it fires);
* in the handlers of phase 1 and phase 2: a server that sees a higher ballot stops leading;
* the leader's heartbeat is also a good moment to resend whatever is still waiting for
  replies (`P2a`s short of a majority, `P1a`s short of promises).

Cost to aim for: with a stable leader and n servers, one command needs about n requests,
2(n-1) accept-phase messages, n-1 decisions (unless piggybacked) and one reply, plus the
heartbeats. Test 2.10 allows 15 messages per server per command, far above that.""")
    test_section(b, 2, """\
## The tests of part 2

* **2.10, message count**: one client, 500 commands on five servers; the messages sent to
  servers, per command, must stay under 75. Elections that never stop blow through it.
* **2.16, single partition and heal**: five clients keep working while a minority is cut off and
  reconnected; no client may wait more than 3 s for an answer.
* **2.17-2.19, constant repartitioning**: the network is cut into a random majority and minority
  every few seconds, for 30-50 s, also with 20% loss. Every client must be answered within
  2 s of asking (2.17, 2.18), and after the storm new clients must finish (2.19): a leader that
  never stabilises, or a follower that waits too long, fails these.
* Every run also checks linearizability and consistent logs, as in part 1.""")
    return b


# --------------------------------------------------------------------------
# Part 3
# --------------------------------------------------------------------------


def part3() -> Builder:
    b = Builder()
    b.md("""\
# Paxos, part 3: garbage collection

A server that keeps every slot forever runs out of memory in a long-running deployment.
In this part servers **forget slots that are no longer needed**, and a server that fell
behind catches up with the decisions it missed.

When is a slot no longer needed? Not when *this* server has executed it: another server may
still need to learn it. In this lab a slot may be cleared only once **every** server has
executed it. (Clearing what a majority has executed is possible too, but then a lagging
server must be sent the whole application state instead of the missing decisions; this lab
keeps things simpler.)""")
    b.md(WORKING.format(part=3, example="3.11"))
    b.code(SETUP)
    b.md("""\
## Riding on the heartbeats

The heartbeat exchange from part 2 carries what garbage collection needs:

1. each follower answers a heartbeat with the next slot it will execute (PMMC's
   `slot_out`);
2. the active leader keeps the latest answer of each server; the slot before the smallest
   of them, and before its own `slot_out`, has been executed **everywhere**;
3. the leader puts that slot number in its next heartbeats, and every server that receives it
   (the leader included) drops all slots up to it;
4. when a follower's answer shows it is behind, the leader sends it the decisions it is
   missing, so it can execute them and catch up.

After clearing, a server reports the slots as `CLEARED` and `first_non_cleared()` moves past
them. Nothing needs to happen while some server is unreachable: clearing only has to make
progress when every server can talk.

Watch out for the interactions: a new leader's phase 1 must not resurrect cleared slots,
`last_non_empty()` must stay consistent with `first_non_cleared()` when the log is
empty, and a follower must never clear a slot it has not executed itself.""")
    b.md("""\
## A correct run

`server3` is cut off while ten PUTs are decided by the other two, then the network heals.
In the timeline, after the orange band, the leader sends `server3` the decisions it missed.
The plot under it counts the slots each server still keeps (last non-empty minus first
non-cleared, plus one): it drops to zero on every server once `server3` has caught up.""")
    b.code('plot_timeline("pictures/gc_reference.jsonl")')
    b.code("""\
from labkit.labs.paxos.pictures import plot_log_sizes
plot_log_sizes("gc_reference")""")
    b.md("""\
## A typical failure: nothing is ever cleared

The same run with garbage collection left out: every command is decided and executed, the
clients are happy, and the logs only grow. Test 3.11 catches this by measuring the memory the
servers use after twenty PUTs of a megabyte each.""")
    b.code('plot_log_sizes("gc_missing")')
    b.md("""\
## What to write for part 3

In `paxos_server.py`:

* a reply to heartbeats carrying the follower's `slot_out`, and its handler at the leader,
  which records it, sends lagging followers their missing decisions, and computes the slot
  executed everywhere;
* a field of your `Heartbeat` carrying that slot, and the code that clears slots up to it
  when a heartbeat arrives (at the leader, when it computes it);
* `status`, `command`, `first_non_cleared` and `last_non_empty` now see cleared slots: a
  cleared slot is `CLEARED` and has no command;
* make sure the values really are gone: delete them from your log (and from anything else
  that holds commands, such as pending proposals), because the test measures memory.""")
    test_section(b, 3, """\
## The tests of part 3

* **3.11, old commands garbage collected**: with one server cut off, a client stores twenty
  values of a megabyte; the servers must then hold more than 20 MB. The network heals, the
  client sends twenty small PUTs, and 4 s later all nodes together must use less than 2 MiB:
  every server, the one that was cut off included, must have cleared the big values (the
  key-value store itself then holds only the small ones).
* Hidden tests check the same with other servers cut off, on a lossy network, and that a
  server that lagged can take part in a majority afterwards.""")
    return b


# --------------------------------------------------------------------------
# Part 4
# --------------------------------------------------------------------------


def part4() -> Builder:
    b = Builder()
    b.md("""\
# Paxos, part 4: batching

With many clients at once, deciding each command in a slot of its own costs a full accept
round per command. **Batching** decides several waiting commands in one slot: one `P2a`,
one round of `P2b`s and one decision for all of them. Throughput goes up and messages per
command go down, without changing the protocol's safety: a batch is just a command whose
execution runs its commands in order.""")
    b.md(WORKING.format(part=4, example="4.28"))
    b.code(SETUP)
    b.md("""\
## One way to batch

The reference solution keeps a small number of slots in flight (say eight). While that many
are undecided, new requests wait in a list at the leader. When a slot is decided and room
opens, everything waiting goes into the next slot as one batch. Under light load nothing
waits and each command still gets its own slot at once, so latency does not suffer; under
heavy load batches grow by themselves.

Details to get right:

* a batch holds `AMOCommand`s: execute each in order through the `AMOApplication` and answer
  each client, skipping duplicates as usual;
* a request that is already waiting or already in flight (in a slot or a batch) must not be
  added again when the client resends it;
* `command(slot)` returns what is in the slot; for a batch that is the batch itself (the tests
  only compare commands between servers);
* a leader that loses its leadership drops its waiting list: the clients will resend.

Other designs work too, for example a short batching timer. Whatever you choose, commands
must never wait for a batch to fill up.""")
    b.md("""\
## Batching, seen in two runs

Eight clients append at once to three servers. First the reference, then the same run with
batching turned off (every request gets its own slot at once). The second timeline is much
denser, and the counts below show where the extra messages go.""")
    b.code('plot_timeline("pictures/batching.jsonl", window=(0, 60))')
    b.code('plot_timeline("pictures/no_batching.jsonl", window=(0, 60))')
    b.code("""\
from labkit.viz.stats import plot_messages_per_command
plot_messages_per_command("pictures/no_batching.jsonl", servers_only=True)""")
    b.code('plot_messages_per_command("pictures/batching.jsonl", servers_only=True)')
    b.md("""\
## What to write for part 4

In `paxos_server.py`: a command type for a batch (a frozen dataclass holding a tuple of
`AMOCommand`s), a waiting list at the leader, the rule that decides when waiting requests go
into a slot, and execution of a decided batch. Nothing changes for the client.""")
    test_section(b, 4, """\
## The tests of part 4

* **4.28, requests batched**: forty clients append at once on three servers; the log must hold
  at least two commands per slot on average (`last_non_empty()` against the commands completed).
  Without batching every command takes a slot of its own.
* **4.29, efficiency report** (0 points): prints the messages sent per command by type on five
  servers with one client, next to the minimum a stable leader needs. Use it to see where
  your messages go.
* Every run also checks that the appends are linearizable and the logs consistent.""")
    return b


# --------------------------------------------------------------------------
# The tour
# --------------------------------------------------------------------------


def _toy_source(*names: str) -> str:
    """The definitions of ``names`` in the tour's toys.py, as written there."""
    import ast

    text = (TOUR / "toys.py").read_text()
    lines = text.splitlines()
    found = {node.name: node for node in ast.parse(text).body if isinstance(node, ast.ClassDef)}
    blocks = []
    for name in names:
        node = found[name]
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        blocks.append("\n".join(lines[first - 1:node.end_lineno]))
    return "\n\n".join(blocks)


def tour() -> Builder:
    from labkit.testing import get_lab

    b = Builder()
    b.md("""\
# A tour of labkit, with a small lab to try it on

labkit runs the nodes you write (servers and clients) in a **simulated network** that can
lose, delay, duplicate and reorder messages and cut the network into partitions, all in
virtual time and decided by one seed, so any run can be replayed exactly. It also
**explores** every ordering of events a small system allows, checks what clients saw, and
draws what happened.

This notebook shows those pieces on toys, then asks you to write the smallest lab there is:
a client that pings a server and retries until the answer comes. It is graded like the
Paxos lab, so it is also a rehearsal for how that works.""")
    b.code("""\
%matplotlib inline
from labkit import Address
from labkit.sim import Simulation
from labkit.sim.settings import RunSettings
from labkit.testing import check_test, test_summary
from labkit.viz.timeline import plot_timeline""")
    b.md(f"""\
## Nodes, messages and timers

A node is a class derived from `Node`. Messages and timers are frozen dataclasses. labkit
calls a handler named after the class of what arrives: a message `Tick` goes to
`handle_Tick(self, message, sender)`, a timer `Beat` to `on_Beat(self, timer)`. `init()` runs
once before anything else; the constructor must not send. A node's state is its attributes.

Nodes live in a Python file beside the notebook, never in a notebook cell: labkit runs every
node in a separate, locked-down process, which imports the node's file (your `ping_server.py`
will be one such file). The toys of this tour are in **`toys.py`**. The first one: a
`Metronome` sends a `Tick` to its `Listener` every 10 ms of virtual time; the listener answers
each with a `Tock`.

```python
{_toy_source("Tick", "Tock", "Beat", "Metronome", "Listener")}
```""")
    b.code("from toys import Listener, Metronome")
    b.md("""\
## Running it

A `Simulation` holds the nodes and the network. Here the network delivers 70% of messages,
each after 1-8 ms. The timeline has one lane per node and one arrow per message; a cross
marks a message the network dropped, a tick a timer firing.""")
    b.code("""\
sim = Simulation(seed=7, settings=RunSettings(delivery_rate=0.7, latency=(1, 8)))
listener = sim.add_server(Listener(Address("listener")))
metronome = sim.add_server(Metronome(Address("metronome"), listener.address))
sim.run_for(100)
print(f"{metronome.sent} ticks sent, {len(metronome.answered)} answered")
plot_timeline(sim)""")
    b.md("""\
Everything that happened is in `sim.log`, also as a pandas DataFrame. Run the cell above
again: the same seed gives the same run, event for event. Change the seed and the losses
move.""")
    b.code("sim.log.to_dataframe().head(12)")
    b.md("""\
## Tests, seeds and searches

A lab's tests come in two kinds:

* **run tests** drive clients through a simulation like the one above (with losses,
  partitions...) and check the results at the end;
* **search tests** explore every ordering of message deliveries and timer firings a small
  system allows, up to a budget, and check an invariant in every state reached. A violation
  comes back as the shortest sequence of events that leads to it.

Each test prints one line, `TEST <number>: <name> ... PASS` or `FAIL`. A failing test
explains what went wrong in plain words, prints its seed and a command to replay it, and
draws the failing run under the cell. From a terminal the same tests give the same
verdicts: `labkit test ping --solution ping_server.py`.""")
    b.md(f"""\
### A search finds a bug

The second toy in `toys.py`: two voters each send one `Vote` to a tally, which counts them.

```python
{_toy_source("Vote", "Voter", "Tally")}
```

It looks right, and in most runs it is. A search asks instead: *is there any order of events
that breaks it?* The invariant below says the tally never counts more votes than there are
voters. In a search the network keeps every message it was given (so one can arrive twice,
as a real network may duplicate it), and the breadth-first search finds the shortest
sequence of events that breaks the invariant.""")
    b.code("""\
from labkit.check.predicates import predicate
from labkit.search import SearchSettings, SearchState, bfs
from labkit.viz.trace_table import CounterexampleTable
from toys import Tally, Voter

tally = Address("tally")
start = SearchState.initial(servers=[Tally(tally), Voter(Address("alice"), tally), Voter(Address("bob"), tally)])

@predicate("At most one vote per voter")
def one_vote_each(state):
    votes = state.nodes[tally].votes
    return votes <= 2, f"the tally counted {votes} votes from 2 voters"

result = bfs(start, SearchSettings(invariants=[one_vote_each]))
print(result.outcome.value, f"after {result.states} states")
CounterexampleTable(result.trace)""")
    b.md("""\
Each row is one event and the fields of the node that it changed. Here one `Vote` arrives
three times: the tally counts messages, not voters. (The fix: keep the *set* of voters
heard from, and count its size.)

### Stepping through a counterexample

The **stepper** replays a counterexample one event at a time. Each panel is a node: its
state (changed fields highlighted), the messages it could receive and the timers that could
fire, each with a button. Press **deliver** on any of them, including ones the trace did
not take, to see what else could happen; **Back** goes back, and the history below lets
you jump to any step and branch from there.

When a search test of yours fails, its output names the file it saved the counterexample
in and the line to open it here: `show_stepper("traces/<file>.trace.json")`.""")
    b.code("""\
from labkit.viz.stepper_widget import show_stepper
show_stepper(result.trace)""")
    b.md("""\
## Your turn: the ping lab

`labkit.labs.ping` provides `Ping` (a command carrying a string), `Pong` (the result with the
same string), the messages `PingRequest(ping)` and `PongReply(pong)`, `PingApplication`
(turns a `Ping` into its `Pong`), the timer `PingTimer(ping)` and `RETRY_MILLIS`.

Write, in **`ping_server.py`** next to this notebook:

* `PingServer(address)`: answers each `PingRequest` with a `PongReply` of the application's
  result, sent back to the sender;
* `PingClient(address, server_address)`: a closed-loop client. `send_command(ping)` sends a
  `PingRequest` and sets a `PingTimer`; `has_result()` and `get_result()` report the `Pong`
  (raise `NoResultYet` before it arrives; return the same result on every call);
  `handle_PongReply` keeps a reply only if it answers the current ping; `on_PingTimer` resends
  if the answer has still not come (and ignores a timer left over from an older ping).

The test cells load `ping_server.py` afresh each time they run, so save and re-run a cell.
If you `import ping_server` yourself to experiment, use `importlib.reload(ping_server)`
after each edit (or `%load_ext autoreload` then `%autoreload 2`).""")
    b.md("## The tests")
    for spec in get_lab("ping").select():
        b.test("ping", spec, "ping_server.py")
    return b


PAXOS_NOTEBOOKS = {
    "1_multi_paxos.ipynb": part1,
    "2_stable_leaders.ipynb": part2,
    "3_garbage_collection.ipynb": part3,
    "4_batching.ipynb": part4,
}


def build_all() -> dict[Path, object]:
    """Every source notebook of the course, by path."""
    notebooks = {PAXOS / name: make().notebook() for name, make in PAXOS_NOTEBOOKS.items()}
    notebooks[TOUR / "tour.ipynb"] = tour().notebook()
    return notebooks


def main() -> None:
    for path, nb in build_all().items():
        write(nb, path)
        print(f"wrote {path.relative_to(REPO)} ({len(nb.cells)} cells)")


if __name__ == "__main__":
    main()
