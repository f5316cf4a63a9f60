"""Broken submissions: each fails with a clear explanation and nothing else breaks."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

from conftest import PING_NUMBERS, PING_POINTS, PING_SOLUTION, RETRY_BODY, verdicts_failing
from test_cli import failure_block, labkit

from labkit.testing import run_tests
from labkit.testing.runner import OUTPUT_LIMIT

SERVER_REPLY = "        self.send(PongReply(self.app.execute(message.ping)), sender)"


N = len(PING_NUMBERS)


def verdicts(stdout: str) -> dict[str, bool]:
    return {line[5:8]: " ... PASS (" in line for line in stdout.splitlines() if line.startswith("TEST ")}


def test_raising_handler_fails_its_tests_with_node_event_and_traceback(make_variant: Callable[..., Path]) -> None:
    path = make_variant((SERVER_REPLY, "        if message.ping.value == 'world':\n            1 / 0\n" + SERVER_REPLY))
    done = labkit("test", "ping", "--solution", str(path))
    assert verdicts(done.stdout) == verdicts_failing("1.2")
    block = failure_block(done.stdout, "1.2")
    assert "server raised an exception while handling PingRequest from client1 (PingRequest(ping=Ping(value='world')))" in block
    assert "Traceback (your code):" in block and f'File "{path}", line' in block and "1 / 0" in block
    assert "ZeroDivisionError: division by zero" in block
    assert "labkit/sim" not in block  # only the student's frames


def test_missing_handler_names_the_method_to_write(make_variant: Callable[..., Path]) -> None:
    path = make_variant(("def handle_PongReply", "def handle_pong_reply"))
    done = labkit("test", "ping", "-n", "1.2", "--solution", str(path))
    block = failure_block(done.stdout, "1.2")
    assert "client1 raised an exception while handling PongReply from server" in block
    assert "PingClient received a PongReply message but has no method handle_PongReply(self, message, sender)" in block


def test_unfinished_stub(make_variant: Callable[..., Path]) -> None:
    path = make_variant((SERVER_REPLY, "        raise NotImplementedError"))
    done = labkit("test", "ping", "-n", "1.2", "--solution", str(path))
    assert "server hit unfinished code while handling PingRequest from client1" in done.stdout
    assert "not implemented: handle_PingRequest" in done.stdout
    path = make_variant(("        self.app = PingApplication()", "        raise NotImplementedError('PingServer.__init__')"), name="stub2.py")
    report = run_tests("ping", numbers=["1.2"], solution=path, out=io.StringIO())
    assert report.results[0].failure == "not implemented: PingServer.__init__"


def test_exit_in_a_handler_fails_only_that_test(make_variant: Callable[..., Path]) -> None:
    path = make_variant((SERVER_REPLY, "        if message.ping.value == 'world':\n            raise SystemExit(3)\n" + SERVER_REPLY))
    done = labkit("test", "ping", "--solution", str(path))
    assert done.returncode == 1 and f"Tests passed: {N - 1}/{N}" in done.stdout
    assert "called exit()" in failure_block(done.stdout, "1.2")


def test_solution_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    done = labkit("test", "ping", "--solution", str(missing), "--json", str(tmp_path / "r.json"))
    assert done.returncode == 1
    assert done.stdout.count(f"there is no file {missing}; check the path given with --solution") == 1
    assert verdicts(done.stdout) == verdicts_failing(*PING_NUMBERS) and f"Tests passed: 0/{N}" in done.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert "there is no file" in data["load_error"] and not any(r["passed"] for r in data["results"])


def test_syntax_error_names_the_line(make_variant: Callable[..., Path]) -> None:
    path = make_variant(("    def has_result(self) -> bool:", "    def has_result(self) -> bool"))
    line = path.read_text().splitlines().index("    def has_result(self) -> bool") + 1
    done = labkit("test", "ping", "--solution", str(path))
    assert done.returncode == 1
    assert done.stdout.count(f"ping_server.py has a syntax error on line {line}") == 1
    assert f"Tests passed: 0/{N}" in done.stdout


def test_import_error_is_shown_once_and_every_test_fails(make_variant: Callable[..., Path], tmp_path: Path) -> None:
    path = make_variant(("from labkit import", "raise ValueError('config missing')\nfrom labkit import"))
    json_path = tmp_path / "r.json"
    done = labkit("test", "ping", "--solution", str(path), "--json", str(json_path))
    assert done.returncode == 1 and done.stderr == ""
    assert done.stdout.count("ValueError: config missing") == 1
    assert done.stdout.count("importing ping_server.py failed") == 1
    assert done.stdout.count("could not load your solution (see the error above)") == N
    assert f"Points: 0/{PING_POINTS:g} (0%)" in done.stdout
    data = json.loads(json_path.read_text())
    assert "ValueError: config missing" in data["load_error"] and data["passed"] == 0


def test_flood_of_output_is_captured_and_truncated(make_variant: Callable[..., Path], tmp_path: Path) -> None:
    path = make_variant((SERVER_REPLY, "        print('x' * 100_000)\n" + SERVER_REPLY))
    json_path = tmp_path / "r.json"
    done = labkit("test", "ping", "-n", "1.2,1.3", "--solution", str(path), "--json", str(json_path))
    assert "Tests passed: 1/2" in done.stdout
    assert len(done.stdout) < 10_000
    small, flood = json.loads(json_path.read_text())["results"]
    # Test 1.2 sends 6 pings (600,000 characters printed): kept short, still graded.
    assert small["passed"] and small["output_truncated"] and len(small["output"]) == OUTPUT_LIMIT
    # Test 1.3 sends 100 (10 MB printed): a flood costs that test, and says why.
    assert not flood["passed"] and "characters during this test (at most 1,000,000 allowed)" in flood["failure"]


def test_failing_test_shows_what_was_printed_but_cut(make_variant: Callable[..., Path]) -> None:
    path = make_variant((RETRY_BODY, "        print('retry', timer)\n" * 3 + "        print('y' * 50_000)"))
    done = labkit("test", "ping", "-n", "1.4", "--solution", str(path))
    block = failure_block(done.stdout, "1.4")
    assert "Printed during the test:" in block and "... (output cut)" in block
    assert len(done.stdout) < OUTPUT_LIMIT + 5_000


def test_writes_to_stderr_are_captured_not_leaked(make_variant: Callable[..., Path], tmp_path: Path) -> None:
    path = make_variant(("from labkit import", "import sys\nfrom labkit import"), (SERVER_REPLY, "        print('debug', message, file=sys.stderr)\n" + SERVER_REPLY))
    json_path = tmp_path / "r.json"
    done = labkit("test", "ping", "-n", "1.2", "--solution", str(path), "--json", str(json_path))
    assert done.returncode == 0 and done.stderr == "" and "debug" not in done.stdout
    (result,) = json.loads(json_path.read_text())["results"]
    assert "debug PingRequest" in result["output"]


def test_reference_solution_is_untouched_by_all_this() -> None:
    report = run_tests("ping", solution=PING_SOLUTION, out=io.StringIO())
    assert report.all_passed
