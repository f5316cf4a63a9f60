"""Wall-clock deadlines that can stop runaway student code.

A handler stuck in ``while True`` never returns to the engine, so checking the
clock between events is not enough. In the main thread a deadline arms
``SIGALRM`` and raises :class:`DeadlineExceeded` inside the running code.
Deadlines nest: the earliest active one is armed. Elsewhere (other threads,
platforms without ``SIGALRM``) callers fall back to :func:`check_deadlines`
between events.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

__all__ = ["DeadlineExceeded", "deadline", "check_deadlines"]


class DeadlineExceeded(BaseException):
    """Wall-clock time ran out. A BaseException, so ``except Exception`` in a handler cannot swallow it."""

    def __init__(self, what: str, seconds: float) -> None:
        self.what = what
        self.seconds = seconds
        super().__init__(f"{what} took more than {seconds:g} s of real time")


_stack: list["deadline"] = []
_previous_handler: Any = None


def _can_signal() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    now = time.monotonic()
    for d in _stack:
        if d.expires <= now + 0.001 and not d.fired:
            d.fired = True
            raise DeadlineExceeded(d.what, d.seconds)
    _arm()


def _arm() -> None:
    pending = [d.expires for d in _stack if not d.fired]
    if not pending:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    signal.setitimer(signal.ITIMER_REAL, max(min(pending) - time.monotonic(), 0.001))


class deadline:
    """``with deadline(30, "test 2.3"):`` raises DeadlineExceeded after 30 s of real time.

    ``seconds=None`` means no limit (the block still counts as a level, so
    nesting stays simple)."""

    def __init__(self, seconds: float | None, what: str) -> None:
        self.seconds = seconds if seconds is not None else float("inf")
        self.what = what
        self.expires = float("inf")
        self.fired = False
        self._signals = False

    def __enter__(self) -> "deadline":
        global _previous_handler
        self.expires = time.monotonic() + self.seconds
        self._signals = _can_signal()
        if self._signals and not any(d._signals for d in _stack):
            _previous_handler = signal.signal(signal.SIGALRM, _on_alarm)
        _stack.append(self)
        if self._signals and self.seconds != float("inf"):
            _arm()
        return self

    def __exit__(self, *exc: object) -> None:
        _stack.remove(self)
        if self._signals:
            if any(d._signals for d in _stack):
                _arm()
            else:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, _previous_handler or signal.SIG_DFL)

    def expired(self) -> bool:
        return time.monotonic() >= self.expires


def check_deadlines() -> None:
    """Raise DeadlineExceeded if any active deadline has passed (the polling fallback)."""
    now = time.monotonic()
    for d in _stack:
        if now >= d.expires and not d.fired:
            d.fired = True
            raise DeadlineExceeded(d.what, d.seconds)
