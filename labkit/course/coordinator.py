"""The coordinator of ``labkit course autograde``: a course's submissions graded on a Dask cluster.

For each submission still to grade, every graded cell's test is a Dask task
(:mod:`labkit.course.distributed`: the judge, on a Dask worker), and nbgrader
runs the student's notebooks here, a few students at a time, for its
bookkeeping and the notebook the feedback is made from (into a scratch
gradebook, :mod:`labkit.course.gradebook`). When a student's tests and
notebooks are all done, this process alone writes the gradebook: the
judge's scores and results into the feedback notebook, then the whole
submission in one transaction. Scores come only from the verdicts, so they
are those of a run on one worker, in whatever order tasks finish.

A student whose grading could not finish (a test the machinery could not
run, a Dask worker that kept dying, nbgrader past its deadline, a gradebook
that refused the write) has nothing written and is reported "not graded,
re-run", never 0; the others go on. Running the same command again skips
every submission whose grading finished (same files, same tests) and grades
the rest; ``regrade`` grades every chosen submission again.
"""

from __future__ import annotations

import queue
import sys
import tempfile
import threading
import time
from concurrent.futures import Future as LocalFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from labkit.course.distributed import Cluster, HiddenTests, Submission, usable_cores
from labkit.course.gradebook import Gradebook, folder_digest
from labkit.node import LabkitError

if TYPE_CHECKING:
    from labkit.course.grading import GradedCell
    from labkit.course.instructor import Course
    from labkit.testing.runner import TestResult

__all__ = ["GradingOutcome", "autograde", "describe"]


@dataclass
class GradingOutcome:
    """How autograding one student went: ``ok`` when their scores are in the gradebook (``skipped`` when
    they were already, from an earlier run on the same files and tests)."""

    student: str
    ok: bool
    seconds: float
    reason: str = ""
    score: float = 0.0
    max_score: float = 0.0
    skipped: bool = False
    cpu_seconds: float = 0.0
    """CPU time of the judge and of the student's code over the student's tests (0 when skipped)."""


@dataclass
class _Grading:
    """One submission on its way: its test futures (Dask) and its notebook run (a local thread)."""

    student: str
    digest: str
    scratch_url: str
    began: float
    tests: dict[tuple[str, str], Any]
    notebooks: LocalFuture[str | None] | None = None
    outcome: GradingOutcome | None = None

    def ready(self) -> bool:
        return (self.notebooks is not None and self.notebooks.done()
                and all(future.done() for future in self.tests.values()))


@dataclass
class _Plan:
    """What every submission of the assignment is graded with."""

    assignment: str
    cells: list[GradedCell]
    hidden_numbers: set[tuple[str, str]]
    hidden: HiddenTests
    module: str
    tests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.cells)

    def suite(self) -> list[str]:
        """What a finished grading depended on besides the files: the graded cells and the hidden tests."""
        return [repr([(c.notebook, c.grade_id, c.lab, c.number, c.points) for c in self.cells]), self.hidden.digest]


def autograde(course: Course, assignment: str, students: Sequence[str], *, hidden_tests: Path | None,
              deadline: float, workers: int | None = None, scheduler: str | None = None, regrade: bool = False,
              out: TextIO | None = None) -> list[GradingOutcome]:
    """Grade ``students``' submissions of ``assignment`` (see the module docstring); one outcome per student,
    in the order given. ``out`` gets the cluster, the dashboard, a progress bar and a line per student."""
    from labkit.course.grading import graded_cells

    cells = graded_cells(course.root / "source" / assignment)
    labs = sorted({c.lab for c in cells})
    plan = _Plan(assignment, cells, course.load_hidden(cells, hidden_tests), HiddenTests.read(hidden_tests, labs),
                 course.module_of(cells), list(dict.fromkeys((c.lab, c.number) for c in cells)))
    outcomes: dict[str, GradingOutcome] = {}
    with Gradebook(course.db_url, course.course_id) as gradebook:
        gradebook.check_assignment(assignment)
        digests = {s: folder_digest(course.root / "submitted" / s / assignment, plan.suite()) for s in students}
        finished = {} if regrade else gradebook.finished(assignment)
        for student in students:
            earlier = finished.get(student)
            if earlier is not None and earlier["digest"] == digests[student]:
                outcomes[student] = GradingOutcome(student, True, 0.0, "already graded", earlier["score"],
                                                   earlier["max_score"], skipped=True)
        todo = [s for s in students if s not in outcomes]
        if out is not None and outcomes:
            out.write(f"{len(outcomes)} of {len(students)} submissions are already graded (same files, same tests) "
                      "and are skipped; --regrade grades them again\n")
        if todo:
            outcomes.update(_grade(course, plan, gradebook, todo, digests, deadline, workers, scheduler, out))
    return [outcomes[s] for s in students]


