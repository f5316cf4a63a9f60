"""The box a student process runs in.

A worker process calls :func:`enter_box` before it imports any student code.
The box applies to the calling process for the rest of its life:

* resource limits: CPU seconds, address space, processes and threads, file
  size, open files, no core dumps;
* a fresh network namespace: no interfaces but a loopback that is down;
* a separate unprivileged user with no supplementary groups (when started as
  root), so it cannot signal, trace or write anything of the judge's;
* no new privileges: setuid programs and file capabilities give it nothing;
* a Landlock allow-list: read and execute only the ``readable`` paths, write
  only in the ``writable`` folders, bind only the allowed TCP ports, connect
  to none, and send no signals and reach no abstract unix socket outside the
  box.

Whatever this machine cannot provide (Landlock on an old kernel, a separate
user without root, most of it on macOS) is left out and named, with the
reason, in :attr:`Protections.missing`; :meth:`Protections.describe` is the
line a test result shows.

The judge's side: :func:`choose_box_uid` picks a user for one box,
:func:`prepare_folder` hands it its working folder, and :func:`kill_box`
removes whatever the box left running.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import grp
import itertools
import math
import os
import pwd
import resource
import signal
import site
import stat
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from labkit.node import LabkitError

__all__ = [
    "Limits",
    "BoxSpec",
    "Protections",
    "BoxError",
    "python_readable_paths",
    "choose_box_uid",
    "prepare_folder",
    "enter_box",
    "kill_box",
]

_LINUX = sys.platform.startswith("linux")


# -- What the caller asks for and what it gets --------------------------------


@dataclass(frozen=True)
class Limits:
    """Resource limits of one boxed process.

    ``processes`` counts processes and threads of the box user: 1 forbids
    fork and new threads; a Jupyter kernel needs a few dozen threads.
    """

    cpu_seconds: float
    memory_bytes: int
    processes: int = 1
    file_bytes: int = 0
    open_files: int = 64
    core_bytes: int = 0


@dataclass(frozen=True)
class BoxSpec:
    """What a boxed process may use besides its limits.

    ``readable`` paths (files or folders, recursively) may be read and
    executed; ``writable`` folders may also be written, including new files,
    removals and unix sockets. ``tcp_bind_ports`` are the only TCP ports it
    may bind; it may connect to none. ``network_namespace`` must be False
    for a Jupyter kernel, which talks TCP to its parent on 127.0.0.1.
    """

    limits: Limits
    readable: tuple[str, ...]
    writable: tuple[str, ...] = ()
    tcp_bind_ports: tuple[int, ...] = ()
    network_namespace: bool = True


@dataclass(frozen=True)
class Protections:
    """What :func:`enter_box` applied, and what it could not apply here and why.

    Each ``missing`` entry is the protection's name followed by the reason in
    parentheses, e.g. ``"filesystem allow-list (Landlock is not available on
    this kernel)"``. ``uid`` is the user the process runs as, if it was switched.
    """

    in_force: tuple[str, ...]
    missing: tuple[str, ...]
    uid: int | None

    def describe(self) -> str:
        """One line for a test result: ``sealed: ...; not available here: ...``."""
        line = "sealed: " + (", ".join(self.in_force) or "nothing")
        if self.missing:
            line += "; not available here: " + ", ".join(self.missing)
        return line

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, read back by :meth:`from_dict`."""
        return {"in_force": list(self.in_force), "missing": list(self.missing), "uid": self.uid}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protections:
        return cls(in_force=tuple(data["in_force"]), missing=tuple(data["missing"]), uid=data["uid"])


class BoxError(LabkitError):
    """The box could not be set up although this machine supports it: run no student code."""


