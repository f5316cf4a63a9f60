"""Model-checking speed and memory on the Paxos lab's search scenarios, beside an earlier release.

The reference solution goes through, each run in a process of its own (the judge
and the boxed workers it starts, grading's sealed path):

* random probes like tests 25 and 26 (3 and 5 servers, two clients appending),
* BFS like test 20's safety stage (3 servers, one client, from its first result),

with one search worker and with one per usable CPU, and a 1,000,000-state BFS
for memory. The same runs are made with this checkout and with an earlier
release (exported with ``git archive`` into a temporary folder, with a Python
environment of its own so that its workers run its code, and its compiled parts
built when a C compiler is there), and the figures are
printed side by side:

* steps or states per CPU-second, CPU counted for the whole process tree (the
  judge, its workers, anything else it started), before and after the search;
* the parallel BFS speedup: wall time with one worker over wall time with all
  (wall time, so it is only meaningful on an otherwise idle machine: the load
  average is printed with it);
* peak memory of the process tree (each process's peak resident size, summed)
  per visited state, and how it splits: the workers, the judge before the
  search, the visited fingerprints and parent records (computed for that many
  states), and the rest (frontier, caches, shared parts of states).

For scale (../shared/reference/dslabs-notes.md section 7): DSLabs (Java, one
core) explores 1.5-4.0 thousand BFS states per CPU-second, and takes 21.7
(3 servers) and 17.9 (5 servers) thousand random-probe steps per CPU-second.
Targets: random probes at least 4x the earlier release (about twice DSLabs's
rate), BFS at least the earlier release's rate, parallel BFS at least 1.7x
one worker on 2 cores, at most 300 bytes per visited state.

Run: python benchmarks/search.py [--previous REV] [--steps N] [--states N] [--memory-states N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import site
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "5796ee1"  # the release before search steps sent back only what changed and states shared their parts
DSLABS = {"probes 25": 21_700, "probes 26": 17_900}
_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# One run, in a process of its own (``--run``), with whichever labkit is importable
# --------------------------------------------------------------------------


def _tree() -> list[int]:
    """This process and its live descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    parent = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(name))
    found = [os.getpid()]
    for pid in found:
        found.extend(children.get(pid, []))
    return found


def _tree_cpu() -> float:
    """CPU seconds of this process, its reaped descendants and its live ones."""
    total = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                for field in ("ru_utime", "ru_stime"))
    for pid in _tree()[1:]:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            continue
    return total


def _memory(key: str) -> dict[int, int]:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of each process of the tree, in bytes."""
    sizes = {}
    for pid in _tree():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        sizes[pid] = int(line.split()[1]) * 1024
        except OSError:
            continue
    return sizes


def run(scenario: str, workers: int, budget: int) -> dict[str, Any]:
    """Run one scenario with this process's labkit; what it counted and cost."""
    from labkit.app import KVStore  # noqa: F401  (imported before timing starts)
    from labkit.check.predicates import APPENDS_LINEARIZABLE, CLIENTS_DONE, NONE_DECIDED, RESULTS_OK
    from labkit.labs.paxos import tests as paxos_tests
    from labkit.labs.paxos.predicates import LOGS_CONSISTENT, LOGS_CONSISTENT_ALL_SLOTS
    from labkit.labs.paxos.workloads import put_get_workload
    from labkit.node import client, server
    from labkit.search import SearchSettings, bfs, random_search
    from labkit.testing.solution import load_solution

    import labkit

    class Context:
        solution = load_solution(Path(labkit.__file__).resolve().parents[1] / "solutions" / "paxos" / "paxos_server.py",
                                 "paxos")

    if scenario.startswith("probes"):
        n = 3 if scenario == "probes 25" else 5
        start = paxos_tests.search_system(Context, n, [paxos_tests.append("x"), paxos_tests.append("y")])
        settings = SearchSettings(invariants=[APPENDS_LINEARIZABLE, LOGS_CONSISTENT], prunes=[CLIENTS_DONE],
                                  max_depth=1000, max_steps=budget, workers=workers)
        search: Any = lambda: random_search(start, settings, seed=1)  # noqa: E731
    else:
        first = paxos_tests.search_system(Context, 3, [put_get_workload()])
        goal = SearchSettings(invariants=[RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS], goals=[~NONE_DECIDED], workers=workers)
        goal.partition([server(1), server(2), client(1)])
        start = bfs(first, goal).state
        settings = SearchSettings(invariants=[RESULTS_OK, LOGS_CONSISTENT_ALL_SLOTS], prunes=[CLIENTS_DONE],
                                  max_states=budget, workers=workers)
        search = lambda: bfs(start, settings)  # noqa: E731
    rss_before = _memory("VmRSS")
    me = os.getpid()
    cpu, wall = _tree_cpu(), time.perf_counter()
    result = search()
    cpu, wall = _tree_cpu() - cpu, time.perf_counter() - wall
    peaks = _memory("VmHWM")
    count = result.steps if scenario.startswith("probes") else result.states
    return {"count": count, "cpu": cpu, "wall": wall, "load": os.getloadavg()[0],
            "result": [str(result.outcome.value), result.states, result.steps, result.probes, result.depth],
            "judge_peak": peaks.get(me, 0), "judge_before": rss_before.get(me, 0),
            "workers_peak": sum(v for pid, v in peaks.items() if pid != me)}


# --------------------------------------------------------------------------
# Both releases, side by side
# --------------------------------------------------------------------------


