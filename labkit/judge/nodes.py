"""The judge's handles on student nodes, which live in worker processes.

* :class:`RemoteSolution` is what a test sees as ``t.solution``: the names the
  student's module defines, each class callable to make a :class:`NodeRecipe`
  (the constructor runs in a worker, never here).
* :class:`HostedNode` is a node of a simulated run: it lives in the run's
  worker and changes there, event by event.
* :class:`SnapshotNode` is a node of a search state: an encoded state and what
  its query methods answered, as immutable values.

Both answer what predicates ask: the lab's query methods (``status(3)``)
come from observations the worker computed, and any other attribute reads the
decoded state (records, never the student's classes).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from labkit.node import Address, Effects, LabkitError, current_effects
from labkit.wire import NodeState, WireError, WireValue, canonical_text, decode_data, decode_parsed, encode

if TYPE_CHECKING:
    from labkit.judge.session import Session

__all__ = [
    "RemoteSolution",
    "RemoteClass",
    "NodeRecipe",
    "NodeHandle",
    "HostedNode",
    "SnapshotNode",
    "RemoteError",
    "StudentError",
    "ConstructorError",
    "Outcome",
    "remote_exception",
]


class RemoteError(Exception):
    """An exception raised by student code in a worker, as the judge knows it: its type name and message."""

    traceback_text = ""
    function = ""


_EXCEPTIONS: dict[str, type] = {}


def remote_exception(error: dict[str, Any]) -> RemoteError:
    """A judge-side exception named like the student's (``KeyError``), carrying its message and traceback."""
    name = error.get("type") if isinstance(error.get("type"), str) else "Exception"
    if not name.isidentifier():
        name = "Exception"
    cls = _EXCEPTIONS.get(name)
    if cls is None:
        cls = _EXCEPTIONS[name] = type(name, (RemoteError,), {"__module__": "labkit.judge.remote"})
    exc = cls(str(error.get("message", "")))
    exc.traceback_text = str(error.get("traceback", ""))
    exc.function = str(error.get("function", ""))
    return exc


class ConstructorError(LabkitError):
    """A node's constructor raised (in the worker); ``error`` is the student's exception."""

    def __init__(self, address: Address, error: RemoteError) -> None:
        self.address = address
        self.error = error
        super().__init__(f"{address}'s constructor raised {type(error).__name__}: {error}\n{error.traceback_text}")


class StudentError(LabkitError):
    """Student code did something the judge refuses (a malformed timer, a message to a non-address, ...)."""


# --------------------------------------------------------------------------
# The student's module, seen from the judge
# --------------------------------------------------------------------------


class RemoteClass:
    """A class of the student's module; calling it records a constructor call for a worker."""

    def __init__(self, session: "Session", qualified: str, kind: str) -> None:
        self.session = session
        self.qualified = qualified
        self.kind = kind
        self.__name__ = qualified.rpartition(":")[2]

    def __call__(self, *args: Any) -> "NodeRecipe":
        if not args or not isinstance(args[0], Address):
            raise LabkitError(f"{self.__name__}(...) needs the node's Address as its first argument, got {args[:1]!r}")
        return NodeRecipe(self.session, self.qualified, encode(args), args[0])

    def __repr__(self) -> str:
        return f"<class {self.__name__} of the submitted module>"


class RemoteSolution:
    """``t.solution``: the student's module by name. A missing name fails the test with a clear message."""

    def __init__(self, session: "Session", module: str, names: dict[str, str], label: str) -> None:
        self._session = session
        self._module = module
        self._names = names
        self.path = session.solution_path
        self._label = label

    def __getattr__(self, name: str) -> Any:
        from labkit.testing.solution import SolutionError

        if name.startswith("_"):
            raise AttributeError(name)
        kind = self._names.get(name)
        if kind not in ("node", "class"):
            what = "a class" if kind is None else f"a {kind}, not a class,"
            raise SolutionError(f"{self._label} defines no {name} ({what} is needed); the lab's tests need a class "
                                f"named {name}" if kind is None else
                                f"{self._label}: {name} is {what}; the lab's tests need a class named {name}")
        return RemoteClass(self._session, f"{self._module}:{name}", kind)

    def defines(self, name: str) -> bool:
        return name in self._names


