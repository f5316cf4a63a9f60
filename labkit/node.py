"""The node model students write against: addresses, messages, timers and nodes.

A node is an I/O automaton. The framework calls ``init()`` once, then one
handler per event: ``handle_<MessageClass>(self, message, sender)`` for a
message and ``on_<TimerClass>(self, timer)`` for a timer. Handlers change the
node's attributes and call :meth:`Node.send`, :meth:`Node.broadcast` and
:meth:`Node.set_timer`; the engine running the node (the simulator or the
model checker) decides what happens to those effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from labkit.values import UnsupportedValueError, _fp_str, copy_value, find_unsupported

__all__ = [
    "Address",
    "Message",
    "Timer",
    "Node",
    "LabkitError",
    "NodeError",
    "MissingHandlerError",
    "server",
    "client",
]


class LabkitError(Exception):
    """Base class of the errors labkit raises for misuse it can explain."""


class NodeError(LabkitError):
    """A node used the framework API in a way it does not allow."""


class MissingHandlerError(NodeError):
    """A message or timer arrived at a node that has no method to handle it."""


@dataclass(frozen=True, order=True)
class Address:
    """The name of a node. Ordered by name, hashable, the same in every process."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise NodeError(f"an Address needs a non-empty string name, got {self.name!r}")
        # Stable across processes (unlike hash(str)), so sets of addresses
        # iterate in the same order in every interpreter.
        object.__setattr__(self, "_lk_hash", _fp_str(self.name))

    def __hash__(self) -> int:
        return self._lk_hash  # type: ignore[attr-defined,no-any-return]

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__

    def __lk_repr__(self) -> str:
        return self.name


def server(i: int) -> Address:
    """The address ``server<i>``, as the lab tests name servers."""
    return Address(f"server{i}")


def client(i: int) -> Address:
    """The address ``client<i>``, as the lab tests name clients."""
    return Address(f"client{i}")


class Message:
    """Base class of messages. Subclass it as ``@dataclass(frozen=True)``."""

    __slots__ = ()


class Timer:
    """Base class of timers. Subclass it as ``@dataclass(frozen=True)``."""

    __slots__ = ()


# --------------------------------------------------------------------------
# The effect collector: where send/broadcast/set_timer go while a handler runs
# --------------------------------------------------------------------------


class Effects:
    """What handlers did during one event: messages sent and timers set.

    ``sends`` holds ``(sender, destination, message)`` and ``timers`` holds
    ``(node, timer, min_millis, max_millis)``, in call order. ``now`` is the
    engine's clock (virtual milliseconds in run tests, the depth in searches),
    read only by framework nodes such as client workers.
    """

    __slots__ = ("sends", "timers", "now")

    def __init__(self, now: int = 0) -> None:
        self.sends: list[tuple[Address, Address, Message]] = []
        self.timers: list[tuple[Address, Timer, int, int]] = []
        self.now = now


_active: list[Effects] = []


def current_effects() -> Effects:
    """The collector of the event being handled (framework use)."""
    if not _active:
        raise NodeError(
            "a node sent a message or set a timer outside of an event: nodes may only do so in "
            "init() or in a handler, never in the constructor (move that code into init())"
        )
    return _active[-1]


class handling:
    """Context manager that collects the effects of handlers run inside it."""

    __slots__ = ("effects",)

    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def __enter__(self) -> Effects:
        _active.append(self.effects)
        return self.effects

    def __exit__(self, *exc: object) -> None:
        _active.pop()


# --------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------

_HANDLERS: dict[tuple[type, type], Callable[..., Any]] = {}


def _handler_for(node_cls: type, event_cls: type, prefix: str) -> Callable[..., Any]:
    key = (node_cls, event_cls)
    fn = _HANDLERS.get(key)
    if fn is None:
        name = f"{prefix}{event_cls.__name__}"
        fn = getattr(node_cls, name, None)
        if fn is None:
            what = "message" if prefix == "handle_" else "timer"
            args = "self, message, sender" if prefix == "handle_" else "self, timer"
            raise MissingHandlerError(
                f"{node_cls.__name__} received a {event_cls.__name__} {what} but has no method "
                f"{name}({args}); add that method to {node_cls.__name__} to handle it"
            )
        _HANDLERS[key] = fn
    return fn


