"""The server running on a home: ``plughost serve`` advertises itself there, local commands
find it and go through it instead of acting as the host.

Once it listens, every ``plughost serve`` writes ``<home>/run/server-<pid>.json``::

    {"url": "http://127.0.0.1:8080", "pid": 4242, "node": "3f2a...", "home": "/srv/plughost",
     "started_at": "2026-12-03T21:00:00Z", "token": "phl_..."}

``token`` is a secret made at each start that the server accepts as admin (actor
``token:local-cli``): whoever can read the file may manage this server, exactly as whoever can
write the home may change its database. So the file is written atomically (a temporary file
renamed over it) with mode 0600 in a ``run`` directory of mode 0700, and removed when the
server stops cleanly.

A reader trusts nothing it did not check: it ignores, and says why, a ``run`` directory or a
file that is a symbolic link, not a plain file or directory, owned by another user, or
readable or writable by others; a file whose process is gone (removed: a server that was
killed) or whose URL does not answer. Several servers on one home (one database) each write
their own file; local commands use the one that has run longest among those that answer, and
the others apply its changes from the shared database (within their refresh interval).

Standard library only: every local command reads this.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plughost._proc import pid_alive

__all__ = ["LOCAL_PRINCIPAL", "HomeServer", "UnsafeServerFile", "advertise", "find", "new_token",
           "withdraw"]

RUN_DIR = "run"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_MAX_SIZE = 64 * 1024


class UnsafeServerFile(Exception):
    """A server file (or its directory) that must not be trusted; the message says why."""


@dataclass(frozen=True, slots=True)
class HomeServer:
    """A server advertised in a home, as read from its file."""

    url: str
    pid: int
    token: str
    node: str
    started_at: str
    path: Path


def new_token() -> str:
    """A fresh local admin secret (256 bits)."""
    import secrets  # only the server needs it: not imported by every local command

    return "phl_" + secrets.token_urlsafe(32)


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _check_owner(st: os.stat_result, what: Path, private: int) -> None:
    uid = _uid()
    if uid is not None and st.st_uid != uid:
        raise UnsafeServerFile(f"{what} belongs to another user (uid {st.st_uid}, not {uid})")
    if uid is not None and st.st_mode & private:
        raise UnsafeServerFile(
            f"{what} has mode {stat.S_IMODE(st.st_mode):04o}; only its owner may "
            f"{'read or write it (0600)' if private == 0o077 else 'write to it (0700)'}")


def _run_dir(home: Path, *, create: bool) -> Path:
    """``<home>/run``, checked: a directory (not a link) of this user that others cannot write.
    :raises FileNotFoundError: absent and not ``create``. :raises UnsafeServerFile:"""
    run = home / RUN_DIR
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(run, 0o700)
    st = os.lstat(run)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeServerFile(f"{run} is a symbolic link; remove it (the server makes the "
                               "directory itself)")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeServerFile(f"{run} is not a directory")
    _check_owner(st, run, 0o022)
    return run


def advertise(home: Path, *, url: str, node: str, token: str, started_at: str) -> HomeServer:
    """Write this process's server file in ``home`` (atomically, mode 0600).
    :raises UnsafeServerFile: the ``run`` directory cannot be trusted. :raises OSError:"""
    import secrets

    run = _run_dir(home, create=True)
    pid = os.getpid()
    path = run / f"server-{pid}.json"
    data = {"url": url, "pid": pid, "node": node, "home": str(home),
            "started_at": started_at, "token": token}
    temporary = run / f".server-{pid}-{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)  # a rename replaces a link planted at path, never follows it
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return HomeServer(url, pid, token, node, started_at, path)


def withdraw(server: HomeServer) -> None:
    """Remove ``server``'s file if it is still the one this server wrote."""
    try:
        if _read(server.path).token == server.token:
            server.path.unlink()
    except (OSError, UnsafeServerFile, ValueError):
        pass


def _read(path: Path) -> HomeServer:
    """One server file, checked (see the module doc).
    :raises UnsafeServerFile: :raises ValueError: not a server file. :raises OSError:"""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeServerFile(f"{path} is a symbolic link") from None
        raise exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeServerFile(f"{path} is not a plain file")
        _check_owner(st, path, 0o077)
        raw = fh.read(_MAX_SIZE + 1)
    if len(raw) > _MAX_SIZE:
        raise ValueError(f"{path} is larger than a server file")
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a server file")
    url, pid, token = data.get("url"), data.get("pid"), data.get("token")
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))
            and isinstance(pid, int) and pid > 0 and isinstance(token, str) and token):
        raise ValueError(f"{path} lacks a url, pid or token")
    return HomeServer(url.rstrip("/"), pid, token, str(data.get("node") or ""),
                      str(data.get("started_at") or ""), path)


LOCAL_PRINCIPAL = "local-cli"
"""The name the server gives a caller with its local token (audit actor ``token:local-cli``)."""


def _answers(server: HomeServer, timeout: float) -> bool:
    """Whether the server that wrote the file answers at its URL: it must know the file's
    token (a process that took over the port after a crash does not)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{server.url}/api/v1/whoami", headers={
        "Authorization": f"Bearer {server.token}", "User-Agent": "plughost-cli"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(json.loads(response.read(_MAX_SIZE)).get("name") == LOCAL_PRINCIPAL)
    except (OSError, ValueError, AttributeError):  # urllib's HTTPError is an OSError
        return False


def find(home: Path, note: Callable[[str], None], *, timeout: float = 2.0) -> HomeServer | None:
    """The live server advertised in ``home`` (the longest running one), or ``None``. Every
    file ignored is reported through ``note`` with the reason; a file whose process is gone is
    removed."""
    try:
        run = _run_dir(home, create=False)
    except FileNotFoundError:
        return None
    except UnsafeServerFile as exc:
        note(f"ignoring the server files in {home / RUN_DIR}: {exc}")
        return None
    except OSError as exc:
        note(f"cannot read {home / RUN_DIR}: {exc}")
        return None
    candidates: list[HomeServer] = []
    for path in sorted(run.glob("server-*.json")):
        try:
            server = _read(path)
        except UnsafeServerFile as exc:
            note(f"ignoring a server file that cannot be trusted: {exc}")
            continue
        except (OSError, ValueError) as exc:
            note(f"ignoring {path}: not a readable server file ({exc})")
            continue
        if not pid_alive(server.pid):
            note(f"ignoring a stale server file {path}: process {server.pid} is not running "
                 "(the server did not stop cleanly); removed it")
            path.unlink(missing_ok=True)
            continue
        candidates.append(server)
    for server in sorted(candidates, key=lambda s: (s.started_at, s.pid)):
        if _answers(server, timeout):
            return server
        note(f"ignoring the server file {server.path}: no server that wrote it answers at "
             f"{server.url} (process {server.pid})")
    return None