# Names of the protections, shared by ``in_force`` and ``missing``.
_SEPARATE_USER = "separate box user"
_NETWORK_NAMESPACE = "network namespace"
_NO_NEW_PRIVILEGES = "no new privileges"
_FILESYSTEM = "filesystem allow-list"
_NO_TCP_CONNECT = "no TCP connections"
_TCP_BIND = "TCP bind only to the allowed ports"
_NO_PTRACE = "no ptrace outside the box"
_SCOPE = "no signals or abstract unix sockets outside the box"
_PROCESS_LIMIT = "process limit"
_MEMORY_LIMIT = "memory limit"


class _Report:
    """Collects the protections applied and those left out, in order."""

    def __init__(self) -> None:
        self.in_force: list[str] = []
        self.missing: list[str] = []

    def applied(self, name: str) -> None:
        self.in_force.append(name)

    def unavailable(self, name: str, reason: str) -> None:
        self.missing.append(f"{name} ({reason})")


# -- The judge's side ----------------------------------------------------------


def python_readable_paths() -> tuple[str, ...]:
    """What a Python process running labkit needs to read, as ``BoxSpec.readable``.

    The interpreter's prefixes (their bin and lib folders: the interpreter,
    the stdlib and lib-dynload), every site-packages folder, the labkit
    package folder, the shared libraries, ``/dev/null`` and ``/dev/urandom``.
    Other folders on ``sys.path`` (the current folder, or a repository that a
    ``.pth`` file added) are left out on purpose. With an editable install
    the folder above the labkit package is the repository, with hidden tests
    and solutions; it must not be readable, so a prefix holding it is an error.
    """
    import labkit  # here, not at module level: labkit imports this package's parent

    prefixes = dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix))
    interpreter = [os.path.join(prefix, part) for prefix in prefixes for part in ("bin", "lib", "lib64", "pyvenv.cfg")]
    interpreter.append(os.path.realpath(sys.executable))
    site_folders = [folder for folder in (*site.getsitepackages(), *sys.path) if _is_site_packages(folder)]
    labkit_package = os.path.dirname(os.path.abspath(labkit.__file__))
    shared_libraries = ["/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/etc/ld.so.cache"]
    devices = ["/dev/null", "/dev/urandom"]
    candidates = [*interpreter, *site_folders, labkit_package, *shared_libraries, *devices]
    paths = tuple(dict.fromkeys(os.path.abspath(path) for path in candidates if os.path.exists(path)))

    repository = os.path.dirname(labkit_package)
    if not _is_site_packages(repository):
        for path in paths:
            if repository == path or repository.startswith(path.rstrip(os.sep) + os.sep):
                raise BoxError(
                    f"the box would have to read {path}, which holds the labkit repository {repository} "
                    "(hidden tests, solutions); put the Python environment outside the repository"
                )
    return paths


def _is_site_packages(folder: str) -> bool:
    return os.path.basename(os.path.normpath(folder)) in ("site-packages", "dist-packages")


_BOX_UID_BASE = 200_000
_BOXES_PER_PROCESS = 64  # pid * 64 stays below 2**32 for any Linux pid (at most 2**22)
_box_counter = itertools.count()


def choose_box_uid() -> int | None:
    """An unused unprivileged uid for one box when running as root; None otherwise.

    Each judge process draws from its own block of uids (derived from its
    pid, so concurrent judges never share one), skipping any uid that has an
    account or group in the user database or a running process.
    """
    if os.geteuid() != 0:
        return None
    busy = {uid for process in _running_processes() for uid in process.uids}
    block_start = _BOX_UID_BASE + os.getpid() * _BOXES_PER_PROCESS
    for _ in range(_BOXES_PER_PROCESS):
        uid = block_start + next(_box_counter) % _BOXES_PER_PROCESS
        if uid not in busy and not _has_account(uid):
            return uid
    raise BoxError(
        f"no free box uid: all {_BOXES_PER_PROCESS} uids from {block_start} of process {os.getpid()} "
        "are in use by running processes or accounts"
    )


