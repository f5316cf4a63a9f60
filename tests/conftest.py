"""Shared fixtures: the ping reference solution and broken variants of it written to tmp_path;
the linearizability checker's search loops."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from labkit.check import linearizability
from labkit.testing import get_lab

ROOT = Path(__file__).resolve().parent.parent
PING_SOLUTION = ROOT / "solutions" / "ping" / "ping_server.py"
LABKIT_SCRIPT = Path(sys.executable).parent / "labkit"
PING_NUMBERS = [t.qualified_number for t in get_lab("ping").tests]
PING_POINTS = sum(t.points for t in get_lab("ping").tests)
NO_RETRY_FAILS = {"1.4", "1.5", "1.7"}  # the lossy, partition and lost-request tests


def verdicts_failing(*failing: str) -> dict[str, bool]:
    """The ping lab's verdicts when exactly ``failing`` fail."""
    return {number: number not in failing for number in PING_NUMBERS}

RETRY_BODY = """        if timer.ping == self.ping and self.pong is None:
            self.send(PingRequest(timer.ping), self.server_address)
            self.set_timer(timer, RETRY_MILLIS)"""


def ping_variant(tmp_path: Path, replacements: list[tuple[str, str]], name: str = "ping_server.py") -> Path:
    """Write the reference ping solution with each ``old`` text replaced by ``new``."""
    text = PING_SOLUTION.read_text()
    for old, new in replacements:
        assert old in text, f"the reference solution no longer contains {old!r}"
        text = text.replace(old, new)
    folder = tmp_path / name.removesuffix(".py")
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def make_variant(tmp_path: Path) -> Callable[..., Path]:
    return lambda *replacements, name="ping_server.py": ping_variant(tmp_path, list(replacements), name)


@pytest.fixture
def no_retry(make_variant: Callable[..., Path]) -> Path:
    """A client that never resends: fails exactly NO_RETRY_FAILS."""
    return make_variant((RETRY_BODY, "        pass"))


SEARCH_LOOPS = ["python"] + (["compiled"] if linearizability._core is not None else [])


@pytest.fixture(scope="module", params=SEARCH_LOOPS)
def search_loop(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a module's tests with the pure-Python search loop, then with the compiled one (if built)."""
    built = linearizability._core
    linearizability._core = built if request.param == "compiled" else None
    yield request.param
    linearizability._core = built
