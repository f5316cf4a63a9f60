"""``labkit check-solution``: it passes only when the reference passes and every mutant is caught."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from labkit.node import LabkitError

from labkit.labs.paxos.tests import LAB
from labkit.testing.check_solution import _order, check_solution, register

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "solutions" / "paxos" / "paxos_server.py"
PIGGYBACK = ROOT / "solutions" / "paxos" / "piggyback" / "paxos_server.py"

HARMLESS = '''
from labkit.testing.check_solution import Mutant

MUTANTS = [
    Mutant("comment_only", "changes a comment", (("# proposals in flight", "# proposals still in flight"),)),
]
'''
MINORITY = '''
from labkit.testing.check_solution import Mutant

MUTANTS = [
    Mutant("minority_quorum", "one short of a majority",
           (("        return len(self.servers) // 2 + 1\\n", "        return len(self.servers) // 2\\n"),)),
]
'''
LOOPING = '''
from labkit.testing.check_solution import Mutant

MUTANTS = [
    Mutant("loops", "never returns from a request", (("        command = message.command\\n",
                                                       "        while True:\\n            pass\\n"),)),
]
'''


PIGGYBACK_MINORITY = '''
from labkit.testing.check_solution import Mutant

MUTANTS = [
    Mutant("minority_quorum", "one short of a majority",
           (("        return 2 * count > len(self.servers)\\n", "        return 2 * count >= len(self.servers) - 1\\n"),)),
]
'''


def catalogue(tmp_path: Path, text: str, name: str = "mutants") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "catalogue.py").write_text(text)
    return folder


def cli(*args: str) -> int:
    parser = argparse.ArgumentParser(prog="labkit")
    register(parser.add_subparsers())
    parsed = parser.parse_args(["check-solution", *args])
    return parsed.func(parsed)


def test_a_caught_mutant_passes_the_check_and_is_shown_in_the_matrix(tmp_path):
    out = io.StringIO()
    report = check_solution("paxos", REFERENCE, catalogue(tmp_path, MINORITY), numbers=["1.4", "1.5"], out=out)
    assert report.ok and report.reference_ok
    (mutant,) = report.mutants
    assert mutant.caught_by == "1.5" and mutant.catch_seconds() is not None
    text = out.getvalue()
    assert "stops at the first test that catches it" in text
    assert "minority_quorum: caught by 1.5 after" in text and "a run of" in text
    assert "OK: reference passes; 1/1 mutants caught; median time to the first failing test" in text


def test_a_mutant_that_survives_fails_the_check(tmp_path, capsys):
    folder = catalogue(tmp_path, HARMLESS)
    result = tmp_path / "check.json"
    assert cli("paxos", "--reference", str(REFERENCE), "--mutants", str(folder), "-n", "1.4", "-n", "1.5",
               "--json", str(result)) == 1
    data = json.loads(result.read_text())
    assert data["ok"] is False and data["reference"]["status"] == "passed"
    assert data["mutants"][0]["status"] == "survived" and data["mutants"][0]["caught_by"] is None
    assert "not caught: comment_only" in capsys.readouterr().out


def test_a_failing_reference_fails_the_check(tmp_path):
    broken = tmp_path / "broken" / "paxos_server.py"
    broken.parent.mkdir()
    broken.write_text(REFERENCE.read_text().replace("len(self.servers) // 2 + 1\n", "len(self.servers) // 2\n"))
    out = io.StringIO()
    report = check_solution("paxos", broken, catalogue(tmp_path, HARMLESS), numbers=["1.5"], out=out)
    assert not report.reference_ok and not report.ok
    assert "reference: FAILED: failed 1.5" in out.getvalue()


def test_a_looping_mutant_is_stopped_and_counts_as_caught(tmp_path):
    out = io.StringIO()
    report = check_solution("paxos", REFERENCE, catalogue(tmp_path, LOOPING), numbers=["1.3"], timeout=20, out=out)
    (mutant,) = report.mutants
    assert mutant.caught_by == "1.3"
    assert report.ok, out.getvalue()


def test_fast_mode_uses_the_recorded_catcher(tmp_path):
    folder = catalogue(tmp_path, MINORITY)
    record = tmp_path / "record.json"
    assert cli("paxos", "--reference", str(REFERENCE), "--mutants", str(folder), "-n", "1.5", "-n", "1.21",
               "--all-tests", "--json", str(record)) == 0
    data = json.loads(record.read_text())
    assert data["mutants"][0]["caught_by"] == "1.5" and not data["stop_at_first"]
    out = io.StringIO()
    report = check_solution("paxos", REFERENCE, folder, fast=True, record=record, numbers=["1.5", "1.21"], out=out)
    assert report.ok and report.tests == ["1.5"]  # 1.21 is a search and no mutant's recorded catcher


def test_two_references_are_checked_each_against_its_own_catalogue(tmp_path, capsys):
    first, second = catalogue(tmp_path, MINORITY), catalogue(tmp_path, PIGGYBACK_MINORITY, "piggyback")
    result = tmp_path / "check.json"
    assert cli("paxos", "--reference", str(REFERENCE), "--mutants", str(first), "--reference", str(PIGGYBACK),
               "--mutants", str(second), "-n", "1.5", "--json", str(result), "--save-records") == 0
    text = capsys.readouterr().out
    assert "ref1/minority_quorum: caught by 1.5" in text and "ref2/minority_quorum: caught by 1.5" in text
    assert "All references: 2/2 mutants caught; median time to the first failing test" in text
    data = json.loads(result.read_text())
    assert data["ok"] and [c["reference"]["description"] for c in data["checks"]] == [str(REFERENCE), str(PIGGYBACK)]
    assert data["medians"]["caught"] == 2 and data["medians"]["runs"] == 2
    for folder in (first, second):  # each reference's record sits beside its catalogue
        record = json.loads((folder / "record.json").read_text())
        assert record["mutants"][0]["caught_by"] == "1.5" and record["mutants"][0]["catch_events"] > 0


def test_references_and_catalogues_must_pair_up(tmp_path):
    with pytest.raises(LabkitError, match="one catalogue per reference"):
        cli("paxos", "--reference", str(REFERENCE), "--reference", str(PIGGYBACK), "--mutants", str(tmp_path))


def test_mutants_run_the_cheapest_searches_first():
    specs = LAB.select(numbers=["1.25", "1.2", "1.20", "1.23", "1.5"])
    assert _order(specs) == ["1.2", "1.5", "1.20", "1.23", "1.25"]  # run tests, then searches as declared
    recorded = {"1.25": 80.0, "1.23": 10.0, "1.2": 99.0}  # seconds each took on the reference
    assert _order(specs, recorded) == ["1.2", "1.5", "1.23", "1.25", "1.20"]  # no time recorded: last
