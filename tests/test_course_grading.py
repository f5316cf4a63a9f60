"""Autograding with real nbgrader and a real Jupyter kernel (slow tier).

The tour assignment (the ping lab) carries most checks because it is small:
full marks, an untouched stub, a buggy solution, broken submissions, repeat
runs, feedback and export. The Paxos assignment is autograded with the
reference solution (every notebook, hidden tests included) and with a
variant without garbage collection (the garbage-collection notebook only).
"""

from __future__ import annotations

import base64
import csv
import re
import shutil
import time
from pathlib import Path
from typing import Iterator

import nbformat
import pytest

from labkit.course import Course
from labkit.labs.paxos import pictures
from labkit.testing import get_lab

from conftest import NO_RETRY_FAILS, RETRY_BODY


ROOT = Path(__file__).resolve().parent.parent
PING_REFERENCE = ROOT / "solutions" / "ping" / "ping_server.py"
PAXOS_REFERENCE = ROOT / "solutions" / "paxos" / "paxos_server.py"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Hermetic Jupyter/IPython/matplotlib folders for the whole module."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
            (home / name).mkdir()
            patch.setenv(name, str(home / name))
        patch.setenv("LABKIT_WORKERS", "2")
        yield home


def copy_course(where: Path) -> Course:
    ignore = shutil.ignore_patterns("release", "submitted", "autograded", "feedback", "gradebook.db", "__pycache__",
                                    ".ipynb_checkpoints", "*.png")
    for name in ("notebooks", "solutions", "grader_tests"):
        shutil.copytree(ROOT / name, where / name, ignore=ignore)
    return Course(where / "notebooks")


def submit(course: Course, assignment: str, student: str, module: str, text: str | None) -> Path:
    """A submission: the released assignment with the student's module (``None``: no module at all)."""
    folder = course.root / "submitted" / student / assignment
    shutil.copytree(course.root / "release" / assignment, folder)
    if text is None:
        (folder / module).unlink()
    else:
        (folder / module).write_text(text)
    return folder


def cell_text(nb, grade_id: str) -> str:
    """Everything a graded cell shows: streams, results and error tracebacks."""
    (cell,) = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
        parts.extend(output.get("traceback", []))
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


def autograded(course: Course, student: str, assignment: str, notebook: str):
    return nbformat.read(str(course.root / "autograded" / student / assignment / notebook), as_version=4)


def total(cells: dict[str, tuple[float, float]]) -> tuple[float, float]:
    return sum(s for s, _ in cells.values()), sum(m for _, m in cells.values())


# --------------------------------------------------------------------------
# The tour: many submissions of the small lab
# --------------------------------------------------------------------------

PING_TESTS = get_lab("ping").tests
PING_CELLS = {f"tour:test-1-{t.number}": t for t in PING_TESTS}
LOOP = PING_REFERENCE.read_text().replace(
    "        self.send(PongReply(self.app.execute(message.ping)), sender)",
    "        while True:  # forgot to stop\n            pass")
FLOOD = PING_REFERENCE.read_text().replace(
    "        self.send(PongReply(self.app.execute(message.ping)), sender)",
    "        print('x' * 200_000)\n        self.send(PongReply(self.app.execute(message.ping)), sender)")
SUBMISSIONS = {
    "reference": PING_REFERENCE.read_text(),
    "untouched": None,  # filled with the released stub below
    "no-retry": PING_REFERENCE.read_text().replace(RETRY_BODY, "        pass"),
    "missing": None,
    "syntax": PING_REFERENCE.read_text().replace("def has_result(self) -> bool:", "def has_result(self) -> bool"),
    "flood": FLOOD,
}


@pytest.fixture(scope="module")
def tour(env: Path, tmp_path_factory: pytest.TempPathFactory) -> Course:
    course = copy_course(tmp_path_factory.mktemp("tour"))
    course.release("tour", [course.root.parent / "solutions", course.root.parent / "grader_tests"])
    for student, text in SUBMISSIONS.items():
        if student == "untouched":
            submit(course, "tour", student, "ping_server.py", (course.root / "release" / "tour" / "ping_server.py").read_text())
        else:
            submit(course, "tour", student, "ping_server.py", text)
    submit(course, "tour", "loop", "ping_server.py", LOOP)
    began = time.perf_counter()
    students = [*SUBMISSIONS, "loop"]
    outcomes = course.autograde("tour", students, hidden_tests=course.root.parent / "grader_tests")
    TIMINGS["tour autograde, 7 students"] = time.perf_counter() - began
    assert [(o.student, o.ok) for o in outcomes] == [(s, True) for s in students], [o.reason for o in outcomes]
    return course


@pytest.mark.slow
def test_reference_scores_full_marks_and_the_stub_scores_zero(tour: Course) -> None:
    scores = tour.scores("tour")
    assert set(scores["reference"]) == set(PING_CELLS)
    assert all(score == most > 0 for score, most in scores["reference"].values())
    assert total(scores["untouched"]) == (0, total(scores["reference"])[1])
    nb = autograded(tour, "untouched", "tour", "tour.ipynb")
    for cell in PING_CELLS:
        text = cell_text(nb, cell.split(":")[1])
        assert "not implemented: Ping" in text, text


