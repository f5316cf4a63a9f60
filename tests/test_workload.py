"""Workloads (placeholders, expected results, repeat, infinite, pacing) and client workers."""

from __future__ import annotations

import re

import pytest

from kv import SERVER, KVClient, KVServer, kv_sim

from labkit import Address, Append, AppendResult, Get, GetResult, KeyNotFound, NoResultYet, Put, PutOk, Workload, WorkloadError
from labkit.client import ClientWorker
from labkit.sim.log import INVOKE, RESPONSE

C1, C2 = Address("client1"), Address("client2")


# ---- workload strings ----------------------------------------------------------------


def test_placeholders_and_shared_tokens() -> None:
    w = Workload.from_strings(
        ["PUT:%a-%i:%r4", "APPEND:%a-%i-1:%r4", "GET:k%i+1", "PUT:n:%n3", "PUT:m:%r"],
        ["Ok", "%r4%r4", "KeyNotFound", "Ok", "Ok"],
    )
    commands = [w.command_and_result(i, C1, "salt") for i in range(1, 6)]
    (put, ok), (append, appended), (get, missing), (put_n, _), (put_r, _) = commands
    assert put.key == "client1-1" and re.fullmatch(r"[A-Za-z0-9]{4}", put.value) and ok == PutOk()
    assert append == Append("client1-1", put.value)  # %i-1 and the same %r4 token
    assert appended == AppendResult(put.value * 2)
    assert get == Get("k4") and missing == KeyNotFound()
    assert 1 <= int(put_n.value) <= 3
    assert re.fullmatch(r"[A-Za-z0-9]{8}", put_r.value)


def test_n_placeholder_range() -> None:
    w = Workload.from_strings(["GET:%n5"], repeat=200)
    values = {int(w.command(i, C1).key) for i in range(1, 201)}
    assert values == set(range(1, 6))
    default = {int(Workload.from_strings(["GET:%n"], repeat=300).command(i, C1).key) for i in range(1, 301)}
    assert min(default) >= 1 and max(default) <= 100 and len(default) > 50


def test_tokens_are_fresh_per_pass_and_per_client_but_reproducible() -> None:
    w = Workload.from_strings(["PUT:k:%r8", "GET:k"], ["Ok", "%r8"], repeat=3)
    puts = [w.command(i, C1).value for i in (1, 3, 5)]
    assert len(set(puts)) == 3
    for i in (1, 3, 5):
        assert w.command_and_result(i + 1, C1)[1] == GetResult(w.command(i, C1).value)
    assert w.command(1, C2).value != puts[0]
    assert Workload.from_strings(["PUT:k:%r8", "GET:k"], repeat=3).command(3, C1).value == puts[1]


def test_repeat_size_and_iteration() -> None:
    w = Workload.from_strings(["GET:a", "GET:b"], repeat=3)
    assert w.size == 6 and w.has_command(6) and not w.has_command(7)
    assert [c.key for c in w] == ["a", "b"] * 3
    with pytest.raises(WorkloadError, match="only 6 commands"):
        w.command(7, C1)


def test_infinite_workload() -> None:
    w = Workload.from_strings(["GET:%i"], infinite=True)
    assert w.size is None and w.has_command(10**6) and w.command(12345, C1) == Get("12345")
    with pytest.raises(WorkloadError, match="infinite"):
        list(w)


