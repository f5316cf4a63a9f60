"""``labkit course ...``: the instructor's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labkit.course.coordinator import describe
from labkit.course.instructor import Course

__all__ = ["register"]


def _release(args: argparse.Namespace) -> int:
    course = Course(args.course, args.db)
    forbidden = [course.locate(p) for p in args.forbid]
    reference = course.locate(args.reference) if args.reference else None
    release = course.release(args.assignment, forbidden, reference)
    drawn = f"pictures drawn from {reference}; " if reference else ""
    print(f"Released {args.assignment} to {release} ({drawn}checked for leaks from: "
          f"{', '.join(str(p) for p in forbidden) or 'nothing'})")
    return 0


def _autograde(args: argparse.Namespace) -> int:
    course = Course(args.course, args.db)
    hidden = course.locate(args.hidden_tests) if args.hidden_tests else None
    outcomes = course.autograde(args.assignment, args.student, hidden_tests=hidden, deadline=args.deadline,
                                workers=args.workers, scheduler=args.scheduler, regrade=args.regrade, out=sys.stdout)
    graded = sum(o.ok and not o.skipped for o in outcomes)
    skipped = [o for o in outcomes if o.skipped]
    failed = [o for o in outcomes if not o.ok]
    print(f"\n{graded} graded, {len(skipped)} already graded (skipped), {len(failed)} not graded")
    for outcome in failed:
        print(describe(outcome))
    if failed:
        print("Run the same command again to grade those: finished submissions are skipped.")
    return 0 if not failed else 1


def _feedback(args: argparse.Namespace) -> int:
    Course(args.course, args.db).feedback(args.assignment, args.student)
    print(f"Feedback written under {Course.find(args.course) / 'feedback'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    path = Course(args.course, args.db).export(Path(args.to) if args.to else None)
    print(f"Grades written to {path}")
    return 0


def _scores(args: argparse.Namespace) -> int:
    for student, cells in sorted(Course(args.course, args.db).scores(args.assignment).items()):
        total = sum(s for s, _ in cells.values())
        most = sum(m for _, m in cells.values())
        print(f"{student}: {total:g}/{most:g}")
        for name, (score, best) in sorted(cells.items()):
            print(f"  {name:<40} {score:g}/{best:g}")
    return 0


def _check_reference(args: argparse.Namespace) -> int:
    course = Course(args.course, args.db)
    hidden = course.locate(args.hidden_tests) if args.hidden_tests else None
    score, total = course.check_reference(args.assignment, course.locate(args.reference), args.module, hidden_tests=hidden,
                                          deadline=args.deadline, workers=args.workers, scheduler=args.scheduler)
    print(f"The reference solution scores {score:g}/{total:g}: full marks")
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number of worker processes, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``labkit course`` and its subcommands."""
    course = subparsers.add_parser("course", help="instructor commands: release, autograde, feedback, export")
    sub = course.add_subparsers(dest="course_command", metavar="STEP")
    sub.required = True

    def step(name: str, help_text: str, func) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--course", help="the course folder with nbgrader_config.py (default: . or ./notebooks)")
        parser.add_argument("--assignment", default="paxos", help="the assignment (default: paxos)")
        parser.add_argument("--db", metavar="URL",
                            help="the gradebook's SQLAlchemy URL, e.g. postgresql://USER@HOST:PORT/DATABASE "
                                 "(default: CourseDirectory.db_url of nbgrader_config.py, else gradebook.db in the "
                                 "course folder)")
        parser.set_defaults(func=func)
        return parser

    release = step("release", "generate the student release and check it leaks no solution code", _release)
    release.add_argument("--forbid", nargs="*", default=["solutions", "grader_tests"],
                         help="folders whose code must not appear in the release")
    release.add_argument("--reference", help="reference solution to draw the assignment's pictures from first "
                                             "(e.g. solutions/paxos/paxos_server.py)")
    for name, help_text, func in (("autograde", "autograde submissions on Dask: every test of every submission in "
                                                 "parallel", _autograde),
                                  ("check-reference", "autograde the reference solution; fail unless full marks",
                                   _check_reference)):
        parser = step(name, help_text, func)
        parser.add_argument("--hidden-tests", default="grader_tests", help="folder of hidden test modules")
        parser.add_argument("--deadline", type=float, default=1800.0,
                            help="seconds of real time nbgrader may take to run one student's notebooks (it decides "
                                 "no score; past it the student is not graded and can be re-run)")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--workers", type=_count, metavar="N",
                           help="Dask worker processes to start on this machine (default: one per usable CPU)")
        where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                           help="grade on the existing Dask cluster whose scheduler is here instead")
        if name == "autograde":
            parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
            parser.add_argument("--regrade", action="store_true",
                                help="grade again submissions already graded (by default they are skipped when "
                                     "their files and the tests are unchanged)")
        else:
            parser.add_argument("--reference", default="solutions/paxos/paxos_server.py")
            parser.add_argument("--module", default="paxos_server.py", help="the file name students submit")
    feedback = step("feedback", "write feedback HTML for graded submissions", _feedback)
    feedback.add_argument("--student", action="append")
    export = step("export", "export grades to CSV", _export)
    export.add_argument("--to", help="the CSV file to write (default: grades.csv in the course folder)")
    step("scores", "print every student's score per test cell", _scores)
