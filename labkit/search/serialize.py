"""Values to and from JSON by structure, so traces can be saved and replayed.

Classes are stored by module and qualified name and looked up again when a
trace is loaded, against whatever code is loaded then (the student's current
code). Objects are rebuilt without calling constructors, from their fields.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import importlib
import sys
import types
from typing import Any

from labkit.node import Address, LabkitError
from labkit.values import canonical_repr

__all__ = ["to_json", "from_json", "SerializationError"]


class SerializationError(LabkitError):
    """A value that cannot be saved, or saved data that cannot be loaded."""


def _qualified(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def to_json(value: Any) -> Any:
    """A JSON-ready structure that :func:`from_json` turns back into an equal value."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, Address):
        return {"$address": value.name}
    if isinstance(value, enum.Enum):
        return {"$enum": _qualified(type(value)), "name": value.name}
    if isinstance(value, type):
        return {"$class": _qualified(value)}
    if isinstance(value, types.FunctionType):
        if "<lambda>" in value.__qualname__ or "<locals>" in value.__qualname__:
            raise SerializationError(f"cannot save the function {value.__qualname__}: only module-level functions can be saved")
        return {"$function": _qualified(value)}
    if type(value) is tuple:
        return {"$tuple": [to_json(x) for x in value]}
    if type(value) is list:
        return [to_json(x) for x in value]
    if type(value) in (set, frozenset):
        items = sorted(value, key=canonical_repr)
        return {"$set" if type(value) is set else "$frozenset": [to_json(x) for x in items]}
    if type(value) is dict:
        return {"$dict": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if type(value) is bytes:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    fields = _fields_of(value)
    if fields is None:
        raise SerializationError(f"cannot save a value of type {type(value).__qualname__}: {value!r}")
    return {"$object": _qualified(type(value)), "fields": {k: to_json(v) for k, v in fields.items()}}


def _fields_of(value: Any) -> dict[str, Any] | None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        extra = getattr(value, "__dict__", {})
        out.update({k: v for k, v in extra.items() if k not in out and not k.startswith("_lk_")})
        return out
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if k not in ("_lk_fp", "_lk_imm", "_lk_hash")}
    return None


def _lookup(name: str) -> Any:
    module_name, _, qualname = name.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise SerializationError(
                f"the trace needs {qualname} from module {module_name}, which cannot be imported: "
                "load the solution the trace was made with (--solution)"
            ) from None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise SerializationError(
                f"the trace refers to {qualname} in {module_name}, which the current code does not define"
            )
    return obj


def from_json(data: Any) -> Any:
    """Rebuild a value saved with :func:`to_json`."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [from_json(x) for x in data]
    if not isinstance(data, dict) or not data:
        raise SerializationError(f"unexpected saved value {data!r}")
    if "$address" in data:
        return Address(data["$address"])
    if "$tuple" in data:
        return tuple(from_json(x) for x in data["$tuple"])
    if "$set" in data:
        return {from_json(x) for x in data["$set"]}
    if "$frozenset" in data:
        return frozenset(from_json(x) for x in data["$frozenset"])
    if "$dict" in data:
        return {from_json(k): from_json(v) for k, v in data["$dict"]}
    if "$bytes" in data:
        return base64.b64decode(data["$bytes"])
    if "$enum" in data:
        return _lookup(data["$enum"])[data["name"]]
    if "$class" in data:
        return _lookup(data["$class"])
    if "$function" in data:
        return _lookup(data["$function"])
    if "$object" in data:
        cls = _lookup(data["$object"])
        obj = object.__new__(cls)
        for key, value in data["fields"].items():
            object.__setattr__(obj, key, from_json(value))
        return obj
    raise SerializationError(f"unexpected saved value {data!r}")
