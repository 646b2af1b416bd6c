"""Process confinement: what a ``runtime = "process"`` plugin may touch, enforced by the kernel.

One :class:`Jail` per started process, built in the host from a :class:`Plan`:

* **pids cgroup** — the plugin and all its descendants are in a cgroup of their own whose
  ``pids.max`` is the manifest's ``limits.processes`` (default :data:`DEFAULT_PROCESSES`); it
  counts threads too and binds root, which ``RLIMIT_NPROC`` does not. Membership is inherited
  and ``setsid`` does not leave it: when the plugin ends (exit, crash, kill, close) the host
  kills whatever is left in it and removes it. If the host itself is killed, a watchdog process
  (:func:`sweep`) does it.
* **seccomp** — without the ``process:spawn`` grant, ``fork``, ``vfork`` and ``clone`` without
  ``CLONE_THREAD`` fail with ``EPERM`` (``clone3`` answers ``ENOSYS`` so the C library falls
  back to ``clone``, where the flags can be seen); threads still work.
* **Landlock** — the filesystem is reduced to the package (read, execute), the data directory
  and a private temporary directory (read, write), the granted ``fs:read:``/``fs:write:``
  directories, and what the interpreter needs to run (system libraries and programs, the Python
  installation and import path, a few files in ``/etc``, the plugin's own ``/proc/<pid>``,
  ``/dev/null``...). With Landlock ABI 6 signals and abstract UNIX sockets are scoped too: the
  plugin cannot signal the host.

A PID namespace is not used: a process that unshares one cannot start threads any more, so the
plugin would need a resident parent of its own; the cgroup gives the same guarantee.

What the kernel refuses is left out, logged once per reason, and named in :attr:`Jail.label`
(``plughost status`` shows it): e.g. ``cgroup+landlock+seccomp`` or
``cgroup+seccomp; no landlock: the kernel has no Landlock (ENOSYS)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import itertools
import logging
import os
import platform
import shutil
import stat as stat_module
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plughost._proc import pid_alive
from plughost.errors import PermissionDenied, PlughostError
from plughost.security.scopes import parse_scope

__all__ = [
    "DEFAULT_PROCESSES",
    "Jail",
    "Plan",
    "confine_self",
    "granted_access",
    "kernel_support",
    "plan_for",
    "sweep",
]

logger = logging.getLogger(__name__)

DEFAULT_PROCESSES = 256
"""``pids.max`` when the manifest sets no ``limits.processes`` (processes *and* threads: Node
starts about a dozen threads; a fork bomb stops here)."""

# ---------------------------------------------------------------------------------------- libc

_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:  # find_library() runs ldconfig: a warm spare would pay for it on assignment
            _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:
            from ctypes.util import find_library

            _LIBC = ctypes.CDLL(find_library("c"), use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    return _LIBC


_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture (generic table)
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

# Landlock filesystem rights, by the ABI version that introduced them.
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1  # ABI 6

_FS_ABI1 = (1 << 13) - 1
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV

READ = _FS_READ_FILE | _FS_READ_DIR
"""Read files and list directories."""
EXEC = READ | _FS_EXECUTE
"""Read and execute."""
WRITE = (
    READ
    | _FS_WRITE_FILE
    | _FS_REMOVE_DIR
    | _FS_REMOVE_FILE
    | _FS_MAKE_DIR
    | _FS_MAKE_REG
    | _FS_MAKE_SOCK
    | _FS_MAKE_FIFO
    | _FS_MAKE_SYM
    | _FS_REFER
    | _FS_TRUNCATE
)
"""Everything a private directory needs (no device nodes, no execute)."""


def _handled_fs(abi: int) -> int:
    rights = _FS_ABI1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def _ruleset(abi: int, rules: Iterable[tuple[str, int]]) -> int:
    """A Landlock ruleset fd handling every right of ``abi``, allowing ``rules``."""
    libc = _libc()
    handled = _handled_fs(abi)
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    attr = ctypes.create_string_buffer(struct.pack("=QQQ", handled, 0, scoped)[:size], size)
    fd = int(libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(size), 0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for path, rights in rules:
            _add_rule(fd, path, rights & handled)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _add_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a directory that does not exist grants nothing
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        attr = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)
        if _libc().syscall(
            _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, attr, 0
        ) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def _restrict(ruleset: int, seccomp: Any) -> None:
    """Confine the calling thread (and what it starts later): Landlock, then seccomp."""
    if ruleset < 0 and seccomp is None:
        return  # nothing to apply (and no libc to look up between fork and exec)
    libc = _libc()
    if ruleset >= 0:
        with contextlib.suppress(OSError):
            _add_rule(ruleset, "/proc/self", READ)  # /proc/<this process's pid>
    if ruleset >= 0 or seccomp is not None:
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if ruleset >= 0 and libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    if seccomp is not None and libc.prctl(
        _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(seccomp[0]), 0, 0
    ):
        raise OSError(ctypes.get_errno(), "seccomp")


def confine_self(spec: Mapping[str, Any]) -> None:
    """Apply a :meth:`Jail.spec` to this process, which must have a single thread: how a warm
    spare, started before its plugin was known, confines itself before importing the plugin.
    Raises :class:`OSError` (the runner then refuses the assignment) if it cannot."""
    with open("/proc/self/status", "rb") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith(b"Threads:"))
    if threads != 1:
        raise OSError(errno.EBUSY, f"cannot confine a process with {threads} threads")
    if spec.get("tmpdir"):
        os.environ["TMPDIR"] = str(spec["tmpdir"])
        tempfile.tempdir = None
    ruleset = -1
    if spec.get("landlock_abi"):
        ruleset = _ruleset(int(spec["landlock_abi"]), [(p, int(r)) for p, r in spec["rules"]])
    try:
        _restrict(ruleset, None if spec.get("spawn", True) else _no_spawn_filter())
    finally:
        if ruleset >= 0:
            os.close(ruleset)


# ------------------------------------------------------------------------------------- seccomp

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_CLONE_THREAD = 0x00010000

# (audit arch, fork, vfork, clone, clone3); fork and vfork do not exist on arm64.
_SYSCALLS: dict[str, tuple[int, int | None, int | None, int, int]] = {
    "x86_64": (0xC000003E, 57, 58, 56, 435),
    "aarch64": (0xC00000B7, None, None, 220, 435),
}

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter)))


def _no_spawn_filter() -> tuple[Any, Any] | None:
    """A BPF program refusing new processes (threads allowed), or None on other machines."""
    table = _SYSCALLS.get(platform.machine())
    if table is None or sys.byteorder != "little":
        return None
    arch, fork, vfork, clone, clone3 = table
    deny = _SECCOMP_RET_ERRNO | errno.EPERM
    nosys = _SECCOMP_RET_ERRNO | errno.ENOSYS
    # Each entry: (code, jump-if-true label, jump-if-false label, k); labels resolved below.
    prog: list[tuple[int, str | int, str | int, int]] = [
        (_BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_BPF_JEQ_K, 0, "deny", arch),  # another ABI (i386 int 0x80...): refuse it all
        (_BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (_BPF_JGE_K, "deny", 0, 0x40000000),  # the x32 ABI: refuse
        (_BPF_JEQ_K, "nosys", 0, clone3),
        (_BPF_JEQ_K, 0, "allow", clone),
        (_BPF_LD_W_ABS, 0, 0, 16),  # low half of args[0]: clone's flags
        (_BPF_JSET_K, "allow", "deny", _CLONE_THREAD),
    ]
    for nr in (fork, vfork):
        if nr is not None:
            prog.insert(5, (_BPF_JEQ_K, "deny", 0, nr))
    tail = {"allow": _SECCOMP_RET_ALLOW, "deny": deny, "nosys": nosys}
    where = {name: len(prog) + i for i, name in enumerate(tail)}
    insns = []
    for i, (code, jt, jf, k) in enumerate(prog):
        jt_n = where[jt] - i - 1 if isinstance(jt, str) else jt
        jf_n = where[jf] - i - 1 if isinstance(jf, str) else jf
        insns.append(_SockFilter(code, jt_n, jf_n, k))
    insns += [_SockFilter(_BPF_RET_K, 0, 0, value) for value in tail.values()]
    array = (_SockFilter * len(insns))(*insns)
    fprog = _SockFprog(len(insns), ctypes.cast(array, ctypes.POINTER(_SockFilter)))
    return fprog, array  # keep the array alive with the program


# ------------------------------------------------------------------------------ kernel support


@dataclass(frozen=True, slots=True)
class KernelSupport:
    """What this machine's kernel lets the host use; a reason string when it does not."""

    landlock_abi: int
    landlock: str | None
    seccomp: str | None
    cgroup_root: Path | None
    cgroup: str | None


