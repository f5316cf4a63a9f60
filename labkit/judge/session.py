"""The workers of one test: the student's files, the box, the limits, and the accounts.

A :class:`Session` copies the submitted module (and the ``.py`` files beside
it) into a fresh working folder, starts boxed workers on demand (the primary
one hosts the nodes of simulated runs and serves searches with the other
search workers, a checker replays a share of steps from their encoded
state), counts the CPU time they use
against the test's budget, collects what student code printed, and stops
everything at the end. Nothing here runs student code: it only talks to
processes that do.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable

import labkit
from labkit.judge.nodes import (NO_OBSERVATIONS, HostedNode, Outcome, RemoteSolution, RunHost, forget_values,
                                remote_exception)
from labkit.judge.worker import InfrastructureError, Limits, WorkerFailure, WorkerProcess, worker_argv
from labkit.node import LabkitError
from labkit.wire import WireValue, class_name, forget_schemas, trust_module

__all__ = ["Session", "BudgetExceeded", "NondeterminismError", "default_workers", "CHECKER"]

MAX_FILES = 200  # .py files copied from beside the submitted module
BUDGET_CHECK_EVERY = 256  # requests between two looks at the CPU time used
MAX_FILE_BYTES = 2 * 1024 * 1024
CHECKER = "checker"
_LABKIT_DIR = Path(labkit.__file__).resolve().parent


class BudgetExceeded(LabkitError):
    """The test's student code used more CPU time than the test allows."""


class NondeterminismError(LabkitError):
    """A step gave a different outcome when replayed from its encoded state in a fresh worker."""


def default_workers() -> int:
    """Search workers: one per CPU this process may use (``LABKIT_WORKERS`` overrides), at most 8."""
    configured = os.environ.get("LABKIT_WORKERS")
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            raise LabkitError(f"LABKIT_WORKERS must be a whole number, got {configured!r}") from None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return max(1, min(8, usable))