@dataclass(frozen=True)
class NodeRecipe:
    """A node to make in a worker: a class of the loaded code and its constructor's arguments (encoded)."""

    session: "Session"
    qualified: str
    args: str
    address: Address

    @property
    def class_short_name(self) -> str:
        return self.qualified.rpartition(":")[2]


# --------------------------------------------------------------------------
# What one worker reply says a node did
# --------------------------------------------------------------------------


_ADDRESSES: dict[str, Address] = {}  # addresses by name: a run or search has few, sent many times


class Outcome:
    """One handled event (or ``init``, or a call): messages sent, timers set, observations, error, state."""

    __slots__ = ("sends", "timers", "obs", "obs_after", "followed", "error", "phase", "state", "before", "printed",
                 "out", "same", "missing", "changed", "gone")

    def __init__(self, reply: dict[str, Any], payloads: list[str], values: dict[int, WireValue]) -> None:
        self.error: dict[str, Any] | None = None
        self.phase = None
        self.sends: list[tuple[Address, WireValue]] = []
        self.timers: list[tuple[WireValue, int, int]] = []
        self.obs: Observations | None = None
        self.obs_after: Observations | None = None
        self.followed = False
        self.state: WireValue | NodeState | None = None
        self.before: WireValue | None = None
        self.printed = 0
        self.out = ""
        # A search step's new state: unchanged, or the attributes that changed (see resolve()).
        self.same = False
        self.missing = False
        self.changed: list[tuple[str, str]] = []
        self.gone: list[str] = []
        try:
            for key, item in reply.items():
                if key == "sends":
                    self.sends = [(_address(to), _value(index, payloads, values)) for to, index in item]
                elif key == "timers":
                    self.timers = [(_value(index, payloads, values), _millis(low), _millis(high, low))
                                   for index, low, high in item]
                elif key == "same":
                    self.same = item is True
                elif key == "attrs":
                    self.changed = [(_name(name), _attribute(_text(index, payloads))) for name, index in item]
                elif key == "obs":
                    self.obs = _observations(item, payloads)
                elif key == "error":
                    self.error = item if isinstance(item, dict) else None
                elif key == "gone":
                    self.gone = [_name(name) for name in item]
                elif key == "obs_after":
                    self.obs_after = _observations(item, payloads)
                elif key == "followed":
                    self.followed = bool(item)
                elif key == "state":
                    self.state = _value(item, payloads, values)
                elif key == "before":
                    self.before = _value(item, payloads, values)
                elif key == "missing":
                    self.missing = item is True
                elif key == "phase":
                    self.phase = item
                elif key == "printed":
                    self.printed = item if type(item) is int and item >= 0 else 0
                elif key == "out":
                    self.out = _text(item, payloads)
        except (TypeError, ValueError) as malformed:
            raise StudentError(f"the worker's answer is malformed: {malformed}") from None

    def resolve(self, node: "SnapshotNode") -> None:
        """Make ``state`` (and ``obs``) those after a search step of ``node``: the judge builds the
        new state from ``node``'s and the attributes the worker says changed, and fingerprints it."""
        if self.state is not None:
            if type(self.state) is not NodeState:
                self.state = NodeState.from_text(self.state.text)
        elif self.error is not None and self.error.get("state"):
            return  # the new state could not be encoded: there is none
        elif self.same or not (self.changed or self.gone):
            self.state = node.value
            if self.obs is None and self.error is None:
                self.obs = node.obs
        else:
            self.state = node.value.derive(self.changed, self.gone)

    def apply(self, address: Address, effects: Effects) -> None:
        """Add what the node did to the current event's effects."""
        for to, message in self.sends:
            effects.sends.append((address, to, message))  # type: ignore[arg-type]
        for timer, low, high in self.timers:
            effects.timers.append((address, timer, low, high))  # type: ignore[arg-type]

    def raise_error(self) -> None:
        if self.error is not None:
            raise remote_exception(self.error)


def _address(name: Any) -> Address:
    address = _ADDRESSES.get(name) if type(name) is str else None
    if address is None:
        if not isinstance(name, str) or not name:
            raise StudentError(f"a message was sent to {name!r}, which is not an address")
        address = _ADDRESSES[name] = Address(name)
    return address


