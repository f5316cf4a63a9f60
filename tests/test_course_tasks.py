"""The Dask task of course grading, run here as a plain function, and the cluster's bad input.

The task gets bytes, not paths: the submitted files and the hidden tests'
source, which it registers from memory. It returns plain data (JSON-able),
with paths relative to the test's own folder, as a student's run shows them.
The cluster says clearly when it cannot be started or reached.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest
from conftest import PING_SOLUTION

from labkit.course import distributed
from labkit.course.distributed import (Cluster, ClusterError, HiddenTests, Submission, judge_test,
                                       labkit_fingerprint)
from labkit.testing import get_lab

HIDDEN = '''
from labkit.labs.ping.tests import LAB, SERVER, ping_workload, setup
from labkit.check.predicates import CLIENTS_DONE, RESULTS_OK
from labkit.testing.declare import RUN


@LAB.test(101, "Hidden: {clients} clients", {points}, hidden=True)
def many_clients(t):
    sim = setup(t, {clients}, ping_workload(["hidden-%i"], repeat=3))
    sim.run_until(lambda s: CLIENTS_DONE.evaluate(s).ok, max_millis=5_000)
    t.check(sim, RESULTS_OK, CLIENTS_DONE)
'''


@pytest.fixture
def forget_hidden() -> Iterator[None]:
    yield
    lab = get_lab("ping")
    lab.tests[:] = [t for t in lab.tests if not t.hidden]
    sys.modules.pop("ping_hidden", None)


def submission(folder: Path, text: str | None) -> Submission:
    folder.mkdir(parents=True, exist_ok=True)
    if text is not None:
        (folder / "ping_server.py").write_text(text)
    (folder / "helper.py").write_text("HELP = 1\n")
    return Submission.read("ann", folder, "ping_server.py")


def test_a_task_needs_only_bytes_and_returns_plain_data(tmp_path: Path, forget_hidden: None) -> None:
    bundle = submission(tmp_path / "ann", PING_SOLUTION.read_text())
    assert [name for name, _ in bundle.files] == ["helper.py", "ping_server.py"]
    hidden = HiddenTests((("ping_hidden", HIDDEN.format(clients=3, points=5)),))
    answer = judge_test(bundle, hidden, "ping", "1.101", labkit_fingerprint())
    json.dumps(answer)
    assert answer["result"]["passed"] and answer["result"]["points_earned"] == 5
    assert answer["picture"] is None and answer["judge_cpu_seconds"] > 0
    changed = HiddenTests((("ping_hidden", HIDDEN.format(clients=2, points=7)),))  # a new version replaces the old
    again = judge_test(bundle, changed, "ping", "1.101", labkit_fingerprint())
    assert again["result"]["name"] == "Hidden: 2 clients" and again["result"]["points_earned"] == 7
    assert [t.qualified_number for t in get_lab("ping").tests if t.hidden] == ["1.101"]
    assert sys.modules["ping_hidden"].__file__ == "<hidden tests ping_hidden>"  # never a file on the worker


def test_a_failed_search_reads_as_the_student_s_own_run(tmp_path: Path) -> None:
    any_pong = PING_SOLUTION.read_text().replace(
        "if self.ping is not None and message.pong.value == self.ping.value:", "if self.ping is not None:")
    answer = judge_test(submission(tmp_path / "ann", any_pong), HiddenTests(()), "ping", "1.6", labkit_fingerprint())
    result = answer["result"]
    assert not result["passed"] and result["graded"]
    assert result["artifacts"] == ["traces/ping-1.6-search1.trace.json"]
    assert "The trace is saved in traces/ping-1.6-search1.trace.json" in result["failure"]
    assert "labkit-judge-" not in json.dumps(result)
    assert base64.b64decode(answer["picture"]["png"])[:8] == b"\x89PNG\r\n\x1a\n" and "The picture shows" in answer["picture"]["caption"]


def test_a_missing_module_fails_every_test_and_symbolic_links_are_not_sent(tmp_path: Path) -> None:
    folder = tmp_path / "ann"
    bundle = submission(folder, None)
    (folder / "secret.py").symlink_to(PING_SOLUTION)
    assert [name for name, _ in Submission.read("ann", folder, "ping_server.py").files] == ["helper.py"]
    answer = judge_test(bundle, HiddenTests(()), "ping", "1.1", labkit_fingerprint())
    assert answer["result"]["failure"] == "no ping_server.py was submitted" and answer["result"]["graded"]


def test_a_worker_with_another_labkit_refuses_to_grade(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="another version of labkit"):
        judge_test(submission(tmp_path / "ann", ""), HiddenTests(()), "ping", "1.1", "0" * 16)


def test_bad_cluster_options_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClusterError, match="give only one of them"):
        Cluster(workers=2, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ClusterError, match="--workers must be at least 1"):
        Cluster(workers=0)
    monkeypatch.setattr(distributed, "CONNECT_SECONDS", 2.0)
    with pytest.raises(ClusterError) as caught:
        Cluster(scheduler="tcp://127.0.0.1:9")
    said = str(caught.value)
    assert said.startswith("cannot reach the Dask scheduler at tcp://127.0.0.1:9") and "leave out --scheduler" in said


def test_the_default_is_one_worker_per_usable_cpu() -> None:
    assert distributed.usable_cores() == len(os.sched_getaffinity(0))
