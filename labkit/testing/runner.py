"""Running a lab's tests: selection, isolation, reporting and structured results."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
import time
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import labkit
from labkit.judge.nodes import ConstructorError, StudentError
from labkit.judge.session import BudgetExceeded, NondeterminismError, Session
from labkit.judge.worker import InfrastructureError, WorkerFailure
from labkit.search.state import SearchError
from labkit.sim.simulator import HandlerError, RunawayError
from labkit.testing.context import TestContext, TestFailure
from labkit.testing.declare import RUN, Lab, LabError, TestSpec
from labkit.testing.solution import SolutionError, solution_path
from labkit.wire import WireError

__all__ = ["TestResult", "Report", "get_lab", "run_tests", "run_one", "OUTPUT_LIMIT"]

OUTPUT_LIMIT = 20_000  # characters of a test's printed output that are kept
OUTPUT_FLOOD = 1_000_000  # characters printed in one test that fail it
_LABKIT_DIR = str(Path(labkit.__file__).resolve().parent)


@dataclass
class TestResult:
    """The structured outcome of one test (what ``--json`` writes)."""

    lab: str
    part: int
    number: str
    name: str
    categories: list[str]
    points_available: float
    points_earned: float
    passed: bool
    seed: int
    seconds: float
    failure: str | None = None
    replay: str | None = None
    output: str = ""
    output_truncated: bool = False
    notes: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    graded: bool = True
    """False when the grading machinery failed (not the code under test): the verdict means nothing, re-run."""
    cpu_seconds: float = 0.0
    """CPU time the code under test used (in its worker processes)."""
    protections: str = ""
    """Which protections the workers ran under."""
    evidence: Any = field(default=None, repr=False, compare=False)
    """The last search's failure Trace, else the last Simulation, for pictures (not saved in JSON)."""

    __test__ = False

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able values (without the evidence, which is not copied either)."""
        return {f.name: list(value) if isinstance(value := getattr(self, f.name), list) else value
                for f in fields(self) if f.name != "evidence"}


@dataclass
class Report:
    """All results of one run of the runner."""

    lab: str
    solution: str | None
    results: list[TestResult]
    seconds: float
    load_error: str | None = None

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def points(self) -> float:
        return sum(r.points_earned for r in self.results)

    @property
    def total_points(self) -> float:
        return sum(r.points_available for r in self.results)

    @property
    def all_passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def summary(self) -> str:
        total = self.total_points
        percent = f" ({100 * self.points / total:.0f}%)" if total else ""
        boxes = sorted({r.protections for r in self.results if r.protections})
        boxed = "".join(f"Your code ran in a box ({text})\n" for text in boxes)
        return boxed + (
            f"Tests passed: {self.passed}/{len(self.results)}\n"
            f"Points: {self.points:g}/{total:g}{percent}\n"
            f"Total time: {self.seconds:.1f}s\n" + ("ALL PASS" if self.all_passed else "FAIL")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "solution": self.solution,
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
            "tests": len(self.results),
            "points_earned": self.points,
            "points_available": self.total_points,
            "load_error": self.load_error,
            "results": [r.to_dict() for r in self.results],
        }


def get_lab(name: str | Lab, include_hidden: bool = False) -> Lab:
    """The lab called ``name``: ``labkit.labs.<name>.tests`` defines ``LAB``.

    With ``include_hidden``, a module ``<name>_hidden`` is imported too if it
    is on the import path (only while grading): it adds the hidden tests."""
    if isinstance(name, Lab):
        return name
    try:
        module = importlib.import_module(f"labkit.labs.{name}.tests")
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith(f"labkit.labs.{name}"):
            raise LabError(f"there is no lab {name!r}; the labs are: {', '.join(available_labs())}") from None
        raise
    if include_hidden and importlib.util.find_spec(f"{name}_hidden") is not None:
        importlib.import_module(f"{name}_hidden")
    return module.LAB


def available_labs() -> list[str]:
    labs_dir = Path(_LABKIT_DIR) / "labs"
    return sorted(p.name for p in labs_dir.iterdir() if (p / "tests.py").exists())


def _explain(error: BaseException, spec: TestSpec, context: TestContext | None) -> str:
    if isinstance(error, TestFailure):
        return str(error)
    if isinstance(error, HandlerError):
        inner = error.error
        if type(inner).__name__ == "NotImplementedError":
            return f"{error.node} hit unfinished code while handling {error.event} at t={error.time} ms: {_unfinished(inner)}"
        if type(inner).__name__ == "SystemExit":
            return (f"{error.node} called exit() while handling {error.event} at t={error.time} ms: return from the "
                    f"handler instead\n{error.traceback}")
        return f"{error.node} raised an exception while handling {error.event} at t={error.time} ms:\n{error.traceback}"
    if isinstance(error, ConstructorError):
        if type(error.error).__name__ == "NotImplementedError":
            return _unfinished(error.error)
        return str(error)
    if isinstance(error, WorkerFailure):
        grew = _what_grew(context) if error.kind in ("cpu", "memory", "blocked") else ""
        return f"{error}{grew}"
    if isinstance(error, (RunawayError, SolutionError, LabError, SearchError, BudgetExceeded,
                          NondeterminismError, StudentError, WireError)):
        return str(error)
    if type(error).__name__ == "NotImplementedError":
        return _unfinished(error)
    if isinstance(error, SystemExit):
        return "the test stopped on exit(); return from the method instead"
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno}: {frames[-1].line})" if frames else ""
    return f"the test stopped on an unexpected {type(error).__name__}: {error}{where}"


def _what_grew(context: TestContext | None) -> str:
    """For a run stopped by a limit: the events and timers that were most frequent."""
    if context is None or not context.simulations:
        return ""
    return f"\nIn the run so far ({context.simulations[-1].describe()}), {context.simulations[-1].busiest_events()}."


def _unfinished(error: BaseException) -> str:
    """``not implemented: <message>``, naming the function that raised when there is no message."""
    text = str(error)
    if not text:
        text = getattr(error, "function", "") or "a stub"
    return text if "not implemented" in text else f"not implemented: {text}"


def run_one(
    spec: TestSpec,
    solution: str | Path,
    seed: int | None = None,
    solution_label: str | None = None,
    save_dir: Path | None = None,
    *,
    checks: bool = False,
    progress: bool | str = False,
    lab: Lab | None = None,
    trace_dir: Path | None = None,
) -> TestResult:
    """Run one test against the module at ``solution``, in its own boxed workers; never raises.

    ``checks`` replays every step in a fresh worker to catch handlers that
    are not deterministic (slower); ``progress`` shows search progress on the
    terminal. A failed search saves its trace in ``trace_dir`` (default:
    ``save_dir``, else ``traces``); a failed run saves its run log only with
    ``save_dir``. A failure of the grading machinery itself gives a result with
    ``graded`` False."""
    seed = spec.default_seed if seed is None else seed
    the_lab = lab or get_lab(spec.lab)
    failure = None
    graded = True
    start = time.perf_counter()
    context: TestContext | None = None
    session: Session | None = None
    try:
        session = Session(solution=Path(solution), label=Path(solution).name, cpu_budget=spec.cpu_seconds,
                          observers=the_lab.observers, queries=the_lab.queries)
        context = TestContext(spec, seed, session.solution(), trace_dir or save_dir or Path("traces"),
                              checks=checks, progress=progress)
        spec.fn(context)
        session.check_budget()
    except InfrastructureError as error:
        failure, graded = f"not graded: {error}. This is a problem of the grading machine, not of your code: run it again", False
    except (Exception, SystemExit) as error:  # a failing or broken submission fails this test only
        failure = _explain(error, spec, context)
    seconds = time.perf_counter() - start
    printed = session.printed if session is not None else 0
    output = session.printed_text() if session is not None else ""
    cpu = session.cpu_seconds() if session is not None else 0.0
    protections = _protections(session)
    if session is not None:
        session.close()
    if failure is None and printed > OUTPUT_FLOOD:
        failure = (
            f"your code printed {printed:,} characters during this test (at most {OUTPUT_FLOOD:,} allowed): "
            "remove the print calls from your handlers, which run thousands of times"
        )
    artifacts: list[str] = []
    replay = None
    traces = context.traces if context is not None else []
    searches = context.searches if context is not None else []
    simulations = context.simulations if context is not None else []
    artifacts.extend(str(p) for p in traces)
    last_trace = searches[-1].trace if searches else None
    evidence = last_trace if last_trace is not None else (simulations[-1] if simulations else None)
    if failure is not None and graded and not spec.hidden:  # students cannot run hidden tests themselves
        label = f" --solution {solution_label}" if solution_label else ""
        replay = f"labkit test {spec.lab} -n {spec.qualified_number} --seed {seed}{label}"
        if save_dir is not None and simulations and not traces:
            save_dir.mkdir(parents=True, exist_ok=True)
            path = save_dir / f"{spec.lab}-{spec.qualified_number}-seed{seed}.runlog.jsonl"
            simulations[-1].log.save(path, {"lab": spec.lab, "test": spec.qualified_number, "seed": seed})
            artifacts.append(str(path))
    return TestResult(
        lab=spec.lab,
        part=spec.part,
        number=spec.qualified_number,
        name=spec.name,
        categories=list(spec.categories),
        points_available=spec.points,
        points_earned=spec.points if failure is None else 0.0,
        passed=failure is None,
        seed=seed,
        seconds=round(seconds, 3),
        failure=failure,
        replay=replay,
        output=output,
        output_truncated=printed > len(output),
        notes=list(context.notes) if context is not None else [],
        artifacts=artifacts,
        graded=graded,
        cpu_seconds=round(cpu, 3),
        protections=protections,
        evidence=evidence,
    )


def _protections(session: Session | None) -> str:
    if session is None or not session.protections:
        return ""
    from labkit.worker.box import Protections

    try:
        return Protections.from_dict(session.protections).describe()
    except (KeyError, TypeError, ValueError):
        return ""


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def print_start(spec: TestSpec, out: TextIO) -> None:
    """The start of a test's result line, shown while the test runs (a long search shows what runs)."""
    out.write(f"{spec.header} ...")
    out.flush()


