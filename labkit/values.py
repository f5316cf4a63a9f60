"""Value semantics for node state and messages: fingerprints and boundary copies.

Students never write ``__eq__`` or ``__hash__``. The framework compares node
state by value through :func:`fingerprint`, a 64-bit digest that

* ignores the insertion order of dicts and sets,
* is the same in every interpreter (it never uses Python's randomized string
  hash), so fingerprints can cross process boundaries, and
* is cached on deeply immutable values (frozen dataclasses whose fields are
  immutable), so a message or a log entry is digested once in its lifetime.

:func:`copy_value` makes the copies that protect nodes from aliasing at node
boundaries. Deeply immutable values are shared, never copied.

Supported values: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
``bytes``, tuples, lists, dicts, sets, frozensets, enums, dataclasses (frozen
or not), classes, and plain objects whose state lives in ``__dict__``.
Anything else (a lambda, a generator, a lock, an open file, a random number
generator, ...) raises :class:`UnsupportedValueError` naming the attribute path.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import random
import types
from typing import Any, Callable

__all__ = [
    "UnsupportedValueError",
    "fingerprint",
    "copy_value",
    "is_immutable",
    "canonical_repr",
    "brief",
    "state_size",
    "find_unsupported",
    "mix",
]

_MASK = (1 << 64) - 1
_CACHE_ATTR = "_lk_fp"
_CACHE_ATTRS = frozenset({"_lk_fp", "_lk_imm"})


class UnsupportedValueError(TypeError):
    """A value that node state or a message may not hold."""

    def __init__(self, value: Any, path: str = "", hint: str = "") -> None:
        self.value = value
        self.path = path
        kind = _describe_kind(value)
        where = f" at {path}" if path else ""
        text = f"{kind}{where} cannot be part of node state or a message"
        if hint:
            text += f": {hint}"
        else:
            text += (
                ": keep only plain data (numbers, strings, tuples, lists, dicts, sets,"
                " dataclasses, enums) in node attributes and messages"
            )
        super().__init__(text)


def _describe_kind(value: Any) -> str:
    if isinstance(value, types.LambdaType) and value.__name__ == "<lambda>":
        return "a lambda"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return f"the function {value.__name__!r}"
    if isinstance(value, types.MethodType):
        return f"the bound method {value.__func__.__name__!r}"
    if isinstance(value, types.GeneratorType):
        return "a generator"
    if isinstance(value, io.IOBase):
        return "an open file"
    return f"a value of type {type(value).__module__}.{type(value).__qualname__}"


def _hint_for(value: Any) -> str:
    if isinstance(value, random.Random):
        return "handlers must be deterministic, so node state cannot hold a random number generator"
    if isinstance(value, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return "store data instead of functions; pick the behaviour in the handler"
    if isinstance(value, (types.GeneratorType, types.CoroutineType)):
        return "store a list or a tuple instead of a generator"
    name = type(value).__name__.lower()
    if "lock" in name or "condition" in name or "semaphore" in name:
        return "nodes run one event at a time, so they never need locks"
    if isinstance(value, io.IOBase):
        return "nodes must not touch files; keep data in memory"
    return ""


# --------------------------------------------------------------------------
# Primitive digests
# --------------------------------------------------------------------------

_STR_CACHE: dict[str, int] = {}
_BYTES_CACHE: dict[bytes, int] = {}
_STR_CACHE_LIMIT = 1 << 20


def _digest_bytes(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _fp_str(s: str) -> int:
    fp = _STR_CACHE.get(s)
    if fp is None:
        if len(_STR_CACHE) >= _STR_CACHE_LIMIT:
            _STR_CACHE.clear()
        fp = _digest_bytes(s.encode("utf-8", "surrogatepass"))
        _STR_CACHE[s] = fp
    return fp


def _fp_bytes(b: bytes) -> int:
    fp = _BYTES_CACHE.get(b)
    if fp is None:
        if len(_BYTES_CACHE) >= _STR_CACHE_LIMIT:
            _BYTES_CACHE.clear()
        fp = _digest_bytes(b"b" + b)
        _BYTES_CACHE[b] = fp
    return fp


_CLASS_FP: dict[type, int] = {}


def _class_fp(cls: type) -> int:
    fp = _CLASS_FP.get(cls)
    if fp is None:
        fp = _fp_str(f"class:{cls.__module__}.{cls.__qualname__}")
        _CLASS_FP[cls] = fp
    return fp


# Tags keep values of different shapes apart ((1, 2) vs [1, 2] vs {1, 2}).
_TAG_NONE = _fp_str("tag:None")
_TAG_INT = _fp_str("tag:int")
_TAG_FLOAT = _fp_str("tag:float")
_TAG_TUPLE = _fp_str("tag:tuple")
_TAG_LIST = _fp_str("tag:list")
_TAG_DICT = _fp_str("tag:dict")
_TAG_SET = _fp_str("tag:set")
_TAG_FROZENSET = _fp_str("tag:frozenset")
_TAG_ENUM = _fp_str("tag:enum")
_TAG_CLASS = _fp_str("tag:class")

# Python's hash of ints, floats and tuples of ints is the same in every
# process (only str/bytes hashing is randomized), so tuples of digests are
# mixed with the built-in, C-speed tuple hash.


def _fp_int(i: int) -> int:
    return hash((_TAG_INT, i))


def _fp_float(f: float) -> int:
    return hash((_TAG_FLOAT, f))


def _fp_complex(c: complex) -> int:
    return hash((_TAG_FLOAT, c.real, c.imag))


def _fp_none(_: None) -> int:
    return _TAG_NONE


# --------------------------------------------------------------------------
# Structural digests
# --------------------------------------------------------------------------

_FP_DISPATCH: dict[type, Callable[[Any], int]] = {}


def fingerprint(value: Any) -> int:
    """Return the 64-bit, order-independent, process-stable digest of ``value``.

    Equal values (by ``==``, treating dicts and sets as unordered) have equal
    fingerprints. Raises :class:`UnsupportedValueError` for values that cannot
    be part of node state.
    """
    try:
        return _fp(value)
    except UnsupportedValueError as error:
        if not error.path:
            raise find_unsupported(value) or error from None
        raise


def _fp(value: Any) -> int:
    handler = _FP_DISPATCH.get(type(value))
    if handler is None:
        handler = _make_fp_handler(type(value), value)
    return handler(value)


def _fp_tuple(t: tuple) -> int:
    fp = _fp
    return hash((_TAG_TUPLE, *[fp(x) for x in t]))


def _fp_list(lst: list) -> int:
    fp = _fp
    return hash((_TAG_LIST, *[fp(x) for x in lst]))


def mix(x: int) -> int:
    """Scramble one item digest before it is summed into an unordered combination.

    Python's tuple hash is close to linear under addition, so a plain sum of
    ``hash((key, value))`` makes ``{1: 2, 3: 4}`` and ``{1: 4, 3: 2}`` collide;
    a xorshift-multiply finalizer breaks that linearity.
    """
    x &= _MASK
    x ^= x >> 32
    x = (x * 0xD6E8FEB86659FD93) & _MASK
    return x ^ (x >> 32)


def _fp_dict(d: dict) -> int:
    fp = _fp
    total = 0
    for k, v in d.items():
        total += mix(hash((fp(k), fp(v))))
    return hash((_TAG_DICT, total & _MASK, len(d)))


def _fp_set(s: set) -> int:
    fp = _fp
    total = 0
    for x in s:
        total += mix(hash((_TAG_SET, fp(x))))
    return hash((_TAG_SET, total & _MASK, len(s)))


def _fp_frozenset(s: frozenset) -> int:
    fp = _fp
    total = 0
    for x in s:
        total += mix(hash((_TAG_SET, fp(x))))
    return hash((_TAG_FROZENSET, total & _MASK, len(s)))


def _fp_attrs(cls_fp: int, attrs: dict) -> int:
    """Digest of an object's attribute dict; ``_lk_`` attributes are the framework's."""
    fp = _fp
    total = 0
    for k, v in attrs.items():
        if k[:4] == "_lk_":
            continue
        total += mix(hash((_fp_str(k), fp(v))))
    return hash((cls_fp, total & _MASK))


def _make_fp_handler(cls: type, sample: Any) -> Callable[[Any], int]:
    handler: Callable[[Any], int]
    if issubclass(cls, enum.Enum):
        cache: dict[Any, int] = {}

        def handler(member: Any, cls_fp: int = _class_fp(cls)) -> int:
            fp = cache.get(member)
            if fp is None:
                fp = hash((_TAG_ENUM, cls_fp, _fp_str(member.name)))
                cache[member] = fp
            return fp

    elif isinstance(sample, type):

        def handler(c: type) -> int:
            return hash((_TAG_CLASS, _class_fp(c)))

    elif dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        handler = _frozen_dataclass_handler(cls)
    elif dataclasses.is_dataclass(cls) or _is_plain_object(sample):
        cls_fp = _class_fp(cls)
        if hasattr(sample, "__dict__") and not getattr(cls, "__slots__", ()):

            def handler(obj: Any) -> int:
                return _fp_attrs(cls_fp, obj.__dict__)

        else:
            names = _slot_names(cls)

            def handler(obj: Any) -> int:
                return _fp_attrs(cls_fp, {n: getattr(obj, n) for n in names if hasattr(obj, n)})

    elif issubclass(cls, (str, int, float, tuple, list, dict, set, frozenset, bytes)):
        # Subclasses of built-in containers and atoms (e.g. a NamedTuple or an
        # IntEnum-like class): digest as the base type, tagged by the class.
        base = next(b for b in cls.__mro__ if b in _FP_DISPATCH)
        base_handler = _FP_DISPATCH[base]
        cls_fp = _class_fp(cls)

        def handler(obj: Any) -> int:
            return hash((cls_fp, base_handler(obj)))

    else:
        raise UnsupportedValueError(sample, hint=_hint_for(sample))
    _FP_DISPATCH[cls] = handler
    return handler


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        names.extend(s for s in slots if s not in ("__dict__", "__weakref__"))
    return names


def _is_plain_object(value: Any) -> bool:
    """True for instances of ordinary user classes that keep state in attributes."""
    if isinstance(
        value,
        (
            types.FunctionType,
            types.BuiltinFunctionType,
            types.MethodType,
            types.GeneratorType,
            types.CoroutineType,
            types.AsyncGeneratorType,
            types.ModuleType,
            io.IOBase,
            random.Random,
        ),
    ):
        return False
    cls = type(value)
    if cls.__module__ in ("builtins", "_thread", "threading", "multiprocessing.synchronize"):
        return False
    return hasattr(value, "__dict__") or bool(_slot_names(cls))


def _frozen_dataclass_handler(cls: type) -> Callable[[Any], int]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    cls_fp = _class_fp(cls)
    has_dict = not getattr(cls, "__slots__", None)

    def handler(obj: Any) -> int:
        if has_dict:
            cached = obj.__dict__.get(_CACHE_ATTR)
            if cached is not None:
                return cached
        values = [getattr(obj, n) for n in names]
        fp = hash((cls_fp, *[_fp(v) for v in values]))
        if has_dict and _immutable(obj):
            object.__setattr__(obj, _CACHE_ATTR, fp)
        return fp

    return handler


_FP_DISPATCH.update(
    {
        type(None): _fp_none,
        bool: _fp_int,
        int: _fp_int,
        float: _fp_float,
        complex: _fp_complex,
        str: _fp_str,
        bytes: _fp_bytes,
        tuple: _fp_tuple,
        list: _fp_list,
        dict: _fp_dict,
        set: _fp_set,
        frozenset: _fp_frozenset,
    }
)


# --------------------------------------------------------------------------
# Immutability
# --------------------------------------------------------------------------

_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})
_IMM_ATTR = "_lk_imm"
_FROZEN_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _frozen_fields(cls: type) -> tuple[str, ...] | None:
    """Field names of a frozen dataclass, or None for any other class."""
    try:
        return _FROZEN_FIELDS[cls]
    except KeyError:
        names = None
        if dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            names = tuple(f.name for f in dataclasses.fields(cls))
        _FROZEN_FIELDS[cls] = names
        return names


def _is_frozen_dataclass(cls: type) -> bool:
    return _frozen_fields(cls) is not None


def _immutable(value: Any) -> bool:
    cls = type(value)
    if cls in _ATOMS:
        return True
    names = _frozen_fields(cls)
    if names is not None:
        d = getattr(value, "__dict__", None)
        if d is None:  # slots: nowhere to cache the answer
            return all(_immutable(getattr(value, n)) for n in names)
        flag = d.get(_IMM_ATTR)
        if flag is None:
            flag = all(_immutable(getattr(value, n)) for n in names)
            object.__setattr__(value, _IMM_ATTR, flag)
        return flag
    if cls is tuple or cls is frozenset:
        return all(_immutable(x) for x in value)
    if isinstance(value, (enum.Enum, type)):
        return True
    return False


def is_immutable(value: Any) -> bool:
    """True if ``value`` can never change, so it can be shared instead of copied."""
    return _immutable(value)


# --------------------------------------------------------------------------
# Boundary copies
# --------------------------------------------------------------------------

_COPY_DISPATCH: dict[type, Callable[[Any], Any]] = {}


def copy_value(value: Any) -> Any:
    """Deep-copy ``value``, sharing every deeply immutable part.

    Used where a value crosses a node boundary (a message at send and at
    delivery, a timer at set and at fire) and when a search step copies the
    node that handles an event.
    """
    try:
        return _copy(value)
    except UnsupportedValueError as error:
        if not error.path:
            raise find_unsupported(value) or error from None
        raise


def _copy(value: Any) -> Any:
    handler = _COPY_DISPATCH.get(type(value))
    if handler is None:
        handler = _make_copy_handler(type(value), value)
    return handler(value)


def _identity(value: Any) -> Any:
    return value


def _copy_tuple(t: tuple) -> tuple:
    if all(_immutable(x) for x in t):
        return t
    return tuple([_copy(x) for x in t])


def _copy_list(lst: list) -> list:
    return [x if type(x) in _ATOMS else _copy(x) for x in lst]


def _copy_dict(d: dict) -> dict:
    return {k: (v if type(v) in _ATOMS else _copy(v)) for k, v in d.items()}


def _copy_set(s: set) -> set:
    return set(s)


def _make_copy_handler(cls: type, sample: Any) -> Callable[[Any], Any]:
    handler: Callable[[Any], Any]
    if issubclass(cls, enum.Enum) or isinstance(sample, type):
        handler = _identity
    elif _is_frozen_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        has_dict = not getattr(cls, "__slots__", None)

        def handler(obj: Any) -> Any:
            if _immutable(obj):
                return obj
            new = object.__new__(cls)
            if has_dict:
                new.__dict__.update({k: _copy(v) for k, v in obj.__dict__.items() if k not in _CACHE_ATTRS})
            else:
                for n in names:
                    object.__setattr__(new, n, _copy(getattr(obj, n)))
            return new

    elif dataclasses.is_dataclass(cls) or _is_plain_object(sample):
        if hasattr(sample, "__dict__") and not getattr(cls, "__slots__", ()):

            def handler(obj: Any) -> Any:
                new = object.__new__(cls)
                new.__dict__.update(
                    {k: (v if type(v) in _ATOMS else _copy(v)) for k, v in obj.__dict__.items() if k not in _CACHE_ATTRS}
                )
                return new

        else:
            names = _slot_names(cls)

            def handler(obj: Any) -> Any:
                new = object.__new__(cls)
                for n in names:
                    if hasattr(obj, n):
                        object.__setattr__(new, n, _copy(getattr(obj, n)))
                if hasattr(obj, "__dict__"):
                    new.__dict__.update({k: _copy(v) for k, v in obj.__dict__.items() if k not in _CACHE_ATTRS})
                return new

    elif issubclass(cls, (tuple, frozenset)) and not issubclass(cls, (list, dict, set)):
        # NamedTuples and other immutable built-in subclasses.
        def handler(obj: Any) -> Any:
            return obj if _immutable_builtin_subclass(obj) else _rebuild(obj)

    elif issubclass(cls, (list, dict, set)):

        def handler(obj: Any) -> Any:
            return _rebuild(obj)

    elif issubclass(cls, (str, int, float, bytes)):
        handler = _identity
    else:
        raise UnsupportedValueError(sample, hint=_hint_for(sample))
    _COPY_DISPATCH[cls] = handler
    return handler


def _immutable_builtin_subclass(obj: Any) -> bool:
    return all(_immutable(x) for x in obj)


def _rebuild(obj: Any) -> Any:
    import copy

    return copy.deepcopy(obj)


_COPY_DISPATCH.update(
    {
        type(None): _identity,
        bool: _identity,
        int: _identity,
        float: _identity,
        complex: _identity,
        str: _identity,
        bytes: _identity,
        tuple: _copy_tuple,
        frozenset: _identity,
        list: _copy_list,
        dict: _copy_dict,
        set: _copy_set,
    }
)


# --------------------------------------------------------------------------
# Diagnostics and rendering
# --------------------------------------------------------------------------


def find_unsupported(value: Any, path: str = "") -> UnsupportedValueError | None:
    """Walk ``value`` and return an error naming the first unsupported part, or None."""
    seen: set[int] = set()

    def walk(v: Any, p: str) -> UnsupportedValueError | None:
        cls = type(v)
        if cls in _ATOMS or isinstance(v, (enum.Enum, type)):
            return None
        if id(v) in seen:
            return None
        seen.add(id(v))
        if cls is tuple or cls is list or isinstance(v, (tuple, list)):
            for i, x in enumerate(v):
                err = walk(x, f"{p}[{i}]")
                if err:
                    return err
            return None
        if isinstance(v, dict):
            for k, x in v.items():
                err = walk(k, f"{p} (a key)") or walk(x, f"{p}[{k!r}]")
                if err:
                    return err
            return None
        if isinstance(v, (set, frozenset)):
            for x in v:
                err = walk(x, f"{p} (an element)")
                if err:
                    return err
            return None
        if dataclasses.is_dataclass(v) or _is_plain_object(v):
            attrs = dict(getattr(v, "__dict__", {}))
            for n in _slot_names(cls):
                if hasattr(v, n):
                    attrs[n] = getattr(v, n)
            for k, x in attrs.items():
                if k.startswith("_lk_"):
                    continue
                err = walk(x, f"{p}.{k}" if p else k)
                if err:
                    return err
            return None
        return UnsupportedValueError(v, p or "(the value itself)", _hint_for(v))

    return walk(value, path)


def canonical_repr(value: Any) -> str:
    """A repr that is the same in every process: sets and dicts are sorted.

    Dataclasses print as ``Name(field=value, ...)``; addresses print as their name.
    """
    cls = type(value)
    if cls in _ATOMS:
        return repr(value)
    if isinstance(value, enum.Enum):
        return f"{cls.__name__}.{value.name}"
    if isinstance(value, type):
        return value.__qualname__
    if cls is tuple:
        inner = ", ".join(canonical_repr(x) for x in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if cls is list:
        return "[" + ", ".join(canonical_repr(x) for x in value) + "]"
    if isinstance(value, dict):
        items = sorted(f"{canonical_repr(k)}: {canonical_repr(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (set, frozenset)):
        if not value:
            return "set()" if cls is set else "frozenset()"
        inner = "{" + ", ".join(sorted(canonical_repr(x) for x in value)) + "}"
        return inner if cls is set else f"frozenset({inner})"
    custom = getattr(cls, "__lk_repr__", None)
    if custom is not None:
        return custom(value)
    if dataclasses.is_dataclass(value):
        fields = ", ".join(
            f"{f.name}={canonical_repr(getattr(value, f.name))}" for f in dataclasses.fields(value) if f.repr
        )
        return f"{cls.__name__}({fields})"
    if hasattr(value, "__dict__") and cls.__repr__ is object.__repr__:
        fields = ", ".join(f"{k}={canonical_repr(v)}" for k, v in value.__dict__.items() if not k.startswith("_"))
        return f"{cls.__name__}({fields})"
    return repr(value)


def brief(value: Any, limit: int = 120) -> str:
    """:func:`canonical_repr` cut to ``limit`` characters (long values end in ``...``)."""
    text = canonical_repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def state_size(value: Any) -> int:
    """Approximate size in bytes of ``value`` as stored: strings and bytes by length.

    Shared objects are counted once. Used for memory checks such as "logs were
    garbage-collected", where what matters is the data a node keeps.
    """
    seen: set[int] = set()
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        cls = type(v)
        if cls is str or cls is bytes:
            if id(v) not in seen:
                seen.add(id(v))
                total += len(v) + 16
            continue
        if cls in _ATOMS:
            total += 8
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, dict):
            total += 16 * len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            total += 8 * len(v)
            stack.extend(v)
        elif isinstance(v, (enum.Enum, type)):
            total += 8
        elif hasattr(v, "__dict__") or dataclasses.is_dataclass(v):
            attrs = getattr(v, "__dict__", None)
            if attrs is None:
                attrs = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
            total += 16
            stack.extend(x for k, x in attrs.items() if not k.startswith("_lk_"))
        else:
            total += 16
    return total
