"""The released notebook in a real browser (slow tier): JupyterLab serves the student
release; chromium shows it with the nbgrader toolbar, runs it, and a timeline image drawn
by labkit appears; a screenshot is saved."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import browser_page, hermetic_env, jupyter_lab, run_all_cells

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_released_notebook_renders_with_nbgrader_toolbar_and_timeline(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "notebooks", course, ignore=shutil.ignore_patterns(
        "release", "submitted", "autograded", "feedback", "gradebook.db", "__pycache__", ".ipynb_checkpoints"))
    home = tmp_path / "home"
    home.mkdir()
    released = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "paxos", "--force"],
        cwd=course, env=hermetic_env(home), capture_output=True, text=True, timeout=300,
    )
    assert released.returncode == 0, released.stdout + released.stderr
    student = tmp_path / "student"
    shutil.copytree(course / "release" / "paxos", student)
    with jupyter_lab(student, home) as url, browser_page() as page:
        page.goto(url.format(path="1_multi_paxos.ipynb"))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_selector("text=Validate", timeout=60_000)  # nbgrader's toolbar button
        page.wait_for_selector("text=Nbgrader", timeout=60_000)  # and its menu
        page.wait_for_timeout(2_000)
        run_all_cells(page)
        page.wait_for_selector(".jp-OutputArea-output img", timeout=120_000)
        timeline = page.locator(".jp-OutputArea-output img").first
        timeline.scroll_into_view_if_needed()
        page.wait_for_timeout(1_000)
        visible = timeline.is_visible() and page.locator("text=Validate").first.is_visible()
        width = timeline.evaluate("img => img.naturalWidth")
        shot = tmp_path / "released-notebook.png"
        page.screenshot(path=str(shot))
    assert visible, "the timeline or the nbgrader toolbar is not visible"
    assert width > 500, "the timeline image did not load"
    assert shot.stat().st_size > 10_000
