"""The worker's side of the seam: runs student nodes for the judge, one request at a time.

A worker is a boxed process (see :mod:`labkit.worker.box`) that imports the
student's module and answers the judge's requests. It keeps two kinds of
nodes: *live* nodes of a simulated run, changed in place by each event, and
a cache of search states by fingerprint, copied before each step. Whatever
a node does (messages sent, timers set, its new state, what its query
methods answer) goes back as canonical encodings (:mod:`labkit.wire`); the
judge trusts none of it beyond its shape.

Requests come in frames ``{"ops": [[op, ...], ...]}`` with payloads (encoded
values referred to by index); the reply is ``{"replies": [...],
"classes": {...}}`` with payloads of its own.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import enum
import errno
import importlib
import io
import json
import os
import sys
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import labkit
from labkit.channel import Channel
from labkit.node import Address, Effects, Node, _active, copy_node
from labkit.values import UnsupportedValueError
from labkit.wire import (
    _ENCODERS,
    LiveDecoder,
    ValueCache,
    WireError,
    class_name,
    decode_live,
    encode,
    field_names,
    text_fingerprint,
)

__all__ = ["Host", "observe_client", "OUTPUT_KEPT", "MESSAGE_LIMIT"]

OUTPUT_KEPT = 20_000  # characters of printed output a worker sends back over its lifetime
MESSAGE_LIMIT = 2_000  # characters of an exception message sent back
TRACE_LIMIT = 6_000  # characters of a traceback sent back
SEARCH_CACHE = 20_000  # search states kept live for the next steps
_LABKIT_DIR = str(Path(labkit.__file__).resolve().parent)


class _Output(io.TextIOBase):
    """Where student code prints: the first OUTPUT_KEPT characters are kept, all are counted."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.kept_chars = 0
        self.printed = 0
        self.unsent: list[str] = []
        self.unsent_printed = 0

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        text = str(text)
        self.printed += len(text)
        self.unsent_printed += len(text)
        room = OUTPUT_KEPT - self.kept_chars
        if room > 0:
            piece = text[:room]
            self.kept_chars += len(piece)
            self.unsent.append(piece)
        return len(text)

    def take(self) -> tuple[str, int]:
        text, count = "".join(self.unsent), self.unsent_printed
        self.unsent, self.unsent_printed = [], 0
        return text, count


class _Payloads:
    """The payloads of one reply; equal texts are sent once."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, text: str) -> int:
        i = self.index.get(text)
        if i is None:
            i = self.index[text] = len(self.texts)
            self.texts.append(text)
        return i


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text) - limit + 20:,} more characters)"


_IMPORTLIB_DIR = os.path.dirname(importlib.__file__)


def _refused_by_the_box(error: BaseException, message: str) -> bool:
    """Whether ``error`` is the box's process limit refusing a new thread or process (fork fails with EAGAIN)."""
    if isinstance(error, RuntimeError):
        return "can't start new thread" in message
    return isinstance(error, BlockingIOError) and error.errno == errno.EAGAIN


def describe_error(error: BaseException) -> dict[str, Any]:
    """An exception as data: its type, a bounded message, and the student's frames."""
    frames = traceback.extract_tb(error.__traceback__)
    theirs = [f for f in frames if not f.filename.startswith((_LABKIT_DIR, _IMPORTLIB_DIR, "<frozen "))]
    shown = theirs or frames
    try:
        message = str(error)
    except BaseException:  # a student exception whose __str__ itself fails
        message = "(the exception's message could not be shown)"
    if _refused_by_the_box(error, message):
        message += (" (your code runs in a box where it cannot start threads or processes: "
                    "do the work in the handler itself)")
    trace = ""
    if shown:
        heading = "Traceback (your code):\n" if theirs else "Traceback (most recent call last):\n"
        trace = heading + "".join(traceback.format_list(shown))
    trace += f"{type(error).__name__}: {message}"
    return {
        "type": type(error).__name__,
        "message": _clip(message, MESSAGE_LIMIT),
        "traceback": _clip(trace, TRACE_LIMIT),
        "function": shown[-1].name if shown else "",
        "theirs": bool(theirs),
    }


