"""A student's view of a failing Paxos notebook, in a real browser (slow tier).

JupyterLab serves the released part-1 notebook beside a buggy module (a quorum one
server short of a majority); chromium runs every cell. Run All must go through every
test, the closing summary must list each test's verdict and the total, a failing run
test's picture must show the part of the run where its wrong result happened, and a
search must show its live progress line while it runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import browser_page, hermetic_env, jupyter_lab, run_all_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "1_multi_paxos.ipynb"

# Records every text a progress line showed, however briefly (a search may take a second).
WATCH_PROGRESS = """() => {
  window.labkitProgress = [];
  new MutationObserver(() => {
    for (const node of document.querySelectorAll('.jp-OutputArea-output')) {
      const text = (node.innerText || '').replace(/[\u2007\u00a0]/g, ' ');  // tqdm pads with figure spaces
      if (text.includes(' explored, depth ')) window.labkitProgress.push(text.trim());
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""

CELL_OUTPUTS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(cell => ({
  text: Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(o => o.innerText).join('\\n'),
  images: Array.from(cell.querySelectorAll('.jp-OutputArea-output img')).filter(i => i.naturalWidth > 300).length,
}))"""


def buggy_module(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    try:
        from grader_tests.mutants.catalogue import MUTANTS
    finally:
        sys.path.remove(str(ROOT))
    mutant = next(m for m in MUTANTS if m.name == "minority_quorum")
    path = folder / "paxos_server.py"
    path.write_text(mutant.apply((ROOT / "solutions" / "paxos" / "paxos_server.py").read_text()))
    return path


@pytest.mark.slow
def test_run_all_on_a_buggy_solution_shows_every_verdict_the_cause_and_progress(tmp_path: Path) -> None:
    course = tmp_path / "course"
    shutil.copytree(ROOT / "notebooks", course, ignore=shutil.ignore_patterns(
        "release", "submitted", "autograded", "feedback", "gradebook.db", "__pycache__", ".ipynb_checkpoints"))
    home = tmp_path / "home"
    home.mkdir()
    released = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "paxos", "--force"],
                              cwd=course, env=hermetic_env(home), capture_output=True, text=True, timeout=300)
    assert released.returncode == 0, released.stdout + released.stderr
    student = tmp_path / "student"
    shutil.copytree(course / "release" / "paxos", student)
    buggy_module(student)

    with jupyter_lab(student, home) as url, browser_page(width=1366, height=900) as page:
        page.goto(url.format(path=NOTEBOOK))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_timeout(3_000)  # the kernel comes up
        page.evaluate(WATCH_PROGRESS)
        run_all_cells(page)
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
            ".some(o => (o.innerText || '').includes('Total:'))", timeout=900_000)
        cells = page.evaluate(CELL_OUTPUTS)
        progress = page.evaluate("() => window.labkitProgress")
        page.screenshot(path=str(tmp_path / "notebook.png"))

    # Run All went through every test cell: each has its verdict line.
    verdicts = {}  # a search's progress line may stand between its TEST line and its verdict
    for cell in cells:
        found = re.search(r"TEST (\d+\.\d+): .*? \.\.\..*?\b(PASS|FAIL) \(", cell["text"], re.DOTALL)
        if found:
            verdicts[found.group(1)] = found.group(2)
    assert {"1.1", "1.5", "1.20", "1.26"} <= set(verdicts), verdicts
    assert verdicts["1.5"] == "FAIL" and verdicts["1.1"] == "PASS"

    # The summary lists each test with its verdict and points, and the total of what ran.
    summary = next(c["text"] for c in cells if "Total:" in c["text"])
    for number, verdict in verdicts.items():
        assert re.search(rf"^{re.escape(number)}\s.*\s{verdict}\s", summary, re.MULTILINE), (number, summary)
    earned, available = map(float, re.search(r"Total: ([\d.]+) of ([\d.]+) points", summary).groups())
    assert 0 < earned < available

    # The failing run test's picture is drawn, around the wrong result the explanation names.
    failing = next(c for c in cells if "TEST 1.5:" in c["text"])
    assert failing["images"] == 1
    invoked, answered = map(int, re.search(r"invoked at t=(\d+), answered at t=(\d+)", failing["text"]).groups())
    start, end = map(float, re.search(r"The picture shows t=([\d.]+)-([\d.]+) ms", failing["text"]).groups())
    assert start <= invoked and answered <= end and end - start <= 200, failing["text"]
    assert "labkit viz" in failing["text"] and "Traceback" not in failing["text"]

    # A search showed its live progress line while it ran.
    assert any(re.search(r"(BFS|random).*[\d,]+ explored, depth \d+", text, re.IGNORECASE) for text in progress), progress
