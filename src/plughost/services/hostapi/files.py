"""``ctx.files``: file access inside granted directories, plus a private data directory.

Every path is resolved (symlinks and ``..``) and checked against the plugin's grants, which
names the granted directory that allows it. The operation then opens *that directory* and
reaches the path beneath it through directory descriptors without following any symlink
(:mod:`plughost.security.beneath`: ``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``,
or an ``O_NOFOLLOW`` walk). So the check and the use are one operation: a directory swapped for
a symlink between them (a rename loop) makes the operation fail — refused and audited — and
never reach a file outside the grant. Writes create their parents, a temporary file and the
final rename relative to the same descriptors.

Relative paths are relative to the plugin's data directory, which is granted for reading and
writing automatically (see :func:`plughost.services.hostapi.implicit_scopes`) and created on
the first write, so a plugin that never writes leaves no directory behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat as stat_module
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from plughost.errors import ExtraNotInstalled, OperationRefused
from plughost.security import beneath
from plughost.security.permissions import PermissionManager

__all__ = ["FileInfo", "FileService"]

_T = TypeVar("_T")
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block the host


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What :meth:`FileService.stat` returns.

    :ivar path: the resolved absolute path.
    :ivar size: bytes.
    :ivar is_dir: a directory.
    :ivar is_file: a regular file.
    :ivar modified: mtime, epoch seconds.
    :ivar mode: permission bits.
    """

    path: str
    size: int
    is_dir: bool
    is_file: bool
    modified: float
    mode: int


@dataclass(frozen=True, slots=True)
class _Target:
    """A checked path: the granted directory that allows it and the path relative to it."""

    real: str
    root: str
    rel: str  # normalised, "." for the root itself

    @property
    def parent(self) -> str:
        head = os.path.dirname(self.rel)
        return head or "."

    @property
    def name(self) -> str:
        return os.path.basename(self.rel)


