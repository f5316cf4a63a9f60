"""Scores from the judge: a submission graded test by test, written to the gradebook, shown in the feedback.

nbgrader still runs each submitted notebook (bookkeeping, and the notebook the
feedback is made from), in a boxed kernel whose test cells only say that the
judge grades them. The verdicts come from the judge: every graded cell of the
*source* notebooks names its test (``check_test("paxos", "1.4", ...)``), the
judge runs those tests on the submitted module in boxed workers (as Dask
tasks, :mod:`labkit.course.distributed`), and this module turns the verdicts
into scores and feedback; they reach the gradebook in one transaction once
every test has a verdict (:mod:`labkit.course.coordinator`). Added cells, edited or deleted cells, anything a kernel printed or
a kernel that died change no score. A test the grading machinery could not
run leaves the submission ungraded ("not graded, re-run"), never at 0.
"""

from __future__ import annotations

import ast
import base64
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import nbformat

from labkit.node import LabkitError
from labkit.testing.calls import summary_table
from labkit.testing.declare import TestSpec
from labkit.testing.runner import TestResult, evidence_timeline, get_lab, print_result

__all__ = ["GradedCell", "graded_cells", "missing_result", "write_scores", "fill_feedback", "hidden_summary",
           "polish_feedback", "timeline_picture", "GradingError"]

FEEDBACK_OUTPUT_LIMIT = 20_000  # characters of a test's printed output shown in feedback


class GradingError(LabkitError):
    """The course's notebooks or gradebook cannot be graded as they are."""


@dataclass(frozen=True)
class GradedCell:
    """A graded cell of a source notebook and the test it stands for."""

    notebook: str  # the notebook's name without .ipynb
    grade_id: str
    lab: str
    number: str
    points: float


def graded_cells(source: Path) -> list[GradedCell]:
    """Every graded cell of the notebooks in ``source`` (an assignment's source folder), with its test.

    A graded cell must call ``check_test("<lab>", "<part.number>", ...)`` (inside a hidden
    region for hidden tests)."""
    cells = []
    for path in sorted(source.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not meta.get("grade") or cell.cell_type != "code":
                continue
            call = _test_call(cell.source)
            if call is None:
                raise GradingError(f"{path.name}: the graded cell {meta.get('grade_id')} does not call "
                                   "check_test(\"<lab>\", \"<test number>\", ...); the judge cannot tell which test it is")
            cells.append(GradedCell(path.stem, str(meta["grade_id"]), call[0], call[1], float(meta.get("points", 0))))
    return cells


def _test_call(source: str) -> tuple[str, str] | None:
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check_test"
                and len(node.args) >= 2 and all(isinstance(a, ast.Constant) and isinstance(a.value, str)
                                                 for a in node.args[:2])):
            return node.args[0].value, node.args[1].value  # type: ignore[attr-defined,return-value]
    return None


def missing_result(spec: TestSpec, module: str) -> TestResult:
    """The result of a test when the student submitted no ``module``: failed, and graded."""
    return TestResult(spec.lab, spec.part, spec.qualified_number, spec.name, list(spec.categories), spec.points, 0.0,
                      False, spec.default_seed, 0.0, failure=f"no {module} was submitted")


def write_scores(gradebook_url: str, course_id: str, assignment: str, student: str, cells: Iterable[GradedCell],
                 results: dict[tuple[str, str], TestResult]) -> dict[str, float]:
    """Write every graded cell's score from the judge's verdicts, in one transaction."""
    from nbgrader.api import Gradebook, MissingEntry

    scores = {}
    with Gradebook(gradebook_url, course_id=course_id) as gradebook:
        try:
            gradebook.find_submission(assignment, student)
        except MissingEntry:
            gradebook.update_or_create_student(student)
            gradebook.add_submission(assignment, student)
        try:
            for cell in cells:
                result = results[(cell.lab, cell.number)]
                grade = gradebook.find_grade(cell.grade_id, cell.notebook, assignment, student)
                grade.auto_score = cell.points if result.passed else 0.0
                grade.needs_manual_grade = False
                scores[f"{cell.notebook}:{cell.grade_id}"] = grade.auto_score
            gradebook.db.commit()
        except BaseException:
            gradebook.db.rollback()
            raise
    return scores


def hidden_summary(result: TestResult) -> str:
    """One sentence about a hidden test's failure: what kind of check failed, no scenario details."""
    first = (result.failure or "").strip().splitlines()[0] if result.failure else ""
    head = first.split(": ", 1)[0] if ": " in first and len(first.split(": ", 1)[0]) >= 15 else first
    head = re.sub(r"\s+", " ", head)[:160].rstrip(" .")
    return (head[0].upper() + head[1:] + ".") if head else "It failed."


