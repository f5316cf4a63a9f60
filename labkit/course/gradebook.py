"""The course's gradebook: where it is, what a finished grading left in it, and how one grading is written.

nbgrader keeps its gradebook in a database named by a SQLAlchemy URL:
``sqlite:///<course>/gradebook.db`` by default, ``postgresql://...`` for one
that several graders share. Only the process coordinating ``labkit course
autograde`` writes it while a course is graded, once per finished
submission, in one transaction:

* nbgrader's own run of a student's notebooks (its bookkeeping: the
  submission, its notebooks, comments, timestamp and late penalty) writes
  into a *scratch* gradebook, a private SQLite file seeded with the
  assignment and with that student's earlier submission, if any (so manual
  grades and extensions carry over);
* once the judge has every verdict, the scores are written into the scratch
  copy, and the submission's rows are copied from it into the gradebook
  together with a row of :data:`GRADED_TABLE` saying what was graded
  (a digest of the submitted files and of the tests), all in one transaction.

So a submission whose grading did not finish has no rows at all, and a
restarted run skips exactly the submissions that have their row.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

from labkit.node import LabkitError

__all__ = ["GradebookError", "Gradebook", "GRADED_TABLE", "default_url", "database_url", "shown_url", "folder_digest"]

GRADED_TABLE = "labkit_graded"
"""One row per finished grading: assignment, student, digest, score, max_score, graded_at."""

_DEFINITION = ("assignment", "notebook", "base_cell", "grade_cells", "solution_cells", "task_cells", "source_cell")
_SUBMISSION = ("submitted_assignment", "submitted_notebook", "grade", "comment")
_SKIPPED_FILES = ("__pycache__", ".ipynb_checkpoints")


class GradebookError(LabkitError):
    """The gradebook cannot be opened or written; the message says what to check."""


def default_url(root: Path) -> str:
    """nbgrader's default: ``gradebook.db`` in the course folder."""
    return f"sqlite:///{root / 'gradebook.db'}"


def database_url(url: str) -> str:
    """``url`` with PostgreSQL's driver named (``postgresql+psycopg://``), so that every SQLAlchemy
    version nbgrader accepts uses the psycopg that labkit installs."""
    scheme, separator, rest = url.partition("://")
    return f"postgresql+psycopg://{rest}" if separator and scheme == "postgresql" else url


def shown_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def folder_digest(folder: Path, extra: Iterable[str] = ()) -> str:
    """A digest of every file under ``folder`` (names and bytes) and of the ``extra`` texts."""
    digest = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                           and not set(p.relative_to(folder).parts) & set(_SKIPPED_FILES)):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    for text in extra:
        digest.update(b"\1" + text.encode())
    return digest.hexdigest()