@pytest.mark.slow
def test_buggy_solution_gets_partial_marks_and_readable_feedback(tour: Course) -> None:
    scores = tour.scores("tour")["no-retry"]
    for cell, spec in PING_CELLS.items():
        assert scores[cell][0] == (0 if spec.qualified_number in NO_RETRY_FAILS else spec.points), cell
    tour.feedback("tour", ["no-retry"])
    assert [p.name for p in (tour.root / "feedback" / "no-retry").rglob("*") if p.is_file()] == ["tour.html"]
    html = (tour.root / "feedback" / "no-retry" / "tour" / "tour.html").read_text()
    failing = sorted(NO_RETRY_FAILS)[0]
    spec = next(t for t in PING_TESTS if t.qualified_number == failing)
    assert f"TEST {failing}: {spec.name}" in html and "FAIL" in html
    assert "Test cell" not in html and f'">Test {failing}: {spec.name}</a>' in html  # the score summary names tests
    assert "white-space: pre-wrap" in html and "max-width: 100%" in html
    assert "seed" in html and "replay with" in html
    images = re.findall(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=\n]+)"', html)
    assert images and base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_broken_submissions_score_zero_with_a_message_and_others_are_unaffected(tour: Course) -> None:
    scores = tour.scores("tour")
    reasons = {"missing": "no ping_server.py was submitted", "syntax": "has a syntax error on line",
               "loop": "look for an endless loop"}
    for student, words in reasons.items():
        assert total(scores[student])[0] == 0, student
        nb = autograded(tour, student, "tour", "tour.ipynb")
        for cell in PING_CELLS:
            assert words in cell_text(nb, cell.split(":")[1]), (student, cell)
    assert total(scores["reference"])[0] == total(scores["reference"])[1]


@pytest.mark.slow
def test_a_flood_of_output_costs_only_the_flooded_tests(tour: Course) -> None:
    """Output printed by handlers is captured by the test runner and never reaches the notebook;
    a test during which megabytes were printed scores 0 and says why, the others are graded."""
    path = tour.root / "autograded" / "flood" / "tour" / "tour.ipynb"
    assert path.stat().st_size < 2_000_000
    scores = tour.scores("tour")["flood"]
    lost = [cell for cell, (score, best) in scores.items() if score < best]
    kept = [cell for cell, (score, best) in scores.items() if score == best]
    assert lost and kept
    nb = nbformat.read(path, as_version=4)
    for cell in lost:
        assert "characters during this test" in cell_text(nb, cell.split(":")[1])


@pytest.mark.slow
def test_same_submission_twice_gives_the_same_scores_and_export_matches(tour: Course) -> None:
    before = tour.scores("tour")
    again = tour.autograde("tour", ["no-retry", "reference", "syntax"], regrade=True)
    assert all(o.ok and not o.skipped for o in again)
    after = tour.scores("tour")
    assert {s: after[s] for s in ("no-retry", "reference", "syntax")} == {s: before[s] for s in ("no-retry", "reference", "syntax")}
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tour.root / 'gradebook.db'}", course_id="labkit-paxos") as gradebook:
        gradebook.update_or_create_student("never-submitted")
    grades = tour.export()
    assert grades == tour.root / "grades.csv"
    rows = {row["student_id"]: row for row in csv.DictReader(grades.open()) if row["assignment"] == "tour"}
    assert rows.pop("never-submitted")["status"] == "missing"
    assert {row["status"] for row in rows.values()} == {"graded"}
    for student, cells in after.items():
        assert float(rows[student]["raw_score"]) == pytest.approx(total(cells)[0])
        assert float(rows[student]["max_score"]) == pytest.approx(total(cells)[1])


@pytest.mark.slow
def test_check_reference_command_on_the_tour(tour: Course) -> None:
    score, most = tour.check_reference("tour", PING_REFERENCE, "ping_server.py")
    assert score == most == sum(t.points for t in PING_TESTS)
    assert "labkit-reference" not in tour.scores("tour")


# --------------------------------------------------------------------------
# Paxos
# --------------------------------------------------------------------------


