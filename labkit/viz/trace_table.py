"""A counterexample as a table: one row per event with the fields it changed.

The text form is exactly :meth:`Trace.render`; in a notebook the table shows
as HTML with the violated predicate (or the handler's exception) at the end.
"""

from __future__ import annotations

import html
from typing import Any

from labkit.search.trace import Trace, node_changes

__all__ = ["CounterexampleTable", "trace_table"]

_COLUMNS = ["step", "depth", "kind", "node", "sender", "event", "changes"]


def trace_table(trace: Trace) -> Any:
    """The trace as a pandas DataFrame.

    Columns: ``step`` (1, 2, ...), ``depth`` (the state's depth in its search
    after the step), ``kind`` (message, timer, drop or undrop), ``node``,
    ``sender``, ``event`` (as Trace.render writes it) and ``changes`` (a tuple
    of ``field: before -> after`` lines for the node that handled the event).
    """
    import pandas as pd

    states = trace.states()
    rows = []
    for n, event in enumerate(trace.events, 1):
        before, after = states[n - 1], states[n]
        changes: tuple[str, ...] = ()
        if event.node is not None and event.kind in ("message", "timer"):
            changes = tuple(node_changes(before.node(event.node), after.node(event.node)))
        rows.append({
            "step": n,
            "depth": after.depth,
            "kind": event.kind,
            "node": event.node.name if event.node is not None else None,
            "sender": event.sender.name if event.sender is not None else None,
            "event": str(event),
            "changes": changes,
        })
    return pd.DataFrame.from_records(rows, columns=_COLUMNS)


class CounterexampleTable:
    """A trace's table plus why it matters; shows itself as HTML in a notebook."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.frame = trace_table(trace)

    def ending(self) -> list[str]:
        """The lines after the events: the handler's exception and the violated predicate."""
        lines: list[str] = []
        failure = self.trace.failure
        if failure is not None:
            lines.append(f"{failure.node} raised {failure.error_type}: {failure.message}")
            if failure.traceback:
                lines.extend("     " + line for line in failure.traceback.rstrip().splitlines())
        if self.trace.violation is not None:
            lines.append(self.trace.violation.explain())
        return lines

    def to_text(self) -> str:
        """The same text as ``Trace.render()``."""
        lines: list[str] = []
        for row in self.frame.itertuples(index=False):
            lines.append(f"{row.step}. {row.event}")
            lines.extend(f"     {row.node}: {change}" for change in row.changes)
        return "\n".join(lines + self.ending())

    def to_csv(self, path: Any = None) -> str | None:
        """The table as CSV (changes joined by newlines within their cell)."""
        flat = self.frame.assign(changes=self.frame["changes"].map("\n".join))
        return flat.to_csv(path, index=False)

    def to_html(self) -> str:
        """A standalone HTML fragment: the table, changed fields one per line, then the ending."""
        head = "".join(f"<th>{c}</th>" for c in ("step", "node", "event", "changes"))
        body = []
        for row in self.frame.itertuples(index=False):
            changes = "<br>".join(html.escape(c) for c in row.changes)
            kind = "lk-fault" if row.kind in ("drop", "undrop") else ""
            body.append(
                f'<tr class="{kind}"><td>{row.step}</td><td>{html.escape(row.node or "")}</td>'
                f"<td><code>{html.escape(row.event)}</code></td><td><code>{changes}</code></td></tr>"
            )
        ending = "".join(f"<div>{html.escape(line)}</div>" for line in self.ending())
        verdict = (f'<div class="lk-verdict" style="margin-top:6px;padding:6px;border-left:4px solid #d62728;'
                   f'background:#fdecea;white-space:pre-wrap"><b>{ending}</b></div>') if ending else ""
        return (
            '<div class="lk-counterexample">'
            f'<table style="border-collapse:collapse;text-align:left"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{verdict}</div>'
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.to_text()
