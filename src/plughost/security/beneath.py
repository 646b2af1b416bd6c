"""Open paths beneath a directory without following symbolic links: the check and the use as
one operation.

Checking a resolved path and then opening it by name is a race: between the two, a directory
inside a grant can be swapped for a symlink (a rename loop) and the open lands outside. Here the
granted directory is opened once (every component without following links), and the rest of
the path is opened *relative to that descriptor* with no symlink followed anywhere:

* on Linux ≥ 5.6 with one ``openat2(2)`` call and ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
  RESOLVE_NO_MAGICLINKS`` — the kernel refuses any resolution that would leave the directory
  or pass through a link;
* elsewhere (or when a seccomp filter hides ``openat2``) by walking component by component with
  ``openat(dir_fd, name, O_NOFOLLOW | O_DIRECTORY)``.

Either way, a symlink that appears mid-path fails the open with ``ELOOP``/``ENOTDIR``/``EXDEV``
(:func:`is_link_error`), and whatever is opened lies beneath the directory. Relative paths given
here are already normalised (no ``..``, no empty or absolute components); :func:`split` checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import threading
from typing import Any, Final

__all__ = [
    "O_PATH",
    "close_quietly",
    "is_link_error",
    "make_dirs_beneath",
    "open_beneath",
    "open_root",
    "openat2_available",
    "split",
]

#: Open for *where*, not for reading (Linux); plain read-only elsewhere.
O_PATH: Final = getattr(os, "O_PATH", os.O_RDONLY)
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS: Final = O_PATH | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC

# linux/openat2.h
_RESOLVE_NO_MAGICLINKS: Final = 0x02
_RESOLVE_NO_SYMLINKS: Final = 0x04
_RESOLVE_BENEATH: Final = 0x08
_SYS_OPENAT2: Final = 437  # one number on every architecture (the unified syscall table)
_AT_FDCWD: Final = -100

#: errno values meaning "a symlink or a changed directory was in the way".
_LINK_ERRNOS: Final = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EXDEV})


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_state_lock = threading.Lock()
_openat2_ok: bool | None = None  # None: not probed yet
_syscall: Any = None  # libc's syscall(), once probed


def _raw_openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    assert _syscall is not None
    how = _OpenHow(flags, mode, resolve)
    fd = int(_syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how),
                      ctypes.sizeof(how)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return fd


def openat2_available() -> bool:
    """Whether this kernel (and any seccomp filter) lets us call ``openat2``; probed once."""
    global _openat2_ok, _syscall
    if _openat2_ok is not None:
        return _openat2_ok
    with _state_lock:
        if _openat2_ok is None:
            ok = False
            if os.uname().sysname == "Linux":
                try:
                    libc = ctypes.CDLL(None, use_errno=True)
                    fn = libc.syscall
                    fn.restype = ctypes.c_long
                    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                                   ctypes.c_size_t]
                    _syscall = fn
                    fd = _raw_openat2(_AT_FDCWD, "/", _DIR_FLAGS, 0, _RESOLVE_NO_SYMLINKS)
                    os.close(fd)
                    ok = True
                except (OSError, AttributeError):
                    ok = False
            _openat2_ok = ok
    return _openat2_ok


def split(rel: str) -> list[str]:
    """The components of a normalised relative path (``"."`` or ``""`` is no component).

    :raises ValueError: for an absolute path or a ``..``/empty component (a caller bug).
    """
    if rel in ("", "."):
        return []
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a normalised relative path: {rel!r}")
    return parts


def is_link_error(exc: OSError) -> bool:
    """Whether an ``OSError`` from this module means a link (or a swapped directory) was met."""
    return exc.errno in _LINK_ERRNOS


def close_quietly(fd: int) -> None:
    """Close ``fd``, ignoring errors (cleanup paths)."""
    with contextlib.suppress(OSError):
        os.close(fd)


def open_root(path: str) -> int:
    """A directory descriptor (``O_PATH``) for an absolute, already-resolved directory, opened
    without following any symlink on the way (a grant's directory is resolved when granted, so
    a link in it now means something changed)."""
    if not os.path.isabs(path):
        raise ValueError(f"not an absolute path: {path!r}")
    if openat2_available():
        return _raw_openat2(_AT_FDCWD, path, _DIR_FLAGS, 0,
                            _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    top = os.open("/", _DIR_FLAGS)
    try:
        return open_beneath(top, os.path.normpath(path).lstrip("/") or ".", _DIR_FLAGS)
    finally:
        os.close(top)


def open_beneath(dirfd: int, rel: str, flags: int, mode: int = 0o600) -> int:
    """Open ``rel`` beneath ``dirfd`` with ``flags``; no symlink is followed, nothing outside.

    ``O_NOFOLLOW`` and ``O_CLOEXEC`` are always added. With ``O_PATH`` a final symlink is
    refused too (``ELOOP``), as ``openat2`` does.
    """
    parts = split(rel)
    flags |= _O_NOFOLLOW | _O_CLOEXEC
    if openat2_available():
        return _raw_openat2(dirfd, rel or ".", flags, mode if flags & os.O_CREAT else 0,
                            _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    return _walk_open(dirfd, parts, flags, mode)


def _walk_open(dirfd: int, parts: list[str], flags: int, mode: int) -> int:
    cur, owned = dirfd, False
    try:
        for name in parts[:-1]:
            nxt = os.open(name, _DIR_FLAGS, dir_fd=cur)
            if owned:
                os.close(cur)
            cur, owned = nxt, True
        fd = os.open(parts[-1] if parts else ".", flags, mode, dir_fd=cur)
        # O_PATH | O_NOFOLLOW opens a final symlink itself instead of failing: refuse it.
        if O_PATH != os.O_RDONLY and flags & O_PATH and stat.S_ISLNK(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), parts[-1])
        return fd
    finally:
        if owned:
            os.close(cur)


def make_dirs_beneath(dirfd: int, rel: str, mode: int = 0o777) -> int:
    """Create every missing directory of ``rel`` beneath ``dirfd``; return an ``O_PATH``
    descriptor of the last one. An existing link in the way is refused (``ELOOP``/``ENOTDIR``),
    never followed."""
    cur = os.dup(dirfd)
    try:
        for name in split(rel):
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, mode, dir_fd=cur)  # mkdirat never follows a final link
            nxt = open_beneath(cur, name, _DIR_FLAGS)
            os.close(cur)
            cur = nxt
    except BaseException:
        close_quietly(cur)
        raise
    return cur