def _text(index: Any, payloads: list[str]) -> str:
    if type(index) is not int or not 0 <= index < len(payloads):
        raise StudentError("the worker's answer refers to a value it did not send")
    return payloads[index]


_VALUES: dict[str, WireValue] = {}  # messages and timers by their text: a search sends the same ones again and again
_VALUES_LIMIT = 200_000


def _value(index: Any, payloads: list[str], values: dict[int, WireValue]) -> WireValue:
    found = values.get(index)
    if found is None:
        text = _text(index, payloads)
        found = _VALUES.get(text)
        if found is None:
            if len(_VALUES) >= _VALUES_LIMIT:
                _VALUES.clear()
            found = _VALUES[text] = WireValue(text)
        values[index] = found
    return found


def _millis(value: Any, low: Any = 1) -> int:
    if type(value) is not int or value < low or value < 1:
        raise StudentError(f"a timer was set to last {value!r} ms: timers last at least 1 ms and the minimum "
                           "may not exceed the maximum")
    return value


_ATTRIBUTES: dict[str, str] = {}  # an attribute's encoding, as a worker sent it -> its canonical text


def _attribute(text: str) -> str:
    """The canonical encoding of one attribute a worker says changed. The judge sums attribute
    digests into the state's fingerprint and joins the texts into the state's encoding: a text
    that is not one canonical JSON value would make a state whose encoding says something else
    than its fingerprint (an attribute that swallows the next one, say)."""
    found = _ATTRIBUTES.get(text)
    if found is None:
        try:
            found = canonical_text(text)
        except WireError as error:
            raise StudentError(f"the worker's answer is malformed: an attribute's encoding: {error}") from None
        if len(_ATTRIBUTES) >= _VALUES_LIMIT:
            _ATTRIBUTES.clear()
        _ATTRIBUTES[text] = found
    return found


def _name(name: Any) -> str:
    if not isinstance(name, str):
        raise StudentError("the worker's answer names an attribute by something else than a string")
    return name


_NO_ARGS = '["T"]'


_PARSED: dict[str, dict[tuple[str, str], list[Any]]] = {}  # observation text -> its table (states share texts)
_PARSED_LIMIT = 200_000
_ARGUMENTS: dict[str, Any] = {}  # an encoded argument tuple -> the tuple (None if unreadable)


def forget_values() -> None:
    """Forget the messages, timers, observations and arguments kept by their text: their values
    were decoded with the field names of the classes of the submission judged last."""
    _VALUES.clear()
    _PARSED.clear()
    _ARGUMENTS.clear()


def _parsed_observations(text: str) -> dict[tuple[str, str], list[Any]]:
    """The table of one observation text: ``(method, arguments) -> [answer, error, decoded answer]``.
    Tables are shared by every state whose node answered the same; answers decode on first use."""
    table = _PARSED.get(text)
    if table is not None:
        return table
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError):
        raise StudentError("the worker's observations are malformed") from None
    if not isinstance(entries, list):
        raise StudentError("the worker's observations are malformed")
    table = {}
    for entry in entries:
        if (not isinstance(entry, list) or len(entry) != 4 or not isinstance(entry[0], str)
                or not isinstance(entry[1], str)):
            raise StudentError("the worker's observations are malformed")
        method, key, value, error = entry
        table[(method, key)] = [value, error if isinstance(error, dict) else None, _UNDECODED]
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()
    _PARSED[text] = table
    return table


def _arguments(key: str) -> Any:
    """The argument tuple an observation key encodes (None if it cannot be read)."""
    try:
        return _ARGUMENTS[key]
    except KeyError:
        pass
    try:
        args = decode_parsed(json.loads(key))
    except (ValueError, WireError, RecursionError):
        args = None
    if len(_ARGUMENTS) >= _PARSED_LIMIT:
        _ARGUMENTS.clear()
    _ARGUMENTS[key] = args
    return args


