"""Porcupine-style pictures of a history: one lane per client, operations as
intervals, the longest partial linearization numbered and the offending
operation in red. Works headless (no pyplot, no window)."""

from __future__ import annotations

from typing import Hashable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from labkit.check.linearizability import LinearizabilityResult, Model, Operation, describe_client

__all__ = ["plot_history"]

_OK = "#9ecae1"
_OPEN = "#dddddd"
_RED = "#e34a33"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plot_history(
    result_or_ops: LinearizabilityResult | Sequence[Operation],
    model: Model | None = None,
    *,
    title: str | None = None,
    label_chars: int = 40,
) -> Figure:
    """Draw a history (or the part a result is about) and return the Figure.

    Each operation is a bar from its call to its return (to the right edge,
    hatched, if it never returned), labelled with its input and output. For a
    result, ``#k`` marks the k-th operation of the (partial) linearization and
    the offending operation is red. Bars carry the gid ``"op"`` or
    ``"offending"``; lanes are the y tick labels, one per client.
    """
    if isinstance(result_or_ops, LinearizabilityResult):
        result = result_or_ops
        ops = list(result.ops)
        model = model or result.model
        order = {id(op): k for k, op in enumerate(result.linearization, start=1)}
        offending = {id(op) for op in result.offending}
        if title is None:
            where = f" (key {result.partition!r})" if result.partition is not None else ""
            title = f"{result.verdict}{where}"
    else:
        ops = list(result_or_ops)
        order, offending = {}, set()
    describe = model.describe_operation if model is not None else (lambda i, o: f"{i!r} -> {o!r}")

    lanes: dict[Hashable, int] = {}
    for op in sorted(ops, key=lambda o: o.call):
        lanes.setdefault(op.client, len(lanes))
    times = [op.call for op in ops] + [op.ret for op in ops if op.ret is not None]
    start, end = (min(times), max(times)) if times else (0.0, 1.0)
    span = max(end - start, 1.0)
    right = end + 0.05 * span

    figure = Figure(figsize=(12, 1.0 + 0.6 * max(len(lanes), 1)))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for op in ops:
        y = lanes[op.client]
        finish = right if op.ret is None else op.ret
        width = max(finish - op.call, 0.004 * span)
        bad = id(op) in offending
        color = _RED if bad else (_OPEN if op.ret is None else _OK)
        bar = Rectangle(
            (op.call, y - 0.3), width, 0.6, facecolor=color, edgecolor="black", linewidth=0.6,
            hatch="//" if op.ret is None else None,
        )
        bar.set_gid("offending" if bad else "op")
        ax.add_patch(bar)
        label = _short(describe(op.input, op.output), label_chars)
        if id(op) in order:
            label = f"#{order[id(op)]} {label}"
        ax.text(op.call + width / 2, y, label, ha="center", va="center", fontsize=6, clip_on=True)
    ax.set_xlim(start - 0.02 * span, right + 0.02 * span)
    ax.set_ylim(-0.7, max(len(lanes), 1) - 0.3)
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([describe_client(c) for c in lanes])
    ax.invert_yaxis()
    ax.set_xlabel("time")
    if title:
        ax.set_title(title)
    figure.tight_layout()
    return figure
