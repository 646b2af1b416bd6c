"""Start-up reconciliation: database, object store and plugin cache brought back in step.

The installer writes files *before* the transaction that refers to them and deletes them *after*
the transaction that forgets them, so after a crash the database is the old state or the new one
and the only damage is files nobody refers to. :func:`reconcile` (run when a PluginService opens)
removes them, and leftover staging directories of dead processes. Rows whose files are missing
(damage from outside) are repaired from the package blob when it is there, and otherwise rolled
back (an old kept version is forgotten) or marked failed (the current version). Operations left
``pending``/``running`` by a dead process are marked ``failed`` with the reason
(``operation.interrupted``), once storage is back in step.

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
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from plughost.errors import LockTimeout
from plughost.security.archive import remove_tree
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


def reconcile(installer: Installer) -> ReconcileReport:
    """Reconcile ``installer``'s storage; returns what was found and fixed."""
    return _Reconciler(installer).run()


class _Reconciler:
    def __init__(self, installer: Installer) -> None:
        self.installer = installer
        self.repo = installer.repo
        self.store = installer.store
        self.settings = installer.settings
        self.plugins_cache = installer.plugins_cache

    def run(self) -> ReconcileReport:
        """Bring database, object store and cache back in step after a crash (see module doc).

        Plugins whose lock is held (an operation in progress in another process) are skipped.
        """
        report = ReconcileReport()
        self._sweep_staging(report)
        ids = {p.id for p in self.installer.all_plugins()}
        if self.plugins_cache.is_dir():
            ids.update(p.name for p in self.plugins_cache.iterdir() if p.is_dir())
        # One listing of the object store, grouped by plugin (not one listing per plugin).
        keys: dict[str, list[str]] = {}
        for info in self.store.list("plugins/"):
            parts = info.key.split("/")
            if len(parts) >= 2:
                keys.setdefault(parts[1], []).append(info.key)
        ids.update(keys)
        for pid in sorted(ids):
            try:
                with self.installer.locked(pid, timeout=0.5):
                    self._reconcile_one(pid, keys.get(pid, []), report)
            except LockTimeout:
                report.skipped_busy.append(pid)
        self._sweep_empty_data_dirs(report)
        if isinstance(self.store, FilesystemObjectStore) and not report.skipped_busy:
            self.store.gc()
        # Storage is in step again: close the operations whose process died, with the reason.
        for op in recover_operations(self.repo, lambda op: "failed"):
            report.operations_failed.append(op.id)
        self.repo.prune_owners()
        if report.changed:
            log.warning("reconciled storage after an interrupted operation: %s",
                        report.to_dict())
        return report

    def _sweep_empty_data_dirs(self, report: ReconcileReport) -> None:
        """An *empty* ``data/<id>`` of a plugin that is not installed is what an install that
        crashed after activation leaves; remove it. A non-empty one is data an uninstall kept
        (``keep_data``) and stays; a plugin being installed right now holds its lock."""
        data = self.settings.home / "data"
        if not data.is_dir():
            return
        for entry in sorted(data.iterdir()):
            if entry.is_symlink() or not entry.is_dir() or any(entry.iterdir()):
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
            return pid != os.getpid() and not _alive(pid)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


