"""Message timelines (Lamport diagrams) of a run or a counterexample trace.

One lane per node, servers first. A delivered message is an arrow from its
send to its delivery, coloured by message type; a dropped message ends in a
cross; a duplicate delivery is dashed with a diamond; a timer firing is a tick
(grey if the timer was discarded); a client operation is a band from invoke to
response. A fault track above the lanes shows which partition, inactive link
or loss is in force. A run is drawn in virtual milliseconds, a trace in steps.

A :class:`Focus` (a client's operation that a failure points at) draws the
part of a run around it: the messages on the operation's causal path (each
sent by the handler of the one before) in full colour with their contents,
the rest faded, and by default only the nodes on that path.

Artists carry gids so tests and tools can count them: ``lane``, ``arrow``,
``drop``, ``duplicate``, ``timer``, ``timer_off``, ``op``, ``error``,
``fault``, ``fault_label``, ``folded`` and ``label``; with a focus, ``path`` (an arrow on the
causal path) and ``focus_op`` (the operation).
"""

from __future__ import annotations

import hashlib

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.ticker import MaxNLocator

from labkit.node import Address
from labkit.search.trace import Trace
from labkit.sim.log import DELIVER, DROP, DUPLICATE, ERROR, INVOKE, RESPONSE, SEND, TIMER_FIRE, TIMER_OFF
from labkit.values import brief
from labkit.viz.faults import FaultSpan, fault_spans
from labkit.viz.sources import RunRecords, Source, load_source

__all__ = ["plot_timeline", "Focus", "DEFAULT_FOLD"]

DEFAULT_FOLD: tuple[str, ...] = ("Heartbeat", "HeartbeatReply")
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"]
# Message and timer types keep one colour in every picture: the lab's usual names have their own,
# any other name gets one from its name's hash (the same in every picture and every process).
_FIXED_COLOURS = {
    "PaxosRequest": "#1f77b4", "PaxosReply": "#17becf", "P1a": "#9467bd", "P1b": "#c5b0d5",
    "P2a": "#d62728", "P2b": "#ff9896", "Decision": "#2ca02c", "Preempted": "#8c564b",
    "Heartbeat": "#7f7f7f", "HeartbeatReply": "#c7c7c7", "PingRequest": "#1f77b4", "PongReply": "#ff7f0e",
}


def type_colour(name: str) -> str:
    """The colour of a message or timer type, by its name alone."""
    fixed = _FIXED_COLOURS.get(name)
    if fixed is not None:
        return fixed
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=4).digest()
    return _PALETTE[int.from_bytes(digest, "big") % len(_PALETTE)]


_FAULT = "#fdae6b"
_OP = "#9ecae1"
_FAULT_ROW = -1.0
_PATH_LIMIT = 60  # messages followed forward from an unanswered command
_WAIT_SPAN = 1000.0  # virtual ms shown after an unanswered command's send


@dataclass(frozen=True)
class Focus:
    """A client operation a failure points at: ``client`` invoked it at ``start`` and got its
    answer at ``end`` (None: it never came). ``caption`` says why it is shown."""

    client: str
    start: float
    end: float | None
    caption: str = ""


@dataclass
class _Message:
    sent: float
    sender: str
    at: float
    receiver: str
    type: str
    text: str
    dropped: bool = False
    duplicate: bool = False
    cause: int | None = None  # the message whose delivery ran the handler that sent this one


@dataclass
class _Mark:
    time: float
    node: str
    type: str
    text: str
    kind: str  # "timer", "timer_off" or "error"


@dataclass
class _Op:
    node: str
    start: float
    end: float | None
    text: str
    reply: int | None = None  # the message whose delivery gave the client its answer


@dataclass
class _Timeline:
    lanes: list[str]
    messages: list[_Message] = field(default_factory=list)
    marks: list[_Mark] = field(default_factory=list)
    ops: list[_Op] = field(default_factory=list)
    faults: list[FaultSpan] = field(default_factory=list)
    end: float = 0.0
    unit: str = "virtual time (ms)"
    outcome: str = ""