def test_command_objects() -> None:
    w = Workload.of([Put("k", "v"), Get("k")], [PutOk(), GetResult("v")], repeat=2)
    assert w.size == 4 and w.command_and_result(4, C1) == (Get("k"), GetResult("v"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Workload.from_strings(["GET:k", "FETCH:k"]), r"cannot parse the command 'FETCH:k'"),
        (lambda: Workload.from_strings(["GET"]), r"cannot parse the command 'GET': expected PUT:key:value"),
        (lambda: Workload.from_strings(["GET:%x"]), r"unknown placeholder '%x'"),
        (lambda: Workload.from_strings(["PUT:k:v"], ["Yes"]), r"PUT must be 'Ok'"),
        (lambda: Workload.from_strings(["GET:a", "GET:b"], ["x"]), r"2 command strings but 1 result strings"),
        (lambda: Workload.from_strings(["GET:a"], repeat=0), r"repeat must be at least 1"),
        (lambda: Workload.from_strings([], infinite=True), r"needs at least one command"),
        (lambda: Workload.from_strings(["GET:a"], millis_between_requests=-1), r"cannot be negative"),
        (lambda: Workload.of([Get("a")], [PutOk(), PutOk()]), r"one to one"),
    ],
)
def test_bad_workloads_are_rejected_when_built(make, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        make()


# ---- workers -----------------------------------------------------------------------------


def test_worker_records_commands_results_and_times() -> None:
    sim = kv_sim(latency=5)
    w = Workload.from_strings(["PUT:k:a", "APPEND:k:b", "GET:k", "GET:zz"], ["Ok", "ab", "ab", "KeyNotFound"])
    worker = sim.add_worker(KVClient(C1), w)
    assert isinstance(worker, ClientWorker) and sim.workers == [worker]
    assert sim.run_until_done(max_millis=1_000)
    assert worker.done and not worker.outstanding
    assert worker.results == [PutOk(), AppendResult("ab"), GetResult("ab"), KeyNotFound()]
    assert worker.expected_results == worker.results
    times = [(h.command, h.invoke, h.response) for h in worker.history]
    assert times == [(Put("k", "a"), 0, 10), (Append("k", "b"), 10, 20), (Get("k"), 20, 30), (Get("zz"), 30, 40)]
    assert worker.max_wait(sim.now) == 10
    assert sim.histories() == worker.history
    invokes = [(e.time, e.item) for e in sim.log.of_kind(INVOKE)]
    responses = [(e.time, e.item) for e in sim.log.of_kind(RESPONSE)]
    assert invokes == [(0, Put("k", "a")), (10, Append("k", "b")), (20, Get("k")), (30, Get("zz"))]
    assert responses == [(10, PutOk()), (20, AppendResult("ab")), (30, GetResult("ab")), (40, KeyNotFound())]


def test_rate_limited_workload_waits_between_requests() -> None:
    sim = kv_sim(latency=5)
    worker = sim.add_worker(KVClient(C1), Workload.from_strings(["GET:a"], repeat=4, millis_between_requests=7))
    sim.run_until_done(max_millis=1_000)
    history = worker.history
    assert [h.invoke for h in history] == [0, 17, 34, 51]
    for done, following in zip(history, history[1:]):
        assert following.invoke - done.response == 7


def test_infinite_workload_keeps_going() -> None:
    sim = kv_sim(latency=1)
    worker = sim.add_worker(KVClient(C1), Workload.from_strings(["APPEND:k:x"], infinite=True))
    assert not sim.run_until_done(max_millis=100)
    assert len(worker.results) == 50 and not worker.done
    assert worker.results[-1] == AppendResult("x" * 50)


def test_max_wait_counts_an_outstanding_command() -> None:
    sim = kv_sim(latency=5)
    sim.settings.partition([SERVER], [C1])
    worker = sim.add_worker(KVClient(C1), Workload.from_strings(["GET:a"]))
    sim.run_for(300)
    assert worker.outstanding and worker.max_wait(sim.now) == 300 and sim.max_wait() == (C1, 300)
    (pending,) = worker.history
    assert pending.result is None and pending.response is None and pending.invoke == 0


def test_add_commands_and_resume_clients() -> None:
    sim = kv_sim()
    worker = sim.add_worker(KVClient(C1), Workload.from_strings(["APPEND:k:a"], ["a"]))
    sim.run_until_done()
    assert worker.done and len(worker.results) == 1
    worker.add_commands(Workload.from_strings(["APPEND:k:b", "GET:k"], ["ab", "ab"]))
    assert not worker.done
    sim.resume_clients()
    assert sim.run_until_done()
    assert worker.results == [AppendResult("a"), AppendResult("ab"), GetResult("ab")]
    assert worker.expected_results == worker.results


def test_results_not_recorded_when_asked() -> None:
    sim = kv_sim()
    worker = sim.add_worker(KVClient(C1), Workload.from_strings(["GET:a"], repeat=2), record_results=False)
    sim.run_until_done()
    assert worker.results == [None, None] and [h.result for h in worker.history] == [KeyNotFound()] * 2


def test_worker_needs_a_client() -> None:
    with pytest.raises(Exception, match="no method send_command"):
        kv_sim().add_worker(KVServer(C1), Workload.from_strings(["GET:a"]))


def test_raw_client_history() -> None:
    sim = kv_sim(latency=3)
    sim.add_client(KVClient(C1))
    sim.send_command(C1, Put("k", "v"))
    assert not sim.has_result(C1)
    with pytest.raises(NoResultYet):
        sim.result(C1)
    sim.run_until(lambda s: s.has_result(C1))
    assert sim.result(C1) == PutOk() and sim.now == 6
    (record,) = sim.histories()
    assert (record.client, record.command, record.result, record.invoke, record.response) == (C1, Put("k", "v"), PutOk(), 0, 6)
    assert [e.kind for e in sim.log if e.kind in (INVOKE, RESPONSE)] == [INVOKE, RESPONSE]
