"""Fault periods of a run, read from its ``setting`` events.

Every settings change is logged with a description (``partition {a, b} | {c}``,
``reconnect``, ``link a -> b off``, ``delivery rate 0.5``, ...). Replaying the
descriptions gives, at any time, the set of faults in force; a fault period
is a stretch of time in which that set does not change and is not empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from labkit.sim.log import SETTING

__all__ = ["FaultSpan", "fault_spans"]

_TOGGLE = re.compile(r"^(link .+|sender \S+|receiver \S+|node \S+|network|timers at \S+) (on|off)$")
_RATE = re.compile(r"^delivery rate ([0-9.eE+-]+)( .+)?$")
_DUPLICATION = re.compile(r"^duplication rate ([0-9.eE+-]+)$")


@dataclass(frozen=True)
class FaultSpan:
    """Faults in force from ``start`` to ``end`` (a description of each, in the order set)."""

    start: float
    end: float
    faults: tuple[str, ...]

    @property
    def label(self) -> str:
        return "; ".join(self.faults)


class _Faults:
    """The faults in force, updated one settings description at a time."""

    def __init__(self) -> None:
        self.connectivity: dict[str, str] = {}  # "partition" or a toggle's subject -> description
        self.timers: dict[str, str] = {}
        self.rates: dict[str, str] = {}
        self.duplication = ""

    def apply(self, text: str) -> None:
        if text.startswith("partition "):
            self.connectivity = {"partition": text}
        elif text == "reconnect":
            self.connectivity = {}
        elif text in ("timers on", "timers off"):
            self.timers = {"all": text} if text.endswith("off") else {}
        elif (m := _TOGGLE.match(text)) is not None:
            subject, state = m.groups()
            table = self.timers if subject.startswith("timers") else self.connectivity
            baseline_off = "all" in self.timers if table is self.timers else (
                "partition" in self.connectivity or "network" in self.connectivity)
            if state == "on" and not baseline_off and subject != "network":
                table.pop(subject, None)
            elif subject == "network" and state == "on":
                self.connectivity = {}
            else:
                table[subject] = text
        elif (m := _RATE.match(text)) is not None:
            rate, where = float(m.group(1)), (m.group(2) or "").strip()
            if not where:
                self.rates = {}
            if rate < 1.0:
                self.rates[where] = text
            else:
                self.rates.pop(where, None)
        elif (m := _DUPLICATION.match(text)) is not None:
            self.duplication = text if float(m.group(1)) > 0 else ""

    def current(self) -> tuple[str, ...]:
        parts = [*self.connectivity.values(), *self.timers.values(), *self.rates.values()]
        return tuple(parts + ([self.duplication] if self.duplication else []))


def fault_spans(records: Iterable[dict[str, Any]], end: float) -> list[FaultSpan]:
    """The fault periods of a run's records, the last one lasting until ``end``."""
    state = _Faults()
    spans: list[FaultSpan] = []
    since, active = 0.0, ()  # type: tuple[float, tuple[str, ...]]
    for r in records:
        if r["kind"] != SETTING or not isinstance(r["detail"], str):
            continue
        state.apply(r["detail"])
        now = state.current()
        if now == active:
            continue
        if active and r["time"] > since:
            spans.append(FaultSpan(since, r["time"], active))
        since, active = r["time"], now
    if active and end > since:
        spans.append(FaultSpan(since, end, active))
    return spans