# --------------------------------------------------------------------------
# From a run
# --------------------------------------------------------------------------


def _from_run(run: RunRecords) -> _Timeline:
    tl = _Timeline(list(run.nodes))
    sends: dict[int, dict[str, Any]] = {}
    copies: Counter[int] = Counter()
    arrived: Counter[int] = Counter()
    in_flight: dict[tuple, list[int]] = defaultdict(list)  # (sender, receiver, item) -> mids, oldest first
    invoked: dict[str, tuple[float, str]] = {}
    # What a node is handling (the index of the delivered message, or None for a timer, a call or
    # init): every send logged after it, at the same node, was sent by that handler.
    handling: dict[str, int | None] = {}
    caused_by: dict[int, int | None] = {}

    def arrive(mid: int, key: tuple) -> None:
        arrived[mid] += 1
        if arrived[mid] >= copies[mid] and mid in in_flight[key]:
            in_flight[key].remove(mid)

    for r in run.records:
        kind, t = r["kind"], r["time"]
        if kind == SEND:
            sends[r["detail"]] = r
            caused_by[r["detail"]] = handling.get(r["node"])
            copies[r["detail"]] = 1
            in_flight[(r["node"], r["peer"], r["item"])].append(r["detail"])
        elif kind == DUPLICATE:
            copies[r["detail"]] += 1
        elif kind == DELIVER:
            mid = r["detail"]
            sent = sends.get(mid, r)
            handling[r["node"]] = len(tl.messages)
            tl.messages.append(_Message(sent["time"], r["peer"], t, r["node"], r["type"], r["item"],
                                        duplicate=arrived[mid] > 0, cause=caused_by.get(mid)))
            arrive(mid, (r["peer"], r["node"], r["item"]))
        elif kind == DROP:
            # Drops carry their reason, not the message id: the oldest matching copy in flight is the one.
            key = (r["peer"], r["node"], r["item"])
            mid = in_flight[key][0] if in_flight[key] else None
            sent = sends[mid] if mid is not None else r
            tl.messages.append(_Message(sent["time"], r["peer"], t, r["node"], r["type"], r["item"], dropped=True,
                                        cause=caused_by.get(mid) if mid is not None else None))
            if mid is not None:
                arrive(mid, key)
        elif kind in (TIMER_FIRE, TIMER_OFF):
            if kind == TIMER_FIRE:
                handling[r["node"]] = None
            tl.marks.append(_Mark(t, r["node"], r["type"], r["item"], "timer" if kind == TIMER_FIRE else "timer_off"))
        elif kind == ERROR:
            tl.marks.append(_Mark(t, r["node"], "", str(r["detail"]), "error"))
        elif kind == INVOKE:
            handling[r["node"]] = None
            invoked[r["node"]] = (t, r["item"])
        elif kind == RESPONSE and r["node"] in invoked:
            start, command = invoked.pop(r["node"])
            tl.ops.append(_Op(r["node"], start, t, f"{command} -> {r['item']}", reply=handling.get(r["node"])))
    tl.end = max((r["time"] for r in run.records), default=0)
    tl.ops.extend(_Op(node, start, None, command) for node, (start, command) in invoked.items())
    tl.faults = fault_spans(run.records, tl.end)
    return tl


# --------------------------------------------------------------------------
# From a search trace (time is the step number)
# --------------------------------------------------------------------------


