"""The ``labkit lincheck`` subcommand: check a recorded history for linearizability."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from labkit.app import KeyNotFound
from labkit.check.histories import HistoryFormatError, read_etcd_log, read_kv_edn, read_kv_jsonl
from labkit.check.linearizability import LINEARIZABLE, NOT_LINEARIZABLE, HistoryError, Model, Operation, check
from labkit.check.models import kv_model, register_model

__all__ = ["register", "MODELS"]

# Model name -> (description, reader, model factory taking the --missing choice)
MODELS: dict[str, tuple[str, Callable[[Path], list[Operation]], Callable[[str], Model]]] = {
    "etcd": ("Jepsen etcd log: one register with read, write and cas", read_etcd_log, lambda _: register_model()),
    "kv": (
        "key-value store: Porcupine kv EDN lines, or labkit JSON lines (.jsonl)",
        lambda path: read_kv_jsonl(path) if path.suffix in (".jsonl", ".json") else read_kv_edn(path),
        lambda missing: kv_model(missing="" if missing == "empty" else KeyNotFound),
    ),
}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``lincheck`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "lincheck",
        help="check a recorded history for linearizability",
        description="Check a recorded history for linearizability and explain any violation.",
    )
    parser.add_argument("file", type=Path, help="the history file")
    parser.add_argument("--model", required=True, help=f"the model: {', '.join(MODELS)}")
    parser.add_argument(
        "--missing",
        choices=["auto", "empty", "keynotfound"],
        default="auto",
        help="kv only: what a read of a never-written key returns (auto: '' for Porcupine EDN files, "
        "KeyNotFound for labkit JSON lines)",
    )
    parser.add_argument("--max-steps", type=int, default=None, help="give up (verdict unknown) after N steps")
    parser.add_argument("--picture", type=Path, default=None, help="also draw the history to this PNG file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.model not in MODELS:
        known = ", ".join(f"{name} ({entry[0]})" for name, entry in MODELS.items())
        print(f"error: unknown model {args.model!r}; the known models are: {known}")
        return 2
    _, reader, make_model = MODELS[args.model]
    path: Path = args.file
    if not path.is_file():
        print(f"error: cannot read {path}: no such file")
        return 2
    missing = args.missing
    if missing == "auto":
        missing = "keynotfound" if path.suffix in (".jsonl", ".json") else "empty"
    try:
        ops = reader(path)
        result = check(ops, make_model(missing), max_steps=args.max_steps)
    except (HistoryFormatError, HistoryError) as e:
        print(f"error: {e}")
        return 2
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: cannot read {path}: {e}")
        return 2
    print(f"{path}: {result.verdict} ({len(ops)} operations, {result.steps} search steps)")
    if result.verdict != LINEARIZABLE:
        print(result.explanation)
    if args.picture is not None:
        from labkit.viz.history import plot_history

        figure = plot_history(result)
        figure.savefig(args.picture)
        print(f"picture written to {args.picture}")
    if result.verdict == LINEARIZABLE:
        return 0
    return 1 if result.verdict == NOT_LINEARIZABLE else 2