class Node:
    """Base class of every node. Subclasses keep their state in attributes.

    The constructor must neither send messages nor set timers; do that in
    :meth:`init`, which the framework calls once before any event.
    """

    def __init__(self, address: Address) -> None:
        if not isinstance(address, Address):
            raise NodeError(f"a node's address must be an Address, got {address!r}")
        self.address = address

    def init(self) -> None:
        """Called once before any event. Override to send first messages or set timers."""

    # ---- what handlers call -------------------------------------------------

    def send(self, message: Message, to: Address) -> None:
        """Send ``message`` to the node at ``to``. The message is copied now."""
        if not isinstance(message, Message):
            raise NodeError(
                f"{type(self).__name__}.send needs a Message, got {_kind(message)}; "
                "define message classes as @dataclass(frozen=True) subclasses of labkit.Message"
            )
        if not isinstance(to, Address):
            raise NodeError(f"{type(self).__name__}.send needs an Address to send to, got {to!r}")
        current_effects().sends.append((self.address, to, copy_value(message)))

    def broadcast(self, message: Message, to: Iterable[Address]) -> None:
        """Send ``message`` to every address in ``to`` (one copy shared by all)."""
        if not isinstance(message, Message):
            raise NodeError(
                f"{type(self).__name__}.broadcast needs a Message, got {_kind(message)}; "
                "define message classes as @dataclass(frozen=True) subclasses of labkit.Message"
            )
        copied = copy_value(message)
        sends = current_effects().sends
        for address in to:
            if not isinstance(address, Address):
                raise NodeError(f"{type(self).__name__}.broadcast needs Addresses, got {address!r}")
            sends.append((self.address, address, copied))

    def set_timer(self, timer: Timer, min_millis: int, max_millis: int | None = None) -> None:
        """Deliver ``timer`` back to this node after ``min_millis`` ms, or after a
        length drawn uniformly from ``[min_millis, max_millis]``. Timers cannot be
        cancelled; a handler ignores a timer that has become stale."""
        if not isinstance(timer, Timer):
            raise NodeError(
                f"{type(self).__name__}.set_timer needs a Timer, got {_kind(timer)}; "
                "define timer classes as @dataclass(frozen=True) subclasses of labkit.Timer"
            )
        if max_millis is None:
            max_millis = min_millis
        if not isinstance(min_millis, int) or not isinstance(max_millis, int):
            raise NodeError(f"timer lengths must be whole milliseconds, got {min_millis!r} and {max_millis!r}")
        if min_millis < 1:
            raise NodeError(f"a timer must last at least 1 ms, got {min_millis} for {timer!r}")
        if min_millis > max_millis:
            raise NodeError(f"a timer's minimum length {min_millis} ms exceeds its maximum {max_millis} ms")
        current_effects().timers.append((self.address, copy_value(timer), min_millis, max_millis))

    # ---- what the framework calls ------------------------------------------

    def deliver_message(self, message: Message, sender: Address) -> Any:
        """Run this node's handler for ``message`` (framework use)."""
        return _handler_for(type(self), type(message), "handle_")(self, message, sender)

    def deliver_timer(self, timer: Timer) -> Any:
        """Run this node's handler for ``timer`` (framework use)."""
        return _handler_for(type(self), type(timer), "on_")(self, timer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def state_fields(node: Node) -> dict[str, Any]:
    """The attributes that make up a node's state (framework bookkeeping excluded)."""
    return {k: v for k, v in vars(node).items() if not k.startswith("_lk_")}


def copy_node(node: Node) -> Node:
    """A copy of ``node`` that shares nothing mutable with it (framework use).

    State attributes are deep-copied (immutable parts shared); the framework's
    own ``_lk_`` attributes are copied one level deep, which is all they need.
    """
    new = object.__new__(type(node))
    attrs = new.__dict__
    for key, value in node.__dict__.items():
        if key[:4] == "_lk_":
            if key == "_lk_fp":
                continue
            attrs[key] = list(value) if type(value) is list else value
        else:
            try:
                attrs[key] = copy_value(value)
            except UnsupportedValueError as error:
                # Name the attribute in the path (copy_value only sees the value).
                raise find_unsupported(value, key) or error from None
    return new
