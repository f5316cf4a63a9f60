"""What the judge learns of a Paxos server after each step: its four query methods' answers.

This runs in the worker, next to the student's code. The judge's predicates
(``LOGS_CONSISTENT``, ``slot_valid(i)``, ...) then read the answers from the
observation; a slot outside the window observed here is asked for when a
predicate needs it.
"""

from __future__ import annotations

from typing import Any, Callable

QUERIES = ("status", "command", "first_non_cleared", "last_non_empty")
WINDOW = 2  # slots observed past last_non_empty() (others are asked for when needed)
MAX_SLOTS = 20_000  # slots observed at most (more are asked for one by one)


def observe_server(node: Any, ask: Callable[..., Any]) -> None:
    """``first_non_cleared()``, ``last_non_empty()``, and ``status(s)`` and ``command(s)`` for
    every slot from 1 to a few past the last non-empty one."""
    first = ask("first_non_cleared")
    last = ask("last_non_empty")
    top = last if type(last) is int else 0
    if type(first) is int:
        top = max(top, first)
    for slot in range(1, min(max(top, 0), MAX_SLOTS) + WINDOW + 1):
        ask("status", slot)
        ask("command", slot)
