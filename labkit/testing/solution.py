"""Finding the student's module, with errors that say what to fix.

The judge never imports the student's module: a test's session copies it
into a boxed worker's folder and imports it there (see
:mod:`labkit.judge.session`). Here is only where it is looked for.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from labkit.node import LabkitError

__all__ = ["SolutionError", "solution_path", "load_solution"]


class SolutionError(LabkitError):
    """The student's module is missing, does not import, or lacks what the lab needs."""


def solution_path(source: str | Path | ModuleType | None, module_name: str) -> Path:
    """The file of the student's module: ``source`` (a path, or a module's file), or
    ``<module_name>.py`` in the current folder. Each run re-reads the file, so the
    saved file is always what is tested."""
    if isinstance(source, ModuleType):
        file = getattr(source, "__file__", None)
        if not file:
            raise SolutionError(f"the module {source.__name__} has no file to test; give the path of your .py file")
        return Path(file)
    if source is None:
        default = Path.cwd() / f"{module_name}.py"
        if not default.exists():
            raise SolutionError(
                f"no solution given and no {module_name}.py in {Path.cwd()}: "
                f"pass --solution PATH to your {module_name}.py"
            )
        return default
    return Path(source)


def load_solution(source: str | Path | ModuleType, lab: Any = None) -> Any:
    """The module at ``source`` as the judge sees it (classes that make nodes in workers),
    in a session of its own: for exploring by hand and for tests of the framework.
    Its workers start now (an import error is raised here) and stop when it is no
    longer referenced. ``lab`` (a name or a Lab) says how to observe its servers."""
    from labkit.judge.session import Session
    from labkit.testing.declare import Lab

    if isinstance(lab, str):
        from labkit.testing.runner import get_lab

        lab = get_lab(lab)
    path = solution_path(source, "solution")
    observers = lab.observers if isinstance(lab, Lab) else None
    queries = lab.queries if isinstance(lab, Lab) else ()
    session = Session(solution=path, label=path.name, observers=observers, queries=queries)
    try:
        return session.solution()
    except BaseException:
        session.close()
        raise
