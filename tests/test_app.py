"""Applications: the key-value store and the at-most-once wrapper."""

from __future__ import annotations

import pytest

from labkit import (
    AMOApplication,
    AMOCommand,
    AMOResult,
    Address,
    Append,
    AppendResult,
    Get,
    GetResult,
    KeyNotFound,
    KVStore,
    LabkitError,
    Put,
    PutOk,
)
from labkit.app import describe

C1, C2 = Address("client1"), Address("client2")


def test_kvstore_get_put_append() -> None:
    kv = KVStore()
    assert kv.execute(Get("k")) == KeyNotFound()
    assert kv.execute(Put("k", "v")) == PutOk()
    assert kv.execute(Get("k")) == GetResult("v")
    assert kv.execute(Append("k", "w")) == AppendResult("vw")
    assert kv.execute(Get("k")) == GetResult("vw")
    assert kv.execute(Put("k", "z")) == PutOk()
    assert kv.execute(Get("k")) == GetResult("z")


def test_append_creates_a_missing_key_and_returns_the_new_value() -> None:
    kv = KVStore()
    assert kv.execute(Append("new", "x")) == AppendResult("x")
    assert kv.execute(Append("new", "y")) == AppendResult("xy")
    assert kv.execute(Get("new")) == GetResult("xy")


def test_kvstore_rejects_unknown_commands() -> None:
    with pytest.raises(LabkitError, match="knows only Get, Put and Append"):
        KVStore().execute(AMOCommand(Get("k"), C1, 1))


def test_amo_executes_each_command_at_most_once() -> None:
    amo = AMOApplication(KVStore())
    first = amo.execute(AMOCommand(Append("k", "x"), C1, 1))
    assert first == AMOResult(AppendResult("x"), C1, 1)
    assert amo.execute(AMOCommand(Append("k", "x"), C1, 1)) == first  # a retry
    assert amo.application.execute(Get("k")) == GetResult("x")  # ran once
    assert amo.already_executed(AMOCommand(Append("k", "x"), C1, 1))
    assert not amo.already_executed(AMOCommand(Append("k", "x"), C1, 2))


def test_amo_clients_are_independent() -> None:
    amo = AMOApplication(KVStore())
    amo.execute(AMOCommand(Append("k", "a"), C1, 1))
    assert amo.execute(AMOCommand(Append("k", "b"), C2, 1)) == AMOResult(AppendResult("ab"), C2, 1)


def test_amo_keeps_only_the_latest_result_and_old_seq_returns_none() -> None:
    amo = AMOApplication(KVStore())
    amo.execute(AMOCommand(Put("k", "1"), C1, 1))
    amo.execute(AMOCommand(Put("k", "2"), C1, 2))
    assert amo.last_results == {C1: AMOResult(PutOk(), C1, 2)}
    assert amo.execute(AMOCommand(Put("k", "1"), C1, 1)) is None
    assert amo.application.execute(Get("k")) == GetResult("2")


def test_amo_rejects_non_amo_commands() -> None:
    with pytest.raises(LabkitError, match="only AMOCommand"):
        AMOApplication(KVStore()).execute(Put("k", "v"))


def test_amo_read_only_shortcut() -> None:
    amo = AMOApplication(KVStore())
    amo.execute(AMOCommand(Put("k", "v"), C1, 1))
    assert AMOCommand(Get("k"), C1, 2).read_only and not AMOCommand(Put("k", "v"), C1, 2).read_only
    assert amo.execute_read_only(AMOCommand(Get("k"), C1, 2)) == GetResult("v")
    with pytest.raises(LabkitError, match="not read-only"):
        amo.execute_read_only(Put("k", "x"))


def test_describe_renders_commands_and_results() -> None:
    assert describe(Append("foo", "y")) == "APPEND foo y"
    assert describe(AMOCommand(Get("foo"), C1, 3)) == "GET foo"
    assert describe(AMOResult(AppendResult("xy"), C1, 3)) == "'xy'"
    assert describe(KeyNotFound()) == "KeyNotFound"
    assert describe(PutOk()) == "Ok"