@pytest.mark.heavy  # the whole Paxos assignment through nbgrader: many CPU-minutes
def test_paxos_reference_scores_full_marks_in_every_notebook(env: Path, tmp_path: Path) -> None:
    """The reference module with the released notebooks: every public and hidden cell full,
    every notebook executed top to bottom, every picture cell an image."""
    course = copy_course(tmp_path)
    began = time.perf_counter()
    course.release("paxos", [tmp_path / "solutions", tmp_path / "grader_tests"], reference=tmp_path / "solutions" / "paxos" / "paxos_server.py")
    TIMINGS["paxos release with pictures"] = time.perf_counter() - began
    submit(course, "paxos", "reference", "paxos_server.py", PAXOS_REFERENCE.read_text())
    began = time.perf_counter()
    (outcome,) = course.autograde("paxos", ["reference"], hidden_tests=tmp_path / "grader_tests")
    TIMINGS["paxos autograde, reference, 4 notebooks"] = time.perf_counter() - began
    assert outcome.ok, outcome.reason
    cells = course.scores("paxos")["reference"]
    lost = {name: value for name, value in cells.items() if value[0] < value[1]}
    assert not lost
    for name in ("1_multi_paxos", "2_stable_leaders", "3_garbage_collection", "4_batching"):
        assert any(cell.startswith(f"{name}:test-") and ".101" not in cell for cell in cells)
        nb = autograded(course, "reference", "paxos", f"{name}.ipynb")
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            assert not [o for o in cell.outputs if o.output_type == "error"], (name, cell.source)
            if "plot_" in cell.source and "import" not in cell.source.splitlines()[-1]:
                assert any("image/png" in o.get("data", {}) for o in cell.outputs), (name, cell.source)
    print(TIMINGS)


@pytest.mark.heavy  # the whole Paxos assignment through nbgrader: many CPU-minutes
def test_paxos_without_batching_gets_partial_marks_with_feedback(env: Path, tmp_path: Path) -> None:
    """The reference with batching turned off, graded on the batching notebook only (to keep this quick):
    it fails the two message-budget tests and passes the others."""
    course = copy_course(tmp_path)
    for other in ("1_multi_paxos", "2_stable_leaders", "3_garbage_collection"):
        (course.root / "source" / "paxos" / f"{other}.ipynb").unlink()
    course.release("paxos", [tmp_path / "solutions", tmp_path / "grader_tests"])
    text = pictures.variant_source(PAXOS_REFERENCE.read_text(), "no_batching")
    submit(course, "paxos", "no-batching", "paxos_server.py", text)
    began = time.perf_counter()
    (outcome,) = course.autograde("paxos", ["no-batching"], hidden_tests=tmp_path / "grader_tests")
    TIMINGS["paxos autograde, no-batching, notebook 4"] = time.perf_counter() - began
    assert outcome.ok, outcome.reason
    first = course.scores("paxos")["no-batching"]
    assert first == {"4_batching:test-4-28": (0, 10), "4_batching:test-4-29": (0, 0),
                     "4_batching:test-4-101": (0, 5), "4_batching:test-4-102": (5, 5)}
    course.feedback("paxos", ["no-batching"])
    html = (course.root / "feedback" / "no-batching" / "paxos" / "4_batching.html").read_text()
    assert "TEST 4.28: Many clients: requests batched" in html and "FAIL" in html
    assert "batch waiting requests into one slot" in html
    assert re.search(r'<img[^>]*src="data:image/png;base64,', html)
    graded_notebook = autograded(course, "no-batching", "paxos", "4_batching.ipynb")
    summary = cell_text(graded_notebook, "summary")
    assert "Graded results:" in summary and "Total: 5 of 20 points" in summary, summary
    assert re.search(r"4\.101\s+\(hidden test\)\s+FAIL\s+0/5", summary), summary
    hidden = cell_text(graded_notebook, "test-4-101")
    assert "Hidden test 4.101 (5 points): failed." in hidden
    for secret in ("seed", "replay", "trace", "labkit test", "Traceback"):
        assert secret not in hidden, secret
    feedback_files = [p.name for p in (course.root / "feedback" / "no-batching").rglob("*") if p.is_file()]
    assert feedback_files == ["4_batching.html"], feedback_files
    assert "paxos_hidden" not in (course.root / "release" / "paxos" / "4_batching.ipynb").read_text()
    (again,) = course.autograde("paxos", ["no-batching"], hidden_tests=tmp_path / "grader_tests", regrade=True)
    assert again.ok and not again.skipped and course.scores("paxos")["no-batching"] == first
    print(TIMINGS)


@pytest.mark.heavy  # the whole Paxos assignment through nbgrader: many CPU-minutes
def test_paxos_without_garbage_collection_loses_every_memory_test(env: Path, tmp_path: Path) -> None:
    course = copy_course(tmp_path)
    for other in ("1_multi_paxos", "2_stable_leaders", "4_batching"):
        (course.root / "source" / "paxos" / f"{other}.ipynb").unlink()
    course.release("paxos", [tmp_path / "solutions", tmp_path / "grader_tests"])
    submit(course, "paxos", "no-gc", "paxos_server.py",
           pictures.variant_source(PAXOS_REFERENCE.read_text(), "no_garbage_collection"))
    (outcome,) = course.autograde("paxos", ["no-gc"], hidden_tests=tmp_path / "grader_tests")
    assert outcome.ok, outcome.reason
    cells = course.scores("paxos")["no-gc"]
    assert cells["3_garbage_collection:test-3-11"] == (0, 15) and total(cells)[0] == 0
    nb = autograded(course, "no-gc", "paxos", "3_garbage_collection.ipynb")
    assert "must be garbage-collected" in cell_text(nb, "test-3-11")