_SUPPORT: KernelSupport | None = None


def _landlock_abi() -> tuple[int, str | None]:
    libc = _libc()
    abi = libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _LANDLOCK_CREATE_RULESET_VERSION
    )
    if abi < 0:
        err = ctypes.get_errno()
        why = {
            errno.ENOSYS: "the kernel has no Landlock (ENOSYS)",
            errno.EOPNOTSUPP: "Landlock is disabled on this kernel (boot with lsm=...,landlock)",
        }.get(err, f"landlock_create_ruleset failed: {os.strerror(err)}")
        return 0, why
    return int(abi), None


def _pids_cgroup() -> tuple[Path | None, str | None]:
    """A directory under which this host may create pids cgroups (v1 or v2), or why not."""
    v1 = Path("/sys/fs/cgroup/pids")
    candidates: list[Path] = []
    if (v1 / "cgroup.procs").exists():
        candidates.append(v1)
    v2 = Path("/sys/fs/cgroup/unified")
    if not (v2 / "cgroup.controllers").exists():
        v2 = Path("/sys/fs/cgroup")
    try:
        if "pids" in (v2 / "cgroup.controllers").read_text().split():
            candidates.append(v2)
    except OSError:
        pass
    if not candidates:
        return None, "no pids cgroup controller is mounted"
    errors = []
    for base in candidates:
        root = base / "plughost"
        try:
            root.mkdir(exist_ok=True)
            if base != v1:  # v2: the controller must be enabled for the children
                (base / "cgroup.subtree_control").write_text("+pids")
                (root / "cgroup.subtree_control").write_text("+pids")
            return root, None
        except OSError as exc:
            errors.append(f"{root}: {exc.strerror or exc}")
    return None, "cannot create a pids cgroup (" + "; ".join(errors) + ")"