class Gradebook:
    """The course's gradebook at ``url``, checked on opening (see the module docstring)."""

    def __init__(self, url: str, course_id: str) -> None:
        self.url = url
        self.course_id = course_id
        self._open_nbgrader(url, course_id)  # creates nbgrader's tables first (it stamps an empty database)
        from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, create_engine

        self.engine = create_engine(url, future=True)
        self.graded = Table(
            GRADED_TABLE, MetaData(),
            Column("assignment", String(128), primary_key=True),
            Column("student", String(128), primary_key=True),
            Column("digest", String(64), nullable=False),
            Column("score", Float, nullable=False),
            Column("max_score", Float, nullable=False),
            Column("graded_at", DateTime, nullable=False),
        )
        self.graded.create(self.engine, checkfirst=True)

    def _open_nbgrader(self, url: str, course_id: str) -> None:
        from nbgrader.api import Gradebook as NbgraderGradebook

        try:
            with _alembic_on_path():  # nbgrader stamps a new database by running `alembic` by name
                NbgraderGradebook(url, course_id=course_id).close()
        except ModuleNotFoundError as error:
            raise GradebookError(f"the gradebook {shown_url(url)} needs the database driver {error.name}, which is "
                                 "not installed: pip install \"psycopg[binary]\" (for postgresql://)") from None
        except Exception as error:
            raise GradebookError(f"cannot open the gradebook {shown_url(url)}: {_first_line(error)}.\n"
                                 f"{_url_advice(url)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ------------------------------------------------------------------------------

    def check_assignment(self, assignment: str) -> None:
        """Fail unless ``assignment`` was released into this gradebook (nbgrader needs its cells)."""
        from sqlalchemy import select

        table = _tables()["assignment"]
        with self.engine.connect() as connection:
            found = connection.execute(select(table.c.id).where(table.c.name == assignment)).first()
        if found is None:
            raise GradebookError(f"the gradebook {shown_url(self.url)} has no assignment {assignment!r}: release it "
                                 f"into this gradebook first (labkit course release --assignment {assignment}, with "
                                 "the same --db)")

    def assignments(self) -> list[str]:
        """The names of the assignments released into this gradebook."""
        from sqlalchemy import select

        table = _tables()["assignment"]
        with self.engine.connect() as connection:
            return sorted(connection.execute(select(table.c.name)).scalars())

    def finished(self, assignment: str) -> dict[str, dict[str, Any]]:
        """Every student whose grading of ``assignment`` finished (and whose submission is still in the
        gradebook): their ``digest``, ``score``, ``max_score`` and ``graded_at``."""
        from sqlalchemy import select

        tables = _tables()
        submissions, assignments = tables["submitted_assignment"], tables["assignment"]
        present = (select(submissions.c.student_id)
                   .join(assignments, assignments.c.id == submissions.c.assignment_id)
                   .where(assignments.c.name == assignment))
        query = select(self.graded).where(self.graded.c.assignment == assignment,
                                          self.graded.c.student.in_(present))
        with self.engine.connect() as connection:
            return {row.student: dict(row._mapping) for row in connection.execute(query)}

    # ---- scratch gradebooks for nbgrader's bookkeeping ---------------------------------------------

    def scratch_template(self, assignment: str, folder: Path) -> Path:
        """A SQLite gradebook in ``folder`` holding only ``assignment`` (its notebooks and cells), copied from here."""
        from nbgrader.api import Base
        from sqlalchemy import MetaData, Table, create_engine, select

        path = folder / "template.db"
        self.check_assignment(assignment)
        target = create_engine(f"sqlite:///{path}", future=True)
        try:
            Base.metadata.create_all(target)
            with self.engine.connect() as source, target.begin() as destination:
                stamp = Table("alembic_version", MetaData(), autoload_with=source)
                stamp.create(destination)
                destination.execute(stamp.insert(), _rows(source, select(stamp)))
                courses = _tables()["course"]
                destination.execute(courses.insert(), _rows(source, select(courses)))
                for name, rows in _definition_rows(source, assignment):
                    if rows:
                        destination.execute(_tables()[name].insert(), rows)
        finally:
            target.dispose()
        return path

    def scratch_for(self, template: Path, assignment: str, student: str, folder: Path) -> str:
        """A scratch gradebook for one student: the template plus the student and their earlier submission."""
        from sqlalchemy import create_engine

        path = folder / f"{hashlib.sha256(student.encode()).hexdigest()[:16]}.db"
        shutil.copyfile(template, path)
        url = f"sqlite:///{path}"
        target = create_engine(url, future=True)
        try:
            with self.engine.connect() as source, target.begin() as destination:
                for name, rows in _student_rows(source, assignment, student):
                    if rows:
                        destination.execute(_tables()[name].insert(), rows)
        finally:
            target.dispose()
        return url

    # ---- writing --------------------------------------------------------------------------------

    def commit(self, scratch_url: str, assignment: str, student: str, digest: str, score: float,
               max_score: float) -> None:
        """Copy the student's submission from the scratch gradebook into this one and record it as graded,
        in one transaction: the earlier rows of that submission are replaced; nothing is written on failure."""
        from sqlalchemy import create_engine, delete

        tables = _tables()
        scratch = create_engine(scratch_url, future=True)
        try:
            with scratch.connect() as source:
                new_rows = list(_student_rows(source, assignment, student))
        finally:
            scratch.dispose()
        try:
            with self.engine.begin() as connection:
                old = dict(_student_rows(connection, assignment, student))
                for name in reversed(_SUBMISSION):
                    ids = [row["id"] for row in old.get(name, [])]
                    if ids:
                        connection.execute(delete(tables[name]).where(tables[name].c.id.in_(ids)))
                for name, rows in new_rows:
                    if name == "student":
                        rows = [] if old.get("student") else rows
                    if rows:
                        connection.execute(tables[name].insert(), rows)
                connection.execute(delete(self.graded).where(self.graded.c.assignment == assignment,
                                                             self.graded.c.student == student))
                connection.execute(self.graded.insert(), [{
                    "assignment": assignment, "student": student, "digest": digest, "score": score,
                    "max_score": max_score, "graded_at": datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None),
                }])
        except Exception as error:
            raise GradebookError(f"the gradebook {shown_url(self.url)} could not be written "
                                 f"({type(error).__name__}: {_first_line(error)}); nothing of {student}'s "
                                 "grading was kept") from None


