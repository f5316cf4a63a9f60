"""The data-only encoding that crosses the seam between the judge and its workers.

Student code runs in worker processes; the judge (simulator, search,
predicates, scoring) only ever sees what the workers send: node states,
messages, timers and query answers encoded as JSON text by :func:`encode`.
Nothing in an encoding can run code when it is read, and the judge reads it
with :func:`decode_data`, which builds labkit's own value classes where it
knows them and :class:`Record` values for everything else; it never imports
or instantiates a student's class. Workers rebuild live objects with
:func:`decode_live`.

Encodings are canonical: equal values encode to the same text whatever the
insertion order of their dicts and sets, in every process, so the judge
fingerprints a state by hashing its text (:func:`text_fingerprint`). The
shapes, each a JSON array tagged by its first element (plain JSON numbers,
strings, ``true``/``false`` and ``null`` stand for themselves):

``["T", ...]`` tuple, ``["L", ...]`` list, ``["D", k, v, ...]`` dict (pairs in
the order of their keys' encodings), ``["S", ...]`` set and ``["F", ...]``
frozenset (in the order of their elements' encodings), ``["B", base64]``
bytes, ``["C", real, imag]`` complex, ``["@", name]`` an address,
``["E", class, member]`` an enum member, ``["O", class, field values...]`` a
frozen dataclass (fields in declaration order), ``["A", class, name, value,
...]`` any other object (attributes in name order), ``["Y", class]`` a class.
A class is named ``"module:qualname"``. Deeply immutable values (frozen
dataclasses of immutable fields) cache their encoding, so a log entry or a
message is encoded once in its lifetime.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import importlib
import json
import sys
import types
from typing import Any, Callable, ClassVar, Iterable

from labkit.node import Address, LabkitError
from labkit.values import UnsupportedValueError, _hint_for, _is_plain_object, _slot_names, canonical_repr, is_immutable

__all__ = [
    "WireError",
    "encode",
    "decode_data",
    "decode_live",
    "forget_schemas",
    "text_fingerprint",
    "canonical_text",
    "Record",
    "RecordEnum",
    "class_name",
    "WireValue",
    "NodeState",
    "attribute_digest",
    "trust_module",
    "type_name",
]

_CACHE = "_lk_wire"  # where an immutable object keeps its encoding
_FRAMEWORK_ATTRS = frozenset({"_lk_fp", "_lk_imm", _CACHE})
MAX_DEPTH = 200  # nesting deeper than this is refused (it would exhaust the stack)


class WireError(LabkitError):
    """A value that cannot be encoded, or an encoding that is malformed."""


def class_name(cls: type) -> str:
    """``module:qualname``, how encodings name a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


# --------------------------------------------------------------------------
# Encoding (in workers)
# --------------------------------------------------------------------------

_dumps_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_ENCODERS: dict[type, Callable[[Any, int], str]] = {}
_PREFIX: dict[type, str] = {}


def encode(value: Any) -> str:
    """The canonical JSON text of ``value``; raises :class:`UnsupportedValueError`
    (naming the attribute path) for a value node state may not hold."""
    try:
        return _enc(value, 0)
    except UnsupportedValueError as error:
        if error.path:
            raise
        from labkit.values import find_unsupported

        raise find_unsupported(value) or error from None
    except RecursionError:
        raise WireError(f"a value is nested more than {MAX_DEPTH} levels deep (or refers to itself); "
                        "keep node state and messages as plain, shallow data") from None


def _enc(value: Any, depth: int) -> str:
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        encoder = _make_encoder(type(value), value)
    if depth > MAX_DEPTH:
        raise RecursionError
    return encoder(value, depth)


def _enc_none(value: None, depth: int) -> str:
    return "null"


def _enc_bool(value: bool, depth: int) -> str:
    return "true" if value else "false"


def _enc_int(value: int, depth: int) -> str:
    return int.__repr__(value)


def _enc_float(value: float, depth: int) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _enc_str(value: str, depth: int) -> str:
    return _dumps_str(value)