def _kill_cgroup(path: Path, deadline: float) -> list[int]:
    """SIGKILL everything in ``path`` until it is empty, then remove it; what is left, if any.

    A process with a pending SIGKILL cannot fork, and ``pids.max`` bounds the rest: this ends.
    """
    while True:
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            pids = []
        if not pids:
            try:
                path.rmdir()
                return []
            except FileNotFoundError:
                return []
            except OSError:
                pass
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        if time.monotonic() > deadline:
            return pids
        time.sleep(0.005)


def sweep(root: Path, host_pid: int | None = None) -> None:
    """Kill and remove the cgroups that hosts left behind: those of ``host_pid``, or (``None``)
    those of every host process that no longer exists."""
    deadline = time.monotonic() + 5.0
    for path in root.glob("*.*.*"):
        try:
            owner = int(path.name.rsplit(".", 2)[1])
        except ValueError:
            continue
        if owner == host_pid or (host_pid is None and not os.path.exists(f"/proc/{owner}")):
            left = _kill_cgroup(path, deadline)
            if left:
                logger.warning("cannot empty %s: processes %s remain", path, left)


_WATCHDOG: Any = None
_WATCHDOG_CODE = (
    "import sys\n"
    "sys.stdin.buffer.read()\n"  # returns when the host is gone, however it ended
    "from pathlib import Path\n"
    "from plughost.runtimes.process.confine import sweep\n"
    "sweep(Path(sys.argv[1]), int(sys.argv[2]))\n"
)


