"""Pictures of runs and traces: timelines, counterexample tables, the stepper, statistics.

Figures are built without pyplot, so they work headless and never pop up a
window. In IPython or Jupyter, importing this package makes such figures
display as images when they are the value of a cell.
"""

from __future__ import annotations


def _show_figures_in_notebooks() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type(Figure, lambda figure: print_figure(figure, "png", bbox_inches="tight"))


_show_figures_in_notebooks()

from labkit.viz.stats import (  # noqa: E402  (after the display hook, which they rely on)
    latency_summary,
    plot_latency_cdf,
    plot_messages_per_command,
    plot_throughput,
)
from labkit.viz.stepper_widget import show_stepper  # noqa: E402
from labkit.viz.timeline import plot_timeline  # noqa: E402
from labkit.viz.trace_table import CounterexampleTable, trace_table  # noqa: E402

__all__ = [
    "plot_timeline",
    "CounterexampleTable",
    "trace_table",
    "show_stepper",
    "plot_messages_per_command",
    "plot_latency_cdf",
    "latency_summary",
    "plot_throughput",
]
