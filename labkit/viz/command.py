"""The ``labkit viz`` subcommand: draw a saved run log or trace to files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.search.trace import Trace
from labkit.viz.sources import load_source

if TYPE_CHECKING:
    from labkit.viz.timeline import Focus

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``viz`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "viz",
        help="draw a saved run log or search trace",
        description="Draw the message timeline of a saved run log (.runlog.jsonl) or trace (.trace.json) as PNG "
        "and SVG; for a trace, also write its counterexample table as HTML, CSV and text.",
    )
    parser.add_argument("source", type=Path, help="a run log or trace file saved by `labkit test --save-traces`")
    parser.add_argument("--out", type=Path, default=None, help="folder for the files (default: next to the source)")
    parser.add_argument("--types", nargs="+", metavar="TYPE", help="only these message and timer types")
    parser.add_argument("--nodes", nargs="+", metavar="NODE", help="only these nodes, e.g. server1 client1")
    parser.add_argument("--window", nargs=2, type=float, metavar=("START", "END"),
                        help="only what arrives in this time window (steps for a trace)")
    parser.add_argument("--focus", nargs="+", metavar=("CLIENT", "TIME"),
                        help="a run only: CLIENT START [END], the client operation a failure names (invoked at "
                        "START, answered at END or never): draws the part around it, its causal path standing out")
    parser.add_argument("--no-fold", action="store_true", help="draw heartbeats as arrows too")
    parser.add_argument("--labels", action="store_true", help="write each message's content on its arrow")
    parser.add_argument("--solution", help="your module, for a trace (default: the one the trace was made with)")
    parser.set_defaults(func=_run)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".runlog.jsonl", ".trace.json", ".jsonl", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _focus(values: list[str] | None) -> "Focus | None":
    from labkit.viz.timeline import Focus

    if not values:
        return None
    if len(values) not in (2, 3):
        raise SystemExit("--focus takes a client and one or two times: --focus client1 120 [180]")
    try:
        times = [float(v) for v in values[1:]]
    except ValueError:
        raise SystemExit(f"--focus: {' '.join(values[1:])} are not times in ms (give --focus client1 120 180)") from None
    return Focus(values[0], times[0], times[1] if len(times) == 2 else None)


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from labkit.viz.timeline import DEFAULT_FOLD, plot_timeline
    from labkit.viz.trace_table import CounterexampleTable

    focus = _focus(args.focus)
    source = load_source(args.source, args.solution)
    if focus is not None and isinstance(source, Trace):
        raise SystemExit("--focus is for run logs; a trace is short and drawn whole")
    out: Path = args.out if args.out is not None else args.source.parent
    out.mkdir(parents=True, exist_ok=True)
    base = out / _stem(args.source)
    figure = plot_timeline(source, types=args.types, nodes=args.nodes,
                           window=tuple(args.window) if args.window else None,
                           fold=() if args.no_fold else DEFAULT_FOLD, labels=args.labels, focus=focus)
    written = [base.with_name(base.name + ".timeline.png"), base.with_name(base.name + ".timeline.svg")]
    figure.savefig(written[0], dpi=120)
    figure.savefig(written[1])
    if isinstance(source, Trace):
        table = CounterexampleTable(source)
        html_path, csv_path, text_path = (base.with_name(base.name + suffix)
                                          for suffix in (".table.html", ".table.csv", ".table.txt"))
        html_path.write_text("<!doctype html><meta charset='utf-8'>" + table.to_html() + "\n", encoding="utf-8")
        table.to_csv(csv_path)
        text_path.write_text(table.to_text() + "\n", encoding="utf-8")
        written += [html_path, csv_path, text_path]
    else:
        events_path = base.with_name(base.name + ".events.csv")
        pd.DataFrame.from_records(source.records).to_csv(events_path, index=False)
        written.append(events_path)
    for path in written:
        print(f"wrote {path}")
    return 0
