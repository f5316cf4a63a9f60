"""Counterexample traces: replay, minimization, causal reordering, rendering, files.

A trace is a start state and a list of events by value. Replaying it runs the
current code's handlers, so a saved trace checks whether a fix works.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from labkit.check.predicates import PredicateResult
from labkit.client import ClientWorker, HistoryRecord, Workload
from labkit.judge.nodes import SnapshotNode
from labkit.judge.worker import WorkerFailure
from labkit.node import Address, LabkitError
from labkit.search.state import Event, HandlerFailure, SearchState, as_wire
from labkit.values import brief, canonical_repr
from labkit.wire import NodeState, Record, WireError, WireValue, decode_data, encode

__all__ = ["Trace", "TraceError", "replay", "minimize", "reorder", "TRACE_FORMAT", "TRACE_VERSION"]

TRACE_FORMAT = "labkit-trace"
TRACE_VERSION = 2
_MISSING = object()


class TraceError(LabkitError):
    """A trace that cannot be read or no longer replays."""


def replay(root: SearchState, events: Sequence[Event]) -> list[SearchState]:
    """The states along ``events`` from ``root``; raises TraceError where an event no longer applies."""
    states = [root]
    for n, event in enumerate(events, 1):
        nxt = states[-1].apply(event)
        if nxt is None:
            raise TraceError(
                f"event {n} no longer applies: {event}\n"
                + ("  that message is not in the network at this point (was it ever sent by the current code?)"
                   if event.kind == "message" else "  that timer is not pending at this node at this point")
            )
        states.append(nxt)
        if nxt.failure is not None and n < len(events):
            raise TraceError(f"event {n} now makes {nxt.failure.node} raise {nxt.failure.error_type}: {nxt.failure.message}")
    return states


def _replay_skipping(root: SearchState, events: Sequence[Event], fails: Callable[[SearchState], bool]
                     ) -> list[Event] | None:
    """Apply the events that still apply; return those applied up to the first failing state, or None."""
    state = root
    applied: list[Event] = []
    if fails(state):
        return applied
    for event in events:
        nxt = state.apply(event)
        if nxt is None:
            continue
        applied.append(event)
        state = nxt
        if fails(state):
            return applied
        if state.failure is not None:
            return None
    return None


def minimize(root: SearchState, events: Sequence[Event], fails: Callable[[SearchState], bool]) -> list[Event]:
    """Remove events while some state along the replay still ``fails``, to a fixed point.

    Chunks are tried first (halves, quarters, ...) and single events last, so
    long random-probe traces shrink quickly.
    """
    current = _replay_skipping(root, events, fails)
    if current is None:
        return list(events)
    chunk = max(1, len(current) // 2)
    while True:
        changed = False
        i = len(current)
        while i > 0:
            start = max(0, i - chunk)
            candidate = current[:start] + current[i:]
            shorter = _replay_skipping(root, candidate, fails)
            if shorter is not None and len(shorter) < len(current):
                current = shorter
                changed = True
                i = min(start, len(current))
            else:
                i = start
        if chunk > 1:
            chunk //= 2
        elif not changed:
            return current


def reorder(root: SearchState, events: Sequence[Event]) -> list[Event]:
    """Reorder by happens-before so causally related events sit together, and drop no-op steps.

    An event depends on the previous event at the same node and on the event
    that sent its message. Independent events commute, so the final state is
    the same; the new order is replayed to make sure.
    """
    events = list(events)
    if not events:
        return events
    states = replay(root, events)
    sent_by: dict[int, int] = {}
    last_at: dict[Address, int] = {}
    deps: list[list[int]] = []
    for k, event in enumerate(events):
        mine: list[int] = []
        if event.kind in ("drop", "undrop"):
            mine.extend(range(k))  # a barrier: everything before stays before
        else:
            if event.node in last_at:
                mine.append(last_at[event.node])
            if event.kind == "message":
                key = hash((event.sender, event.node, as_wire(event.item).fp))
                if key in sent_by:
                    mine.append(sent_by[key])
            last_at[event.node] = k  # type: ignore[index]
        deps.append(mine)
        before, after = states[k], states[k + 1]
        new_fps = set(after.env_fps) - set(before.env_fps)
        for env in after.envs:
            if env[4] in new_fps:
                a = root.system.addresses
                sent_by.setdefault(hash((a[env[0]], a[env[1]], env[3])), k)
    order: list[int] = []
    done: set[int] = set()

    def visit(k: int) -> None:
        stack = [(k, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done:
                continue
            if expanded:
                done.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            for d in sorted(deps[node], reverse=True):
                if d not in done:
                    stack.append((d, False))

    last = len(events) - 1
    past: set[int] = set()
    frontier = [last]
    while frontier:
        k = frontier.pop()
        if k not in past:
            past.add(k)
            frontier.extend(deps[k])
    for k in range(len(events)):
        if k not in past:
            visit(k)
    visit(last)
    reordered = [events[k] for k in order]
    try:
        new_states = replay(root, reordered)
    except TraceError:
        new_states, reordered = states, events
    if new_states[-1].fp != states[-1].fp:
        new_states, reordered = states, events
    return [e for k, e in enumerate(reordered) if new_states[k + 1].fp != new_states[k].fp or k == len(reordered) - 1]


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


CHANGE_LIMIT = 2_000  # characters of one changed value in a change line: the whole value, short of a flood


def _short(value: Any, limit: int = 100) -> str:
    return "(none)" if value is _MISSING else brief(value, limit)


def _is_record(value: Any) -> bool:
    return isinstance(value, Record) or (
        hasattr(value, "__dict__") and not isinstance(value, type) and not (
            dataclasses.is_dataclass(value) and value.__dataclass_params__.frozen  # type: ignore[attr-defined]
        )
    )


def _fields(value: Any) -> dict[str, Any]:
    if isinstance(value, Record):
        return {k: v for k, v in value.as_dict().items() if k != "address"}
    return {k: v for k, v in vars(value).items() if not k.startswith("_lk_") and k != "address"}


def same_value(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # values that cannot be compared are shown as changed
        return False


def diff_values(name: str, before: Any, after: Any, out: list[str], depth: int = 0) -> None:
    """Append ``name: before -> after`` lines for what changed, descending into dicts, objects and
    lists of one length, so the line names the field that changed and shows its values in full."""
    if before is not _MISSING and after is not _MISSING and same_value(before, after):
        return
    if depth < 3 and isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after), key=canonical_repr)
        for k in keys:
            diff_values(f"{name}[{_short(k, 40)}]", before.get(k, _MISSING), after.get(k, _MISSING), out, depth + 1)
        return
    if depth < 3 and type(before) is type(after) and _is_record(before):
        a, b = _fields(before), _fields(after)
        for k in list(a) + [k for k in b if k not in a]:
            diff_values(f"{name}.{k}" if name else k, a.get(k, _MISSING), b.get(k, _MISSING), out, depth + 1)
        return
    if isinstance(before, list) and isinstance(after, list) and after[: len(before)] == before:
        out.append(f"{name}: appended {_short(after[len(before):], CHANGE_LIMIT)}")
        return
    if (depth < 3 and isinstance(before, (list, tuple)) and type(before) is type(after)
            and len(before) == len(after)):
        for i, (a, b) in enumerate(zip(before, after)):
            diff_values(f"{name}[{i}]", a, b, out, depth + 1)
        return
    if isinstance(before, (set, frozenset)) and isinstance(after, (set, frozenset)):
        added, removed = after - before, before - after
        parts = (([f"added {_short(set(added), CHANGE_LIMIT)}"] if added else [])
                 + ([f"removed {_short(set(removed), CHANGE_LIMIT)}"] if removed else []))
        out.append(f"{name}: {', '.join(parts)}")
        return
    out.append(f"{name}: {_short(before, CHANGE_LIMIT)} -> {_short(after, CHANGE_LIMIT)}")


@dataclasses.dataclass
class WorkerView:
    """A client worker as a trace shows it: its client's state, the commands sent, the results recorded."""

    client: Any
    sent: int
    results: list[Any]