def _enc_bytes(value: bytes, depth: int) -> str:
    return '["B","' + base64.b64encode(value).decode("ascii") + '"]'


def _enc_complex(value: complex, depth: int) -> str:
    return f'["C",{_enc_float(value.real, 0)},{_enc_float(value.imag, 0)}]'


def _enc_tuple(value: tuple, depth: int) -> str:
    d = depth + 1
    return '["T"' + "".join(["," + _enc(x, d) for x in value]) + "]"


def _enc_list(value: list, depth: int) -> str:
    d = depth + 1
    return '["L"' + "".join(["," + _enc(x, d) for x in value]) + "]"


def _enc_dict(value: dict, depth: int) -> str:
    d = depth + 1
    pairs = sorted([(_enc(k, d), _enc(v, d)) for k, v in value.items()])
    return '["D"' + "".join(["," + k + "," + v for k, v in pairs]) + "]"


def _enc_set(value: set, depth: int) -> str:
    d = depth + 1
    return '["S"' + "".join(sorted(["," + _enc(x, d) for x in value])) + "]"


def _enc_frozenset(value: frozenset, depth: int) -> str:
    d = depth + 1
    return '["F"' + "".join(sorted(["," + _enc(x, d) for x in value])) + "]"


def _enc_address(value: Address, depth: int) -> str:
    return '["@",' + _dumps_str(value.name) + "]"


def _make_encoder(cls: type, sample: Any) -> Callable[[Any, int], str]:
    name = _dumps_str(class_name(cls))
    encoder: Callable[[Any, int], str]
    if issubclass(cls, enum.Enum):

        def encoder(member: Any, depth: int) -> str:
            return '["E",' + name + "," + _dumps_str(member.name) + "]"

    elif isinstance(sample, type):

        def encoder(c: Any, depth: int) -> str:
            return '["Y",' + _dumps_str(class_name(c)) + "]"

    elif dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        encoder = _frozen_encoder(cls, name)
    elif issubclass(cls, (str, int, float, tuple, list, dict, set, frozenset, bytes)) and not (
        dataclasses.is_dataclass(cls)
    ):
        # A subclass of a built-in (a NamedTuple, say): its contents as the base type, tagged by the class.
        base = next(b for b in cls.__mro__ if b in _ENCODERS)
        base_encoder = _ENCODERS[base]

        def encoder(obj: Any, depth: int) -> str:
            return '["A",' + name + ',"__value__",' + base_encoder(obj, depth + 1) + "]"

    elif dataclasses.is_dataclass(cls) or _is_plain_object(sample):
        slots = _slot_names(cls)

        def encoder(obj: Any, depth: int) -> str:
            attrs = _attributes(obj, slots)
            d = depth + 1
            parts = sorted(
                [(_dumps_str(k), _enc(v, d)) for k, v in attrs.items() if k not in _FRAMEWORK_ATTRS]
            )
            return '["A",' + name + "".join(["," + k + "," + v for k, v in parts]) + "]"

    else:
        raise UnsupportedValueError(sample, hint=_hint_for(sample))
    _ENCODERS[cls] = encoder
    return encoder


def _attributes(obj: Any, slots: list[str]) -> dict[str, Any]:
    attrs = dict(getattr(obj, "__dict__", None) or {})
    for n in slots:
        if hasattr(obj, n):
            attrs[n] = getattr(obj, n)
    return attrs


def _frozen_encoder(cls: type, name: str) -> Callable[[Any, int], str]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    has_dict = not getattr(cls, "__slots__", None)
    head = '["O",' + name

    def encoder(obj: Any, depth: int) -> str:
        if has_dict:
            cached = obj.__dict__.get(_CACHE)
            if cached is not None:
                return cached
        d = depth + 1
        text = head + "".join(["," + _enc(getattr(obj, n), d) for n in names]) + "]"
        if has_dict and is_immutable(obj):
            object.__setattr__(obj, _CACHE, text)
        return text

    return encoder


