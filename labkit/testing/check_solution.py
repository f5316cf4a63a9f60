"""The instructor check: the reference passes every test and every known-buggy variant fails one.

``labkit check-solution LAB --reference FILE --hidden FILE --mutants PATH`` runs
the lab's public tests plus the hidden tests registered by the ``--hidden``
module against the reference solution and against every mutant. A mutant is the
reference with a few exact text replacements (:class:`Mutant`); ``PATH`` is a
catalogue module (or a folder holding ``catalogue.py``) that defines
``MUTANTS``. Each candidate runs in its own process under a wall-clock limit, so
a mutant that loops or crashes costs only its own column.

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

__all__ = ["Mutant", "MutantError", "CandidateResult", "CheckReport", "check_solution", "load_mutants",
           "load_hidden", "register"]

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
    """One test's verdict for one candidate."""

    passed: bool
    seconds: float
    failure: str | None = None

    __test__ = False


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
            emit({"event": "result", "number": number, "passed": result.passed, "seconds": result.seconds,
                  "failure": result.failure})
            if args.stop_at_first and not result.passed:
                break
    return 0


@dataclass
class _Job:
    """A candidate waiting for, or running in, its worker process."""

    result: CandidateResult
    solution: Path
    tests: list[str]
    stop_at_first: bool
    out: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0


def _start(job: _Job, lab: str, hidden: Path | None, log: Path) -> None:
    command = [sys.executable, "-m", "labkit.testing.check_solution", lab, str(job.solution),
               "--tests", ",".join(job.tests), "--out", str(job.out)]
    if hidden is not None:
        command += ["--hidden", str(hidden)]
    if job.stop_at_first:
        command.append("--stop-at-first")
    with open(log, "wb") as sink:
        job.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    job.started = time.monotonic()


def _collect(job: _Job, log: Path, stopped: str | None) -> None:
    """Read the worker's events into ``job.result``; ``stopped`` says why it was killed, if it was."""
    result = job.result
    result.seconds = time.monotonic() - job.started
    running = None
    if job.out.exists():
        for line in job.out.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["event"] == "start":
                running = record["number"]
            elif record["event"] == "result":
                running = None
                result.results[record["number"]] = TestOutcome(record["passed"], record["seconds"], record["failure"])
            elif record["event"] == "error":
                result.error = record["message"]
    code = job.process.returncode if job.process is not None else None
    if running is not None:
        why = stopped or f"the test process died (exit code {code})"
        ran = sum(r.seconds for r in result.results.values())
        result.results[running] = TestOutcome(False, round(max(result.seconds - ran, 0.0), 3), why)
    elif result.error is None and (stopped or code != 0):
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
            _start(job, lab, hidden, workdir / f"{job.result.name}.log")
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
            _collect(job, workdir / f"{job.result.name}.log", stopped)
            done += 1
            out.write(f"[{done}/{len(jobs)}] {_one_line(job.result, job is jobs[0])}\n")
            out.flush()


def _one_line(result: CandidateResult, is_reference: bool) -> str:
    if result.error is not None:
        return f"{result.name}: ERROR {result.error.splitlines()[0]}"
    if is_reference:
        failed = result.failed
        verdict = f"FAILED {', '.join(failed)}" if failed else f"passed {len(result.results)} tests"
        return f"{result.name}: {verdict} ({result.seconds:.1f} s)"
    if result.caught_by:
        return f"{result.name}: caught by {result.caught_by} after {result.catch_seconds():.1f} s"
    return f"{result.name}: SURVIVED {len(result.results)} tests ({result.seconds:.1f} s)"


# ---- the check -----------------------------------------------------------------------


def _order(specs: list[TestSpec]) -> list[str]:
    """Cheap run tests first, then searches, each in declared order."""
    return [s.qualified_number for s in sorted(specs, key=lambda s: (SEARCH in s.categories, s.part, s.number))]


def _recorded_catchers(record: Path) -> dict[str, str]:
    """Mutant name -> the test that caught it, from a JSON file written by ``--json``."""
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        return {m["name"]: m["caught_by"] for m in data["mutants"] if m.get("caught_by")}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LabkitError(f"cannot read the record of catching tests {record}: {error}") from None


