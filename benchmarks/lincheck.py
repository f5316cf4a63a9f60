"""Benchmark the linearizability checker.

1. Porcupine's test histories (../shared/porcupine-data): CPU time per file
   (time.process_time(), parsing excluded, best of --repeat runs) for verdicts
   only and with explanations, each file's ratio to Porcupine's own CPU time
   (porcupine-cpu-ms.csv), and per group the total, the median and the worst
   ratio. The previous release's checker (``git show REV:...``) runs on the
   same files in the same process, beside it.
2. Generated key-value histories: one key, 10 clients, 1,000 operations (the
   hard case), and a few hundred medium histories of both models, against the
   previous release (its verdicts too).
3. The CPU cost of starting the ``labkit`` command.

This release runs its compiled search loop when it is built (``pip install -e .``
with a C compiler); ``--pure-python`` measures the pure-Python loop instead.

Run:  PYTHONPATH=. python benchmarks/lincheck.py [--repeat 5] [--baseline REV] [--skip-previous] [--pure-python]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

from labkit.app import Append, Get, GetResult, Put, PutOk
from labkit.check import histories, linearizability, models

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "porcupine-data"
PREVIOUS = "41153b7"  # the last release with the previous checker
GROUPS = ["etcd", "kv c01-ok", "kv c01-bad", "kv c10-ok", "kv c10-bad", "kv c50-ok", "kv c50-bad"]


# --------------------------------------------------------------------------
# The checkers: this one and the previous release's
# --------------------------------------------------------------------------


class Checker:
    """One implementation: its check(), readers and models."""

    def __init__(self, name: str, lin: Any, mod: Any, hist: Any) -> None:
        self.name, self.lin, self.models, self.histories = name, lin, mod, hist

    def load(self, file: str, model: str) -> tuple[list[Any], Any]:
        if model == "etcd":
            return self.histories.read_etcd_log(DATA / file), self.models.register_model()
        ops = self.histories.read_kv_edn(DATA / file)
        return ops, self.models.kv_model(missing="", partitioned=model == "kv")


def current() -> Checker:
    return Checker("this release", linearizability, models, histories)


def previous(rev: str) -> Checker:
    """The checker of release ``rev``, loaded from git beside this one."""
    saved = {name: sys.modules.get(name) for name in ("labkit.check.linearizability", "labkit.check.models")}
    loaded: dict[str, types.ModuleType] = {}
    try:
        for name in ("linearizability", "models", "histories"):
            source = subprocess.run(
                ["git", "show", f"{rev}:labkit/check/{name}.py"], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout
            module = types.ModuleType(f"labkit_previous_{name}")
            sys.modules[module.__name__] = module
            sys.modules[f"labkit.check.{name}"] = module
            exec(compile(source, f"{rev}:labkit/check/{name}.py", "exec"), module.__dict__)
            loaded[name] = module
    finally:
        for name, module in saved.items():
            if module is not None:
                sys.modules[name] = module
    return Checker(f"release {rev}", loaded["linearizability"], loaded["models"], loaded["histories"])


def cpu_ms(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = run()
        best = min(best, (time.process_time() - start) * 1000)
    return best, result


def timed_check(checker: Checker, ops: list[Any], model: Any, explain: bool, repeat: int) -> tuple[float, str]:
    def run() -> str:
        result = checker.lin.check(ops, model, explain=explain)
        if explain:
            len(result.explanation)
        return result.verdict

    return cpu_ms(run, repeat)


# --------------------------------------------------------------------------
# 1. Porcupine's histories
# --------------------------------------------------------------------------


def group_of(file: str, model: str) -> str:
    if model == "etcd":
        return "etcd"
    name = Path(file).stem
    return f"kv {name}" if model == "kv" else "kv whole map (c01, c10)"


def porcupine_files(checkers: list[Checker], repeat: int) -> None:
    with open(DATA / "porcupine-cpu-ms.csv", newline="") as f:
        theirs = {(r["file"], r["model"]): float(r["porcupine_cpu_ms"]) for r in csv.DictReader(f)}
    with open(DATA / "expected.csv", newline="") as f:
        expected = {r["file"]: r["expected"] for r in csv.DictReader(f)}
    # rows[checker][explain] = list of (group, file, ms, ratio)
    rows: dict[str, dict[bool, list[tuple[str, str, float, float]]]] = {c.name: {False: [], True: []} for c in checkers}
    wrong: list[str] = []
    for (file, model), porcupine in sorted(theirs.items()):
        for checker in checkers:
            ops, spec = checker.load(file, model)
            for explain in (False, True):
                ms, verdict = timed_check(checker, ops, spec, explain, repeat)
                rows[checker.name][explain].append((group_of(file, model), file, ms, ms / porcupine))
                want = "linearizable" if expected.get(file) == "ok" else "not linearizable"
                if file in expected and verdict != want:
                    wrong.append(f"{checker.name}: {file} ({model}): {verdict}, expected {want}")

    for explain in (False, True):
        what = "with explanations (the text included)" if explain else "verdicts only"
        print(f"Porcupine's test histories, {what}: CPU ms per file, best of {repeat};")
        print("ratio = labkit / Porcupine 55508eb; per group the total ratio, the median and the worst file ratio")
        header = f"{'group':<26}{'files':>6}{'porcupine':>11}"
        for checker in checkers:
            header += f" | {checker.name:>14}{'ratio':>7}{'median':>7}{'worst':>7}"
        print(header)
        for group in GROUPS + ["kv whole map (c01, c10)"]:
            line = ""
            for checker in checkers:
                chosen = [r for r in rows[checker.name][explain] if r[0] == group]
                total = sum(theirs[(r[1], _model_of(group))] for r in chosen)
                if not line:
                    line = f"{group:<26}{len(chosen):>6}{total:>11.2f}"
                ours = sum(r[2] for r in chosen)
                ratios = [r[3] for r in chosen]
                line += f" | {ours:>14.2f}{ours / total:>7.2f}{statistics.median(ratios):>7.2f}{max(ratios):>7.2f}"
            print(line)
        for checker in checkers:
            ratios = [r[3] for r in rows[checker.name][explain] if r[0] in GROUPS]
            print(f"  {checker.name}: median file ratio {statistics.median(ratios):.2f} over {len(ratios)} files "
                  f"(the groups above the whole-map line); {sum(r <= 1 for r in ratios)} files at or under 1x")
        print()
    slowest = sorted(rows[checkers[0].name][False], key=lambda r: -r[3])[:5]
    print("highest ratios (verdicts only, %s):" % checkers[0].name)
    for group, file, ms, ratio in slowest:
        print(f"  {file:<28}{ms:>9.3f} ms  {ratio:>6.2f}x")
    if wrong:
        print("\nWRONG VERDICTS:\n  " + "\n  ".join(wrong))
    else:
        print("\nEvery verdict matches Porcupine's.")


def _model_of(group: str) -> str:
    return "etcd" if group == "etcd" else ("kv" if group.startswith("kv c") else "kv-nopartition")


# --------------------------------------------------------------------------
# 2. Generated histories
# --------------------------------------------------------------------------


def kv_history(seed: int, clients: int = 10, count: int = 1000, keys: int = 1, wrong: float = 0.0) -> list[Any]:
    """A history of a real key-value store run by ``clients`` closed-loop clients.

    Each operation takes effect at a random point of its interval; gets 42%,
    puts 6%, appends 52% with unique values, as in Porcupine's kv files (the
    result of an append is not recorded). With ``wrong`` > 0 that share of
    get results is replaced by an older value of the key.
    """
    rng = random.Random(seed)
    free = [rng.random() for _ in range(clients)]
    made = []
    for number in range(count):
        client = min(range(clients), key=free.__getitem__)
        call = free[client]
        ret = call + rng.expovariate(1.0)
        key = str(rng.randrange(keys))
        kind = rng.random()
        value = f"x {client} {number} y"
        command = Get(key) if kind < 0.42 else Put(key, value) if kind < 0.48 else Append(key, value)
        made.append((rng.uniform(call, ret), client, call, ret, command))
        free[client] = ret + rng.random() * 0.1
    store: dict[str, str] = {}
    seen: dict[str, list[str]] = {}
    ops = []
    for _, client, call, ret, command in sorted(made, key=lambda m: m[0]):
        current = store.get(command.key, "")
        seen.setdefault(command.key, []).append(current)
        if isinstance(command, Get):
            value = rng.choice(seen[command.key]) if rng.random() < wrong else current
            output: Any = GetResult(value)
        elif isinstance(command, Put):
            store[command.key] = command.value
            output = PutOk()
        else:
            store[command.key] = current + command.value
            output = None
        ops.append(linearizability.Operation(client, command, output, call, ret))
    ops.sort(key=lambda op: op.call)
    return [linearizability.Operation(o.client, o.input, o.output, o.call, o.ret, i) for i, o in enumerate(ops)]


def register_history(seed: int, clients: int = 5, count: int = 60) -> list[Any]:
    """A register history in the style of Jepsen's etcd tests: reads, writes and
    compare-and-set of values 0-4, some reads stale, some operations timing out."""
    rng = random.Random(seed)
    free = [rng.random() for _ in range(clients)]
    alive = list(range(clients))
    made = []
    next_client = clients
    for _ in range(count):
        slot = min(range(len(alive)), key=lambda s: free[s])
        client, call = alive[slot], free[slot]
        ret = call + rng.expovariate(1.0)
        kind = rng.random()
        if kind < 0.5:
            inp: Any = models.Read()
        elif kind < 0.8:
            inp = models.Write(rng.randrange(5))
        else:
            inp = models.Cas(rng.randrange(5), rng.randrange(5))
        timed_out = not isinstance(inp, models.Read) and rng.random() < 0.1
        made.append((rng.uniform(call, ret), client, call, None if timed_out else ret, inp, rng.random() < 0.5))
        free[slot] = ret + rng.random() * 0.1
        if timed_out:  # that process is never used again
            alive[slot] = next_client
            next_client += 1
    state: Any = None
    values: list[Any] = [None]
    ops = []
    for _, client, call, ret, inp, happens in sorted(made, key=lambda m: m[0]):
        if ret is None and not happens:
            ops.append(linearizability.Operation(client, inp, None, call, None))
            continue
        if isinstance(inp, models.Read):
            out: Any = models.ReadResult(rng.choice(values) if rng.random() < 0.03 else state)
        elif isinstance(inp, models.Write):
            state, out = inp.value, models.WriteOk()
        else:
            out = models.CasResult(state == inp.expected)
            state = inp.new if out.ok else state
        values.append(state)
        ops.append(linearizability.Operation(client, inp, None if ret is None else out, call, ret))
    ops.sort(key=lambda op: op.call)
    return [linearizability.Operation(o.client, o.input, o.output, o.call, o.ret, i) for i, o in enumerate(ops)]


def _convert(ops: list[Any], checker: Checker) -> list[Any]:
    """The same history as the previous release's own classes."""
    if checker.lin is linearizability:
        return ops
    mod = checker.models
    swap = {models.Read: mod.Read, models.Write: mod.Write, models.Cas: mod.Cas, models.ReadResult: mod.ReadResult,
            models.WriteOk: mod.WriteOk, models.CasResult: mod.CasResult}

    def same(value: Any) -> Any:
        kind = swap.get(type(value))
        return value if kind is None else kind(*vars(value).values())

    return [checker.lin.Operation(o.client, same(o.input), same(o.output), o.call, o.ret, o.index) for o in ops]