def print_result(result: TestResult, spec: TestSpec, out: TextIO, started: bool = False) -> None:
    """The test's result line (its end only, if :func:`print_start` wrote the start), then its notes,
    and for a failure the explanation, what was printed, the seed and the replay command."""
    verdict = "PASS" if result.passed else "FAIL"
    out.write(("" if started else f"{spec.header} ...") + f" {verdict} ({result.seconds:.1f}s)\n")
    for note in result.notes:
        out.write(_indent(note) + "\n")
    if not result.passed:
        out.write(_indent(result.failure or "") + "\n")
        if result.output:
            lines = result.output.splitlines()
            shown = "\n".join(line if len(line) <= 200 else line[:197] + "..." for line in lines[:20])
            more = f"\n... ({len(lines) - 20} more lines)" if len(lines) > 20 else ""
            cut = "\n... (output cut)" if result.output_truncated else ""
            out.write(_indent(f"Printed during the test:\n{shown}{more}{cut}") + "\n")
        if result.replay:
            out.write(_indent(f"seed {result.seed}; replay with: {result.replay}") + "\n")
        for artifact in result.artifacts:
            if artifact not in (result.failure or ""):
                out.write(_indent(f"saved {artifact}") + "\n")
            out.write(_indent(_next_steps(artifact, result.failure)) + "\n")
    out.flush()


