"""Watching plugin folders and keeping the builds a hot reload runs from.

Two pieces the host's hot reload (:meth:`plughost.host.PluginHost.reload`) is built on:

* :class:`BuildStore` — every version of a watched plugin folder that the host loads is first
  copied to ``<builds>/<plugin id>/<sha256 of its files>/`` (content-addressed: the same files
  are the same build), and the host loads *that copy*. Saving a file in the folder therefore
  never changes the code that is running, so a broken save can be rolled back to the last good
  build, whose files are intact. The last ``keep`` good builds are kept (``history.json`` lists
  them, newest first) and ``plughost rollback`` / :meth:`PluginHost.rollback_build` reach them;
  older ones are deleted.
* :class:`FolderWatcher` — ``watchfiles`` on the plugin folders: a burst of saves is debounced
  (nothing changed for ``debounce`` seconds, default 0.2) into one batch of changed plugin
  roots.

Stdlib only except ``watchfiles`` (the ``config`` extra), imported when a watcher starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from plughost.errors import ExtraNotInstalled, ReloadError

__all__ = ["IGNORED", "Build", "BuildStore", "FolderWatcher", "content_digest", "plugin_root_of"]

logger = logging.getLogger(__name__)

#: Names never part of a build (caches, VCS data, editor droppings). ``node_modules`` is not
#: copied but linked: a Node plugin's dependencies change with ``npm ci``, not with a save.
IGNORED: Final = frozenset({"__pycache__", ".git", ".hg", ".svn", ".pytest_cache", ".mypy_cache",
                            ".ruff_cache", ".DS_Store", "node_modules", ".venv"})
_LINKED: Final = frozenset({"node_modules"})
_MANIFESTS: Final = ("plugin.toml", "manifest.json")
_SUFFIXES_IGNORED: Final = (".pyc", ".pyo", ".swp", ".swx", "~", ".tmp")


def _files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED)
        for name in sorted(filenames):
            if name in IGNORED or name.endswith(_SUFFIXES_IGNORED) or name.startswith(".#"):
                continue
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                out.append(path)
    return out


def content_digest(folder: Path) -> str:
    """SHA-256 over every file of a plugin folder (relative path and bytes), ignoring
    :data:`IGNORED`; the same files give the same digest wherever the folder is."""
    h = hashlib.sha256()
    for path in _files(folder):
        rel = path.relative_to(folder).as_posix().encode()
        data = path.read_bytes()
        h.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def plugin_root_of(path: Path, folders: Iterable[Path]) -> Path | None:
    """The plugin folder (the nearest ancestor with a manifest, inside one of ``folders``)
    that ``path`` belongs to, or ``None``."""
    bases = [f.resolve() for f in folders]
    current = path.resolve()
    candidates = [current, *current.parents]
    for candidate in candidates:
        if not any(candidate == b or b in candidate.parents for b in bases):
            return None
        if any((candidate / m).is_file() for m in _MANIFESTS):
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class Build:
    """One content-addressed copy of a plugin folder."""

    plugin_id: str
    digest: str
    path: Path
    version: str = ""
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"plugin_id": self.plugin_id, "digest": self.digest, "path": str(self.path),
                "version": self.version,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))}


class BuildStore:
    """Content-addressed builds of plugin folders, the last ``keep`` good ones kept.

    :param root: where builds live (``<home>/builds``, or a private temporary directory that
        :meth:`close` removes when ``root`` is ``None``).
    """

    def __init__(self, root: Path | None = None, *, keep: int = 5) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._temporary = root is None
        self.root = Path(tempfile.mkdtemp(prefix="plughost-builds-")) if root is None else root
        self.keep = keep

    def snapshot(self, plugin_id: str, folder: Path) -> Build:
        """Copy ``folder`` to its build directory (nothing to do when that build exists)."""
        digest = content_digest(folder)
        dest = self.root / plugin_id / digest
        if dest.is_dir():
            return Build(plugin_id, digest, dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=dest.parent))
        try:
            for path in _files(folder):
                target = staging / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            for name in _LINKED:
                source = folder / name
                if source.is_dir():
                    (staging / name).symlink_to(source.resolve(), target_is_directory=True)
            if content_digest(staging) != digest:  # the folder changed while it was copied
                raise ReloadError(
                    f"the files of {plugin_id} changed while they were being copied; the "
                    "reload is retried", plugin_id=plugin_id, code="reload.busy")
            try:
                staging.rename(dest)
            except OSError:
                if not dest.is_dir():
                    raise
                shutil.rmtree(staging, ignore_errors=True)  # another snapshot won the race
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Build(plugin_id, digest, dest)

    def _history_file(self, plugin_id: str) -> Path:
        return self.root / plugin_id / "history.json"

    def history(self, plugin_id: str) -> list[Build]:
        """The good builds kept, newest first."""
        try:
            entries = json.loads(self._history_file(plugin_id).read_text())
        except (OSError, ValueError):
            return []
        return [Build(plugin_id, e["digest"], self.root / plugin_id / e["digest"],
                      e.get("version", ""), float(e.get("at", 0)))
                for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)
                and (self.root / plugin_id / e["digest"]).is_dir()]

    def mark_good(self, build: Build, version: str) -> list[str]:
        """Record ``build`` as the newest good build; delete builds beyond ``keep`` (and any
        other build directory of the plugin that is not kept). Returns the deleted digests."""
        kept = [b for b in self.history(build.plugin_id) if b.digest != build.digest]
        kept.insert(0, Build(build.plugin_id, build.digest, build.path, version, time.time()))
        kept = kept[: self.keep]
        path = self._history_file(build.plugin_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"digest": b.digest, "version": b.version, "at": b.at}
                                   for b in kept]))
        os.replace(tmp, path)
        return self.prune(build.plugin_id, keep={b.digest for b in kept})

    def prune(self, plugin_id: str, *, keep: set[str]) -> list[str]:
        """Delete the plugin's build directories not in ``keep`` (failed builds included)."""
        removed: list[str] = []
        folder = self.root / plugin_id
        if not folder.is_dir():
            return removed
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed

    def find(self, plugin_id: str, ref: str | None) -> Build:
        """A kept good build by digest prefix or version (``None``: the one before the
        newest)."""
        history = self.history(plugin_id)
        if ref is None:
            if len(history) < 2:
                raise ReloadError(
                    f"{plugin_id} has no earlier good build to roll back to (kept: "
                    f"{len(history)})", plugin_id=plugin_id, code="reload.no_build")
            return history[1]
        found = [b for b in history if b.digest.startswith(ref) or b.version == ref]
        if not found:
            listed = ", ".join(f"{b.version} {b.digest[:12]}" for b in history) or "none"
            raise ReloadError(
                f"{plugin_id} has no kept build {ref!r} (kept: {listed})",
                plugin_id=plugin_id, code="reload.no_build")
        return found[0]

    def close(self) -> None:
        """Remove a temporary store."""
        if self._temporary:
            shutil.rmtree(self.root, ignore_errors=True)