def node_view(node: Any) -> Any:
    """What a search node holds, decoded: a snapshot's state, or a client worker's view."""
    if isinstance(node, ClientWorker):
        return WorkerView(node.client.state, node.sent, list(node.results))
    return node.state


def node_fields(node: Any) -> dict[str, Any]:
    """A search node's fields by name, decoded (a client worker: its client's, then sent and results)."""
    view = node_view(node)
    if isinstance(view, WorkerView):
        fields = {f"client.{k}": v for k, v in _fields(view.client).items()} if _is_record(view.client) else {}
        return {**fields, "sent": view.sent, "results": view.results}
    return _fields(view) if _is_record(view) else {}


def node_changes(before: Any, after: Any) -> list[str]:
    """The changed fields of a node, one line each."""
    out: list[str] = []
    diff_values("", node_view(before), node_view(after), out)
    return out


@dataclasses.dataclass
class Trace:
    """A start state, the events from it, and why the trace matters."""

    root: SearchState
    events: list[Event]
    violation: PredicateResult | None = None
    failure: HandlerFailure | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def states(self) -> list[SearchState]:
        """The states along the trace, replayed by the current code."""
        try:
            return replay(self.root, self.events)
        except WorkerFailure as error:
            if error.kind != "protocol":
                raise
            raise TraceError(f"this trace does not fit the current code: {error}") from None

    def render(self) -> str:
        """Numbered events, each with the fields it changed; then the violation."""
        states = self.states()
        lines: list[str] = []
        for n, event in enumerate(self.events, 1):
            lines.append(f"{n}. {event}")
            before, after = states[n - 1], states[n]
            if event.node is not None and event.kind in ("message", "timer"):
                changes = node_changes(before.node(event.node), after.node(event.node))
                for change in changes:
                    lines.append(f"     {event.node}: {change}")
        if self.failure is not None:
            lines.append(f"{self.failure.node} raised {self.failure.error_type}: {self.failure.message}")
            if self.failure.traceback:
                lines.extend("     " + line for line in self.failure.traceback.rstrip().splitlines())
        if self.violation is not None:
            lines.append(self.violation.explain())
        return "\n".join(lines)

    # ---- files -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TRACE_FORMAT,
            "version": TRACE_VERSION,
            "meta": {**self._code(), **self.meta},
            "start": snapshot(self.root),
            "events": [_event_to_json(e) for e in self.events],
            "violation": dataclasses.asdict(self.violation) if self.violation else None,
            "failure": {**dataclasses.asdict(self.failure), "event": _event_to_json(self.failure.event)}
            if self.failure else None,
        }

    def _code(self) -> dict[str, Any]:
        """Where the trace's code comes from: the submitted module and the trusted modules of its nodes."""
        session = self.root.system.session
        return {"solution": str(session.solution_path) if session.solution_path else None,
                "modules": list(session.modules)}

    def save(self, path: str | Path) -> Path:
        """Write the trace as versioned, human-readable JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def read_meta(path: str | Path) -> dict[str, Any]:
        """Only the trace's description (lab, test, seed, solution), without loading any class."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TraceError(f"{path} is not a labkit trace: {error}") from None
        meta = data.get("meta") if isinstance(data, dict) else None
        return meta if isinstance(meta, dict) else {}

    @classmethod
    def load(cls, path: str | Path, session: Any = None) -> "Trace":
        """Read a trace file; its steps replay in ``session``'s workers (by default, a session
        of the solution the trace names)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TraceError(f"there is no trace file {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TraceError(f"{path} is not a labkit trace: it is not valid JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != TRACE_FORMAT:
            raise TraceError(f"{path} is not a labkit trace (no \"format\": \"{TRACE_FORMAT}\" field)")
        if data.get("version") != TRACE_VERSION:
            raise TraceError(
                f"{path} is a version {data.get('version')} trace; this labkit reads version {TRACE_VERSION}: "
                "make the trace again with this version"
            )
        if session is None:
            session = session_for(data.get("meta") or {})
        try:
            root = restore(data["start"], session)
            events = [_event_from_json(e) for e in data["events"]]
            violation = PredicateResult(**data["violation"]) if data.get("violation") else None
            failure = HandlerFailure(
                **{**data["failure"], "event": _event_from_json(data["failure"]["event"])}
            ) if data.get("failure") else None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, WireError) as error:
            raise TraceError(f"{path} is damaged or incomplete: {error}") from None
        return cls(root, events, violation, failure, data.get("meta", {}))


def session_for(meta: dict[str, Any], solution: str | Path | None = None) -> Any:
    """A session (workers) for replaying a trace: the given solution, or the one the trace names."""
    from labkit.judge.session import Session
    from labkit.testing.runner import get_lab

    path = solution or meta.get("solution")
    modules = meta.get("modules") or []
    if not path and not modules:
        raise TraceError("the trace does not name the solution it was made with: give it with --solution")
    lab = None
    if meta.get("lab"):
        try:
            lab = get_lab(str(meta["lab"]))
        except LabkitError:
            lab = None
    session = Session(solution=Path(path) if path else None, observers=lab.observers if lab else None,
                      queries=lab.queries if lab else ())
    for name in modules:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise TraceError(f"the trace names a module {name!r} that is not a module name")
        try:
            session.add_module(importlib.import_module(name))
        except ImportError as error:
            raise TraceError(f"the trace's nodes come from the module {name}, which cannot be imported: {error}") from None
    return session


def _item_text(item: Any) -> str:
    return as_wire(item).text


def _event_to_json(event: Event) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "node": event.node.name if event.node else None,
        "sender": event.sender.name if event.sender else None,
        "item": _item_text(event.item) if event.item is not None else None,
        "min": event.min_millis,
        "max": event.max_millis,
        "direction": event.direction,
        "text": str(event),
    }


def _event_from_json(data: dict[str, Any]) -> Event:
    if data["kind"] not in ("message", "timer", "drop", "undrop"):
        raise ValueError(f"unknown event kind {data['kind']!r}")
    item = data.get("item")
    if item is not None:
        if not isinstance(item, str):
            raise ValueError("an event's item must be an encoded value")
        decode_data(item)  # malformed encodings are found now, not while replaying
        item = WireValue(item)
    return Event(
        data["kind"],
        Address(data["node"]) if data.get("node") else None,
        Address(data["sender"]) if data.get("sender") else None,
        item,
        int(data.get("min", 0)),
        int(data.get("max", 0)),
        data.get("direction", ""),
    )


def _node_to_json(node: Any, role: str) -> dict[str, Any]:
    if isinstance(node, ClientWorker):
        worker: dict[str, Any] = {"segments": [], "sent": node.sent,
                                  "history": [[encode(r.command), _item_text(r.result)] for r in node.completed]}
        for offset, workload in node._lk_segments:
            if workload.size is None:
                raise TraceError("cannot save a trace of a client with an infinite workload")
            pairs = [workload.command_and_result(n, node.address, f"{node._lk_seed}:{offset}")
                     for n in range(1, workload.size + 1)]
            worker["segments"].append([offset, [[encode(c), encode(r) if r is not None else None] for c, r in pairs]])
        snapshot = node.client
        return {"role": role, "address": snapshot.address.name, "class": snapshot.qualified,
                "state": snapshot.value.text, "worker": worker}
    return {"role": role, "address": node.address.name, "class": node.qualified, "state": node.value.text}


def _node_from_json(data: dict[str, Any], session: Any) -> tuple[str, Any]:
    from labkit.search.state import _observer, _queries

    role = data["role"]
    if role not in ("server", "worker", "client", "other"):
        raise ValueError(f"unknown node role {role!r}")
    address = Address(data["address"])
    state = data["state"]
    decode_data(state)
    snapshot = SnapshotNode(address, str(data["class"]), "client" if role in ("worker", "client") else role,
                            _queries(role, session), NodeState.from_text(state), None, _observer(role, session), None)
    if role != "worker":
        return role, snapshot
    info = data["worker"]
    segments = []
    for offset, pairs in info["segments"]:
        commands = [decode_data(c) for c, _ in pairs]
        results = [decode_data(r) if r is not None else None for _, r in pairs]
        segments.append((int(offset), Workload.of(commands, results if all(r is not None for r in results) else None)))
    worker = ClientWorker(snapshot, segments[0][1])
    worker._lk_segments = segments
    worker.sent = int(info["sent"])
    for command, result in info["history"]:
        value = WireValue(result)
        worker.results.append(value.value)
        worker._lk_result_fps += (value.fp,)
        worker._lk_history.append(HistoryRecord(address, decode_data(command), value.value, None, None))
    worker._lk_invoked_at = None
    return role, worker


def snapshot(state: SearchState) -> dict[str, Any]:
    """The full start state as JSON: nodes with roles, network, set-aside messages, timers."""
    system = state.system
    roles = {i: "server" for i in system.server_indices}
    roles.update({i: "worker" for i in system.worker_indices})
    roles.update({i: "client" for i in system.client_indices})
    a = system.addresses
    return {
        "nodes": [_node_to_json(node, roles.get(i, "other")) for i, node in enumerate(state.node_list)],
        "network": [[a[e[0]].name, a[e[1]].name, e[2].text] for e in state.envs],
        "dropped": [[a[e[0]].name, a[e[1]].name, e[2].text] for e in state.dropped],
        "timers": [[[t.text, lo, hi] for t, lo, hi, _ in q] for q in state.queues],
    }


def restore(data: dict[str, Any], session: Any) -> SearchState:
    """The state saved by :func:`snapshot`, its steps to run in ``session``'s workers."""
    nodes = [_node_from_json(entry, session) for entry in data["nodes"]]

    def wire(text: Any) -> WireValue:
        if not isinstance(text, str):
            raise ValueError("a saved message or timer must be an encoded value")
        decode_data(text)
        return WireValue(text)

    return SearchState.restored(
        nodes,
        [(Address(s), Address(r), wire(m)) for s, r, m in data["network"]],
        [(Address(s), Address(r), wire(m)) for s, r, m in data["dropped"]],
        [[(wire(t), int(lo), int(hi)) for t, lo, hi in q] for q in data["timers"]],
        session,
    )