def _text(result: TestResult, spec: TestSpec, hidden: bool) -> str:
    if hidden:
        verdict = "passed" if result.passed else f"failed. {hidden_summary(result)}"
        return f"Hidden test {result.number} ({result.points_available:g} points): {verdict}\n"
    out = io.StringIO()
    shown = TestResult(**{**result.__dict__, "output": result.output[:FEEDBACK_OUTPUT_LIMIT]})
    print_result(shown, spec, out)
    return out.getvalue()


def timeline_picture(result: TestResult) -> dict[str, str] | None:
    """The timeline of a failed test's run or trace for the feedback: ``{"png": base64 PNG, "caption": what it
    shows}``, or None if it passed, has nothing to draw, or could not be drawn (a picture never hides the verdict)."""
    if result.passed or result.evidence is None:
        return None
    try:
        figure = evidence_timeline(result, end=True)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    except Exception:
        return None
    return {"png": base64.b64encode(buffer.getvalue()).decode(), "caption": f"(The picture shows {figure.get_label()}.)"}


SUMMARY_ID = "summary"  # the grade id of a notebook's closing results cell

FEEDBACK_STYLE = """<style>
/* labkit: long lines wrap, pictures fit the column */
pre { white-space: pre-wrap; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; }
</style>"""


def polish_feedback(page: str, cells: Iterable[GradedCell]) -> str:
    """A feedback page that reads well: long lines wrapped, pictures within the column, and the
    score summary naming each test ("Test 1.4: Lossy network") instead of "Test cell"."""
    for cell in cells:
        try:
            spec = next((s for s in get_lab(cell.lab).tests if s.qualified_number == cell.number), None)
        except LabkitError:
            spec = None
        label = f"Test {cell.number}: {spec.name}" if spec is not None and not spec.hidden else f"Hidden test {cell.number}"
        page = page.replace(f'<a href="#{cell.grade_id}">Test cell</a>',
                            f'<a href="#{cell.grade_id}">{html.escape(label)}</a>')
    return page.replace("</head>", FEEDBACK_STYLE + "\n</head>", 1) if FEEDBACK_STYLE not in page else page


def _summary(graded: list[GradedCell], results: dict[tuple[str, str], TestResult]) -> str:
    """The graded results of one notebook's tests, hidden ones included, as a table."""
    lab = graded[0].lab
    numbers = [c.number for c in graded]
    return "Graded results:\n" + summary_table(lab, numbers, {c.number: results.get((c.lab, c.number)) for c in graded})


def fill_feedback(folder: Path, cells: Iterable[GradedCell], results: dict[tuple[str, str], TestResult],
                  hidden_numbers: set[tuple[str, str]], pictures: dict[tuple[str, str], dict[str, str] | None]) -> None:
    """Put the judge's result (and, for a public failure, its picture and caption, by test) into each
    graded cell of the notebooks in ``folder`` (an autograded submission), replacing what the kernel printed."""
    by_notebook: dict[str, list[GradedCell]] = {}
    for cell in cells:
        by_notebook.setdefault(cell.notebook, []).append(cell)
    for name, graded in by_notebook.items():
        path = folder / f"{name}.ipynb"
        if not path.exists():
            continue
        nb = nbformat.read(str(path), as_version=4)
        wanted = {c.grade_id: c for c in graded}
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id == SUMMARY_ID and cell.cell_type == "code":
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=_summary(graded, results) + "\n")]
                continue
            graded_cell = wanted.get(grade_id)
            if graded_cell is None or cell.cell_type != "code":
                continue
            key = (graded_cell.lab, graded_cell.number)
            result = results[key]
            spec = next(s for s in get_lab(graded_cell.lab).tests if s.qualified_number == graded_cell.number)
            hidden = key in hidden_numbers
            outputs = [nbformat.v4.new_output("stream", name="stdout", text=_text(result, spec, hidden))]
            picture = None if hidden else pictures.get(key)
            if picture is not None:
                outputs.append(nbformat.v4.new_output("display_data", data={"image/png": picture["png"]}))
                outputs.append(nbformat.v4.new_output("stream", name="stdout", text=picture["caption"] + "\n"))
            cell.outputs = outputs
        mode = path.stat().st_mode
        path.chmod(mode | 0o200)
        nbformat.write(nb, str(path))
        path.chmod(mode)
