"""The ``labkit`` command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from labkit.node import LabkitError

__all__ = ["main", "build_parser", "COMMANDS"]

# Subcommands defined in other modules: name -> (module with a register(subparsers)
# function, the help line `labkit --help` shows). A module is imported only when
# its command runs, so starting labkit stays cheap (viz alone pulls in matplotlib).
COMMANDS: dict[str, tuple[str, str]] = {
    "lincheck": ("labkit.check.lincheck_command", "check a recorded history for linearizability"),
    "viz": ("labkit.viz.command", "draw a saved run log or search trace"),
    "course": ("labkit.course.command", "instructor commands: release, autograde, feedback, export"),
    "check-solution": (
        "labkit.testing.check_solution",
        "instructors: the references pass every test and every mutant is caught",
    ),
}


def _numbers(text: str) -> list[str]:
    return [n for n in text.split(",") if n.strip()]


def _parts(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"parts are numbers separated by commas, got {text!r}") from None


def _test_command(args: argparse.Namespace) -> int:
    from labkit.testing.declare import SEARCH, RUN
    from labkit.testing.runner import run_tests

    exclude = tuple(c for c, off in ((RUN, args.no_run), (SEARCH, args.no_search)) if off)
    if args.seeds is not None:
        from labkit.testing.runner import run_seeds

        if args.seeds < 1:
            raise LabkitError("--seeds takes a number of seeds, at least 1")
        failing = run_seeds(args.lab, args.seeds, parts=args.part, numbers=args.number, solution=args.solution,
                            include_hidden=args.hidden)
        return 1 if any(failing.values()) else 0
    report = run_tests(
        args.lab,
        parts=args.part,
        numbers=args.number,
        seed=args.seed,
        solution=args.solution,
        json_path=args.json,
        include_hidden=args.hidden,
        exclude_categories=exclude,
        save_dir=args.save_traces,
        timeline=args.timeline,
        checks=args.checks,
        progress=args.progress,
    )
    return 0 if report.all_passed else 1


def _replay_command(args: argparse.Namespace) -> int:
    import importlib
    from pathlib import Path

    from labkit.check.predicates import find_predicate
    from labkit.search.trace import Trace, TraceError, session_for

    path = Path(args.trace)
    if not path.exists():
        raise TraceError(f"there is no trace file {path}")
    header = Trace.read_meta(path)
    lab = header.get("lab")
    if lab:
        try:
            importlib.import_module(f"labkit.labs.{lab}.tests")
        except ImportError:
            pass
    with session_for(header, args.solution) as session:
        trace = Trace.load(path, session)
        print(f"Replaying {path} ({len(trace.events)} events"
              + (f", test {header.get('test')} of lab {lab}" if lab else "") + ")")
        try:
            text = trace.render()
        except TraceError as error:
            print(f"The trace stops: {error}")
            return 1
        print(text if not trace.violation else text.rsplit("\n", 1)[0])
        final = trace.states()[-1]
        if trace.failure is not None:
            if final.failure is not None:
                print(f"Still fails: {final.failure.node} raised {final.failure.error_type}: {final.failure.message}")
                return 1
            print("The handler no longer raises at the end of this trace.")
            return 0
        if trace.violation is not None:
            check = find_predicate(trace.violation.name)
            if check is None:
                print(f'Recorded: {trace.violation.explain()} (this predicate cannot be re-checked here)')
                return 1
            now = check.evaluate(final)
            if now.ok:
                print(f'The final state no longer violates "{check.name}".')
                return 0
            print(f"Still: {now.explain()}")
            return 1
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``labkit`` parser. ``command`` is the subcommand about to run: of the
    commands in :data:`COMMANDS` only that one is imported (None: all of them)."""
    parser = argparse.ArgumentParser(prog="labkit", description="Distributed-systems labs: run tests, check histories.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    test = sub.add_parser("test", help="run a lab's tests against a solution")
    test.add_argument("lab", help="the lab's name, e.g. ping or paxos")
    test.add_argument("-p", "--part", type=_parts, help="parts to run, e.g. 1 or 1,2")
    test.add_argument("-n", "--number", type=_numbers, help="tests to run, e.g. 2,5 or 1.2,2.5")
    test.add_argument("--seed", type=int, help="seed for every selected test (default: each test's own fixed seed)")
    test.add_argument("--seeds", type=int, metavar="N",
                      help="run the selected run tests on seeds 1 to N and print the failing seeds of each")
    test.add_argument("--solution", help="path of your module (default: <lab module>.py in this folder)")
    test.add_argument("--json", help="write structured results to this file")
    test.add_argument("--no-run", action="store_true", help="skip run tests")
    test.add_argument("--no-search", action="store_true", help="skip search tests")
    test.add_argument("--save-traces", metavar="DIR", help="save the event log or trace of every failing test here")
    test.add_argument("--checks", action="store_true",
                      help="re-run every search step to catch non-deterministic handlers (slower)")
    test.add_argument("--progress", action="store_true", help="show search progress on the terminal")
    test.add_argument("--timeline", metavar="FILE", help="save the message timeline of the first run test (PNG or SVG)")
    test.add_argument("--hidden", action="store_true", help=argparse.SUPPRESS)
    test.set_defaults(func=_test_command)

    replay = sub.add_parser("replay", help="replay a saved search trace against your current code")
    replay.add_argument("trace", help="a .trace.json file saved by a failing search test")
    replay.add_argument("--solution", help="path of your module (default: the one the trace was made with)")
    replay.set_defaults(func=_replay_command)

    for name, (module, help_text) in COMMANDS.items():
        if command is None or command == name:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    requested = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(requested)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except LabkitError as error:
        print(f"labkit: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
