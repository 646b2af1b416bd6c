"""Update, rollback and the version history of installed plugins.

Update::

    stage + verify          as for install (same package rules, same signature policy)
    --------                the plugin's lock
    check                   the package is this plugin, the version is not already kept
                            (that is what rollback is for), it resolves against the installed
                            plugins and the host, and no enabled plugin requiring it breaks
    extract, store          the new version goes *beside* the old one (its own cache directory
                            and blob); the old files are untouched
    switch                  (hook, running host only) export the old instance's state (JSON
                            only), stop it, load the new version, hand the state over with
                            ``import_state(state, from_version)``, activate and health-check it.
                            Any failure stops the new one and re-activates the old one.
    commit                  ONE transaction: version row, current version, pruning of versions
                            beyond ``keep_versions``, audit
    prune files             blobs and cache directories of pruned versions

A crash before the commit leaves the old version current (the new files are orphans that the
next start removes); after it, the new one. Rollback is the same switch and commit towards a
version that is still kept, with no extract or store step.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from plughost.core.manifest import Manifest, load_manifest
from plughost.errors import InstallError, PlughostError
from plughost.services.crash import crash_point
from plughost.services.installer import (
    Installer,
    Staged,
    Undo,
    _quietly,
    check_platform,
    step,
)
from plughost.services.sources import Progress
from plughost.storage.records import StoredVersion

__all__ = ["SwitchHook", "UpdateResult", "Updater", "VersionInfo"]

log = logging.getLogger(__name__)

#: ``switch(new_manifest, new_root, from_version) -> undo``: moves a running host from the
#: current version to the new one (state handover, activation, health check) or raises having
#: restored the old one.
SwitchHook = Callable[[Manifest, Path, str], Undo]


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What an update or rollback did."""

    plugin_id: str
    from_version: str
    to_version: str
    state: str
    pruned: tuple[str, ...]
    timings: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"plugin_id": self.plugin_id, "from_version": self.from_version,
                "to_version": self.to_version, "state": self.state,
                "pruned": list(self.pruned), "timings": dict(self.timings)}


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One kept version of a plugin."""

    plugin_id: str
    version: str
    current: bool
    sha256: str
    size: int
    source: str
    source_uri: str
    signed_by: str | None
    installed_at: datetime | None
    cache_path: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"plugin_id": self.plugin_id, "version": self.version, "current": self.current,
                "sha256": self.sha256, "size": self.size, "source": self.source,
                "source_uri": self.source_uri, "signed_by": self.signed_by,
                "installed_at": self.installed_at.isoformat() if self.installed_at else None,
                "cache_path": self.cache_path}


class Updater:
    """Updates and rolls back installed plugins; composes an :class:`Installer`."""

    def __init__(self, installer: Installer) -> None:
        self.installer = installer
        self.repo = installer.repo
        self.settings = installer.settings

    def versions(self, plugin_id: str, *, current: str | None = None) -> list[VersionInfo]:
        """Kept versions, most recently installed first. ``current``: the plugin's current
        version, when the caller read its row already in the same transaction (one query
        less; the plugin detail does).

        :raises PluginNotFound: when the plugin is not installed."""
        if current is None:
            current = self.repo.require_plugin(plugin_id).version
        return [_version_info(v, current) for v in self.repo.list_versions(plugin_id)]

    def update(
        self,
        plugin_id: str,
        staged: Staged,
        *,
        actor: str = "",
        switch: SwitchHook | None = None,
        progress: Progress | None = None,
        force: bool = False,
    ) -> UpdateResult:
        """Install ``staged`` as the new current version of ``plugin_id`` (see module doc).

        With ``force``, a version that is already kept is reinstalled from ``staged``: the
        package goes beside the kept one (its own blob key and cache directory), the running
        plugin is switched to it as in any update, and only after the commit are the old files
        deleted — a failure leaves the kept version exactly as it was.

        :raises InstallError: ``install.wrong_plugin`` (the package is another plugin),
            ``install.same_version`` (that version is kept: use rollback, or ``force``).
        :raises ResolutionError: the new version does not fit its dependencies or dependents.
        """
        inst = self.installer
        if staged.plugin_id != plugin_id:
            raise InstallError(
                f"the package is {staged.plugin_id} {staged.version}, not {plugin_id}; "
                f"install it with `plughost install`, or give a package of {plugin_id}",
                code="install.wrong_plugin", plugin_id=plugin_id,
                details={"package_plugin": staged.plugin_id})
        with inst.locked(plugin_id):
            timings = dict(staged.timings)
            current = self.repo.require_plugin(plugin_id)
            kept = {v.version for v in self.repo.list_versions(plugin_id)}
            reinstall = staged.version in kept
            if reinstall and not force:
                what = "current" if staged.version == current.version else "kept"
                raise InstallError(
                    f"{plugin_id} {staged.version} is already installed ({what} version); "
                    + (f"to reinstall it, run `plughost update {plugin_id} SOURCE --force`"
                       if what == "current" else
                       f"switch to it with `plughost rollback {plugin_id} --to {staged.version}`"
                       " (or reinstall it with --force)"),
                    code="install.same_version", plugin_id=plugin_id,
                    details={"version": staged.version, "current": current.version})
            with step(timings, "update", "resolve", plugin_id, staged.version):
                check_platform(staged.manifest)
                if current.enabled:
                    inst.check_resolves(staged.manifest,
                                        inst.manifests_replacing(current, staged.manifest))
            cache: Path | None = None
            key: str | None = None
            undo: Undo = None
            try:
                # A reinstall never writes where the kept version's files are: a fresh
                # directory and blob key, so a failure leaves the kept version untouched.
                fresh = secrets.token_hex(4) if reinstall else None
                with step(timings, "update", "extract", plugin_id, staged.version):
                    cache = inst.extract(staged, progress, suffix=fresh)
                crash_point("update.after_extract")
                with step(timings, "update", "store", plugin_id, staged.version):
                    key = inst.put_blob(staged, progress, suffix=fresh)
                crash_point("update.after_blob")
                manifest = load_manifest(cache)
                if switch is not None and current.enabled:
                    with step(timings, "update", "switch", plugin_id, staged.version):
                        undo = switch(manifest, cache, current.version)
                    crash_point("update.after_activate")
                with step(timings, "update", "commit", plugin_id, staged.version):
                    pruned = self._commit(
                        plugin_id, current.version, staged.version, actor, "plugin.update",
                        new=StoredVersion(
                            plugin_id=plugin_id, version=staged.version, checksum=staged.sha256,
                            object_key=key, manifest=manifest.to_dict(), size=staged.fetched.size,
                            cache_path=str(cache), source=staged.fetched.source,
                            source_uri=staged.fetched.source_uri,
                            signed_by=(staged.verification.key_id
                                       if staged.verification.trusted else None)),
                        manifest=manifest, previous=current.manifest, crash="update.before_commit",
                        replace=reinstall,
                        signature={"signed_by": staged.verification.key_id,
                                   "signed": staged.verification.signed,
                                   "allow_unsigned": staged.allow_unsigned})
            except BaseException:
                if undo is not None:
                    _quietly(undo, "switching %s back to the old version", plugin_id)
                if key is not None:
                    _quietly(lambda: inst.store.delete(key), "deleting the blob of %s",
                             plugin_id)
                if cache is not None:
                    _quietly(lambda: inst.remove_cache(cache), "removing the cache of %s",
                             plugin_id)
                raise
            crash_point("update.after_commit")
            inst.forget_files(pruned)
        return UpdateResult(plugin_id, current.version, staged.version,
                            self.repo.require_plugin(plugin_id).state,
                            tuple(v.version for v in pruned), timings)

    def rollback(
        self,
        plugin_id: str,
        to: str | None = None,
        *,
        actor: str = "",
        switch: SwitchHook | None = None,
    ) -> UpdateResult:
        """Make a kept version current again: ``to``, or the most recent other one.

        :raises InstallError: ``install.not_kept`` when there is no such kept version.
        """
        inst = self.installer
        with inst.locked(plugin_id):
            timings: dict[str, float] = {}
            current = self.repo.require_plugin(plugin_id)
            others = [v for v in self.repo.list_versions(plugin_id)
                      if v.version != current.version]
            if to is None:
                if not others:
                    raise InstallError(
                        f"{plugin_id} has no other kept version to roll back to (only "
                        f"{current.version}); `plughost versions {plugin_id}` lists them",
                        code="install.not_kept", plugin_id=plugin_id)
                target = others[0]
            else:
                found = [v for v in others if v.version == to]
                if not found:
                    kept = ", ".join(v.version for v in others) or "none"
                    why = ("it is the current version" if to == current.version else
                           f"it is not kept (other kept versions: {kept})")
                    raise InstallError(
                        f"cannot roll {plugin_id} back to {to}: {why}",
                        code="install.not_kept", plugin_id=plugin_id,
                        details={"requested": to, "kept": [v.version for v in others]})
                target = found[0]
            try:  # unpacked here, or fetched through the package cache (another node's)
                target_dir = inst.version_dir(target)
            except PlughostError as exc:
                raise InstallError(
                    f"the files of {plugin_id} {target.version} are missing and its package "
                    f"cannot be read ({exc.message}); reinstall that version",
                    code="install.not_kept", plugin_id=plugin_id) from exc
            manifest = load_manifest(target_dir)
            if current.enabled:
                inst.check_resolves(manifest, inst.manifests_replacing(current, manifest))
            undo: Undo = None
            try:
                if switch is not None and current.enabled:
                    with step(timings, "rollback", "switch", plugin_id, target.version):
                        undo = switch(manifest, target_dir, current.version)
                    crash_point("rollback.after_activate")
                with step(timings, "rollback", "commit", plugin_id, target.version):
                    self._commit(plugin_id, current.version, target.version, actor,
                                 "plugin.rollback", new=None, manifest=manifest,
                                 previous=current.manifest, crash=None)
            except BaseException:
                if undo is not None:
                    _quietly(undo, "switching %s back", plugin_id)
                raise
            crash_point("rollback.after_commit")
        return UpdateResult(plugin_id, current.version, target.version,
                            self.repo.require_plugin(plugin_id).state, (), timings)

    def _commit(
        self,
        plugin_id: str,
        old: str,
        new_version: str,
        actor: str,
        action: str,
        *,
        new: StoredVersion | None,
        manifest: Manifest,
        previous: Mapping[str, Any],
        crash: str | None,
        replace: bool = False,
        signature: Mapping[str, Any] | None = None,
    ) -> list[StoredVersion]:
        """One transaction: the version row (update), the current version, grants for scopes
        the target version declares beyond the previous one (per the grant policy), pruning
        beyond ``keep_versions``, and the audit event. The operator's config stays; the
        target version's defaults (on the plugin row) apply to settings it does not set."""
        from plughost.services.stores import declared_scopes

        before = declared_scopes(plugin_id, previous.get("permissions") or ())
        granted = self.installer.granted(manifest, beyond=before)
        with self.repo.unit_of_work() as repo:
            replaced: list[StoredVersion] = []
            if new is not None and replace:
                replaced.append(repo.replace_version(new)[0])
            elif new is not None:
                repo.add_version(new)
            repo.set_current_version(plugin_id, new_version)
            for scope in granted:
                repo.grant(plugin_id, scope, granted_by=f"{action}:{actor or 'policy'}")
            pruned = repo.prune_versions(plugin_id, keep=self.settings.keep_versions,
                                         protect=(old,) if self.settings.keep_versions > 1
                                         else ())
            details: dict[str, Any] = {"from": old, "to": new_version, "granted": granted,
                                       "pruned": [v.version for v in pruned]}
            if replace:
                details["reinstalled"] = True
            if signature is not None:  # a new package: what install records of its signature
                details.update(signature)
            repo.append_audit(action, actor=actor, plugin_id=plugin_id, details=details)
            if crash is not None:
                crash_point(crash)
        # The replaced package's files go with the pruned ones (after the commit).
        return pruned + replaced


def _version_info(v: StoredVersion, current: str) -> VersionInfo:
    return VersionInfo(plugin_id=v.plugin_id, version=v.version, current=v.version == current,
                       sha256=v.checksum, size=v.size, source=v.source,
                       source_uri=v.source_uri, signed_by=v.signed_by,
                       installed_at=v.installed_at, cache_path=v.cache_path)

