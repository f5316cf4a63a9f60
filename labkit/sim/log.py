"""The event log of a simulated run: everything that happened, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from labkit.node import Address
from labkit.values import canonical_repr
from labkit.wire import type_name

__all__ = ["LogEvent", "EventLog", "SEND", "DELIVER", "DROP", "DUPLICATE", "TIMER_SET", "TIMER_FIRE",
           "TIMER_OFF", "SETTING", "INVOKE", "RESPONSE", "ERROR", "LOG_FORMAT"]

SEND = "send"
DELIVER = "deliver"
DROP = "drop"
DUPLICATE = "duplicate"
TIMER_SET = "timer_set"
TIMER_FIRE = "timer_fire"
TIMER_OFF = "timer_discarded"
SETTING = "setting"
INVOKE = "invoke"
RESPONSE = "response"
ERROR = "error"

LOG_FORMAT = "labkit-run-log"
LOG_VERSION = 1


class LogEvent(NamedTuple):
    """One logged event.

    ``node`` is where it happened (the receiver of a delivery, the sender of a
    send, the owner of a timer); ``peer`` is the other end of a message, if
    any; ``item`` is the message, timer, command or result; ``detail`` says why
    (for drops: ``partition``, ``loss``, ``unknown node``) or gives extra data
    (the message id linking a send to its deliveries, the timer's length).
    """

    time: int
    kind: str
    node: Address | None
    peer: Address | None
    item: Any
    detail: Any


class EventLog:
    """Append-only list of events with views as records, text and a DataFrame."""

    def __init__(self) -> None:
        self._events: list[tuple] = []

    def append(self, time: int, kind: str, node: Address | None, peer: Address | None, item: Any, detail: Any) -> None:
        self._events.append((time, kind, node, peer, item, detail))

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[LogEvent]:
        return (LogEvent(*e) for e in self._events)

    def __getitem__(self, index: int) -> LogEvent:
        return LogEvent(*self._events[index])

    def of_kind(self, *kinds: str) -> list[LogEvent]:
        return [LogEvent(*e) for e in self._events if e[1] in kinds]

    # ---- renderings ---------------------------------------------------------

    def to_records(self) -> list[dict[str, Any]]:
        """Plain dicts with printable fields, the same in every process."""
        return [
            {
                "time": t,
                "kind": kind,
                "node": node.name if node is not None else None,
                "peer": peer.name if peer is not None else None,
                "type": _type_name(item),
                "item": canonical_repr(item) if item is not None else None,
                "detail": detail if isinstance(detail, (int, str)) or detail is None else canonical_repr(detail),
            }
            for (t, kind, node, peer, item, detail) in self._events
        ]

    def to_text(self) -> str:
        """One line per event; byte-for-byte identical for the same seed and code."""
        lines = []
        for r in self.to_records():
            peer = f" {r['peer']}" if r["peer"] else ""
            item = f" {r['item']}" if r["item"] is not None else ""
            detail = f" [{r['detail']}]" if r["detail"] is not None else ""
            lines.append(f"{r['time']:>8} {r['kind']:<15} {r['node'] or '-'}{peer}{item}{detail}")
        return "\n".join(lines) + ("\n" if lines else "")

    def to_dataframe(self) -> Any:
        """The log as a pandas DataFrame (columns: time, kind, node, peer, type, item, detail)."""
        import pandas as pd

        return pd.DataFrame.from_records(
            self.to_records(), columns=["time", "kind", "node", "peer", "type", "item", "detail"]
        )

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write the log as JSON lines with a header (what ``labkit viz`` reads)."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"format": LOG_FORMAT, "version": LOG_VERSION, **(meta or {})}) + "\n")
            for record in self.to_records():
                f.write(json.dumps(record) + "\n")
        return path


def _type_name(item: Any) -> str | None:
    if item is None or isinstance(item, str):
        return None
    return type_name(item)
