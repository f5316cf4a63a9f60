"""The key-value workloads the Paxos tests drive clients with (as in DSLabs's lab 1)."""

from __future__ import annotations

from labkit.client import Workload

__all__ = [
    "simple_workload",
    "put_get_workload",
    "put_workload",
    "put_append_get_workload",
    "append_same_key_workload",
    "append_different_key_workload",
    "different_keys_infinite_workload",
]


def simple_workload() -> Workload:
    """Fourteen commands covering PUT, GET and APPEND, with expected results."""
    return Workload.from_strings(
        [
            "PUT:key1:v1a", "GET:key1", "PUT:key2:v2a", "GET:key2", "PUT:key1:v1b", "GET:key1",
            "APPEND:key3:v3a", "PUT:key3:v3b", "APPEND:key3:v3c", "APPEND:key3:v3d",
            "APPEND:key4:v4", "APPEND:key4:v4", "GET:key4", "GET:key5",
        ],
        [
            "Ok", "v1a", "Ok", "v2a", "Ok", "v1b",
            "v3a", "Ok", "v3bv3c", "v3bv3cv3d",
            "v4", "v4v4", "v4v4", "KeyNotFound",
        ],
    )


def put_get_workload() -> Workload:
    return Workload.from_strings(["PUT:foo:bar", "GET:foo"], ["Ok", "bar"])


def put_workload() -> Workload:
    return Workload.from_strings(["PUT:foo:bar"], ["Ok"])


def put_append_get_workload() -> Workload:
    return Workload.from_strings(["PUT:foo:bar", "APPEND:foo:baz", "GET:foo"], ["Ok", "barbaz", "barbaz"])


def append_same_key_workload(n: int) -> Workload:
    """Each client appends ``client,i`` to key ``foo``, ``n`` times (no expected results)."""
    return Workload.from_strings(["APPEND:foo:%a,%i "], repeat=n)


def append_different_key_workload(n: int) -> Workload:
    """Each client appends ``0``, ``1``, ... to its own key, expecting ``0``, ``01``, ..."""
    return Workload.from_strings(
        [f"APPEND:KEY-%a:{i}" for i in range(n)],
        ["".join(str(j) for j in range(i + 1)) for i in range(n)],
    )


def different_keys_infinite_workload(millis_between_requests: int = 0) -> Workload:
    """Endless PUTs of random values to one of five keys of the client's own, each followed by a GET of it."""
    return Workload.from_strings(
        ["PUT:%a-%n5:%r8", "GET:%a-%n5"],
        ["Ok", "%r8"],
        infinite=True,
        millis_between_requests=millis_between_requests,
    )