_KEYS: dict[Any, str] = {}  # query arguments -> their encoding (small ints, mostly)
_QUOTED: dict[str, str] = {}


def _quoted(text: str) -> str:
    found = _QUOTED.get(text)
    if found is None:
        found = _QUOTED[text] = json.dumps(text)
    return found


class _Ask:
    """What an observer uses to call a node's query methods, recording each answer (or error).

    The answers become one JSON array of ``[method, arguments' encoding, answer's
    encoding, error]`` entries (:meth:`text`), which the judge reads when it needs them."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.entries: list[str] = []
        self.answers: dict[str, Any] = {}

    def __call__(self, method: str, *args: Any) -> Any:
        key = _KEYS.get(args) if len(args) < 2 else None
        if key is None:
            key = encode(args)
            if len(args) < 2 and len(_KEYS) < 100_000:
                try:
                    _KEYS[args] = key
                except TypeError:  # unhashable arguments
                    pass
        head = "[" + _quoted(method) + "," + _quoted(key) + ","
        fn = getattr(type(self.node), method, None)
        if fn is None or not callable(fn):
            self.entries.append(head + 'null,{"type":"AttributeError","missing":true,"message":'
                                + json.dumps(f"no method {method}()") + "}]")
            return None
        try:
            value = getattr(self.node, method)(*args)
            text = encode(value)
        except BaseException as error:  # a query that raises is recorded, as the tests report it
            self.entries.append(head + "null," + json.dumps(describe_error(error)) + "]")
            return None
        self.entries.append(head + text + ",null]")
        self.answers[method] = value
        return value

    def text(self) -> str:
        return "[" + ",".join(self.entries) + "]"


def observe_client(node: Any, ask: Callable[..., Any]) -> None:
    """What the judge needs of a client after each event: ``has_result()`` and, if so, ``get_result()``."""
    if ask("has_result") is True:
        ask("get_result")


def _missing_client_method(node: Node) -> dict[str, Any] | None:
    """The error for a node used as a client that lacks one of the client methods, or None."""
    for method in ("send_command", "has_result", "get_result"):
        if not callable(getattr(node, method, None)):
            return {"type": "TypeError", "message": f"{type(node).__name__} is not a client: it has no method {method}()",
                    "traceback": "", "function": "", "theirs": True}
    return None


_DATA_TYPES = (dict, list, set, frozenset, tuple, bytearray, bytes, str, int, float, complex, bool, type(None),
               collections.deque, collections.Counter, collections.defaultdict, collections.OrderedDict)


class ModuleData:
    """The data a module keeps outside its nodes (module globals and class attributes that are plain
    values), copied as it was after the import, so that a step replayed in the checker starts from
    a module that has seen nothing: a handler that keeps state there gives a different outcome."""

    def __init__(self, module: Any) -> None:
        self.saved: list[tuple[Any, str, Any]] = []
        if module is None:
            return
        owners: list[Any] = [module]
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__ and not issubclass(value, enum.Enum):
                owners.append(value)
        for owner in owners:
            for name, value in list(vars(owner).items()):
                if name.startswith("__") or type(value) not in _DATA_TYPES:
                    continue
                try:
                    self.saved.append((owner, name, copy.deepcopy(value)))
                except Exception:  # a value that cannot be copied is left as it is
                    continue

    def restore(self) -> None:
        """Put every saved value back, as a fresh copy."""
        for owner, name, value in self.saved:
            try:
                setattr(owner, name, copy.deepcopy(value))
            except Exception:  # a read-only attribute: leave it
                continue


class Host:
    """Serves the judge's requests until told to stop or the channel closes."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.live: dict[str, Node] = {}
        self.cache: OrderedDict[int, Node] = OrderedDict()
        self.decoder = LiveDecoder()
        self.items = ValueCache(self.decoder)
        self.solution: Any = None
        self.pristine = ModuleData(None)
        self.observers: dict[str, Callable[..., None]] = {"client": observe_client}
        self.output = _Output()
        self.reported: set[type] = set()
        self._encoders_seen = 0

    # ---- the loop --------------------------------------------------------------------

    def serve(self) -> None:
        sys.stdout = sys.stderr = self.output  # type: ignore[assignment]
        while True:
            header, payloads = self.channel.receive()
            if not isinstance(header, dict) or header.get("stop"):
                return
            out = _Payloads()
            replies = []
            for op in header.get("ops", []):
                try:
                    reply = getattr(self, "op_" + op[0])(op, payloads, out)
                except _Refused as refused:
                    reply = {"refused": str(refused)}
                text, printed = self.output.take()
                if printed:
                    reply["printed"] = printed
                    if text:
                        reply["out"] = out.add(text)
                replies.append(reply)
            self.channel.send({"replies": replies, "classes": self._new_classes()}, out.texts)

    def _new_classes(self) -> dict[str, list[str]]:
        """The field names of frozen dataclasses encoded for the first time since the last reply."""
        if len(_ENCODERS) == self._encoders_seen:
            return {}
        self._encoders_seen = len(_ENCODERS)
        fresh = {}
        for cls in list(_ENCODERS):
            if cls not in self.reported:
                self.reported.add(cls)
                if dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
                    fresh[class_name(cls)] = list(field_names(cls))
        return fresh

    # ---- loading -----------------------------------------------------------------------

    def op_load(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["load", [module names...], solution]``: import the modules (the solution last)."""
        _, modules, solution = op
        for name in modules:
            try:
                module = importlib.import_module(name)
            except SyntaxError as error:
                return {"error": {"type": "SyntaxError", "message": _clip(str(error.msg), MESSAGE_LIMIT),
                                  "line": error.lineno, "text": _clip((error.text or "").rstrip(), 300),
                                  "file": Path(error.filename or "").name}}
            except BaseException as error:  # an import-time crash is the module's problem, not the worker's
                return {"error": describe_error(error)}
            if name == solution:
                self.solution = module
                self.pristine = ModuleData(module)
        names: dict[str, str] = {}
        if self.solution is not None:
            for key, value in vars(self.solution).items():
                if key.startswith("_"):
                    continue
                if isinstance(value, type):
                    names[key] = "node" if issubclass(value, Node) else "class"
                elif callable(value):
                    names[key] = "function"
        return {"names": names, "module": getattr(self.solution, "__name__", None)}

    def op_observer(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["observer", role, "module:function"]``: how to observe nodes of a role."""
        _, role, target = op
        module_name, _, function = target.partition(":")
        self.observers[role] = getattr(importlib.import_module(module_name), function)
        return {}

    # ---- live nodes (simulated runs) ---------------------------------------------------------

    def op_new(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["new", key, class, args, observer]``: construct a node, run ``init()``."""
        _, key, qualified, args_index, observer = op
        try:
            cls = self.decoder.lookup(qualified)
            args = decode_live(payloads[args_index], self.decoder)
        except WireError as error:
            raise _Refused(str(error)) from None
        effects = Effects(None)  # type: ignore[arg-type]
        _active.append(effects)
        try:
            node = cls(*args)
        except BaseException as error:
            return {"error": describe_error(error), "phase": "constructor"}
        finally:
            _active.pop()
        if effects.sends or effects.timers:
            return {"error": {"type": "NodeError", "message": f"{cls.__name__}'s constructor sent a message or set a "
                              "timer: do that in init(), which runs once the node is in place",
                              "traceback": "", "function": "__init__", "theirs": True}, "phase": "constructor"}
        if not isinstance(node, Node):
            return {"error": {"type": "TypeError", "message": f"{cls.__name__} is not a labkit Node",
                              "traceback": "", "function": "", "theirs": True}, "phase": "constructor"}
        missing = _missing_client_method(node) if observer == "client" else None
        if missing:
            return {"error": missing, "phase": "constructor"}
        self.live[key] = node
        return self._run(node, "init", None, None, observer, None, out)

    def op_put(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["put", key, state, run_init, observer]``: a node from its encoded state."""
        _, key, state_index, run_init, observer = op
        node = self._decode_node(payloads[state_index])
        missing = _missing_client_method(node) if observer == "client" else None
        if missing:
            return {"error": missing, "phase": "constructor"}
        self.live[key] = node
        if run_init:
            return self._run(node, "init", None, None, observer, None, out)
        return self._finish(node, Effects(None), None, observer, None, out, state=False)  # type: ignore[arg-type]

    def op_event(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["event", key, kind, sender, item, observer, follow, sample]``: handle one event in place.

        With ``sample``, the state before and after are sent back too (the judge
        replays the step elsewhere to check it)."""
        _, key, kind, sender, item_index, observer, follow, sample = op
        node = self._live(key)
        before = self._encode_state(node) if sample else None
        if isinstance(before, dict):
            return before
        reply = self._run(node, kind, sender, payloads[item_index], observer, self._follow(follow, payloads), out,
                          state=bool(sample))
        if before is not None:
            reply["before"] = out.add(before)
        return reply

    def op_call(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["call", key, method, args, observer]``: call a client method such as ``send_command``."""
        _, key, method, args_index, observer = op
        node = self._live(key)
        args = self._decode(payloads[args_index])
        return self._run(node, "call", method, args, observer, None, out)

    def op_encode(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["encode", key]``: a live node's state."""
        text = self._encode_state(self._live(op[1]))
        return text if isinstance(text, dict) else {"state": out.add(text)}

    def op_drop(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        self.live.pop(op[1], None)
        return {}

    # ---- search states ----------------------------------------------------------------------

    def op_step(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["step", fp, state, kind, sender, item, observer, follow, fresh]``: a copy of the
        state ``fp`` handles one event. ``fresh`` rebuilds the state from its encoding
        instead of the cache (how the judge checks that a step depends on the state alone)."""
        _, fp, state_index, kind, sender, item_index, observer, follow, fresh = op
        node = self._searched(fp, payloads[state_index], fresh)
        item = payloads[item_index] if kind in ("message", "timer") else self._decode(payloads[item_index])
        return self._run(copy_node(node), kind, sender, item, observer, self._follow(follow, payloads), out,
                         state=True, keep=True)

    def op_start(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["start", class, args, observer]`` or ``["start", None, state, observer]``: a search's
        initial node: constructed (or rebuilt from its state), then ``init()``; the state is sent back."""
        _, qualified, data_index, observer = op
        if qualified is None:
            node = self._decode_node(payloads[data_index])
        else:
            reply = self.op_new(["new", "_start", qualified, data_index, observer], payloads, out)
            if "error" in reply:
                return reply
            node = self.live.pop("_start")
            text = self._encode_state(node)
            if isinstance(text, dict):
                return text
            self._remember(text, node)
            reply["state"] = out.add(text)
            return reply
        return self._run(node, "init", None, None, observer, None, out, state=True, keep=True)

    def op_observe(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["observe", target, observer]``: what the observer reports of a node now."""
        node = self._target(op[1], payloads)
        return {"obs": out.add(self._observe(node, op[2]).text())}

    def op_query(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["query", target, [[method, args], ...]]``: call query methods."""
        node = self._target(op[1], payloads)
        ask = _Ask(node)
        for method, args_index in op[2]:
            args = self._decode(payloads[args_index])
            ask(method, *args)
        return {"obs": out.add(ask.text())}

    # ---- helpers ------------------------------------------------------------------------------

    def _live(self, key: str) -> Node:
        node = self.live.get(key)
        if node is None:
            raise _Refused(f"there is no node {key}")
        return node

    def _target(self, target: list, payloads: list[str]) -> Node:
        if target[0] == "key":
            return self._live(target[1])
        return self._searched(target[1], payloads[target[2]], False)

    def _decode(self, text: str) -> Any:
        try:
            return decode_live(text, self.decoder)
        except WireError as error:
            raise _Refused(str(error)) from None

    def _item(self, text: str) -> Any:
        try:
            return self.items.get(text)
        except WireError as error:
            raise _Refused(str(error)) from None

    def _decode_node(self, text: str) -> Node:
        node = self._decode(text)
        if not isinstance(node, Node):
            raise _Refused("the encoded state is not a node")
        return node

    def _searched(self, fp: int, text: str, fresh: bool) -> Node:
        if fresh:
            self.pristine.restore()
        node = None if fresh else self.cache.get(fp)
        if node is None:
            node = self._decode_node(text)
            if not fresh:
                self._remember(text, node, fp)
        else:
            self.cache.move_to_end(fp)
        return node

    def _remember(self, text: str, node: Node, fp: int | None = None) -> None:
        cache = self.cache
        cache[text_fingerprint(text) if fp is None else fp] = node
        if len(cache) > SEARCH_CACHE:
            cache.popitem(last=False)

    def _follow(self, follow: Any, payloads: list[str]) -> tuple[str, Any] | None:
        if not follow:
            return None
        method, args_index = follow
        return method, self._decode(payloads[args_index])

    def _encode_state(self, node: Node) -> str | dict[str, Any]:
        try:
            return encode(node)
        except (UnsupportedValueError, WireError) as error:
            return {"error": {"type": type(error).__name__, "message": _clip(str(error), MESSAGE_LIMIT),
                              "traceback": "", "function": "", "theirs": True, "state": True}}

    def _run(self, node: Node, kind: str, detail: Any, item: Any, observer: str | None,
             follow: tuple[str, Any] | None, out: _Payloads, *, state: bool = False, keep: bool = False
             ) -> dict[str, Any]:
        """Run one event (or ``init``, or a method call) on ``node`` and describe what it did."""
        effects = Effects(None)  # type: ignore[arg-type]
        error = None
        _active.append(effects)
        try:
            if kind == "message":
                node.deliver_message(self._item(item), self.decoder.address(detail))
            elif kind == "timer":
                node.deliver_timer(self._item(item))
            elif kind == "init":
                node.init()
            else:  # a method call: detail is the method, item the arguments
                getattr(node, detail)(*item)
        except _Refused:
            raise
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the student's, reported
            error = describe_error(exc)
        finally:
            _active.pop()
        return self._finish(node, effects, error, observer, follow, out, state=state, keep=keep)

    def _finish(self, node: Node, effects: Effects, error: dict[str, Any] | None, observer: str | None,
                follow: tuple[str, Any] | None, out: _Payloads, *, state: bool, keep: bool = False
                ) -> dict[str, Any]:
        reply: dict[str, Any] = {}
        try:
            reply["sends"] = [[_receiver(r), out.add(encode(m))] for _, r, m in effects.sends]
            reply["timers"] = [[out.add(encode(t)), _millis(lo), _millis(hi)] for _, t, lo, hi in effects.timers]
        except (UnsupportedValueError, WireError, _Refused) as exc:
            error = error or {"type": type(exc).__name__, "message": _clip(str(exc), MESSAGE_LIMIT),
                              "traceback": "", "function": "", "theirs": True}
            reply["sends"], reply["timers"] = [], []
        if error is None and observer is not None:
            ask = self._observe(node, observer)
            reply["obs"] = out.add(ask.text())
            if follow is not None and ask.answers.get("has_result") is True:
                method, args = follow
                more = self._run(node, "call", method, args, observer, None, out)
                if "error" in more:
                    error = more["error"]
                reply["sends"] += more.get("sends", [])
                reply["timers"] += more.get("timers", [])
                reply["followed"] = True
                if "obs" in more:
                    reply["obs_after"] = more["obs"]
        if error is not None:
            reply["error"] = error
        if state:
            text = self._encode_state(node)
            if isinstance(text, dict):
                reply.setdefault("error", text["error"])
            else:
                reply["state"] = out.add(text)
                if keep:
                    self._remember(text, node)
        return reply

    def _observe(self, node: Node, observer: str) -> _Ask:
        ask = _Ask(node)
        try:
            self.observers[observer](node, ask)
        except BaseException as error:
            ask.entries.append('["(observer)","[\\"T\\"]",null,' + json.dumps(describe_error(error)) + "]")
        return ask


class _Refused(Exception):
    """A request the worker cannot carry out (a malformed request or state)."""


def _receiver(address: Any) -> str:
    if not isinstance(address, Address):
        raise _Refused(f"a message was sent to {address!r}, which is not an Address")
    return address.name


def _millis(value: Any) -> int:
    if type(value) is not int:
        raise _Refused(f"a timer length must be whole milliseconds, got {value!r}")
    return value