def _next_steps(artifact: str, failure: str | None) -> str:
    """How to look at a saved trace or run log: the stepper, the picture, the replay. For a run
    whose failure names a client operation, the picture's command shows the part around it."""
    if artifact.endswith(".trace.json"):
        return (f"step through it in a notebook: from labkit.viz.stepper_widget import show_stepper; "
                f"show_stepper({artifact!r})\n"
                f"or draw it: labkit viz {artifact}; replay it after a fix: labkit replay {artifact}")
    focus = failure_focus(failure)
    if focus is None:
        return f"draw it: labkit viz {artifact}"
    times = f"{focus.start:g}" + (f" {focus.end:g}" if focus.end is not None else "")
    return f"draw the part that matters: labkit viz {artifact} --focus {focus.client} {times}"


def run_tests(
    lab: str | Lab,
    *,
    parts: list[int] | None = None,
    numbers: list[str] | None = None,
    seed: int | None = None,
    solution: str | Path | ModuleType | None = None,
    json_path: str | Path | None = None,
    out: TextIO | None = None,
    include_hidden: bool = False,
    exclude_categories: tuple[str, ...] = (),
    save_dir: str | Path | None = None,
    timeline: str | Path | None = None,
    checks: bool = False,
    progress: bool = False,
) -> Report:
    """Run the selected tests of ``lab`` against ``solution`` and print DSLabs-style lines.

    Never raises for a failing or broken submission: failures are in the report.
    With ``timeline``, the message timeline of the first selected test that ran a
    simulation is saved there (PNG or SVG, by the file's suffix).
    """
    out = out or sys.stdout
    the_lab = get_lab(lab, include_hidden)
    specs = the_lab.select(parts, numbers, include_hidden, exclude_categories)
    if not specs:
        raise LabError(f"no test of lab {the_lab.name} matches that selection")
    label = _solution_label(solution)
    start = time.perf_counter()
    results: list[TestResult] = []
    try:
        path = solution_path(solution, the_lab.solution_module)
        load_error, protections = check_loads(path, the_lab)
    except SolutionError as error:
        load_error, protections = str(error), ""
    if load_error is not None:
        out.write(f"Could not load your solution:\n{_indent(load_error)}\n\n")
        for spec in specs:
            results.append(_not_run(spec, seed, "could not load your solution (see the error above)", protections))
            print_result(results[-1], spec, out)
    else:
        for spec in specs:
            print_start(spec, out)
            result = run_one(spec, path, seed, label, Path(save_dir) if save_dir else None,
                             checks=checks, progress=progress, lab=the_lab)
            if timeline is not None and result.evidence is not None:
                _save_timeline(result, Path(timeline), out)
                timeline = None
            result.evidence = None  # keep only what is needed: runs can be large
            results.append(result)
            print_result(result, spec, out, started=True)
    report = Report(the_lab.name, label, results, time.perf_counter() - start, load_error)
    out.write("\n" + report.summary() + "\n")
    out.flush()
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def _solution_label(solution: str | Path | ModuleType | None) -> str | None:
    if solution is None:
        return None
    if isinstance(solution, ModuleType):
        return getattr(solution, "__file__", None) or solution.__name__
    return str(solution)