def _grade(course: Course, plan: _Plan, gradebook: Gradebook, todo: list[str], digests: dict[str, str],
           deadline: float, workers: int | None, scheduler: str | None, out: TextIO | None) -> dict[str, GradingOutcome]:
    stop = threading.Event()
    events: queue.Queue[str] = queue.Queue()
    gradings: dict[str, _Grading] = {}
    with tempfile.TemporaryDirectory(prefix="labkit-gradebook-") as scratch, Cluster(workers, scheduler) as cluster:
        if out is not None:
            out.write(f"Grading {len(todo)} submissions of {plan.assignment} ({len(plan.tests)} tests each) on "
                      f"{cluster.description}\nDask dashboard: {cluster.dashboard or 'not available'}\n")
            if cluster.worker_count() == 0:
                out.write("The scheduler has no workers yet: grading starts when one joins.\n")
            out.flush()
        template = gradebook.scratch_template(plan.assignment, Path(scratch))
        hidden = cluster.hold(plan.hidden, key=("hidden-tests", plan.hidden.digest[:16]), priority=len(todo) + 1)
        notebook_runs = ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="labkit-notebooks")
        try:
            for index, student in enumerate(todo):
                priority = len(todo) - index  # earlier students first: each finishes as early as it can
                submission = Submission.read(student, course.root / "submitted" / student / plan.assignment,
                                             plan.module)
                held = cluster.hold(submission, key=("submission", student, submission.token), priority=priority)
                tests = {test: cluster.judge(held, hidden, test[0], test[1], priority=priority,
                                             key=("judge", student, test[0], test[1], submission.token))
                         for test in plan.tests}
                grading = _Grading(student, digests[student],
                                   gradebook.scratch_for(template, plan.assignment, student, Path(scratch)),
                                   time.perf_counter(), tests)
                gradings[student] = grading
                for future in tests.values():
                    future.add_done_callback(lambda _, s=student: events.put(s))
                grading.notebooks = notebook_runs.submit(course.run_notebooks, plan.assignment, student,
                                                         grading.scratch_url, deadline, stop)
                grading.notebooks.add_done_callback(lambda _, s=student: events.put(s))
            _collect(course, plan, gradebook, gradings, events, out)
        except BaseException:
            stop.set()  # nbgrader runs still going are interrupted (they clean up after themselves)
            raise
        finally:
            notebook_runs.shutdown(wait=True, cancel_futures=True)
    return {s: g.outcome for s, g in gradings.items() if g.outcome is not None}


def _collect(course: Course, plan: _Plan, gradebook: Gradebook, gradings: dict[str, _Grading],
             events: queue.Queue[str], out: TextIO | None) -> None:
    """Finish each submission as soon as its tests and notebooks are done."""
    with _Progress(len(gradings), out) as progress:
        while any(g.outcome is None for g in gradings.values()):
            grading = gradings[events.get()]
            if grading.outcome is not None or not grading.ready():
                continue
            grading.outcome = _finish(course, plan, gradebook, grading)
            for future in grading.tests.values():
                future.release()
            progress.finished(grading.outcome)


