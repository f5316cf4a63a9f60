"""One boxed worker process as the judge sees it: start, requests, limits, and why it died.

The judge never waits on a worker blindly. While a request is out it watches
the worker's CPU time (from ``/proc``): past the request's allowance the
worker is killed and the request fails with a message naming the limit.
A worker whose CPU time stops moving while it owes an answer is blocked
(sleeping, waiting for input); after a while it is killed too. A worker that
crashes, exits or is killed by the kernel (memory, CPU) is described by how
it ended. None of this depends on how busy the machine is, except the
blocked case, which a correct handler never reaches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from labkit.channel import Channel, ChannelClosed, ChannelError
from labkit.node import LabkitError
from labkit.wire import WireError, learn_schemas

__all__ = ["WorkerProcess", "WorkerFailure", "InfrastructureError", "Limits", "STARTUP_SECONDS"]

STARTUP_SECONDS = 120.0  # real time a worker may take to start and enter its box
BLOCKED_SECONDS = 30.0  # real time a worker may owe an answer while using no CPU at all
POLL_SECONDS = 0.2  # how often a slow answer is looked after
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class InfrastructureError(LabkitError):
    """The grading machinery failed (a worker could not start or enter its box): not the student's doing."""


class WorkerFailure(LabkitError):
    """A worker exceeded a limit, crashed, exited or sent something unreadable while running student code.

    ``kind`` is ``cpu``, ``blocked``, ``died``, ``memory`` or ``protocol``."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class Limits:
    """What one worker may use."""

    memory_bytes: int = 2 * 1024**3
    cpu_seconds: float = 1200.0  # the kernel's backstop over the worker's whole life
    handler_cpu_seconds: float = 5.0  # one request of one step
    step_cpu_slack: float = 0.02  # more per step in a batch of steps


class WorkerProcess:
    """A started worker: send requests, get replies, know its CPU time, stop it."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, limits: Limits, uid: int | None,
                 label: str) -> None:
        self.limits = limits
        self.uid = uid
        self.label = label
        self.stderr_tail = b""
        self.failed = False  # set once a request failed: the worker is not used again
        self._ended: tuple[int, float] | None = None  # (wait status, CPU seconds) once reaped
        read_to_worker, write_to_worker = os.pipe()
        read_from_worker, write_from_worker = os.pipe()
        argv = argv + ["--fds", f"{read_to_worker},{write_from_worker}"]
        try:
            self.process = subprocess.Popen(
                argv, cwd=cwd, env=env, pass_fds=(read_to_worker, write_from_worker),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            for fd in (read_to_worker, write_to_worker, read_from_worker, write_from_worker):
                os.close(fd)
            raise InfrastructureError(f"could not start a worker process: {error}") from None
        os.close(read_to_worker)
        os.close(write_from_worker)
        self.channel = Channel(read_from_worker, write_to_worker)
        self._stderr = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr.start()
        began = time.monotonic()

        def starting() -> None:
            if self.poll() is not None or time.monotonic() - began > STARTUP_SECONDS:
                raise ChannelClosed("the worker did not start")

        try:
            hello, _ = self.channel.receive(starting)
        except ChannelError:
            self.kill()
            raise InfrastructureError(f"a worker process did not start: {self._stderr_text() or 'no output'}") from None
        if not isinstance(hello, dict) or not hello.get("ready"):
            self.kill()
            why = hello.get("error") if isinstance(hello, dict) else hello
            raise InfrastructureError(f"a worker could not enter its box: {why}")
        self.pid = self.process.pid
        self.protections: dict[str, Any] = hello.get("protections") or {}
        self.cpu_at_start = self.cpu_seconds()

    # ---- requests ------------------------------------------------------------------------

    def request(self, ops: list[list[Any]], payloads: list[str], *, steps: int = 1,
                doing: Callable[[], str] = lambda: "handling a request") -> tuple[list[dict[str, Any]], list[str]]:
        """Send ``ops`` and wait for their replies, watching the worker's CPU time."""
        self.send_ops(ops, payloads)
        return self.receive_replies(len(ops), steps=steps, doing=doing)

    def send_ops(self, ops: list[list[Any]], payloads: list[str]) -> None:
        """Send a request without waiting (the answer is read by :meth:`receive_replies`)."""
        try:
            self.channel.send({"ops": ops}, payloads)
        except ChannelClosed:
            self.failed = True
            raise self._death("receiving a request") from None

    def receive_replies(self, count: int, *, steps: int = 1, doing: Callable[[], str] = lambda: "handling a request"
                        ) -> tuple[list[dict[str, Any]], list[str]]:
        """The replies to the request sent last (``count`` of them), watching the worker's CPU time."""
        allowed = self.limits.handler_cpu_seconds + self.limits.step_cpu_slack * max(0, steps - 1)
        start_cpu: float | None = None  # read only if the answer is slow: as if it had run all along
        last_cpu, last_move = 0.0, time.monotonic()

        def watch() -> None:
            nonlocal start_cpu, last_cpu, last_move
            if self.poll() is not None:
                raise ChannelClosed("ended")
            cpu = self.cpu_seconds()
            if start_cpu is None:
                start_cpu = last_cpu = cpu - POLL_SECONDS
            if cpu - start_cpu > allowed:
                self.kill()
                raise WorkerFailure("cpu", f"{doing()} used more than {allowed:g} s of CPU time and was stopped: "
                                           "look for an endless loop in that handler")
            now = time.monotonic()
            if cpu > last_cpu:
                last_cpu, last_move = cpu, now
            elif now - last_move > BLOCKED_SECONDS:
                self.kill()
                raise WorkerFailure("blocked", f"{doing()} stopped running without finishing (for {BLOCKED_SECONDS:g} s "
                                               "it used no CPU time): handlers must not sleep, wait for input or "
                                               "take locks")

        try:
            header, out = self.channel.receive(watch, POLL_SECONDS)
        except ChannelClosed:
            self.failed = True
            raise self._death(doing()) from None
        except ChannelError as error:
            self.failed = True
            self.kill()
            raise WorkerFailure("protocol", f"{doing()}: the worker sent something labkit cannot read ({error})") from None
        except WorkerFailure:
            self.failed = True
            raise
        replies = header.get("replies") if isinstance(header, dict) else None
        if not isinstance(replies, list) or len(replies) != count or not all(isinstance(r, dict) for r in replies):
            self.failed = True
            self.kill()
            raise WorkerFailure("protocol", f"{doing()}: the worker's answer does not match the request")
        try:
            learn_schemas(header.get("classes", {}))
        except WireError as error:
            self.failed = True
            self.kill()
            raise WorkerFailure("protocol", f"{doing()}: {error}") from None
        for reply in replies:
            if "refused" in reply:
                raise WorkerFailure("protocol", f"{doing()}: the worker could not do it: {reply['refused']}")
        return replies, out

    # ---- CPU, death and stopping ----------------------------------------------------------

    def cpu_seconds(self) -> float:
        """CPU time the worker has used so far (user and system)."""
        if self._ended is not None:
            return self._ended[1]
        try:
            with open(f"/proc/{self.process.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            self.wait(10)
            return self._ended[1] if self._ended is not None else 0.0

    def poll(self) -> int | None:
        """The exit code once the process has ended (its CPU time is kept then), else None."""
        if self._ended is None:
            try:
                pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            except ChildProcessError:
                self._ended = (0, 0.0)
                return self.process.returncode
            if pid == 0:
                return None
            self._ended = (status, usage.ru_utime + usage.ru_stime)
            self.process.returncode = os.waitstatus_to_exitcode(status)
        return self.process.returncode

    def wait(self, seconds: float) -> int | None:
        deadline = time.monotonic() + seconds
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.poll()

    def _death(self, doing: str) -> WorkerFailure:
        if self.wait(10) is None:
            self.kill()
        code = self.process.returncode
        tail = self._stderr_text()
        limit_gib = self.limits.memory_bytes / 1024**3
        if code is not None and code < 0:
            sig = -code
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and self.cpu_seconds() >= self.limits.cpu_seconds):
                return WorkerFailure("cpu", f"{doing}: the worker used its whole CPU time ({self.limits.cpu_seconds:g} s) "
                                            "and the system stopped it")
            if sig == signal.SIGSEGV:
                return WorkerFailure("died", f"{doing}: the worker crashed (segmentation fault); runaway recursion "
                                             "or a crashing extension module does this")
            if sig == signal.SIGKILL and "MemoryError" in tail:
                return WorkerFailure("memory", f"{doing}: the worker ran out of memory (limit {limit_gib:g} GiB)")
            return WorkerFailure("died", f"{doing}: the worker was ended by {name}" + (f":\n{tail}" if tail else ""))
        if tail and "MemoryError" in tail:
            return WorkerFailure("memory", f"{doing}: the worker ran out of memory (limit {limit_gib:g} GiB)")
        if tail and "Fatal Python error" in tail:
            return WorkerFailure("died", f"{doing}: the Python interpreter of the worker crashed:\n{tail}")
        return WorkerFailure("died", f"{doing}: the worker process exited (exit code {code}); handlers must not call "
                                     "exit(), os._exit() or end the process")

    def _drain_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)  # type: ignore[attr-defined]
            if not chunk:
                return
            self.stderr_tail = (self.stderr_tail + chunk)[-4096:]

    def _stderr_text(self) -> str:
        if self._stderr.is_alive():
            self._stderr.join(timeout=1)
        return self.stderr_tail.decode("utf-8", "replace").strip()[-2000:]

    @property
    def alive(self) -> bool:
        return self.poll() is None

    def stop(self) -> float:
        """End the worker (politely, then not) and return the CPU time it used."""
        if self.poll() is None:
            try:
                self.channel.send({"stop": True})
            except ChannelError:
                pass
            if self.wait(2) is None:
                self.kill()
        cpu = self.cpu_seconds()
        self.close()
        return cpu

    def close(self) -> None:
        """Give back the pipes to an ended (or killed) worker: a long run starts thousands of workers."""
        self.channel.close()
        if self.poll() is not None:
            self._stderr.join(timeout=1)
        stream = self.process.stderr
        if stream is not None and not self._stderr.is_alive():
            stream.close()

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
            self.wait(10)


def worker_argv(box: dict[str, Any], uid: int | None) -> list[str]:
    """The command line of a worker with this box."""
    argv = [sys.executable, "-m", "labkit.worker", "--box", json.dumps(box)]
    if uid is not None:
        argv += ["--uid", str(uid)]
    return argv