def run_seeds(
    lab: str | Lab,
    seeds: int,
    *,
    parts: list[int] | None = None,
    numbers: list[str] | None = None,
    solution: str | Path | None = None,
    out: TextIO | None = None,
    include_hidden: bool = False,
) -> dict[str, list[int]]:
    """Run the selected run tests on seeds 1 to ``seeds`` and print, per test, how many seeds passed
    and which failed (each replays with ``--seed``); returns the failing seeds by test number."""
    out = out or sys.stdout
    the_lab = get_lab(lab, include_hidden)
    specs = [s for s in the_lab.select(parts, numbers, include_hidden) if RUN in s.categories]
    if not specs:
        raise LabError(f"no run test of lab {the_lab.name} matches that selection (--seeds runs run tests)")
    path = solution_path(solution, the_lab.solution_module)
    load_error, _ = check_loads(path, the_lab)
    if load_error is not None:
        raise SolutionError(load_error)
    failing: dict[str, list[int]] = {}
    for spec in specs:
        print_start(spec, out)
        failed = [seed for seed in range(1, seeds + 1) if not run_one(spec, path, seed, lab=the_lab).passed]
        failing[spec.qualified_number] = failed
        out.write(f" {seeds - len(failed)}/{seeds} seeds passed\n")
        out.flush()
    width = max(len(n) for n in failing)
    out.write(f"\n{'test'.ljust(width)}  passed  failing seeds\n")
    for number, failed in failing.items():
        shown = ", ".join(map(str, failed)) or "-"
        out.write(f"{number.ljust(width)}  {seeds - len(failed):>3}/{seeds:<3} {shown}\n")
    if any(failing.values()):
        out.write(f"replay one with: labkit test {the_lab.name} -n NUMBER --seed SEED --solution {path}\n")
    out.flush()
    return failing