class Observations:
    """What a node's query methods answered, as the worker sent them (one JSON array),
    read when first asked; each answer decoded when first used."""

    __slots__ = ("_texts", "_table", "_missing")

    def __init__(self, *texts: str) -> None:
        self._texts = texts
        self._table: dict[tuple[str, str], list[Any]] | None = None
        self._missing: frozenset[str] = frozenset()

    def same_as(self, other: "Observations") -> bool:
        """Whether both hold the very same answers (as sent)."""
        return self._texts == other._texts

    def _entries(self) -> dict[tuple[str, str], list[Any]]:
        table = self._table
        if table is None:
            table = {}
            for text in self._texts:
                table.update(_parsed_observations(text))
            self._missing = frozenset(m for (m, _), e in table.items() if e[1] is not None and e[1].get("missing"))
            self._table = table
        return table

    def find(self, method: str, key: str) -> tuple[Any, dict[str, Any] | None] | None:
        """``(answer, error)`` for ``method`` called with arguments encoded as ``key``; None if not observed."""
        entry = self._entries().get((method, key))
        if entry is None:
            return None
        if entry[1] is None and entry[2] is _UNDECODED:
            entry[2] = decode_parsed(entry[0])
        return entry[2], entry[1]

    def answers(self, method: str) -> dict[tuple, Any]:
        """The answers of ``method`` that raised nothing, by argument tuple (decoded)."""
        found = {}
        for (m, key), entry in self._entries().items():
            if m != method or entry[1] is not None:
                continue
            args = _arguments(key)
            if type(args) is tuple:
                found[args] = self.find(method, key)[0]  # type: ignore[index]
        return found

    def text_of(self, method: str, key: str) -> str | None:
        """The canonical encoding of an answer (to fingerprint it)."""
        entry = self._entries().get((method, key))
        return None if entry is None or entry[1] is not None else json.dumps(entry[0], separators=(",", ":"))

    def missing(self, method: str) -> bool:
        """True if the node has no method ``method`` at all."""
        self._entries()
        return method in self._missing

    def answered(self, method: str, key: str = _NO_ARGS) -> bool:
        return (method, key) in self._entries()

    def merged(self, other: "Observations") -> "Observations":
        both = Observations(*self._texts, *other._texts)
        table = dict(self._entries())
        table.update(other._entries())
        both._table = table
        both._missing = self._missing | other._missing
        return both

    def comparable(self) -> Any:
        """The answers as plain data (to compare two runs of one step)."""
        return {k: (e[0], (e[1] or {}).get("type")) for k, e in self._entries().items()}


_UNDECODED: Any = object()
NO_OBSERVATIONS = Observations()


def _observations(index: Any, payloads: list[str]) -> Observations | None:
    if index is None:
        return None
    if type(index) is not int or not 0 <= index < len(payloads):
        raise StudentError("the worker's answer refers to a value it did not send")
    return Observations(payloads[index])


# --------------------------------------------------------------------------
# Handles
# --------------------------------------------------------------------------

_OWN = frozenset({"address", "qualified", "role", "queries"})
_KEYS: dict[Any, str] = {}  # query arguments -> their encoding
PREFETCH = 64  # a query with one int argument that was not observed asks for this many in a row


