"""Declaring a lab's tests: number, name, points, categories and the test body."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from labkit.node import LabkitError

__all__ = ["Lab", "TestSpec", "RUN", "SEARCH", "UNRELIABLE", "LabError"]

RUN = "run"
SEARCH = "search"
UNRELIABLE = "unreliable"
_CATEGORIES = (RUN, SEARCH, UNRELIABLE)


class LabError(LabkitError):
    """A lab declared wrongly, or a selection that matches no test."""


@dataclass(frozen=True)
class TestSpec:
    """One declared test. ``fn(t)`` receives a :class:`~labkit.testing.context.TestContext`."""

    lab: str
    part: int
    number: int
    name: str
    points: float
    categories: tuple[str, ...]
    fn: Callable[[Any], None] = field(compare=False, repr=False)
    cpu_seconds: float = 600.0
    hidden: bool = False
    usual_seconds: float | None = None  # how long it usually runs on a correct solution, if long

    __test__ = False  # not a pytest test class

    @property
    def qualified_number(self) -> str:
        """``part.number``, e.g. ``"1.4"``."""
        return f"{self.part}.{self.number}"

    @property
    def default_seed(self) -> int:
        """The seed used unless one is given: fixed per test, so grading is repeatable."""
        return zlib.crc32(f"{self.lab}:{self.qualified_number}".encode()) % 1_000_000

    @property
    def header(self) -> str:
        tags = ", ".join(c.upper() for c in self.categories)
        points = f"{self.points:g}pt" + ("" if self.points == 1 else "s")
        usual = f" (usually about {self.usual_seconds:.0f} s)" if self.usual_seconds else ""
        return f"TEST {self.qualified_number}: {self.name} [{tags}] ({points}){usual}"


class Lab:
    """A lab: its name, the module students write, and its tests.

    ``@lab.test(number=2, name="...", points=5)`` declares a test; its body
    receives a test context ``t`` with the seed, the student's module
    (``t.solution``) and helpers to build simulations and check predicates.

    ``queries`` names the methods of server nodes that predicates call
    (``status(slot)``, ...); ``observer`` is the function, as
    ``"module:function"``, that the worker runs after each search step to
    answer them (see :mod:`labkit.labs.paxos.observe`).
    """

    def __init__(self, name: str, solution_module: str, description: str = "", parts: dict[int, str] | None = None,
                 *, queries: tuple[str, ...] = (), observer: str | None = None):
        self.name = name
        self.solution_module = solution_module
        self.description = description
        self.parts = dict(parts or {1: name})
        self.tests: list[TestSpec] = []
        self.queries = tuple(queries)
        self.observers = {"server": observer} if observer else {}

    def test(
        self,
        number: int,
        name: str,
        points: float,
        *,
        part: int = 1,
        categories: tuple[str, ...] = (RUN,),
        cpu_seconds: float = 600.0,
        hidden: bool = False,
        usual_seconds: float | None = None,
    ) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        """Decorator declaring a test of this lab. ``cpu_seconds`` is what the code under
        test may use in all (counted in its worker processes, so a busy machine changes nothing);
        ``usual_seconds``, for a long test, is how long it takes on a correct solution on a
        laptop, shown in its header so a student waits for it."""
        for category in categories:
            if category not in _CATEGORIES:
                raise LabError(f"unknown test category {category!r}; use {', '.join(_CATEGORIES)}")
        if part not in self.parts:
            raise LabError(f"lab {self.name} has no part {part}; its parts are {sorted(self.parts)}")

        def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
            spec = TestSpec(self.name, part, number, name, points, tuple(categories), fn, cpu_seconds, hidden,
                            usual_seconds)
            if any(t.part == part and t.number == number for t in self.tests):
                raise LabError(f"lab {self.name} already has a test {spec.qualified_number}")
            self.tests.append(spec)
            self.tests.sort(key=lambda t: (t.part, t.number))
            return fn

        return register

    def select(
        self,
        parts: list[int] | None = None,
        numbers: list[str] | None = None,
        include_hidden: bool = False,
        exclude_categories: tuple[str, ...] = (),
    ) -> list[TestSpec]:
        """The tests matching parts and numbers (``"4"`` with one part, or ``"1.4"``)."""
        chosen = [t for t in self.tests if include_hidden or not t.hidden]
        if parts:
            unknown = [p for p in parts if p not in self.parts]
            if unknown:
                raise LabError(f"lab {self.name} has no part {unknown[0]}; its parts are {sorted(self.parts)}")
            chosen = [t for t in chosen if t.part in parts]
        if numbers:
            wanted = set()
            for n in numbers:
                n = n.strip()
                if "." in n:
                    wanted.add(n)
                else:
                    scope = parts or sorted({t.part for t in chosen})
                    if len(scope) != 1:
                        raise LabError(
                            f"test number {n} is ambiguous across parts {scope}: write it as PART.NUMBER "
                            f"(e.g. {scope[0]}.{n}) or pick one part with --part"
                        )
                    wanted.add(f"{scope[0]}.{n}")
            missing = sorted(wanted - {t.qualified_number for t in chosen})
            if missing:
                raise LabError(f"lab {self.name} has no test {missing[0]}")
            chosen = [t for t in chosen if t.qualified_number in wanted]
        if exclude_categories:
            chosen = [t for t in chosen if not set(t.categories) & set(exclude_categories)]
        return chosen

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, {len(self.tests)} tests)"
