"""The instructor check: each reference passes every test and every known-buggy variant fails one.

``labkit check-solution LAB --reference FILE --mutants PATH --hidden FILE`` runs
the lab's public tests plus the hidden tests registered by the ``--hidden``
module against the reference solution and against every mutant. A mutant is the
reference with a few exact text replacements (:class:`Mutant`); ``PATH`` is a
catalogue module (or a folder holding ``catalogue.py``) that defines
``MUTANTS``. A lab with several references (correct solutions of different
designs) gives ``--reference`` and ``--mutants`` once for each. Each candidate
runs in its own process under a wall-clock limit, so a mutant that loops or
crashes costs only its own column.

For each mutant the report gives the first test that failed, the time until it
failed and the length of its evidence (the events of a search's counterexample,
or the steps of a failing run), with the medians over all mutants.

Nothing here knows about a particular lab: the lab, the paths and the hidden
module come from the arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence, TextIO

from labkit.node import LabkitError
from labkit.testing.declare import SEARCH, TestSpec
from labkit.testing.runner import get_lab, run_one
from labkit.judge.session import default_workers
from labkit.testing.runner import check_loads
from labkit.testing.solution import SolutionError

__all__ = ["Mutant", "MutantError", "CandidateResult", "CheckReport", "Reference", "check_solution", "check_solutions",
           "load_mutants", "load_hidden", "medians", "register", "summary"]

DEFAULT_TIMEOUT = 1800.0  # seconds of real time for one candidate's whole run


class MutantError(LabkitError):
    """A mutant's patch no longer fits the reference, or the catalogue is malformed."""


@dataclass(frozen=True)
class Mutant:
    """A named bug: the reference with each ``old`` snippet replaced by ``new``.

    Every ``old`` snippet must occur exactly once in the reference, so a patch
    that no longer fits fails loudly instead of silently testing nothing.
    """

    name: str
    description: str
    replacements: tuple[tuple[str, str], ...]

    def apply(self, text: str) -> str:
        """The reference ``text`` with this mutant's replacements made."""
        if not self.replacements:
            raise MutantError(f"mutant {self.name} has no replacements")
        for old, new in self.replacements:
            count = text.count(old)
            if count != 1:
                where = "does not occur" if count == 0 else f"occurs {count} times"
                raise MutantError(f"mutant {self.name}: the snippet {old!r} {where} in the reference (needs exactly once)")
            text = text.replace(old, new)
        return text


@dataclass
class TestOutcome:
    """One test's verdict for one candidate; for a failure, how long its evidence is."""

    passed: bool
    seconds: float
    failure: str | None = None
    events: int | None = None
    """Events of the counterexample trace (a search), or steps of the failing run (a run test)."""
    trace: bool = False
    """True when ``events`` counts a search's counterexample trace, False for a run's steps."""

    __test__ = False

    def evidence(self) -> str:
        """``a 12-event trace``, ``a run of 3,456 steps`` or ``no trace`` (a goal not reached, a crash)."""
        if self.events is None:
            return "no trace"
        return f"a {self.events}-event trace" if self.trace else f"a run of {self.events:,} steps"


@dataclass
class CandidateResult:
    """What happened when one candidate (the reference or a mutant) ran."""

    name: str
    description: str
    results: dict[str, TestOutcome] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def failed(self) -> list[str]:
        return [number for number, r in self.results.items() if not r.passed]

    @property
    def caught_by(self) -> str | None:
        failed = self.failed
        return failed[0] if failed else None

    @property
    def catch(self) -> TestOutcome | None:
        """The outcome of the first test that failed."""
        by = self.caught_by
        return self.results[by] if by is not None else None

    def catch_seconds(self) -> float | None:
        """Real time from the start of the candidate's run until its first failing test ended."""
        elapsed = 0.0
        for r in self.results.values():
            elapsed += r.seconds
            if not r.passed:
                return elapsed
        return None


