"""The `labkit` console script, run as a real subprocess."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Callable

from conftest import LABKIT_SCRIPT, PING_NUMBERS, PING_POINTS, PING_SOLUTION, RETRY_BODY, ROOT


def labkit(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LABKIT_SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def failure_block(stdout: str, number: str) -> str:
    """The indented lines printed under a failing test's header."""
    match = re.search(rf"^TEST {re.escape(number)}: .*FAIL.*\n((?:    .*\n)+)", stdout, re.M)
    assert match, stdout
    return match.group(1)


def test_reference_solution_passes_everything(tmp_path: Path) -> None:
    json_path = tmp_path / "out.json"
    done = labkit("test", "ping", "--solution", str(PING_SOLUTION), "--json", str(json_path))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("TEST 1.1: Client contract: send_command, has_result, get_result [RUN] (5pts) ... PASS (")
    tests = [line for line in lines if line.startswith("TEST ")]
    assert len(tests) == len(PING_NUMBERS)
    assert all(re.fullmatch(r"TEST 1\.\d: .* \[[A-Z, ]+\] \(\d+pts\) \.\.\. PASS \(\d+\.\ds\)", line) for line in tests)
    n, points = len(PING_NUMBERS), f"{PING_POINTS:g}"
    assert f"Tests passed: {n}/{n}" in lines and f"Points: {points}/{points} (100%)" in lines and lines[-1] == "ALL PASS"
    assert done.stderr == ""
    data = json.loads(json_path.read_text())
    assert data["passed"] == data["tests"] == n and data["points_earned"] == data["points_available"] == PING_POINTS
    assert [r["number"] for r in data["results"]] == PING_NUMBERS
    assert all(r["passed"] and r["failure"] is None and isinstance(r["seed"], int) for r in data["results"])
    assert data["results"][3]["categories"] == ["run", "unreliable"]


def test_selection_flags() -> None:
    done = labkit("test", "ping", "-p", "1", "-n", "2,1.4", "--solution", str(PING_SOLUTION))
    assert done.returncode == 0
    assert re.findall(r"^TEST (\d\.\d):", done.stdout, re.M) == ["1.2", "1.4"]
    assert "Tests passed: 2/2" in done.stdout


def test_failing_test_prints_seed_and_replay_that_reproduces_it(make_variant: Callable[..., Path], tmp_path: Path) -> None:
    two_retries = make_variant(
        ("        self.set_timer(PingTimer(command), RETRY_MILLIS)", "        self.set_timer(PingTimer(command), RETRY_MILLIS)\n        self.retries = 0"),
        (RETRY_BODY, RETRY_BODY.replace("self.pong is None:", "self.pong is None and self.retries < 2:\n            self.retries += 1")),
    )
    json_path = tmp_path / "r.json"
    done = labkit("test", "ping", "-n", "4", "--solution", str(two_retries), "--json", str(json_path))
    assert done.returncode == 1
    block = failure_block(done.stdout, "1.4")
    replay_line = re.search(r"seed (\d+); replay with: (.*)$", block, re.M)
    assert replay_line, block
    seed, command = replay_line.groups()
    data = json.loads(json_path.read_text())
    assert data["results"][0]["seed"] == int(seed) and data["results"][0]["replay"] == command
    args = shlex.split(command)
    assert args[:2] == ["labkit", "test"] and "--seed" in args
    again = labkit(*args[1:])
    assert again.returncode == 1 and failure_block(again.stdout, "1.4") == block
    other = labkit("test", "ping", "-n", "4", "--seed", str(int(seed) + 1), "--solution", str(two_retries))
    assert f"--seed {int(seed) + 1}" in other.stdout


def test_save_traces_writes_the_failing_run(no_retry: Path, tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    done = labkit("test", "ping", "-n", "1.4", "--solution", str(no_retry), "--save-traces", str(traces))
    assert done.returncode == 1
    (saved,) = traces.iterdir()
    assert f"saved {saved}" in done.stdout
    header = json.loads(saved.read_text().splitlines()[0])
    assert header["format"] == "labkit-run-log" and header["test"] == "1.4"
    # The picture's command points at the unanswered command, and it runs.
    command = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if "labkit viz" in line)
    assert command.startswith(f"labkit viz {saved} --focus client1 ")
    drawn = labkit(*command.split()[1:], "--out", str(tmp_path / "pictures"))
    assert drawn.returncode == 0, drawn.stderr
    assert (tmp_path / "pictures" / saved.name.replace(".runlog.jsonl", ".timeline.png")).stat().st_size > 10_000


