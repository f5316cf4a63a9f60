"""The box student code runs in: each test starts a real boxed process that tries one attack.

The boxed process is a fresh Python (``-c``) that enters the box first and
then runs the attack; it prints its Protections and the attack's outcome as
JSON lines. A test is skipped only when enter_box reports the protection it
checks as missing on this machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

import labkit
from labkit.worker.box import (
    BoxError,
    Limits,
    Protections,
    choose_box_uid,
    kill_box,
    prepare_folder,
    python_readable_paths,
)

LABKIT_PACKAGE = Path(labkit.__file__).resolve().parent
REPOSITORY = LABKIT_PACKAGE.parent
WORKER_LIMITS = Limits(cpu_seconds=10, memory_bytes=512 * 2**20)
KERNEL_LIMITS = Limits(cpu_seconds=10, memory_bytes=2 * 2**30, processes=32, file_bytes=2**20, open_files=256)

# Runs in the boxed process before the attack: enter the box from the request
# in argv[1], print the Protections; the attack then calls report(outcome).
BOXED_PRELUDE = """
import errno, json, os, sys
from labkit.worker.box import BoxSpec, Limits, enter_box

def attempt(action):
    '''"ok", or what stopped action(): an errno name or an exception class name.'''
    try:
        action()
    except OSError as error:
        return errno.errorcode.get(error.errno, type(error).__name__)
    except Exception as error:
        return type(error).__name__
    return "ok"

def report(outcome):
    print(json.dumps(outcome), flush=True)

request = json.loads(sys.argv[1])
spec = BoxSpec(
    limits=Limits(**request["limits"]),
    readable=tuple(request["readable"]),
    writable=tuple(request["writable"]),
    tcp_bind_ports=tuple(request["tcp_bind_ports"]),
    network_namespace=request["network_namespace"],
)
print(json.dumps(enter_box(spec, request["uid"]).to_dict()), flush=True)
"""


@dataclass
class Boxed:
    """What a boxed process reported and how it ended."""

    protections: Protections
    outcome: Any
    returncode: int
    stderr: str

    def require(self, protection: str) -> None:
        """Skip the test when ``protection`` is missing on this machine."""
        for entry in self.protections.missing:
            if entry.startswith(protection):
                pytest.skip(f"not available here: {entry}")


@dataclass
class Box:
    """A box's folders and user, prepared the way the judge prepares them."""

    work: Path  # the student's folder, readable
    uid: int | None

    def start(self, attack: str, *, limits: Limits = WORKER_LIMITS, readable: tuple[str, ...] = (),
              writable: tuple[str, ...] = (), tcp_bind_ports: tuple[int, ...] = (),
              network_namespace: bool = True) -> subprocess.Popen[str]:
        """Start ``attack`` in a boxed process that may read Python, labkit and the working folder."""
        request = {
            "limits": dataclasses.asdict(limits),
            "readable": [*python_readable_paths(), str(self.work), *readable],
            "writable": list(writable),
            "tcp_bind_ports": list(tcp_bind_ports),
            "network_namespace": network_namespace,
            "uid": self.uid,
        }
        return subprocess.Popen(
            [sys.executable, "-c", BOXED_PRELUDE + attack, json.dumps(request)],
            cwd=self.work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )

    def run(self, attack: str, **spec: Any) -> Boxed:
        """Run ``attack`` in a boxed process to its end and collect what it reported."""
        process = self.start(attack, **spec)
        try:
            stdout, stderr = process.communicate(timeout=30)
        finally:
            kill_box(self.uid, process.pid)
        lines = stdout.splitlines()
        assert lines, f"the boxed process printed nothing (exit {process.returncode}):\n{stderr}"
        outcome = json.loads(lines[1]) if len(lines) > 1 else None
        return Boxed(Protections.from_dict(json.loads(lines[0])), outcome, process.returncode, stderr)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    """A working folder with a student file in it, and a box user when running as root."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "student.py").write_text("VALUE = 1\n")
    os.chmod(work, 0o755)
    uid = choose_box_uid()
    yield Box(work=work, uid=uid)
    kill_box(uid)


def writable_folder(tmp_path: Path, box: Box) -> Path:
    folder = tmp_path / "scratch"
    prepare_folder(str(folder), box.uid)
    return folder


# -- Files -----------------------------------------------------------------------


def test_files_outside_the_allow_list_cannot_be_read(box: Box, tmp_path: Path) -> None:
    hidden = tmp_path / "hidden" / "test_hidden.py"
    hidden.parent.mkdir()
    hidden.write_text("SECRET = 42\n")
    boxed = box.run(f"""
