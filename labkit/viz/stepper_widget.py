"""The stepper in a notebook: one panel per node with its state, inbox and timers, each with a deliver button.

A thin ipywidgets layer over :class:`~labkit.viz.stepper.Stepper`; everything
is done with buttons (no keyboard shortcuts). With more than three nodes the
panels are compact, so five servers and a client fit across a laptop screen:
each shows the fields the last step changed (the rest behind "all fields").
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

import ipywidgets as w

from labkit.node import Address, Node
from labkit.search.settings import SearchSettings
from labkit.search.state import SearchState
from labkit.search.trace import Trace
from labkit.wire import Record
from labkit.values import brief, canonical_repr
from labkit.viz.stepper import Choice, Stepper, StepperError

__all__ = ["StepperWidget", "show_stepper"]

_CHANGED = "background:#fff3b0"
_MAX_ITEMS = 60
COMPACT_ABOVE = 3  # nodes: more than this and the panels show only what changed


def _value_html(value: Any, depth: int = 0) -> str:
    """A value as nested <details> (containers and objects) and plain text (everything else)."""
    if isinstance(value, (dict, list, tuple, set, frozenset)) and value and depth < 4:
        if isinstance(value, dict):
            items = [(canonical_repr(k), v) for k, v in value.items()]
        else:
            items = [(str(i), v) for i, v in enumerate(sorted(value, key=canonical_repr)
                                                        if isinstance(value, (set, frozenset)) else value)]
        return _details(f"{type(value).__name__} ({len(value)})", items, depth)
    if isinstance(value, Record) and depth < 4:
        return _details(type(value).__name__, list(value.as_dict().items()), depth)
    if _is_object(value) and depth < 4:
        items = [(k, v) for k, v in vars(value).items() if not k.startswith("_lk_")]
        return _details(type(value).__name__, items, depth)
    return f"<code>{html.escape(brief(value, 160))}</code>"


def _is_object(value: Any) -> bool:
    return isinstance(value, Node) or (hasattr(value, "__dict__") and not isinstance(value, type)
                                       and not dataclasses.is_dataclass(value))


def _details(summary: str, items: list[tuple[str, Any]], depth: int) -> str:
    rows = "".join(f"<div style='margin-left:1em'>{html.escape(k)}: {_value_html(v, depth + 1)}</div>"
                   for k, v in items[:_MAX_ITEMS])
    if len(items) > _MAX_ITEMS:
        rows += f"<div style='margin-left:1em'>... {len(items) - _MAX_ITEMS} more</div>"
    return f"<details><summary><code>{html.escape(summary)}</code></summary>{rows}</details>"


class StepperWidget:
    """Panels, buttons and the branch history for a :class:`Stepper`; display it in a notebook cell."""

    def __init__(self, stepper: Stepper) -> None:
        self.stepper = stepper
        self.back_button = w.Button(description="Back", icon="arrow-left", tooltip="go back one step")
        self.forward_button = w.Button(description="Forward", icon="arrow-right", tooltip="redo the next step")
        self.ignore_box = w.Checkbox(value=stepper.ignore_restrictions, description="ignore delivery restrictions",
                                     indent=False)
        self.show_delivered_box = w.Checkbox(value=False, description="show delivered messages", indent=False)
        self.all_fields_box = w.Checkbox(value=len(stepper.addresses) <= COMPACT_ABOVE, indent=False,
                                         description="all fields (else only what the last step changed)")
        self.status = w.HTML()
        self.predicates = w.HTML()
        self.nodes = w.HBox(layout=w.Layout(overflow="auto", align_items="flex-start"))
        self.history = w.Select(rows=8, layout=w.Layout(width="100%"))
        self.message = w.HTML()
        self.back_button.on_click(lambda _: self._act(stepper.back))
        self.forward_button.on_click(lambda _: self._act(stepper.forward))
        self.ignore_box.observe(self._on_ignore, names="value")
        self.show_delivered_box.observe(lambda _: self.refresh(), names="value")
        self.all_fields_box.observe(lambda _: self.refresh(), names="value")
        self.history.observe(self._on_history, names="value")
        self.root = w.VBox([
            w.HBox([self.back_button, self.forward_button, self.ignore_box, self.show_delivered_box,
                    self.all_fields_box], layout=w.Layout(flex_flow="row wrap")),
            self.status, self.message, self.predicates, self.nodes,
            w.HTML("<b>History</b> (pick a step to go back to it; delivering something else there starts a branch)"),
            self.history,
        ])
        self.deliver_buttons: list[w.Button] = []
        self.refresh()

    # ---- actions -----------------------------------------------------------------

    def _act(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
            self.message.value = ""
        except StepperError as error:
            self.message.value = f"<span style='color:#b35806'>{html.escape(str(error))}</span>"
        self.refresh()

    def _on_ignore(self, change: dict[str, Any]) -> None:
        self.stepper.ignore_restrictions = bool(change["new"])
        self.refresh()

    def _on_history(self, change: dict[str, Any]) -> None:
        if change["new"] is not None and change["new"] != self.stepper.current:
            self._act(self.stepper.goto, change["new"])

    # ---- drawing -------------------------------------------------------------------

    def refresh(self) -> None:
        """Redraw everything from the stepper's current state."""
        s = self.stepper
        self.back_button.disabled = s.node.parent is None
        self.forward_button.disabled = s.node.next is None
        blocked = s.blocked()
        self.status.value = (
            f"step {s.position} of {len(s.branch()) - 1} on this branch; {s.branches()} branch"
            + ("es" if s.branches() != 1 else "") + f"; {len(s.history)} states visited"
            + (f"<br><i>{html.escape(blocked)}</i>" if blocked else "")
        )
        self.predicates.value = self._predicates_html()
        choices = s.choices()
        self.deliver_buttons = []
        self.nodes.children = [self._panel(a, choices) for a in s.addresses]
        rows = s.tree()
        self.history.unobserve(self._on_history, names="value")
        self.history.options = [(("  " * depth) + ("> " if on else "  ") + f"{depth}. {text}", node_id)
                                for node_id, depth, text, on in rows]
        self.history.value = s.current
        self.history.observe(self._on_history, names="value")

    def _predicates_html(self) -> str:
        lines = []
        for p in self.stepper.predicates():
            icon = {"invariant": ("ok", "VIOLATED"), "goal": ("not yet", "REACHED"), "prune": ("no", "PRUNES")}[p.role]
            word = icon[1] if p.alarm else icon[0]
            colour = "#d62728" if p.alarm and p.role == "invariant" else ("#2ca02c" if p.alarm else "#555")
            detail = f" - {html.escape(p.detail)}" if p.detail and p.alarm else ""
            lines.append(f"<div>{p.role} <b>{html.escape(p.name)}</b>: "
                         f"<span style='color:{colour}'>{word}</span>{detail}</div>")
        return "".join(lines)

    def _panel(self, address: Address, choices: list[Choice]) -> w.VBox:
        s = self.stepper
        last = s.last_event
        active = last is not None and last.node == address
        changed = s.changed_fields(address)
        compact = not self.all_fields_box.value
        every = s.fields(address)
        shown_fields = {k: v for k, v in every.items() if k in changed} if compact else every
        fields = "".join(
            f"<div style='{_CHANGED if name in changed else ''}'>{html.escape(name)}: {_value_html(value)}</div>"
            for name, value in shown_fields.items()
        )
        hidden_fields = len(every) - len(shown_fields)
        if hidden_fields:
            fields += f"<div style='color:#777'>{hidden_fields} unchanged field{'s' if hidden_fields != 1 else ''}</div>"
        title = f"<b>{html.escape(address.name)}</b>" + (" (handled the last step)" if active else "")
        mine = [c for c in choices if c.node == address]
        shown = [c for c in mine if c.kind == "message" and (self.show_delivered_box.value or not c.delivered)]
        timers = [c for c in mine if c.kind == "timer"]
        hidden = sum(1 for c in mine if c.kind == "message") - len(shown)
        parts: list[w.Widget] = [w.HTML(title), w.HTML(f"<details open><summary>state</summary>{fields}</details>"),
                                 w.HTML(f"<b>Messages</b> ({len(shown)}" + (f", {hidden} delivered hidden" if hidden else "")
                                        + ")")]
        parts += [self._row(c, compact) for c in shown]
        parts.append(w.HTML(f"<b>Timers</b> ({len(timers)})"))
        parts += [self._row(c, compact) for c in timers]
        border = "2px solid #fdae6b" if active else "1px solid #ccc"
        return w.VBox(parts, layout=w.Layout(border=border, padding="4px", margin="2px", flex="1 1 0px",
                                             min_width="150px" if compact else "260px", overflow="hidden"))

    def _row(self, choice: Choice, compact: bool = False) -> w.HBox:
        label = "again" if choice.delivered else "deliver"
        button = w.Button(description=label, disabled=not choice.allowed, tooltip=str(choice),
                          layout=w.Layout(width="60px" if compact else "70px", flex="0 0 auto"))
        button.on_click(lambda _, index=choice.index: self._act(self.stepper.deliver, index))
        self.deliver_buttons.append(button)
        item = choice.event.item
        text = (f"from {choice.event.sender}: " if choice.kind == "message" else "") + brief(item, 60 if compact else 100)
        style = "font-weight:bold;" if choice.new else ""
        return w.HBox([button, w.HTML(f"<code style='{style}white-space:normal;word-break:break-word'>"
                                      f"{html.escape(text)}</code>", layout=w.Layout(min_width="0"))])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.root._repr_mimebundle_(**kwargs)


def show_stepper(start: SearchState | Trace | str | Path, settings: SearchSettings | None = None) -> StepperWidget:
    """A stepper widget from a start state, a trace or a saved trace file (display the result in a
    notebook cell); a trace file is replayed with the module it was made with."""
    if isinstance(start, (str, Path)):
        start = Trace.load(Path(start))
    stepper = Stepper.from_trace(start, settings) if isinstance(start, Trace) else Stepper(start, settings)
    return StepperWidget(stepper)