@dataclass
class CheckReport:
    """The reference's results and every mutant's, with the selection that was run."""

    lab: str
    tests: list[str]
    reference: CandidateResult
    mutants: list[CandidateResult]
    stop_at_first: bool
    fast: bool

    @property
    def reference_ok(self) -> bool:
        ref = self.reference
        return ref.error is None and not ref.failed and set(ref.results) == set(self.tests)

    def mutant_status(self, mutant: CandidateResult) -> str:
        if mutant.error is not None:
            return "error"
        return "caught" if mutant.failed else "survived"

    @property
    def ok(self) -> bool:
        return self.reference_ok and all(self.mutant_status(m) == "caught" for m in self.mutants)

    def to_dict(self) -> dict[str, Any]:
        def candidate(c: CandidateResult, status: str) -> dict[str, Any]:
            return {
                "name": c.name,
                "description": c.description,
                "status": status,
                "caught_by": c.caught_by,
                "catch_seconds": c.catch_seconds(),
                "catch_events": c.catch.events if c.catch is not None else None,
                "catch_trace": c.catch.trace if c.catch is not None else None,
                "seconds": round(c.seconds, 3),
                "error": c.error,
                "results": {n: asdict(r) for n, r in c.results.items()},
            }

        return {
            "lab": self.lab,
            "ok": self.ok,
            "fast": self.fast,
            "stop_at_first": self.stop_at_first,
            "tests": self.tests,
            "reference": candidate(self.reference, "passed" if self.reference_ok else "failed"),
            "mutants": [candidate(m, self.mutant_status(m)) for m in self.mutants],
        }


# ---- loading the catalogue and the hidden tests --------------------------------------


def _import_file(path: Path) -> ModuleType:
    """Import ``path`` as a module named after the file, once per process."""
    path = path.resolve()
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == path:
        return existing
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LabkitError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_hidden(path: str | Path) -> ModuleType:
    """Import the hidden-test module at ``path`` (importing it registers its tests)."""
    path = Path(path)
    if not path.is_file():
        raise LabkitError(f"there is no hidden-test module {path}")
    return _import_file(path)


def load_mutants(path: str | Path) -> list[Mutant]:
    """The ``MUTANTS`` list of a catalogue module, or of ``catalogue.py`` inside a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "catalogue.py"
    if not path.is_file():
        raise MutantError(f"there is no mutant catalogue {path}")
    mutants = getattr(_import_file(path), "MUTANTS", None)
    if not isinstance(mutants, list) or not all(isinstance(m, Mutant) for m in mutants):
        raise MutantError(f"{path} must define MUTANTS, a list of Mutant")
    names = [m.name for m in mutants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MutantError(f"{path} names more than one mutant {duplicates[0]!r}")
    return mutants


def write_mutants(reference: Path, mutants: Sequence[Mutant], folder: Path) -> dict[str, Path]:
    """Write each mutant as ``folder/<name>/<reference file name>``; fail on a patch that does not fit."""
    text = reference.read_text(encoding="utf-8")
    paths = {}
    for mutant in mutants:
        target = folder / mutant.name / reference.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(mutant.apply(text), encoding="utf-8")
        paths[mutant.name] = target
    return paths


# ---- one candidate in its own process -----------------------------------------------


def _worker(argv: Sequence[str]) -> int:
    """Run the given tests against one solution, appending one JSON line per event to ``--out``."""
    parser = argparse.ArgumentParser(prog="check-solution worker")
    parser.add_argument("lab")
    parser.add_argument("solution")
    parser.add_argument("--hidden")
    parser.add_argument("--tests", required=True)
    parser.add_argument("--stop-at-first", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.hidden:
        load_hidden(args.hidden)
    lab = get_lab(args.lab)
    specs = {s.qualified_number: s for s in lab.select(include_hidden=True)}
    with open(args.out, "a", encoding="utf-8") as out:
        def emit(record: dict[str, Any]) -> None:
            out.write(json.dumps(record) + "\n")
            out.flush()

        solution = Path(args.solution)
        try:
            error, _ = check_loads(solution, lab)
        except SolutionError as failed:
            error = str(failed)
        if error is not None:
            emit({"event": "error", "message": f"the solution does not load: {error}"})
            return 1
        for number in args.tests.split(","):
            emit({"event": "start", "number": number})
            result = run_one(specs[number], solution, solution_label=args.solution, lab=lab)
            events, trace = _evidence_length(result.evidence) if not result.passed else (None, False)
            emit({"event": "result", "number": number, "passed": result.passed, "seconds": result.seconds,
                  "failure": result.failure, "events": events, "trace": trace})
            if args.stop_at_first and not result.passed:
                break
    return 0


def _evidence_length(evidence: Any) -> tuple[int | None, bool]:
    """The events of a search's counterexample trace (True), or the steps of a run (False)."""
    from labkit.search.trace import Trace
    from labkit.sim.log import DELIVER, TIMER_FIRE
    from labkit.sim.simulator import Simulation

    if isinstance(evidence, Trace):
        return len(evidence.events), True
    if isinstance(evidence, Simulation):
        return len(evidence.log.of_kind(DELIVER, TIMER_FIRE)), False
    return None, False