def test_default_solution_is_read_from_the_current_folder(tmp_path: Path) -> None:
    missing = labkit("test", "ping", cwd=tmp_path)
    assert "no solution given and no ping_server.py" in missing.stdout and missing.returncode == 1
    (tmp_path / "ping_server.py").write_text(PING_SOLUTION.read_text())
    found = labkit("test", "ping", cwd=tmp_path)
    assert found.returncode == 0 and "ALL PASS" in found.stdout


def test_usage_errors_exit_2_with_a_message() -> None:
    unknown = labkit("test", "nolab", "--solution", str(PING_SOLUTION))
    assert unknown.returncode == 2 and unknown.stderr.startswith("labkit: there is no lab 'nolab'")
    missing = labkit("test", "ping", "-n", "9", "--solution", str(PING_SOLUTION))
    assert missing.returncode == 2 and "has no test 1.9" in missing.stderr
    bad_part = labkit("test", "ping", "-p", "x")
    assert bad_part.returncode == 2 and "parts are numbers" in bad_part.stderr
    nothing = labkit()
    assert nothing.returncode == 2 and "usage: labkit" in nothing.stderr


def test_checks_flag_catches_a_handler_that_is_not_deterministic(make_variant: Callable[..., Path]) -> None:
    # The server answers from a global counter: same state, same message, different reply.
    server_line = "        self.send(PongReply(self.app.execute(message.ping)), sender)"
    variant = make_variant((server_line, "        global CALLS\n        CALLS = globals().get('CALLS', 0) + 1\n"
                                         "        self.send(PongReply(Pong(str(CALLS % 2))), sender)"))
    done = labkit("test", "ping", "-n", "1.6", "--checks", "--solution", str(variant))
    assert done.returncode == 1
    assert "not deterministic" in done.stdout
    assert "PingServer.handle_PingRequest" in done.stdout


def test_seeds_option_tabulates_the_failing_seeds_of_each_run_test(make_variant: Callable[..., Path]) -> None:
    no_retry = make_variant((RETRY_BODY, "        pass"))
    done = labkit("test", "ping", "-n", "1.2,1.4,1.6", "--seeds", "3", "--solution", str(no_retry))
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.split("failing seeds\n")[1].splitlines()
            if line[:1].isdigit()}
    assert rows == {"1.2": ["3/3", "-"], "1.4": ["0/3", "1,", "2,", "3"]}  # 1.6 is a search: not run
    assert f"labkit test ping -n NUMBER --seed SEED --solution {no_retry}" in done.stdout
    again = labkit("test", "ping", "-n", "1.4", "--seed", "2", "--solution", str(no_retry))
    assert "TEST 1.4" in again.stdout and "FAIL" in again.stdout


def test_a_failing_search_offers_the_stepper_and_the_commands_for_its_trace(make_variant: Callable[..., Path],
                                                                          tmp_path: Path) -> None:
    accept_any = make_variant(("if self.ping is not None and message.pong.value == self.ping.value:",
                               "if self.ping is not None:"))
    done = labkit("test", "ping", "-n", "1.6", "--solution", str(accept_any), cwd=tmp_path)
    assert done.returncode == 1
    (line,) = [line.strip() for line in done.stdout.splitlines() if "show_stepper(" in line]
    call = line.split("; ", 1)[1]
    assert call.startswith("show_stepper('") and call.endswith(".trace.json')")
    trace = call[len("show_stepper('"):-2]
    assert f"labkit viz {trace}" in done.stdout and f"labkit replay {trace}" in done.stdout
    from labkit.viz.stepper_widget import show_stepper

    widget = show_stepper(tmp_path / trace)
    assert widget.stepper.history and widget.stepper.state is not None