_ENCODERS.update(
    {
        type(None): _enc_none,
        bool: _enc_bool,
        int: _enc_int,
        float: _enc_float,
        complex: _enc_complex,
        str: _enc_str,
        bytes: _enc_bytes,
        tuple: _enc_tuple,
        list: _enc_list,
        dict: _enc_dict,
        set: _enc_set,
        frozenset: _enc_frozenset,
        Address: _enc_address,
    }
)


def text_fingerprint(text: str) -> int:
    """The 64-bit fingerprint of an encoding (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of a frozen dataclass, in the order ``["O", ...]`` lists their values."""
    return tuple(f.name for f in dataclasses.fields(cls))


# --------------------------------------------------------------------------
# Records: the judge's stand-ins for student classes
# --------------------------------------------------------------------------


class Record:
    """A value of a class the judge does not import: its class name and fields, by value.

    Records are immutable and compare by class and fields; attribute access
    reads a field. ``type(record).__name__`` is the student's class name, so
    pictures and logs name messages as the student wrote them.
    """

    __slots__ = ("_lk_values",)
    _lk_class: ClassVar[str] = ""
    _lk_fields: ClassVar[tuple[str, ...]] = ()
    _lk_index: ClassVar[dict[str, int]] = {}

    def __init__(self, values: tuple) -> None:
        object.__setattr__(self, "_lk_values", values)

    def __getattr__(self, name: str) -> Any:
        index = type(self)._lk_index.get(name)
        if index is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        return self._lk_values[index]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} values cannot be changed here")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._lk_values == self._lk_values  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self._lk_class, self._lk_values))

    def __lk_repr__(self) -> str:
        fields = ", ".join(f"{n}={canonical_repr(v)}" for n, v in zip(self._lk_fields, self._lk_values))
        return f"{type(self).__name__}({fields})"

    def __repr__(self) -> str:
        return self.__lk_repr__()

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return cls._lk_fields

    def as_dict(self) -> dict[str, Any]:
        """The fields by name."""
        return dict(zip(self._lk_fields, self._lk_values))


class RecordEnum:
    """A member of an enum the judge does not import."""

    __slots__ = ("name",)
    _lk_class: ClassVar[str] = ""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "name", name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("enum members cannot be changed")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self._lk_class, self.name))

    def __lk_repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    __repr__ = __lk_repr__


class RecordClass:
    """A class (as a value) that the judge does not import."""

    __slots__ = ("qualified",)

    def __init__(self, qualified: str) -> None:
        object.__setattr__(self, "qualified", qualified)

    def __eq__(self, other: object) -> bool:
        return type(other) is RecordClass and other.qualified == self.qualified  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(("class", self.qualified))

    def __lk_repr__(self) -> str:
        return self.qualified.rpartition(":")[2]

    __repr__ = __lk_repr__


MAX_CLASSES = 5_000  # distinct student classes one judge process accepts