def _from_trace(trace: Trace) -> _Timeline:
    states = trace.states()
    root = states[0]
    system = root.system
    names = [a.name for a in system.addresses]
    order = list(system.server_indices) + list(system.worker_indices) + list(system.client_indices)
    order += [i for i in range(len(names)) if i not in order]
    tl = _Timeline([names[i] for i in order], end=float(len(trace.events)), unit="step")
    sent_at: dict[int, float] = {env[4]: 0.0 for env in (*root.envs, *root.dropped)}
    delivered: set[int] = set()
    open_ops: dict[int, _Op] = {}

    def track_ops(before: Any, after: Any, k: float) -> None:
        for i in system.worker_indices:
            old, new = (before.node_list[i] if before is not None else None), after.node_list[i]
            if old is not None and len(new.results) > len(old.results) and i in open_ops:
                op = open_ops.pop(i)
                op.end = k
                op.text += f" -> {brief(new.results[-1], 60)}"
                tl.ops.append(op)
            if new.outstanding and (old is None or new.sent > old.sent):
                command = new.history[-1].command
                open_ops[i] = _Op(names[i], k, None, brief(command, 60))

    track_ops(None, root, 0.0)
    for k, event in enumerate(trace.events, 1):
        before, after = states[k - 1], states[k]
        if event.kind == "message":
            found = before.find_event(event)
            env = before.envs[found[1]] if found is not None else None
            fp = env[4] if env is not None else None
            tl.messages.append(_Message(sent_at.get(fp, k - 1), event.sender.name, k, event.node.name,  # type: ignore[union-attr]
                                        type(event.item).__name__, brief(event.item), duplicate=fp in delivered))
            delivered.add(fp)  # type: ignore[arg-type]
        elif event.kind == "timer":
            tl.marks.append(_Mark(k, event.node.name, type(event.item).__name__, brief(event.item), "timer"))  # type: ignore[union-attr]
        else:
            tl.faults.append(FaultSpan(k, k, (str(event),)))
            for env in after.dropped:
                if env[4] not in before.dropped_fps and env[4] not in delivered:
                    tl.messages.append(_Message(sent_at.get(env[4], k), names[env[0]], k, names[env[1]],
                                                type(env[2]).__name__, brief(env[2]), dropped=True))
        for env in after.envs:
            sent_at.setdefault(env[4], float(k))
        track_ops(before, after, float(k))
        if after.failure is not None:
            f = after.failure
            tl.marks.append(_Mark(k, f.node.name, "", f"{f.error_type}: {f.message}", "error"))
    tl.ops.extend(open_ops.values())
    if trace.violation is not None:
        tl.outcome = trace.violation.explain()
    elif trace.failure is not None:
        tl.outcome = f"{trace.failure.node} raised {trace.failure.error_type}: {trace.failure.message}"
    return tl


# --------------------------------------------------------------------------
# A failure's focus: the causal path of one client operation
# --------------------------------------------------------------------------


def _causal_path(tl: _Timeline, focus: Focus) -> tuple[set[int], tuple[float, float]]:
    """The messages on ``focus``'s causal path (indices into ``tl.messages``) and the time to show.

    An answered operation: the chain back from the reply it got, each message sent by the handler
    of the one before, to the client's request. An unanswered one: what its sends (the first and
    any resends) set off, followed forward, so the message lost or never sent shows as the end."""
    path: set[int] = set()
    if focus.end is not None:
        op = next((o for o in tl.ops if o.node == focus.client and o.end == focus.end), None)
        at = op.reply if op is not None else None
        while at is not None and at not in path:
            path.add(at)
            at = tl.messages[at].cause
        times = [tl.messages[i].sent for i in path] + [focus.start]
        return path, (max(0.0, min(times) - 20), focus.end + 20)
    horizon = focus.start + _WAIT_SPAN
    children: dict[int, list[int]] = defaultdict(list)
    frontier = []
    for i, m in enumerate(tl.messages):
        if m.cause is not None:
            children[m.cause].append(i)
        elif m.sender == focus.client and focus.start <= m.sent <= horizon:
            frontier.append(i)
    while frontier and len(path) < _PATH_LIMIT:
        i = frontier.pop(0)
        if i in path or tl.messages[i].sent > horizon:
            continue
        path.add(i)
        frontier.extend(children[i])
    last = max((tl.messages[i].at for i in path), default=focus.start)
    return path, (max(0.0, focus.start - 20), min(max(tl.end, focus.start + 1), max(last + 20, focus.start + 100)))


def _path_lanes(tl: _Timeline, path: set[int], focus: Focus) -> list[str]:
    involved = {focus.client} | {tl.messages[i].sender for i in path} | {tl.messages[i].receiver for i in path}
    return [lane for lane in tl.lanes if lane in involved]


# --------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------


