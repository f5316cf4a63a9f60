"""The gradebook side of autograding, on real SQLite gradebooks built with nbgrader's API.

nbgrader's bookkeeping goes to a scratch copy seeded with the student's
earlier submission; a finished grading reaches the gradebook whole, in one
transaction, with its record; a refused write keeps nothing; and bad URLs
say what to check.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest
from nbgrader.api import Gradebook as NbgraderGradebook

from labkit.course.gradebook import Gradebook, GradebookError, database_url, default_url, folder_digest, shown_url

COURSE = "labkit-test"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gradebook with assignment hw (notebook nb: two graded cells) and ann's earlier submission,
    graded by hand on one cell, with a two-day extension (made once: nbgrader stamps a new database
    by running alembic, which takes seconds)."""
    folder = tmp_path_factory.mktemp("pristine")
    url = default_url(folder)
    Gradebook(url, COURSE).close()  # creates nbgrader's tables the way nbgrader does, then labkit's
    with NbgraderGradebook(url, course_id=COURSE) as gradebook:
        gradebook.add_assignment("hw", duedate=datetime.datetime(2026, 11, 20, 12))
        gradebook.add_notebook("nb", "hw")
        for name, points in (("test-a", 5), ("test-b", 10)):
            gradebook.add_grade_cell(name, "nb", "hw", max_score=points, cell_type="code")
        gradebook.add_student("ann", first_name="Ann", last_name="Lee")
        gradebook.add_submission("hw", "ann")
        gradebook.grant_extension("hw", "ann", days=2)
        gradebook.find_grade("test-a", "nb", "hw", "ann").manual_score = 4.0
        gradebook.db.commit()
    return folder / "gradebook.db"


@pytest.fixture
def url(pristine: Path, tmp_path: Path) -> str:
    shutil.copyfile(pristine, tmp_path / "gradebook.db")
    return default_url(tmp_path)


def nbgrader_autograde(scratch_url: str, student: str, scores: dict[str, float]) -> None:
    """What nbgrader's autograde and the judge's scores do to a scratch gradebook."""
    with NbgraderGradebook(scratch_url, course_id=COURSE) as gradebook:
        gradebook.update_or_create_student(student)
        gradebook.update_or_create_submission("hw", student, timestamp="2026-11-21T09:30:00Z")
        for cell, score in scores.items():
            gradebook.find_grade(cell, "nb", "hw", student).auto_score = score
        gradebook.db.commit()


def grades(url: str, student: str) -> dict[str, tuple[float | None, float | None]]:
    with NbgraderGradebook(url, course_id=COURSE) as gradebook:
        return {g.name: (g.auto_score, g.manual_score)
                for g in gradebook.find_submission_notebook("nb", "hw", student).grades}


def test_a_finished_grading_reaches_the_gradebook_whole_with_its_record(url: str, tmp_path: Path) -> None:
    with Gradebook(url, COURSE) as gradebook:
        template = gradebook.scratch_template("hw", tmp_path)
        for student, scores in (("ann", {"test-a": 0.0, "test-b": 10.0}), ("bob", {"test-a": 5.0, "test-b": 0.0})):
            scratch = gradebook.scratch_for(template, "hw", student, tmp_path)
            nbgrader_autograde(scratch, student, scores)
            assert student not in gradebook.finished("hw")
            gradebook.commit(scratch, "hw", student, f"digest-{student}", sum(scores.values()), 15.0)
        finished = gradebook.finished("hw")
    assert {s: (f["digest"], f["score"], f["max_score"]) for s, f in finished.items()} == {
        "ann": ("digest-ann", 10.0, 15.0), "bob": ("digest-bob", 5.0, 15.0)}
    assert grades(url, "ann") == {"test-a": (0.0, 4.0), "test-b": (10.0, None)}  # the manual grade is kept
    assert grades(url, "bob") == {"test-a": (5.0, None), "test-b": (0.0, None)}
    with NbgraderGradebook(url, course_id=COURSE) as gradebook:
        ann = gradebook.find_submission("hw", "ann")
        assert ann.extension == datetime.timedelta(days=2) and ann.timestamp == datetime.datetime(2026, 11, 21, 9, 30)
        assert ann.student.first_name == "Ann" and len(gradebook.students) == 2
        assert ann.score == 14.0  # manual 4 for test-a, auto 10 for test-b


