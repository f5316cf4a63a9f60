"""Search nodes a worker keeps between steps, and what one step changed.

A search state's node never changes: each step runs on a copy. A worker
keeps the node live with its state as the judge holds it (each attribute
encoded, :class:`~labkit.wire.NodeState`) and what its query methods
answered, so a step is a cheap copy, the handler, and a look at which
attributes the handler changed:

* the copy shares every deeply immutable value, copies a dict, list or set
  of immutable values at C speed, and copies objects attribute by attribute
  in the same way (how each part is copied is worked out once per kept
  node); it is the copy :func:`labkit.node.copy_node` makes;
* an attribute is unchanged when it still holds the very objects the kept
  node holds, in the same order; only the others are encoded, and one whose
  encoding is the old one is unchanged too. Identical objects make identical
  encodings, so this is exact, never a guess by ``==``.

Most steps of a search change nothing at all in the node (a message seen
before, a stale timer): the judge is then told so and reuses the node it has.
"""

from __future__ import annotations

import dataclasses
from operator import is_
from typing import Any

from labkit.node import Node
from labkit.values import _CACHE_ATTRS, _is_plain_object, copy_value, is_immutable
from labkit.wire import _FRAMEWORK_ATTRS, NodeState, _dumps_str, _enc, class_name

__all__ = ["Kept", "state_of"]


class _Plan:
    """How to copy one object attribute by attribute (worked out from an object that never changes):
    immutable values shared, flat containers of immutable values copied at C speed, objects by
    their own plan, anything else by :func:`copy_value`."""

    __slots__ = ("cls", "shared_keys", "shared_values", "flat", "objects", "deep", "framework")

    def __init__(self, obj: Any, node: bool = False) -> None:
        self.cls = type(obj)
        self.flat: list[str] = []
        self.objects: list[tuple[str, _Plan]] = []
        self.deep: list[str] = []
        self.framework: list[str] = []  # a node's own _lk_ attributes, copied as copy_node does
        shared: list[tuple[str, Any]] = []
        for key, value in obj.__dict__.items():
            if node and key[:4] == "_lk_":
                if key != "_lk_fp":
                    self.framework.append(key)
            elif node or key not in _CACHE_ATTRS:
                self._add(key, value, shared)
        self.shared_keys = tuple(k for k, _ in shared)
        self.shared_values = tuple(v for _, v in shared)

    def _add(self, key: str, value: Any, shared: list[tuple[str, Any]]) -> None:
        if is_immutable(value):
            shared.append((key, value))
        elif type(value) is set or (type(value) is list and all(map(is_immutable, value))) or (
                type(value) is dict and all(map(is_immutable, value.values()))):
            self.flat.append(key)  # what copy_value makes of these: keys and set members are shared
        elif _plain(value):
            self.objects.append((key, _Plan(value)))
        else:
            self.deep.append(key)

    def revised(self, obj: Any, changed: set[str]) -> "_Plan":
        """The plan of ``obj``, a copy made by this plan whose attributes ``changed`` changed."""
        plan = object.__new__(_Plan)
        plan.cls = self.cls
        plan.flat = [k for k in self.flat if k not in changed]
        plan.objects = [(k, p) for k, p in self.objects if k not in changed]
        plan.deep = [k for k in self.deep if k not in changed]
        plan.framework = self.framework
        shared = [(k, v) for k, v in zip(self.shared_keys, self.shared_values) if k not in changed]
        source = obj.__dict__
        for key in changed:
            if key not in plan.framework:
                plan._add(key, source[key], shared)
        plan.shared_keys = tuple(k for k, _ in shared)
        plan.shared_values = tuple(v for _, v in shared)
        return plan

    def same(self, copied: Any, original: Any) -> bool:
        """Whether ``copied``, made by this plan from ``original``, still holds exactly what it holds."""
        new, old = copied.__dict__, original.__dict__
        if type(copied) is not self.cls or new.keys() != old.keys():
            return False
        if not all(map(is_, map(new.__getitem__, self.shared_keys), self.shared_values)):
            return False
        for key in self.flat:
            if not _same_flat(new[key], old[key]):
                return False
        for key, plan in self.objects:
            if not plan.same(new[key], old[key]):
                return False
        return all(_same(new[key], old[key]) for key in self.deep)

    def copy(self, obj: Any) -> Any:
        source = obj.__dict__
        target = dict(zip(self.shared_keys, self.shared_values))
        for key in self.flat:
            target[key] = source[key].copy()
        for key, plan in self.objects:
            target[key] = plan.copy(source[key])
        for key in self.deep:
            target[key] = copy_value(source[key])
        for key in self.framework:
            value = source[key]
            target[key] = list(value) if type(value) is list else value
        new = object.__new__(self.cls)
        new.__dict__ = target
        return new


def _plain(value: Any) -> bool:
    """An object that copy_value copies by its instance dictionary."""
    cls = type(value)
    if getattr(cls, "__slots__", None) or not hasattr(value, "__dict__"):
        return False
    if dataclasses.is_dataclass(cls):
        return not cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    return _is_plain_object(value) and not isinstance(value, (list, dict, set, tuple, frozenset, str, int, float, bytes))


