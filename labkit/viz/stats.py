"""Statistics of a run as DataFrames and plots: messages per command, latency, throughput, log size.

Runs are read like the timeline reads them (a Simulation, an EventLog or a
saved run log); latencies come from ``sim.histories()`` (or any list of
HistoryRecord). Fault periods are shaded on the plots over time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from labkit.client import HistoryRecord
from labkit.node import Node
from labkit.sim.log import RESPONSE, SEND, EventLog
from labkit.sim.simulator import Simulation
from labkit.values import brief
from labkit.viz.faults import fault_spans
from labkit.viz.sources import RunRecords, load_run_log, run_records

__all__ = ["messages_per_command", "plot_messages_per_command", "latencies", "latency_summary",
           "plot_latency_cdf", "throughput", "plot_throughput", "sample_log_sizes", "plot_log_sizes"]

RunSource = Simulation | EventLog | RunRecords | str | Path


def _run(source: RunSource) -> RunRecords:
    return load_run_log(source) if isinstance(source, (str, Path)) else run_records(source)


def _figure(height: float = 3.5) -> tuple[Figure, Any]:
    figure = Figure(figsize=(8, height))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot(1, 1, 1)


def _shade_faults(ax: Any, run: RunRecords, end: float) -> None:
    for span in fault_spans(run.records, end):
        patch = ax.axvspan(span.start, span.end, color="#fdae6b", alpha=0.3, zorder=0)
        patch.set_gid("fault")


# ---- messages per command ---------------------------------------------------------


def messages_per_command(source: RunSource, *, servers_only: bool = False) -> Any:
    """Messages sent per completed command, by message type (DataFrame indexed by type).

    Columns: ``messages`` (sent, as DSLabs counts them) and ``per_command``;
    the last row, ``total``, sums them. ``servers_only`` counts only messages
    sent to servers.
    """
    import pandas as pd

    run = _run(source)
    servers = set(run.servers)
    commands = sum(1 for r in run.records if r["kind"] == RESPONSE)
    counts: dict[str, int] = {}
    for r in run.records:
        if r["kind"] == SEND and (not servers_only or r["peer"] in servers):
            counts[r["type"]] = counts.get(r["type"], 0) + 1
    frame = pd.DataFrame({"messages": pd.Series(counts, dtype="int64")}).sort_values("messages", ascending=False)
    frame.loc["total"] = frame["messages"].sum()
    frame["per_command"] = frame["messages"] / commands if commands else math.nan
    frame.index.name = "type"
    return frame


def plot_messages_per_command(source: RunSource, *, minimum: float | None = None,
                              servers_only: bool = False) -> Figure:
    """Bars of messages per command by type, with the protocol's ``minimum`` total as a reference line."""
    frame = messages_per_command(source, servers_only=servers_only)
    figure, ax = _figure(1.2 + 0.3 * len(frame))
    names = list(frame.index)[::-1]
    values = list(frame["per_command"])[::-1]
    bars = ax.barh(names, values, color=["#636363" if n == "total" else "#6baed6" for n in names])
    for bar in bars:
        bar.set_gid("bar")
    if minimum is not None:
        line = ax.axvline(minimum, color="#d62728", linestyle="--", label=f"minimum ({minimum:g})")
        line.set_gid("minimum")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("messages per command" + (" (to servers)" if servers_only else ""))
    figure.tight_layout()
    return figure


# ---- latency ------------------------------------------------------------------------


def latencies(source: Simulation | Sequence[HistoryRecord]) -> Any:
    """Completed client operations with their latency (DataFrame: client, command, invoke, response, latency)."""
    import pandas as pd

    records = source.histories() if isinstance(source, Simulation) else list(source)
    rows = [{"client": r.client.name, "command": brief(r.command, 80), "invoke": r.invoke, "response": r.response,
             "latency": r.response - r.invoke}
            for r in records if r.response is not None and r.invoke is not None]
    return pd.DataFrame.from_records(rows, columns=["client", "command", "invoke", "response", "latency"])


