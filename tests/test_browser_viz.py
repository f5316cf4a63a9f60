"""End to end in a real browser (slow tier): JupyterLab on localhost serves a notebook that
draws a timeline and shows the stepper; chromium runs it, clicks a deliver button, and a
screenshot is saved."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from browser import browser_page, jupyter_lab, run_all_cells

ROOT = Path(__file__).resolve().parents[1]
PING = ROOT / "solutions" / "ping" / "ping_server.py"
PAXOS = ROOT / "solutions" / "paxos" / "paxos_server.py"

# The stepper's row of node panels: its width, and how far its content reaches (wider means a scroll bar).
PANEL_ROWS = """() => Array.from(document.querySelectorAll('.widget-hbox'))
  .filter(box => box.children.length === 6 && box.innerText.includes('server5'))
  .map(box => ({width: box.clientWidth, content: box.scrollWidth, right: box.getBoundingClientRect().right}))"""


def write_notebook(folder: Path) -> Path:
    cells = [
        new_code_cell(
            "from labkit.testing.solution import load_solution\n"
            "from labkit.labs.ping.tests import SERVER, ping_workload, search_start\n"
            "from labkit.node import client\n"
            "from labkit.sim import Simulation, RunSettings\n"
            "from labkit.viz.timeline import plot_timeline\n"
            "from labkit.viz.stepper_widget import show_stepper\n"
            f"solution = load_solution({str(PING)!r})"
        ),
        new_code_cell(
            "sim = Simulation(seed=3, settings=RunSettings(delivery_rate=0.7))\n"
            "sim.add_server(solution.PingServer(SERVER))\n"
            "sim.add_worker(solution.PingClient(client(1), SERVER), ping_workload(['a', 'b', 'c']))\n"
            "sim.run_until_done(5_000)\n"
            "plot_timeline(sim)"
        ),
        new_code_cell(
            "class Context:\n    solution = solution\n"
            "show_stepper(search_start(Context, [['a']]))"
        ),
        new_code_cell(
            "from labkit import Append, KVStore, Workload, server\n"
            "from labkit.search import SearchState\n"
            f"paxos = load_solution({str(PAXOS)!r})\n"
            "servers = [server(i) for i in range(1, 6)]\n"
            "show_stepper(SearchState.initial(\n"
            "    servers=[paxos.PaxosServer(a, servers, KVStore()) for a in servers],\n"
            "    workers=[(paxos.PaxosClient(client(1), servers), Workload.of([Append('x', '1')]))]))"
        ),
    ]
    notebook = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"}})
    path = folder / "stepper.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.mark.slow
def test_timeline_and_stepper_in_jupyterlab(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    write_notebook(work)
    with jupyter_lab(work, tmp_path / "home") as url, browser_page(width=1366, height=768) as page:
        page.goto(url.format(path="stepper.ipynb"))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator, .jp-Toolbar", timeout=60_000)
        page.wait_for_timeout(2_000)  # the kernel comes up
        run_all_cells(page)
        page.wait_for_selector(".jp-OutputArea-output img", timeout=120_000)
        deliver = page.locator("button:has-text('deliver')").first
        deliver.wait_for(timeout=120_000)
        page.wait_for_selector("text=step 0 of 0", timeout=30_000)
        deliver.click()
        page.wait_for_selector("text=step 1 of 1", timeout=30_000)  # the stepper moved on
        page.wait_for_function(f"() => ({PANEL_ROWS})().length > 0", timeout=120_000)
        rows = page.evaluate(PANEL_ROWS)
        shot = tmp_path / "stepper.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    # Five servers and a client fit across a laptop screen: no scrolling sideways to see a node.
    assert rows and all(r["content"] <= r["width"] + 1 and r["right"] <= 1366 for r in rows), rows