class _Types:
    """The judge's record types, made once per class name and field list."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, tuple[str, ...]], type] = {}
        self.enums: dict[str, type] = {}

    def record(self, qualified: str, fields: tuple[str, ...]) -> type:
        key = (qualified, fields)
        cls = self.records.get(key)
        if cls is None:
            self._room()
            module, _, qualname = _split_class(qualified)
            for f in fields:
                if not isinstance(f, str) or not f.isidentifier():
                    raise WireError(f"{qualified} has a field name that is not an identifier: {f!r}")
            cls = type(qualname.rpartition(".")[2], (Record,), {
                "__slots__": (), "__module__": module, "__qualname__": qualname,
                "_lk_class": qualified, "_lk_fields": fields, "_lk_index": {f: i for i, f in enumerate(fields)},
            })
            self.records[key] = cls
        return cls

    def enum(self, qualified: str) -> type:
        cls = self.enums.get(qualified)
        if cls is None:
            self._room()
            module, _, qualname = _split_class(qualified)
            cls = type(qualname.rpartition(".")[2], (RecordEnum,), {
                "__slots__": (), "__module__": module, "__qualname__": qualname, "_lk_class": qualified,
            })
            self.enums[qualified] = cls
        return cls

    def _room(self) -> None:
        if len(self.records) + len(self.enums) >= MAX_CLASSES:
            raise WireError(f"more than {MAX_CLASSES:,} different classes were sent: nodes must not make classes at run time")


_TYPES = _Types()


def _split_class(qualified: Any) -> tuple[str, str, str]:
    if not isinstance(qualified, str) or qualified.count(":") != 1:
        raise WireError(f"a class must be named 'module:qualname', got {qualified!r}")
    module, colon, qualname = qualified.partition(":")
    if not module or not qualname or not all(p.isidentifier() for p in module.split(".") + qualname.split(".")):
        raise WireError(f"{qualified!r} is not a class name")
    return module, colon, qualname


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------


def _parse(text: str) -> Any:
    if not isinstance(text, str):
        raise WireError(f"an encoding must be text, got {type(text).__name__}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise WireError(f"malformed encoding: {error}") from None


_ADDRESS = class_name(Address)


class _Decoder:
    """Builds values from parsed encodings; subclasses say how classes become values."""

    def decode(self, data: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"an encoding is nested more than {MAX_DEPTH} levels deep")
        kind = type(data)
        if kind is not list:
            if kind is dict:
                raise WireError("malformed encoding: a JSON object is not a value")
            return data
        if not data or type(data[0]) is not str:
            raise WireError("malformed encoding: an array without a tag")
        tag = data[0]
        d = depth + 1
        dec = self.decode
        try:
            if tag == "O":
                if tag == "O" and data[1] == _ADDRESS:
                    return self.address(data[2])
                return self.frozen(data[1], [x if type(x) is not list else dec(x, d) for x in data[2:]])
            if tag == "@":
                return self.address(_one_string(data))
            if tag == "T":
                return tuple([x if type(x) is not list else dec(x, d) for x in data[1:]])
            if tag == "L":
                return [x if type(x) is not list else dec(x, d) for x in data[1:]]
            if tag == "D":
                items = data[1:]
                if len(items) % 2:
                    raise WireError("malformed encoding: a dict with an odd number of items")
                return {dec(items[i], d): dec(items[i + 1], d) for i in range(0, len(items), 2)}
            if tag == "S":
                return {dec(x, d) for x in data[1:]}
            if tag == "F":
                return frozenset(dec(x, d) for x in data[1:])
            if tag == "B":
                return base64.b64decode(_one_string(data), validate=True)
            if tag == "C":
                return complex(float(data[1]), float(data[2]))
            if tag == "E":
                return self.enum(data[1], data[2])
            if tag == "A":
                items = data[2:]
                if len(items) % 2:
                    raise WireError("malformed encoding: an object with an odd number of items")
                names = items[0::2]
                if not all(type(n) is str for n in names):
                    raise WireError("malformed encoding: an attribute name that is not a string")
                return self.plain(data[1], names, [dec(v, d) for v in items[1::2]])
            if tag == "Y":
                return self.klass(data[1])
        except (TypeError, ValueError, IndexError, KeyError) as error:
            if isinstance(error, WireError):
                raise
            raise WireError(f"malformed encoding {_clip(data)}: {type(error).__name__}: {error}") from None
        raise WireError(f"malformed encoding: unknown tag {tag!r}")

    def address(self, name: str) -> Address:
        return Address(name)

    def enum(self, qualified: Any, member: Any) -> Any:
        raise NotImplementedError

    def frozen(self, qualified: Any, values: list) -> Any:
        raise NotImplementedError

    def plain(self, qualified: Any, names: list, values: list) -> Any:
        raise NotImplementedError

    def klass(self, qualified: Any) -> Any:
        raise NotImplementedError


def _clip(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 80 else text[:77] + "..."


def _one_string(data: list) -> str:
    if len(data) != 2 or type(data[1]) is not str:
        raise WireError(f"malformed encoding {_clip(data)}")
    return data[1]


_TRUSTED: set[str] = set()


def trust_module(name: str) -> None:
    """Let the judge decode values of classes defined in module ``name`` as those classes.

    For modules of the judge's own (a framework test's nodes, a lab's helpers);
    never for a student's module, whose classes stay records."""
    _TRUSTED.add(name)