def _names(values: Iterable[str | Address] | None) -> set[str] | None:
    return None if values is None else {v.name if isinstance(v, Address) else str(v) for v in values}


def _inside(t: float, window: tuple[float, float] | None) -> bool:
    return window is None or window[0] <= t <= window[1]


def plot_timeline(
    source: Source,
    *,
    types: Sequence[str] | None = None,
    nodes: Sequence[str | Address] | None = None,
    window: tuple[float, float] | None = None,
    fold: Sequence[str] = DEFAULT_FOLD,
    labels: bool = False,
    solution: str | Path | None = None,
    title: str | None = None,
    focus: Focus | None = None,
) -> Figure:
    """Draw the message timeline of ``source`` and return the Figure.

    ``source`` is a Simulation, an EventLog, a Trace, or the path of a saved
    run log or trace (``solution`` names the module a trace file needs; by
    default the one recorded in the trace). ``types`` keeps only messages and
    timers of those class names; ``nodes`` keeps those lanes (and messages
    between them); ``window=(start, end)`` keeps what arrives in that time
    (steps for a trace). Message types in ``fold`` (periodic traffic such as
    heartbeats) are not drawn as arrows: each arrival or drop is a small grey
    dot and the title counts them. ``labels`` writes each message's content.
    ``focus`` (a run only) draws the part of the run around one client operation: the
    messages on its causal path stand out with their contents, and unless ``window`` or
    ``nodes`` are given, the window and the nodes are those of the path. The Figure's label
    (``figure.get_label()``) says in words which window and nodes are drawn.
    """
    loaded = load_source(source, solution)
    tl = _from_trace(loaded) if isinstance(loaded, Trace) else _from_run(loaded)
    path: set[int] = set()
    if focus is not None and not isinstance(loaded, Trace):
        path, around = _causal_path(tl, focus)
        window = window if window is not None else around
        if nodes is None and len(_path_lanes(tl, path, focus)) >= 2:
            nodes = _path_lanes(tl, path, focus)
    keep_types, keep_nodes = _names(types), _names(nodes)
    folded_types = set(fold) - (keep_types or set())
    lanes = [n for n in tl.lanes if keep_nodes is None or n in keep_nodes]
    row = {name: float(i) for i, name in enumerate(lanes)}
    every_type = sorted({m.type for m in tl.messages})
    colour = {name: type_colour(name) for name in every_type}

    def shown(type_name: str) -> bool:
        return keep_types is None or type_name in keep_types

    messages, folded = [], Counter()
    for i, m in enumerate(tl.messages):
        if m.sender not in row or m.receiver not in row or not _inside(m.at, window) or not shown(m.type):
            continue
        if i in path:
            messages.append(m)
        elif m.type in folded_types:
            folded[m.type] += 1
        else:
            messages.append(m)
    marks = [k for k in tl.marks if k.node in row and _inside(k.time, window)
             and (k.kind == "error" or (shown(k.type) and k.type not in folded_types))]
    ops = [o for o in tl.ops if o.node in row and (window is None or (
        o.start <= window[1] and (o.end is None or o.end >= window[0])))]
    faults = [f for f in tl.faults if window is None or (f.start <= window[1] and f.end >= window[0])]

    lo, hi = window if window is not None else (0.0, max(tl.end, 1.0))
    span = max(hi - lo, 1e-9)
    figure = Figure(figsize=(12, 1.6 + 0.55 * (len(lanes) + (1 if faults else 0))))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for name, y in row.items():
        line = ax.axhline(y, color="#bbbbbb", linewidth=0.8, zorder=0)
        line.set_gid("lane")

    pending_labels: list[tuple[float, float, str, str, str]] = []  # placed at the end, where none overprints another
    for f in faults:
        pending_labels.append(_draw_fault(ax, f, span, lanes))
    for o in ops:
        end = o.end if o.end is not None else hi
        focused = focus is not None and o.node == focus.client and o.start <= focus.start <= end and (
            o.end == focus.end)
        band = Rectangle((o.start, row[o.node] - 0.14), max(end - o.start, span * 0.002), 0.28, facecolor=_OP,
                         edgecolor="#d62728" if focused else "white", linewidth=2.0 if focused else 1.0,
                         alpha=0.9 if focused else 0.6, hatch="//" if o.end is None else None, zorder=1)
        band.set_gid("focus_op" if focused else "op")
        ax.add_patch(band)
        if labels or focused:
            pending_labels.append((o.start, row[o.node] + 0.3, o.text, "left", "label"))
    on_path = {id(tl.messages[i]) for i in path}
    for m in messages:
        highlighted = id(m) in on_path
        faded = bool(path) and not highlighted
        _draw_message(ax, m, row, colour[m.type], span, highlighted=highlighted, faded=faded)
        if labels or highlighted:
            pending_labels.append(((m.sent + m.at) / 2, (row[m.sender] + row[m.receiver]) / 2, m.text, "center",
                                   "label"))
    if folded:
        dots = [(m.at, row[m.receiver]) for m in tl.messages if m.type in folded and m.sender in row
                and m.receiver in row and _inside(m.at, window)]
        scatter = ax.scatter([x for x, _ in dots], [y for _, y in dots], s=4, color="#999999", zorder=2)
        scatter.set_gid("folded")
    for k in marks:
        style = {"timer": ("|", "#444444", 9), "timer_off": ("|", "#bbbbbb", 9), "error": ("*", "#d62728", 12)}
        marker, tint, size = style[k.kind]
        (mark,) = ax.plot([k.time], [row[k.node]], marker=marker, color=tint, markersize=size, linestyle="", zorder=4)
        mark.set_gid(k.kind)
        if labels or k.kind == "error":
            pending_labels.append((k.time, row[k.node] - 0.22, k.text, "center", "label"))

    types_shown = sorted({m.type for m in messages})
    if types_shown:
        handles = [Line2D([], [], color=colour[t], linewidth=2, label=t) for t in types_shown]
        ax.legend(handles=handles, title="messages", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  title_fontsize=8, frameon=False)
    key = [Line2D([], [], marker="x", color="#444444", linestyle="", label="dropped"),
           Line2D([], [], marker="D", color="#444444", markersize=4, linestyle="--", label="duplicate"),
           Line2D([], [], marker="|", color="#444444", linestyle="", label="timer fired"),
           Rectangle((0, 0), 1, 1, facecolor=_OP, alpha=0.6, label="client operation")]
    if faults:
        key.append(Rectangle((0, 0), 1, 1, facecolor=_FAULT, alpha=0.7, label="fault in force"))
    figure.legend(handles=key, loc="lower right", fontsize=7, frameon=False, ncol=len(key))

    top = _FAULT_ROW - 0.6 if faults else -0.6
    ax.set_ylim(len(lanes) - 0.4, top)
    ax.set_xlim(lo - 0.01 * span, hi + 0.01 * span)
    ticks = ([_FAULT_ROW] if faults else []) + list(row.values())
    ax.set_yticks(ticks)
    ax.set_yticklabels((["faults"] if faults else []) + lanes)
    ax.set_xlabel(tl.unit)
    if tl.unit == "step":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    heading = title if title is not None else _cut(tl.outcome, 160)
    if path and nodes is not None and len(row) < len(tl.lanes):
        heading += ("\n" if heading else "") + (f"the nodes on its path: {', '.join(row)} "
                                                f"({len(tl.lanes) - len(row)} more not shown)")
    if folded:
        heading += ("\n" if heading else "") + "folded: " + ", ".join(f"{t} x{n}" for t, n in sorted(folded.items()))
    if heading:
        ax.set_title(heading, fontsize=9, loc="left")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    _place_labels(figure, ax, pending_labels)
    what = f"steps {lo:g}-{hi:g}" if tl.unit == "step" else f"t={lo:g}-{hi:g} ms"
    figure.set_label(f"{what}; nodes {', '.join(row)}")  # what is drawn, in words (a caption, a screen reader)
    return figure


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_LABEL_SHIFTS = (0.0, 0.16, -0.16, 0.32, -0.32)  # lanes up or down tried for a label that would overlap


