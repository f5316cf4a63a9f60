"""``python -m labkit.worker``: a boxed process that runs student code for the judge.

The judge starts it with two pipes and the box to enter. Labkit's own code
runs first: it enters the box (:mod:`labkit.worker.box`), says which
protections are in force, and only then serves requests, the first of which
imports the student's module. Everything after that point may be student
code; the judge treats every answer as untrusted data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.worker")
    parser.add_argument("--fds", required=True, help="READ,WRITE: the pipes to and from the judge")
    parser.add_argument("--box", required=True, help="the box as JSON (limits, readable and writable paths)")
    parser.add_argument("--uid", type=int, default=None, help="the unprivileged user to run as (when started as root)")
    args = parser.parse_args(argv)
    read_fd, write_fd = (int(x) for x in args.fds.split(","))

    from labkit.channel import Channel

    channel = Channel(read_fd, write_fd)
    sys.dont_write_bytecode = True
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # fd-level prints go nowhere; Python-level ones are captured by the host
    try:
        from labkit.worker.box import BoxSpec, Limits, enter_box

        spec_data = json.loads(args.box)
        spec = BoxSpec(
            limits=Limits(**spec_data["limits"]),
            readable=tuple(spec_data["readable"]),
            writable=tuple(spec_data.get("writable", ())),
            network_namespace=bool(spec_data.get("network_namespace", True)),
        )
        protections = enter_box(spec, args.uid)
    except Exception as error:  # the box could not be set up: not the student's doing
        channel.send({"ready": False, "error": f"{type(error).__name__}: {error}"})
        return 3
    workdir = os.getcwd()
    if sys.path[:1] != [workdir]:
        sys.path.insert(0, workdir)

    from labkit.worker.host import Host

    channel.send({"ready": True, "pid": os.getpid(), "protections": protections.to_dict()})
    Host(channel).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
