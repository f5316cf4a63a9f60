"""What the pictures are drawn from: run logs (live or saved) and search traces (live or saved).

A run is reduced to the printable records of :meth:`EventLog.to_records` plus
the order of its nodes (servers first, then clients), so a live simulation and
a saved run log give the same picture.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from labkit.node import LabkitError
from labkit.search.trace import TRACE_FORMAT, Trace
from labkit.sim.log import INVOKE, LOG_FORMAT, RESPONSE, EventLog
from labkit.sim.simulator import Simulation

__all__ = ["RunRecords", "Source", "VizError", "run_records", "load_run_log", "load_trace", "load_source",
           "natural_key"]


class VizError(LabkitError):
    """A picture's source that cannot be read."""


@dataclass
class RunRecords:
    """A run's log as printable records, its nodes in lane order, and the file header (if any)."""

    records: list[dict[str, Any]]
    servers: list[str]
    clients: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        return self.servers + self.clients


Source = Union[EventLog, Simulation, Trace, RunRecords, str, Path]


def natural_key(name: str) -> tuple:
    """Sort ``server2`` before ``server10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _roles(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Clients are the nodes with invokes or responses; every other node is a server."""
    names = {r[k] for r in records for k in ("node", "peer") if r[k] is not None}
    clients = {r["node"] for r in records if r["kind"] in (INVOKE, RESPONSE) and r["node"] is not None}
    return sorted(names - clients, key=natural_key), sorted(clients, key=natural_key)


def run_records(source: EventLog | Simulation | RunRecords) -> RunRecords:
    """The records of a live run; a simulation also gives its exact servers and clients."""
    if isinstance(source, RunRecords):
        return source
    if isinstance(source, Simulation):
        records = source.log.to_records()
        servers = [s.address.name for s in source.servers]
        clients = [w.address.name for w in source.workers] + [c.address.name for c in source.clients]
        known = set(servers) | set(clients)
        seen, _ = _roles(records)
        others = sorted({a.name for a in source.nodes} - known | (set(seen) - known), key=natural_key)
        return RunRecords(records, servers + others, clients)
    if isinstance(source, EventLog):
        records = source.to_records()
        return RunRecords(records, *_roles(records))
    raise VizError(f"cannot read a run from {type(source).__name__}")


def load_run_log(path: str | Path) -> RunRecords:
    """Read a run log saved by :meth:`EventLog.save` (JSON lines after a header)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0]) if lines else {}
        records = [json.loads(line) for line in lines[1:] if line.strip()]
    except FileNotFoundError:
        raise VizError(f"there is no file {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VizError(f"{path} is not a labkit run log: {error}") from None
    if not isinstance(header, dict) or header.get("format") != LOG_FORMAT:
        raise VizError(f"{path} is not a labkit run log (its first line has no \"format\": \"{LOG_FORMAT}\")")
    return RunRecords(records, *_roles(records), meta=header)


def load_trace(path: str | Path, solution: str | Path | None = None) -> Trace:
    """Read a trace file; its steps replay with ``solution`` (by default the one named in the trace),
    run in workers as in a test."""
    from labkit.search.trace import session_for

    meta = Trace.read_meta(path)
    return Trace.load(path, session_for(meta, solution))


def _file_kind(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
    except FileNotFoundError:
        raise VizError(f"there is no file {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise VizError(f"cannot read {path}: {error}") from None
    if LOG_FORMAT in first:
        return "run"
    if first.strip() == "{" or TRACE_FORMAT in first:
        return "trace"
    raise VizError(f"{path} is neither a labkit run log nor a labkit trace")


def load_source(source: Source, solution: str | Path | None = None) -> RunRecords | Trace:
    """A run's records or a trace, from any accepted source (files are recognised by their header)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        return load_run_log(path) if _file_kind(path) == "run" else load_trace(path, solution)
    if isinstance(source, Trace):
        return source
    return run_records(source)
