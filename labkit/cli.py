"""The ``labkit`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from labkit.node import LabkitError

__all__ = ["main", "build_parser"]


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
    )
    return 0 if report.all_passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="Distributed-systems labs: run tests, check histories.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    test = sub.add_parser("test", help="run a lab's tests against a solution")
    test.add_argument("lab", help="the lab's name, e.g. ping or paxos")
    test.add_argument("-p", "--part", type=_parts, help="parts to run, e.g. 1 or 1,2")
    test.add_argument("-n", "--number", type=_numbers, help="tests to run, e.g. 2,5 or 1.2,2.5")
    test.add_argument("--seed", type=int, help="seed for every selected test (default: each test's own fixed seed)")
    test.add_argument("--solution", help="path of your module (default: <lab module>.py in this folder)")
    test.add_argument("--json", help="write structured results to this file")
    test.add_argument("--no-run", action="store_true", help="skip run tests")
    test.add_argument("--no-search", action="store_true", help="skip search tests")
    test.add_argument("--save-traces", metavar="DIR", help="save the event log or trace of every failing test here")
    test.add_argument("--hidden", action="store_true", help=argparse.SUPPRESS)
    test.set_defaults(func=_test_command)

    for module_name in ("labkit.check.lincheck_command",):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except LabkitError as error:
        print(f"labkit: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
