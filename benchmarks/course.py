"""Grading a course on Dask: students per hour against Dask workers, and a projection for 300 students.

Builds a scratch copy of the course and a class of 8 mixed Paxos submissions:
two correct (the reference, and the reference with comments), three buggy
(mutants from grader_tests/mutants), two broken (the untouched stub, a syntax
error) and one that cheats (the reference, plus code at import that tries to
read the hidden tests and write the gradebook). It grades the class with
``labkit course autograde`` (``Course.autograde``, everything real: the judge
on Dask workers, nbgrader's bookkeeping here, the SQLite gradebook) on a
LocalCluster of 1, 2 and all usable CPUs' worker processes, in this one run,
each test with one search process (``LABKIT_WORKERS=1``, as on a cluster of
2-core machines running two worker processes each).

Printed for each worker count: real time, students per hour, CPU seconds of
every process (user + system, this one and all it waited for), speed-up and
scaling efficiency against the 1-worker run (the sequential figure); then the
counted work: CPU seconds of the judge's tasks (from the Dask task stream of
the 1-worker run) and the real time of nbgrader's bookkeeping per student;
and a projection for a course of 300 students (the class repeated) on 16
machines of 2 cores (32 worker processes): the tasks scheduled in priority
order on 32 slots with the measured task times, beside the bookkeeping on
the coordinator's cores.

Paxos's whole suite costs minutes per student, so by default only a subset of
tests is graded (``--tests``; ``--tests all`` grades every test), and the
output says which.

Run: python benchmarks/course.py [--tests 1.2,1.21,...|all] [--workers 1,2,4] [--coordinator-cores N]
"""

from __future__ import annotations

import argparse
import heapq
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SUBSET = "1.2,1.5,1.8,1.14,1.101,2.16,3.11,4.28"
MUTANTS = ("minority_quorum", "executes_past_holes", "replies_before_chosen")
CHEAT = '''

import os as _os
for _target in ({hidden!r}, {gradebook!r}):
    try:
        print(open(_target).read()[:200])
        open(_target, "a").write("graded by me: full marks")
    except OSError:
        pass
'''


def make_course(where: Path, tests: set[str] | None) -> Any:
    from labkit.course import Course

    ignore = shutil.ignore_patterns("release", "submitted", "autograded", "feedback", "gradebook.db", "__pycache__",
                                    ".ipynb_checkpoints", "*.png")
    for name in ("notebooks", "solutions", "grader_tests"):
        shutil.copytree(ROOT / name, where / name, ignore=ignore)
    if tests is not None:  # keep only the chosen tests' graded cells
        for path in (where / "notebooks" / "source" / "paxos").glob("*.ipynb"):
            nb = nbformat.read(str(path), as_version=4)
            nb.cells = [c for c in nb.cells if not _graded(c) or _number(c) in tests]
            nbformat.write(nb, str(path))
    course = Course(where / "notebooks")
    course.release("paxos", [where / "solutions", where / "grader_tests"])
    return course


def _graded(cell: Any) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and meta.get("grade_id", "").startswith("test-")


def _number(cell: Any) -> str:
    return cell.metadata["nbgrader"]["grade_id"].removeprefix("test-").replace("-", ".", 1)


def submit_class(course: Any) -> list[str]:
    sys.path.insert(0, str(course.root.parent / "grader_tests" / "mutants"))
    from catalogue import MUTANTS as CATALOGUE

    reference = (course.root.parent / "solutions" / "paxos" / "paxos_server.py").read_text()
    stub = (course.root / "release" / "paxos" / "paxos_server.py").read_text()
    mutants = {m.name: m for m in CATALOGUE}
    places = {"hidden": str(course.root.parent / "grader_tests" / "paxos_hidden.py"),
              "gradebook": str(course.root / "gradebook.db")}
    modules = {
        "correct-1": reference,
        "correct-2": "# my Multi-Paxos, with comments\n" + reference,
        **{f"buggy-{name}": mutants[name].apply(reference) for name in MUTANTS},
        "broken-stub": stub,
        "broken-syntax": reference.replace("class PaxosServer(Node):", "class PaxosServer(Node)", 1),
        "cheating": reference + CHEAT.format(**places),
    }
    for student, text in modules.items():
        folder = course.root / "submitted" / student / "paxos"
        shutil.copytree(course.root / "release" / "paxos", folder)
        (folder / "paxos_server.py").write_text(text)
    return list(modules)


