"""Start-up reconciliation: database, object store and plugin cache brought back in step.

The installer writes files *before* the transaction that refers to them and deletes them *after*
the transaction that forgets them, so after a crash the database is the old state or the new one
and the only damage is files nobody refers to. :func:`reconcile` (run when a PluginService opens)
removes them, and leftover staging directories of dead processes. Rows whose files are missing
(damage from outside) are repaired from the package blob when it is there, and otherwise rolled
back (an old kept version is forgotten) or marked failed (the current version). Operations left
``pending``/``running`` by a dead process are marked ``failed`` with the reason
(``operation.interrupted``), once storage is back in step.

**What it reads.** A start after clean exits costs O(installed) cheap reads: the rows (two
queries), one listing of the plugins in the object store and in the cache, and one ``stat``
per kept version's directory — which finds damage from outside (files of a plugin with no row,
an unpacked version that vanished). Only after an interrupted operation — an owner that died
holding its lease, a staging directory or a temporary file it left — are the object store and
every plugin's cache directory listed (each once) and compared with the rows. Either way only
the plugins found out of step are locked and repaired, and the object store's unreferenced
blobs are collected only then (that reads every reference). A service that runs no plugins
(the CLI beside no server) passes ``outside=False``: with no interrupted operation it reads
nothing per plugin, so a command on one plugin costs the same with 10 or 10,000 installed;
the next start looks for damage from outside.

Nothing a live process owns is touched. Each plugin is reconciled while holding its lock, so an
operation running in another process is never disturbed (its plugin is skipped and listed in
``skipped_busy``). Staging directories and operations carry their owner's id (see
:mod:`plughost.storage.locks`), and are reclaimed only when a non-blocking probe finds that
owner's lease free: ``plughost list`` next to a running server never deletes the server's
staged upload nor fails its running operation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from plughost._proc import pid_alive
from plughost.errors import LockTimeout
from plughost.security.archive import remove_tree
from plughost.services.installer import cache_name
from plughost.storage.objects import FilesystemObjectStore
from plughost.storage.records import StoredVersion
from plughost.storage.recovery import recover_operations

if TYPE_CHECKING:
    from plughost.services.installer import Installer

__all__ = ["ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)

#: ``<owner id>.<token>``: a staging directory of the owner (see Installer.new_workdir).
_STAGING_NAME = re.compile(r"^([0-9a-f]{16})\.[0-9a-f]+$")
#: ``<pid>-<token>``: the name used before staging directories recorded their owner.
_LEGACY_STAGING_NAME = re.compile(r"^(\d+)-[0-9a-f]+$")


@dataclass(slots=True)
class ReconcileReport:
    """What :meth:`Installer.reconcile` found and fixed at start."""

    staging_removed: list[str] = field(default_factory=list)
    cache_removed: list[str] = field(default_factory=list)
    objects_removed: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_busy: list[str] = field(default_factory=list)
    operations_failed: list[str] = field(default_factory=list)
    """Ids of operations left unfinished by a dead process, now marked failed."""
    data_removed: list[str] = field(default_factory=list)
    """Empty ``data/<id>`` directories of plugins that are not installed, removed."""

    @property
    def changed(self) -> bool:
        return any((self.staging_removed, self.cache_removed, self.objects_removed,
                    self.repaired, self.rolled_back, self.failed, self.operations_failed,
                    self.data_removed))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}


def reconcile(installer: Installer, *, full: bool | None = None,
              outside: bool = True) -> ReconcileReport:
    """Reconcile ``installer``'s storage; returns what was found and fixed. ``full=True``
    compares every file with the rows; ``None`` does so only after an interrupted operation
    (see the module doc). ``outside=False``: where no operation was interrupted, look for no
    damage from outside either (which reads every installed plugin's row and directory): a
    command acting on one plugin costs that plugin, and the next start looks."""
    return _Reconciler(installer, full, outside).run()


class _Reconciler:
    def __init__(self, installer: Installer, full: bool | None = None,
                 outside: bool = True) -> None:
        self.installer = installer
        self.full = full
        self.outside = outside
        self.repo = installer.repo
        self.store = installer.store
        self.settings = installer.settings
        self.plugins_cache = installer.plugins_cache

    def run(self) -> ReconcileReport:
        """Bring database, object store and cache back in step after a crash (see module doc).

        Plugins whose lock is held (an operation in progress in another process) are skipped.
        """
        report = ReconcileReport()
        # Owners that died without releasing their lease: evidence of a crash (a clean exit
        # removes its lease), so the object store may hold a blob a write never referenced.
        crashed = bool(self.repo.prune_owners())
        self._sweep_staging(report)
        full = self.full if self.full is not None else (
            crashed or bool(report.staging_removed) or self._temporary_files())
        if not full and not self.outside:
            self._recover_operations(report)
            return report
        expected_keys: dict[str, set[str]] = {}
        expected_dirs: dict[str, set[str]] = {}
        for pid, version, checksum, object_key in self.repo.version_files():
            expected_keys.setdefault(pid, set()).add(object_key)
            expected_dirs.setdefault(pid, set()).add(cache_name(version, checksum))
        installed = set(self.repo.plugin_ids())
        if full:
            dirty, keys = self._compare_everything(installed, expected_keys, expected_dirs)
        else:
            dirty, keys = self._compare_quickly(installed, expected_dirs), {}
        for pid in dirty:
            if pid not in keys:
                keys[pid] = self.store.keys(f"plugins/{pid}/")
        for pid in dirty:
            try:
                with self.installer.locked(pid, timeout=0.5):
                    self._reconcile_one(pid, keys.get(pid, []), report)
            except LockTimeout:
                report.skipped_busy.append(pid)
        self._sweep_empty_data_dirs(report, installed)
        if isinstance(self.store, FilesystemObjectStore) and not report.skipped_busy and (
                full or dirty or report.changed):
            self.store.gc()  # reads every reference: only when something was interrupted
        self._recover_operations(report)
        return report

    def _recover_operations(self, report: ReconcileReport) -> None:
        # Storage is in step again: close the operations whose process died, with the reason.
        for op in recover_operations(self.repo, lambda op: "failed"):
            report.operations_failed.append(op.id)
        if report.changed:
            log.warning("reconciled storage after an interrupted operation: %s",
                        report.to_dict())

    def _temporary_files(self) -> bool:
        return isinstance(self.store, FilesystemObjectStore) and self.store.has_temporary_files()

    def _compare_quickly(self, installed: set[str],
                         expected_dirs: Mapping[str, set[str]]) -> list[str]:
        """No operation was interrupted (no dead owner, no staging or temporary leftover):
        look for damage from outside only: plugins with files but no row (two listings) and
        kept versions whose unpacked directory is gone (one ``stat`` each)."""
        found = set(self.store.children("plugins/"))
        if self.plugins_cache.is_dir():
            found.update(os.listdir(self.plugins_cache))
        dirty = {pid for pid in found if pid not in installed}
        cache = str(self.plugins_cache)  # joined as strings: one stat per version, no Paths
        for pid, names in expected_dirs.items():
            if any(not os.path.isdir(os.path.join(cache, pid, name)) for name in names):
                dirty.add(pid)
        return sorted(dirty)

    def _compare_everything(
        self, installed: set[str], expected_keys: Mapping[str, set[str]],
        expected_dirs: Mapping[str, set[str]],
    ) -> tuple[list[str], dict[str, list[str]]]:
        """After an interrupted operation: read each place once — the object store (one
        listing) and the cache (one listing per plugin) — and return the plugins where they
        disagree with the rows, with their keys."""
        keys: dict[str, list[str]] = {}
        for key in self.store.keys("plugins/"):
            parts = key.split("/")
            if len(parts) >= 2:
                keys.setdefault(parts[1], []).append(key)
        cached: dict[str, set[str]] = {}
        if self.plugins_cache.is_dir():
            for entry in os.scandir(self.plugins_cache):
                if entry.is_dir(follow_symlinks=False):
                    cached[entry.name] = set(os.listdir(entry.path))
        all_keys = {k for found in keys.values() for k in found}
        none: set[str] = set()
        dirty = sorted(pid for pid in installed | set(keys) | set(cached) if
                       pid not in installed
                       or not set(keys.get(pid, ())) <= expected_keys.get(pid, none)
                       or not expected_keys.get(pid, none) <= all_keys
                       or cached.get(pid, none) != expected_dirs.get(pid, none))
        return dirty, keys

    def _sweep_empty_data_dirs(self, report: ReconcileReport, installed: set[str]) -> None:
        """An *empty* ``data/<id>`` of a plugin that is not installed is what an install that
        crashed after activation leaves; remove it. A non-empty one is data an uninstall kept
        (``keep_data``) and stays; a plugin being installed right now holds its lock."""
        data = self.settings.home / "data"
        if not data.is_dir():
            return
        for entry in sorted(data.iterdir()):
            if entry.name in installed or entry.is_symlink() or not entry.is_dir() \
                    or any(entry.iterdir()):
                continue
            try:
                with self.installer.locked(entry.name, timeout=0.5):
                    if self.repo.get_plugin(entry.name) is None:
                        with contextlib.suppress(OSError):  # written meanwhile: keep it
                            entry.rmdir()
                            report.data_removed.append(entry.name)
            except LockTimeout:
                report.skipped_busy.append(entry.name)

    def _sweep_staging(self, report: ReconcileReport) -> None:
        staging = self.settings.staging_dir
        if not staging.is_dir():
            return
        for entry in staging.iterdir():
            if not self._staging_abandoned(entry.name):
                continue
            try:
                remove_tree(entry)
            except FileNotFoundError:
                continue  # another process reclaimed it at the same time
            report.staging_removed.append(entry.name)

    def _staging_abandoned(self, name: str) -> bool:
        """Whether the staging entry ``name`` belongs to no live process."""
        match = _STAGING_NAME.match(name)
        if match is not None:
            return not self.repo.owner_alive(match.group(1))
        legacy = _LEGACY_STAGING_NAME.match(name)
        if legacy is not None:
            pid = int(legacy.group(1))
            return pid != os.getpid() and not pid_alive(pid)
        return not name.startswith(".")  # nothing plughost makes; dot files are not ours

    def _reconcile_one(self, pid: str, stored_keys: list[str], report: ReconcileReport) -> None:
        """``stored_keys``: the object keys under ``plugins/<pid>/`` listed before the lock
        was taken; each is re-checked against the rows read under the lock."""
        plugin = self.repo.get_plugin(pid)
        versions = self.repo.list_versions(pid) if plugin is not None else []
        keys = {v.object_key for v in versions}
        dirs = {self.installer.local_dir(v).name for v in versions}
        for key in stored_keys:
            if key not in keys:
                self.store.delete(key)
                report.objects_removed.append(key)
        root = self.plugins_cache / pid
        if root.is_dir():
            for entry in root.iterdir():
                if entry.name not in dirs:
                    remove_tree(entry)
                    report.cache_removed.append(f"{pid}/{entry.name}")
            if plugin is None:
                with contextlib.suppress(OSError):
                    root.rmdir()
        if plugin is None:
            return
        for v in versions:
            has_dir = self.installer.local_dir(v).is_dir()
            has_blob = self.store.exists(v.object_key)
            if has_dir:
                if not has_blob:
                    log.warning("the package blob of %s %s is missing (%s); the unpacked "
                                "files are intact, reinstall to restore it", pid, v.version,
                                v.object_key)
                continue
            if has_blob:
                self._repair_cache(v)
                report.repaired.append(f"{pid}@{v.version}")
            elif v.version != plugin.version:
                self.repo.delete_version(pid, v.version)
                report.rolled_back.append(f"{pid}@{v.version}")
            else:
                self.repo.set_state(
                    pid, "failed", failure_phase="reconcile",
                    failure_reason=f"the files of version {v.version} are missing (no cache "
                    f"directory, no package blob); reinstall it: `plughost uninstall {pid}` "
                    "then `plughost install SOURCE`")
                report.failed.append(f"{pid}@{v.version}")

    def _repair_cache(self, v: StoredVersion) -> None:
        dest = self.installer.version_dir(v)  # through the package cache tiers
        if not v.cache_path:
            self.repo.set_version_cache_path(v.plugin_id, v.version, str(dest))


