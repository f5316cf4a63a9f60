"""Readers for recorded histories: Jepsen etcd logs, Porcupine kv EDN lines, and
labkit's own JSON-lines format for key-value histories.

Times are line numbers (the line order is the real-time order). Each reader
returns a list of :class:`~labkit.check.linearizability.Operation`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from labkit.app import Append, AppendResult, Get, GetResult, KeyNotFound, Put, PutOk
from labkit.check.linearizability import Operation
from labkit.check.models import Cas, CasResult, Read, ReadResult, Write, WriteOk

__all__ = [
    "HistoryFormatError",
    "read_etcd_log",
    "read_kv_edn",
    "read_kv_jsonl",
    "write_kv_jsonl",
]


class HistoryFormatError(ValueError):
    """A history file has a line the reader cannot understand."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        super().__init__(f"{path}, line {line}: {message}")
        self.path = str(path)
        self.line = line


class _Interned:
    """Equal values built once: operations with equal inputs and outputs then share
    the very same objects, which lets the checker group them cheaply."""

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], Any] = {}

    def __call__(self, kind: Any, *fields: Any) -> Any:
        key = (kind, *fields)
        value = self._made.get(key)
        if value is None:
            value = self._made[key] = kind(*fields)
        return value


def _lines(path: str | Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


# --------------------------------------------------------------------------
# Jepsen etcd logs
# --------------------------------------------------------------------------

_ETCD_SHAPE = "'INFO jepsen.util - <process> <:invoke|:ok|:fail|:info> <:read|:write|:cas> <value>'"


def _etcd_int(path: str | Path, number: int, token: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise HistoryFormatError(path, number, f"expected a small integer value, found {token!r}") from None


def _etcd_value(path: str | Path, number: int, f: str, tokens: list[str]) -> Any:
    """The value field: nil, N, [A B] or :timed-out."""
    if tokens == ["nil"]:
        return None
    if tokens == [":timed-out"]:
        return ":timed-out"
    if f == ":cas":
        if len(tokens) == 2 and tokens[0].startswith("[") and tokens[1].endswith("]"):
            return (_etcd_int(path, number, tokens[0][1:]), _etcd_int(path, number, tokens[1][:-1]))
        raise HistoryFormatError(path, number, f"expected a cas value '[A B]', found {' '.join(tokens)!r}")
    if len(tokens) != 1:
        raise HistoryFormatError(path, number, f"expected one value after {f}, found {' '.join(tokens)!r}")
    return _etcd_int(path, number, tokens[0])


def read_etcd_log(path: str | Path) -> list[Operation]:
    """Read a Jepsen etcd log (one register with read, write and cas).

    ``:info`` operations stay open until the end (outcome unknown); a ``:fail``
    read (a time-out) completes at its line with an unknown result, which has
    no effect; a ``:fail`` cas completed and failed.
    """
    ops: list[Operation | None] = []
    open_ops: dict[int, tuple[int, str, Any, int]] = {}  # process -> (slot, f, input, call line)
    make = _Interned()
    for number, line in enumerate(_lines(path), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 7 or tokens[:3] != ["INFO", "jepsen.util", "-"]:
            raise HistoryFormatError(path, number, f"expected {_ETCD_SHAPE}, found {line.strip()!r}")
        process_s, kind, f = tokens[3], tokens[4], tokens[5]
        try:
            process = int(process_s)
        except ValueError:
            raise HistoryFormatError(path, number, f"expected a process number, found {process_s!r}") from None
        if kind not in (":invoke", ":ok", ":fail", ":info"):
            raise HistoryFormatError(path, number, f"expected :invoke, :ok, :fail or :info, found {kind!r}")
        if f not in (":read", ":write", ":cas"):
            raise HistoryFormatError(path, number, f"expected :read, :write or :cas, found {f!r}")
        value = _etcd_value(path, number, f, tokens[6:])
        if kind == ":invoke":
            if process in open_ops:
                raise HistoryFormatError(
                    path, number, f"process {process} invokes again while its operation from line "
                    f"{open_ops[process][3]} is still open"
                )
            if f == ":read":
                if value is not None:
                    raise HistoryFormatError(path, number, f"expected 'nil' on a read invoke, found {value!r}")
                inp: Any = make(Read)
            elif f == ":write":
                if not isinstance(value, int):
                    raise HistoryFormatError(path, number, f"expected a number to write, found {value!r}")
                inp = make(Write, value)
            else:
                if not isinstance(value, tuple):
                    raise HistoryFormatError(path, number, f"expected a cas value '[A B]', found {value!r}")
                inp = make(Cas, value[0], value[1])
            open_ops[process] = (len(ops), f, inp, number)
            ops.append(None)
            continue
        if process not in open_ops:
            raise HistoryFormatError(path, number, f"process {process} completes an operation it never invoked")
        slot, invoked_f, inp, call = open_ops.pop(process)
        if f != invoked_f:
            raise HistoryFormatError(path, number, f"process {process} invoked {invoked_f} but completes {f}")
        if kind == ":info":
            ops[slot] = Operation(process, inp, None, call, None, call)
            continue
        if kind == ":ok":
            if f == ":read":
                if value == ":timed-out":
                    raise HistoryFormatError(path, number, "expected the value read (N or nil), found :timed-out")
                out: Any = make(ReadResult, value)
            elif f == ":write":
                out = make(WriteOk)
            else:
                out = make(CasResult, True)
        else:  # :fail
            if f == ":cas":
                out = make(CasResult, False)
            elif f == ":read":
                out = None  # a timed-out read: completed here, result unknown, no effect
            else:
                raise HistoryFormatError(path, number, "expected :fail only on :read or :cas, found :fail :write")
        ops[slot] = Operation(process, inp, out, call, number, call)
    for process, (slot, _, inp, call) in open_ops.items():
        ops[slot] = Operation(process, inp, None, call, None, call)
    return [op for op in ops if op is not None]


# --------------------------------------------------------------------------
# Porcupine kv EDN lines
# --------------------------------------------------------------------------

_KV_LINE = re.compile(
    r'^\{:process\s+(-?\d+),\s*:type\s+:(invoke|ok),\s*:f\s+:(get|put|append),\s*'
    r':key\s+"([^"\\]*)",\s*:value\s+(nil|"[^"\\]*")\}$'
)
_KV_SHAPE = '{:process P, :type :invoke|:ok, :f :get|:put|:append, :key "K", :value nil|"V"}'


def read_kv_edn(path: str | Path) -> list[Operation]:
    """Read a Porcupine kv history (get/put/append on string keys).

    Outputs: a get gives ``GetResult(value)``, a put ``PutOk()``; an append's
    output is None ("any output") because the file does not record the value
    after the append. A missing key reads as "": check with ``kv_model(missing="")``.
    """
    ops: list[Operation | None] = []
    open_ops: dict[int, tuple[int, str, Any, int]] = {}
    make = _Interned()
    for number, line in enumerate(_lines(path), start=1):
        text = line.strip()
        if not text:
            continue
        m = _KV_LINE.match(text)
        if m is None:
            raise HistoryFormatError(path, number, f"expected {_KV_SHAPE}, found {text!r}")
        process, kind, f, key, raw = int(m[1]), m[2], m[3], m[4], m[5]
        value = None if raw == "nil" else raw[1:-1]
        if kind == "invoke":
            if process in open_ops:
                raise HistoryFormatError(
                    path, number, f"process {process} invokes again while its operation from line "
                    f"{open_ops[process][3]} is still open"
                )
            if f == "get":
                if value is not None:
                    raise HistoryFormatError(path, number, f"expected :value nil on a get invoke, found {raw}")
                inp: Any = make(Get, key)
            else:
                if value is None:
                    raise HistoryFormatError(path, number, f"expected a quoted string value on a {f} invoke")
                inp = make(Put if f == "put" else Append, key, value)
            open_ops[process] = (len(ops), f, inp, number)
            ops.append(None)
            continue
        if process not in open_ops:
            raise HistoryFormatError(path, number, f"process {process} completes an operation it never invoked")
        slot, invoked_f, inp, call = open_ops.pop(process)
        if f != invoked_f or inp.key != key:
            raise HistoryFormatError(
                path, number, f"process {process} invoked :{invoked_f} on key {inp.key!r} but completes :{f} on {key!r}"
            )
        if f == "get":
            if value is None:
                raise HistoryFormatError(path, number, "expected the quoted value read on a get :ok, found nil")
            out: Any = make(GetResult, value)
        elif f == "put":
            out = make(PutOk)
        else:
            out = None
        ops[slot] = Operation(process, inp, out, call, number, call)
    for process, (slot, _, inp, call) in open_ops.items():
        ops[slot] = Operation(process, inp, None, call, None, call)
    return [op for op in ops if op is not None]


# --------------------------------------------------------------------------
# labkit's JSON-lines format for key-value histories
# --------------------------------------------------------------------------


def _command_json(command: Any) -> dict[str, Any]:
    if isinstance(command, Get):
        return {"op": "get", "key": command.key}
    if isinstance(command, Put):
        return {"op": "put", "key": command.key, "value": command.value}
    if isinstance(command, Append):
        return {"op": "append", "key": command.key, "value": command.value}
    raise TypeError(f"only Get, Put and Append can be written as JSON, not {command!r}")


def _result_json(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    if isinstance(result, GetResult):
        return {"result": "value", "value": result.value}
    if isinstance(result, KeyNotFound):
        return {"result": "key-not-found"}
    if isinstance(result, PutOk):
        return {"result": "ok"}
    if isinstance(result, AppendResult):
        return {"result": "appended", "value": result.value}
    raise TypeError(f"only KV results can be written as JSON, not {result!r}")


def write_kv_jsonl(ops: list[Operation], path: str | Path) -> None:
    """Write a KV history (AMO wrappers removed) as one JSON object per line."""
    from labkit.check.models import _unwrap

    with open(path, "w", encoding="utf-8") as f:
        for op in ops:
            record = {
                "client": str(op.client),
                "input": _command_json(_unwrap(op.input)),
                "output": _result_json(_unwrap(op.output)),
                "call": op.call,
                "ret": op.ret,
            }
            f.write(json.dumps(record) + "\n")


def read_kv_jsonl(path: str | Path) -> list[Operation]:
    """Read a KV history written by :func:`write_kv_jsonl`."""
    ops = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            spec, res = record["input"], record["output"]
            kind = spec["op"]
            if kind == "get":
                inp: Any = Get(spec["key"])
            elif kind == "put":
                inp = Put(spec["key"], spec["value"])
            elif kind == "append":
                inp = Append(spec["key"], spec["value"])
            else:
                raise ValueError(f"unknown op {kind!r}")
            if res is None:
                out: Any = None
            elif res["result"] == "value":
                out = GetResult(res["value"])
            elif res["result"] == "key-not-found":
                out = KeyNotFound()
            elif res["result"] == "ok":
                out = PutOk()
            elif res["result"] == "appended":
                out = AppendResult(res["value"])
            else:
                raise ValueError(f"unknown result {res['result']!r}")
            call = float(record["call"])
            ret = None if record["ret"] is None else float(record["ret"])
            ops.append(Operation(str(record["client"]), inp, out, call, ret, number))
        except (ValueError, KeyError, TypeError) as e:
            raise HistoryFormatError(
                path, number,
                'expected {"client": ..., "input": {"op": "get|put|append", "key": ...}, "output": ..., '
                f'"call": T, "ret": T or null}} ({e})',
            ) from None
    return ops
