"""CPU cost of sealed grading: the whole public Paxos suite on the reference, judge and workers.

Runs ``labkit test paxos`` on the reference solution twice in one invocation:
with this checkout (the judge in one process, student code in boxed worker
processes) and with an earlier release of labkit (everything in one process,
exported from git with ``git archive``), and prints for each the CPU seconds
of the whole process tree (user + system, from ``wait4`` of the command and
everything it waited for), the wall time, and the ratio. Per test it prints
the CPU seconds the sealed run's workers used beside the test's real time.

By default the selection is the public tests both releases have (the suite has
grown since), so the two runs do the same work.

Target: sealed CPU at most 1.5x the earlier release's.

Run: python benchmarks/sealed.py [--previous REV] [--numbers 1.2,1.25] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "41153b7"  # the last release that ran student code in the grading process


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """(CPU seconds of the process and its waited-for descendants, wall seconds, exit code)."""
    began = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - began, os.waitstatus_to_exitcode(status)


def export(revision: str, folder: Path) -> Path:
    archive = folder / "previous.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "previous")
    return folder / "previous"


def public_tests(pythonpath: Path) -> list[str]:
    """The public Paxos test numbers of the labkit at ``pythonpath``."""
    code = ("from labkit.testing import get_lab; "
            "print(','.join(t.qualified_number for t in get_lab('paxos').select()))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(pythonpath)},
                         cwd=pythonpath, capture_output=True, text=True, check=True).stdout
    return out.strip().split(",")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--previous", default=PREVIOUS, help=f"git revision of the earlier release (default {PREVIOUS})")
    parser.add_argument("--numbers", help="only these tests, e.g. 1.2,2.17 (default: the public tests both releases have)")
    parser.add_argument("--workers", help="LABKIT_WORKERS for both runs (default: one per usable CPU)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.workers:
        env["LABKIT_WORKERS"] = args.workers
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        previous = export(args.previous, folder)
        if args.numbers:
            numbers = args.numbers.split(",")
        else:
            earlier = set(public_tests(previous))
            numbers = [n for n in public_tests(ROOT) if n in earlier]
        selection = ["-n", ",".join(numbers)]
        report = folder / "sealed.json"
        old_env = {**env, "PYTHONPATH": str(previous)}
        old_argv = [sys.executable, "-c", "import sys; from labkit.cli import main; sys.exit(main())", "test", "paxos",
                    "--solution", str(previous / "solutions" / "paxos" / "paxos_server.py"), *selection]
        new_argv = [sys.executable, "-m", "labkit.cli", "test", "paxos", "--solution",
                    str(ROOT / "solutions" / "paxos" / "paxos_server.py"), "--json", str(report), *selection]
        old_cpu, old_wall, old_code = timed(old_argv, old_env, folder)
        new_cpu, new_wall, new_code = timed(new_argv, {**env, "PYTHONPATH": str(ROOT)}, folder)
        results = json.loads(report.read_text())["results"] if report.exists() else []
    what = f"tests {args.numbers}" if args.numbers else f"the {len(numbers)} public tests both releases have"
    print(f"Paxos reference, {what}, on {len(os.sched_getaffinity(0))} usable CPUs")
    print(f"{'':<28}{'CPU s':>10}{'wall s':>10}  exit")
    print(f"{'previous (' + args.previous + ', in-process)':<28}{old_cpu:>10.1f}{old_wall:>10.1f}  {old_code}")
    print(f"{'sealed (this checkout)':<28}{new_cpu:>10.1f}{new_wall:>10.1f}  {new_code}")
    print(f"CPU ratio sealed / previous: {new_cpu / old_cpu:.2f} (target at most 1.5)")
    if results:
        print(f"\n{'test':<8}{'worker CPU s':>14}{'real s':>10}  passed")
        for r in results:
            print(f"{r['number']:<8}{r['cpu_seconds']:>14.1f}{r['seconds']:>10.1f}  {r['passed']}")
        if results[0].get("protections"):
            print(f"\n{results[0]['protections']}")


if __name__ == "__main__":
    main()
