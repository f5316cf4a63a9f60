"""Grading on a machine whose every core is kept busy gives the same full marks (slow and heavy tiers).

No real-time limit decides a verdict, so CPU hogs on every core only make
grading slower. The Paxos reference runs its heaviest run tests and a search
through ``labkit test``; the tour's reference is autograded by real nbgrader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from labkit.course import Course

ROOT = Path(__file__).resolve().parent.parent
LABKIT = Path(sys.executable).parent / "labkit"
PAXOS_REFERENCE = ROOT / "solutions" / "paxos" / "paxos_server.py"
PING_REFERENCE = ROOT / "solutions" / "ping" / "ping_server.py"
HEAVY = ["1.14", "1.20", "2.16", "2.17"]  # long runs and a search


@pytest.fixture
def hogs() -> Iterator[int]:
    """One process spinning on every core this process may use, for the whole test."""
    count = len(os.sched_getaffinity(0))
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield count
    finally:
        for hog in spinning:
            hog.kill()
            hog.wait()


@pytest.mark.heavy
def test_paxos_reference_keeps_full_marks_with_every_core_busy(hogs: int, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run([str(LABKIT), "test", "paxos", "-n", ",".join(HEAVY), "--solution", str(PAXOS_REFERENCE),
                           "--json", str(results)], capture_output=True, text=True, timeout=3000)
    report = json.loads(results.read_text())
    assert report["points_earned"] == report["points_available"] > 0, done.stdout[-3000:]
    assert done.returncode == 0


@pytest.mark.slow
def test_tour_reference_autogrades_to_full_marks_with_every_core_busy(hogs: int, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    for name in ("notebooks", "solutions", "grader_tests"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("release", "submitted", "autograded", "feedback", "gradebook.db",
                                                      "__pycache__", "*.png"))
    course = Course(tmp_path / "notebooks")
    course.release("tour", [tmp_path / "solutions", tmp_path / "grader_tests"])
    folder = course.root / "submitted" / "busy" / "tour"
    shutil.copytree(course.root / "release" / "tour", folder)
    (folder / "ping_server.py").write_text(PING_REFERENCE.read_text())
    (outcome,) = course.autograde("tour", ["busy"])
    assert outcome.ok, outcome.reason
    cells = course.scores("tour")["busy"]
    assert all(score == most > 0 for score, most in cells.values()), cells
