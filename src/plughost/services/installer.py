"""The install pipeline, uninstall, and the start-up reconciliation that makes both crash-safe.

Install, step by step (each failure undoes everything done before it)::

    stage      fetch the package (file or https URL) into <home>/staging/<owner>.<token>/,
               size-capped and hashed; compare the caller's SHA-256 in constant time
    verify     open the package (archive structure, manifest, integrity file) and check its
               signature against the trust store and the signature policy
    --------   take the plugin's lock (threads and processes; serialises operations on one id)
    check      refuse an id that is already installed (use update) and resolve dependencies
               against the installed, enabled plugins and the host version
    extract    safe-extract into the content-addressed, read-only directory
               <home>/cache/plugins/<id>/<version>-<sha256[:12]>/ (files checked against the
               integrity list as they stream); re-read the manifest from there
    store      write the package blob to the object store
               (plugins/<id>/<version>/<id>_<version>.zip)
    activate   (optional, via a hook) add the plugin to the running host and activate it
    commit     ONE transaction: plugin row, version row, default config, grants, audit event

Files are always written *before* the transaction that refers to them and deleted *after* the
transaction that forgets them. So after a crash at any point the database is either the old
state or the new one, and the only possible damage is files nobody refers to — which
:meth:`Installer.reconcile` (run when the service opens) deletes, together with leftover staging
directories. Rows whose files are missing (damage from outside) are repaired from the package
blob when it is there, and otherwise rolled back (a kept old version is forgotten) or marked
failed (the current version, so the operator sees it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.core import platforms
from plughost.core.manifest import Manifest, load_manifest, manifest_from_dict
from plughost.core.monitoring import step_monitors
from plughost.core.resolver import resolve
from plughost.core.version import Version
from plughost.errors import (
    DependentsExist,
    InstallError,
    LockTimeout,
    ManifestError,
    PlughostError,
    ResolutionError,
)
from plughost.security.archive import DEFAULT_LIMITS, ArchiveLimits, remove_tree
from plughost.security.package import Package, PackageInfo, open_package
from plughost.security.signing import (
    SignaturePolicy,
    TrustStore,
    VerificationResult,
    check_sha256,
    verify_signature,
)
from plughost.services.crash import crash_point
from plughost.services.sources import Fetched, FetchPolicy, Progress, fetch
from plughost.settings import HostSettings
from plughost.storage.objects import ObjectStore, package_key, validate_key
from plughost.storage.package_cache import PackageCache
from plughost.storage.records import StoredPlugin, StoredVersion
from plughost.storage.repository import Repository

if TYPE_CHECKING:
    from plughost.services.reconcile import ReconcileReport

__all__ = [
    "GrantPolicy",
    "InstallResult",
    "Installer",
    "Staged",
    "Undo",
    "UninstallResult",
    "cache_name",
    "grant_declared",
    "grant_nothing",
    "stored_manifest",
]

log = logging.getLogger(__name__)

#: ``policy(plugin_id, declared_scopes) -> scopes to grant at install``. The permission
#: manager's policies (``grant_declared_at_install``, ``require_approval``) have this shape.
GrantPolicy = Callable[[str, Sequence[str]], Sequence[Any]]
#: What a host hook returns: a callable that undoes what the hook did (or ``None``).
Undo = Callable[[], None] | None

_LOCK_TIMEOUT = 60.0


@contextlib.contextmanager
def step(timings: dict[str, float], operation: str, name: str, plugin_id: str | None,
         version: str | None) -> Iterator[None]:
    """Run one step of ``operation``: record its duration in ``timings[name]`` when it
    succeeds, and tell the step monitors (:data:`plughost.core.monitoring.step_monitors`)
    when it starts and ends."""
    finish = step_monitors.begin(operation, name, {"plugin_id": plugin_id, "version": version}
                                 ) if step_monitors else None
    t0 = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        if finish is not None:
            finish(exc, None)
        raise
    timings[name] = time.perf_counter() - t0
    if finish is not None:
        finish(None, None)


def grant_declared(plugin_id: str, declared: Sequence[str]) -> Sequence[str]:
    """Grant every scope the manifest declares (installing it is the operator's consent)."""
    return list(declared)


def grant_nothing(plugin_id: str, declared: Sequence[str]) -> Sequence[str]:
    """Grant nothing at install; the operator grants scopes one by one."""
    return []


def cache_name(version: str, sha256: str) -> str:
    """The name of a version's unpacked directory under its plugin's cache folder
    (:meth:`Installer.cache_path`): the version and the start of the package's SHA-256."""
    return f"{version}-{sha256[:12]}"


@dataclass(slots=True)
class Staged:
    """A fetched and verified package waiting in staging. Call :meth:`cleanup` when done."""

    workdir: Path
    fetched: Fetched
    package: Package
    verification: VerificationResult
    timings: dict[str, float] = field(default_factory=dict)
    allow_unsigned: bool = False
    """Installed with ``--allow-unsigned`` (the audit entry says so)."""

    @property
    def info(self) -> PackageInfo:
        return self.package.info

    @property
    def manifest(self) -> Manifest:
        return self.package.info.manifest

    @property
    def plugin_id(self) -> str:
        return self.package.info.plugin_id

    @property
    def version(self) -> str:
        return self.package.info.version

    @property
    def sha256(self) -> str:
        return self.fetched.sha256

    def cleanup(self) -> None:
        """Close the package and remove the staging directory. Idempotent."""
        self.package.close()
        remove_tree(self.workdir)


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What an install did."""

    plugin_id: str
    version: str
    sha256: str
    size: int
    enabled: bool
    state: str
    signed: bool
    signed_by: str | None
    cache_path: str
    object_key: str
    source: str
    source_uri: str
    granted: tuple[str, ...]
    timings: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin_id": self.plugin_id, "version": self.version, "sha256": self.sha256,
            "size": self.size, "enabled": self.enabled, "state": self.state,
            "signed": self.signed, "signed_by": self.signed_by, "cache_path": self.cache_path,
            "object_key": self.object_key, "source": self.source,
            "source_uri": self.source_uri, "granted": list(self.granted),
            "timings": dict(self.timings),
        }


@dataclass(frozen=True, slots=True)
class UninstallResult:
    """What an uninstall removed (``removed`` lists the target last, after cascaded ones)."""

    removed: tuple[str, ...]
    versions: Mapping[str, tuple[str, ...]]

    def to_dict(self) -> dict[str, Any]:
        return {"removed": list(self.removed),
                "versions": {k: list(v) for k, v in self.versions.items()}}


class Installer:
    """Installs and uninstalls plugin packages into storage (database, object store, cache).

    Synchronous and thread-safe; the async :class:`~plughost.services.manager.PluginService`
    runs it in worker threads and passes hooks that touch the running host.

    :param settings: where things live and the limits (max_plugin_size, signature policy).
    :param repository: the data-access layer.
    :param store: the object store holding package blobs.
    :param trust_store: publisher keys; default ``<home>/trust.json``.
    :param host_version: the version ``host`` ranges of manifests are checked against.
    :param grant_policy: which declared permission scopes are granted at install.
    :param fetch_policy: URL and size limits; default from the settings.
    :param archive_limits: limits for the package archive.
    """

    def __init__(
        self,
        settings: HostSettings,
        repository: Repository,
        store: ObjectStore,
        *,
        trust_store: TrustStore | None = None,
        host_version: str | Version | None = None,
        grant_policy: GrantPolicy = grant_declared,
        fetch_policy: FetchPolicy | None = None,
        archive_limits: ArchiveLimits = DEFAULT_LIMITS,
    ) -> None:
        from plughost.host import HOST_VERSION

        self.settings = settings
        self.repo = repository
        # Installed manifests, validated once and kept current from the change log.
        self.store = store
        self.trust_store = trust_store or TrustStore.for_home(settings.home)
        self.signature_policy = SignaturePolicy.from_settings(settings)
        self.host_version = Version(str(host_version or HOST_VERSION))
        self.grant_policy = grant_policy
        self.fetch_policy = fetch_policy or FetchPolicy(max_size=settings.max_plugin_size)
        self.archive_limits = archive_limits
        self.plugins_cache = settings.cache_dir / "plugins"
        #: Packages installed by other nodes come through memory, local disk, object store.
        self.packages = PackageCache(store, settings.cache_dir / "packages")

    # ------------------------------------------------------------------ paths and locks

    def cache_path(self, plugin_id: str, version: str, sha256: str) -> Path:
        """The content-addressed directory a version is unpacked into."""
        # One join, not two: at start this runs once per installed plugin.
        return self.plugins_cache.joinpath(plugin_id, cache_name(version, sha256))

    def local_dir(self, v: StoredVersion) -> Path:
        """Where this node keeps a stored version unpacked. Computed here, never taken from
        the row's ``cache_path``: that is the path on the node that installed it."""
        return self.cache_path(v.plugin_id, v.version, v.checksum)

    def version_dir(self, v: StoredVersion) -> Path:
        """The version's unpacked files on this node, unpacking the package first when they
        are missing (another node installed it): the package comes through the 3-tier
        :class:`~plughost.storage.package_cache.PackageCache`, is verified against the
        recorded SHA-256 and unpacked with the same archive limits as an install, into a
        temporary directory renamed into place (two processes may race; one wins)."""
        dest = self.local_dir(v)
        if dest.is_dir():
            return dest
        workdir = self.new_workdir()
        try:
            package = workdir / "package.zip"
            self.packages.fetch(v.object_key, v.checksum, package)
            tmp = workdir / "unpacked"
            with open_package(package, self.archive_limits) as pkg:
                pkg.extract(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.is_dir():
                    raise
        finally:
            remove_tree(workdir)
        return dest

    @contextlib.contextmanager
    def locked(self, plugin_id: str, *, timeout: float = _LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the plugin's lock (threads and processes), naming the plugin on timeout."""
        try:
            with self.repo.lock_plugin(plugin_id, timeout=timeout):
                yield
        except LockTimeout as exc:
            if exc.plugin_id is None:
                exc.plugin_id = plugin_id
            raise

    # ------------------------------------------------------------------ stage + verify

    def new_workdir(self) -> Path:
        """A private staging directory named after this process's owner id
        (``<owner>.<token>``): reconciliation in another process leaves it alone while this
        one lives, and removes it once it died."""
        self.settings.staging_dir.mkdir(parents=True, exist_ok=True)
        path = self.settings.staging_dir / f"{self.repo.owner_id}.{secrets.token_hex(6)}"
        path.mkdir(mode=0o700)
        return path

    def stage(
        self,
        source: str | Path,
        *,
        sha256: str | None = None,
        progress: Progress | None = None,
        allow_unsigned: bool = False,
        origin: str | None = None,
    ) -> Staged:
        """Fetch ``source`` into staging, check the expected SHA-256, the archive structure,
        the manifest and the signature. Nothing outside staging is touched.

        :param allow_unsigned: accept this package without a signature even when the policy
            requires one (every signature that is present is still checked).

        :param origin: where the package really came from when ``source`` is a local copy
            (a marketplace download): recorded as the source URI, with source ``market``.
        :raises InstallError, DownloadError, ChecksumMismatch, SignatureError, ArchiveError,
            PackageError, ManifestError: the package is refused; staging is removed.
        """
        timings: dict[str, float] = {}
        workdir = self.new_workdir()
        package: Package | None = None
        try:
            with step(timings, "stage", "fetch", None, None):
                fetched = fetch(source, workdir / "package.zip", self.fetch_policy, progress,
                                limits=self.archive_limits)
                if origin is not None:
                    fetched = replace(fetched, source="market", source_uri=origin)
            crash_point("install.after_stage")
            with step(timings, "stage", "verify", None, None):
                if sha256 is not None:
                    check_sha256(fetched.sha256, sha256)
                package = open_package(fetched.path, self.archive_limits)
                if sha256 is not None:
                    check_sha256(package.info.sha256, sha256)  # the bytes actually opened
                policy = self.signature_policy
                if allow_unsigned:
                    policy = policy.allowing(package.info.plugin_id)
                verification = verify_signature(package.info, self.trust_store, policy)
            if progress is not None:
                progress("verify", 1, 1)
            return Staged(workdir, fetched, package, verification, timings,
                          allow_unsigned=allow_unsigned and not verification.signed)
        except BaseException:
            if package is not None:
                package.close()
            remove_tree(workdir)
            raise

    # ------------------------------------------------------------------ queries

    def manifests_around(self, *manifests: Manifest) -> dict[str, Manifest]:
        """The installed manifests that :meth:`check_resolves` reads for ``manifests`` (one
        plugin, or two versions of it): the enabled plugins that require them, and
        everything they and those need or may use, transitively. Read by id from the
        database, so judging an install costs what it touches, not what is installed."""
        out: dict[str, Manifest] = {}
        pending: list[str] = [dep for m in manifests
                              for dep in (*m.dependencies, *m.optional_dependencies)]
        rows = [row for pid in dict.fromkeys(m.id for m in manifests)
                for row in self.repo.plugins_requiring(pid, enabled=True)]
        while True:
            for row in rows:
                found = stored_manifest(row) if row.enabled else None
                if found is not None and row.id not in out:
                    out[row.id] = found
                    pending += [*found.dependencies, *found.optional_dependencies]
            wanted = {pid for pid in pending if pid not in out}
            if not wanted:
                return out
            pending = []
            rows = list(self.repo.get_plugins(wanted).values())

    def manifests_replacing(self, current: StoredPlugin, manifest: Manifest,
                            ) -> dict[str, Manifest]:
        """The installed manifests that :meth:`check_resolves` reads when ``manifest``
        replaces the current version of an installed plugin (``current``: its row), by
        update or rollback: what :meth:`manifests_around` gives for the new version and,
        when the plugin is enabled, for its current version too, with that version (what its
        dependents resolve with before the change). Read by id from the database: judging
        an update costs what it touches, not what is installed."""
        old = stored_manifest(current) if current.enabled else None
        if old is None:
            return self.manifests_around(manifest)
        return {**self.manifests_around(manifest, old), current.id: old}

    def dependents(self, plugin_id: str, *, transitive: bool = False) -> list[str]:
        """Enabled plugins whose current manifest requires ``plugin_id`` (not optionally; one
        whose stored manifest no longer validates does not count): the direct ones sorted by
        id, or (``transitive``) all of them in safe removal order, a plugin before the ones it
        depends on. Read through the requirements index one plugin at a time, so it costs the
        dependents found, not the plugins installed."""
        found: dict[str, None] = {}  # in discovery order: breadth first, by id at each step
        frontier = [plugin_id]
        while frontier:
            current = frontier.pop(0)
            for row in self.repo.plugins_requiring(current, enabled=True):
                if row.id == plugin_id or row.id in found:
                    continue
                manifest = stored_manifest(row)
                if manifest is not None and current in manifest.dependencies:
                    found[row.id] = None
                    if transitive:
                        frontier.append(row.id)
        return list(reversed(found)) if transitive else list(found)

    def check_resolves(self, manifest: Manifest, installed: Mapping[str, Manifest]) -> None:
        """Refuse ``manifest`` unless it resolves against ``installed`` and the host version,
        and every installed plugin that requires it still resolves with it."""
        candidates = {**installed, manifest.id: manifest}
        # Only the new plugin and what requires it directly can change outcome: resolve those
        # with their dependency closures, not every installed plugin (nor hand the resolver
        # every installed manifest: that costs what is installed).
        direct = [pid for pid, m in installed.items()
                  if pid != manifest.id and manifest.id in m.dependencies]
        resolution = resolve(_closure(candidates, [manifest.id, *direct]),
                             requested=[manifest.id, *direct],
                             host_version=self.host_version, partial=True)
        error = resolution.failed.get(manifest.id)
        if error is not None:
            if isinstance(error, PlughostError):
                error.plugin_id = error.plugin_id or manifest.id
                error.phase = error.phase or "resolve"
            raise error
        before = resolve(_closure(installed, direct), requested=direct,
                         host_version=self.host_version,
                         partial=True) if manifest.id in installed and direct else None
        broken = sorted(
            pid for pid in resolution.failed
            if pid != manifest.id and manifest.id in installed[pid].dependencies
            and (before is None or pid not in before.failed)
        )
        if broken:
            first = resolution.failed[broken[0]]
            raise ResolutionError(
                f"{manifest.id} {manifest.version} would break installed plugins that depend "
                f"on it: {', '.join(broken)} ({getattr(first, 'message', first)}). Update "
                "them first, or choose a version inside their ranges.",
                plugin_id=manifest.id, phase="resolve", code="resolve.breaks_dependents",
                details={"dependents": broken})

    # ------------------------------------------------------------------ install

    def extract(self, staged: Staged, progress: Progress | None = None, *,
                suffix: str | None = None) -> Path:
        """Unpack a staged package into its cache directory (replacing an unreferenced
        leftover of an interrupted attempt) and check the manifest found there. ``suffix``
        makes the directory distinct from a kept version's (a forced reinstall)."""
        dest = self.cache_path(staged.plugin_id, staged.version, staged.sha256)
        if suffix is not None:
            dest = dest.with_name(f"{dest.name}-{suffix}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(dest):
            remove_tree(dest)  # we hold the lock and no row refers to it: a leftover
        report = None if progress is None else (lambda d, t: progress("extract", d, t))
        try:
            staged.package.extract(dest, progress=report)
            manifest = load_manifest(dest)
        except BaseException:
            self.remove_cache(dest)
            raise
        if manifest.id != staged.plugin_id or str(manifest.version) != staged.version:
            self.remove_cache(dest)
            raise InstallError(
                f"the unpacked manifest says {manifest.id} {manifest.version}, the package "
                f"{staged.plugin_id} {staged.version}; the package is inconsistent",
                code="install.inconsistent", plugin_id=staged.plugin_id)
        return dest

    def remove_cache(self, path: Path | str) -> None:
        """Remove a version's cache directory, and the plugin's directory once it is empty."""
        path = Path(path)
        remove_tree(path)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def put_blob(self, staged: Staged, progress: Progress | None = None, *,
                 suffix: str | None = None) -> str:
        """Store the package under its key (``suffix`` makes it distinct from a kept
        version's, for a forced reinstall); return the key."""
        key = package_key(staged.plugin_id, staged.version)
        if suffix is not None:
            key = validate_key(key.removesuffix(".zip") + f"-{suffix}.zip")
        self.store.put(key, staged.fetched.path, sha256=staged.sha256,
                       max_size=self.settings.max_plugin_size)
        if progress is not None:
            progress("store", staged.fetched.size, staged.fetched.size)
        return key

    def granted(self, manifest: Manifest, *, beyond: Iterable[str] = ()) -> list[str]:
        """The scopes the grant policy grants ``manifest`` at install, as canonical scope
        strings — only among those not already declared in ``beyond`` (the version being
        replaced by an update or rollback).

        :raises ScopeError: for a malformed scope in the manifest.
        :raises InstallError: ``install.policy`` when the policy itself fails.
        """
        from plughost.services.stores import declared_scopes

        already = set(beyond)
        new = [s for s in declared_scopes(manifest.id, manifest.permissions) if s not in already]
        if not new:
            return []
        try:
            return [str(s) for s in self.grant_policy(manifest.id, new)]
        except PlughostError:
            raise
        except Exception as exc:
            name = getattr(self.grant_policy, "__name__", "the grant policy")
            raise InstallError(
                f"{name} failed for {manifest.id}: {type(exc).__name__}: {exc}; nothing was "
                "installed. Fix the policy passed as grant_policy.",
                code="install.policy", plugin_id=manifest.id) from exc

    def install(
        self,
        staged: Staged,
        *,
        enabled: bool = True,
        actor: str = "",
        activate: Callable[[Manifest, Path], Undo] | None = None,
        progress: Progress | None = None,
    ) -> InstallResult:
        """Install a staged package (see the module doc). Takes the plugin's lock.

        :param activate: hook run after the files are in place and before the commit; it
            adds the plugin to a running host and returns how to undo that.
        :raises InstallError: ``install.exists`` when the id is installed (use update).
        :raises ResolutionError: dependencies or the host version do not fit.
        """
        pid = staged.plugin_id
        with self.locked(pid):
            timings = dict(staged.timings)
            existing = self.repo.get_plugin(pid)
            if existing is not None:
                raise InstallError(
                    f"{pid} is already installed (version {existing.version}); use "
                    f"`plughost update {pid} SOURCE` to change its version, or uninstall it "
                    "first",
                    code="install.exists", plugin_id=pid,
                    details={"installed_version": existing.version})
            check_platform(staged.manifest)
            with step(timings, "install", "resolve", pid, staged.version):
                self.check_resolves(staged.manifest, self.manifests_around(staged.manifest))
            cache: Path | None = None
            key: str | None = None
            undo: Undo = None
            try:
                with step(timings, "install", "extract", pid, staged.version):
                    cache = self.extract(staged, progress)
                crash_point("install.after_extract")
                with step(timings, "install", "store", pid, staged.version):
                    key = self.put_blob(staged, progress)
                crash_point("install.after_blob")
                manifest = load_manifest(cache)
                if activate is not None and enabled:
                    with step(timings, "install", "activate", pid, staged.version):
                        undo = activate(manifest, cache)
                    crash_point("install.after_activate")
                with step(timings, "install", "commit", pid, staged.version):
                    granted = self._commit_install(staged, manifest, cache, key, enabled, actor)
            except BaseException:
                if undo is not None:
                    _quietly(undo, "undoing the host activation of %s", pid)
                if key is not None:
                    _quietly(lambda: self.store.delete(key), "deleting the blob of %s", pid)
                if cache is not None:
                    _quietly(lambda: self.remove_cache(cache), "removing the cache of %s", pid)
                raise
            crash_point("install.after_commit")
        v = staged.verification
        return InstallResult(
            plugin_id=pid, version=staged.version, sha256=staged.sha256,
            size=staged.fetched.size, enabled=enabled, state="installed", signed=v.signed,
            signed_by=v.key_id if v.trusted else None, cache_path=str(cache), object_key=key,
            source=staged.fetched.source, source_uri=staged.fetched.source_uri,
            granted=tuple(granted), timings=timings)

    def _commit_install(self, staged: Staged, manifest: Manifest, cache: Path, key: str,
                        enabled: bool, actor: str) -> list[str]:
        data = manifest.to_dict()
        fetched = staged.fetched
        granted = self.granted(manifest)
        with self.repo.unit_of_work() as repo:
            repo.add_plugin(StoredPlugin.from_manifest(
                data, checksum=staged.sha256, object_key=key, source=fetched.source,
                source_uri=fetched.source_uri, enabled=enabled))
            repo.add_version(StoredVersion(
                plugin_id=manifest.id, version=staged.version, checksum=staged.sha256,
                object_key=key, manifest=data, size=fetched.size, cache_path=str(cache),
                source=fetched.source, source_uri=fetched.source_uri,
                signed_by=staged.verification.key_id if staged.verification.trusted else None))
            # Version 1 of the config: no operator settings yet, so the manifest defaults
            # (kept on the plugin row) apply. "actor|action" as the config manager records it.
            repo.set_config(manifest.id, {}, changed_by=f"{actor or 'install'}|install")
            for scope in granted:
                repo.grant(manifest.id, scope, granted_by=f"install:{actor or 'policy'}")
            repo.append_audit("plugin.install", actor=actor, plugin_id=manifest.id,
                              details={"version": staged.version, "sha256": staged.sha256,
                                       "source": fetched.source_uri,
                                       "signed_by": staged.verification.key_id,
                                       "signed": staged.verification.signed,
                                       "allow_unsigned": staged.allow_unsigned,
                                       "granted": granted})
            crash_point("install.before_commit")
        return granted

    # ------------------------------------------------------------------ uninstall

    def uninstall(
        self,
        plugin_id: str,
        *,
        actor: str = "",
        remove: Callable[[str], Undo] | None = None,
        keep_data: bool = False,
    ) -> tuple[str, ...]:
        """Remove one plugin: host (via ``remove``), rows, blobs, cached files and (unless
        ``keep_data``) its private data directory ``<home>/data/<id>``, in that order.

        Refused while enabled plugins require it (the caller cascades by uninstalling them
        first). Returns the versions removed.

        :raises PluginNotFound: when it is not installed.
        :raises DependentsExist: naming the enabled plugins that require it.
        """
        with self.locked(plugin_id):
            version = self.repo.require_plugin(plugin_id).version
            dependents = self.dependents(plugin_id)
            if dependents:
                raise DependentsExist(
                    f"cannot uninstall {plugin_id}: enabled plugins depend on it: "
                    f"{', '.join(dependents)}. Uninstall or disable them first, or pass "
                    "--cascade to uninstall them too.",
                    plugin_id=plugin_id, details={"dependents": dependents})
            versions = self.repo.list_versions(plugin_id)
            timings: dict[str, float] = {}
            undo: Undo = None
            with step(timings, "uninstall", "deactivate", plugin_id, version):
                undo = remove(plugin_id) if remove is not None else None
            crash_point("uninstall.after_deactivate")
            try:
                with step(timings, "uninstall", "commit", plugin_id, version), \
                        self.repo.unit_of_work() as repo:
                    repo.delete_plugin(plugin_id)
                    repo.append_audit("plugin.uninstall", actor=actor, plugin_id=plugin_id,
                                      details={"versions": [v.version for v in versions]})
                    crash_point("uninstall.before_commit")
            except BaseException:
                if undo is not None:
                    _quietly(undo, "restoring %s in the host", plugin_id)
                raise
            crash_point("uninstall.after_commit")
            with step(timings, "uninstall", "files", plugin_id, version):
                for v in versions:
                    _quietly(partial(self.store.delete, v.object_key), "deleting a blob of %s",
                             plugin_id)
                crash_point("uninstall.after_blobs")
                _quietly(partial(remove_tree, self.plugins_cache / plugin_id),
                         "removing the cache of %s", plugin_id)
                if not keep_data:
                    _quietly(partial(remove_tree, self.settings.home / "data" / plugin_id),
                             "removing the data of %s", plugin_id)
        return tuple(v.version for v in versions)

    def forget_files(self, versions: Iterable[StoredVersion]) -> None:
        """Delete the blobs and cache directories of versions already removed from the
        database (pruned after an update). Failures are logged; reconcile retries them."""
        for v in versions:
            _quietly(partial(self.store.delete, v.object_key), "deleting blob %s", v.object_key)
            local = self.local_dir(v)
            _quietly(partial(self.remove_cache, local), "removing %s", local)
            self.packages.forget(v.checksum)

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, *, full: bool | None = None, outside: bool = True) -> ReconcileReport:
        """Bring database, object store and cache back in step after a crash (see
        :func:`plughost.services.reconcile.reconcile`; ``full=True`` compares every file,
        ``outside=False`` looks only after an interrupted operation)."""
        from plughost.services.reconcile import reconcile

        return reconcile(self, full=full, outside=outside)

    def all_plugins(self) -> list[StoredPlugin]:
        """Every installed plugin's record (paged through the repository)."""
        return list(self.repo.iter_plugins())


def _closure(manifests: Mapping[str, Manifest], roots: Iterable[str]) -> list[Manifest]:
    """The manifests of ``roots`` and of everything they need or may use, transitively."""
    found: dict[str, Manifest] = {}
    pending = list(roots)
    while pending:
        pid = pending.pop()
        m = manifests.get(pid)
        if m is None or pid in found:
            continue
        found[pid] = m
        pending.extend(m.dependencies)
        pending.extend(m.optional_dependencies)
    return list(found.values())


def check_platform(manifest: Manifest) -> None:
    """Refuse a plugin none of whose ways to run (its entry, its ``alternatives``) is for this
    machine's platform (``install.platform``); nothing is extracted or stored then."""
    choice = platforms.select(manifest, lambda _runtime: None)
    if isinstance(choice, list):
        raise InstallError(
            f"{manifest.id} {manifest.version} does not run on {platforms.current()}: "
            f"{'; '.join(choice)}. Install its build for this platform.",
            code="install.platform", plugin_id=manifest.id,
            details={"platform": platforms.current()})


def _quietly(fn: Callable[[], Any], what: str, *args: Any) -> None:
    """Run a compensating action; log (never raise) when it fails — reconcile finishes it."""
    try:
        fn()
    except Exception:
        log.exception("while undoing: " + what, *args)


def stored_manifest(row: StoredPlugin) -> Manifest | None:
    """The validated manifest of a plugin row, or ``None`` (logged) when it no longer
    validates."""
    try:
        return manifest_from_dict(row.manifest, source=f"database:{row.id}")
    except ManifestError:
        log.warning("stored manifest of %s no longer validates; ignored", row.id)
        return None
