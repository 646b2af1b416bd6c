"""How a process plugin is started: command line, environment, limits, namespaces.

Everything here runs before the plugin's first instruction: :func:`build_argv` turns the
manifest's ``entry`` into a command line, :func:`child_env` builds a minimal environment, and
:func:`make_preexec` returns the function that runs in the forked child before ``exec`` — it asks
for the parent-death signal, leaves the network namespace when asked, and applies rlimits.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.core.wire import (
    APP_PROTOCOL_VERSION,
    DEFAULT_MAX_FRAME,
    ENV_APP_PROTOCOL,
    ENV_MAX_FRAME,
    ENV_PLUGIN_ID,
    ENV_PROTOCOL,
    ENV_TOKEN,
    PROTOCOL_VERSION,
)
from plughost.errors import PluginLoadError

if TYPE_CHECKING:
    from plughost.core.manifest import Manifest
    from plughost.runtimes.process.confine import Jail

__all__ = [
    "ProcessOptions",
    "build_argv",
    "child_env",
    "declares_network",
    "file_name",
    "is_python_entry",
    "limits_of",
    "make_preexec",
    "network_isolated",
    "pycache_dir",
]

_PY_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """Knobs of the process runtime (defaults suit production).

    :param handshake_timeout: seconds a new process has to send ``$/hello``.
    :param default_timeout: per-call deadline when neither the caller nor the manifest sets one.
    :param cancel_grace: after a deadline, seconds the child has to answer the cancelled
        request before it is considered hung and terminated.
    :param term_grace: SIGTERM → SIGKILL delay.
    :param stop_grace: seconds a child has to exit after ``$/exit`` at close.
    :param max_frame: largest message accepted from the plugin (and announced to it).
    :param output_lines_per_second: stderr lines logged per second before dropping.
    :param python: interpreter for ``module:Class`` entries.
    :param python_flags: flags for it; ``-S`` skips ``site`` (the host's ``sys.path`` is passed in
        ``PYTHONPATH`` instead) which saves most of the interpreter's start-up time.
    :param warm_spare: keep one Python runner started in advance (after the first Python
        plugin loads), so the next Python plugin — or a restart — skips interpreter start-up;
        it applies its plugin's limits to itself before importing any plugin code.
    :param isolate_network: start plugins whose manifest declares no ``net:`` permission in
        an empty network namespace (Linux), so their own sockets reach nothing; HTTP goes
        through ``host.http``, checked per host.
    :param confine: confine each plugin process (pid namespace, pids cgroup, Landlock,
        seccomp: see :mod:`plughost.runtimes.process.confine`); a confined Python plugin starts
        cold, since a warm spare was started before its confinement was known.
    :param data_root: where the host keeps plugins' data directories (``<data_root>/<id>``,
        as ``PluginContext.data_dir``): a plugin is then confined to its data directory from
        its first start; without it, an activation that brings one restarts the process once.
    :param env_passthrough: host environment variables the child inherits; others are not
        passed, so host secrets in the environment do not leak into plugins.
    :param fork_server: start Python plugins by forking them from one pre-imported parent
        (:mod:`plughost.runtimes.process.zygote`) instead of starting an interpreter each: the
        modules every runner imports are shared copy-on-write, and a start costs a fork. Each
        child still gets its own cgroup, limits, Landlock, seccomp, network namespace and
        environment, applied before any plugin code runs; replaces the warm spare.
    :param pycache_root: where Python plugins keep their compiled ``.pyc`` files, one directory
        per plugin (``<pycache_root>/<id>``, ``PYTHONPYCACHEPREFIX``; the host gives
        ``<home>/cache/pyc``). A plugin may write only its own: none can plant bytecode another
        plugin — or the host — would run. Without it children write no ``.pyc`` (never beside
        the package's sources: that would change an installed package).
    """

    handshake_timeout: float = 10.0
    default_timeout: float | None = 30.0
    cancel_grace: float = 1.0
    term_grace: float = 2.0
    stop_grace: float = 2.0
    max_frame: int = DEFAULT_MAX_FRAME
    output_lines_per_second: int = 100
    python: str = sys.executable
    python_flags: tuple[str, ...] = ("-S",)
    warm_spare: bool = True
    isolate_network: bool = True
    confine: bool = True
    data_root: Path | None = None
    env_passthrough: tuple[str, ...] = (
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TMPDIR",
        "SYSTEMROOT",
    )
    pycache_root: Path | None = None
    fork_server: bool = False


_LIBC: Any = None
_PR_SET_PDEATHSIG = 1


def _libc() -> Any:
    """libc for ``prctl`` (Linux only), loaded once, in the parent — never in ``preexec_fn``."""
    global _LIBC
    if _LIBC is None and sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        with contextlib.suppress(OSError):
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _LIBC


def _rlimits(limits: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    import resource

    out: list[tuple[int, int, int]] = []
    if limits.get("memory") is not None:
        out.append((resource.RLIMIT_AS, int(limits["memory"]), int(limits["memory"])))
    if limits.get("cpu") is not None:
        soft = max(1, math.ceil(float(limits["cpu"])))
        out.append((resource.RLIMIT_CPU, soft, soft + 1))  # SIGXCPU first, SIGKILL 1 s later
    if limits.get("open_files") is not None:
        n = int(limits["open_files"])
        out.append((resource.RLIMIT_NOFILE, n, n))
    return out


_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


def make_preexec(
    limits: Mapping[str, Any], *, isolate_network: bool, jail: Jail | None = None
) -> Callable[[], None]:
    """Runs in the forked child before exec: die with the parent, leave the host's network
    namespace if asked, apply rlimits, then the jail's
    cgroup, Landlock and seccomp steps (:meth:`Jail.preexec`)."""
    import resource
    import signal

    parent = os.getpid()
    rl = _rlimits(limits)
    libc = _libc()
    kill = int(signal.SIGKILL)
    flags = _CLONE_NEWNET if isolate_network else 0

    def preexec() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        if jail is not None:
            jail.enter_cgroup()  # first: from a user namespace (below) it could not
        if flags and libc is not None and libc.unshare(flags) != 0:
            # Without CAP_SYS_ADMIN an unprivileged user namespace may still allow it; if not,
            # the runtime notices after start (network_isolated() is False) and says so.
            libc.unshare(_CLONE_NEWUSER | flags)
        for res, soft, hard in rl:
            resource.setrlimit(res, (soft, hard))
        if jail is not None:
            jail.preexec()

    return preexec


def network_isolated(pid: int) -> bool:
    """Whether process ``pid`` lives in a network namespace other than ours (Linux)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    except OSError:
        return False


def declares_network(manifest: Any) -> bool:
    """Whether the manifest asks for any ``net:`` permission (then sockets are left alone)."""
    perms = getattr(manifest, "permissions", ()) or ()
    return any(p == "net" or p.startswith("net:") for p in perms)


def limits_of(manifest: Manifest) -> dict[str, Any]:
    """The manifest's limits as a plain dict of the ones that are set."""
    lim = getattr(manifest, "limits", None)
    if lim is None:
        return {}
    if isinstance(lim, Mapping):
        return {k: v for k, v in lim.items() if v is not None}
    names = ("timeout", "memory", "cpu", "fuel", "open_files", "output", "processes")
    return {n: getattr(lim, n) for n in names if getattr(lim, n, None) is not None}


def is_python_entry(entry: str) -> bool:
    """Whether ``entry`` names a Python plugin (``module:Class``), run by plughost's runner."""
    return _PY_ENTRY.match(entry.strip()) is not None


def file_name(plugin_id: str) -> str:
    """``plugin_id`` as one safe file name (no separator, no leading dot)."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in plugin_id).lstrip(".")
    return safe or "_"


def pycache_dir(options: ProcessOptions, plugin_id: str) -> Path | None:
    """The plugin's own ``.pyc`` directory (created), or ``None`` when there is no cache."""
    if options.pycache_root is None or not plugin_id:
        return None
    path = Path(options.pycache_root) / file_name(plugin_id)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def child_env(
    options: ProcessOptions, plugin_id: str, token: str, python_child: bool
) -> dict[str, str]:
    """The child's environment: a few passed-through variables plus the protocol's."""
    env = {k: os.environ[k] for k in options.env_passthrough if k in os.environ}
    env.update(
        {
            ENV_PROTOCOL: str(PROTOCOL_VERSION),
            ENV_APP_PROTOCOL: str(APP_PROTOCOL_VERSION),
            ENV_PLUGIN_ID: plugin_id,
            ENV_TOKEN: token,
            ENV_MAX_FRAME: str(options.max_frame),
        }
    )
    if python_child:
        # -S skipped site: hand over the host's resolved path instead (this is what makes
        # plughost and the plugin's dependencies importable in the child).
        env["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(p) for p in sys.path if p and os.path.isdir(p)
        )
        cache = pycache_dir(options, plugin_id)
        if cache is None:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def build_argv(entry: str, root: Path, options: ProcessOptions) -> tuple[list[str], bool]:
    """The command line for ``entry``; the flag says whether it is the Python child runner."""
    if is_python_entry(entry):
        # ``-c`` rather than ``-m``: runpy would cost the child ~10 ms of imports.
        launcher = (
            f"from plughost.sdk.child import main; raise SystemExit(main([{entry.strip()!r}]))"
        )
        return [options.python, *options.python_flags, "-c", launcher], True
    try:
        argv = shlex.split(entry)
    except ValueError as exc:
        raise PluginLoadError(f"entry {entry!r} is not a valid command line: {exc}") from None
    if not argv:
        raise PluginLoadError("entry is empty; give a command line such as 'node main.js'")
    prog = argv[0]
    if prog in ("python", "python3"):
        argv[0] = options.python  # the host's interpreter, not whatever is first on PATH
    elif "/" in prog:
        path = (root / prog).resolve()
        if not path.exists():
            raise PluginLoadError(f"entry program {prog!r} not found in {root}")
        argv[0] = str(path)
    else:
        found = shutil.which(prog)
        if found is None:
            raise PluginLoadError(
                f"entry program {prog!r} is not installed (not found on PATH); install it or "
                "change the manifest's entry"
            )
        argv[0] = found
    return argv, False
