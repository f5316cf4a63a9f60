"""Instructor commands that wrap nbgrader with the right folder, environment and limits.

* ``release``: ``nbgrader generate_assignment``, then a check that the release
  holds no solution or hidden-test code.
* ``autograde``: every graded cell's test (hidden tests included) is judged
  on the submitted module, as a task on a Dask cluster; nbgrader runs the
  notebooks here in a boxed kernel (:mod:`labkit.worker.kernel`) for its
  bookkeeping and the feedback notebook, and the judge's scores and results
  are written over whatever the kernel did (:mod:`labkit.course.coordinator`).
  One student's trouble never stops the rest.
* ``feedback`` and ``export``: nbgrader's, run from the course folder.
* ``check_reference``: autogrades a submission made from the reference
  solution and fails unless it scores full marks.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

from labkit.course.coordinator import GradingOutcome
from labkit.course.gradebook import database_url, default_url
from labkit.node import LabkitError

__all__ = [
    "CourseError",
    "Course",
    "GradingOutcome",
]

REFERENCE_STUDENT = "labkit-reference"


class CourseError(LabkitError):
    """The course folder or a grading step is not usable; the message says how to fix it."""


def _nbgrader() -> list[str]:
    return [sys.executable, "-m", "nbgrader"]


class Course:
    """An nbgrader course folder (the one holding ``nbgrader_config.py``), with its gradebook at ``db``
    (a SQLAlchemy URL; default: ``CourseDirectory.db_url`` of the course's config, else
    ``gradebook.db`` in the course folder)."""

    def __init__(self, root: str | Path | None = None, db: str | None = None) -> None:
        self.root = self.find(root)
        configured = db or str(_config(self.root).CourseDirectory.get("db_url") or "")
        self.db_url = database_url(configured) if configured else default_url(self.root)
        self.course_id = _course_id(self.root)

    @staticmethod
    def find(root: str | Path | None) -> Path:
        """The course folder: ``root`` if given, else this folder or ``./notebooks``."""
        candidates = [Path(root)] if root is not None else [Path.cwd(), Path.cwd() / "notebooks"]
        for candidate in candidates:
            if (candidate / "nbgrader_config.py").is_file():
                return candidate.resolve()
        where = ", ".join(str(c) for c in candidates)
        raise CourseError(
            f"no nbgrader course found in {where}: run this from the course folder (the one with "
            "nbgrader_config.py) or pass --course DIR"
        )

    # ---- running nbgrader -----------------------------------------------------

    def run(self, args: Sequence[str], *, env: dict[str, str] | None = None, deadline: float | None = None,
            quiet: bool = False, db_url: str | None = None,
            stop: threading.Event | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``nbgrader ARGS`` in the course folder, on the gradebook ``db_url`` (default: the course's).
        Past ``deadline`` seconds, or once ``stop`` is set, it gets SIGINT (nbgrader cancels and
        cleans up), then SIGKILL 30 s later."""
        environment = {**os.environ, **(env or {})}
        # nbgrader runs the `alembic` script of its own environment by name: put that
        # environment's bin folder first, even when labkit was started without activating it.
        environment["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), environment.get("PATH")]))
        process = subprocess.Popen(
            _nbgrader() + list(args) + [f"--CourseDirectory.db_url={db_url or self.db_url}"], cwd=self.root,
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        ends = None if deadline is None else time.monotonic() + deadline
        while True:
            try:
                output, _ = process.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:  # no output is lost: communicate() goes on where it stopped
                if (ends is None or time.monotonic() < ends) and not (stop is not None and stop.is_set()):
                    continue
            process.send_signal(signal.SIGINT)
            try:
                output, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            why = "grading was interrupted" if stop is not None and stop.is_set() else f"the {deadline:g} s deadline"
            output += f"\nlabkit: stopped after {why}"
            return subprocess.CompletedProcess(process.args, 124, output, "")
        if not quiet and process.returncode != 0:
            sys.stdout.write(output)
        return subprocess.CompletedProcess(process.args, process.returncode, output, "")

    # ---- release ------------------------------------------------------------------

    def locate(self, path: str | Path) -> Path:
        """``path`` as given if it exists from here, else relative to the folder above the
        course (where ``solutions/`` and ``grader_tests/`` live), so commands work from
        the repository root and from inside the course folder alike."""
        given = Path(path)
        if given.exists() or given.is_absolute():
            return given
        beside = self.root.parent / given
        return beside if beside.exists() else given

    def render_pictures(self, assignment: str, reference: Path) -> list[Path]:
        """Draw the assignment's pictures from ``reference`` into ``source/<assignment>/pictures``,
        with the lab's ``labkit.labs.<assignment>.pictures.render``."""
        import importlib

        try:
            pictures = importlib.import_module(f"labkit.labs.{assignment}.pictures")
        except ModuleNotFoundError:
            raise CourseError(f"the lab {assignment!r} draws no pictures (there is no "
                              f"labkit.labs.{assignment}.pictures); leave out --reference") from None
        if not reference.is_file():
            raise CourseError(f"there is no reference solution {reference}")
        return list(pictures.render(reference, self.root / "source" / assignment / "pictures"))

    def release(self, assignment: str, forbidden_sources: Sequence[Path] = (), reference: Path | None = None) -> Path:
        """Generate the student release and check it leaks nothing from ``forbidden_sources``
        (the solutions and hidden-test folders). With ``reference``, first draw the
        assignment's pictures from that reference solution."""
        if not (self.root / "source" / assignment).is_dir():
            raise CourseError(f"there is no assignment {assignment!r} in {self.root / 'source'}")
        missing = [str(p) for p in forbidden_sources if not p.exists()]
        if missing:
            raise CourseError(f"cannot check the release for leaks: {', '.join(missing)} not found "
                              "(give the solutions and hidden-test folders with --forbid)")
        if reference is not None:
            self.render_pictures(assignment, reference)
        result = self.run(["generate_assignment", assignment, "--force"], quiet=True)
        if result.returncode != 0:
            raise CourseError(f"nbgrader generate_assignment {assignment} failed:\n{result.stdout[-3000:]}")
        release = self.root / "release" / assignment
        leaks = find_leaks(release, forbidden_sources, self.student_modules(assignment))
        if leaks:
            raise CourseError("the release contains code it must not:\n" + "\n".join(leaks))
        return release

    def student_modules(self, assignment: str) -> list[Path]:
        """The stubs students fill in: the assignment's files that autograding keeps
        (``Autograde.exclude_overwriting``). Their definitions may appear in the release;
        any other file is an instructor helper and is checked like the notebooks."""
        kept = _config(self.root).Autograde.exclude_overwriting
        names = kept.get(assignment, []) if isinstance(kept, dict) else []
        return [self.root / "source" / assignment / name for name in names
                if (self.root / "source" / assignment / name).is_file()]

    # ---- grading --------------------------------------------------------------------

    def students(self, assignment: str) -> list[str]:
        submitted = self.root / "submitted"
        if not submitted.is_dir():
            return []
        return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())

    def autograde(self, assignment: str, students: Sequence[str] | None = None, *, hidden_tests: Path | None = None,
                  deadline: float = 1800.0, workers: int | None = None, scheduler: str | None = None,
                  regrade: bool = False, out: TextIO | None = None) -> list[GradingOutcome]:
        """Grade each student's submission on Dask (see :mod:`labkit.course.coordinator`); one student's
        trouble never stops the rest. ``workers`` processes on this machine (default: one per usable
        CPU), or the existing cluster whose scheduler is at ``scheduler``. Submissions already graded
        (same files, same tests) are skipped unless ``regrade``.

        ``deadline`` bounds (in real time) nbgrader's run of one student's notebooks,
        which decides no score: past it the student is "not graded" and can be re-run."""
        from labkit.course.coordinator import autograde

        submitted = self.students(assignment)
        chosen = list(dict.fromkeys(students)) if students else submitted
        if not chosen:
            raise CourseError(f"no submissions of {assignment} in {self.root / 'submitted'}")
        unknown = [s for s in chosen if s not in submitted]
        if unknown:
            raise CourseError(f"{', '.join(unknown)} submitted no {assignment} (there is no "
                              f"{self.root / 'submitted' / unknown[0] / assignment}); check the name given with "
                              "--student")
        return autograde(self, assignment, chosen, hidden_tests=hidden_tests, deadline=deadline, workers=workers,
                         scheduler=scheduler, regrade=regrade, out=out)

    def module_of(self, cells: Sequence[Any]) -> str:
        """The file students submit for the labs these cells test (one lab per assignment)."""
        from labkit.testing.runner import get_lab

        labs = sorted({c.lab for c in cells})
        if len(labs) != 1:
            raise CourseError(f"the assignment's graded cells test {len(labs)} labs ({', '.join(labs)}); one is needed")
        return f"{get_lab(labs[0]).solution_module}.py"

    def load_hidden(self, cells: Sequence[Any], hidden_tests: Path | None) -> set[tuple[str, str]]:
        """Register the hidden tests of the labs graded here; the (lab, number) of every hidden test."""
        from labkit.testing.check_solution import load_hidden
        from labkit.testing.runner import get_lab

        for lab in sorted({c.lab for c in cells}):
            if hidden_tests is not None and (hidden_tests / f"{lab}_hidden.py").is_file():
                load_hidden(hidden_tests / f"{lab}_hidden.py")
        numbers = set()
        for cell in cells:
            lab = get_lab(cell.lab)
            spec = next((s for s in lab.tests if s.qualified_number == cell.number), None)
            if spec is None:
                raise CourseError(f"lab {cell.lab} has no test {cell.number}: give the hidden tests' folder "
                                  "with --hidden-tests")
            if spec.hidden:
                numbers.add((cell.lab, cell.number))
        return numbers

    def run_notebooks(self, assignment: str, student: str, db_url: str, deadline: float,
                      stop: threading.Event | None = None) -> str | None:
        """Run nbgrader's autograde of the student's notebooks (boxed kernel) on the gradebook ``db_url``,
        for its bookkeeping and the notebooks the feedback is made from. Returns why the student
        cannot be graded, or None."""
        from labkit.worker.box import choose_box_uid, kill_box
        from labkit.worker.kernel import KERNEL_NAME, UID_VARIABLE, kernelspec

        uid = choose_box_uid()
        with tempfile.TemporaryDirectory(prefix="labkit-kernels-") as kernels:
            env = {"JUPYTER_PATH": str(kernelspec(Path(kernels))), "PYTHONPATH": ""}
            if uid is not None:
                env[UID_VARIABLE] = str(uid)
            args = ["autograde", assignment, "--student", student, "--force", f"--Execute.kernel_name={KERNEL_NAME}"]
            try:
                result = self.run(args, env=env, deadline=deadline, quiet=True, db_url=db_url, stop=stop)
            finally:
                kill_box(uid)
        if result.returncode == 124:
            if stop is not None and stop.is_set():
                return "grading was interrupted"
            return "nbgrader did not finish running the notebooks in time"
        autograded = self.root / "autograded" / student / assignment
        if not autograded.is_dir():
            self._notebooks_without_kernel(assignment, student, autograded)
        return None

    def _notebooks_without_kernel(self, assignment: str, student: str, target: Path) -> None:
        """When nbgrader could not run a student's notebooks (their own cells stopped the kernel), the
        feedback is made from the released notebooks, with the student's files beside them."""
        import nbformat

        release = self.root / "release" / assignment
        source = release if release.is_dir() else self.root / "source" / assignment
        submitted = self.root / "submitted" / student / assignment
        target.mkdir(parents=True, exist_ok=True)
        for path in source.glob("*.ipynb"):
            nb = nbformat.read(str(path), as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(
                "**Your notebook could not be run while grading** (a cell of yours stopped the kernel), so this "
                "feedback shows the released notebook. Your module was graded as usual."))
            nbformat.write(nb, str(target / path.name))
        for path in submitted.glob("*.py"):
            shutil.copyfile(path, target / path.name)

    def feedback(self, assignment: str, students: Sequence[str] | None = None) -> None:
        """Write feedback pages for ``students`` (every graded student if None); nbgrader takes
        one student per run, so each named student is a run of its own. A student's feedback
        folder holds only the pages (nbgrader would also copy every other file of the graded
        submission: the student's own module, the assignment's data files)."""
        from labkit.course.grading import graded_cells, polish_feedback

        for student in students or [None]:
            args = ["generate_feedback", assignment, "--force"] + (["--student", student] if student else [])
            result = self.run(args, quiet=True)
            if result.returncode != 0:
                who = f" for {student}" if student else ""
                raise CourseError(f"nbgrader generate_feedback failed{who}:\n{result.stdout[-3000:]}")
        cells = graded_cells(self.root / "source" / assignment)
        made = self.root / "feedback"
        for folder in students or ([p.name for p in made.iterdir() if p.is_dir()] if made.is_dir() else []):
            pages = self.root / "feedback" / folder / assignment
            for page in pages.glob("*.html"):
                mine = [c for c in cells if c.notebook == page.stem]
                page.write_text(polish_feedback(page.read_text(encoding="utf-8"), mine), encoding="utf-8")
            for other in sorted(pages.rglob("*"), reverse=True) if pages.is_dir() else []:
                if other.is_dir() and not other.is_symlink():
                    if not any(other.iterdir()):
                        other.rmdir()
                elif other.parent != pages or other.suffix != ".html":
                    other.unlink()

    def export(self, to: Path | None = None) -> Path:
        """Write every student's total per assignment to a CSV file (default ``grades.csv`` in the
        course folder), with a ``status`` column: ``graded`` (a finished grading), ``not graded`` (submitted,
        but no grading of it finished: re-run autograde; its score columns are empty, never 0) or
        ``missing`` (nothing submitted: the 0 is not a grade)."""
        import csv

        from labkit.course.gradebook import Gradebook

        to = (to or self.root / "grades.csv").resolve()
        result = self.run(["export", f"--to={to}"], quiet=True)
        if result.returncode != 0:
            raise CourseError(f"nbgrader export failed:\n{result.stdout[-3000:]}")
        with to.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        with Gradebook(self.db_url, self.course_id) as gradebook:
            assignments = gradebook.assignments()
            finished = {assignment: gradebook.finished(assignment) for assignment in assignments}
        fields = list(rows[0]) if rows else ["assignment", "student_id", "raw_score", "score", "max_score"]
        listed = {(row["assignment"], row["student_id"]) for row in rows}
        for assignment in assignments:  # submitted but never graded: nbgrader does not know them yet
            rows.extend({"assignment": assignment, "student_id": student} for student in self.students(assignment)
                        if (assignment, student) not in listed)
        for row in rows:
            assignment, student = row["assignment"], row["student_id"]
            if student in finished.get(assignment, {}):
                row["status"] = "graded"
            elif (self.root / "submitted" / student / assignment).is_dir():
                row["status"] = "not graded"
                row.update({name: "" for name in ("raw_score", "late_submission_penalty", "score") if name in fields})
            else:
                row["status"] = "missing"
        with to.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=[*fields, "status"], restval="")
            writer.writeheader()
            writer.writerows(rows)
        return to

    def scores(self, assignment: str) -> dict[str, dict[str, tuple[float, float]]]:
        """Per student, per graded cell: ``(score, max_score)`` from the gradebook."""
        from nbgrader.api import Gradebook, MissingEntry

        scores: dict[str, dict[str, tuple[float, float]]] = {}
        with Gradebook(self.db_url, course_id=self.course_id) as gradebook:
            try:
                submissions = gradebook.assignment_submissions(assignment)
            except MissingEntry:
                return scores
            for submission in submissions:
                cells = {}
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        cells[f"{notebook.name}:{grade.name}"] = (float(grade.score), float(grade.max_score))
                scores[submission.student.id] = cells
        return scores

    # ---- the reference check ------------------------------------------------------------

    def check_reference(self, assignment: str, reference: Path, module_name: str, *,
                        hidden_tests: Path | None = None, deadline: float = 1800.0, workers: int | None = None,
                        scheduler: str | None = None) -> tuple[float, float]:
        """Autograde the source notebooks with the reference module (on Dask, as :meth:`autograde`);
        return (score, max)."""
        if not reference.is_file():
            raise CourseError(f"there is no reference solution {reference}")
        folder = self.root / "submitted" / REFERENCE_STUDENT / assignment
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(self.root / "source" / assignment, folder,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        shutil.copy(reference, folder / module_name)
        self.run(["db", "student", "add", REFERENCE_STUDENT, "--last-name=Reference", "--first-name=Labkit"], quiet=True)
        try:
            outcome = self.autograde(assignment, [REFERENCE_STUDENT], hidden_tests=hidden_tests, deadline=deadline,
                                     workers=workers, scheduler=scheduler, regrade=True)[0]
            if not outcome.ok:
                raise CourseError(f"autograding the reference solution failed: {outcome.reason}")
            cells = self.scores(assignment).get(REFERENCE_STUDENT, {})
            score = sum(s for s, _ in cells.values())
            total = sum(m for _, m in cells.values())
            lost = [f"{name}: {s:g}/{m:g}" for name, (s, m) in sorted(cells.items()) if s < m]
            if lost:
                raise CourseError("the reference solution lost points:\n  " + "\n  ".join(lost))
            return score, total
        finally:
            self.run(["db", "student", "remove", REFERENCE_STUDENT, "--force"], quiet=True)
            for generated in ("submitted", "autograded", "feedback"):
                shutil.rmtree(self.root / generated / REFERENCE_STUDENT, ignore_errors=True)


def _config(root: Path):  # type: ignore[no-untyped-def]
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def _course_id(root: Path) -> str:
    return str(_config(root).CourseDirectory.course_id or "default_course")


def defined_names(paths: Sequence[Path]) -> set[str]:
    """Names of functions, methods and classes defined in the Python files under ``paths``."""
    names: set[str] = set()
    for path in paths:
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            tree = ast.parse(file.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
    return names


def _framework_names() -> set[str]:
    """Names the installed framework defines (``Node.init``, ...): a release may use them."""
    import labkit

    return defined_names([Path(labkit.__file__).parent])


def _code_of(file: Path) -> list[str]:
    """The Python code in a release file: the file itself, or a notebook's code cells."""
    text = file.read_text(encoding="utf-8", errors="replace")
    if file.suffix != ".ipynb":
        return [text]
    import nbformat

    cells = nbformat.reads(text, as_version=4).cells
    # IPython magics and shell escapes are not Python: blank them out before parsing.
    return ["\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
            for cell in cells if cell.cell_type == "code"]


def _definitions(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:  # not valid Python: look for definitions line by line
        return {m.group(2) for m in re.finditer(r"^\s*(def|class)\s+(\w+)", code, flags=re.MULTILINE)}
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def find_leaks(release: Path, forbidden_sources: Sequence[Path], allowed_sources: Sequence[Path] = ()) -> list[str]:
    """What the release must not contain: a definition of any function or class
    defined in ``forbidden_sources`` (solutions, hidden tests) but not in
    ``allowed_sources`` (the blank stub) nor in the framework, a verbatim copy of
    a forbidden file, the name of a hidden-test module, or a leftover nbgrader
    solution / hidden-test marker.
    Definitions are found in the code (docstrings and prose do not count)."""
    forbidden = defined_names(forbidden_sources) - defined_names(allowed_sources) - _framework_names()
    forbidden = {n for n in forbidden if not n.startswith("_") and len(n) > 2}
    public_modules = {p.stem for p in allowed_sources}
    modules = {p.stem for source in forbidden_sources if source.is_dir() for p in source.rglob("*.py")
               if p.stem != "__init__" and p.stem not in public_modules}
    copies = {}  # a verbatim copy defines nothing new next to the stub (a ping solution, say)
    for source in forbidden_sources:
        for file in ([source] if source.is_file() else sorted(source.rglob("*.py"))):
            copies[file.read_text(encoding="utf-8", errors="replace").strip()] = file
    leaks = []
    for file in sorted(p for p in release.rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb")):
        text = file.read_text(encoding="utf-8", errors="replace")
        where = file.relative_to(release)
        if text.strip() in copies:
            leaks.append(f"{where} is a copy of {copies[text.strip()]}")
        defined = set().union(*(_definitions(code) for code in _code_of(file)))
        for name in sorted(forbidden & defined):
            leaks.append(f"{where} defines {name}, which only the solution or the hidden tests define")
        for module in sorted(modules):
            if re.search(rf"\b{re.escape(module)}\b", text):
                leaks.append(f"{where} names the hidden-test module {module}")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            if marker in text:
                leaks.append(f"{where} still contains '{marker}'")
    return leaks