@dataclass
class _Job:
    """A candidate waiting for, or running in, its worker process."""

    key: str  # unique among all candidates of the check (names its files)
    result: CandidateResult
    solution: Path
    tests: list[str]
    stop_at_first: bool
    is_reference: bool
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0


def _start(job: _Job, lab: str, hidden: Path | None, workdir: Path) -> None:
    command = [sys.executable, "-m", "labkit.testing.check_solution", lab, str(job.solution),
               "--tests", ",".join(job.tests), "--out", str(workdir / f"{job.key}.jsonl")]
    if hidden is not None:
        command += ["--hidden", str(hidden)]
    if job.stop_at_first:
        command.append("--stop-at-first")
    with open(workdir / f"{job.key}.log", "wb") as sink:
        job.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    job.started = time.monotonic()


def _collect(job: _Job, workdir: Path, stopped: str | None) -> None:
    """Read the worker's events into ``job.result``; ``stopped`` says why it was killed, if it was."""
    result = job.result
    result.seconds = time.monotonic() - job.started
    running = None
    events = workdir / f"{job.key}.jsonl"
    if events.exists():
        for line in events.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["event"] == "start":
                running = record["number"]
            elif record["event"] == "result":
                running = None
                result.results[record["number"]] = TestOutcome(record["passed"], record["seconds"], record["failure"],
                                                               record.get("events"), record.get("trace", False))
            elif record["event"] == "error":
                result.error = record["message"]
    code = job.process.returncode if job.process is not None else None
    if running is not None:
        why = stopped or f"the test process died (exit code {code})"
        ran = sum(r.seconds for r in result.results.values())
        result.results[running] = TestOutcome(False, round(max(result.seconds - ran, 0.0), 3), why)
    elif result.error is None and (stopped or code != 0):
        log = workdir / f"{job.key}.log"
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
        result.error = (stopped or f"the test process failed (exit code {code})") + (f":\n{tail}" if tail else "")


def _run_jobs(jobs: list[_Job], lab: str, hidden: Path | None, workdir: Path, parallel: int, timeout: float,
              out: TextIO) -> None:
    waiting = list(jobs)
    running: list[_Job] = []
    done = 0
    while waiting or running:
        while waiting and len(running) < parallel:
            job = waiting.pop(0)
            _start(job, lab, hidden, workdir)
            running.append(job)
        time.sleep(0.05)
        for job in list(running):
            assert job.process is not None
            stopped = None
            if job.process.poll() is None:
                if time.monotonic() - job.started <= timeout:
                    continue
                stopped = f"stopped after the {timeout:g} s time limit for one candidate"
                os.killpg(job.process.pid, signal.SIGKILL)
                job.process.wait()
            running.remove(job)
            _collect(job, workdir, stopped)
            done += 1
            out.write(f"[{done}/{len(jobs)}] {_one_line(job)}\n")
            out.flush()


def _one_line(job: _Job) -> str:
    result = job.result
    name = f"{job.key.split('/')[0]}/{result.name}" if "/" in job.key else result.name
    if result.error is not None:
        return f"{name}: ERROR {result.error.splitlines()[0]}"
    if job.is_reference:
        failed = result.failed
        verdict = f"FAILED {', '.join(failed)}" if failed else f"passed {len(result.results)} tests"
        return f"{name} ({result.description}): {verdict} ({result.seconds:.1f} s)"
    if result.catch is not None:
        return f"{name}: caught by {result.caught_by} after {result.catch_seconds():.1f} s ({result.catch.evidence()})"
    return f"{name}: SURVIVED {len(result.results)} tests ({result.seconds:.1f} s)"


# ---- the check -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A reference solution, the catalogue of its mutants and the record of an earlier full run."""

    solution: Path
    mutants: Path
    record: Path | None = None

    @staticmethod
    def default_record(mutants: str | Path) -> Path:
        """``record.json`` beside the catalogue (in its folder)."""
        mutants = Path(mutants)
        return (mutants if mutants.is_dir() else mutants.parent) / "record.json"


