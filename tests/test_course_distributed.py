"""Grading a course on Dask, into SQLite and PostgreSQL, through failures (slow tier).

One small class of the tour assignment (a correct, a buggy and a broken
submission), graded twice through ``labkit course autograde``:

1. on a LocalCluster of two worker processes owned by the test, into the
   SQLite gradebook: a Dask worker process is killed while it judges a test,
   and the coordinator is killed (its whole process group) once the first
   submission is in the gradebook; the same command, run again, skips the
   finished submissions and grades the rest;
2. on a ``dask scheduler`` and one ``dask worker`` started as separate
   processes (one test at a time: a sequential run), into a throw-away
   PostgreSQL server.

The scores of both runs must be those the submissions deserve, cell by cell.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import NO_RETRY_FAILS, PING_POINTS, RETRY_BODY
from postgres import throwaway_postgres

from labkit.course import Course
from labkit.testing import get_lab

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PING_REFERENCE = ROOT / "solutions" / "ping" / "ping_server.py"
SUBMISSIONS = {
    "reference": PING_REFERENCE.read_text(),
    "no-retry": PING_REFERENCE.read_text().replace(RETRY_BODY, "        pass"),
    "syntax": PING_REFERENCE.read_text().replace("def has_result(self) -> bool:", "def has_result(self) -> bool"),
}
EXPECTED = {  # the points of each tour cell, by student
    "reference": {f"tour:test-1-{t.number}": t.points for t in get_lab("ping").tests},
    "no-retry": {f"tour:test-1-{t.number}": 0 if t.qualified_number in NO_RETRY_FAILS else t.points
                 for t in get_lab("ping").tests},
    "syntax": {f"tour:test-1-{t.number}": 0 for t in get_lab("ping").tests},
}


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Course]:
    home = tmp_path_factory.mktemp("home")
    where = tmp_path_factory.mktemp("course")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
            (home / name).mkdir()
            patch.setenv(name, str(home / name))
        patch.setenv("PYTHONPATH", "")
        ignore = shutil.ignore_patterns("release", "submitted", "autograded", "feedback", "gradebook.db",
                                        "__pycache__", ".ipynb_checkpoints", "*.png")
        for name in ("notebooks", "solutions", "grader_tests"):
            shutil.copytree(ROOT / name, where / name, ignore=ignore)
        course = Course(where / "notebooks")
        course.release("tour", [where / "solutions", where / "grader_tests"])
        for student, text in SUBMISSIONS.items():
            folder = course.root / "submitted" / student / "tour"
            shutil.copytree(course.root / "release" / "tour", folder)
            (folder / "ping_server.py").write_text(text)
        yield course


def autograde_command(*options: str) -> list[str]:
    return [str(BIN / "labkit"), "course", "autograde", "--assignment", "tour", *options]


def graded_rows(gradebook: Path) -> int:
    try:
        with sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True) as connection:
            return connection.execute("select count(*) from labkit_graded").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def executing(client: Any) -> dict[str, list[Any]]:
    """The keys each Dask worker is running right now."""
    return client.run(lambda dask_worker: [key for key, task in dask_worker.state.tasks.items()
                                           if task.state == "executing"])


@pytest.fixture(scope="module")
def sqlite_run(course: Course, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The first run: a Dask worker killed mid-test, then the coordinator killed after one submission."""
    from distributed import Client, LocalCluster

    logs = tmp_path_factory.mktemp("logs")
    facts: dict[str, Any] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        command = autograde_command("--scheduler", cluster.scheduler_address)
        pids = client.run(os.getpid)
        began = time.perf_counter()
        with (logs / "first.txt").open("w") as log:
            first = subprocess.Popen(command, cwd=course.root, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            try:
                while "killed" not in facts:  # 1. a Dask worker dies in the middle of a test
                    assert first.poll() is None, (logs / "first.txt").read_text()
                    for address, keys in executing(client).items():
                        judged = [key for key in keys if isinstance(key, tuple) and key[0] == "judge"]
                        if judged:
                            os.kill(pids[address], signal.SIGKILL)
                            facts["killed"] = judged[0]
                            break
                    time.sleep(0.05)
                while graded_rows(course.root / "gradebook.db") == 0:  # 2. then the coordinator, all of it
                    assert first.poll() is None, (logs / "first.txt").read_text()
                    time.sleep(0.1)
                os.killpg(first.pid, signal.SIGKILL)
            finally:
                if first.poll() is None:
                    os.killpg(first.pid, signal.SIGKILL)
                first.wait()
        facts["finished_before_restart"] = graded_rows(course.root / "gradebook.db")
        facts["export_before_restart"] = {row["student_id"]: row for row in csv.DictReader(
            course.export(logs / "grades.csv").open()) if row["assignment"] == "tour"}
        facts["attempts"] = client.run_on_scheduler(
            lambda dask_scheduler, key=facts["killed"]: sum(1 for entry in dask_scheduler.transition_log
                                                            if entry[0] == key and entry[2] == "processing"))
        second = subprocess.run(command, cwd=course.root, capture_output=True, text=True, timeout=600)
        facts["seconds"] = time.perf_counter() - began
    facts["second"] = second
    facts["scores"] = course.scores("tour")
    return facts


def test_a_killed_dask_worker_changes_no_score(sqlite_run: dict[str, Any]) -> None:
    """The test whose worker was killed ran again on another worker and scored as it should."""
    _, student, _, number, _ = sqlite_run["killed"]
    assert sqlite_run["attempts"] >= 2, "the killed worker's test was not run again"
    cell = f"tour:test-{number.replace('.', '-')}"
    assert sqlite_run["scores"][student][cell][0] == EXPECTED[student][cell]
    assert {s: {c: v[0] for c, v in cells.items()} for s, cells in sqlite_run["scores"].items()} == EXPECTED


def test_a_restarted_coordinator_skips_finished_submissions(sqlite_run: dict[str, Any]) -> None:
    second = sqlite_run["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    finished = sqlite_run["finished_before_restart"]
    assert 1 <= finished < len(SUBMISSIONS)
    rows = sqlite_run["export_before_restart"]
    waiting = {s for s, row in rows.items() if row["status"] == "not graded"}
    assert len(waiting) == len(SUBMISSIONS) - finished and {rows[s]["raw_score"] for s in waiting} == {""}
    said = second.stdout
    assert f"{finished} of {len(SUBMISSIONS)} submissions are already graded" in said, said
    assert f"Grading {len(SUBMISSIONS) - finished} submissions of tour (7 tests each)" in said, said
    assert re.search(r"Dask dashboard: http://127\.0\.0\.1:\d+/status", said), said
    assert f"{len(SUBMISSIONS) - finished} graded, {finished} already graded (skipped), 0 not graded" in said, said
    assert f"[{len(SUBMISSIONS) - finished}/{len(SUBMISSIONS) - finished} done, 0 not graded, 0 remaining" in said
    print(f"SQLite run with a killed worker and a restart: {sqlite_run['seconds']:.0f} s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[str]:
    """A scheduler and one single-threaded worker, each a process of its own; yields the scheduler's address."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                  address.rsplit(":", 1)[1], "--dashboard-address", "127.0.0.1:0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        worker = subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                   "--no-dashboard", "--local-directory", str(tmp_path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
        yield address
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def test_a_separate_scheduler_and_worker_grade_into_postgresql_with_the_same_scores(
        course: Course, sqlite_run: dict[str, Any], dask_processes: str) -> None:
    with throwaway_postgres() as url:
        release = subprocess.run([str(BIN / "labkit"), "course", "release", "--assignment", "tour", "--db", url],
                                 cwd=course.root, capture_output=True, text=True, timeout=300)
        assert release.returncode == 0, release.stdout + release.stderr
        graded = subprocess.run(autograde_command("--scheduler", dask_processes, "--db", url), cwd=course.root,
                                capture_output=True, text=True, timeout=600)
        assert graded.returncode == 0, graded.stdout + graded.stderr
        assert f"on the Dask scheduler at {dask_processes}" in graded.stdout
        in_postgresql = Course(course.root, db=url)
        assert in_postgresql.scores("tour") == sqlite_run["scores"]
        grades = in_postgresql.export(course.root / "grades-postgresql.csv").read_text()
        assert f"tour,,,reference,,,,{PING_POINTS:.1f},0.0,{PING_POINTS:.1f},{PING_POINTS:.1f},graded" in grades