class NodeHandle:
    """What the judge holds for one student node (see the module docstring)."""

    __slots__ = ("address", "qualified", "role", "queries", "__dict__")

    address: Address
    qualified: str
    queries: frozenset[str]

    @property
    def class_name(self) -> str:
        """The node's class name as the student wrote it (``PaxosServer``)."""
        return self.qualified.rpartition(":")[2]

    # ---- what subclasses provide ------------------------------------------------------

    def observations(self) -> Observations:
        raise NotImplementedError

    def ask(self, calls: list[tuple[str, str]]) -> Observations:
        raise NotImplementedError

    def state_value(self) -> WireValue:
        raise NotImplementedError

    def memo_key(self) -> Any:
        """A key equal for handles of the same unchanging node state (None if the node changes):
        what predicates may cache per node under, within one search (SearchState.memo)."""
        return None

    # ---- what predicates and tests use -----------------------------------------------------

    def query(self, method: str, *args: Any) -> Any:
        """The answer of the node's query method ``method(*args)`` (raises what it raised)."""
        key = _KEYS.get(args) if len(args) < 2 else None
        if key is None:
            key = encode(args)
            if len(args) < 2 and len(_KEYS) < 100_000:
                _KEYS[args] = key
        found = self.observations().find(method, key)
        if found is None:
            calls = [(method, key)]
            if len(args) == 1 and type(args[0]) is int:  # a slot-like argument: ask for the next ones too
                calls += [(method, encode((args[0] + k,))) for k in range(1, PREFETCH)]
            found = self.ask(calls).find(method, key)
            if found is None:
                raise StudentError(f"{self.address}.{method}{_shown(args)} gave no answer")
        result, error = found
        if error is not None:
            if error.get("missing"):
                raise AttributeError(f"{self.class_name} has no method {method}()")
            raise remote_exception(error)
        return result

    @property
    def state(self) -> Any:
        """The node's state, decoded: a record whose fields are the node's attributes."""
        return self.state_value().value

    @property
    def state_size(self) -> int:
        """The size in characters of the node's encoded state."""
        return len(self.state_value().text)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in _OWN:
            raise AttributeError(name)
        if name in self.queries:
            if self._method_missing(name):
                raise AttributeError(f"{self.class_name} has no method {name}()")
            if not isinstance(self, SnapshotNode):
                return functools.partial(self.query, name)
            # A search state never changes: answer straight from its observations, and keep the method bound.
            answers = self.obs.answers(name)
            query = self.query

            def bound(*args: Any) -> Any:
                try:
                    return answers[args]
                except (KeyError, TypeError):
                    return query(name, *args)

            self.__dict__[name] = bound
            return bound
        try:
            return getattr(self.state, name)
        except AttributeError:
            raise AttributeError(f"{self.class_name} at {self.address} has no attribute {name!r}") from None

    def _method_missing(self, name: str) -> bool:
        return self.observations().missing(name)

    def __repr__(self) -> str:
        return f"{self.class_name}({self.address})"

    def __lk_repr__(self) -> str:
        from labkit.values import canonical_repr

        return canonical_repr(self.state)


def _shown(args: tuple) -> str:
    return "(" + ", ".join(repr(a) for a in args) + ")"


class HostedNode(NodeHandle):
    """A node of a simulated run, living in the run's worker (see the module docstring)."""

    def __init__(self, host: "RunHost", key: str, recipe_or_state: NodeRecipe | str, address: Address, qualified: str,
                 role: str, observer: str | None, queries: Iterable[str], inspector: str | None = None) -> None:
        """``observer`` runs after every event (a client's results); ``inspector`` only when a
        predicate asks (a server's log)."""
        self._host = host
        self._key = key
        self.address = address
        self.qualified = qualified
        self.role = role
        self.queries = frozenset(queries)
        self._observer = observer
        self._inspector = inspector or observer
        self._obs: Observations | None = None
        self._state: WireValue | None = None
        self._start = recipe_or_state

    # ---- lifecycle and events ------------------------------------------------------------------

    def init(self) -> None:
        """Make the node in the worker and run its ``init()`` (effects go to the current event)."""
        start = self._start
        if isinstance(start, NodeRecipe):
            op = ["new", self._key, start.qualified, 0, self._observer]
            outcome = self._host.call(self, op, [start.args], lambda: "constructor and init()")
        else:
            op = ["put", self._key, 0, True, self._observer]
            outcome = self._host.call(self, op, [start], lambda: "init()")
        if outcome.error is not None and outcome.phase == "constructor":
            raise ConstructorError(self.address, remote_exception(outcome.error))
        self.absorb(outcome)

    def deliver_message(self, message: WireValue, sender: Address) -> None:
        self.step("message", sender, message)

    def deliver_timer(self, timer: WireValue) -> None:
        self.step("timer", None, timer)

    def step(self, kind: str, sender: Address | None, item: WireValue, follow: tuple[str, Any] | None = None,
             sample: bool = False) -> Outcome:
        """Handle one event in the worker; its effects go to the current event."""
        payloads = [item.text]
        op = self.event_op(kind, sender, 0, follow, sample, payloads)
        outcome = self._host.call(self, op, payloads, lambda: f"handler for {_event_text(kind, sender, item)}")
        self.absorb(outcome)
        return outcome

    def event_op(self, kind: str, sender: Address | None, item_index: int, follow: tuple[str, Any] | None,
                 sample: bool, payloads: list[str]) -> list[Any]:
        """The worker request for one event (``payloads`` gets the follow-up call's arguments)."""
        follow_op = None
        if follow is not None:
            payloads.append(encode(follow[1]))
            follow_op = [follow[0], len(payloads) - 1]
        return ["event", self._key, kind, sender.name if sender is not None else None, item_index, self._observer,
                follow_op, sample]

    def call(self, method: str, *args: Any) -> Outcome:
        """Call ``method(*args)`` on the node in the worker (a client's ``send_command``)."""
        outcome = self._host.call(self, ["call", self._key, method, 0, self._observer], [encode(args)],
                                  lambda: f"{method}()")
        self.absorb(outcome)
        return outcome

    def absorb(self, outcome: Outcome) -> None:
        """Take in what the node did in one step; its effects go to the current event."""
        self._state = outcome.state
        self._obs = outcome.obs_after if outcome.obs_after is not None else outcome.obs
        outcome.apply(self.address, current_effects())
        outcome.raise_error()

    # ---- client protocol (raw clients of a run) ---------------------------------------------------

    def send_command(self, command: Any) -> None:
        self.call("send_command", command)

    def has_result(self) -> bool:
        return self.query("has_result") is True

    def get_result(self) -> Any:
        return self.query("get_result")

    # ---- what predicates read -----------------------------------------------------------------------

    def observations(self) -> Observations:
        if self._obs is None:
            self._obs = self._host.observe(self, self._inspector or "none")
        return self._obs

    def ask(self, calls: list[tuple[str, str]]) -> Observations:
        self._obs = self.observations().merged(self._host.query(self, calls))
        return self._obs

    def state_value(self) -> WireValue:
        if self._state is None:
            self._state = self._host.encode(self)
        return self._state

    @property
    def key(self) -> str:
        return self._key