def _start_watchdog(root: Path) -> None:
    """A process that outlives this host (own session, no parent-death signal) and, when the
    host is gone, kills what its plugins left in their cgroups: even ``SIGKILL`` on the host
    leaves nothing behind."""
    global _WATCHDOG
    import subprocess

    path = os.pathsep.join(os.path.abspath(p) for p in sys.path if p and os.path.isdir(p))
    try:
        _WATCHDOG = subprocess.Popen(
            [sys.executable, "-S", "-c", _WATCHDOG_CODE, str(root), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # holds no pipe of whoever runs the host
            env={"PYTHONPATH": path, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            start_new_session=True,
        )
    except OSError as exc:
        logger.warning("no clean-up after a host crash: cannot start the watchdog: %s", exc)


def kernel_support() -> KernelSupport:
    """Probe once per host process (Linux only) what confinement the kernel offers."""
    global _SUPPORT
    if _SUPPORT is None:
        if not sys.platform.startswith("linux"):
            why = f"not available on {sys.platform}"
            _SUPPORT = KernelSupport(0, why, why, None, why)
        else:
            abi, ll_why = _landlock_abi()
            sc_why = None
            if platform.machine() not in _SYSCALLS:
                sc_why = f"no seccomp filter for the {platform.machine()} architecture"
            cg_root, cg_why = _pids_cgroup()
            if cg_root is not None:
                sweep(cg_root)  # what hosts killed before they could clean up left behind
                _start_watchdog(cg_root)
            _SUPPORT = KernelSupport(abi, ll_why, sc_why, cg_root, cg_why)
    return _SUPPORT


# ------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True, slots=True)
class Grants:
    """The directories and process rights the permission policy gives a plugin."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    spawn: bool = False


Query = Callable[[str, str], bool]
"""``allowed(kind, target)``: whether the plugin's permission policy grants it."""


def query_from_check(check: Callable[[str, str], None]) -> Query:
    """A :data:`Query` from a check that raises :class:`PermissionDenied` when refused."""

    def allowed(kind: str, target: str) -> bool:
        try:
            check(kind, target)
        except PermissionDenied:
            return False
        return True

    return allowed


def granted_access(permissions: Iterable[str], allowed: Query) -> Grants:
    """The ``fs:`` directories and ``process:spawn`` the manifest declares *and* the plugin's
    permission policy (``allowed``) grants.

    Directories are what Landlock can express; a wildcard or deny rule names none, and a grant
    the manifest does not declare is reachable through ``host.files`` only.
    """
    read: list[str] = []
    write: list[str] = []
    spawn = False
    for text in permissions:
        try:
            scope = parse_scope(text)
        except Exception:  # the manifest was validated at install; ignore what is not a scope
            continue
        if scope.deny or scope.is_wildcard:
            continue
        if scope.kind == "process:spawn":
            spawn = spawn or allowed(scope.kind, "")
        elif scope.kind in ("fs:read", "fs:write") and allowed(scope.kind, scope.pattern):
            (write if scope.kind == "fs:write" else read).append(scope.pattern)
    return Grants(tuple(read), tuple(write), spawn)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one process plugin may use; equal plans mean equal confinement.

    :ivar argv0: the program started (its installation is readable and executable).
    :ivar rules: ``(path, rights)`` Landlock rules (rights: :data:`READ`, :data:`EXEC`,
        :data:`WRITE`), the runtime's own files included.
    :ivar spawn: whether the plugin may start processes (the ``process:spawn`` grant).
    :ivar processes: ``pids.max`` for the plugin's cgroup.
    :ivar enabled: ``False`` turns every mechanism off (``ProcessOptions(confine=False)``).
    """

    argv0: str = ""
    rules: tuple[tuple[str, int], ...] = ()
    spawn: bool = True
    processes: int = DEFAULT_PROCESSES
    enabled: bool = True


_ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "pki",
    "resolv.conf",
    "hosts",
    "nsswitch.conf",
    "gai.conf",
    "host.conf",
    "passwd",
    "group",
    "mime.types",
    "os-release",
)


_PROC = ("meminfo", "cpuinfo", "stat", "loadavg", "uptime", "version", "filesystems", "sys")


def _prefix_of(program: str) -> str:
    """The installation a program belongs to: ``/opt/node`` for ``/opt/node/bin/node``."""
    real = os.path.dirname(os.path.realpath(program))
    return os.path.dirname(real) if os.path.basename(real) == "bin" else real


@functools.lru_cache(maxsize=64)
def _runtime_rules(argv0: str, python: str) -> tuple[tuple[str, int], ...]:
    """What the interpreter needs (computed once per program: the host's ``sys.path`` is
    read at the first start)."""
    rules: list[tuple[str, int]] = [
        (p, EXEC) for p in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
    ]
    for prog in {argv0, python}:
        rules.append((_prefix_of(prog), EXEC))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        rules.append((prefix, EXEC))
    rules += [(os.path.abspath(p), READ) for p in sys.path if p and os.path.isdir(p)]
    rules += [(f"/etc/{name}", READ) for name in _ETC]
    rules += [
        # /proc/self is added in the child (it names the child there); of the rest of /proc
        # only what describes the machine, never another process.
        *((f"/proc/{name}", READ) for name in _PROC),
        ("/sys/devices/system/cpu", READ),
        ("/sys/fs/cgroup", READ),
        ("/dev/null", WRITE),
        ("/dev/zero", READ),
        ("/dev/full", WRITE),
        ("/dev/random", READ),
        ("/dev/urandom", READ),
    ]
    return tuple((os.path.realpath(p), r) for p, r in rules)


def plan_for(
    *,
    root: Path,
    argv0: str,
    python: str,
    data_dir: str | None,
    grants: Grants,
    processes: int | None,
    enabled: bool = True,
    pycache_dir: str | None = None,
) -> Plan:
    """The confinement of a plugin in ``root`` started as ``argv0``, given its grants
    (``pycache_dir``: its own ``.pyc`` directory, written by it alone)."""
    if not enabled:
        return Plan(argv0, enabled=False)
    rules = [(str(root), EXEC)]
    if data_dir is not None:
        rules.append((data_dir, WRITE))
    if pycache_dir is not None:
        rules.append((pycache_dir, WRITE))
    rules += [(d, READ) for d in grants.read]
    rules += [(d, WRITE) for d in grants.write]
    seen: dict[str, int] = {}
    for real, rights in _runtime_rules(argv0, python):  # resolved already
        seen[real] = seen.get(real, 0) | rights
    for path, rights in rules:
        real = os.path.realpath(path)
        seen[real] = seen.get(real, 0) | rights
    return Plan(
        argv0,
        rules=tuple(sorted(seen.items())),
        spawn=grants.spawn,
        processes=int(processes) if processes is not None else DEFAULT_PROCESSES,
    )


def plan_launch(instance: Any, argv0: str, options: Any = None) -> Plan:
    """The plan for a started plugin process now (a process or gRPC plugin): its package, its
    context's data directory (once it has a context) and what its permission check
    (``instance._check``, the plugin's grants) allows of what the manifest declares.
    ``options``: its :class:`~plughost.runtimes.process.launch.ProcessOptions` (default
    ``instance.options``)."""
    options = options if options is not None else instance.options
    data_dir = None
    context = instance._context
    allowed = query_from_check(instance._check)
    if context is None and options.data_root is not None:
        data_dir = str(Path(options.data_root) / instance.plugin_id)  # as the host's
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    if context is not None:
        with contextlib.suppress(PlughostError):
            service: Any = getattr(context, "permissions", None)
            explicit = getattr(instance.runtime, "check_for", None)
            if explicit is None and callable(getattr(service, "allowed", None)):
                allowed = service.allowed  # asks without writing a denial to the audit log
        try:
            raw = getattr(context, "data_dir", None)
        except PlughostError:  # a host without a home gives plugins no data directory
            raw = None
        if raw is not None:
            Path(raw).mkdir(parents=True, exist_ok=True)
            data_dir = str(raw)
    manifest = instance.manifest
    from plughost.runtimes.process.launch import is_python_entry, pycache_dir

    python_child = is_python_entry(str(getattr(manifest, "entry", "")))
    cache = pycache_dir(options, instance.plugin_id) if python_child else None
    return plan_for(
        root=instance.root,
        argv0=argv0,
        python=options.python,
        data_dir=data_dir,
        grants=granted_access(getattr(manifest, "permissions", ()) or (), allowed),
        processes=instance.limits.get("processes"),
        enabled=options.confine,
        pycache_dir=str(cache) if cache is not None else None,
    )


# ------------------------------------------------------------------------------------ the jail

_SEQ = itertools.count(1)
_SPARES: dict[int, Jail] = {}  # warm spares waiting in a cgroup of their own, by pid
_WARNED: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason not in _WARNED:
        _WARNED.add(reason)
        logger.warning("process plugins run with weaker confinement: %s", reason)



#: A confined plugin's private temporary directory: ``plughost-jail-<host pid>-<plugin>-*``.
JAIL_TMP_PREFIX = "plughost-jail-"
_swept = False


def _private_tmpdir(plugin_id: str) -> str:
    """A new private temporary directory for one confined plugin process, named after this
    host's pid, so that a later host can tell the ones a killed host left (see
    :func:`sweep_dead_jails`, run before the first one a process makes)."""
    global _swept
    if not _swept:
        _swept = True
        sweep_dead_jails()
    from plughost.runtimes.process.launch import file_name

    # The id cut to 24 characters: a gRPC plugin's Unix socket lives in this directory, and
    # a socket's whole path must fit in 107 bytes (/tmp/ + at most 55 here + /plugin.sock).
    return tempfile.mkdtemp(prefix=f"{JAIL_TMP_PREFIX}{os.getpid()}-{file_name(plugin_id)[:24]}-")


def sweep_dead_jails(root: str | None = None) -> list[str]:
    """Remove the private temporary directories that hosts no longer running left in
    ``root`` (the temporary directory): a host killed outright (``SIGKILL``) runs no clean-up,
    and its plugins die with it. Only directories (not links) owned by this user, named
    ``plughost-jail-<pid>-...`` for a pid that is not running; returns the paths removed.
    (A host in another PID namespace sharing this temporary directory would look dead:
    containers each get their own ``/tmp``.)"""
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        name = entry.name
        if not name.startswith(JAIL_TMP_PREFIX):
            continue
        pid_text = name[len(JAIL_TMP_PREFIX):].partition("-")[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat_module.S_ISDIR(st.st_mode) or st.st_uid != uid:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed


@dataclass
class Jail:
    """The kernel objects confining one process, from :meth:`prepare` to :meth:`release`.

    Use: ``jail = Jail.prepare(plan, plugin_id)``; start the process with
    :func:`~plughost.runtimes.process.launch.make_preexec` (``jail=jail``), then
    ``await jail.attach(pid)`` and ``jail.started(session)``; ``await jail.release()`` once it
    has ended. A warm spare instead takes ``jail.adopt(pid)`` and ``jail.spec()``.
    """

    plugin_id: str
    plan: Plan
    cgroup: Path | None = None
    tmpdir: str | None = None
    missing: list[str] = field(default_factory=list)
    _procs_fd: int = -1
    _ruleset_fd: int = -1
    landlock: bool = False
    _abi: int = 0
    _seccomp: Any = None
    _attach_late: bool = False  # moved into the cgroup by attach(), after exec
    _unassigned: Any = None  # a spare's clean-up task
    _is_spare: bool = False
    session: Any = None

    @classmethod
    def prepare(cls, plan: Plan, plugin_id: str, *, spare: bool = False) -> Jail:
        """Create the cgroup, the private temporary directory and the Landlock ruleset (not
        for a ``spare``, which builds its own from :meth:`spec`)."""
        jail = cls(plugin_id, plan)
        if not plan.enabled:
            jail.missing.append("confinement turned off (ProcessOptions.confine)")
            return jail
        support = kernel_support()
        if support.cgroup_root is not None:
            jail._make_cgroup(support.cgroup_root)
        elif support.cgroup:
            jail.missing.append(f"no process limit or clean-up: {support.cgroup}")
        if support.landlock is None:
            try:
                jail.tmpdir = _private_tmpdir(plugin_id)
                if spare:
                    jail._abi, jail.landlock = support.landlock_abi, True
                else:
                    jail._make_ruleset(support.landlock_abi)
            except OSError as exc:
                jail.missing.append(f"no landlock: {exc}")
                jail._close_ruleset()
        else:
            jail.missing.append(f"no landlock: {support.landlock}")
        if not plan.spawn:
            if support.seccomp is None:
                jail._seccomp = _no_spawn_filter()
                jail._attach_late = jail._seccomp is not None  # it cannot fork: no hurry
            else:
                jail.missing.append(f"process:spawn not enforced: {support.seccomp}")
        for reason in jail.missing:
            _warn_once(reason)
        return jail

    def _make_cgroup(self, root: Path) -> None:
        from plughost.runtimes.process.launch import file_name

        path = root / f"{file_name(self.plugin_id)}.{os.getpid()}.{next(_SEQ)}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(self.plan.processes))
            self._procs_fd = os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            self.missing.append(f"no process limit: cannot set up {path}: {exc.strerror}")
            with contextlib.suppress(OSError):
                path.rmdir()
            return
        self.cgroup = path

    def _make_ruleset(self, abi: int) -> None:
        self._ruleset_fd = _ruleset(abi, self._rules())
        self._abi = abi
        self.landlock = True

    def _rules(self) -> list[tuple[str, int]]:
        rules = list(self.plan.rules)
        if self.tmpdir is not None:
            rules.append((self.tmpdir, WRITE))
        return rules

    def _close_ruleset(self) -> None:
        if self._ruleset_fd >= 0:
            os.close(self._ruleset_fd)
            self._ruleset_fd = -1

    # -- in the child, between fork and exec --------------------------------------------------
    def enter_cgroup(self) -> None:
        """Move this (forked) process into the plugin's cgroup, if it may start processes:
        then it must be inside before its first instruction. (Moving a process costs the kernel
        an RCU grace period, ~10 ms here; a plugin that cannot fork is moved by :meth:`attach`
        while it starts, and without stalling the host's event loop.)"""
        if self._procs_fd >= 0 and not self._attach_late:
            os.write(self._procs_fd, str(os.getpid()).encode())

    def preexec(self) -> None:
        """Restrict the filesystem and process creation (last, just before ``exec``)."""
        try:
            _restrict(self._ruleset_fd, self._seccomp)
        except OSError:
            os._exit(126)

    def spec(self) -> dict[str, Any]:
        """What :func:`confine_self` needs to apply this jail inside an already running runner
        (a warm spare): the process is moved into the cgroup by :meth:`adopt`."""
        return {
            "landlock_abi": self._abi if self.landlock else 0,
            "rules": [[p, r] for p, r in self._rules()],
            "spawn": self._seccomp is None,
            "tmpdir": self.tmpdir,
        }

    def attach(self, pid: int | None) -> asyncio.Future[None]:
        """Move the started process into the cgroup, in a worker thread (see
        :meth:`enter_cgroup`); await it before :meth:`started`."""
        loop = asyncio.get_running_loop()
        if self._procs_fd < 0 or pid is None or not self._attach_late:
            done: asyncio.Future[None] = loop.create_future()
            done.set_result(None)  # nothing to move, or moved between fork and exec
            return done
        return loop.run_in_executor(None, self._move, pid)

    def _move(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it died already: nothing to count
            os.write(self._procs_fd, str(pid).encode())

    def adopt(self, pid: int | None) -> None:
        """Take a warm spare (and its threads): it waits in a cgroup of its own, which becomes
        the plugin's; any other running process is moved in."""
        spare = _SPARES.pop(pid, None) if pid is not None else None
        if spare is not None and spare.cgroup is not None and self.cgroup is not None:
            with contextlib.suppress(OSError):
                (spare.cgroup / "pids.max").write_text(str(self.plan.processes))
                if self._procs_fd >= 0:
                    os.close(self._procs_fd)
                    self._procs_fd = -1
                self.cgroup.rmdir()
                self.cgroup, spare.cgroup = spare.cgroup, None
                return
        if self._procs_fd >= 0 and pid is not None:
            self._move(pid)

    @classmethod
    def for_spare(cls) -> Jail:
        """A cgroup for a warm spare to wait in: moving a process between cgroups is slow, so
        the spare is moved ahead of time and its plugin takes the cgroup over (:meth:`adopt`).
        Landlock and seccomp it applies to itself once it knows its plugin."""
        jail = cls("spare", Plan(spawn=False), _is_spare=True)
        root = kernel_support().cgroup_root
        if root is not None:
            jail._make_cgroup(root)
            jail._attach_late = True  # runs only the runner's own code until it is assigned
        return jail

    # -- in the host, after the start -----------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment the child needs: its private temporary directory."""
        return {"TMPDIR": self.tmpdir} if self.tmpdir is not None else {}

    def started(self, session: Any) -> Jail:
        """The process is running: close what only the child needed."""
        self.session = session
        self._close_ruleset()
        if self._procs_fd >= 0:
            os.close(self._procs_fd)
            self._procs_fd = -1
        if self._is_spare and session.pid is not None and self.cgroup is not None:
            _SPARES[session.pid] = self
            self._unassigned = asyncio.get_running_loop().create_task(self._drop_if_unused())
        return self

    async def _drop_if_unused(self) -> None:
        """A spare that ends without a plugin takes its cgroup with it."""
        await asyncio.shield(self.session.ended)
        if _SPARES.get(self.session.pid) is self:
            del _SPARES[self.session.pid]
            await self.release()

    @property
    def label(self) -> str:
        """``cgroup+landlock+seccomp`` (what applies), then ``; `` and what is missing."""
        parts = []
        if self.cgroup is not None:
            parts.append("cgroup")
        if self.landlock:
            parts.append("landlock")
        if self._seccomp is not None:
            parts.append("seccomp")
        if not parts:
            return "none: " + ("; ".join(self.missing) or "not on Linux")
        return "; ".join(["+".join(parts), *self.missing])

    def processes(self) -> int | None:
        """Tasks (processes and threads) now in the plugin's cgroup."""
        if self.cgroup is None:
            return None
        try:
            return int((self.cgroup / "pids.current").read_text())
        except (OSError, ValueError):
            return None

    async def release(self, timeout: float = 5.0) -> None:
        """Kill whatever is left of the plugin, then remove its cgroup and temporary files."""
        self._close_ruleset()
        if self._procs_fd >= 0:
            os.close(self._procs_fd)
            self._procs_fd = -1
        if self.cgroup is not None:
            await self._empty_cgroup(timeout)
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    async def _empty_cgroup(self, timeout: float) -> None:
        assert self.cgroup is not None
        path, self.cgroup = self.cgroup, None
        loop = asyncio.get_running_loop()
        left = await loop.run_in_executor(None, _kill_cgroup, path, time.monotonic() + timeout)
        if left:
            logger.warning(
                "processes of plugin %s still in %s after %gs: %s",
                self.plugin_id, path, timeout, left,
            )
