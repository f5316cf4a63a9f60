"""Hand-made corner histories, bad input, the lincheck command and the picture."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from labkit.app import AMOCommand, AMOResult, Append, AppendResult, Get, GetResult, KeyNotFound, Put, PutOk
from labkit.check.histories import HistoryFormatError, read_etcd_log, read_kv_edn, read_kv_jsonl, write_kv_jsonl
from labkit.check.lincheck_command import register
from labkit.check.linearizability import (
    NOT_LINEARIZABLE,
    HistoryError,
    Operation,
    check,
    history_from_events,
)
from labkit.check.models import Cas, CasResult, Read, ReadResult, Write, WriteOk, kv_model, register_model
from labkit.node import Address

# Every test runs with both search loops: the pure-Python one and the compiled one (if built).
pytestmark = pytest.mark.usefixtures("search_loop")

A, B, C = Address("client1"), Address("client2"), Address("client3")


def op(client, inp, out, call, ret):
    return Operation(client, inp, out, call, ret)


# ---- corner histories ---------------------------------------------------------


def test_empty_history() -> None:
    assert check([], kv_model()).ok
    assert check([], register_model()).ok


def test_concurrent_overlapping_ops() -> None:
    # The read overlaps both writes, so it may see either value.
    base = [op(A, Write(1), WriteOk(), 0, 10), op(B, Write(2), WriteOk(), 1, 11)]
    for seen in (1, 2):
        assert check(base + [op(C, Read(), ReadResult(seen), 2, 12)], register_model()).ok
    # After both writes finished, reads must agree on one final value.
    late = [op(C, Read(), ReadResult(1), 20, 21), op(A, Read(), ReadResult(2), 22, 23)]
    assert not check(base + late, register_model()).ok


def test_intervals_are_closed() -> None:
    # The write returns at t=5 and the read is called at t=5: they overlap.
    ops = [op(A, Write(1), WriteOk(), 0, 5), op(B, Read(), ReadResult(None), 5, 6)]
    assert check(ops, register_model()).ok


def test_unknown_outcome_must_have_happened() -> None:
    ops = [op(A, Write(3), None, 0, None), op(B, Read(), ReadResult(3), 5, 6)]
    assert check(ops, register_model()).ok


def test_unknown_outcome_must_not_have_happened() -> None:
    ops = [
        op(A, Write(1), WriteOk(), 0, 1),
        op(B, Write(2), None, 2, None),
        op(C, Read(), ReadResult(1), 3, 4),
        op(C, Read(), ReadResult(1), 10, 11),
    ]
    assert check(ops, register_model()).ok
    # It cannot take effect before its call.
    early = [op(B, Write(2), None, 5, None), op(C, Read(), ReadResult(2), 0, 1)]
    assert not check(early, register_model()).ok


def test_failed_compare_and_set() -> None:
    ops = [
        op(A, Write(1), WriteOk(), 0, 1),
        op(B, Cas(2, 3), CasResult(False), 2, 3),
        op(C, Read(), ReadResult(1), 4, 5),
    ]
    assert check(ops, register_model()).ok
    wrong = [op(A, Write(1), WriteOk(), 0, 1), op(B, Cas(1, 3), CasResult(False), 2, 3)]
    result = check(wrong, register_model())
    assert result.verdict == NOT_LINEARIZABLE
    assert result.offending == [result.ops[1]]
    assert "cas from 1 to 3, which failed" in result.explanation


def test_read_of_never_written_key_keynotfound() -> None:
    model = kv_model()
    assert check([op(A, Get("k"), KeyNotFound(), 0, 1)], model).ok
    assert not check([op(A, Get("k"), GetResult(""), 0, 1)], model).ok
    # AMO wrappers are unwrapped.
    amo = [
        op(A, AMOCommand(Append("k", "x"), A, 1), AMOResult(AppendResult("x"), A, 1), 0, 1),
        op(B, AMOCommand(Get("k"), B, 1), AMOResult(GetResult("x"), B, 1), 2, 3),
    ]
    assert check(amo, model).ok


def test_read_of_never_written_key_empty_string() -> None:
    model = kv_model(missing="")
    assert check([op(A, Get("k"), GetResult(""), 0, 1)], model).ok
    assert check([op(A, Get("k"), KeyNotFound(), 0, 1)], model).ok
    assert not check([op(A, Put("k", "v"), PutOk(), 0, 1), op(B, Get("k"), GetResult(""), 2, 3)], model).ok


def test_kv_failure_explanation_names_key_clients_and_times() -> None:
    ops = [
        op(A, Put("foo", "x"), PutOk(), 0, 10),
        op(B, Append("foo", "y"), AppendResult("xy"), 20, 30),
        op(A, Put("bar", "1"), PutOk(), 0, 1),
        op(C, Get("foo"), GetResult("x"), 40, 50),
    ]
    result = check(ops, kv_model())
    assert result.verdict == NOT_LINEARIZABLE
    assert result.partition == "foo"
    assert [o.index for o in result.offending] == [3]
    text = result.explanation
    assert "key 'foo'" in text and "client3" in text and "t=40" in text and "'xy'" in text
    assert [o.index for o in result.minimal_conflict or []] == [3]


def test_witness_order_for_a_linearizable_history() -> None:
    ops = [op(A, Put("k", "a"), PutOk(), 0, 10), op(B, Get("k"), GetResult("a"), 1, 2)]
    result = check(ops, kv_model())
    assert result.ok
    assert result.linearization == list(result.ops)


def test_sequential_partitions_replayed() -> None:
    # Key "a" is sequential (each call after the previous return), key "b" overlaps.
    ok_a = [op(A, Put("a", "1"), PutOk(), 0, 1), op(A, Append("a", "2"), None, 2, 3),
            op(B, Get("a"), GetResult("12"), 4, 5)]
    b = [op(C, Put("b", "x"), PutOk(), 0, 10), op(B, Get("b"), GetResult("x"), 1, 2)]
    result = check(ok_a + b, kv_model())
    assert result.ok
    assert [o.input for o in result.linearization] == [o.input for o in ok_a + b]
    assert result.states == ["1", "12", "12", "x", "x"]
    # A stale read on the sequential key: that key is at fault, explained as before.
    bad_a = ok_a[:2] + [op(B, Get("a"), GetResult("1"), 4, 5)]
    result = check(b + bad_a, kv_model())
    assert result.verdict == NOT_LINEARIZABLE and result.partition == "a"
    assert [o.input for o in result.linearization] == [o.input for o in bad_a[:2]]
    assert [o.index for o in result.offending] == [4]
    assert [o.call for o in result.minimal_conflict or []] == [4]
    # A sequential partition whose operation returns before its call is still malformed.
    with pytest.raises(HistoryError):
        check(b + [op(A, Put("a", "1"), PutOk(), 3, 2)], kv_model())


# ---- building histories from events ----------------------------------------------


def test_history_from_events_pairs_calls_and_returns() -> None:
    ops = history_from_events(
        [(A, "call", Get("k"), 0), (B, "call", Put("k", "v"), 1), (A, "return", KeyNotFound(), 2)]
    )
    assert [(o.client, o.ret) for o in ops] == [(A, 2), (B, None)]
    assert check(ops, kv_model()).ok


def test_response_without_call() -> None:
    with pytest.raises(HistoryError, match="no open call"):
        history_from_events([(A, "return", PutOk(), 1)])


def test_two_open_calls_by_one_client() -> None:
    with pytest.raises(HistoryError, match="still open"):
        history_from_events([(A, "call", Get("k"), 0), (A, "call", Get("j"), 1)])


def test_response_before_call() -> None:
    with pytest.raises(HistoryError, match="before its call"):
        history_from_events([(A, "call", Get("k"), 5), (A, "return", KeyNotFound(), 3)])
    with pytest.raises(HistoryError, match="before its call"):
        check([op(A, Get("k"), KeyNotFound(), 5, 3)], kv_model())


# ---- file readers -------------------------------------------------------------


def test_malformed_etcd_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.log"
    path.write_text("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:raed\tnil\n")
    with pytest.raises(HistoryFormatError) as info:
        read_etcd_log(path)
    assert "bad.log" in str(info.value) and "line 2" in str(info.value) and ":raed" in str(info.value)
    assert info.value.line == 2


def test_malformed_kv_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text('{:process 0, :type :invoke, :f :get, :key "1", :value nil}\n{:process 0, :type :ok}\n')
    with pytest.raises(HistoryFormatError, match=r"bad\.txt, line 2: expected"):
        read_kv_edn(path)


def test_etcd_reader_handles_spaces_info_and_read_timeouts(tmp_path: Path) -> None:
    path = tmp_path / "h.log"
    path.write_text(
        "INFO  jepsen.util - 1   :invoke :write  3\n"
        "INFO  jepsen.util - 2   :invoke :cas    [3 4]\n"
        "INFO  jepsen.util - 1   :info   :write  :timed-out\n"
        "INFO  jepsen.util - 3   :invoke :read   nil\n"
        "INFO  jepsen.util - 3   :fail   :read   :timed-out\n"
        "INFO  jepsen.util - 2   :fail   :cas    [3 4]\n"
    )
    ops = read_etcd_log(path)
    assert [(o.input, o.output, o.call, o.ret) for o in ops] == [
        (Write(3), None, 1, None),
        (Cas(3, 4), CasResult(False), 2, 6),
        (Read(), None, 4, 5),
    ]
    assert check(ops, register_model()).ok


def test_jsonl_round_trip(tmp_path: Path) -> None:
    ops = [op("c1", Put("k", "v"), PutOk(), 0, 1), op("c2", Get("k"), GetResult("v"), 2, None)]
    write_kv_jsonl(ops, tmp_path / "h.jsonl")
    back = read_kv_jsonl(tmp_path / "h.jsonl")
    assert [(o.client, o.input, o.output, o.call, o.ret) for o in back] == [
        (o.client, o.input, o.output, o.call, o.ret) for o in ops
    ]


# ---- the lincheck command ----------------------------------------------------------


def _lincheck(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="labkit")
    register(parser.add_subparsers())
    args = parser.parse_args(["lincheck", *argv])
    return args.func(args)


def test_command_verdicts_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.log"
    good.write_text("INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\n")
    assert _lincheck(str(good), "--model", "etcd") == 0
    bad = tmp_path / "bad.log"
    bad.write_text(
        "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\n"
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil\nINFO  jepsen.util - 1\t:ok\t:read\tnil\n"
    )
    picture = tmp_path / "bad.png"
    assert _lincheck(str(bad), "--model", "etcd", "--picture", str(picture)) == 1
    out = capsys.readouterr().out
    assert "not linearizable" in out and "process 1" in out
    assert picture.stat().st_size > 0
    assert _lincheck(str(bad), "--model", "etcd", "--max-steps", "0") in (1, 2)


def test_command_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _lincheck(str(tmp_path / "missing.log"), "--model", "etcd") == 2
    assert "no such file" in capsys.readouterr().out
    bad = tmp_path / "bad.log"
    bad.write_text("hello\n")
    assert _lincheck(str(bad), "--model", "etcd") == 2
    out = capsys.readouterr().out
    assert "bad.log, line 1" in out and "Traceback" not in out
    assert _lincheck(str(bad), "--model", "nosuch") == 2
    out = capsys.readouterr().out
    assert "unknown model 'nosuch'" in out and "etcd" in out and "kv" in out


# ---- the picture -----------------------------------------------------------------


def test_picture_of_a_failing_history() -> None:
    from labkit.viz.history import plot_history

    ops = [
        op(A, Put("k", "x"), PutOk(), 0, 10),
        op(B, Append("k", "y"), AppendResult("xy"), 20, 30),
        op(C, Get("k"), GetResult("x"), 40, 50),
        op(A, Get("k"), GetResult("xy"), 45, 48),
    ]
    result = check(ops, kv_model())
    assert not result.ok
    figure = plot_history(result)
    assert isinstance(figure.canvas, FigureCanvasAgg)
    (ax,) = figure.axes
    lanes = [label.get_text() for label in ax.get_yticklabels()]
    assert lanes == ["client1", "client2", "client3"]
    bars = [p for p in ax.patches if p.get_gid() in ("op", "offending")]
    assert len(bars) == len(ops)
    red = [p for p in bars if p.get_gid() == "offending"]
    assert len(red) == 1
    assert red[0].get_x() == 40
    numbered = [t.get_text() for t in ax.texts if t.get_text().startswith("#")]
    assert len(numbered) == len(result.linearization)
    figure.canvas.draw()
