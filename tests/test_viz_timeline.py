"""Message timelines drawn for real runs and traces: the structure of the picture, not only that it exists."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from labkit.labs.ping.tests import SERVER
from labkit.node import client
from labkit.search import Event, Trace
from labkit.sim import RunSettings
from labkit.viz.faults import fault_spans
from labkit.viz.sources import VizError
from labkit.viz.timeline import plot_timeline, type_colour
from test_viz_support import ping_run, ping_trace, paxos_run, paxos_trace, reference

FOLDED = {"Heartbeat", "HeartbeatReply"}


def gids(figure: Figure) -> Counter[str]:
    return Counter(a.get_gid() for a in figure.axes[0].get_children() if a.get_gid())


def legend(figure: Figure) -> list[str]:
    found = figure.axes[0].get_legend()
    return [] if found is None else [t.get_text() for t in found.get_texts()]


def lanes(figure: Figure) -> list[str]:
    return [t.get_text() for t in figure.axes[0].get_yticklabels() if t.get_text() != "faults"]


def expected(records, kind, window=None, types=None, nodes=None, folded=frozenset()):
    return [r for r in records if r["kind"] == kind
            and (window is None or window[0] <= r["time"] <= window[1])
            and (types is None or r["type"] in types)
            and (nodes is None or (r["node"] in nodes and r["peer"] in nodes))
            and r["type"] not in folded]


@pytest.fixture(scope="module")
def ping_sim():
    return ping_run(RunSettings(delivery_rate=0.7, latency=(1, 20)))


@pytest.fixture(scope="module")
def paxos_sim():
    return paxos_run()


def test_ping_run_has_an_arrow_per_delivery_a_cross_per_drop_and_a_lane_per_node(ping_sim):
    records = ping_sim.log.to_records()
    figure = plot_timeline(ping_sim)
    counts = gids(figure)
    assert counts["arrow"] == len(expected(records, "deliver")) > 0
    assert counts["drop"] == len(expected(records, "drop")) > 0
    assert counts["lane"] == len(ping_sim.nodes) == 3
    assert lanes(figure) == ["server", "client1", "client2"]
    assert counts["timer"] == sum(1 for r in records if r["kind"] == "timer_fire")
    assert counts["op"] == sum(1 for r in records if r["kind"] == "invoke")
    assert legend(figure) == ["PingRequest", "PongReply"]


def test_the_partition_is_a_fault_span_on_the_fault_track(ping_sim):
    figure = plot_timeline(ping_sim)
    assert gids(figure)["fault"] == 1
    assert "faults" in [t.get_text() for t in figure.axes[0].get_yticklabels()]
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert any(t.startswith("partition {client2, server} | {client1}") for t in texts)
    (span,) = fault_spans(ping_sim.log.to_records(), ping_sim.now)
    assert (span.start, span.end) == (0, 100)


def test_no_fault_track_without_faults():
    sim = ping_run(partition=False)
    figure = plot_timeline(sim)
    assert gids(figure)["fault"] == 0
    assert "faults" not in [t.get_text() for t in figure.axes[0].get_yticklabels()]


def test_duplicates_are_marked_once_per_extra_copy():
    sim = ping_run(RunSettings(duplication_rate=0.5, latency=(1, 20)), partition=False)
    records = sim.log.to_records()
    seen, extra = set(), 0
    for r in records:
        if r["kind"] == "deliver":
            extra += r["detail"] in seen
            seen.add(r["detail"])
    counts = gids(plot_timeline(sim))
    assert counts["duplicate"] == extra > 0
    assert counts["arrow"] == len(expected(records, "deliver"))


def test_paxos_heartbeats_are_folded_and_counted_in_the_title(paxos_sim):
    records = paxos_sim.log.to_records()
    figure = plot_timeline(paxos_sim)
    counts = gids(figure)
    assert counts["arrow"] == len(expected(records, "deliver", folded=FOLDED))
    assert counts["lane"] == 4
    assert not FOLDED & set(legend(figure))
    beats = Counter(r["type"] for r in records if r["kind"] in ("deliver", "drop") and r["type"] in FOLDED)
    assert beats
    assert all(f"{t} x{n}" in figure.axes[0].get_title(loc="left") for t, n in beats.items())
    unfolded = plot_timeline(paxos_sim, fold=())
    assert gids(unfolded)["arrow"] == len(expected(records, "deliver"))
    assert FOLDED <= set(legend(unfolded))


def test_filters_by_type_node_and_window(paxos_sim):
    records = paxos_sim.log.to_records()
    window = (100, 250)
    nodes = ["server1", "server2", "client1"]
    figure = plot_timeline(paxos_sim, types=["P2a", "P2b"], nodes=nodes, window=window)
    counts = gids(figure)
    assert counts["arrow"] == len(expected(records, "deliver", window, {"P2a", "P2b"}, nodes)) > 0
    assert counts["lane"] == 3 and lanes(figure) == nodes
    assert legend(figure) == ["P2a", "P2b"]
    assert counts["timer"] == 0  # no timer is of those types
    assert figure.axes[0].get_xlim()[0] < window[0] < window[1] < figure.axes[0].get_xlim()[1]
    cut = plot_timeline(paxos_sim, nodes=["server1", "server3"], fold=())
    assert gids(cut)["drop"] == len(expected(records, "drop", nodes=["server1", "server3"])) > 0


def test_labels_only_on_demand(ping_sim):
    assert gids(plot_timeline(ping_sim))["label"] == 0
    figure = plot_timeline(ping_sim, labels=True)
    counts = gids(figure)
    # Every message is labelled, or counted in the note of labels left out for want of room.
    notes = [t.get_text() for t in figure.axes[0].texts if t.get_gid() == "labels_skipped"]
    skipped = int(notes[0].split()[0]) if notes else 0
    assert counts["label"] + skipped >= counts["arrow"] + counts["drop"] and counts["label"] > 0


def test_a_saved_run_log_draws_the_same_picture(ping_sim, tmp_path: Path):
    path = ping_sim.log.save(tmp_path / "run.runlog.jsonl", {"lab": "ping"})
    assert gids(plot_timeline(path)) == gids(plot_timeline(ping_sim.log)) == gids(plot_timeline(ping_sim))


def test_saves_png_and_svg(ping_sim, tmp_path: Path):
    figure = plot_timeline(ping_sim)
    figure.savefig(tmp_path / "t.png")
    figure.savefig(tmp_path / "t.svg")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "t.svg").read_text()
    assert svg.count('id="arrow') == gids(figure)["arrow"]


def test_a_trace_is_drawn_in_steps(tmp_path: Path):
    trace = ping_trace(tmp_path)
    figure = plot_timeline(trace)
    counts = gids(figure)
    assert counts["arrow"] == sum(e.kind == "message" for e in trace.events) == 3
    assert counts["duplicate"] == 1  # the last step delivers the same pong again
    assert counts["lane"] == 2
    assert figure.axes[0].get_xlabel() == "step"
    assert "Clients got expected results" in figure.axes[0].get_title(loc="left")


def test_a_paxos_trace_shows_timers_and_messages(tmp_path: Path):
    trace = paxos_trace(tmp_path)
    counts = gids(plot_timeline(trace, fold=()))
    assert counts["arrow"] == sum(e.kind == "message" for e in trace.events)
    assert counts["timer"] == sum(e.kind == "timer" for e in trace.events)
    assert counts["lane"] == 5


def test_dropping_pending_messages_in_a_trace_is_a_fault_with_crosses():
    sol = reference("ping")
    from labkit.labs.ping.tests import ping_workload
    from labkit.search import SearchState

    start = SearchState.initial(servers=[sol.PingServer(SERVER)],
                                workers=[(sol.PingClient(client(1), SERVER), ping_workload(["a"]))])
    after = start.drop_pending_messages()
    timer = after.event_value(after.events(((True, True), (True, True)), (True, True))[0])
    trace = Trace(start, [Event("drop", None), timer])
    counts = gids(plot_timeline(trace))
    assert counts["fault"] == 1 and counts["drop"] == len(start.envs) == 1 and counts["timer"] == 1


def test_a_file_that_is_neither_a_log_nor_a_trace_is_refused(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(VizError, match="neither"):
        plot_timeline(path)


def test_a_message_type_has_one_colour_in_every_picture(paxos_sim):
    def colours(figure: Figure) -> dict[str, str]:
        found = figure.axes[0].get_legend()
        return {t.get_text(): to_hex(h.get_color()) for t, h in zip(found.get_texts(), found.legend_handles)
                if t.get_text() not in ("dropped", "duplicate", "timer fired", "client operation", "fault in force")}

    everything = colours(plot_timeline(paxos_sim, fold=()))
    some = colours(plot_timeline(paxos_sim, types=["P2b", "PaxosReply"]))
    assert some and all(everything[t] == c for t, c in some.items())
    assert everything["P2a"] == to_hex(type_colour("P2a")) != everything["P2b"]
    assert type_colour("SomeStudentMessage") == type_colour("SomeStudentMessage")


def label_boxes(figure: Figure) -> list:
    renderer = figure.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in figure.axes[0].texts if a.get_gid() == "label"]


def test_a_failing_run_is_drawn_around_its_unanswered_command(tmp_path):
    from conftest import RETRY_BODY, ping_variant

    from labkit.labs.ping.tests import LAB
    from labkit.testing.runner import evidence_timeline, failure_focus, run_one

    no_retry = ping_variant(tmp_path, [(RETRY_BODY, "        pass")])
    (spec,) = LAB.select(numbers=["1.4"])
    result = run_one(spec, no_retry, lab=LAB)
    assert not result.passed and "sent at t=" in result.failure
    sent = int(result.failure.split("sent at t=")[1].split(")")[0])
    focus = failure_focus(result.failure)
    assert focus.client == "client1" and focus.start == sent and focus.end is None
    figure = evidence_timeline(result, end=True)
    low, high = figure.axes[0].get_xlim()
    assert low <= sent <= high and high - low < 1200
    assert "unanswered command" in figure.axes[0].get_title(loc="left")
    counts = gids(figure)
    assert counts["focus_op"] == 1
    # What the unanswered request set off ends in a drop: the cause is in the picture.
    assert counts["drop"] >= 1 and counts["path"] + counts["drop"] >= 1
    assert lanes(figure) == ["server", "client1"]  # the nodes on the path, not the other clients


def test_a_wrong_result_is_drawn_with_its_causal_path_from_request_to_reply(tmp_path):
    """The reply a client got, the handler that sent it, the message that ran that handler, ...
    back to the client's request: each arrow on that chain stands out, labelled, none overprinting."""
    from labkit.sim import Simulation
    from labkit.viz.timeline import Focus

    sim = paxos_run()
    record = next(r for r in sim.histories() if r.response is not None and r.invoke is not None and r.invoke > 0)
    figure = plot_timeline(sim, focus=Focus(record.client.name, record.invoke, record.response))
    counts = gids(figure)
    assert counts["focus_op"] == 1
    assert counts["path"] >= 2  # at least the request and the reply
    low, high = figure.axes[0].get_xlim()
    assert low <= record.invoke and record.response <= high and high - low < 400
    shown = lanes(figure)
    assert record.client.name in shown and len(shown) < len(sim.nodes)
    assert any("PaxosRequest" in t.get_text() for t in figure.axes[0].texts)
    assert any("PaxosReply" in t.get_text() for t in figure.axes[0].texts)
    boxes = label_boxes(figure)
    assert len(boxes) >= 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert isinstance(sim, Simulation)


def test_labels_of_a_busy_picture_never_overprint(paxos_sim):
    figure = plot_timeline(paxos_sim, window=(0, 200), labels=True)
    boxes = label_boxes(figure)
    assert len(boxes) >= 5
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_failure_focus_reads_the_client_and_times_from_the_explanation():
    from labkit.testing.runner import failure_focus

    wrong = "client2 got X for Get, expected Y (invoked at t=120, answered at t=180)"
    focus = failure_focus(wrong)
    assert (focus.client, focus.start, focus.end) == ("client2", 120, 180)
    waiting = "client3 got no result for GET foo (sent at t=11) within 10000 ms of virtual time"
    focus = failure_focus(waiting)
    assert (focus.client, focus.start, focus.end) == ("client3", 11, None)
    assert failure_focus("something else failed") is None