class RunHost:
    """What a simulated run needs from its worker (implemented by the session)."""

    def call(self, node: HostedNode, op: list[Any], payloads: list[str], doing: Any) -> Outcome:
        raise NotImplementedError

    def observe(self, node: HostedNode, observer: str) -> Observations:
        raise NotImplementedError

    def query(self, node: HostedNode, calls: list[tuple[str, str]]) -> Observations:
        raise NotImplementedError

    def encode(self, node: HostedNode) -> WireValue:
        raise NotImplementedError

    def events(self, items: list[tuple[HostedNode, str, Address | None, WireValue, bool]]) -> list[Outcome]:
        raise NotImplementedError


class SnapshotNode(NodeHandle):
    """A node of a search state: its encoded state and observations, immutable."""

    __slots__ = ("value", "obs", "_asker", "observer")

    def __init__(self, address: Address, qualified: str, role: str, queries: frozenset[str], value: NodeState,
                 obs: Observations | None, observer: str | None, asker: Any) -> None:
        self.address = address
        self.qualified = qualified
        self.role = role
        self.queries = queries
        self.value = value
        self.obs = obs or NO_OBSERVATIONS
        self.observer = observer
        self._asker = asker

    @property
    def fp(self) -> int:
        return self.value.fp

    def memo_key(self) -> Any:
        return (self.address, self.value.fp)

    def with_state(self, value: NodeState, obs: Observations | None) -> "SnapshotNode":
        return SnapshotNode(self.address, self.qualified, self.role, self.queries, value, obs, self.observer,
                            self._asker)

    def observations(self) -> Observations:
        return self.obs

    def ask(self, calls: list[tuple[str, str]]) -> Observations:
        self.obs = self.obs.merged(self._asker(self, calls))  # answers are a function of the state: keep them
        return self.obs

    def state_value(self) -> WireValue:
        return self.value

    def has_result(self) -> bool:
        return self.query("has_result") is True

    def get_result(self) -> Any:
        return self.query("get_result")


def _event_text(kind: str, sender: Address | None, item: WireValue) -> str:
    from labkit.values import brief

    try:
        shown = brief(item, 120)
        name = item.type_name
    except WireError:
        shown, name = item.text[:120], "value"
    if kind == "message":
        return f"{name} from {sender} ({shown})"
    return f"timer {name} ({shown})"


def decoded(value: WireValue | None) -> Any:
    """The decoded value of an optional encoding."""
    return None if value is None else decode_data(value.text)
