"""Benchmark the linearizability checker on Porcupine's test histories.

CPU time per file with time.process_time() (parsing excluded, best of
--repeat runs), compared with Porcupine's own CPU times
(../shared/porcupine-data/porcupine-cpu-ms.csv). Run:

    PYTHONPATH=. python benchmarks/lincheck.py [--repeat 3] [--explain]
"""

from __future__ import annotations

import argparse
import csv
import resource
import time
from pathlib import Path

from labkit.check.histories import read_etcd_log, read_kv_edn
from labkit.check.linearizability import check
from labkit.check.models import kv_model, register_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "porcupine-data"


def _cpu_ms(ops: list, model: object, repeat: int, explain: bool) -> tuple[float, str]:
    best = float("inf")
    verdict = ""
    for _ in range(repeat):
        start = time.process_time()
        result = check(ops, model, explain=explain)  # type: ignore[arg-type]
        best = min(best, (time.process_time() - start) * 1000)
        verdict = result.verdict
    return best, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--explain", action="store_true", help="include explanations of failures in the time")
    args = parser.parse_args()
    with open(DATA / "porcupine-cpu-ms.csv", newline="") as f:
        porcupine = {(r["file"], r["model"]): float(r["porcupine_cpu_ms"]) for r in csv.DictReader(f)}
    with open(DATA / "expected.csv", newline="") as f:
        expected = {r["file"]: r["expected"] for r in csv.DictReader(f)}

    groups: dict[str, list[tuple[str, float, float]]] = {}
    wrong = []
    for (file, model_name), theirs in sorted(porcupine.items()):
        if model_name == "etcd":
            ops, model, group = read_etcd_log(DATA / file), register_model(), "etcd (all files)"
        elif model_name == "kv":
            ops, model = read_kv_edn(DATA / file), kv_model(missing="")
            name = Path(file).stem
            group = f"kv {name}" if name.startswith("c50") else "kv c01/c10"
        else:
            ops, model = read_kv_edn(DATA / file), kv_model(missing="", partitioned=False)
            group = "kv-nopartition c01/c10"
        ours, verdict = _cpu_ms(ops, model, args.repeat, args.explain)
        want = "linearizable" if expected.get(file) == "ok" else "not linearizable"
        if file in expected and verdict != want:
            wrong.append(f"{file} ({model_name}): got {verdict}, expected {want}")
        groups.setdefault(group, []).append((file, ours, theirs))

    print(f"{'group':<26}{'files':>6}{'labkit ms':>12}{'porcupine ms':>14}{'ratio':>8}")
    for group, rows in groups.items():
        ours = sum(r[1] for r in rows)
        theirs = sum(r[2] for r in rows)
        print(f"{group:<26}{len(rows):>6}{ours:>12.1f}{theirs:>14.1f}{ours / theirs:>8.2f}")
    slowest = sorted((r for rows in groups.values() for r in rows), key=lambda r: -r[1])[:5]
    print("\nslowest files:")
    for file, ours, theirs in slowest:
        print(f"  {file:<28}{ours:>9.1f} ms   porcupine {theirs:>9.1f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\npeak memory (maxrss): {peak / 1024:.1f} MB")
    print("explanations included" if args.explain else "verdicts only (--explain to include explanations)")
    if wrong:
        print("\nWRONG VERDICTS:\n  " + "\n  ".join(wrong))


if __name__ == "__main__":
    main()