class FolderWatcher:
    """Watch plugin folders; call ``on_change(roots)`` once per debounced burst of saves.

    :param folders: folders holding plugin folders (or plugin folders themselves).
    :param on_change: awaited with the set of plugin roots whose files changed.
    :param debounce: seconds without a change that end a burst.
    """

    def __init__(self, folders: Iterable[Path], on_change: Callable[[set[Path]], Awaitable[None]],
                 *, debounce: float = 0.2) -> None:
        self.folders = [Path(f) for f in folders]
        self.on_change = on_change
        self.debounce = debounce
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start watching (returns once the watcher is running)."""
        try:
            import watchfiles
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ExtraNotInstalled("Watching plugin folders", "config", "watchfiles") from exc
        self._task = asyncio.get_running_loop().create_task(self._run(watchfiles),
                                                            name="plughost watch")
        await self._ready.wait()

    async def _run(self, watchfiles: Any) -> None:
        # watchfiles yields a batch once ``step`` ms pass without a new change; the rest of
        # the quiet period is waited here, so a burst ends ``debounce`` after its last save.
        step = max(1, min(50, int(self.debounce * 1000)))
        folders = [f for f in self.folders if f.exists()]
        if not folders:
            self._ready.set()
            return
        batches: asyncio.Queue[set[Path]] = asyncio.Queue()
        debouncer = asyncio.get_running_loop().create_task(self._debounce(batches, step / 1000))
        changes = watchfiles.awatch(*folders, step=step, debounce=max(step * 40, 2000),
                                    stop_event=self._stop, yield_on_timeout=True,
                                    rust_timeout=200)
        try:
            async for batch in changes:
                self._ready.set()
                roots: set[Path] = set()
                for _, name in batch:
                    root = plugin_root_of(Path(name), self.folders)
                    if root is not None:
                        roots.add(root)
                if roots:
                    batches.put_nowait(roots)
        finally:
            self._ready.set()
            debouncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await debouncer

    async def _debounce(self, batches: asyncio.Queue[set[Path]], step: float) -> None:
        quiet = max(0.0, self.debounce - step)
        while True:
            roots = await batches.get()
            while True:
                try:
                    roots |= await asyncio.wait_for(batches.get(), quiet)
                except TimeoutError:
                    break
            try:
                await self.on_change(roots)
            except Exception:
                logger.exception("handling changes in %s failed", sorted(map(str, roots)))

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
            self._task = None
