"""A failing test cell in a real Jupyter kernel: the explanation once, then one line, no labkit frames."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import NO_RETRY_FAILS, RETRY_BODY, ping_variant
from nbclient import NotebookClient


@pytest.fixture
def kernel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.delenv("LABKIT_GRADING", raising=False)
    return tmp_path


def test_a_failing_cell_shows_its_explanation_once_and_run_all_goes_on(kernel_home: Path, tmp_path: Path) -> None:
    module = ping_variant(tmp_path, [(RETRY_BODY, "        pass")])
    failing = sorted(NO_RETRY_FAILS)[0]
    cells = [nbformat.v4.new_code_cell("from labkit.testing import check_test, test_summary"),
             nbformat.v4.new_code_cell(f'check_test("ping", "{failing}", solution="{module}");'),
             nbformat.v4.new_code_cell(f'check_test("ping", "1.2", solution="{module}");'),
             nbformat.v4.new_code_cell(f'test_summary("ping", ["{failing}", "1.2"])')]
    cells[1].metadata["tags"] = ["raises-exception"]
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[1].outputs
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    (error,) = [o for o in outputs if o.output_type == "error"]
    assert printed.count(f"TEST {failing}:") == 1 and "replay with:" in printed
    explanation = printed.splitlines()[1].strip()
    assert explanation and explanation not in "\n".join(error.traceback)
    assert [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in error.traceback] == [
        next(line for line in printed.splitlines() if line.startswith(f"TEST {failing}:")).split(" ... ")[0]
        + " failed: the explanation is printed above."]
    assert "PASS" in "".join(o.get("text", "") for o in nb.cells[2].outputs)
    summary = "".join(o.get("text", "") for o in nb.cells[3].outputs)
    assert re.search(rf"{re.escape(failing)}\s.*FAIL", summary) and re.search(r"1\.2\s.*PASS\s+5/5", summary)


def test_a_search_shows_a_live_progress_line_under_its_cell(kernel_home: Path, tmp_path: Path) -> None:
    solution = Path(__file__).resolve().parent.parent / "solutions" / "ping" / "ping_server.py"
    cells = [nbformat.v4.new_code_cell(f'from labkit.testing import check_test\ncheck_test("ping", "1.6", solution="{solution}");'),
             nbformat.v4.new_code_cell(f'check_test("ping", "1.2", solution="{solution}");')]
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()

    def widgets(cell) -> int:
        return sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs)

    search, run = nb.cells
    assert widgets(search) >= 1 and widgets(run) == 0
    assert search.outputs[0].text.startswith("TEST 1.6:")  # the TEST line comes first, before the search runs