def _labkit_class(qualified: str) -> Any:
    """A class of labkit's own (or of a trusted module) that the judge has already imported, or None.

    Only modules already loaded are looked at, so an encoding can never make
    the judge import anything."""
    module_name, _, qualname = _split_class(qualified)
    if module_name != "labkit" and not module_name.startswith("labkit.") and module_name not in _TRUSTED:
        return None
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None) if obj is not None else None
    return obj if isinstance(obj, type) else None


class _DataDecoder(_Decoder):
    """The judge's decoder: labkit's value classes are rebuilt, every other class becomes a record."""

    def __init__(self) -> None:
        self.members: dict[tuple[str, str], Any] = {}

    def enum(self, qualified: Any, member: Any) -> Any:
        if type(member) is not str or type(qualified) is not str:
            raise WireError(f"malformed enum member {member!r}")
        key = (qualified, member)
        found = self.members.get(key)
        if found is None:
            found = self._enum(qualified, member)
            if len(self.members) < 10_000:
                self.members[key] = found
        return found

    def _enum(self, qualified: str, member: str) -> Any:
        cls = _labkit_class(qualified)
        if cls is not None and issubclass(cls, enum.Enum):
            try:
                return cls[member]
            except KeyError:
                raise WireError(f"{qualified} has no member {member!r}") from None
        return _TYPES.enum(qualified)(member)

    def frozen(self, qualified: Any, values: list) -> Any:
        cls = _labkit_class(qualified)
        if cls is not None and dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            names = _LABKIT_FIELDS.get(cls)
            if names is None:
                names = _LABKIT_FIELDS[cls] = field_names(cls)
            if len(values) != len(names):
                raise WireError(f"{qualified} has {len(names)} fields, the encoding gives {len(values)}")
            if cls is Address:
                return _checked_address(values[0])
            obj = object.__new__(cls)
            for n, v in zip(names, values):
                object.__setattr__(obj, n, v)
            return obj
        fields = _SCHEMAS.get(qualified)
        if fields is None or len(fields) != len(values):
            fields = tuple(f"field{i}" for i in range(len(values)))
        return _TYPES.record(qualified, fields)(tuple(values))

    def plain(self, qualified: Any, names: list, values: list) -> Any:
        cls = _labkit_class(qualified)
        if cls is not None and not issubclass(cls, enum.Enum) and names != ["__value__"]:
            obj = object.__new__(cls)
            slots = set(_slot_names(cls))
            for n, v in zip(names, values):
                if n in slots:
                    object.__setattr__(obj, n, v)
                elif hasattr(obj, "__dict__"):
                    obj.__dict__[n] = v
            return obj
        return _TYPES.record(qualified, tuple(names))(tuple(values))

    def klass(self, qualified: Any) -> Any:
        cls = _labkit_class(qualified)
        return cls if cls is not None else RecordClass(_split_class(qualified)[0] + ":" + _split_class(qualified)[2])


def _checked_address(name: Any) -> Address:
    if not isinstance(name, str):
        raise WireError(f"an address must be named by a string, got {name!r}")
    return Address(name)


_LABKIT_FIELDS: dict[type, tuple[str, ...]] = {}
_SCHEMAS: dict[str, tuple[str, ...]] = {}


def forget_schemas() -> None:
    """Forget the field names workers reported: the next submission judged in this process may
    define a class of the same name with other fields."""
    _SCHEMAS.clear()


