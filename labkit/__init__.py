"""labkit: distributed-systems labs in Jupyter.

Write nodes against the node model (:class:`Node`, :class:`Message`,
:class:`Timer`), run them in a deterministic simulated network
(:mod:`labkit.sim`), explore them with a model checker (:mod:`labkit.search`),
check what clients saw (:mod:`labkit.check`) and grade them
(:mod:`labkit.testing`).
"""

from labkit.app import (
    AMOApplication,
    AMOCommand,
    AMOResult,
    Append,
    AppendResult,
    Application,
    Command,
    Get,
    GetResult,
    KeyNotFound,
    KVStore,
    Put,
    PutOk,
    Result,
)
from labkit.client import Client, ClientWorker, NoResultYet, Workload, WorkloadError
from labkit.node import Address, LabkitError, Message, MissingHandlerError, Node, NodeError, Timer, client, server
from labkit.values import UnsupportedValueError, copy_value, fingerprint

__version__ = "0.1.0"

__all__ = [
    "Address",
    "Message",
    "Timer",
    "Node",
    "client",
    "server",
    "Command",
    "Result",
    "Application",
    "KVStore",
    "Get",
    "Put",
    "Append",
    "GetResult",
    "KeyNotFound",
    "PutOk",
    "AppendResult",
    "AMOApplication",
    "AMOCommand",
    "AMOResult",
    "Client",
    "ClientWorker",
    "NoResultYet",
    "Workload",
    "WorkloadError",
    "LabkitError",
    "NodeError",
    "MissingHandlerError",
    "UnsupportedValueError",
    "fingerprint",
    "copy_value",
]