class FileService:
    """File operations for one plugin, each checked against its ``fs:read`` / ``fs:write`` grants.

    :param plugin_id: the plugin.
    :param permissions: the permission manager that checks and audits.
    :param data_dir: the plugin's private directory (created on the first write).
    """

    def __init__(
        self, plugin_id: str, permissions: PermissionManager, data_dir: str | Path
    ) -> None:
        self.plugin_id = plugin_id
        self._perms = permissions
        self.data_dir = Path(os.path.realpath(data_dir))

    # ---- the one way to a path: resolve, check, open the grant, walk beneath it

    def _target(self, path: str | os.PathLike[str], kind: str) -> _Target:
        raw = os.fspath(path)
        if "\x00" in raw:
            raise OperationRefused(f"path {raw!r} contains a NUL byte", plugin_id=self.plugin_id)
        try:
            os.fsencode(raw)
        except UnicodeEncodeError:
            raise OperationRefused(
                f"path {raw[:200]!r} is not valid text (an unpaired surrogate); name the file "
                "with a proper Unicode string", plugin_id=self.plugin_id,
            ) from None
        full = raw if os.path.isabs(raw) else os.path.join(self.data_dir, raw)
        try:
            real = os.path.realpath(full)
        except OSError:  # a component changed between lstat and readlink: a swap under way
            self._perms.deny(self.plugin_id, kind, os.path.normpath(full),
                             "the path changed while it was being resolved", severity="error")
            raise  # unreachable: deny() raises
        root = self._perms.check_path(self.plugin_id, kind, real)
        rel = os.path.relpath(real, root)
        return _Target(real, root, rel)

    @contextlib.contextmanager
    def _root(self, target: _Target, kind: str) -> Iterator[int]:
        """The granted directory's descriptor; the data directory is made on the first write."""
        if kind == "fs:write" and target.root == str(self.data_dir):
            self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._guard(target, kind):
            fd = beneath.open_root(target.root)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _guard(self, target: _Target, kind: str) -> Iterator[None]:
        """Turn "a symlink was in the way" into an audited denial (the path changed between
        resolving and opening it: a swap is being attempted, or a grant's directory moved)."""
        try:
            yield
        except OSError as exc:
            if not beneath.is_link_error(exc) or (
                exc.errno == getattr(os, "ENOTDIR", None) and not self._was_link(target)
            ):
                raise
            self._perms.deny(
                self.plugin_id,
                kind,
                target.real,
                "a symbolic link appeared in the path while it was being opened; nothing "
                "outside the grant was touched",
                severity="error",
            )

    @staticmethod
    def _was_link(target: _Target) -> bool:
        # ENOTDIR is also the honest answer to "a/b" where a is a regular file: report that
        # as-is, and only a link (or a path that changed under us) as a denial.
        probe = target.root
        for part in beneath.split(target.rel):
            probe = os.path.join(probe, part)
            try:
                mode = os.lstat(probe).st_mode
            except OSError:
                return True
            if stat_module.S_ISLNK(mode):
                return True
            if not stat_module.S_ISDIR(mode):
                return False
        return True

    def _open(self, path: str | os.PathLike[str], kind: str, flags: int,
              use: Callable[[int, _Target], _T]) -> _T:
        target = self._target(path, kind)
        with self._root(target, kind) as root, self._guard(target, kind):
            fd = beneath.open_beneath(root, target.rel, flags)
            try:
                return use(fd, target)
            finally:
                os.close(fd)

    def _in_parent(self, path: str | os.PathLike[str], *, create: bool,
                   use: Callable[[int, _Target], _T]) -> _T:
        """Run ``use(parent_fd, target)`` for a write: the parent directory opened beneath the
        grant (created first if ``create``), the last component then used relative to it."""
        target = self._target(path, "fs:write")
        if target.rel == ".":
            raise OperationRefused(
                f"{target.real} is a granted directory itself; name a path inside it",
                plugin_id=self.plugin_id,
            )
        with self._root(target, "fs:write") as root, self._guard(target, "fs:write"):
            if create:
                parent = beneath.make_dirs_beneath(root, target.parent)
            else:
                parent = beneath.open_beneath(root, target.parent, beneath.O_PATH | os.O_DIRECTORY)
            try:
                return use(parent, target)
            finally:
                os.close(parent)

    # ---- reading

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """The file's content (a regular file)."""

        def read(fd: int, target: _Target) -> bytes:
            if not stat_module.S_ISREG(os.fstat(fd).st_mode):
                raise OperationRefused(
                    f"{target.real} is not a regular file", plugin_id=self.plugin_id
                )
            os.set_blocking(fd, True)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)

        return self._open(path, "fs:read", _READ_FLAGS, read)

    def read_text(self, path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
        """The file's content, decoded."""
        data = self.read_bytes(path)
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise OperationRefused(
                f"{os.fspath(path)!s} is not {encoding} text ({exc}); read it as bytes",
                plugin_id=self.plugin_id,
            ) from None

    def list(self, path: str | os.PathLike[str] = ".") -> list[str]:
        """Names in a directory, sorted."""
        flags = os.O_RDONLY | os.O_DIRECTORY
        try:
            return self._open(path, "fs:read", flags, lambda fd, _t: sorted(os.listdir(fd)))
        except FileNotFoundError:
            if os.fspath(path) in (".", "") and not self.data_dir.exists():
                return []  # the data directory is made on the first write: empty until then
            raise

    def stat(self, path: str | os.PathLike[str]) -> FileInfo:
        """Size, type, mtime and mode of a path."""

        def info(fd: int, target: _Target) -> FileInfo:
            st = os.fstat(fd)
            return FileInfo(
                target.real,
                st.st_size,
                stat_module.S_ISDIR(st.st_mode),
                stat_module.S_ISREG(st.st_mode),
                st.st_mtime,
                stat_module.S_IMODE(st.st_mode),
            )

        return self._open(path, "fs:read", beneath.O_PATH, info)

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """Whether the path exists (needs read permission on it)."""
        try:
            return self._open(path, "fs:read", beneath.O_PATH, lambda _fd, _t: True)
        except (FileNotFoundError, NotADirectoryError):
            return False

    # ---- writing

    def write_bytes(self, path: str | os.PathLike[str], data: bytes) -> int:
        """Replace the file's content atomically (temp file, then rename); parents are created."""

        def write(parent: int, target: _Target) -> int:
            tmp = f".plughost-{secrets.token_hex(8)}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            fd = beneath.open_beneath(parent, tmp, flags, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target.name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=parent)
                raise
            return len(data)

        return self._in_parent(path, create=True, use=write)

    def write_text(self, path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> int:
        """Replace the file's content with ``text``, atomically."""
        try:
            data = text.encode(encoding)
        except (UnicodeEncodeError, LookupError) as exc:
            raise OperationRefused(
                f"the text for {os.fspath(path)!s} cannot be written as {encoding} ({exc}); "
                "nothing was written", plugin_id=self.plugin_id,
            ) from None
        return self.write_bytes(path, data)

    def mkdir(self, path: str | os.PathLike[str], *, parents: bool = True) -> None:
        """Create a directory (and its parents); an existing directory is fine."""
        target = self._target(path, "fs:write")
        with self._root(target, "fs:write") as root, self._guard(target, "fs:write"):
            if parents:
                os.close(beneath.make_dirs_beneath(root, target.rel))
                return
            if target.rel == ".":
                return  # the granted directory itself exists
            parent = beneath.open_beneath(root, target.parent, beneath.O_PATH | os.O_DIRECTORY)
            try:
                os.mkdir(target.name, dir_fd=parent)
            except FileExistsError:
                mode = os.stat(target.name, dir_fd=parent, follow_symlinks=False).st_mode
                if not stat_module.S_ISDIR(mode):
                    raise
            finally:
                os.close(parent)

    def remove(self, path: str | os.PathLike[str], *, recursive: bool = False) -> None:
        """Remove a file or an empty directory (any directory with ``recursive=True``)."""
        target = self._target(path, "fs:write")
        if target.real == str(self.data_dir):
            raise OperationRefused(
                "the plugin's data directory itself cannot be removed", plugin_id=self.plugin_id
            )

        def remove(parent: int, target: _Target) -> None:
            mode = os.stat(target.name, dir_fd=parent, follow_symlinks=False).st_mode
            if stat_module.S_ISDIR(mode):
                if recursive:
                    # rmtree with dir_fd walks by descriptors and never follows a link
                    shutil.rmtree(target.name, dir_fd=parent)
                else:
                    os.rmdir(target.name, dir_fd=parent)
            else:
                os.unlink(target.name, dir_fd=parent)

        self._in_parent(path, create=False, use=remove)

    # ---- watching

    async def watch(self, path: str | os.PathLike[str] = ".") -> AsyncIterator[tuple[str, str]]:
        """Yield ``(change, path)`` (``added``/``modified``/``deleted``) for changes below ``path``.

        Only changes to paths the plugin may read are reported.
        """
        try:
            import watchfiles
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ExtraNotInstalled("Watching files", "config", "watchfiles") from exc
        real = self._target(path, "fs:read").real
        async for changes in watchfiles.awatch(real, debounce=50, step=20):
            for change, changed in sorted(changes, key=lambda c: c[1]):
                if self._perms.allowed(self.plugin_id, "fs:read", changed):
                    yield change.name, changed