def latency_summary(source: Simulation | Sequence[HistoryRecord],
                    quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> Any:
    """Latency per client and overall (``all``): count, mean, the quantiles and max, in virtual ms."""
    import pandas as pd

    frame = latencies(source)

    def row(values: Any) -> dict[str, float]:
        out = {"count": float(len(values)), "mean": float(values.mean()) if len(values) else math.nan}
        out.update({f"p{round(q * 100):d}": float(values.quantile(q)) if len(values) else math.nan for q in quantiles})
        out["max"] = float(values.max()) if len(values) else math.nan
        return out

    table = {name: row(group["latency"]) for name, group in frame.groupby("client")}
    table["all"] = row(frame["latency"])
    summary = pd.DataFrame.from_dict(table, orient="index")
    summary.index.name = "client"
    return summary


def plot_latency_cdf(source: Simulation | Sequence[HistoryRecord], *, per_client: bool = True) -> Figure:
    """The cumulative distribution of latencies: all operations, and each client if ``per_client``."""
    frame = latencies(source)
    figure, ax = _figure()
    groups = [("all", frame["latency"])]
    if per_client and frame["client"].nunique() > 1:
        groups += [(name, group["latency"]) for name, group in frame.groupby("client")]
    for name, values in groups:
        ordered = sorted(values)
        if not ordered:
            continue
        ys = [(k + 1) / len(ordered) for k in range(len(ordered))]
        (line,) = ax.step(ordered, ys, where="post", label=name, linewidth=2.0 if name == "all" else 1.0)
        line.set_gid("cdf")
    ax.set_xlabel("latency (virtual ms)")
    ax.set_ylabel("share of operations")
    ax.set_ylim(0, 1.02)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


# ---- throughput -----------------------------------------------------------------------


def throughput(source: RunSource, bucket: int = 100) -> Any:
    """Completed operations per ``bucket`` ms of virtual time (DataFrame: time, completed, per_second)."""
    import pandas as pd

    run = _run(source)
    end = max((r["time"] for r in run.records), default=0)
    counts = [0] * (end // bucket + 1)
    for r in run.records:
        if r["kind"] == RESPONSE:
            counts[r["time"] // bucket] += 1
    return pd.DataFrame({"time": [k * bucket for k in range(len(counts))], "completed": counts,
                         "per_second": [c * 1000 / bucket for c in counts]})


def plot_throughput(source: RunSource, bucket: int = 100) -> Figure:
    """Operations per second of virtual time, with fault periods shaded."""
    run = _run(source)
    frame = throughput(run, bucket)
    figure, ax = _figure()
    end = float(frame["time"].iloc[-1] + bucket)
    _shade_faults(ax, run, end)
    (line,) = ax.step(list(frame["time"]) + [end], list(frame["per_second"]) + [frame["per_second"].iloc[-1]],
                      where="post", color="#3182bd")
    line.set_gid("throughput")
    ax.set_xlabel("virtual time (ms)")
    ax.set_ylabel("operations per second")
    figure.tight_layout()
    return figure


# ---- log size -----------------------------------------------------------------------------


def sample_log_sizes(sim: Simulation, measure: Callable[[Node], float], *, every: int, until: int,
                     nodes: Sequence[Node] | None = None) -> Any:
    """Run ``sim`` to virtual time ``until``, recording ``measure(server)`` every ``every`` ms.

    Returns a DataFrame (time, node, size) for :func:`plot_log_sizes`. For the
    Paxos lab, ``measure=lambda s: s.last_non_empty() - s.first_non_cleared() + 1``
    counts the slots a server still keeps.
    """
    import pandas as pd

    rows = []
    while True:
        for node in (nodes if nodes is not None else sim.servers):
            rows.append({"time": sim.now, "node": node.address.name, "size": measure(node)})
        if sim.now >= until:
            break
        sim.run_for(min(every, until - sim.now))
    return pd.DataFrame.from_records(rows, columns=["time", "node", "size"])


def plot_log_sizes(samples: Any, run: RunSource | None = None, *, ylabel: str = "log size") -> Figure:
    """One line per node from (time, node, size) samples; fault periods of ``run`` shaded if given."""
    figure, ax = _figure()
    if run is not None and len(samples):
        _shade_faults(ax, _run(run), float(samples["time"].max()))
    for name, group in samples.groupby("node", sort=True):
        (line,) = ax.plot(group["time"], group["size"], label=str(name), drawstyle="steps-post")
        line.set_gid("log_size")
    ax.set_xlabel("virtual time (ms)")
    ax.set_ylabel(ylabel)
    if samples["node"].nunique() > 1:
        ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
