"""The counterexample table: rows per event with changed fields, text identical to Trace.render()."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labkit.search.trace import diff_values
from labkit.viz.trace_table import CounterexampleTable, trace_table
from labkit.wire import decode_data, encode, learn_schemas, schemas_of
from test_viz_support import paxos_trace, ping_trace


@dataclass(frozen=True)
class Entry:
    value: str
    chosen: bool


def test_rows_follow_the_trace(tmp_path: Path):
    trace = ping_trace(tmp_path)
    frame = trace_table(trace)
    assert list(frame["step"]) == [1, 2, 3]
    assert list(frame["node"]) == ["server", "client1", "client1"]
    assert list(frame["event"]) == [str(e) for e in trace.events]
    assert frame["changes"].iloc[0] == ()
    assert "sent: 1 -> 2" in frame["changes"].iloc[1]


def test_text_is_exactly_the_trace_rendering(tmp_path: Path):
    for trace in (ping_trace(tmp_path), paxos_trace(tmp_path)):
        assert CounterexampleTable(trace).to_text() == trace.render()


def test_html_ends_with_the_violation_and_csv_has_a_row_per_event(tmp_path: Path):
    trace = paxos_trace(tmp_path)
    table = CounterexampleTable(trace)
    page = table._repr_html_()
    assert page.count("<tr") == len(trace.events) + 1
    assert page.rindex("lk-verdict") > page.rindex("<tr")
    assert "Active log slots consistent" in page.split("lk-verdict", 1)[1]
    csv_text = table.to_csv()
    import io

    import pandas as pd

    assert len(pd.read_csv(io.StringIO(csv_text))) == len(trace.events)


def test_a_change_inside_a_log_names_the_field_and_shows_it_in_full():
    """A slot whose ``chosen`` flips is shown as that field, not as a cut rendering of the whole slot."""
    learn_schemas(schemas_of([Entry]))  # as a worker reports the fields of the classes it sends
    long_value = "ba" * 80
    before = decode_data(encode([Entry("x", True), Entry(long_value, False)]))
    after = decode_data(encode([Entry("x", True), Entry(long_value, True)]))
    out: list[str] = []
    diff_values("log", before, after, out)
    assert out == ["log[1].chosen: False -> True"]
    out = []
    diff_values("log", before, decode_data(encode([Entry("x", True), Entry(long_value + "!", False)])), out)
    assert out == [f"log[1].value: {long_value!r} -> {long_value + '!'!r}"]