def check_loads(path: Path, lab: Lab) -> tuple[str | None, str]:
    """Import the module at ``path`` in a worker: why it does not load (None if it does; an import
    that kills the worker or garbles its answers included), and the protections the worker had."""
    with Session(solution=path, label=path.name, observers=lab.observers, queries=lab.queries) as session:
        try:
            session.solution()
            error = None
        except SolutionError as failed:
            error = str(failed)
        except WorkerFailure as failed:
            error = f"importing {path.name} stopped the worker: {failed}"
        return error, _protections(session)


def _not_run(spec: TestSpec, seed: int | None, why: str, protections: str = "") -> TestResult:
    return TestResult(
        lab=spec.lab,
        part=spec.part,
        number=spec.qualified_number,
        name=spec.name,
        categories=list(spec.categories),
        points_available=spec.points,
        points_earned=0.0,
        passed=False,
        seed=spec.default_seed if seed is None else seed,
        seconds=0.0,
        failure=why,
        protections=protections,
    )


_WRONG = re.compile(r"(\S+) got .*?\(invoked at t=(\d+), answered at t=(\d+)\)", re.DOTALL)
_WAITING = re.compile(r"(\S+) (?:is still waiting for the result of|got no result for) .*?sent at t=(\d+)\)", re.DOTALL)


def failure_focus(failure: str | None) -> Any:
    """The client operation a failure's explanation points at (a :class:`~labkit.viz.timeline.Focus`):
    a wrong result, or a command still waiting for its answer. None if it names none."""
    from labkit.viz.timeline import Focus

    text = failure or ""
    found = _WRONG.search(text)
    if found:
        client, invoked, answered = found.group(1), int(found.group(2)), int(found.group(3))
        return Focus(client, invoked, answered, f" - {client}'s wrong result (t={invoked}-{answered} ms) and its causes")
    found = _WAITING.search(text)
    if found:
        client, sent = found.group(1), int(found.group(2))
        return Focus(client, sent, None, f" - {client}'s unanswered command (sent at t={sent} ms) and what it set off")
    return None


def evidence_timeline(result: TestResult, *, end: bool) -> Any:
    """The timeline Figure of a test's run or trace. A long run is unreadable whole: for a failure
    that names a client operation, the part around it (:func:`failure_focus`), its causal path
    standing out; otherwise its first 400 ms, or with ``end`` its last second."""
    from labkit.viz.timeline import plot_timeline

    now = getattr(result.evidence, "now", None)  # a Simulation has a clock, a Trace has not
    window = None
    shown = ""
    focus = None
    if isinstance(now, int) and now > 0:
        focus = failure_focus(result.failure) if not result.passed else None
        if focus is not None:
            shown = focus.caption
        else:
            window = (max(0, now - 1000), now) if end else (0, min(400, now))
            if window != (0, now):
                shown = " - its last second" if end else f" - its first {window[1]} ms"
    title = f"Test {result.number}: {result.name} (seed {result.seed}){shown}"
    return plot_timeline(result.evidence, window=window, title=title, focus=focus)


def _save_timeline(result: TestResult, path: Path, out: TextIO) -> None:
    figure = evidence_timeline(result, end=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    out.write(f"(timeline of test {result.number} saved to {path})\n")
