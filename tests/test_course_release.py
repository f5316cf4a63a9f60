"""The nbgrader course: source notebooks, the student release, the pictures and the
instructor commands' error messages (fast tier; real nbgrader for the release)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator

from labkit.course import Course, CourseError
from labkit.course.instructor import _framework_names, defined_names, find_leaks
from labkit.labs.paxos import pictures
from labkit.testing import get_lab

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "notebooks"
LABKIT = Path(sys.executable).parent / "labkit"
PAXOS_NOTEBOOKS = ["1_multi_paxos.ipynb", "2_stable_leaders.ipynb", "3_garbage_collection.ipynb", "4_batching.ipynb"]
SOURCE_NOTEBOOKS = [COURSE / "source" / "paxos" / n for n in PAXOS_NOTEBOOKS] + [COURSE / "source" / "tour" / "tour.ipynb"]


def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Jupyter, IPython and matplotlib state in temporary folders."""
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        folder = tmp_path / "home" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(folder))


def copy_course(tmp_path: Path) -> Path:
    """The course folder, the solutions and the hidden tests copied under ``tmp_path``; returns the course root."""
    ignore = shutil.ignore_patterns("release", "submitted", "autograded", "feedback", "gradebook.db", "__pycache__",
                                    ".ipynb_checkpoints", "*.png")
    for name in ("notebooks", "solutions", "grader_tests"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=ignore)
    return tmp_path / "notebooks"