class _Progress:
    """Students done, failed and remaining, and the rate: on each student's line, and as a bar on a terminal."""

    def __init__(self, total: int, out: TextIO | None) -> None:
        from tqdm import tqdm

        self.total, self.out = total, out
        self.done = self.failed = 0
        self.began = time.perf_counter()
        self.bar = (tqdm(total=total, unit="student", desc="graded", file=out, dynamic_ncols=True, smoothing=0.1)
                    if out is not None and out.isatty() else None)

    def finished(self, outcome: GradingOutcome) -> None:
        self.done += 1
        self.failed += not outcome.ok
        rate = 3600 * self.done / max(time.perf_counter() - self.began, 1e-9)
        line = (f"{describe(outcome)}  [{self.done}/{self.total} done, {self.failed} not graded, "
                f"{self.total - self.done} remaining, {rate:.0f} students/hour]")
        if self.bar is not None:
            self.bar.write(line)
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.failed} not graded")
        elif self.out is not None:
            self.out.write(line + "\n")
            self.out.flush()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def describe(outcome: GradingOutcome) -> str:
    """One line about a student's grading, for the terminal."""
    if outcome.skipped:
        verdict = f"already graded: {outcome.score:g}/{outcome.max_score:g}"
    elif outcome.ok:
        verdict = f"graded: {outcome.score:g}/{outcome.max_score:g} ({outcome.seconds:.0f} s, {outcome.cpu_seconds:.0f} CPU-s)"
    else:
        verdict = f"{outcome.reason} ({outcome.seconds:.0f} s)"
    return f"{outcome.student:<24} {verdict}"


def _finish(course: Course, plan: _Plan, gradebook: Gradebook, grading: _Grading) -> GradingOutcome:
    """Write one student's grading (feedback notebook, then the gradebook in one transaction), or say why not."""
    from labkit.course.grading import fill_feedback, write_scores
    from labkit.testing.runner import TestResult

    student = grading.student

    def not_graded(reason: str) -> GradingOutcome:
        return GradingOutcome(student, False, time.perf_counter() - grading.began, f"not graded, re-run: {reason}")

    results: dict[tuple[str, str], TestResult] = {}
    pictures: dict[tuple[str, str], dict[str, str] | None] = {}
    cpu = 0.0
    for (lab, number), future in grading.tests.items():
        try:
            answer = future.result()
        except BaseException as error:  # a Dask failure, never the student's doing: not a verdict
            return not_graded(_task_failure(error, number))
        result = TestResult(**answer["result"])
        if not result.graded:
            return not_graded(result.failure or f"test {number} could not be run")
        results[(lab, number)] = result
        pictures[(lab, number)] = answer["picture"]
        cpu += answer["judge_cpu_seconds"] + result.cpu_seconds
    assert grading.notebooks is not None
    try:
        trouble = grading.notebooks.result()
    except Exception as error:
        trouble = f"running the notebooks failed ({type(error).__name__}: {error})"
    if trouble is not None:
        return not_graded(trouble)
    score = sum(r.points_earned for r in results.values())
    try:
        write_scores(grading.scratch_url, course.course_id, plan.assignment, student, plan.cells, results)
        fill_feedback(course.root / "autograded" / student / plan.assignment, plan.cells, results,
                      plan.hidden_numbers, pictures)
        gradebook.commit(grading.scratch_url, plan.assignment, student, grading.digest, score, plan.max_score)
    except Exception as error:  # the gradebook is the grader's: nothing of this student was kept
        return not_graded(str(error) if isinstance(error, LabkitError) else f"{type(error).__name__}: {error}")
    return GradingOutcome(student, True, time.perf_counter() - grading.began, "", score, plan.max_score,
                          cpu_seconds=cpu)


def _task_failure(error: BaseException, number: str) -> str:
    """Why a test's Dask task gave no result, for the TA."""
    from distributed import KilledWorker

    if isinstance(error, KilledWorker):
        return (f"the Dask workers running test {number} died each time (killed, or out of memory; the "
                "scheduler gives a task up after distributed.scheduler.allowed-failures deaths): look at the "
                "workers' logs")
    if type(error).__name__ in ("CancelledError", "FutureCancelledError"):
        return f"test {number} was cancelled: the connection to the Dask scheduler was lost"
    text = (str(error).strip().splitlines() or [""])[0][:300]
    return f"test {number} could not be judged on a Dask worker ({type(error).__name__}: {text})"