def check_solution(
    lab: str,
    reference: str | Path,
    mutants: str | Path,
    hidden: str | Path | None = None,
    *,
    fast: bool = False,
    record: str | Path | None = None,
    stop_at_first: bool = True,
    parallel: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    only: Sequence[str] = (),
    numbers: Sequence[str] | None = None,
    out: TextIO | None = None,
) -> CheckReport:
    """Run the reference and every mutant; the report says whether each mutant was caught.

    ``fast`` runs only the run tests (no search) plus, for each mutant, the test
    that caught it in the run recorded in ``record``; each mutant tries its
    recorded catcher first. ``only`` limits the check to the named mutants and
    ``numbers`` to the named tests (``"1.5"``).
    """
    out = out or sys.stdout
    reference = Path(reference)
    hidden_path = Path(hidden).resolve() if hidden is not None else None
    if not reference.is_file():
        raise LabkitError(f"there is no reference solution {reference}")
    if hidden_path is not None:
        load_hidden(hidden_path)
    the_lab = get_lab(lab)
    catalogue = load_mutants(mutants)
    if only:
        unknown = sorted(set(only) - {m.name for m in catalogue})
        if unknown:
            raise MutantError(f"the catalogue has no mutant {unknown[0]!r}")
        catalogue = [m for m in catalogue if m.name in only]
    specs = the_lab.select(numbers=list(numbers) if numbers else None, include_hidden=True)
    catchers: dict[str, str] = {}
    if record is not None and Path(record).exists():
        catchers = _recorded_catchers(Path(record))
    elif fast:
        raise LabkitError(f"--fast needs the record of a full run ({record}); write one with --json")
    if fast:
        wanted = set(catchers.values())
        specs = [s for s in specs if SEARCH not in s.categories or s.qualified_number in wanted]
    tests = _order(specs)
    parallel = parallel or default_workers()
    with tempfile.TemporaryDirectory(prefix="check-solution-") as tmp:
        workdir = Path(tmp)
        paths = write_mutants(reference, catalogue, workdir / "mutants")
        jobs = [_Job(CandidateResult("reference", str(reference)), reference.resolve(), tests, False,
                     workdir / "reference.jsonl")]
        for mutant in catalogue:
            first = catchers.get(mutant.name)
            order = ([first] if first in tests else []) + [n for n in tests if n != first]
            jobs.append(_Job(CandidateResult(mutant.name, mutant.description), paths[mutant.name], order,
                             stop_at_first, workdir / f"{mutant.name}.jsonl"))
        scope = "fast subset: run tests plus each mutant's recorded catcher" if fast else "all tests"
        stop = ("each mutant stops at the first test that catches it (its later columns are not run)"
                if stop_at_first else "every mutant runs every test")
        out.write(f"check-solution {the_lab.name}: {len(tests)} tests ({scope}); {len(catalogue)} mutants; "
                  f"{stop}; {parallel} at a time\n")
        out.flush()
        _run_jobs(jobs, the_lab.name, hidden_path, workdir, parallel, timeout, out)
    report = CheckReport(the_lab.name, tests, jobs[0].result, [j.result for j in jobs[1:]], stop_at_first, fast)
    print_matrix(report, out)
    return report


def print_matrix(report: CheckReport, out: TextIO) -> None:
    """Tests down, candidates across: ``ok`` passed, ``X`` failed (caught), ``-`` not run."""
    names = ["ref"] + [f"M{i}" for i in range(1, len(report.mutants) + 1)]
    columns = [report.reference] + report.mutants
    width = max(len(n) for n in names) + 1
    label = max([len(n) for n in report.tests] + [4]) + 1
    out.write("\n" + "test".ljust(label) + "".join(n.rjust(width) for n in names) + "\n")
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
            detail = (f"caught by {mutant.caught_by} after {mutant.catch_seconds():.1f} s "
                      f"({len(mutant.results)} tests run{also})")
        elif status == "error":
            detail = f"ERROR: {(mutant.error or '').splitlines()[0]}"
        else:
            detail = f"SURVIVED all {len(mutant.results)} tests ({mutant.seconds:.1f} s)"
        out.write(f"{name:<4} {mutant.name}: {detail}\n")
    survivors = [m.name for m in report.mutants if report.mutant_status(m) != "caught"]
    verdict = "OK" if report.ok else "FAIL"
    out.write(f"\n{verdict}: reference {'passes' if report.reference_ok else 'FAILS'}; "
              f"{len(report.mutants) - len(survivors)}/{len(report.mutants)} mutants caught"
              + (f"; not caught: {', '.join(survivors)}" if survivors else "") + "\n")
    out.flush()


# ---- command line ----------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``check-solution`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "check-solution",
        help="instructors: the reference passes every test and every mutant is caught",
        description="Run the public and hidden tests against the reference solution (it must pass all) "
        "and against every mutant of it (each must fail at least one test).",
    )
    parser.add_argument("lab", help="the lab's name, e.g. paxos")
    parser.add_argument("--reference", required=True, help="the reference solution (.py)")
    parser.add_argument("--mutants", required=True, help="the mutant catalogue: a folder with catalogue.py, or a .py file")
    parser.add_argument("--hidden", help="the hidden-test module (.py); importing it registers the hidden tests")
    parser.add_argument("--fast", action="store_true",
                        help="run tests plus each mutant's recorded catching test only (needs --record)")
    parser.add_argument("--record", help="JSON of an earlier full run (written by --json); "
                        "default: record.json in the mutants folder")
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
    record = args.record
    if record is None:
        folder = Path(args.mutants) if Path(args.mutants).is_dir() else Path(args.mutants).parent
        record = folder / "record.json"
    report = check_solution(
        args.lab,
        args.reference,
        args.mutants,
        args.hidden,
        fast=args.fast,
        record=record,
        stop_at_first=not args.all_tests,
        parallel=args.jobs,
        timeout=args.timeout,
        only=args.mutant,
        numbers=args.number,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
