"""``python -m labkit.worker.kernel -f CONNECTION_FILE``: the IPython kernel nbgrader runs while grading, boxed.

While a course is graded, nbgrader executes each submitted notebook, and so
every cell a student added. This kernel runs those cells inside the box of
:mod:`labkit.worker.box`: it can read only Python's files and the notebook's
own folder, write only a scratch folder of its own, bind only the ports of its
connection file and connect nowhere, and it runs as a user of its own when
the grader is root. So no cell can read hidden tests, solutions or the
gradebook, or touch another student's files. ``labkit course autograde``
installs it as the kernel ``labkit-boxed`` for the grading run only; scores
come from the judge, never from this kernel.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "labkit-boxed"
UID_VARIABLE = "LABKIT_BOX_UID"
_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def kernelspec(folder: Path) -> Path:
    """Write the kernelspec of the boxed kernel under ``folder/kernels/`` (for ``JUPYTER_PATH``)."""
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "labkit.worker.kernel", "-f", "{connection_file}"],
        "display_name": "Python 3 (labkit grading box)",
        "language": "python",
        "env": {"LABKIT_GRADING": "1"},
    }, indent=1), encoding="utf-8")
    return folder


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "-f":
        print("usage: python -m labkit.worker.kernel -f CONNECTION_FILE", file=sys.stderr)
        return 2
    connection = Path(argv[1]).resolve()
    ports = tuple(int(json.loads(connection.read_text(encoding="utf-8"))[name]) for name in _PORTS)

    from ipykernel import kernelapp  # imported before the box: it reads files of its own

    from labkit.worker.box import BoxSpec, Limits, enter_box, prepare_folder, python_readable_paths

    uid_text = os.environ.get(UID_VARIABLE)
    uid = int(uid_text) if uid_text and os.geteuid() == 0 else None
    scratch = Path(tempfile.mkdtemp(prefix="labkit-kernel-"))
    prepare_folder(str(scratch), uid)
    for name in ("IPYTHONDIR", "MPLCONFIGDIR", "HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR"):
        folder = scratch / name.lower()
        folder.mkdir()
        prepare_folder(str(folder), uid)
        os.environ[name] = str(folder)
    os.environ["JUPYTER_RUNTIME_DIR"] = str(scratch)
    spec = BoxSpec(
        limits=Limits(cpu_seconds=600.0, memory_bytes=4 * 1024**3, processes=64, file_bytes=64 * 1024**2,
                      open_files=256),
        readable=python_readable_paths() + (str(Path.cwd()), str(connection)),
        writable=(str(scratch),),
        tcp_bind_ports=ports,
        network_namespace=False,  # the kernel talks to nbgrader over 127.0.0.1
    )
    enter_box(spec, uid)
    sys.argv = ["ipykernel", "-f", str(connection), "--HistoryManager.hist_file=:memory:"]
    kernelapp.launch_new_instance()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
