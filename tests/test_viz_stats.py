"""Run statistics: messages per command, latency, throughput with fault shading, log sizes."""

from __future__ import annotations

from collections import Counter

import pytest

from labkit.viz.stats import (
    latencies,
    latency_summary,
    messages_per_command,
    plot_latency_cdf,
    plot_log_sizes,
    plot_messages_per_command,
    plot_throughput,
    sample_log_sizes,
    throughput,
)
from test_viz_support import paxos_run


@pytest.fixture(scope="module")
def sim():
    return paxos_run()


def gids(figure):
    return Counter(a.get_gid() for a in figure.axes[0].get_children() if a.get_gid())


def test_messages_per_command_by_type(sim):
    records = sim.log.to_records()
    commands = sum(r["kind"] == "response" for r in records)
    frame = messages_per_command(sim)
    sent = Counter(r["type"] for r in records if r["kind"] == "send")
    assert dict(frame["messages"].drop("total")) == dict(sent)
    assert frame.loc["total", "messages"] == sum(sent.values())
    assert frame.loc["total", "per_command"] == pytest.approx(sum(sent.values()) / commands)
    to_servers = messages_per_command(sim, servers_only=True)
    assert "PaxosReply" not in to_servers.index
    figure = plot_messages_per_command(sim, minimum=4)
    assert gids(figure)["bar"] == len(frame) and gids(figure)["minimum"] == 1


def test_latency_table_and_cdf(sim):
    frame = latencies(sim)
    done = [r for r in sim.histories() if r.response is not None]
    assert len(frame) == len(done) == 14
    assert list(frame["latency"]) == [r.response - r.invoke for r in done]
    summary = latency_summary(sim)
    row = summary.loc["all"]
    assert row["count"] == 14 and row["p50"] <= row["p90"] <= row["p99"] <= row["max"] == frame["latency"].max()
    assert gids(plot_latency_cdf(sim))["cdf"] == 1  # one client: only the overall curve


def test_throughput_counts_every_completion_and_shades_the_partition(sim):
    frame = throughput(sim, bucket=50)
    assert frame["completed"].sum() == 14
    assert (frame["per_second"] == frame["completed"] * 20).all()
    figure = plot_throughput(sim, bucket=50)
    assert gids(figure)["fault"] == 1 and gids(figure)["throughput"] == 1


def test_log_sizes_sampled_over_time():
    run = paxos_run(partition=False)
    start = run.now
    samples = sample_log_sizes(run, lambda s: s.last_non_empty() - s.first_non_cleared() + 1, every=50, until=start + 200)
    assert len(samples) == 3 * 5 and list(samples["time"].unique()) == [start + 50 * k for k in range(5)]
    assert gids(plot_log_sizes(samples, run))["log_size"] == 3
