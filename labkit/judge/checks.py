"""Explaining a step that gave two different outcomes (nondeterminism or state kept outside the node)."""

from __future__ import annotations

from typing import Any

from labkit.judge.nodes import Outcome
from labkit.values import brief
from labkit.wire import WireError, WireValue, decode_data

__all__ = ["nondeterminism_message", "state_differences"]


def state_differences(first: WireValue | None, second: WireValue | None) -> list[str]:
    """``attribute: value -> value`` for each top-level attribute that differs between two node states."""
    if first is None or second is None:
        return []
    try:
        a, b = decode_data(first.text), decode_data(second.text)
    except WireError:
        return []
    fields_a, fields_b = _fields(a), _fields(b)
    lines = []
    for name in sorted(set(fields_a) | set(fields_b)):
        if fields_a.get(name, _MISSING) != fields_b.get(name, _MISSING):
            lines.append(f"attribute {name}: {_show(fields_a.get(name, _MISSING))} (first run) vs "
                         f"{_show(fields_b.get(name, _MISSING))} (replay)")
    return lines


_MISSING: Any = object()


def _fields(value: Any) -> dict[str, Any]:
    """A decoded node's attributes: a record's fields, or a trusted class's instance dictionary."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return dict(getattr(value, "__dict__", {}))


def _show(value: Any) -> str:
    return "(none)" if value is _MISSING else brief(value, 160)


def nondeterminism_message(address: Any, qualified: str, kind: str, sender: Any, item_text: str,
                           difference: list[str], first: Outcome, second: Outcome) -> str:
    """The failure text: which handler, which event, what differed, and what to look for."""
    class_name = qualified.rpartition(":")[2]
    try:
        item = WireValue(item_text)
        name = item.type_name
        shown = brief(item, 160)
    except WireError:
        name, shown = "event", item_text[:160]
    if kind == "message":
        handler, event = f"{class_name}.handle_{name}", f"{name} from {sender} ({shown})"
    elif kind == "timer":
        handler, event = f"{class_name}.on_{name}", f"timer {name} ({shown})"
    else:
        handler, event = f"{class_name}.{sender}", f"the call {sender}()"
    lines = [
        f"{handler} is not deterministic: {address} handled {event}, and the same step replayed from the same "
        f"state in another worker process gave a different result ({', '.join(difference)}).",
    ]
    lines.extend("    " + line for line in state_differences(first.state, second.state))
    lines.append(
        "Handlers must depend only on the node's attributes and the event: no random numbers, clock, global or "
        "class variables shared between nodes, or data kept outside the node's attributes."
    )
    return "\n".join(lines)