def test_grading_again_replaces_the_earlier_rows(url: str, tmp_path: Path) -> None:
    with Gradebook(url, COURSE) as gradebook:
        template = gradebook.scratch_template("hw", tmp_path)
        for scores in ({"test-a": 5.0, "test-b": 0.0}, {"test-a": 5.0, "test-b": 10.0}):
            scratch = gradebook.scratch_for(template, "hw", "ann", tmp_path)
            nbgrader_autograde(scratch, "ann", scores)
            gradebook.commit(scratch, "hw", "ann", "digest", sum(scores.values()), 15.0)
        assert gradebook.finished("hw")["ann"]["score"] == 15.0
    assert grades(url, "ann") == {"test-a": (5.0, 4.0), "test-b": (10.0, None)}
    with NbgraderGradebook(url, course_id=COURSE) as gradebook:
        assert len(gradebook.assignment_submissions("hw")) == 1


def test_a_refused_write_keeps_nothing_and_says_so(url: str, tmp_path: Path) -> None:
    with Gradebook(url, COURSE) as gradebook:
        scratch = gradebook.scratch_for(gradebook.scratch_template("hw", tmp_path), "hw", "bob", tmp_path)
    nbgrader_autograde(scratch, "bob", {"test-a": 5.0, "test-b": 10.0})
    read_only = f"sqlite:///file:{tmp_path / 'gradebook.db'}?mode=ro&uri=true"
    with Gradebook(read_only, COURSE) as gradebook:
        with pytest.raises(GradebookError, match="could not be written .*nothing of bob's grading was kept"):
            gradebook.commit(scratch, "hw", "bob", "digest", 15.0, 15.0)
    with Gradebook(url, COURSE) as gradebook:
        assert gradebook.finished("hw") == {}
    with NbgraderGradebook(url, course_id=COURSE) as gradebook:
        assert [s.student.id for s in gradebook.assignment_submissions("hw")] == ["ann"]


def test_a_record_without_its_submission_is_not_finished(url: str, tmp_path: Path) -> None:
    with Gradebook(url, COURSE) as gradebook:
        scratch = gradebook.scratch_for(gradebook.scratch_template("hw", tmp_path), "hw", "ann", tmp_path)
        nbgrader_autograde(scratch, "ann", {"test-a": 5.0})
        gradebook.commit(scratch, "hw", "ann", "digest", 5.0, 15.0)
        with NbgraderGradebook(url, course_id=COURSE) as nbgrader:
            nbgrader.remove_submission("hw", "ann")  # a TA removed it by hand
        assert gradebook.finished("hw") == {}


def test_an_assignment_never_released_into_this_gradebook_is_named(url: str) -> None:
    with Gradebook(url, COURSE) as gradebook:
        with pytest.raises(GradebookError, match="has no assignment 'paxos': release it into this gradebook first"):
            gradebook.check_assignment("paxos")


@pytest.mark.parametrize("url, words", [
    ("postgres://ta@127.0.0.1:1/course", "SQLAlchemy does not accept postgres://"),
    ("postgresql://ta:secret@127.0.0.1:1/course", "that the server runs"),
    ("sqlite:////no/such/folder/gradebook.db", "Check that the folder of the SQLite file exists"),
])
def test_a_gradebook_that_cannot_be_opened_says_what_to_check(url: str, words: str) -> None:
    with pytest.raises(GradebookError) as caught:
        Gradebook(database_url(url), COURSE)
    message = str(caught.value)
    assert message.startswith("cannot open the gradebook") and words in message, message
    assert "secret" not in message


def test_urls() -> None:
    assert database_url("postgresql://ta@db/course") == "postgresql+psycopg://ta@db/course"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert shown_url("postgresql+psycopg://ta:secret@db:5432/course") == "postgresql+psycopg://ta:***@db:5432/course"


def test_the_digest_follows_the_files_and_the_tests(tmp_path: Path) -> None:
    (tmp_path / "paxos_server.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    first = folder_digest(tmp_path, ["tests v1"])
    (tmp_path / "__pycache__" / "paxos_server.cpython-311.pyc").write_bytes(b"\0")
    assert folder_digest(tmp_path, ["tests v1"]) == first
    assert folder_digest(tmp_path, ["tests v2"]) != first
    (tmp_path / "paxos_server.py").write_text("x = 2\n")
    assert folder_digest(tmp_path, ["tests v1"]) != first