def generated(checkers: list[Checker], hard_seeds: int, limit: float) -> None:
    print("\nGenerated histories (CPU s; the previous release gets a time limit of %g s per history)" % limit)
    print("\nOne key, 10 clients, 1,000 operations (Porcupine took 16 CPU-s on such a history):")
    for seed in range(hard_seeds):
        ops = kv_history(seed)
        line = f"  seed {seed}:"
        for checker in checkers:
            start = time.process_time()
            result = checker.lin.check(
                _convert(ops, checker), checker.models.kv_model(missing=""), time_limit=limit, explain=False
            )
            spent = time.process_time() - start
            line += f"   {checker.name}: {result.verdict} in {spent:.2f} s"
        print(line)
    times, found = [], set()
    for seed in range(20):
        ops = kv_history(seed)
        start = time.process_time()
        found.add(linearizability.check(ops, models.kv_model(missing=""), explain=False).verdict)
        times.append(time.process_time() - start)
    print(f"  this release on seeds 0-19: verdicts {sorted(found)}, median {statistics.median(times):.3f} s, "
          f"slowest {max(times):.3f} s, total {sum(times):.2f} s")
    families = {
        "kv, 3 keys, 5 clients, 150 ops (3% stale gets)": (
            lambda seed: kv_history(seed, clients=5, count=150, keys=3, wrong=0.03), "kv"),
        "register, 5 clients, 60 ops (3% stale reads, 10% time-outs)": (register_history, "etcd"),
    }
    for title, (make, kind) in families.items():
        print(f"\n{title}, 200 histories:")
        verdicts: dict[str, list[str]] = {}
        for checker in checkers:
            spent = 0.0
            found = []
            for seed in range(200):
                ops = _convert(make(seed), checker)
                spec = checker.models.kv_model(missing="") if kind == "kv" else checker.models.register_model()
                start = time.process_time()
                result = checker.lin.check(ops, spec, time_limit=limit, explain=False)
                spent += time.process_time() - start
                found.append(result.verdict)
            verdicts[checker.name] = found
            counts = {v: found.count(v) for v in sorted(set(found))}
            print(f"  {checker.name}: {spent:.2f} s in total; verdicts {counts}")
        if len(checkers) == 2:
            ours, theirs = verdicts[checkers[0].name], verdicts[checkers[1].name]
            differ = [seed for seed, (a, b) in enumerate(zip(ours, theirs)) if a != b]
            proven = 0
            for seed in differ:
                spec = models.kv_model(missing="") if kind == "kv" else models.register_model()
                result = linearizability.check(make(seed), spec, explain=False)
                proven += result.ok and witness_holds(result)
            print(f"  verdicts that differ: {len(differ)}; of these, this release found a witness order "
                  f"that replays correctly (real time and model) for {proven}")
            for seed in differ[:5]:
                print(f"    seed {seed}: {checkers[0].name} {ours[seed]}, {checkers[1].name} {theirs[seed]}")