def load_make_notebooks():
    spec = importlib.util.spec_from_file_location("make_notebooks", COURSE / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grade_cells(nb) -> dict[str, float]:
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


# ---- source notebooks -----------------------------------------------------------------


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_source_notebook_is_valid_and_clean(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    MetadataValidator().validate_nb(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells]
    assert len(ids) == len(set(ids))
    assert [c.id for c in nb.cells] == ids, "cell ids are the grade ids, so regenerating gives the same file"
    for cell in nb.cells:
        assert cell.metadata["nbgrader"]["locked"], f"{cell.id} is not read-only"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{cell.id} has stored outputs"
        if cell.metadata["nbgrader"]["grade"]:
            assert cell.cell_type == "code"


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_but_the_tests_runs_in_a_real_kernel(path: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """What a student runs before writing any code works: the toys, the pictures, the search demo,
    the stepper. (Test cells are left to the judge here, as while grading, so they only say so.)"""
    from nbclient import NotebookClient

    hermetic(monkeypatch, tmp_path)
    monkeypatch.setenv("LABKIT_GRADING", "1")
    folder = tmp_path / "assignment"
    shutil.copytree(path.parent, folder, ignore=shutil.ignore_patterns("*.png", "__pycache__"))
    lab = "ping" if path.parent.name == "tour" else "paxos"
    reference = ROOT / "solutions" / lab / f"{lab}_server.py"
    shutil.copyfile(reference, folder / reference.name)
    nb = nbformat.read(str(folder / path.name), as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    for cell in nb.cells:
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if cell.metadata["nbgrader"]["grade"]:
            assert all("graded by labkit's judge" in o.evalue for o in errors), cell.id
        else:
            assert not errors, f"{path.name}, cell {cell.id}: {errors[0].ename}: {errors[0].evalue}"


def test_notebooks_are_up_to_date_with_the_tests() -> None:
    """Regenerating gives the files on disk: every public and hidden test has its cell, with its points."""
    built = load_make_notebooks().build_all()
    for path, nb in built.items():
        on_disk = nbformat.read(str(path), as_version=4)
        assert [(c.id, c.source, c.metadata) for c in on_disk.cells] == [(c.id, c.source, c.metadata) for c in nb.cells], (
            f"{path.name} is out of date: run python notebooks/make_notebooks.py")


def test_every_test_has_a_grade_cell_with_its_points() -> None:
    sys.path.insert(0, str(ROOT / "grader_tests"))
    try:
        import paxos_hidden  # noqa: F401
    finally:
        sys.path.remove(str(ROOT / "grader_tests"))
    lab = get_lab("paxos")
    for part, name in enumerate(PAXOS_NOTEBOOKS, 1):
        nb = nbformat.read(str(COURSE / "source" / "paxos" / name), as_version=4)
        expected = {f"test-{t.part}-{t.number}": t.points for t in lab.select(parts=[part], include_hidden=True)}
        assert grade_cells(nb) == expected
        hidden = [c for c in nb.cells if "BEGIN HIDDEN TESTS" in c.source]
        assert len(hidden) == sum(1 for t in lab.select(parts=[part], include_hidden=True) if t.hidden) > 0
        for cell in hidden:
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert visible.strip().startswith("# Hidden test"), "students see a comment, not an empty cell"
    tour = nbformat.read(str(COURSE / "source" / "tour" / "tour.ipynb"), as_version=4)
    assert grade_cells(tour) == {f"test-1-{t.number}": t.points for t in get_lab("ping").tests}


def test_picture_cells_read_files_that_exist() -> None:
    folder = COURSE / "source" / "paxos"
    for name in PAXOS_NOTEBOOKS:
        nb = nbformat.read(str(folder / name), as_version=4)
        for cell in nb.cells:
            for quoted in cell.source.split('"')[1::2]:
                if quoted.startswith("pictures/"):
                    assert (folder / quoted).is_file(), f"{name} shows {quoted}, which is not in the course"
            if "plot_log_sizes(" in cell.source:
                scenario = cell.source.split('plot_log_sizes("')[1].split('"')[0]
                assert (folder / "pictures" / f"{scenario}.sizes.csv").is_file()


def test_committed_run_logs_are_small() -> None:
    total = sum(p.stat().st_size for p in (COURSE / "source" / "paxos" / "pictures").glob("*") if p.suffix != ".png")
    assert total < 800_000


# ---- pictures -----------------------------------------------------------------------------------


def test_every_variant_applies_to_the_reference_and_changes_it() -> None:
    reference = (ROOT / "solutions" / "paxos" / "paxos_server.py").read_text()
    for name in pictures.VARIANTS:
        changed = pictures.variant_source(reference, name)
        assert changed != reference
        compile(changed, name, "exec")


def test_a_variant_that_no_longer_fits_says_what_to_update() -> None:
    with pytest.raises(Exception, match="update VARIANTS"):
        pictures.variant_source("class PaxosServer:\n    pass\n", "no_garbage_collection")


def test_render_writes_readable_run_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.viz.timeline import plot_timeline

    hermetic(monkeypatch, tmp_path)
    written = pictures.render(ROOT / "solutions" / "paxos" / "paxos_server.py", tmp_path / "pictures")
    names = {p.name for p in written}
    for scenario in pictures.SCENARIOS:
        assert {f"{scenario.name}.jsonl", f"{scenario.name}.png"} <= names
    header = json.loads((tmp_path / "pictures" / "lost_p2a_stuck.jsonl").read_text().splitlines()[0])
    assert header["variant"] == "forgets_lost_p2a"
    plot_timeline(tmp_path / "pictures" / "normal_case.jsonl")  # readable without the solution's classes
    kept = pictures.load_log_sizes(tmp_path / "pictures" / "gc_reference.sizes.csv")
    never_cleared = pictures.load_log_sizes(tmp_path / "pictures" / "gc_missing.sizes.csv")
    assert kept.groupby("node")["size"].last().max() < never_cleared.groupby("node")["size"].last().min()
    # the same render twice gives the same run logs
    again = pictures.render(ROOT / "solutions" / "paxos" / "paxos_server.py", tmp_path / "again")
    for path in written:
        if path.suffix != ".png":
            assert path.read_bytes() == (tmp_path / "again" / path.name).read_bytes()


# ---- the release ----------------------------------------------------------------------------------


def only_in(forbidden: list[Path], allowed: list[Path]) -> set[str]:
    names = defined_names(forbidden) - defined_names(allowed) - _framework_names()
    return {n for n in names if not n.startswith("_") and len(n) > 2}


def test_release_contains_no_solution_or_hidden_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic(monkeypatch, tmp_path)
    root = copy_course(tmp_path)
    course = Course(root)
    forbidden = [tmp_path / "solutions", tmp_path / "grader_tests"]
    for assignment, stub in (("paxos", "paxos_server.py"), ("tour", "ping_server.py")):
        release = course.release(assignment, forbidden)
        assert (release / stub).read_text() == (root / "source" / assignment / stub).read_text(), "the stub ships as is"
        # The stub is checked above (identical to the blank stub); every notebook is searched as text.
        texts = {p: p.read_text(errors="replace") for p in release.rglob("*.ipynb")}
        assert texts
        secret = only_in(forbidden, [root / "source" / assignment / stub])
        assert "chaos_then_heal" in secret and ("PaxosServer" in secret) == (assignment == "tour")  # what is searched
        for path, text in texts.items():
            for name in secret:
                for form in (f"def {name}(", f"class {name}(", f"class {name}:"):
                    assert form not in text, f"{path.name} defines {name}"
            for word in ("paxos_hidden", "chaos_then_heal", "BEGIN HIDDEN", "BEGIN SOLUTION", "grader_tests", "solutions/"):
                assert word not in text, f"{path.name} contains {word}"
        assert find_leaks(release, forbidden, [root / "source" / assignment / stub]) == []
    released = nbformat.read(str(root / "release" / "paxos" / "1_multi_paxos.ipynb"), as_version=4)
    hidden_cells = [c for c in released.cells if c.id.startswith("test-1-1") and len(c.id) == len("test-1-101")]
    assert hidden_cells and all(c.source.startswith("# Hidden test") for c in hidden_cells)
    assert all(c.metadata["editable"] is False for c in released.cells if c.cell_type == "code")


def test_release_leak_check_catches_a_copied_solution(tmp_path: Path) -> None:
    forbidden = [ROOT / "solutions", ROOT / "grader_tests"]
    stub = COURSE / "source" / "tour" / "ping_server.py"
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(stub, release / "ping_server.py")
    assert find_leaks(release, forbidden, [stub]) == []
    shutil.copy(ROOT / "solutions" / "ping" / "ping_server.py", release / "helper.py")
    assert find_leaks(release, forbidden, [stub]) == [f"helper.py is a copy of {ROOT / 'solutions' / 'ping' / 'ping_server.py'}"]
    (release / "helper.py").write_text("class HeartbeatReply:\n    pass\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%matplotlib inline\nfrom paxos_hidden import x")])
    nbformat.write(nb, str(release / "tour.ipynb"))
    assert find_leaks(release, forbidden, [stub]) == [
        "helper.py defines HeartbeatReply, which only the solution or the hidden tests define",
        "tour.ipynb names the hidden-test module paxos_hidden",
    ]


# ---- commands run from the wrong place ------------------------------------------------------------


def test_missing_course_root_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(CourseError, match="nbgrader_config.py.*--course"):
        Course(tmp_path)


def run_labkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LABKIT), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ""})