def _order(specs: list[TestSpec], seconds: dict[str, float] | None = None) -> list[str]:
    """Run tests first, in declared order; then searches, the cheapest first by ``seconds`` (what each
    took on the reference in a recorded run), searches without a recorded time last, in declared order."""
    known = seconds or {}

    def key(spec: TestSpec) -> tuple[bool, float, int, int]:
        search = SEARCH in spec.categories
        return search, known.get(spec.qualified_number, float("inf")) if search else 0.0, spec.part, spec.number

    return [s.qualified_number for s in sorted(specs, key=key)]


@dataclass
class _Record:
    """What an earlier full run recorded: the test that caught each mutant, each test's time on the reference."""

    catchers: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def read(path: Path) -> "_Record":
        """The record in ``path``, a JSON file written by ``--save-records`` (or ``--json`` for one reference)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            catchers = {m["name"]: m["caught_by"] for m in data["mutants"] if m.get("caught_by")}
            results = data.get("reference", {}).get("results", {})
            return _Record(catchers, {n: float(r["seconds"]) for n, r in results.items() if r.get("passed")})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise LabkitError(f"cannot read the record of catching tests {path}: {error}") from None


def check_solution(
    lab: str,
    reference: str | Path,
    mutants: str | Path,
    hidden: str | Path | None = None,
    *,
    record: str | Path | None = None,
    **options: Any,
) -> CheckReport:
    """Run one reference and every mutant of its catalogue (see :func:`check_solutions`)."""
    pair = Reference(Path(reference), Path(mutants), Path(record) if record is not None else None)
    return check_solutions(lab, [pair], hidden, **options)[0]


def check_solutions(
    lab: str,
    references: Sequence[Reference],
    hidden: str | Path | None = None,
    *,
    fast: bool = False,
    stop_at_first: bool = True,
    parallel: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    only: Sequence[str] = (),
    numbers: Sequence[str] | None = None,
    out: TextIO | None = None,
) -> list[CheckReport]:
    """Run each reference and every mutant of its catalogue; one report per reference says whether
    the reference passes and each mutant was caught.

    A mutant runs the run tests first, then the searches, the cheapest first (by
    their times on the reference in the recorded run), and the test that caught it
    in the recorded run before all others. ``fast`` runs only the run tests (no
    search) plus each mutant's recorded catcher. ``only`` limits the check to the
    named mutants and ``numbers`` to the named tests (``"1.5"``). All candidates
    share ``parallel`` worker processes.
    """
    out = out or sys.stdout
    hidden_path = Path(hidden).resolve() if hidden is not None else None
    for ref in references:
        if not ref.solution.is_file():
            raise LabkitError(f"there is no reference solution {ref.solution}")
    if hidden_path is not None:
        load_hidden(hidden_path)
    the_lab = get_lab(lab)
    catalogues = [load_mutants(ref.mutants) for ref in references]
    if only:
        unknown = sorted(set(only) - {m.name for catalogue in catalogues for m in catalogue})
        if unknown:
            raise MutantError(f"no catalogue has a mutant {unknown[0]!r}")
        catalogues = [[m for m in catalogue if m.name in only] for catalogue in catalogues]
    all_specs = the_lab.select(numbers=list(numbers) if numbers else None, include_hidden=True)
    records = []
    for ref in references:
        if ref.record is not None and ref.record.exists():
            records.append(_Record.read(ref.record))
        elif fast:
            raise LabkitError(f"--fast needs the record of a full run ({ref.record}); write one with --save-records")
        else:
            records.append(_Record())
    specs = all_specs
    if fast:
        wanted = {n for record in records for n in record.catchers.values()}
        specs = [s for s in all_specs if SEARCH not in s.categories or s.qualified_number in wanted]
    tests = _order(specs)
    parallel = parallel or default_workers()
    several = len(references) > 1
    with tempfile.TemporaryDirectory(prefix="check-solution-") as tmp:
        workdir = Path(tmp)
        groups: list[list[_Job]] = []
        for index, (ref, catalogue, record) in enumerate(zip(references, catalogues, records), 1):
            prefix = f"ref{index}/" if several else ""
            (workdir / f"ref{index}").mkdir()
            paths = write_mutants(ref.solution, catalogue, workdir / f"ref{index}" / "mutants")
            jobs = [_Job(f"{prefix}reference" if several else "reference", CandidateResult("reference", str(ref.solution)),
                         ref.solution.resolve(), tests, False, True)]
            cheapest_first = _order(specs, record.seconds)
            for mutant in catalogue:
                first = record.catchers.get(mutant.name)
                order = ([first] if first in tests else []) + [n for n in cheapest_first if n != first]
                jobs.append(_Job(f"{prefix}{mutant.name}", CandidateResult(mutant.name, mutant.description),
                                 paths[mutant.name], order, stop_at_first, False))
            groups.append(jobs)
        for jobs in groups:
            for job in jobs:
                (workdir / job.key).parent.mkdir(parents=True, exist_ok=True)
        scope = "fast subset: run tests plus each mutant's recorded catcher" if fast else "all tests"
        stop = ("each mutant stops at the first test that catches it (its later columns are not run)"
                if stop_at_first else "every mutant runs every test")
        mutants = sum(len(c) for c in catalogues)
        out.write(f"check-solution {the_lab.name}: {len(references)} reference(s), {len(tests)} tests ({scope}); "
                  f"{mutants} mutants; {stop}; {parallel} at a time\n")
        out.flush()
        _run_jobs([job for jobs in groups for job in jobs], the_lab.name, hidden_path, workdir, parallel, timeout, out)
    reports = [CheckReport(the_lab.name, tests, jobs[0].result, [j.result for j in jobs[1:]], stop_at_first, fast)
               for jobs in groups]
    for report in reports:
        print_matrix(report, out)
    if several:
        out.write("\nAll references: " + summary(reports) + "\n")
        out.flush()
    return reports


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def medians(reports: Sequence[CheckReport]) -> dict[str, Any]:
    """Over the caught mutants: the median time to the first failing test, the median counterexample
    (mutants first caught by a search) and the median failing run (those first caught by a run test)."""
    caught = [m for r in reports for m in r.mutants if r.mutant_status(m) == "caught" and m.catch is not None]
    traces = [m.catch.events for m in caught if m.catch is not None and m.catch.trace and m.catch.events is not None]
    runs = [m.catch.events for m in caught if m.catch is not None and not m.catch.trace and m.catch.events is not None]
    seconds = [m.catch_seconds() for m in caught]
    return {
        "mutants": sum(len(r.mutants) for r in reports),
        "caught": len(caught),
        "seconds": _median([s for s in seconds if s is not None]) if caught else None,
        "trace_events": _median(traces) if traces else None,
        "traces": len(traces),
        "run_steps": _median(runs) if runs else None,
        "runs": len(runs),
    }


def summary(reports: Sequence[CheckReport]) -> str:
    """One line: mutants caught and the medians of :func:`medians`."""
    m = medians(reports)
    text = f"{m['caught']}/{m['mutants']} mutants caught"
    if m["seconds"] is not None:
        text += f"; median time to the first failing test {m['seconds']:.1f} s"
    if m["trace_events"] is not None:
        text += f"; median counterexample {m['trace_events']:g} events ({m['traces']} caught first by a search)"
    if m["run_steps"] is not None:
        text += f"; median failing run {m['run_steps']:,.0f} steps ({m['runs']} caught first by a run test)"
    return text


def print_matrix(report: CheckReport, out: TextIO) -> None:
    """Tests down, candidates across: ``ok`` passed, ``X`` failed (caught), ``-`` not run; then one
    line per mutant (its first failing test, the time to it, the length of its evidence) and the medians."""
    names = ["ref"] + [f"M{i}" for i in range(1, len(report.mutants) + 1)]
    columns = [report.reference] + report.mutants
    width = max(len(n) for n in names) + 1
    label = max([len(n) for n in report.tests] + [4]) + 1
    out.write(f"\n{report.reference.description}\n" + "test".ljust(label) + "".join(n.rjust(width) for n in names) + "\n")
    for number in report.tests:
        if all(number not in c.results for c in columns):
            continue
        cells = []
        for c in columns:
            r = c.results.get(number)
            cells.append("-" if r is None else "ok" if r.passed else "X")
        out.write(number.ljust(label) + "".join(cell.rjust(width) for cell in cells) + "\n")
    out.write("\n")
    ref = report.reference
    if report.reference_ok:
        out.write(f"ref  reference: passed all {len(report.tests)} tests in {ref.seconds:.1f} s\n")
    else:
        missing = [n for n in report.tests if n not in ref.results]
        problems = ([f"failed {', '.join(ref.failed)}"] if ref.failed else []) + (
            [f"did not run {', '.join(missing)}"] if missing else []) + ([ref.error] if ref.error else [])
        out.write(f"ref  reference: FAILED: {'; '.join(problems)}\n")
        for number in ref.failed:
            failure = (ref.results[number].failure or "").strip().splitlines()
            out.write(f"       {number}: {failure[0] if failure else ''}\n")
    for name, mutant in zip(names[1:], report.mutants):
        status = report.mutant_status(mutant)
        if status == "caught":
            others = len(mutant.failed) - 1
            also = f"; also caught by {others} more" if others else ""
            assert mutant.catch is not None
            ran = f"{len(mutant.results)} test{'' if len(mutant.results) == 1 else 's'} run"
            detail = (f"caught by {mutant.caught_by} after {mutant.catch_seconds():.1f} s with "
                      f"{mutant.catch.evidence()} ({ran}{also})")
        elif status == "error":
            detail = f"ERROR: {(mutant.error or '').splitlines()[0]}"
        else:
            detail = f"SURVIVED all {len(mutant.results)} tests ({mutant.seconds:.1f} s)"
        out.write(f"{name:<4} {mutant.name}: {detail}\n")
    survivors = [m.name for m in report.mutants if report.mutant_status(m) != "caught"]
    verdict = "OK" if report.ok else "FAIL"
    out.write(f"\n{verdict}: reference {'passes' if report.reference_ok else 'FAILS'}; " + summary([report])
              + (f"; not caught: {', '.join(survivors)}" if survivors else "") + "\n")
    out.flush()


# ---- command line ----------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``check-solution`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "check-solution",
        help="instructors: the references pass every test and every mutant is caught",
        description="Run the public and hidden tests against each reference solution (it must pass all) "
        "and against every mutant of it (each must fail at least one test). Give --reference and "
        "--mutants once per reference, in the same order.",
    )
    parser.add_argument("lab", help="the lab's name, e.g. paxos")
    parser.add_argument("--reference", action="append", required=True,
                        help="a reference solution (.py); repeat for several")
    parser.add_argument("--mutants", action="append", required=True,
                        help="the mutant catalogue of the reference at the same place: a folder with catalogue.py, "
                        "or a .py file")
    parser.add_argument("--hidden", help="the hidden-test module (.py); importing it registers the hidden tests")
    parser.add_argument("--fast", action="store_true",
                        help="run tests plus each mutant's recorded catching test only (needs the records)")
    parser.add_argument("--record", action="append", default=[],
                        help="JSON of an earlier full run of the reference at the same place "
                        "(default: record.json in its mutants folder)")
    parser.add_argument("--save-records", action="store_true",
                        help="write each reference's results to its record (for --fast and the order of tests)")
    parser.add_argument("--all-tests", action="store_true",
                        help="run every test on every mutant (the full matrix) instead of stopping at the first catch")
    parser.add_argument("-n", "--number", action="append", default=[], metavar="TEST",
                        help="run only this test, e.g. 1.5 (repeatable)")
    parser.add_argument("--mutant", action="append", default=[], metavar="NAME", help="check only this mutant (repeatable)")
    parser.add_argument("--jobs", type=int, default=None, help="candidates run at once (default: number of CPUs)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds of real time for one candidate's whole run (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--json", help="write the structured results to this file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if len(args.mutants) != len(args.reference):
        raise LabkitError(f"{len(args.reference)} --reference but {len(args.mutants)} --mutants: give one catalogue "
                          "per reference, in the same order")
    if args.record and len(args.record) != len(args.reference):
        raise LabkitError("give one --record per --reference, or none")
    records = args.record or [Reference.default_record(m) for m in args.mutants]
    references = [Reference(Path(r), Path(m), Path(rec)) for r, m, rec in zip(args.reference, args.mutants, records)]
    reports = check_solutions(
        args.lab,
        references,
        args.hidden,
        fast=args.fast,
        stop_at_first=not args.all_tests,
        parallel=args.jobs,
        timeout=args.timeout,
        only=args.mutant,
        numbers=args.number,
    )
    if args.save_records:
        for ref, report in zip(references, reports):
            assert ref.record is not None
            ref.record.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if args.json:
        data = reports[0].to_dict() if len(reports) == 1 else {
            "lab": args.lab, "ok": all(r.ok for r in reports), "medians": medians(reports),
            "checks": [r.to_dict() for r in reports]}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