report({{
    "hidden test": attempt(lambda: open({str(hidden)!r}).read()),
    "repository README": attempt(lambda: open({str(REPOSITORY / "README.md")!r}).read()),
    "student file": attempt(lambda: open("student.py").read()),
}})
""")
    boxed.require("filesystem allow-list")
    assert boxed.outcome == {"hidden test": "EACCES", "repository README": "EACCES", "student file": "ok"}


def test_forbidden_folders_cannot_be_listed(box: Box, tmp_path: Path) -> None:
    (tmp_path / "solutions").mkdir()
    boxed = box.run(f"""
report({{
    "repository": attempt(lambda: os.listdir({str(REPOSITORY)!r})),
    "solutions": attempt(lambda: os.listdir({str(tmp_path / "solutions")!r})),
    "root": attempt(lambda: os.listdir("/")),
    "working folder": attempt(lambda: os.listdir(".")),
}})
""")
    boxed.require("filesystem allow-list")
    assert boxed.outcome == {"repository": "EACCES", "solutions": "EACCES", "root": "EACCES", "working folder": "ok"}


def test_files_can_be_written_only_in_writable_folders(box: Box, tmp_path: Path) -> None:
    scratch = writable_folder(tmp_path, box)
    boxed = box.run(f"""
import socket
unix_socket = socket.socket(socket.AF_UNIX)
report({{
    "new file in the working folder": attempt(lambda: open("notes.txt", "w").close()),
    "student file overwritten": attempt(lambda: open("student.py", "w").close()),
    "student file removed": attempt(lambda: os.remove("student.py")),
    "new file in /tmp": attempt(lambda: open("/tmp/labkit-box-escape", "w").close()),
    "file in the repository": attempt(lambda: open({str(REPOSITORY / "box-escape.txt")!r}, "w").close()),
    "new file in the writable folder": attempt(lambda: open({str(scratch / "notes.txt")!r}, "w").close()),
    "unix socket in the writable folder": attempt(lambda: unix_socket.bind({str(scratch / "kernel.sock")!r})),
}})
""", writable=(str(scratch),))
    boxed.require("filesystem allow-list")
    assert boxed.outcome == {
        "new file in the working folder": "EACCES",
        "student file overwritten": "EACCES",
        "student file removed": "EACCES",
        "new file in /tmp": "EACCES",
        "file in the repository": "EACCES",
        "new file in the writable folder": "ok",
        "unix socket in the writable folder": "ok",
    }
    assert (scratch / "notes.txt").exists() and (box.work / "student.py").read_text() == "VALUE = 1\n"


def test_a_kept_read_capability_cannot_open_forbidden_files_by_handle(box: Box) -> None:
    """A box user that reads past folder permissions still cannot escape the allow-list with open_by_handle_at."""
    boxed = box.run(f"""
import ctypes
class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]
libc = ctypes.CDLL(None, use_errno=True)
handle, mount_id = FileHandle(handle_bytes=128), ctypes.c_int()
readme = {str(REPOSITORY / "README.md").encode()!r}
found = libc.name_to_handle_at(-100, readme, ctypes.byref(handle), ctypes.byref(mount_id), 0)  # -100: AT_FDCWD
assert found == 0, os.strerror(ctypes.get_errno())
same_filesystem = os.open({str(LABKIT_PACKAGE)!r}, os.O_RDONLY)
fd = libc.open_by_handle_at(same_filesystem, ctypes.byref(handle), os.O_RDONLY)
report("ok" if fd >= 0 else errno.errorcode[ctypes.get_errno()])
""")
    boxed.require("filesystem allow-list")
    if not any("reads past folder permissions" in entry for entry in boxed.protections.in_force):
        pytest.skip("the box user keeps no read capability here (every allowed path is open to others)")
    assert boxed.outcome == "EACCES"


def test_python_and_labkit_work_in_the_box(box: Box) -> None:
    boxed = box.run("""
