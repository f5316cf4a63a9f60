"""Loading the student's module from a file, with errors that say what to fix."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from labkit.node import LabkitError

__all__ = ["SolutionError", "Solution", "load_solution"]


class SolutionError(LabkitError):
    """The student's module is missing, does not import, or lacks what the lab needs."""


class Solution:
    """The student's module. Reading a missing name fails the test with a clear message."""

    def __init__(self, module: ModuleType, path: Path | None) -> None:
        self._module = module
        self.path = path

    @property
    def module(self) -> ModuleType:
        return self._module

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._module, name)
        except AttributeError:
            where = self.path.name if self.path else self._module.__name__
            raise SolutionError(f"{where} defines no {name}; the lab's tests need a class or function named {name}") from None


def load_solution(source: str | Path | ModuleType) -> Solution:
    """Import the student's module afresh from ``source`` (a path or a module).

    Loading from a path always re-reads the file, so edits made in a notebook
    session are picked up. The file's folder is put on ``sys.path`` so the
    module can import its neighbours.
    """
    if isinstance(source, ModuleType):
        return Solution(source, Path(source.__file__) if getattr(source, "__file__", None) else None)
    path = Path(source).expanduser()
    if path.is_dir():
        raise SolutionError(f"{path} is a folder; give the path of your .py file")
    if not path.exists():
        raise SolutionError(f"there is no file {path}; check the path given with --solution")
    if path.suffix != ".py":
        raise SolutionError(f"{path} is not a Python file (.py)")
    path = path.resolve()
    name = path.stem
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SolutionError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        _restore(name, previous)
        raise SolutionError(
            f"{path.name} has a syntax error on line {error.lineno}: {error.msg}\n"
            f"    {(error.text or '').rstrip()}"
        ) from None
    except (Exception, SystemExit) as error:  # an import-time crash must not take the runner down
        _restore(name, previous)
        frames = traceback.extract_tb(error.__traceback__)
        shown = [f for f in frames if "importlib" not in f.filename]
        trace = "".join(traceback.format_list(shown)) + f"{type(error).__name__}: {error}"
        raise SolutionError(f"importing {path.name} failed:\n{trace}") from None
    return Solution(module, path)


def _restore(name: str, previous: ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous
