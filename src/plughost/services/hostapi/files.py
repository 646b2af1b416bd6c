"""``ctx.files``: file access inside granted directories, plus a private data directory.

Every path is resolved (symlinks and ``..``) *before* it is checked, and the resolved path is the
one opened (with ``O_NOFOLLOW`` on the last component), so a symlink planted inside a granted
directory cannot lead outside it. Relative paths are relative to the plugin's data directory,
which is granted for reading and writing automatically (see
:func:`plughost.services.hostapi.implicit_scopes`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat as stat_module
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from plughost.errors import ExtraNotInstalled, OperationRefused
from plughost.security.permissions import PermissionManager

__all__ = ["FileInfo", "FileService"]


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


class FileService:
    """File operations for one plugin, each checked against its ``fs:read`` / ``fs:write`` grants.

    :param plugin_id: the plugin.
    :param permissions: the permission manager that checks and audits.
    :param data_dir: the plugin's private directory (created if missing).
    """

    def __init__(
        self, plugin_id: str, permissions: PermissionManager, data_dir: str | Path
    ) -> None:
        self.plugin_id = plugin_id
        self._perms = permissions
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(os.path.realpath(data_dir))

    def _resolve(self, path: str | os.PathLike[str], kind: str) -> str:
        raw = os.fspath(path)
        if "\x00" in raw:
            raise OperationRefused(f"path {raw!r} contains a NUL byte", plugin_id=self.plugin_id)
        full = raw if os.path.isabs(raw) else os.path.join(self.data_dir, raw)
        real = os.path.realpath(full)
        self._perms.check(self.plugin_id, kind, real)
        return real

    # ---- reading

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """The file's content."""
        real = self._resolve(path, "fs:read")
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    def read_text(self, path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
        """The file's content, decoded."""
        return self.read_bytes(path).decode(encoding)

    def list(self, path: str | os.PathLike[str] = ".") -> list[str]:
        """Names in a directory, sorted."""
        return sorted(os.listdir(self._resolve(path, "fs:read")))

    def stat(self, path: str | os.PathLike[str]) -> FileInfo:
        """Size, type, mtime and mode of a path."""
        real = self._resolve(path, "fs:read")
        st = os.stat(real)
        return FileInfo(
            real,
            st.st_size,
            stat_module.S_ISDIR(st.st_mode),
            stat_module.S_ISREG(st.st_mode),
            st.st_mtime,
            stat_module.S_IMODE(st.st_mode),
        )

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """Whether the path exists (needs read permission on it)."""
        return os.path.exists(self._resolve(path, "fs:read"))

    # ---- writing

    def write_bytes(self, path: str | os.PathLike[str], data: bytes) -> int:
        """Replace the file's content atomically (temp file, then rename); parents are created."""
        real = self._resolve(path, "fs:write")
        directory = os.path.dirname(real)
        # The parents lie below the checked, resolved path, so creating them stays in the grant.
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".plughost-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, real)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return len(data)

    def write_text(self, path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> int:
        """Replace the file's content with ``text``, atomically."""
        return self.write_bytes(path, text.encode(encoding))

    def mkdir(self, path: str | os.PathLike[str], *, parents: bool = True) -> None:
        """Create a directory (and its parents); an existing directory is fine."""
        real = self._resolve(path, "fs:write")
        if parents:
            os.makedirs(real, exist_ok=True)
        elif not os.path.isdir(real):
            os.mkdir(real)

    def remove(self, path: str | os.PathLike[str], *, recursive: bool = False) -> None:
        """Remove a file or an empty directory (any directory with ``recursive=True``)."""
        real = self._resolve(path, "fs:write")
        if real == str(self.data_dir):
            raise OperationRefused(
                "the plugin's data directory itself cannot be removed", plugin_id=self.plugin_id
            )
        if os.path.isdir(real) and not os.path.islink(real):
            if recursive:
                shutil.rmtree(real)
            else:
                os.rmdir(real)
        else:
            os.unlink(real)

    # ---- watching

    async def watch(self, path: str | os.PathLike[str] = ".") -> AsyncIterator[tuple[str, str]]:
        """Yield ``(change, path)`` (``added``/``modified``/``deleted``) for changes below ``path``.

        Only changes to paths the plugin may read are reported.
        """
        try:
            import watchfiles
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ExtraNotInstalled("Watching files", "config", "watchfiles") from exc
        real = self._resolve(path, "fs:read")
        async for changes in watchfiles.awatch(real, debounce=50, step=20):
            for change, changed in sorted(changes, key=lambda c: c[1]):
                if self._perms.allowed(self.plugin_id, "fs:read", changed):
                    yield change.name, changed