def test_commands_from_the_wrong_folder_say_how_to_fix(tmp_path: Path) -> None:
    for step in (["release"], ["autograde"], ["feedback"], ["export"], ["check-reference"]):
        result = run_labkit("course", *step, cwd=tmp_path)
        assert result.returncode != 0
        said = result.stdout + result.stderr
        assert "no nbgrader course found" in said and "--course DIR" in said, said
        assert "Traceback" not in said
    assert not (tmp_path / "gradebook.db").exists(), "no stray gradebook in the wrong folder"


def test_commands_find_the_course_from_the_repository_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic(monkeypatch, tmp_path)
    copy_course(tmp_path)
    result = run_labkit("course", "autograde", "--assignment", "tour", cwd=tmp_path)
    assert result.returncode != 0
    assert "no submissions of tour" in result.stdout + result.stderr
    inside = run_labkit("course", "release", "--assignment", "nothing", cwd=tmp_path / "notebooks")
    assert "there is no assignment 'nothing'" in inside.stdout + inside.stderr


def test_autograde_bad_input_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic(monkeypatch, tmp_path)
    copy_course(tmp_path)
    (tmp_path / "notebooks" / "submitted" / "ann" / "tour").mkdir(parents=True)
    tour = ("course", "autograde", "--assignment", "tour")
    said = {
        "a student who submitted nothing": run_labkit(*tour, "--student", "bob", cwd=tmp_path),
        "a wrong database URL": run_labkit(*tour, "--db", "postgres://ta:secret@127.0.0.1/course", cwd=tmp_path),
        "--workers 0": run_labkit(*tour, "--workers", "0", cwd=tmp_path),
    }
    wanted = {
        "a student who submitted nothing": "bob submitted no tour",
        "a wrong database URL": "SQLAlchemy does not accept postgres://",
        "--workers 0": "argument --workers: must be at least 1, got 0",
    }
    for case, result in said.items():
        text = result.stdout + result.stderr
        assert result.returncode == 2 and wanted[case] in text and "Traceback" not in text, (case, text)
    assert "secret" not in said["a wrong database URL"].stderr
