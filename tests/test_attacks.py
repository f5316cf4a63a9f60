"""The attack suite through ``labkit test``: every careless or cheating module gets exactly its score.

Each submission runs through the real command line, as a student would run
it. Besides the score, each case checks that nothing secret reached the
output, that the files and the gradebook the attack went after are unchanged,
that nothing connected to the test's listening socket, and that the command
ended normally. The same attacks go through real nbgrader in
``test_attacks_autograde.py``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from attacks import ATTACKS, FULL_MARKS, ROOT, Attack

LABKIT = Path(sys.executable).parent / "labkit"
HIDDEN = ROOT / "grader_tests" / "paxos_hidden.py"
PAXOS_REFERENCE = ROOT / "solutions" / "paxos" / "paxos_server.py"
SLOW = {"endless_loop"}  # five CPU-seconds per test, by design


def secret_lines() -> list[str]:
    """Lines that appear only in what must stay secret (long enough not to occur by chance)."""
    lines = []
    for path in (HIDDEN, PAXOS_REFERENCE):
        lines += [line.strip() for line in path.read_text().splitlines() if len(line.strip()) > 40][:40]
    return lines


class Targets:
    """What the attacks go after: a gradebook, another student's module, a course folder, a listener."""

    def __init__(self, folder: Path) -> None:
        self.gradebook = folder / "course" / "gradebook.db"
        self.victim = folder / "course" / "submitted" / "victim" / "tour" / "ping_server.py"
        self.course = folder / "course"
        self.victim.parent.mkdir(parents=True)
        self.victim.write_text("# the victim's own work\n")
        with sqlite3.connect(self.gradebook) as db:
            db.execute("CREATE TABLE grade (id INTEGER PRIMARY KEY, manual_score FLOAT)")
            db.executemany("INSERT INTO grade (manual_score) VALUES (?)", [(1.0,), (2.0,)])
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.setblocking(False)
        self.before = self.snapshot()

    def places(self) -> dict[str, str]:
        return {"hidden": str(HIDDEN), "solution": str(PAXOS_REFERENCE), "gradebook": str(self.gradebook),
                "victim": str(self.victim), "course": str(self.course), "port": str(self.listener.getsockname()[1])}

    def snapshot(self) -> dict[str, str]:
        return {str(p.relative_to(self.course)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.course.rglob("*")) if p.is_file()}

    def connections(self) -> int:
        count = 0
        while True:
            try:
                self.listener.accept()[0].close()
                count += 1
            except BlockingIOError:
                return count


@pytest.mark.parametrize("attack", [pytest.param(a, id=a.name, marks=[pytest.mark.slow] if a.name in SLOW else [])
                                    for a in ATTACKS if a.module_attack])
def test_attack_through_labkit_test(attack: Attack, tmp_path: Path) -> None:
    targets = Targets(tmp_path)
    module = tmp_path / "submission" / "ping_server.py"
    module.parent.mkdir()
    module.write_text(attack.source(targets.places()))
    results = tmp_path / "results.json"
    done = subprocess.run([str(LABKIT), "test", "ping", "--solution", str(module), "--json", str(results)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert results.is_file(), output[-3000:]
    report = json.loads(results.read_text())
    assert report["points_earned"] == attack.points, (attack.name, [(r["number"], r["failure"]) for r in report["results"]])
    assert report["points_available"] == FULL_MARKS
    assert done.returncode == (0 if attack.points == FULL_MARKS else 1), output[-3000:]
    assert ("ALL PASS" in done.stdout.splitlines()[-1]) == (attack.points == FULL_MARKS)
    assert "Traceback (most recent call last)" not in done.stderr, done.stderr[-3000:]
    for line in secret_lines():
        assert line not in output, f"{attack.name} leaked {line!r}"
    assert targets.snapshot() == targets.before, f"{attack.name} changed files it does not own"
    assert targets.connections() == 0, f"{attack.name} reached the test's socket"
    assert len(output) < 200_000, f"{attack.name} flooded the output ({len(output)} characters)"
    assert all(result["protections"] for result in report["results"]), "every result states its protections"
    assert "Your code ran in a box (sealed: " in done.stdout