def prepare_folder(path: str, uid: int | None) -> None:
    """Create ``path`` (mode 0700) as a box's working folder, owned by the box user ``uid`` if given.

    What is already inside is handed to the box user too, so the caller may
    copy the student's files in before or after.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    if uid is None:
        return
    os.chown(path, uid, uid)
    for folder, subfolders, files in os.walk(path):
        for name in (*subfolders, *files):
            os.lchown(os.path.join(folder, name), uid, uid)


def kill_box(uid: int | None, pid: int | None = None) -> None:
    """Kill every process a box left behind.

    With a box ``uid``: every process whose real uid it is (the box user owns
    nothing else). Without one: the process group and the session of
    ``pid``, which the caller started with ``start_new_session=True``.
    """
    if uid is not None:
        _kill_until_gone(lambda process: process.real_uid == uid, f"of uid {uid}")
    elif pid is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if os.path.isdir("/proc"):
            _kill_until_gone(lambda process: process.session == pid, f"in session {pid}")


_KILL_PATIENCE_SECONDS = 5.0


@dataclass(frozen=True)
class _Process:
    """What /proc says about one running process."""

    pid: int
    uids: tuple[int, ...]  # real, effective, saved, filesystem
    session: int
    zombie: bool

    @property
    def real_uid(self) -> int:
        return self.uids[0]


def _kill_until_gone(belongs_to_box: Callable[[_Process], bool], what: str) -> None:
    """SIGKILL the live processes ``belongs_to_box`` picks until none is left (children forked meanwhile too)."""
    deadline = time.monotonic() + _KILL_PATIENCE_SECONDS
    while survivors := [p.pid for p in _running_processes() if not p.zombie and belongs_to_box(p)]:
        if time.monotonic() > deadline:
            raise BoxError(f"processes {what} still run {_KILL_PATIENCE_SECONDS:g} s after SIGKILL: {survivors}")
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _running_processes() -> list[_Process]:
    """Every process in /proc but the calling one (empty where there is no /proc)."""
    if not os.path.isdir("/proc"):
        return []
    processes = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            process = _read_process(int(name))
            if process is not None:
                processes.append(process)
    return processes


def _read_process(pid: int) -> _Process | None:
    """``pid``'s uids, session and state from /proc, or None if it has gone."""
    try:
        with open(f"/proc/{pid}/status") as file:
            uid_line = next(line for line in file if line.startswith("Uid:"))
        with open(f"/proc/{pid}/stat") as file:
            # After "pid (name)": state, ppid, process group, session, ...
            fields_after_name = file.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return _Process(
        pid=pid,
        uids=tuple(int(uid) for uid in uid_line.split()[1:]),
        session=int(fields_after_name[3]),
        zombie=fields_after_name[0] in ("Z", "X"),
    )


