"""``labkit viz`` writes the timeline and, for a trace, the counterexample table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from labkit.search.trace import Trace
from labkit.viz.command import register
from test_viz_support import ping_run, ping_trace


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="labkit")
    register(parser.add_subparsers())
    args = parser.parse_args(["viz", *argv])
    return args.func(args)


def test_a_trace_file_gives_a_timeline_and_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    trace = ping_trace(tmp_path / "solution")
    path = trace.save(tmp_path / "ping-1.6-search1.trace.json")
    out = tmp_path / "out"
    assert run(str(path), "--out", str(out)) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"ping-1.6-search1.{s}" for s in ("table.csv", "table.html", "table.txt", "timeline.png",
                                                        "timeline.svg")]
    assert (out / "ping-1.6-search1.table.txt").read_text() == Trace.load(path).render() + "\n"
    assert (out / "ping-1.6-search1.timeline.svg").read_text().count('id="arrow') == 3
    assert "wrote" in capsys.readouterr().out


def test_a_run_log_with_filters(tmp_path: Path):
    sim = ping_run()
    path = sim.log.save(tmp_path / "ping-1.5-seed3.runlog.jsonl", {"lab": "ping"})
    assert run(str(path), "--nodes", "server", "client2", "--types", "PingRequest", "--window", "0", "50") == 0
    svg = (tmp_path / "ping-1.5-seed3.timeline.svg").read_text()
    delivered = [r for r in sim.log.to_records() if r["kind"] == "deliver" and r["type"] == "PingRequest"
                 and r["peer"] == "client2" and r["time"] <= 50]
    assert svg.count('id="arrow') == len(delivered) > 0
    assert (tmp_path / "ping-1.5-seed3.events.csv").read_text().count("\n") == len(sim.log) + 1