def learn_schemas(schemas: Any) -> None:
    """Field names of frozen dataclasses, as workers report them (``{class: [names]}``).

    The first report of a class wins; a different one later is refused (until
    :func:`forget_schemas`, when another submission is judged)."""
    if not isinstance(schemas, dict):
        raise WireError("malformed class table")
    for qualified, names in schemas.items():
        _split_class(qualified)
        if not isinstance(names, list) or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise WireError(f"malformed field list for {qualified}")
        known = _SCHEMAS.get(qualified)
        if known is None:
            _SCHEMAS[qualified] = tuple(names)
        elif known != tuple(names):
            raise WireError(f"{qualified} was reported with fields {list(known)} and later with {names}: "
                            "classes must not change while the tests run")


_DATA = _DataDecoder()


def decode_data(text: str) -> Any:
    """The judge's view of an encoding: plain data, labkit values and records. Never runs student code."""
    return _DATA.decode(_parse(text))


def decode_parsed(data: Any) -> Any:
    """:func:`decode_data` of an encoding already parsed as JSON."""
    return _DATA.decode(data)


class LiveDecoder(_Decoder):
    """A worker's decoder: classes are looked up in the worker's modules and objects rebuilt
    without calling constructors, from their fields."""

    def __init__(self) -> None:
        self.classes: dict[str, type] = {}
        self.fields: dict[type, tuple[str, ...]] = {}
        self.addresses: dict[str, Address] = {}

    def lookup(self, qualified: Any) -> type:
        cls = self.classes.get(qualified)
        if cls is None:
            module_name, _, qualname = _split_class(qualified)
            module = sys.modules.get(module_name)
            if module is None:
                try:
                    module = importlib.import_module(module_name)
                except ImportError:
                    raise WireError(f"{qualified} names a module that cannot be imported") from None
            obj: Any = module
            for part in qualname.split("."):
                obj = getattr(obj, part, None)
            if not isinstance(obj, type):
                raise WireError(f"{qualified} is not a class of the loaded code")
            cls = self.classes[qualified] = obj
        return cls

    def address(self, name: Any) -> Address:
        found = self.addresses.get(name) if type(name) is str else None
        if found is None:
            found = _checked_address(name)
            if len(self.addresses) < 100_000:
                self.addresses[name] = found
        return found

    def enum(self, qualified: Any, member: Any) -> Any:
        return self.lookup(qualified)[member]

    def frozen(self, qualified: Any, values: list) -> Any:
        cls = self.classes.get(qualified) or self.lookup(qualified)
        if cls is Address:
            return self.address(values[0])
        names = self.fields.get(cls)
        if names is None:
            names = self.fields[cls] = field_names(cls)
        obj = object.__new__(cls)
        if len(names) == len(values) and not getattr(cls, "__slots__", None):
            obj.__dict__.update(zip(names, values))
        else:
            for n, v in zip(names, values):
                object.__setattr__(obj, n, v)
        return obj

    def plain(self, qualified: Any, names: list, values: list) -> Any:
        cls = self.lookup(qualified)
        obj = object.__new__(cls)
        if names == ["__value__"]:  # a subclass of a built-in
            return cls(values[0])
        slots = set(_slot_names(cls))
        for n, v in zip(names, values):
            if n in slots:
                object.__setattr__(obj, n, v)
            else:
                obj.__dict__[n] = v
        return obj

    def klass(self, qualified: Any) -> Any:
        return self.lookup(qualified)


def decode_live(text: str, decoder: LiveDecoder | None = None) -> Any:
    """A worker's live copy of an encoding (student classes included)."""
    return (decoder or LiveDecoder()).decode(_parse(text))


class ValueCache:
    """Decoded messages and timers by their text, for a worker: a deeply immutable value
    (a frozen dataclass of immutable fields, as messages are) is decoded once and shared."""

    def __init__(self, decoder: LiveDecoder, limit: int = 8192) -> None:
        self.decoder = decoder
        self.limit = limit
        self.values: dict[str, Any] = {}

    def get(self, text: str) -> Any:
        value = self.values.get(text, _UNSET)
        if value is not _UNSET:
            return value
        value = decode_live(text, self.decoder)
        if is_immutable(value):
            if len(self.values) >= self.limit:
                self.values.clear()
            self.values[text] = value
        return value