class Kept:
    """A node kept for search steps: the node (never changed), its state as encoded
    attributes, and, once known, its observation (observer, text, answers)."""

    __slots__ = ("node", "state", "obs", "_plan")

    def __init__(self, node: Node, state: NodeState, plan: _Plan | None = None) -> None:
        self.node = node
        self.state = state
        self.obs: tuple[str | None, str, dict[str, Any]] | None = None
        self._plan = plan

    def child(self, node: Node, changes: tuple[list[tuple[str, str]], list[str], set[str]]) -> "Kept":
        """``node`` (a copy of this one after a step that made ``changes``) kept in its turn."""
        changed, gone, touched = changes
        plan = self._plan.revised(node, touched) if self._plan is not None and not gone else None
        return Kept(node, self.state.derive(changed, gone), plan)

    def copy(self) -> Node:
        """A copy that shares nothing mutable with the kept node."""
        plan = self._plan
        if plan is None:
            plan = self._plan = _Plan(self.node, node=True)
        return plan.copy(self.node)

    def changes(self, node: Node) -> tuple[list[tuple[str, str]], list[str], set[str]] | None:
        """The attributes of ``node`` (a copy after a step) whose encoding differs from the
        kept node's, those it no longer has, and those that hold other objects than the kept
        node's; None if it has exactly the kept state. Raises what encoding raises (an attribute
        that cannot be node state)."""
        old = self.node.__dict__
        new = node.__dict__
        plan = self._plan
        if plan is None or new.keys() != old.keys():
            return self._changes(old, new)
        changed: list[tuple[str, str]] = []
        touched: set[str] = set()
        keys = plan.shared_keys
        if not all(map(is_, map(new.__getitem__, keys), plan.shared_values)):
            for key, before in zip(keys, plan.shared_values):
                value = new[key]
                if value is not before:
                    self._compare(key, value, changed, touched)
        for key in plan.flat:
            if not _same_flat(new[key], old[key]):
                self._compare(key, new[key], changed, touched)
        for key, sub in plan.objects:
            if not sub.same(new[key], old[key]):
                self._compare(key, new[key], changed, touched)
        for key in plan.deep + plan.framework:
            if not _same(new[key], old[key]) and key not in _FRAMEWORK_ATTRS:
                self._compare(key, new[key], changed, touched)
        return (changed, [], touched) if changed else None

    def _changes(self, old: dict[str, Any], new: dict[str, Any]
                 ) -> tuple[list[tuple[str, str]], list[str], set[str]] | None:
        """:meth:`changes`, attribute by attribute (attributes were added or removed)."""
        changed: list[tuple[str, str]] = []
        touched: set[str] = set()
        for key, value in new.items():
            if key in _FRAMEWORK_ATTRS:
                continue
            before = old.get(key, _MISSING)
            if before is value or (before is not _MISSING and _same(value, before)):
                continue
            self._compare(key, value, changed, touched)
        gone = [k for k in old if k not in new and k not in _FRAMEWORK_ATTRS]
        return (changed, gone, touched) if changed or gone else None

    def _compare(self, key: str, value: Any, changed: list[tuple[str, str]], touched: set[str]) -> None:
        """Encode attribute ``key`` and add it to ``changed`` if its encoding is not the kept one."""
        touched.add(key)
        text = _enc(value, 1)
        state = self.state
        i = state.shape.index.get(_dumps_str(key))
        if i is None or state.texts[i] != text:
            changed.append((key, text))


def state_of(node: Node) -> NodeState:
    """A node's state, encoded attribute by attribute. Raises what encoding raises."""
    return NodeState.of(class_name(type(node)),
                        {k: _enc(v, 1) for k, v in vars(node).items() if k not in _FRAMEWORK_ATTRS})


def _same_flat(a: Any, b: Any) -> bool:
    """:func:`_same` for a dict, list or set of immutable values and its copy."""
    return type(a) is type(b) and len(a) == len(b) and all(map(is_, a, b)) and (
        type(a) is not dict or all(map(is_, a.values(), b.values())))


def _same(a: Any, b: Any) -> bool:
    """Whether ``a`` (a copy, perhaps changed) holds exactly what ``b`` holds: the same immutable
    objects in the same places and order. False when unsure (then ``a`` is encoded and compared)."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return len(a) == len(b) and all(map(is_, a, b)) and (
            all(map(is_, a.values(), b.values())) or all(map(_same, a.values(), b.values())))
    if kind is list or kind is tuple:
        return len(a) == len(b) and (all(map(is_, a, b)) or all(map(_same, a, b)))
    if kind is set:
        return len(a) == len(b) and all(map(is_, a, b))
    d = getattr(a, "__dict__", None)
    if type(d) is dict and not getattr(kind, "__slots__", None):
        return _same(d, b.__dict__)
    return False


_MISSING: Any = object()