def cpu_seconds() -> float:
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def grade(course: Any, students: list[str], workers: int) -> dict[str, Any]:
    """Grade the class on a new LocalCluster of ``workers`` processes; what it cost and what each task took."""
    from distributed import Client, LocalCluster, get_task_stream

    bookkeeping: dict[str, float] = {}
    run_notebooks = course.run_notebooks

    def timed_notebooks(assignment: str, student: str, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return run_notebooks(assignment, student, *args, **kwargs)
        finally:
            bookkeeping[student] = time.perf_counter() - began

    course.run_notebooks = timed_notebooks
    cpu, began = cpu_seconds(), time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env={"LABKIT_WORKERS": "1"}) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            outcomes = course.autograde("paxos", students, hidden_tests=course.root.parent / "grader_tests",
                                        scheduler=cluster.scheduler_address, regrade=True)
    wall, cpu = time.perf_counter() - began, cpu_seconds() - cpu
    course.run_notebooks = run_notebooks
    tasks: dict[tuple[str, str], float] = {}
    for task in stream.data:
        key = task["key"]
        if isinstance(key, tuple) and key[0] == "judge":
            tasks[(key[1], key[3])] = sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
    return {"wall": wall, "cpu": cpu, "outcomes": outcomes, "tasks": tasks, "bookkeeping": bookkeeping,
            "scores": {o.student: o.score for o in outcomes}, "not graded": [o.student for o in outcomes if not o.ok]}


def project(tasks: dict[tuple[str, str], float], students: list[str], tests: list[str], course_size: int,
            slots: int) -> float:
    """Seconds to run every test of ``course_size`` students (the class repeated) on ``slots`` worker
    processes, each taking the next task in priority order when it is free (as the Dask scheduler does)."""
    free = [0.0] * slots
    for index in range(course_size):
        student = students[index % len(students)]
        for number in tests:
            start = heapq.heappop(free)
            heapq.heappush(free, start + tasks.get((student, number), 0.0))
    return max(free)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", default=SUBSET, help=f"Paxos tests to grade, or 'all' (default: {SUBSET})")
    usable = len(os.sched_getaffinity(0))
    parser.add_argument("--workers", default=",".join(str(w) for w in dict.fromkeys((1, 2, usable))),
                        help="Dask worker counts to compare (default: 1, 2 and every usable CPU)")
    parser.add_argument("--coordinator-cores", type=int, default=usable,
                        help="cores of the grading machine in the projection, for nbgrader's bookkeeping "
                             "(default: this machine's)")
    args = parser.parse_args()
    chosen = None if args.tests == "all" else {t.strip() for t in args.tests.split(",") if t.strip()}
    counts = [int(w) for w in args.workers.split(",")]
    home = tempfile.mkdtemp(prefix="labkit-course-bench-")
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        os.environ[name] = os.path.join(home, name)
    os.environ["PYTHONPATH"] = ""
    with tempfile.TemporaryDirectory(prefix="labkit-course-") as scratch:
        course = make_course(Path(scratch), chosen)
        students = submit_class(course)
        from labkit.course.grading import graded_cells

        tests = list(dict.fromkeys(c.number for c in graded_cells(course.root / "source" / "paxos")))
        runs = {w: grade(course, students, w) for w in counts}
    shutil.rmtree(home, ignore_errors=True)

    which = "every test" if chosen is None else f"a subset of {len(tests)} tests ({', '.join(tests)})"
    print(f"Paxos, {len(students)} submissions ({', '.join(students)}), {which}; "
          f"{usable} usable CPUs, one search process per test")
    base = runs[counts[0]]
    print(f"\n{'workers':>7} {'real s':>8} {'students/h':>11} {'CPU s':>8} {'speed-up':>9} {'efficiency':>11}  not graded")
    for w, run in runs.items():
        speedup = base["wall"] / run["wall"]
        print(f"{w:>7} {run['wall']:>8.1f} {3600 * len(students) / run['wall']:>11.1f} {run['cpu']:>8.1f} "
              f"{speedup:>9.2f} {speedup / (w / counts[0]):>11.0%}  {', '.join(run['not graded']) or '-'}")
    same = all(run["scores"] == base["scores"] for run in runs.values())
    print(f"scores the same for every worker count: {'yes' if same else 'NO'} "
          f"({', '.join(f'{s} {v:g}' for s, v in base['scores'].items())})")

    task_total = sum(base["tasks"].values())
    per_student = {s: sum(v for (who, _), v in base["tasks"].items() if who == s) for s in students}
    notebooks = sum(base["bookkeeping"].values()) / max(len(base["bookkeeping"]), 1)
    print(f"\ncounted work ({counts[0]} worker run): judge tasks {task_total:.1f} s of compute for {len(base['tasks'])} "
          f"tasks ({task_total / len(students):.1f} s per student; most {max(per_student.values()):.1f} s, "
          f"least {min(per_student.values()):.1f} s); nbgrader's bookkeeping {notebooks:.1f} s per student (real time)")

    size, machines, cores = 300, 16, 2
    judging = project(base["tasks"], students, tests, size, machines * cores)
    bookkeeping = size * notebooks / args.coordinator_cores
    print(f"\nprojection: {size} students ({which}) on {machines} machines x {cores} cores "
          f"({machines * cores} worker processes):")
    print(f"  judge tasks, scheduled in order on {machines * cores} slots: {judging / 3600:.2f} h")
    print(f"  nbgrader's bookkeeping on a {args.coordinator_cores}-core grading machine: {bookkeeping / 3600:.2f} h")
    print(f"  wall time about {max(judging, bookkeeping) / 3600:.2f} h (the two overlap), "
          f"against {(size * task_total / len(students) + size * notebooks) / 3600:.1f} h one student after another")


if __name__ == "__main__":
    main()