def schemas_of(classes: Iterable[type]) -> dict[str, list[str]]:
    """The class table a worker reports for the frozen dataclasses it encoded."""
    return {class_name(c): list(field_names(c)) for c in classes}


# --------------------------------------------------------------------------
# Encoded values held by the judge
# --------------------------------------------------------------------------


class WireValue:
    """An encoded value as the judge holds it: the text, its fingerprint, and the
    decoded value, built when first needed. Equal texts mean equal values."""

    __slots__ = ("text", "_fp", "_value")

    def __init__(self, text: str, fp: int | None = None) -> None:
        self.text = text
        self._fp = fp
        self._value: Any = _UNSET

    @property
    def fp(self) -> int:
        """The 64-bit fingerprint of the text (computed when first needed)."""
        fp = self._fp
        if fp is None:
            fp = self._fp = text_fingerprint(self.text)
        return fp

    @property
    def value(self) -> Any:
        if self._value is _UNSET:
            self._value = decode_data(self.text)
        return self._value

    @property
    def type_name(self) -> str:
        """The class name of the value (``P2a``), without the module."""
        value = self.value
        return type(value).__name__

    def __eq__(self, other: object) -> bool:
        if type(other) is WireValue:
            return other.text == self.text  # type: ignore[attr-defined]
        return bool(self.value == other)  # the judge's own value of the same thing

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("text", "_fp", "_value"):
            raise AttributeError(name)
        return getattr(self.value, name)  # a field of the value (``timer.name``)

    def __hash__(self) -> int:
        return self.fp

    def __len__(self) -> int:
        return len(self.text)

    def __lk_repr__(self) -> str:
        return canonical_repr(self.value)

    def __repr__(self) -> str:
        return self.__lk_repr__()


_UNSET: Any = object()


# --------------------------------------------------------------------------
# Node states held by a search: encoded attribute by attribute
# --------------------------------------------------------------------------

_MASK = (1 << 64) - 1


def attribute_digest(name: str, text: str) -> int:
    """The digest of one attribute: its name's encoding and its value's encoding."""
    return text_fingerprint(name + ":" + text)


class _Shape:
    """What node states of one class and one set of attributes share: the encoding's head,
    the attribute names (encoded, in encoding order) and where each one is."""

    __slots__ = ("head", "names", "index", "class_fp")

    def __init__(self, head: str, names: tuple[str, ...]) -> None:
        self.head = head
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.class_fp = text_fingerprint(head)


_SHAPES: dict[tuple[str, tuple[str, ...]], _Shape] = {}


def _shape(head: str, names: tuple[str, ...]) -> _Shape:
    key = (head, names)
    shape = _SHAPES.get(key)
    if shape is None:
        if len(_SHAPES) >= MAX_CLASSES:
            raise WireError(f"nodes had more than {MAX_CLASSES:,} different sets of attributes")
        shape = _SHAPES[key] = _Shape(head, names)
    return shape