import labkit, json, hashlib, dataclasses, enum
from student import VALUE
report({"sha256": hashlib.sha256(b"box").hexdigest()[:8], "value": VALUE, "json": json.dumps([1])})
""")
    expected_sha256 = hashlib.sha256(b"box").hexdigest()[:8]
    assert boxed.outcome == {"sha256": expected_sha256, "value": 1, "json": "[1]"}, boxed.stderr


def test_a_fresh_interpreter_started_in_the_box_works(box: Box) -> None:
    """execve keeps the box (no new process), and the interpreter can start again from inside it."""
    boxed = box.run("""
code = "import labkit, json, hashlib, dataclasses, enum, sys; print(json.dumps(sys.prefix))"
os.execv(sys.executable, [sys.executable, "-c", code])
""")
    assert boxed.returncode == 0, boxed.stderr
    assert boxed.outcome == sys.prefix


def test_paths_that_do_not_exist_are_skipped(box: Box) -> None:
    boxed = box.run(
        "import labkit; report(attempt(lambda: open('student.py').read()))",
        readable=("/nonexistent/labkit-box",), writable=("/nonexistent/labkit-box-scratch",),
    )
    assert boxed.returncode == 0, boxed.stderr
    assert boxed.outcome == "ok"


def test_python_readable_paths_refuse_a_folder_holding_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository checked out inside a site-packages folder would put hidden tests in reach."""
    site_packages = tmp_path / "site-packages"
    package = site_packages / "labkit-repository" / "labkit"
    package.mkdir(parents=True)
    monkeypatch.setattr(labkit, "__file__", str(package / "__init__.py"))
    monkeypatch.setattr(sys, "path", [*sys.path, str(site_packages)])
    with pytest.raises(BoxError, match="holds the labkit repository"):
        python_readable_paths()


def test_python_readable_paths_leave_out_the_repository() -> None:
    paths = python_readable_paths()
    assert str(LABKIT_PACKAGE) in paths
    assert str(REPOSITORY) not in paths
    assert not any(Path(path) in (REPOSITORY / "grader_tests", REPOSITORY / "solutions") for path in paths)
    assert all(os.path.exists(path) for path in paths)


# -- Network ---------------------------------------------------------------------


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_tcp_connection_to_the_judge(box: Box) -> None:
    with socket.create_server(("127.0.0.1", 0)) as judge:
        port = judge.getsockname()[1]
        boxed = box.run(f"""
import socket
report(attempt(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)))
""", network_namespace=False)
        judge.settimeout(0)
        with pytest.raises(BlockingIOError):
            judge.accept()
    boxed.require("no TCP connections")
    assert boxed.outcome == "EACCES"


def test_only_the_allowed_tcp_port_can_be_bound(box: Box) -> None:
    allowed, other = free_tcp_port(), free_tcp_port()
    boxed = box.run(f"""
import socket
def listen_on(port):
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen()
report({{"allowed": attempt(lambda: listen_on({allowed})), "other": attempt(lambda: listen_on({other}))}})
""", tcp_bind_ports=(allowed,), network_namespace=False)
    boxed.require("TCP bind only")
    assert boxed.outcome == {"allowed": "ok", "other": "EACCES"}


def test_the_network_namespace_hides_the_judge(box: Box) -> None:
    """UDP, which Landlock does not cover, cannot reach the judge's loopback either."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as judge:
        judge.bind(("127.0.0.1", 0))
        port = judge.getsockname()[1]
        boxed = box.run(f"""
import socket
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
report({{
    "interfaces": [name for _, name in socket.if_nameindex()],
    "udp to the judge": attempt(lambda: sender.sendto(b"hello", ("127.0.0.1", {port}))),
}})
""")
        judge.settimeout(0)
        with pytest.raises(BlockingIOError):
            judge.recvfrom(100)
    boxed.require("network namespace")
    assert boxed.outcome == {"interfaces": ["lo"], "udp to the judge": "ENETUNREACH"}


def test_no_abstract_unix_socket_of_the_judge_is_reachable(box: Box) -> None:
    """Abstract unix sockets have no file for Landlock to guard; its scope keeps the box from the judge's."""
    name = f"\0labkit-judge-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as judge:
        judge.bind(name)
        judge.listen()
        boxed = box.run(f"""
import socket
report(attempt(lambda: socket.socket(socket.AF_UNIX).connect({name!r})))
""", network_namespace=False)
    boxed.require("no signals or abstract unix sockets")
    assert boxed.outcome == "EPERM"