def witness_holds(result: Any) -> bool:
    """Whether a linearizable result's witness order is one: per partition, it
    respects real time and every step is legal from the model's initial state."""
    model = result.model
    parts = model.partition(result.ops) if model.partition is not None else [(None, result.ops)]
    where = {id(op): k for k, (_, part) in enumerate(parts) for op in part}
    placed: dict[int, list[Any]] = {}
    state: dict[int, Any] = {}
    for op in result.linearization:
        k = where[id(op)]
        if any(op.ret is not None and op.ret < earlier.call for earlier in placed.get(k, [])):
            return False
        legal, state[k] = model.step(state.get(k, model.init()), op.input, op.output)
        if not legal:
            return False
        placed.setdefault(k, []).append(op)
    return all(id(op) in {id(o) for o in result.linearization} for op in result.ops if op.ret is not None)


# --------------------------------------------------------------------------
# 3. Starting the command
# --------------------------------------------------------------------------


def child_cpu(argv: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, capture_output=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return best


def start_up(repeat: int) -> None:
    script = Path(sys.executable).parent / "labkit"
    small = DATA / "jepsen" / "etcd_001.log"
    every_command = (
        "import labkit.cli, labkit.check.lincheck_command, labkit.viz.command, "
        "labkit.course.command, labkit.testing.check_solution"
    )
    print(f"\nStarting the labkit command: CPU s (user + system, best of {repeat})")
    for label, argv in [
        ("python itself", [sys.executable, "-c", "pass"]),
        ("labkit --help", [str(script), "--help"]),
        ("labkit lincheck --help", [str(script), "lincheck", "--help"]),
        (f"labkit lincheck {small.name} --model etcd", [str(script), "lincheck", str(small), "--model", "etcd"]),
        ("importing every subcommand (the previous start-up)", [sys.executable, "-c", every_command]),
    ]:
        print(f"  {label:<52}{child_cpu(argv, repeat):>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per file; the best CPU time counts")
    parser.add_argument("--baseline", default=PREVIOUS, help=f"git revision of the previous release (default {PREVIOUS})")
    parser.add_argument("--skip-previous", action="store_true", help="measure this release only")
    parser.add_argument("--hard-seeds", type=int, default=3, help="1,000-operation histories to check")
    parser.add_argument("--limit", type=float, default=60.0, help="CPU-ish seconds the previous release gets per history")
    parser.add_argument("--pure-python", action="store_true", help="this release without its compiled search loop")
    args = parser.parse_args()
    if args.pure_python:
        linearizability._core = None
    print("this release's search loop:", "pure Python" if linearizability._core is None else "compiled", "\n")
    checkers = [current()]
    if not args.skip_previous:
        checkers.append(previous(args.baseline))
    porcupine_files(checkers, args.repeat)
    generated(checkers, args.hard_seeds, args.limit)
    start_up(args.repeat)


if __name__ == "__main__":
    sys.exit(main())
