"""Grading on Dask distributed: one task per (submission, test), judged on a Dask worker.

A task gets what the judge needs as data, nothing that is only on the
coordinator's disk: the submitted folder's Python files as bytes
(:class:`Submission`) and the hidden tests' source (:class:`HiddenTests`,
which the task imports into the judge's memory on the worker and never
writes anywhere student code could read it). The task runs the test with
:func:`labkit.testing.runner.run_one` (the judge, which starts boxed worker
processes for the student's code: student code never runs in the Dask
worker itself, nor in the coordinator) and returns plain data: the test's
result as JSON-able values and, for a public test that failed, the
timeline picture for the feedback.

A test's verdict depends only on the submission, the test and its seed:
never on the worker that ran it, on how many run at once or on when they
finish. So a task whose worker died is run again on another (Dask does
that: a task is given up only after its workers died
``distributed.scheduler.allowed-failures`` times, 3 by default), with the
same result.

:class:`Cluster` is the coordinator's side: a ``LocalCluster`` on this
machine, or an existing scheduler (for instance one started by
dask-jobqueue on Slurm or PBS).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from labkit.node import LabkitError

__all__ = ["Submission", "HiddenTests", "judge_test", "Cluster", "ClusterError", "usable_cores",
           "labkit_fingerprint"]

CONNECT_SECONDS = 20.0  # real time to reach a scheduler given with --scheduler


class ClusterError(LabkitError):
    """The Dask cluster cannot be started or reached, or its workers cannot grade."""


def usable_cores() -> int:
    """The CPUs this process may use (``os.sched_getaffinity``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---- what a task receives ------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One student's submitted module and the Python files beside it, as bytes."""

    student: str
    module: str  # the file name students submit, e.g. "paxos_server.py"
    files: tuple[tuple[str, bytes], ...]

    @classmethod
    def read(cls, student: str, folder: Path, module: str) -> Submission:
        """The regular ``.py`` files of ``folder`` that the judge would copy (symbolic links are left out)."""
        from labkit.judge.session import MAX_FILE_BYTES, MAX_FILES

        files: list[tuple[str, bytes]] = []
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            if not path.is_file() or path.is_symlink():
                continue
            if path.name == module or (path.stat().st_size <= MAX_FILE_BYTES and len(files) < MAX_FILES):
                files.append((path.name, path.read_bytes()))
        return cls(student, module, tuple(files))

    @property
    def token(self) -> str:
        digest = hashlib.sha256(self.module.encode())
        for name, data in self.files:
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class HiddenTests:
    """The source of each hidden-test module (``<lab>_hidden``) of the labs being graded."""

    sources: tuple[tuple[str, str], ...]  # (module name, source)

    @classmethod
    def read(cls, folder: Path | None, labs: Sequence[str]) -> HiddenTests:
        if folder is None:
            return cls(())
        found = [(f"{lab}_hidden", (folder / f"{lab}_hidden.py").read_text(encoding="utf-8"))
                 for lab in sorted(set(labs)) if (folder / f"{lab}_hidden.py").is_file()]
        return cls(tuple(found))

    @property
    def digest(self) -> str:
        return hashlib.sha256(repr(self.sources).encode()).hexdigest()


# ---- the task, on a Dask worker ----------------------------------------------------------------------

_HIDDEN_DIGEST = "__labkit_hidden_digest__"


def install_hidden(hidden: HiddenTests) -> None:
    """Register the hidden tests in this process (once; again if their source changed). They are imported
    from memory: no file of theirs exists on the worker."""
    from labkit.testing.runner import get_lab

    for name, source in hidden.sources:
        digest = hashlib.sha256(source.encode()).hexdigest()
        present = sys.modules.get(name)
        if present is not None and getattr(present, _HIDDEN_DIGEST, None) == digest:
            continue
        lab = get_lab(name.removesuffix("_hidden"))
        lab.tests[:] = [t for t in lab.tests if not t.hidden]
        module = types.ModuleType(name)
        module.__file__ = f"<hidden tests {name}>"
        sys.modules[name] = module
        try:
            exec(compile(source, module.__file__, "exec"), module.__dict__)
        except BaseException:
            sys.modules.pop(name, None)
            lab.tests[:] = [t for t in lab.tests if not t.hidden]
            raise
        setattr(module, _HIDDEN_DIGEST, digest)


def judge_test(submission: Submission, hidden: HiddenTests, lab: str, number: str, labkit: str) -> dict[str, Any]:
    """The Dask task: run test ``number`` of ``lab`` on ``submission``; never imports the student's code.
    ``labkit`` is the coordinator's :func:`labkit_fingerprint`: a worker with another labkit refuses to grade.

    Returns ``{"result": TestResult.to_dict(), "picture": {"png": base64 PNG, "caption": ...} or None,
    "judge_cpu_seconds": float}``.
    Paths in the result are relative to the test's folder (``traces/...``), as when a student runs it."""
    from labkit.course.grading import GradingError, missing_result, timeline_picture
    from labkit.testing.runner import get_lab, run_one

    began = time.thread_time()
    if labkit != labkit_fingerprint():
        raise ClusterError("this Dask worker runs another version of labkit than the coordinator: install the same "
                           "labkit on every worker")
    install_hidden(hidden)
    the_lab = get_lab(lab)
    spec = next((s for s in the_lab.tests if s.qualified_number == number), None)
    if spec is None:
        raise GradingError(f"lab {lab} has no test {number} on this Dask worker (are the hidden tests the same?)")
    with tempfile.TemporaryDirectory(prefix="labkit-judge-") as scratch:
        folder = Path(scratch)
        for name, data in submission.files:
            (folder / name).write_bytes(data)
        module = folder / submission.module
        if module.is_file():
            result = run_one(spec, module, lab=the_lab, solution_label=submission.module, trace_dir=folder / "traces")
        else:
            result = missing_result(spec, submission.module)
        picture = None if spec.hidden else timeline_picture(result)
        data = _relative(result.to_dict(), f"{folder}{os.sep}")
    return {"result": data, "picture": picture, "judge_cpu_seconds": round(time.thread_time() - began, 3)}


def _relative(value: Any, prefix: str) -> Any:
    if isinstance(value, str):
        return value.replace(prefix, "")
    if isinstance(value, list):
        return [_relative(v, prefix) for v in value]
    if isinstance(value, dict):
        return {k: _relative(v, prefix) for k, v in value.items()}
    return value


def _hold(value: Any) -> Any:
    """A task that returns its argument: data the scheduler keeps, so it is recomputed if its worker dies."""
    return value


_FINGERPRINT: str | None = None


def labkit_fingerprint() -> str:
    """A digest of the installed labkit's source: workers must grade with the coordinator's labkit."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import labkit

        digest = hashlib.sha256()
        package = Path(labkit.__file__).resolve().parent
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
        _FINGERPRINT = digest.hexdigest()[:16]
    return _FINGERPRINT


# ---- the coordinator's side ----------------------------------------------------------------------------


class Cluster:
    """A Dask client: on a new ``LocalCluster`` of ``workers`` processes (one test at a time each), or on the
    existing scheduler at ``scheduler`` (``tcp://HOST:PORT``). Use as a context manager."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None) -> None:
        from distributed import Client

        self.cluster: Any = None
        self._local_directory: tempfile.TemporaryDirectory[str] | None = None
        if scheduler is not None:
            if workers is not None:
                raise ClusterError("--workers starts a Dask cluster on this machine and --scheduler uses an existing "
                                   "one: give only one of them")
            try:
                self.client = Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as error:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {scheduler} ({_first_line(error)}). Check the address "
                    "(tcp://HOST:PORT, as `dask scheduler` prints it) and that the scheduler runs and this machine "
                    "may connect to it; or leave out --scheduler to grade on this machine") from None
            self.description = f"the Dask scheduler at {scheduler}"
        else:
            count = usable_cores() if workers is None else workers
            if count < 1:
                raise ClusterError(f"--workers must be at least 1, got {count}")
            from distributed import LocalCluster

            # Each worker's tests share the machine: their searches use this machine's CPUs between them.
            env = {} if os.environ.get("LABKIT_WORKERS") else {"LABKIT_WORKERS": str(max(1, usable_cores() // count))}
            self._local_directory = tempfile.TemporaryDirectory(prefix="labkit-dask-")
            try:
                self.cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1",
                                            dashboard_address="127.0.0.1:0", env=env,
                                            local_directory=self._local_directory.name)
                self.client = Client(self.cluster, set_as_default=False)
            except Exception as error:
                self.close()
                raise ClusterError(f"could not start a Dask cluster on this machine ({_first_line(error)})") from None
            plural = "es" if count != 1 else ""
            self.description = f"a Dask cluster on this machine ({count} worker process{plural})"
        try:
            self.check_workers()
        except BaseException:
            self.close()
            raise

    @property
    def dashboard(self) -> str | None:
        """The Dask dashboard's address (None if the scheduler serves none)."""
        try:
            return self.client.dashboard_link or None
        except Exception:
            return None

    def worker_count(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def check_workers(self) -> None:
        """Fail if a worker runs another labkit than this process (it could score differently)."""
        if self.worker_count() == 0:
            return
        try:
            theirs = self.client.run(labkit_fingerprint)
        except Exception as error:
            raise ClusterError(
                f"the Dask workers cannot run labkit ({type(error).__name__}: {_first_line(error)}): install the "
                "same labkit in the workers' Python environment") from None
        mine = labkit_fingerprint()
        other = sorted(address for address, fingerprint in theirs.items() if fingerprint != mine)
        if other:
            raise ClusterError(f"Dask workers {', '.join(other)} run another version of labkit than this machine: "
                               "install the same labkit there, so that every worker grades the same way")

    def hold(self, value: Any, key: str, priority: int = 0) -> Any:
        """A future holding ``value`` on the cluster (recomputed from the scheduler's copy if its worker dies)."""
        return self.client.submit(_hold, value, key=key, priority=priority)

    def judge(self, submission: Any, hidden: Any, lab: str, number: str, key: str, priority: int = 0) -> Any:
        """A future of :func:`judge_test` (``submission`` and ``hidden`` may be futures from :meth:`hold`)."""
        return self.client.submit(judge_test, submission, hidden, lab, number, labkit_fingerprint(), key=key,
                                  priority=priority)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self._local_directory is not None:
            self._local_directory.cleanup()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