@contextlib.contextmanager
def _alembic_on_path() -> Iterator[None]:
    """This environment's ``bin`` first on ``PATH``, even when labkit runs without activating it."""
    before = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), before]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


def _tables() -> dict[str, Any]:
    from nbgrader.api import Base

    return dict(Base.metadata.tables)


def _definition_rows(connection: Any, assignment: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The rows that define ``assignment`` (what ``nbgrader generate_assignment`` stored), parents first."""
    from sqlalchemy import select

    t = _tables()
    assignments = _rows(connection, select(t["assignment"]).where(t["assignment"].c.name == assignment))
    yield "assignment", assignments
    notebooks = _rows(connection, select(t["notebook"]).where(t["notebook"].c.assignment_id.in_(
        [a["id"] for a in assignments])))
    yield "notebook", notebooks
    notebook_ids = [n["id"] for n in notebooks]
    cells = _rows(connection, select(t["base_cell"]).where(t["base_cell"].c.notebook_id.in_(notebook_ids)))
    yield "base_cell", cells
    for name in ("grade_cells", "solution_cells", "task_cells"):
        yield name, _rows(connection, select(t[name]).where(t[name].c.id.in_([c["id"] for c in cells])))
    yield "source_cell", _rows(connection, select(t["source_cell"]).where(t["source_cell"].c.notebook_id.in_(notebook_ids)))


def _student_rows(connection: Any, assignment: str, student: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The student's row and their submission of ``assignment`` (submission, notebooks, grades, comments), parents first."""
    from sqlalchemy import select

    t = _tables()
    yield "student", _rows(connection, select(t["student"]).where(t["student"].c.id == student))
    submissions = _rows(connection, select(t["submitted_assignment"])
                        .join(t["assignment"], t["assignment"].c.id == t["submitted_assignment"].c.assignment_id)
                        .where(t["assignment"].c.name == assignment, t["submitted_assignment"].c.student_id == student))
    yield "submitted_assignment", submissions
    notebooks = _rows(connection, select(t["submitted_notebook"]).where(t["submitted_notebook"].c.assignment_id.in_(
        [s["id"] for s in submissions])))
    yield "submitted_notebook", notebooks
    for name in ("grade", "comment"):
        yield name, _rows(connection, select(t[name]).where(t[name].c.notebook_id.in_([n["id"] for n in notebooks])))


def _rows(connection: Any, query: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in connection.execute(query)]


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:300]


def _url_advice(url: str) -> str:
    scheme = url.split(":", 1)[0]
    if scheme == "postgres":
        return "Write postgresql://USER@HOST:PORT/DATABASE (SQLAlchemy does not accept postgres://)."
    if scheme.startswith("postgresql"):
        return ("Check the URL (postgresql://USER@HOST:PORT/DATABASE), that the server runs and accepts "
                "connections from this machine, and that the database exists (createdb DATABASE); "
                "keep the password in ~/.pgpass rather than in the URL.")
    if scheme.startswith("sqlite"):
        return "Check that the folder of the SQLite file exists and can be written (sqlite:////absolute/path.db)."
    return "Use a SQLAlchemy URL: sqlite:////path/to/gradebook.db or postgresql://USER@HOST:PORT/DATABASE."