def _place_labels(figure: Figure, ax: Any, labels: list[tuple[float, float, str, str, str]]) -> None:
    """Write the labels where they overprint no other: each tries a few heights near its place;
    one that fits nowhere is left out, and the count of those left out is written in a corner."""
    if not labels:
        return
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    frame = ax.get_window_extent(renderer)
    left, right = ax.get_xlim()
    placed: list[Any] = []
    skipped = 0
    for x, y, text, align, gid in labels:
        for shift in _LABEL_SHIFTS:
            artist = ax.text(x, y + shift, _cut(text, 48), fontsize=5.5, ha=align, va="center", clip_on=True,
                             zorder=5, bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 0.5})
            box = artist.get_window_extent(renderer)
            if box.x0 < frame.x0:  # kept inside the picture: a label cut at its edge is unreadable
                artist.set_horizontalalignment("left")
                artist.set_x(left)
            elif box.x1 > frame.x1:
                artist.set_horizontalalignment("right")
                artist.set_x(right)
            box = artist.get_window_extent(renderer).expanded(1.02, 1.1)
            if not any(box.overlaps(other) for other in placed):
                artist.set_gid(gid)
                placed.append(box)
                break
            artist.remove()
        else:
            skipped += 1
    if skipped:
        note = ax.text(0.995, 0.01, f"{skipped} labels left out (no room): narrow the window to see them",
                       transform=ax.transAxes, fontsize=6, ha="right", va="bottom", color="#555555")
        note.set_gid("labels_skipped")