# -- Processes and resources ---------------------------------------------------------


def test_one_process_means_no_fork_and_no_thread(box: Box) -> None:
    boxed = box.run("""
import threading
report({"fork": attempt(os.fork), "thread": attempt(lambda: threading.Thread(target=print).start())})
""")
    boxed.require("process limit")
    assert boxed.outcome == {"fork": "EAGAIN", "thread": "RuntimeError"}


def test_a_kernel_box_starts_threads(box: Box) -> None:
    boxed = box.run("""
import threading
results = []
workers = [threading.Thread(target=results.append, args=(n,)) for n in range(4)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
report(sorted(results))
""", limits=KERNEL_LIMITS, network_namespace=False)
    assert boxed.outcome == [0, 1, 2, 3], boxed.stderr


def test_a_memory_bomb_gets_memory_error(box: Box) -> None:
    boxed = box.run("""
def bomb():
    hoard = []
    while True:
        hoard.append(bytearray(64 * 2**20))
report(attempt(bomb))
""")
    boxed.require("memory limit")
    assert boxed.outcome == "MemoryError"


def test_an_endless_loop_is_stopped_by_the_cpu_limit(box: Box) -> None:
    started = time.monotonic()
    boxed = box.run("while True: pass", limits=Limits(cpu_seconds=1, memory_bytes=512 * 2**20))
    elapsed = time.monotonic() - started
    assert boxed.returncode in (-signal.SIGXCPU, -signal.SIGKILL), boxed.stderr
    assert elapsed < 6


def test_no_file_may_grow_with_a_zero_file_size_limit(box: Box, tmp_path: Path) -> None:
    scratch = writable_folder(tmp_path, box)
    target = str(scratch / "output.txt")
    boxed = box.run(f"""
import signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
report({{
    "create": attempt(lambda: open({target!r}, "w").close()),
    "write": attempt(lambda: os.write(os.open({target!r}, os.O_WRONLY), b"x")),
}})
""", writable=(str(scratch),))
    assert boxed.outcome == {"create": "ok", "write": "EFBIG"}


# -- Other processes -------------------------------------------------------------------


SIGNAL_AND_TRACE_ATTACK = """
import ctypes, signal
libc = ctypes.CDLL(None, use_errno=True)
def trace(pid):
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
report({{
    "kill the judge stand-in": attempt(lambda: os.kill({stand_in}, signal.SIGKILL)),
    "signal the parent": attempt(lambda: os.kill(os.getppid(), 0)),
    "trace the judge stand-in": attempt(lambda: trace({stand_in})),
    "trace the parent": attempt(lambda: trace(os.getppid())),
}})
"""


def signal_and_trace_outside(box: Box) -> tuple[Boxed, bool]:
    """Let the box try to kill and trace a process of the judge's user, and its parent.

    Returns what the box reported and whether the judge stand-in survived.
    """
    judge_stand_in = subprocess.Popen(["sleep", "60"])
    try:
        boxed = box.run(SIGNAL_AND_TRACE_ATTACK.format(stand_in=judge_stand_in.pid))
        return boxed, judge_stand_in.poll() is None
    finally:
        judge_stand_in.kill()
        judge_stand_in.wait()


ALL_REFUSED = {
    "kill the judge stand-in": "EPERM",
    "signal the parent": "EPERM",
    "trace the judge stand-in": "EPERM",
    "trace the parent": "EPERM",
}


def test_the_box_cannot_signal_or_trace_outside_processes(box: Box) -> None:
    boxed, stand_in_survived = signal_and_trace_outside(box)
    if box.uid is None:
        boxed.require("no signals")
    assert stand_in_survived and boxed.outcome == ALL_REFUSED


def test_landlock_alone_keeps_signals_and_ptrace_inside(box: Box) -> None:
    """The laptop case: the box runs as the judge's own user, so only Landlock's scope stands in the way."""
    boxed, stand_in_survived = signal_and_trace_outside(Box(work=box.work, uid=None))
    boxed.require("no signals")
    assert stand_in_survived and boxed.outcome == ALL_REFUSED


def live_processes_of(uid: int) -> list[int]:
    pids = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].startswith("Z"):
            pids.append(int(name))
    return pids


