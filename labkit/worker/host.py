"""The worker's side of the seam: runs student nodes for the judge, one request at a time.

A worker is a boxed process (see :mod:`labkit.worker.box`) that imports the
student's module and answers the judge's requests. It keeps two kinds of
nodes: *live* nodes of a simulated run, changed in place by each event, and
the nodes of search states by fingerprint (:mod:`labkit.worker.snapshot`),
copied before each step. Whatever a node does (messages sent, timers set,
its new state, what its query methods answer) goes back as canonical
encodings (:mod:`labkit.wire`); the judge trusts none of it beyond its shape.
A search step's new state goes back as the attributes it changed (or word
that nothing changed); the judge builds and fingerprints the state itself.

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
from labkit.node import Address, Effects, Node, _active
from labkit.values import UnsupportedValueError
from labkit.wire import (
    _ENCODERS,
    LiveDecoder,
    NodeState,
    ValueCache,
    WireError,
    class_name,
    decode_live,
    encode,
    field_names,
)
from labkit.worker.snapshot import Kept, state_of

__all__ = ["Host", "observe_client", "OUTPUT_KEPT", "MESSAGE_LIMIT"]

OUTPUT_KEPT = 20_000  # characters of printed output a worker sends back over its lifetime
MESSAGE_LIMIT = 2_000  # characters of an exception message sent back
TRACE_LIMIT = 6_000  # characters of a traceback sent back
SEARCH_CACHE = 20_000  # search nodes kept live for the next steps
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
        self.cache: OrderedDict[int, Kept] = OrderedDict()
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
        search node ``fp`` handles one event; the reply names the attributes that changed
        (``same`` if none did). ``state`` (-1 for none) is the node's encoding, sent when the
        worker may not have the node (else the reply may be ``missing``). ``fresh`` rebuilds
        the node from its encoding in a freshly reset module and sends the whole new state back
        (how the judge checks that a step depends on the node's state alone)."""
        _, fp, state_index, kind, sender, item_index, observer, follow, fresh = op
        item = payloads[item_index] if kind in ("message", "timer") else self._decode(payloads[item_index])
        follow_call = self._follow(follow, payloads)
        if fresh:
            self.pristine.restore()
            node = self._decode_node(payloads[state_index])
            return self._run(node, kind, sender, item, observer, follow_call, out, state=True)
        kept = self._kept(fp, payloads[state_index] if state_index >= 0 else None)
        if kept is None:
            return {"missing": True}
        return self._search_step(kept, kind, sender, item, observer, follow_call, out)

    def op_start(self, op: list, payloads: list[str], out: _Payloads) -> dict[str, Any]:
        """``["start", class, args, observer]`` or ``["start", None, state, observer]``: a search's
        initial node: constructed (or rebuilt from its state), then ``init()``; the state is sent back."""
        _, qualified, data_index, observer = op
        if qualified is None:
            node = self._decode_node(payloads[data_index])
            reply = self._run(node, "init", None, None, observer, None, out, state=True)
        else:
            reply = self.op_new(["new", "_start", qualified, data_index, observer], payloads, out)
            if "error" in reply:
                return reply
            node = self.live.pop("_start")
            text = self._encode_state(node)
            if isinstance(text, dict):
                return text
            reply["state"] = out.add(text)
        if "state" in reply:
            self._keep(Kept(node, state_of(node)))
        return reply

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
        kept = self._kept(target[1], payloads[target[2]])
        assert kept is not None
        return kept.node

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

    def _kept(self, fp: int, text: str | None) -> Kept | None:
        """The search node ``fp``: kept, or rebuilt from ``text`` (None if neither)."""
        kept = self.cache.get(fp)
        if kept is not None:
            self.cache.move_to_end(fp)
            return kept
        if text is None:
            return None
        node = self._decode_node(text)
        try:
            state = NodeState.from_text(text)
        except WireError as error:
            raise _Refused(str(error)) from None
        kept = Kept(node, state)
        self._keep(kept, fp)
        return kept

    def _keep(self, kept: Kept, fp: int | None = None) -> None:
        cache = self.cache
        cache[kept.state.fp if fp is None else fp] = kept
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
             follow: tuple[str, Any] | None, out: _Payloads, *, state: bool = False) -> dict[str, Any]:
        """Run one event (or ``init``, or a method call) on ``node`` and describe what it did."""
        effects, error = self._handle(node, kind, detail, item)
        return self._finish(node, effects, error, observer, follow, out, state=state)

    def _handle(self, node: Node, kind: str, detail: Any, item: Any) -> tuple[Effects, dict[str, Any] | None]:
        """Run one event (or ``init``, or a method call): what it did, and the error it raised."""
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
        return effects, error

    def _effects(self, reply: dict[str, Any], effects: Effects, error: dict[str, Any] | None, out: _Payloads
                 ) -> dict[str, Any] | None:
        """Put the messages sent and timers set in ``reply``; the error, if encoding them failed."""
        try:
            reply["sends"] = [[_receiver(r), out.add(encode(m))] for _, r, m in effects.sends]
            reply["timers"] = [[out.add(encode(t)), _millis(lo), _millis(hi)] for _, t, lo, hi in effects.timers]
        except (UnsupportedValueError, WireError, _Refused) as exc:
            error = error or {"type": type(exc).__name__, "message": _clip(str(exc), MESSAGE_LIMIT),
                              "traceback": "", "function": "", "theirs": True}
            reply["sends"], reply["timers"] = [], []
        return error

    def _finish(self, node: Node, effects: Effects, error: dict[str, Any] | None, observer: str | None,
                follow: tuple[str, Any] | None, out: _Payloads, *, state: bool) -> dict[str, Any]:
        reply: dict[str, Any] = {}
        error = self._effects(reply, effects, error, out)
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
        return reply

    def _search_step(self, kept: Kept, kind: str, detail: Any, item: Any, observer: str | None,
                     follow: tuple[str, Any] | None, out: _Payloads) -> dict[str, Any]:
        """One step of a search node on a copy: what it did, and what changed in its state."""
        node = kept.copy()
        effects, error = self._handle(node, kind, detail, item)
        reply: dict[str, Any] = {}
        error = self._effects(reply, effects, error, out)
        changes, state_error = self._changes(kept, node)
        obs: tuple[str, dict[str, Any]] | None = None
        told = False  # whether the judge must be told what the queries answered
        if error is None and observer is not None:
            known = kept.obs if kept.obs is not None and kept.obs[0] == observer else None
            if changes is None and known is not None and observer != "client":
                obs = known[1], known[2]  # the same state answers the same
            else:
                # A client is asked after every step, as in a run: it is cheap, and a client whose
                # answers do not follow from its state shows when the step is replayed.
                ask = self._observe(node, observer)
                obs = ask.text(), ask.answers
                if changes is None and known is None and state_error is None:
                    kept.obs = (observer, obs[0], obs[1])
                told = changes is not None or known is None or obs[0] != known[1]
            if follow is not None and obs[1].get("has_result") is True:
                method, args = follow
                effects, error = self._handle(node, "call", method, args)
                more: dict[str, Any] = {}
                error = self._effects(more, effects, error, out)
                reply["sends"] += more["sends"]
                reply["timers"] += more["timers"]
                reply["followed"] = True
                reply["obs"] = out.add(obs[0])
                if error is None:
                    ask = self._observe(node, observer)
                    obs = ask.text(), ask.answers
                    reply["obs_after"] = out.add(obs[0])
                else:
                    obs = None
                changes, state_error = self._changes(kept, node)
            elif told:
                reply["obs"] = out.add(obs[0])
        if error is not None or state_error is not None:
            reply["error"] = error or state_error
        if changes is None:
            reply["same"] = True
            return reply
        changed, gone, _ = changes
        reply["attrs"] = [[name, out.add(text)] for name, text in changed]
        if gone:
            reply["gone"] = gone
        child = kept.child(node, changes)
        if obs is not None and "error" not in reply:
            child.obs = (observer, obs[0], obs[1])
        self._keep(child)
        return reply

    def _changes(self, kept: Kept, node: Node) -> tuple[tuple[list[tuple[str, str]], list[str], set[str]] | None, Any]:
        """What a step changed in a search node (None: nothing), and the error of a state that
        cannot be encoded (such a step counts as changing nothing)."""
        try:
            return kept.changes(node), None
        except (UnsupportedValueError, WireError, RecursionError):
            text = self._encode_state(node)
            if isinstance(text, dict):
                return None, text["error"]
            return kept.changes(node), None  # the whole node encodes: not a state problem after all

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