class Session(RunHost):
    """Workers for one test (see the module docstring). Use as a context manager or call :meth:`close`."""

    def __init__(self, *, solution: str | Path | None = None, label: str | None = None,
                 cpu_budget: float = 1200.0, limits: Limits | None = None, observers: dict[str, str] | None = None,
                 queries: Iterable[str] = ()) -> None:
        from labkit.worker.box import choose_box_uid, prepare_folder

        self.cpu_budget = cpu_budget
        self.limits = limits or Limits(cpu_seconds=cpu_budget + 60.0)
        self.observers = dict(observers or {})
        self.queries = frozenset(queries)
        self.uid = choose_box_uid()
        self.workdir = Path(tempfile.mkdtemp(prefix="labkit-work-"))
        prepare_folder(str(self.workdir), self.uid)
        self.modules: list[str] = []
        self.solution_module: str | None = None
        self.solution_path: Path | None = None
        self.label = label
        self.workers: dict[str, WorkerProcess] = {}
        self.cpu_of_stopped = 0.0
        self.printed = 0
        self.output: list[str] = []
        self.protections: dict[str, Any] = {}
        self._names: dict[str, str] | None = None
        self._requests = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _cleanup, self.workers, self.workdir, self.uid)
        if solution is not None:
            self.add_solution(Path(solution))

    # ---- what the workers load ---------------------------------------------------------------

    def add_solution(self, path: Path) -> None:
        """The submitted module: copied with the ``.py`` files beside it; it is loaded last."""
        from labkit.testing.solution import SolutionError

        path = path.expanduser()
        if path.is_dir():
            raise SolutionError(f"{path} is a folder; give the path of your .py file")
        if not path.exists():
            raise SolutionError(f"there is no file {path}; check the path given with --solution")
        if path.suffix != ".py":
            raise SolutionError(f"{path} is not a Python file (.py)")
        name = path.stem
        if not name.isidentifier():
            raise SolutionError(f"{path.name} cannot be imported as a module: rename it to a valid Python name")
        if name in sys.builtin_module_names or name == "labkit":
            raise SolutionError(f"{path.name} has the name of a module Python or labkit already has: rename it")
        copied = 0
        for sibling in sorted(path.parent.glob("*.py")):
            if sibling.is_file() and sibling.stat().st_size <= MAX_FILE_BYTES and copied < MAX_FILES:
                shutil.copyfile(sibling, self.workdir / sibling.name)
                copied += 1
        shutil.copyfile(path, self.workdir / path.name)
        forget_schemas()  # this submission's classes may share names, not fields, with the last one judged
        forget_values()  # and values decoded with the last one's field names
        self.solution_module = name
        self.solution_path = path.resolve()
        if self.label is None:
            self.label = path.name

    def add_module_of(self, cls: type) -> None:
        """Let workers import the (trusted, judge-side) module that defines ``cls``, and let the judge
        decode its values as that class: how framework tests and labs hand over nodes of their own."""
        module = sys.modules.get(cls.__module__)
        if module is None:
            raise LabkitError(f"the module {cls.__module__} of {cls.__qualname__} is not loaded")
        if cls.__module__ == "__main__":
            raise LabkitError(f"{cls.__qualname__} is defined in the script being run (__main__): workers can only make "
                              "nodes of classes they can import; put the class in a module beside the script and "
                              "import it from there")
        if "<locals>" in cls.__qualname__:
            raise LabkitError(f"{cls.__qualname__} is defined inside a function: workers can only make nodes of "
                              "classes defined at the top level of a module")
        self.add_module(module)

    def add_module(self, module: Any) -> None:
        """Let workers import ``module`` (trusted code of the judge's side), copied into their folder."""
        name = module.__name__
        trust_module(name)
        if name in self.modules or name.split(".")[0] == "labkit":
            return
        file = getattr(module, "__file__", None)
        if file is None:
            raise LabkitError(f"the module {name} has no file: workers cannot load it")
        top = name.split(".")[0]
        top_file = Path(getattr(sys.modules.get(top), "__file__", None) or file).resolve()
        folder = top_file.parent.parent if top_file.name == "__init__.py" else top_file.parent
        _copy_python_tree(folder, self.workdir)
        self.modules.append(name)
        for worker in self.workers.values():
            self._load(worker, [name])

    # ---- workers ----------------------------------------------------------------------------

    def worker(self, name: str) -> WorkerProcess:
        """The worker called ``name`` (``primary``, ``search1``, ..., ``checker``), started if needed."""
        found = self.workers.get(name)
        if found is not None and not found.failed:
            return found
        if found is not None:
            self.cpu_of_stopped += found.stop() - found.cpu_at_start
        from labkit.worker.box import python_readable_paths

        box = {
            "limits": {"cpu_seconds": self.limits.cpu_seconds, "memory_bytes": self.limits.memory_bytes,
                       "processes": 1, "file_bytes": 0, "open_files": 64},
            "readable": list(python_readable_paths()) + [str(self.workdir)],
            "writable": [],
            "network_namespace": True,
        }
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",  # the same set and dict orders in every worker
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "HOME": str(self.workdir),
        }
        worker = WorkerProcess(worker_argv(box, self.uid), env, self.workdir, self.limits, self.uid, name)
        self.protections = worker.protections
        self.workers[name] = worker
        names = self._load(worker, self.modules + ([self.solution_module] if self.solution_module else []))
        if self._names is None:
            self._names = names
        for role, target in self.observers.items():
            self.request(worker, [["observer", role, target]], [], doing="setting up")
        return worker

    def _load(self, worker: WorkerProcess, modules: list[str]) -> dict[str, str]:
        from labkit.testing.solution import SolutionError

        if not modules:
            return {}
        replies, payloads = self.request(worker, [["load", modules, self.solution_module]], [],
                                         doing=f"importing {self.label or modules[-1]}")
        reply = replies[0]
        error = reply.get("error")
        if error:
            self._account(replies, payloads)
            if error.get("type") == "SyntaxError":
                raise SolutionError(f"{error.get('file') or self.label} has a syntax error on line {error.get('line')}: "
                                    f"{error.get('message')}\n    {error.get('text', '')}")
            raise SolutionError(f"importing {self.label} failed:\n{error.get('traceback') or error.get('message')}")
        self._account(replies, payloads)
        names = reply.get("names")
        return names if isinstance(names, dict) else {}

    def solution(self) -> RemoteSolution:
        """The submitted module as tests see it (``t.solution``); importing it is checked now."""
        from labkit.testing.solution import SolutionError

        if self.solution_module is None:
            raise SolutionError("no solution was given")
        self.worker("primary")
        return RemoteSolution(self, self.solution_module, self._names or {}, self.label or self.solution_module)

    def search_workers(self, count: int | None = None) -> list[WorkerProcess]:
        """The workers that serve searches: the primary one and ``count - 1`` more."""
        return [self.worker("primary" if i == 0 else f"search{i}") for i in range(count or default_workers())]

    def release(self, name: str) -> None:
        """Stop the worker called ``name`` (if started), keeping the CPU time it used on the account."""
        worker = self.workers.pop(name, None)
        if worker is not None:
            self.cpu_of_stopped += worker.stop() - worker.cpu_at_start

    # ---- requests and accounts ---------------------------------------------------------------

    def request(self, worker: WorkerProcess, ops: list[list[Any]], payloads: list[str], *, steps: int = 1,
                doing: str | Callable[[], str] = "handling a request") -> tuple[list[dict[str, Any]], list[str]]:
        if self._closed:
            raise InfrastructureError("the session is closed")
        replies, out = worker.request(ops, payloads, steps=steps, doing=doing if callable(doing) else lambda: doing)
        # What the checker's replays print was printed once already, by the step replayed.
        self._account(replies, out, output=worker is not self.workers.get(CHECKER))
        self._requests += 1
        if self._requests % BUDGET_CHECK_EVERY == 0:
            self.check_budget()
        return replies, out

    def check_budget(self) -> None:
        """Fail the test if its workers used more CPU time than it allows."""
        used = self.cpu_seconds()
        if used > self.cpu_budget:
            raise BudgetExceeded(f"the code under test used {used:.1f} s of CPU time, more than the {self.cpu_budget:g} s "
                                 "this test allows: handlers may be far too slow, or keep far more state than needed")

    def _account(self, replies: list[dict[str, Any]], payloads: list[str], output: bool = True) -> None:
        """Point tracebacks at the student's file; with ``output``, count and keep what was printed."""
        here = str(self.workdir) + os.sep
        for reply in replies:
            error = reply.get("error")
            if isinstance(error, dict) and self.solution_path is not None and isinstance(error.get("traceback"), str):
                # Tracebacks name the student's own file, not the worker's copy of it.
                error["traceback"] = error["traceback"].replace(here, str(self.solution_path.parent) + os.sep)
            if not output:
                continue
            printed = reply.get("printed")
            if type(printed) is int and printed > 0:
                self.printed += printed
            index = reply.get("out")
            if type(index) is int and 0 <= index < len(payloads):
                self.output.append(payloads[index])

    def cpu_seconds(self) -> float:
        """CPU time used by this session's workers so far."""
        return self.cpu_of_stopped + sum(w.cpu_seconds() - w.cpu_at_start for w in self.workers.values())

    def printed_text(self) -> str:
        return "".join(self.output)

    # ---- RunHost: the nodes of simulated runs live in the primary worker -------------------------------

    def call(self, node: HostedNode, op: list[Any], payloads: list[str], doing: Callable[[], str]) -> Outcome:
        replies, out = self.request(self.worker("primary"), [op], payloads, doing=lambda: f"{node.address}'s {doing()}")
        outcome = Outcome(replies[0], out, {})
        if outcome.before is not None:
            self.check_replay(node.address, node.qualified, op, payloads, outcome)
        return outcome

    def events(self, items: list[tuple[HostedNode, str, Any, WireValue, bool]]) -> list[Outcome]:
        """Several events of one run in one request; the outcomes in order (see Simulation._step_group)."""
        payloads: list[str] = []
        index: dict[str, int] = {}
        ops = []
        for node, kind, sender, item, sample in items:
            i = index.get(item.text)
            if i is None:
                i = index[item.text] = len(payloads)
                payloads.append(item.text)
            ops.append(node.event_op(kind, sender, i, None, sample, payloads))

        def doing() -> str:
            return f"handling {len(items)} events due at once at {', '.join(sorted({n.address.name for n, *_ in items}))}"

        replies, out = self.request(self.worker("primary"), ops, payloads, steps=len(ops), doing=doing)
        values: dict[int, WireValue] = {}
        outcomes = [Outcome(reply, out, values) for reply in replies]
        for op, outcome, (node, *_) in zip(ops, outcomes, items):
            if outcome.before is not None:
                self.check_replay(node.address, node.qualified, op, [payloads[op[4]]], outcome)
        return outcomes

    def observe(self, node: HostedNode, observer: str) -> Any:
        if observer not in self.observers and observer != "client":
            return NO_OBSERVATIONS
        replies, out = self.request(self.worker("primary"), [["observe", ["key", node.key], observer]], [],
                                    doing=f"asking {node.address} its query methods")
        return Outcome(replies[0], out, {}).obs or NO_OBSERVATIONS

    def query(self, node: HostedNode, calls: list[tuple[str, str]]) -> Any:
        payloads = [key for _, key in calls]
        op = ["query", ["key", node.key], [[method, i] for i, (method, _) in enumerate(calls)]]
        replies, out = self.request(self.worker("primary"), [op], payloads, doing=f"asking {node.address} a query")
        return Outcome(replies[0], out, {}).obs or NO_OBSERVATIONS

    def encode(self, node: HostedNode) -> WireValue:
        replies, out = self.request(self.worker("primary"), [["encode", node.key]], [],
                                    doing=f"reading {node.address}'s state")
        reply = replies[0]
        if "error" in reply:
            raise remote_exception(reply["error"])
        return WireValue(out[reply["state"]])

    def check_replay(self, address: Any, qualified: str, op: list[Any], payloads: list[str], outcome: Outcome) -> None:
        """Replay a sampled run step from its state before, in the checker; differences fail the test."""
        assert outcome.before is not None
        _, _, kind, sender, _, observer, follow, _ = op
        step = ["step", outcome.before.fp, 0, kind, sender, 1, observer, [follow[0], 2] if follow else None, True]
        replay_payloads = [outcome.before.text, payloads[0]] + ([payloads[1]] if follow else [])
        replies, out = self.request(self.worker(CHECKER), [step, step], replay_payloads, steps=2,
                                    doing=f"replaying {address}'s step")
        for reply in replies:  # twice in a row: a handler reading a global or a random number shows
            again = Outcome(reply, out, {})
            difference = differences(outcome, again)
            if difference:
                from labkit.judge.checks import nondeterminism_message

                raise NondeterminismError(nondeterminism_message(address, qualified, kind, sender, payloads[0],
                                                                 difference, outcome, again))

    # ---- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        for worker in self.workers.values():
            self.cpu_of_stopped += worker.stop() - worker.cpu_at_start
        self.workers.clear()
        self._closed = True
        self._finalizer()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def differences(first: Outcome, second: Outcome) -> list[str]:
    """What differs between two outcomes of the same step, as short phrases."""
    found = []
    if (first.state.text if first.state else None) != (second.state.text if second.state else None):
        found.append("the node's state afterwards")
    # Compared as multisets: a live node's set and the same set rebuilt from its encoding may iterate
    # in different orders, so a handler looping over a set can send in another order without any
    # hidden state; what it sends must still be the same.
    if sorted((a.name, m.text) for a, m in first.sends) != sorted((a.name, m.text) for a, m in second.sends):
        found.append("the messages it sent")
    if sorted((t.text, lo, hi) for t, lo, hi in first.timers) != sorted((t.text, lo, hi) for t, lo, hi in second.timers):
        found.append("the timers it set")
    if (first.error or {}).get("type") != (second.error or {}).get("type"):
        found.append("whether it raised an exception")
    if first.followed != second.followed or _obs_texts(first.obs) != _obs_texts(second.obs):
        found.append("what its query methods answered")
    return found


def _obs_texts(obs: Any) -> Any:
    return obs.comparable() if obs is not None else {}


def _copy_python_tree(folder: Path, target: Path) -> None:
    """Copy the .py files of ``folder`` and of its packages (folders with __init__.py) into ``target``."""
    copied = 0
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder)
        if "__pycache__" in relative.parts or copied >= MAX_FILES * 5:
            continue
        if any(not (folder / Path(*relative.parts[: i + 1]) / "__init__.py").exists() for i in range(len(relative.parts) - 1)):
            continue
        destination = target / relative
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        copied += 1


def _cleanup(workers: dict[str, WorkerProcess], workdir: Path, uid: int | None) -> None:
    for worker in list(workers.values()):
        try:
            worker.kill()
            worker.close()
        except Exception:
            pass
    workers.clear()
    try:
        from labkit.worker.box import kill_box

        kill_box(uid)
    except Exception:
        pass
    shutil.rmtree(workdir, ignore_errors=True)