def export(revision: str, folder: Path) -> Path:
    """``revision`` as a folder, with a Python environment that imports its labkit (and this
    environment's packages): its workers then run its code too. Returns that environment's python."""
    archive = folder / "previous.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "previous")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "env")], check=True)
    python = folder / "env" / "bin" / "python"
    packages = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                              capture_output=True, text=True).stdout.strip()
    Path(packages, "labkit-previous.pth").write_text(f"{folder / 'previous'}\n{site.getsitepackages()[0]}\n")
    if (folder / "previous" / "setup.py").exists():  # its compiled parts, as this checkout may have them
        subprocess.run([str(python), "setup.py", "-q", "build_ext", "--inplace"], cwd=folder / "previous",
                       capture_output=True)
    return python


def measure(python: Path, scenario: str, workers: int, budget: int) -> dict[str, Any]:
    done = subprocess.run([str(python), str(Path(__file__).resolve()), "--run", scenario, "--workers", str(workers),
                           "--budget", str(budget)], capture_output=True, text=True, cwd=tempfile.gettempdir())
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{scenario} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def visited_bytes(states: int, record_bytes: int) -> int:
    """What the visited fingerprints (a set of 64-bit ints) and the parent records of ``states`` states take."""
    sample = {2**62 + 7919 * i for i in range(min(states, 100_000))}
    per_entry = sys.getsizeof(sample) / len(sample) + sys.getsizeof(2**62)
    return int(states * (per_entry + record_bytes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--previous", default=PREVIOUS, help=f"git revision of the earlier release (default {PREVIOUS})")
    parser.add_argument("--steps", type=int, default=50_000, help="random-probe budget per run")
    parser.add_argument("--states", type=int, default=200_000, help="BFS budget per run")
    parser.add_argument("--memory-states", type=int, default=1_000_000, help="BFS budget of the memory run")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run(args.run, args.workers, args.budget)), flush=True)
        return
    cpus = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as scratch:
        sides = {"previous": export(args.previous, Path(scratch)), "this checkout": Path(sys.executable)}
        print(f"Paxos reference, sealed search; {cpus} usable CPUs; previous = {args.previous}, "
              f"this checkout = {_describe_head()}")
        figures: dict[tuple[str, str, int], dict[str, Any]] = {}
        for scenario, budget in (("probes 25", args.steps), ("probes 26", args.steps), ("bfs 20", args.states)):
            for workers in sorted({1, cpus}):
                for side, python in sides.items():
                    figures[side, scenario, workers] = measure(python, scenario, workers, budget)
        memory = {side: measure(python, "bfs 20", 1, args.memory_states) for side, python in sides.items()}
    _report(figures, memory, cpus)


def _describe_head() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return done.stdout.strip() + (" with changes" if dirty else "")


def _report(figures: dict[tuple[str, str, int], dict[str, Any]], memory: dict[str, dict[str, Any]], cpus: int) -> None:
    print("\nSpeed per CPU-second of the judge and all its workers (higher is better)")
    print(f"{'scenario':<30}{'workers':>8}{'previous':>12}{'this':>12}{'ratio':>8}  same result")
    for (side, scenario, workers), new in figures.items():
        if side != "this checkout":
            continue
        old = figures["previous", scenario, workers]
        unit = "steps" if scenario.startswith("probes") else "states"
        a, b = old["count"] / old["cpu"], new["count"] / new["cpu"]
        name = f"{'random probes, test ' + scenario[-2:] if unit == 'steps' else 'BFS, test 20 safety stage'} ({unit})"
        print(f"{name:<30}{workers:>8}{a:>12,.0f}{b:>12,.0f}{b / a:>7.2f}x  {'yes' if old['result'] == new['result'] else 'NO'}")
    for scenario, rate in DSLABS.items():
        new = figures["this checkout", scenario, 1]
        print(f"  test {scenario[-2:]}: {new['count'] / new['cpu'] / rate:.2f}x DSLabs's {rate:,} steps per CPU-second "
              "(target about 2x)")
    if cpus > 1:
        print(f"\nParallel BFS, wall time with 1 worker over {cpus} workers (target at least 1.7x on 2 cores)")
        for side in ("previous", "this checkout"):
            one, many = figures[side, "bfs 20", 1], figures[side, "bfs 20", cpus]
            print(f"  {side:<14} {one['wall']:6.1f} s / {many['wall']:6.1f} s = {one['wall'] / many['wall']:.2f}x  "
                  f"(load average {max(one['load'], many['load']):.1f})")
    print("\nMemory of a BFS of the test 20 safety stage, one worker: peak of each process, summed, per visited state")
    print(f"{'':<44}{'previous':>12}{'this':>12}")
    rows: dict[str, list[float]] = {}
    for side, record_bytes in (("previous", 16), ("this checkout", 8)):
        m = memory[side]
        states = m["result"][1]
        visited = visited_bytes(states, record_bytes)
        parts = {
            "workers": m["workers_peak"],
            "judge before the search": m["judge_before"],
            "visited fingerprints and parent records": visited,
            "frontier, caches, shared parts (the rest)": m["judge_peak"] - m["judge_before"] - visited,
        }
        for name, size in parts.items():
            rows.setdefault(name, []).append(size / states)
        rows.setdefault("total", []).append((m["judge_peak"] + m["workers_peak"]) / states)
        rows.setdefault("visited states", []).append(states)
    for name, (old, new) in rows.items():
        unit = "" if name == "visited states" else " B"
        print(f"  {name:<42}{old:>10,.0f}{unit:<2}{new:>10,.0f}{unit}")
    print("  target: at most 300 bytes per visited state in all")


if __name__ == "__main__":
    main()
