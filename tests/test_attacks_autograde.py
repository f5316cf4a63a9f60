"""The attack suite through real nbgrader: one class of attackers, graded by ``labkit course autograde``.

Every attack of ``attacks.py`` is one student of the tour assignment (module
attacks in the submitted ``ping_server.py``, notebook attacks in the submitted
notebook). An honest student, graded after all of them, is the victim the
attacks go after. Checked: each student's exact score out of the full 55, the
victim's files and score untouched, no secret in any feedback page, nothing
connected to the test's socket, and every student graded.

Grading takes about half a minute per student, so the slow tier (which CI runs)
grades the attacks that only nbgrader can meet (added, edited and deleted cells,
a kernel that dies) and the worst module attacks (patching the grader, reading
secrets, writing the gradebook and another submission); the heavy tier grades
the rest. The class is whatever the selected tests need.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path
from typing import Iterator

import nbformat
import pytest
from attacks import ATTACKS, FULL_MARKS, PING_REFERENCE, Attack
from test_attacks import secret_lines

from labkit.course import Course

ROOT = Path(__file__).resolve().parent.parent
VICTIM = "victim"
IN_CI = {"cell_patches_check_test", "cell_patches_ipython_and_builtins", "cell_prints_secrets",
         "cell_writes_gradebook_and_victim", "cell_kills_the_kernel", "cell_writes_stderr", "locked_cells_edited",
         "graded_cells_deleted", "patch_check_test", "read_and_print_secrets", "write_the_gradebook",
         "overwrite_another_submission"}


def _tier(attack: Attack) -> pytest.MarkDecorator:
    return pytest.mark.slow if attack.name in IN_CI else pytest.mark.heavy


def _selected(session: pytest.Session) -> list[Attack]:
    """The attacks whose exact-score test runs in this session (the CI set if none does)."""
    chosen = {item.callspec.params["attack"].name for item in session.items
              if hasattr(item, "callspec") and "attack" in item.callspec.params
              and item.module.__name__ == __name__}
    return [a for a in ATTACKS if a.name in (chosen or IN_CI)]


@pytest.fixture(scope="module")
def graded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Course, dict, socket.socket]]:
    attackers = _selected(request.session)
    home = tmp_path_factory.mktemp("home")
    where = tmp_path_factory.mktemp("course")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
            (home / name).mkdir()
            patch.setenv(name, str(home / name))
        ignore = shutil.ignore_patterns("release", "submitted", "autograded", "feedback", "gradebook.db",
                                        "__pycache__", ".ipynb_checkpoints", "*.png")
        for name in ("notebooks", "solutions", "grader_tests"):
            shutil.copytree(ROOT / name, where / name, ignore=ignore)
        course = Course(where / "notebooks")
        course.release("tour", [where / "solutions", where / "grader_tests"])
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        places = {"hidden": str(where / "grader_tests" / "paxos_hidden.py"),
                  "solution": str(where / "solutions" / "paxos" / "paxos_server.py"),
                  "gradebook": str(course.root / "gradebook.db"),
                  "victim": str(course.root / "submitted" / VICTIM / "tour" / "ping_server.py"),
                  "course": str(course.root), "port": str(listener.getsockname()[1])}
        for attack in attackers:
            submit(course, attack, places)
        victim = course.root / "submitted" / VICTIM / "tour"
        shutil.copytree(course.root / "release" / "tour", victim)
        (victim / "ping_server.py").write_text(PING_REFERENCE.read_text())
        before = digest(victim)
        students = [a.name for a in attackers] + [VICTIM]
        outcomes = course.autograde("tour", students)
        yield course, {"outcomes": outcomes, "victim_before": before, "places": places, "students": students}, listener


def submit(course: Course, attack: Attack, places: dict[str, str]) -> None:
    folder = course.root / "submitted" / attack.name / "tour"
    shutil.copytree(course.root / "release" / "tour", folder)
    (folder / "ping_server.py").write_text(attack.source(places))
    path = folder / "tour.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    if attack.cells:
        at = next(i for i, c in enumerate(nb.cells) if "import check_test" in c.source) + 1
        nb.cells[at:at] = [nbformat.v4.new_code_cell(code) for code in attack.added_cells(places)]
    graded_cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    assert graded_cells
    if attack.notebook == "edit_locked":
        for cell in graded_cells:
            cell.source = "pass"
            cell.metadata["nbgrader"].update(points=1000, locked=False)
            cell.metadata["editable"] = cell.metadata["deletable"] = True
    elif attack.notebook == "delete_graded":
        nb.cells = [c for c in nb.cells if c not in graded_cells]
    nbformat.write(nb, str(path))


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.heavy
def test_every_student_is_graded(graded) -> None:
    course, facts, _ = graded
    outcomes = facts["outcomes"]
    assert [o.student for o in outcomes] == facts["students"]
    assert [(o.student, o.reason) for o in outcomes if not o.ok] == []


@pytest.mark.parametrize("attack", [pytest.param(a, marks=_tier(a), id=a.name) for a in ATTACKS])
def test_each_attack_gets_its_exact_score(graded, attack: Attack) -> None:
    course, _, _ = graded
    cells = course.scores("tour")[attack.name]
    score, most = sum(s for s, _ in cells.values()), sum(m for _, m in cells.values())
    assert (score, most) == (attack.points, FULL_MARKS), cells


@pytest.mark.slow
@pytest.mark.heavy
def test_the_victim_is_untouched(graded) -> None:
    course, facts, listener = graded
    cells = course.scores("tour")[VICTIM]
    assert sum(s for s, _ in cells.values()) == FULL_MARKS
    assert digest(course.root / "submitted" / VICTIM / "tour") == facts["victim_before"]
    assert (course.root / "gradebook.db").is_file() and (course.root / "source" / "tour" / "tour.ipynb").is_file()
    try:
        listener.accept()
        reached = True
    except BlockingIOError:
        reached = False
    assert not reached, "an attack reached the test's socket"


@pytest.mark.slow
@pytest.mark.heavy
def test_no_feedback_shows_a_secret(graded) -> None:
    course, facts, _ = graded
    attackers = [name for name in facts["students"] if name != VICTIM]
    course.feedback("tour", attackers)
    lines = secret_lines()
    for name in attackers:
        folder = course.root / "feedback" / name / "tour"
        pages = list(folder.rglob("*.html"))
        assert pages, name
        for page in pages:
            text = page.read_text(errors="replace")
            assert len(text) < 3_000_000, f"{name}: feedback of {len(text)} characters"
            for line in lines:
                assert line not in text, f"{name} leaked {line!r} into its feedback"
