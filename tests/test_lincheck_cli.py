"""The ``labkit`` command starts cheaply: a subcommand's module is imported only when it runs."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from labkit.cli import COMMANDS, build_parser


def _help_lines(parser: argparse.ArgumentParser) -> dict[str, str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {choice.dest: choice.help for choice in sub._choices_actions}


def test_help_lines_match_the_commands_own() -> None:
    stubs = _help_lines(build_parser(""))
    full = _help_lines(build_parser())
    assert set(COMMANDS) <= set(full)
    assert stubs == full


_PROBE = """
import sys
from labkit.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("matplotlib", "pandas", "numpy", "nbgrader") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["lincheck", "--help"], ["lincheck", "nosuchfile", "--model", "etcd"]])
def test_start_up_imports_no_plotting_or_data_libraries(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=60)
    assert "HEAVY=\n" in done.stderr, done.stderr


def test_a_command_still_gets_its_own_options() -> None:
    args = build_parser("lincheck").parse_args(["lincheck", "h.log", "--model", "etcd", "--max-steps", "5"])
    assert args.max_steps == 5 and args.model == "etcd"