def test_kill_box_leaves_no_process_of_the_box_user(box: Box) -> None:
    if box.uid is None:
        pytest.skip("separate box user: needs root")
    process = box.start("""
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()  # out of the box's process group and session
    ids = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "session": os.getsid(0)}
    print(json.dumps(ids), flush=True)
    while True:
        time.sleep(1)
while True:
    time.sleep(1)
""", limits=KERNEL_LIMITS)
    try:
        protections = Protections.from_dict(json.loads(process.stdout.readline()))
        grandchild = json.loads(process.stdout.readline())
        assert protections.uid == box.uid
        assert grandchild == {"uid": box.uid, "gid": box.uid, "groups": [], "session": grandchild["session"]}
        assert grandchild["session"] != process.pid
        assert len(live_processes_of(box.uid)) == 2
    finally:
        kill_box(box.uid, process.pid)
    assert process.wait(timeout=5) == -signal.SIGKILL
    assert live_processes_of(box.uid) == []


def test_kill_box_without_a_box_user_kills_the_session() -> None:
    """The laptop case: the box runs as the user, so what it left is found by its session."""
    process = subprocess.Popen(
        [sys.executable, "-c", """
import os, time
if os.fork() == 0:
    os.setpgid(0, 0)  # its own process group, still in the session
    print(os.getpid(), flush=True)
time.sleep(60)
"""],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    grandchild = int(process.stdout.readline())
    kill_box(None, process.pid)
    assert process.wait(timeout=5) == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while Path(f"/proc/{grandchild}").exists() and "State:\tZ" not in Path(f"/proc/{grandchild}/status").read_text():
        assert time.monotonic() < deadline, "the grandchild in another process group survived"
        time.sleep(0.01)


# -- What the box says about itself -----------------------------------------------------------


def test_protections_describe_what_was_applied(box: Box) -> None:
    worker = box.run("")
    kernel = box.run("", limits=KERNEL_LIMITS, tcp_bind_ports=(free_tcp_port(),), network_namespace=False)
    for boxed in (worker, kernel):
        line = boxed.protections.describe()
        assert line.startswith("sealed: " + boxed.protections.in_force[0])
        assert all(name in line for name in (*boxed.protections.in_force, *boxed.protections.missing))
        assert Protections.from_dict(json.loads(json.dumps(boxed.protections.to_dict()))) == boxed.protections
    assert worker.protections.in_force[0] == "CPU, memory, process, file-size and open-file limits"
    assert ("network namespace" in worker.protections.in_force) != any(
        entry.startswith("network namespace") for entry in worker.protections.missing
    )
    assert not any(entry.startswith("network namespace") for entry in kernel.protections.missing)
    if box.uid is not None:
        assert any(entry.startswith(f"unprivileged user {box.uid}") for entry in worker.protections.in_force)


def test_a_box_uid_is_unused_and_differs_per_box() -> None:
    first, second = choose_box_uid(), choose_box_uid()
    if first is None:
        pytest.skip("separate box user: needs root")
    assert first != second and min(first, second) >= 200_000
    assert not live_processes_of(first) and not live_processes_of(second)


def test_prepare_folder_hands_the_folder_to_the_box_user(tmp_path: Path) -> None:
    uid = choose_box_uid()
    folder = tmp_path / "box"
    folder.mkdir()
    (folder / "student.py").write_text("")
    prepare_folder(str(folder), uid)
    assert folder.stat().st_mode & 0o777 == 0o700
    if uid is not None:
        assert (folder.stat().st_uid, (folder / "student.py").stat().st_uid) == (uid, uid)


def test_enter_box_refuses_a_second_thread() -> None:
    """Credentials and Landlock would hold for the calling thread only."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the thread check reads /proc/self/task, which is Linux-only")
    boxed = subprocess.run(
        [sys.executable, "-c", """
import threading, time
from labkit.worker.box import BoxError, BoxSpec, Limits, enter_box
threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
try:
    enter_box(BoxSpec(Limits(cpu_seconds=10, memory_bytes=2**30, processes=8), readable=()))
except BoxError as error:
    print(error)
"""],
        capture_output=True, text=True, timeout=30,
    )
    assert "before the process starts threads" in boxed.stdout, boxed.stderr