class NodeState:
    """A node's state as a search holds it: the encoding of each attribute, shared with the
    states it was derived from. Its fingerprint sums the attributes' digests, so a state
    derived by changing one attribute costs the digest of that attribute alone; the text is
    the canonical encoding of the whole node (:func:`encode`), built when needed.
    Equal encodings make equal fingerprints, however the state was obtained."""

    __slots__ = ("shape", "texts", "total", "fp", "_value")

    def __init__(self, shape: _Shape, texts: tuple[str, ...], total: int) -> None:
        self.shape = shape
        self.texts = texts
        self.total = total
        self.fp = hash((shape.class_fp, total))
        self._value: Any = _UNSET

    @classmethod
    def from_text(cls, text: str) -> "NodeState":
        """The state whose canonical encoding is ``text`` (an object's, ``["A", class, ...]``)."""
        data = _parse(text)
        if type(data) is not list or len(data) < 2 or data[0] != "A" or type(data[1]) is not str or len(data) % 2:
            raise WireError("a node's state must be encoded as an object")
        _split_class(data[1])
        names = tuple(data[2::2])
        if not all(type(n) is str for n in names):
            raise WireError("malformed encoding: an attribute name that is not a string")
        return cls.of(data[1], {n: _canonical(v) for n, v in zip(names, data[3::2])})

    @classmethod
    def of(cls, qualified: str, attributes: dict[str, str]) -> "NodeState":
        """The state of a node of class ``qualified`` whose attributes encode to ``attributes``."""
        pairs = sorted((_dumps_str(n), t) for n, t in attributes.items())
        shape = _shape('["A",' + _dumps_str(qualified), tuple(n for n, _ in pairs))
        texts = tuple(t for _, t in pairs)
        return cls(shape, texts, sum(attribute_digest(n, t) for n, t in pairs) & _MASK)

    def derive(self, changed: Iterable[tuple[str, str]], gone: Iterable[str] = ()) -> "NodeState":
        """This state with the attributes ``changed`` set (name, encoding) and ``gone`` removed."""
        shape = self.shape
        changed = [(_dumps_str(n), t) for n, t in changed]
        gone = [_dumps_str(n) for n in gone]
        total = self.total
        if not gone and all(n in shape.index for n, _ in changed):
            texts = list(self.texts)
            for name, text in changed:
                i = shape.index[name]
                total += attribute_digest(name, text) - attribute_digest(name, texts[i])
                texts[i] = text
            return NodeState(shape, tuple(texts), total & _MASK)
        attributes = dict(zip(shape.names, self.texts))
        for name in gone:
            old = attributes.pop(name, None)
            if old is not None:
                total -= attribute_digest(name, old)
        for name, text in changed:
            old = attributes.get(name)
            if old is not None:
                total -= attribute_digest(name, old)
            attributes[name] = text
            total += attribute_digest(name, text)
        names = tuple(sorted(attributes))
        return NodeState(_shape(shape.head, names), tuple(attributes[n] for n in names), total & _MASK)

    def attributes(self) -> dict[str, str]:
        """Attribute name to encoding."""
        return {json.loads(n): t for n, t in zip(self.shape.names, self.texts)}

    @property
    def text(self) -> str:
        return self.shape.head + "".join(["," + n + "," + t for n, t in zip(self.shape.names, self.texts)]) + "]"

    @property
    def value(self) -> Any:
        if self._value is _UNSET:
            self._value = decode_data(self.text)
        return self._value

    @property
    def type_name(self) -> str:
        return type(self.value).__name__

    def __eq__(self, other: object) -> bool:
        if type(other) is NodeState:
            return other.fp == self.fp and other.texts == self.texts and other.shape is self.shape  # type: ignore[attr-defined]
        if type(other) is WireValue:
            return other.text == self.text  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return self.fp

    def __len__(self) -> int:
        return len(self.shape.head) + 1 + sum(len(n) + len(t) + 2 for n, t in zip(self.shape.names, self.texts))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in NodeState.__slots__:
            raise AttributeError(name)
        return getattr(self.value, name)

    def __lk_repr__(self) -> str:
        return canonical_repr(self.value)

    def __repr__(self) -> str:
        return self.__lk_repr__()


def _canonical(data: Any) -> str:
    """The canonical text of a parsed encoding (encodings are JSON written without spaces)."""
    return json.dumps(data, separators=(",", ":"))


def canonical_text(text: str) -> str:
    """``text``, one encoded value, in canonical form (what :func:`encode` writes); raises
    :class:`WireError` if it is not one JSON value."""
    return _canonical(_parse(text))


def type_name(value: Any) -> str:
    """The class name of a value, looking inside an encoded one (``P2a``, not ``WireValue``)."""
    if type(value) is WireValue or type(value) is NodeState:
        try:
            return value.type_name
        except WireError:
            return "?"
    return type(value).__name__