def _has_account(uid: int) -> bool:
    """Whether ``uid`` names a user or (as the box's gid) a group in the user database."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
        except KeyError:
            continue
        return True
    return False


# -- Entering the box ------------------------------------------------------------


def enter_box(spec: BoxSpec, uid: int | None = None) -> Protections:
    """Apply the box to the current process, irreversibly, and say what it applied.

    The steps, each where this machine allows it: resource limits (but the
    process limit); a network namespace (as root directly; otherwise inside
    a new user namespace, which also gives the box its own count of
    processes); the box user ``uid`` with no supplementary groups (root
    only); no new privileges; the Landlock allow-list; the process limit,
    last, so that the steps before may still need a thread or a process.

    Call it while the process has a single thread. A protection this machine
    lacks is recorded in ``missing``; :class:`BoxError` means something
    available failed, and no student code should run.
    """
    report = _Report()
    running_as_root = os.geteuid() == 0
    if uid is not None and not running_as_root:
        raise BoxError(f"cannot run the box as uid {uid}: switching users needs root")
    if _LINUX:
        _require_single_thread()
    landlock = _landlock_abi()

    limit_kinds = _apply_resource_limits(spec.limits, report)

    own_process_count = False
    if _LINUX and not running_as_root:
        own_process_count = _enter_user_namespace(spec.network_namespace, report)
    elif spec.network_namespace:
        _enter_network_namespace(report)

    if uid is not None:
        _switch_user(uid, _unreachable_for_others(spec), landlock, report)
        own_process_count = True
    elif running_as_root:
        report.unavailable(_SEPARATE_USER, "no box uid was given, so the box runs as root")
    else:
        report.unavailable(_SEPARATE_USER, "that needs root; the box runs as the current user")

    _set_no_new_privileges(report)
    _apply_landlock(spec, landlock, report)

    if _limit_processes(spec.limits.processes, own_process_count, running_as_root and uid is None, report):
        limit_kinds.insert(limit_kinds.index("file-size"), "process")
    report.in_force.insert(0, _limits_phrase(limit_kinds))
    return Protections(in_force=tuple(report.in_force), missing=tuple(report.missing), uid=uid)


def _require_single_thread() -> None:
    """Credentials, capabilities and Landlock change only the calling thread: no other may exist."""
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise BoxError(f"enter_box must run before the process starts threads; it has {threads}")


# Resource limits


_CPU_GRACE_SECONDS = 2  # SIGXCPU at the soft limit, SIGKILL this much later


def _apply_resource_limits(limits: Limits, report: _Report) -> list[str]:
    """Every limit but the process limit; returns the kinds applied, for :func:`_limits_phrase`."""
    cpu = max(1, math.ceil(limits.cpu_seconds))
    _lower_limit("CPU", resource.RLIMIT_CPU, cpu, cpu + _CPU_GRACE_SECONDS)
    kinds = ["CPU"]
    if sys.platform == "darwin":
        report.unavailable(_MEMORY_LIMIT, "macOS does not enforce an address-space limit")
    else:
        _lower_limit("memory", resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes)
        kinds.append("memory")
    _lower_limit("file-size", resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes)
    _lower_limit("open-file", resource.RLIMIT_NOFILE, limits.open_files, limits.open_files)
    _lower_limit("core-size", resource.RLIMIT_CORE, limits.core_bytes, limits.core_bytes)
    return kinds + ["file-size", "open-file"]


def _lower_limit(kind: str, which: int, soft: int, hard: int) -> None:
    """Set a limit, never above the hard limit already in force (which cannot be raised)."""
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError) as error:
        raise BoxError(f"could not set the {kind} limit to {soft} (hard {hard}): {error}") from error


def _limit_processes(processes: int, own_process_count: bool, unenforced_for_root: bool, report: _Report) -> bool:
    """Set the process limit last; returns whether it holds."""
    if unenforced_for_root:
        report.unavailable(_PROCESS_LIMIT, "the kernel does not enforce it for root, and no box uid was given")
        return False
    if not own_process_count and processes > 1:
        # The count is shared with every other process of this user, so a
        # small limit would stop the box from starting any thread at all.
        report.unavailable(_PROCESS_LIMIT, "the box shares its user's process count with the user's other programs")
        return False
    _lower_limit("process", resource.RLIMIT_NPROC, processes, processes)
    return True


def _limits_phrase(kinds: list[str]) -> str:
    """E.g. "CPU, memory, process, file-size and open-file limits"."""
    return ", ".join(kinds[:-1]) + " and " + kinds[-1] + " limits"


# Linux system calls through libc


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _call(what: str, function: str, *arguments: Any) -> int:
    """Call a libc function; raise OSError (with ``what`` and errno) when it returns -1."""
    result = getattr(_libc(), function)(*arguments)
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, f"{what} failed: {os.strerror(code)}")
    return int(result)


def _syscall(what: str, number: int, *arguments: Any) -> int:
    syscall = _libc().syscall
    syscall.restype = ctypes.c_long
    return _call(what, "syscall", ctypes.c_long(number), *arguments)


_PR_SET_KEEPCAPS = 8
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_CLEAR_ALL = 4


def _prctl(what: str, option: int, argument: int = 0, argument3: int = 0) -> None:
    _call(what, "prctl", ctypes.c_int(option), ctypes.c_ulong(argument), ctypes.c_ulong(argument3),
          ctypes.c_ulong(0), ctypes.c_ulong(0))


_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


def _unshare(flags: int) -> None:
    _call("unshare", "unshare", ctypes.c_int(flags))


class _CapabilityHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapabilitySets(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAPABILITY_VERSION_3 = 0x20080522
_CAP_DAC_READ_SEARCH = 2


def _set_capabilities(capabilities: tuple[int, ...]) -> None:
    """Make ``capabilities`` the thread's only ones, kept across execve (as ambient capabilities)."""
    header = _CapabilityHeader(_CAPABILITY_VERSION_3, 0)
    sets = (_CapabilitySets * 2)()
    for capability in capabilities:
        word, bit = divmod(capability, 32)
        sets[word].effective |= 1 << bit
        sets[word].permitted |= 1 << bit
        sets[word].inheritable |= 1 << bit
    _call("capset", "capset", ctypes.byref(header), sets)
    _prctl("clearing ambient capabilities", _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    for capability in capabilities:
        _prctl(f"making capability {capability} ambient", _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, capability)


# Namespaces and the box user


def _enter_network_namespace(report: _Report) -> None:
    """As root: a fresh network namespace."""
    if not _LINUX:
        report.unavailable(_NETWORK_NAMESPACE, "network namespaces are Linux-only")
        return
    try:
        _unshare(_CLONE_NEWNET)
    except OSError as error:
        report.unavailable(_NETWORK_NAMESPACE, error.strerror or str(error))
    else:
        report.applied(_NETWORK_NAMESPACE)


def _enter_user_namespace(network_namespace: bool, report: _Report) -> bool:
    """Not root: a user namespace mapping only the current user (with a network namespace if asked).

    Inside it the box has its own count of processes, so the process limit
    counts the box alone. The capabilities a new user namespace grants are
    dropped at once. Returns whether the user namespace was entered.
    """
    uid, gid = os.getuid(), os.getgid()
    attempts = [_CLONE_NEWUSER | _CLONE_NEWNET, _CLONE_NEWUSER] if network_namespace else [_CLONE_NEWUSER]
    failure = ""
    for flags in attempts:
        try:
            _unshare(flags)
        except OSError as error:
            failure = error.strerror or str(error)
            continue
        try:
            _write_proc_self("uid_map", f"{uid} {uid} 1\n")
            _write_proc_self("setgroups", "deny\n")
            _write_proc_self("gid_map", f"{gid} {gid} 1\n")
        except OSError:
            # Some systems (Ubuntu's AppArmor policy) allow the namespace but
            # not the mapping. The box then sees itself as the overflow user;
            # the kernel still checks files against the real user, so
            # nothing is lost or gained.
            pass
        try:
            _set_capabilities(())
        except OSError as error:
            raise BoxError(f"could not drop the capabilities of the new user namespace: {error}") from error
        if network_namespace:
            if flags & _CLONE_NEWNET:
                report.applied(_NETWORK_NAMESPACE)
            else:
                report.unavailable(_NETWORK_NAMESPACE, f"unshare of a network namespace failed: {failure}")
        return True
    if network_namespace:
        report.unavailable(_NETWORK_NAMESPACE, f"user namespaces are not allowed here: {failure}")
    return False


def _write_proc_self(name: str, text: str) -> None:
    with open(f"/proc/self/{name}", "w") as file:
        file.write(text)


def _switch_user(uid: int, unreachable: list[str], landlock: _Landlock, report: _Report) -> None:
    """As root: become ``uid`` (gid ``uid``, no supplementary groups) with no capabilities, or one.

    The box user may have to read a path behind a folder closed to others
    (an interpreter under /root, say). It then keeps one capability, reading
    past folder and file permissions (across execve too, so it can start that
    interpreter again), and Landlock confines it to the allow-list; without
    Landlock that would open every file, so it is an error.
    """
    keep_read_search = bool(unreachable)
    if keep_read_search:
        if not landlock.abi:
            why_not = f"without Landlock ({landlock.reason}) that would open every file"
        elif not _has_capability(_CAP_DAC_READ_SEARCH):
            why_not = "this process lacks the capability to read past folder permissions (CAP_DAC_READ_SEARCH)"
        else:
            why_not = ""
        if why_not:
            raise BoxError(
                f"the box user {uid} could not read {unreachable[0]}: a folder on the way is closed to other "
                f"users, and the box cannot let it past: {why_not}; make the folders on the way enterable "
                "by others (chmod o+x) or use a Python installed elsewhere"
            )
    try:
        os.setgroups([])
        os.setgid(uid)
        if keep_read_search:
            _prctl("keeping capabilities across the uid switch", _PR_SET_KEEPCAPS, 1)
        os.setuid(uid)
        if _LINUX:
            _set_capabilities((_CAP_DAC_READ_SEARCH,) if keep_read_search else ())
        if keep_read_search:
            _prctl("resetting keep-capabilities", _PR_SET_KEEPCAPS, 0)
    except OSError as error:
        raise BoxError(f"could not switch to the box user {uid}: {error}") from error
    ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
    if ids != (uid,) * 4 or os.getgroups():
        raise BoxError(f"the switch to the box user {uid} did not take: uid, euid, gid, egid are {ids}")
    detail = " (reads past folder permissions, only inside the allow-list)" if keep_read_search else ""
    report.applied(f"unprivileged user {uid}{detail}")


def _has_capability(capability: int) -> bool:
    """Whether the calling thread holds ``capability`` (Linux only)."""
    with open("/proc/thread-self/status") as file:
        effective = next(line for line in file if line.startswith("CapEff:")).split()[1]
    return bool(int(effective, 16) >> capability & 1)


def _unreachable_for_others(spec: BoxSpec) -> list[str]:
    """The spec's paths that a user with no rights of its own could not reach.

    The folders on the way must be enterable by others; a readable path must
    itself be readable by others (writable folders belong to the box user,
    see :func:`prepare_folder`).
    """
    readable = [path for path in spec.readable if _closed_to_others(path, itself_too=True)]
    return readable + [path for path in spec.writable if _closed_to_others(path, itself_too=False)]


def _closed_to_others(path: str, itself_too: bool) -> bool:
    """Whether permissions for others keep them from ``path`` (False for a path that does not exist)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    if itself_too and mode & needed != needed:
        return True
    for name in {os.path.abspath(path), os.path.realpath(path)}:  # the way in and where it leads
        folder = os.path.dirname(name)
        while True:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return True
            if folder == os.path.dirname(folder):
                break
            folder = os.path.dirname(folder)
    return False


def _set_no_new_privileges(report: _Report) -> None:
    if not _LINUX:
        report.unavailable(_NO_NEW_PRIVILEGES, "that is Linux-only")
        return
    try:
        _prctl("PR_SET_NO_NEW_PRIVS", _PR_SET_NO_NEW_PRIVS, 1)
    except OSError as error:
        raise BoxError(str(error)) from error
    report.applied(_NO_NEW_PRIVILEGES)


# Landlock (https://docs.kernel.org/userspace-api/landlock.html)

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_LANDLOCK_RULE_NET_PORT = 2

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_ABI_1 = (1 << 13) - 1  # the 13 rights of ABI 1: execute ... make symlink
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_FS_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1


class _RulesetAttributes(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttributes(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttributes(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


@dataclass(frozen=True)
class _Landlock:
    """The Landlock ABI version of this kernel (0: none) and, if none, why."""

    abi: int
    reason: str = ""


def _landlock_abi() -> _Landlock:
    if not _LINUX:
        return _Landlock(0, "Landlock is Linux-only")
    try:
        return _Landlock(_syscall("asking for the Landlock version", _SYS_LANDLOCK_CREATE_RULESET,
                                  None, ctypes.c_size_t(0), ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION)))
    except OSError as error:
        if error.errno == errno.EOPNOTSUPP:
            return _Landlock(0, "Landlock is built into this kernel but not enabled at boot")
        return _Landlock(0, "Landlock is not available on this kernel")


def _apply_landlock(spec: BoxSpec, landlock: _Landlock, report: _Report) -> None:
    """Restrict the process to the spec's paths and ports with one Landlock ruleset."""
    abi = landlock.abi
    if not abi:
        for name in (_FILESYSTEM, _NO_TCP_CONNECT, _TCP_BIND, _NO_PTRACE, _SCOPE):
            report.unavailable(name, landlock.reason)
        return
    handled_fs = _FS_ABI_1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    handled_fs |= _FS_IOCTL_DEV if abi >= 5 else 0
    handled_net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    attributes = _RulesetAttributes(handled_fs, handled_net, scoped)
    # The struct grew with the ABI: pass the size this kernel knows.
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    try:
        ruleset = _syscall("creating the Landlock ruleset", _SYS_LANDLOCK_CREATE_RULESET,
                           ctypes.byref(attributes), ctypes.c_size_t(size), ctypes.c_uint32(0))
    except OSError as error:
        raise BoxError(str(error)) from error
    try:
        read_rights = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        for path in spec.readable:
            _allow_path(ruleset, path, read_rights)
        for path in spec.writable:
            _allow_path(ruleset, path, handled_fs)
        for port in spec.tcp_bind_ports if handled_net else ():
            rule = _NetPortAttributes(_NET_BIND_TCP, port)
            _add_rule(ruleset, _LANDLOCK_RULE_NET_PORT, rule, f"TCP port {port}")
        _syscall("entering the Landlock ruleset", _SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset),
                 ctypes.c_uint32(0))
    except OSError as error:
        raise BoxError(str(error)) from error
    finally:
        os.close(ruleset)

    report.applied(f"{_FILESYSTEM} (Landlock)")
    if handled_net:
        report.applied(f"{_NO_TCP_CONNECT} (Landlock)")
        ports = ", ".join(str(port) for port in spec.tcp_bind_ports)
        plural = "s" if len(spec.tcp_bind_ports) > 1 else ""
        report.applied(f"TCP bind only to port{plural} {ports} (Landlock)" if ports else "no TCP bind (Landlock)")
    else:
        reason = f"Landlock network rules need ABI 4; this kernel has ABI {abi}"
        report.unavailable(_NO_TCP_CONNECT, reason)
        report.unavailable(_TCP_BIND, reason)
    if scoped:
        report.applied("no signals, ptrace or abstract unix sockets outside the box (Landlock scope)")
    else:
        report.applied(f"{_NO_PTRACE} (Landlock)")
        report.unavailable(_SCOPE, f"Landlock scopes need ABI 6; this kernel has ABI {abi}")


def _allow_path(ruleset: int, path: str, rights: int) -> None:
    """Grant ``rights`` beneath ``path`` (only the file rights if it is a file); skip a path that is not there."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return  # nothing there the box could use, so nothing to allow
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FS_FILE_RIGHTS
        _add_rule(ruleset, _LANDLOCK_RULE_PATH_BENEATH, _PathBeneathAttributes(rights, fd), path)
    finally:
        os.close(fd)


def _add_rule(ruleset: int, rule_type: int, rule: ctypes.Structure, what: str) -> None:
    _syscall(f"adding the Landlock rule for {what}", _SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
             ctypes.c_int(rule_type), ctypes.byref(rule), ctypes.c_uint32(0))