def _draw_message(ax: Any, m: _Message, row: dict[str, float], tint: str, span: float, *,
                  highlighted: bool = False, faded: bool = False) -> None:
    y0, y1 = row[m.sender], row[m.receiver]
    x0, x1 = m.sent, m.at
    if y0 == y1 and x1 - x0 < span * 0.004:
        x1 = x0 + span * 0.004  # a message to itself: a short hop along the lane
    width = 2.0 if highlighted else 0.9
    alpha = 0.25 if faded else 1.0
    if m.dropped:
        (line,) = ax.plot([x0, x1], [y0, y1], color=tint, linewidth=width, alpha=0.7 * alpha, linestyle=":", zorder=2)
        line.set_gid("drop_path")
        (cross,) = ax.plot([x1], [y1], marker="x", color=tint, markersize=9 if highlighted else 7, alpha=alpha,
                           markeredgewidth=2.4 if highlighted else 1.8, zorder=4)
        cross.set_gid("drop")
    else:
        arrow = FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=11 if highlighted else 8,
                                color=tint, linewidth=width, alpha=alpha, linestyle="--" if m.duplicate else "-",
                                shrinkA=0, shrinkB=0, zorder=3.5 if highlighted else 3,
                                connectionstyle="arc3,rad=-0.6" if y0 == y1 else "arc3")
        arrow.set_gid("path" if highlighted else "arrow")
        ax.add_patch(arrow)
        if m.duplicate:
            (diamond,) = ax.plot([x1], [y1], marker="D", color=tint, markersize=4, alpha=alpha, zorder=4)
            diamond.set_gid("duplicate")


def _draw_fault(ax: Any, f: FaultSpan, span: float, lanes: list[str]) -> tuple[float, float, str, str, str]:
    """Draw a fault's span; its label is returned to be placed with the others."""
    width = f.end - f.start
    if width <= 0:  # an instant (a trace's drop or undrop step): a line across every lane
        line = ax.axvline(f.start, color=_FAULT, linewidth=2.0, zorder=1)
        line.set_gid("fault")
        return f.start, _FAULT_ROW, " " + _cut(f.label, 60), "left", "fault_label"
    box = Rectangle((f.start, _FAULT_ROW - 0.3), width, 0.6, facecolor=_FAULT, edgecolor="#e6550d", linewidth=0.6,
                    alpha=0.7, zorder=1)
    box.set_gid("fault")
    ax.add_patch(box)
    ax.axvspan(f.start, f.end, color=_FAULT, alpha=0.08, zorder=0)
    return f.start + 0.005 * span, _FAULT_ROW, _cut(f.label, 90), "left", "fault_label"
