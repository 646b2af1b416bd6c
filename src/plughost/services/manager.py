"""PluginService: THE management API — what the CLI uses locally and the HTTP API serves.

It composes the settings, the database (migrated on open) and repository, the object store,
the installer/updater, and a :class:`~plughost.host.PluginHost` whose plugins are the installed
ones (loaded from their read-only cache directories; disabled ones registered but not loaded)
plus any development folders under ``settings.plugins_dir``::

    async with PluginService(HostSettings(home="/srv/plughost")) as svc:
        result = await svc.install("notify-slack-1.0.0.zip")
        print(await svc.list_plugins())

    svc = await PluginService.open(settings, start=False)   # CLI: do not run every plugin
    ...
    await svc.close()

Every method returns plain frozen dataclasses with ``to_dict()`` (JSON-ready) or dicts, and
raises only :class:`~plughost.errors.PlughostError` subclasses. Blocking work (database, files,
downloads) runs in worker threads; host operations run on the service's event loop.

``start=True`` (servers) activates every enabled startup plugin on open. ``start=False`` only
registers and resolves them; operations still activate the plugins they touch (an install with
``activate=True`` proves the plugin activates before committing it). ``run_plugins=False`` (the
CLI on a home where no server runs) never loads plugin code: operations record the intent
(installed, enabled, disabled, the new version) for the next start, and what runs is refused.

The lifecycle state stored in the database is the last state a service observed; live state
always comes from the running host. ``enabled`` is the persistent switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from plughost.core._gc import collector_paused
from plughost.core.bus import Event
from plughost.core.lifecycle import LifecycleEvent, State
from plughost.core.manifest import (
    Manifest,
    load_manifest,
    manifest_from_dict,
    manifest_from_own_dict,
    manifest_from_plain,
)
from plughost.core.registry import PluginRecord
from plughost.core.version import Version
from plughost.errors import (
    ChangesPruned,
    InstallError,
    ManifestError,
    OperationRefused,
    PlughostError,
    PluginNotFound,
    PluginUnavailable,
    ReloadError,
)
from plughost.host import PluginHost, ReloadResult
from plughost.security.archive import ArchiveLimits
from plughost.security.signing import TrustStore
from plughost.services import resources
from plughost.services.cluster import ClusterNode, NodeInfo
from plughost.services.hostops import HostOps, record_error
from plughost.services.installer import (
    GrantPolicy,
    Installer,
    InstallResult,
    Staged,
    Undo,
    UninstallResult,
    grant_declared,
    stored_manifest,
)
from plughost.services.plugin_services import PluginServices
from plughost.services.preflight import ManifestCheck, check_manifest
from plughost.services.reconcile import ReconcileReport
from plughost.services.sources import FetchPolicy, Progress
from plughost.services.stores import (
    RepositoryAuditLog,
    RepositoryPermissionStore,
    home_config_store,
    installed_aware_policy,
)
from plughost.services.updater import Updater, UpdateResult, VersionInfo
from plughost.services.views import (
    HealthReport,
    PluginDetail,
    PluginInfo,
    PluginList,
    arcade_status,
    error_of,
    idle_state,
    info_from_record,
    plugin_resource,
    record_config_state,
    stored_state,
)
from plughost.settings import HostSettings
from plughost.storage.kv_db import DatabaseKeyValueStore, import_sqlite_kv
from plughost.storage.records import FACETS, StoredPlugin

__all__ = [
    "InstallResult",
    "PluginDetail",
    "PluginInfo",
    "PluginList",
    "PluginService",
    "ReconcileReport",
    "UninstallResult",
    "UpdateResult",
    "VersionInfo",
]

log = logging.getLogger(__name__)

#: Who the reload running in this task was asked for by, for its audit entry: the caller of
#: :meth:`PluginService.reload` / :meth:`PluginService.rollback_build` (a token, the CLI); a
#: reload the file watcher starts runs in the watcher's task and keeps the default.
_reload_actor: contextvars.ContextVar[str] = contextvars.ContextVar("reload_actor",
                                                                    default="watch")


@contextlib.asynccontextmanager
async def _reloading_for(actor: str) -> Any:
    """Audit the reloads made inside the block under ``actor``."""
    token = _reload_actor.set(actor)
    try:
        yield
    finally:
        _reload_actor.reset(token)


T = TypeVar("T")
#: What registering an installed plugin needs: its manifest, cache dir, and why it cannot run.
_Prepared = tuple[Manifest, Path | None, PlughostError | None]
#: The most plugins one database read of a list returns (bigger pages are read in parts).
_MAX_PAGE = 10_000
#: The key readiness looks up in the object store (a HEAD that proves it answers).
_READINESS_PROBE = "plughost-readiness-probe"


class PluginService:
    """The management facade (see the module doc).

    :param settings: the host settings; default :meth:`HostSettings.from_env`.
    :param start: activate every enabled startup plugin when opened (servers); ``False`` only
        registers and resolves them (one-shot CLI commands).
    :param host_version: the version manifests' ``host`` ranges are checked against.
    :param runtimes: extra runtimes for the host (process, wasm...).
    :param trust_store: publisher keys; default ``<home>/trust.json``.
    :param grant_policy: which declared permission scopes are granted at install.
    :param allow_private_urls: ``True`` allows package URLs on loopback/private/link-local
        addresses; a collection of addresses allows just those.
    :param allow_http_urls: allow plain ``http://`` package URLs.
    :param download_timeout: seconds allowed for a whole download.
    :param archive_limits: limits applied to package archives.
    :param host_options: extra keyword arguments for :class:`PluginHost`.
    :param refresh_interval: every this many seconds, :meth:`refresh` the host from storage
        (picks up installs, updates, enable/disable and uninstalls done by other processes,
        e.g. the CLI next to a server). ``None``: only when :meth:`refresh` is called.
    :param reconcile: repair storage after an interrupted operation when opened (see
        :mod:`plughost.services.reconcile`); ``False`` for commands that only read.
    :param cluster: run a :class:`~plughost.services.cluster.ClusterNode` with these options
        (``redis_url``, ``heartbeat_interval``, ``name``, ``url``; its ``poll_interval`` is
        ``refresh_interval``): changes are announced to, and applied from, the other servers
        on this database. Servers pass it; one-shot CLI commands do not.
    :param run_plugins: ``False`` never loads or activates plugin code in this process (the
        CLI on a home where no server runs, so it does not act as the host): installs, updates
        and ``enable`` are checked and recorded without activating, ``activate``,
        ``deactivate`` and ``reload`` are refused (``server.not_running``: nothing runs), and
        every state read is what the next start begins from (``live`` false). Needs
        ``start=False``. Such a service registers in its host only the installed plugins an
        operation touches (see :meth:`_near`), so an operation on one plugin costs its
        neighbours, not the catalogue; :attr:`host` registers them all.
    """

    def __init__(
        self,
        settings: HostSettings | None = None,
        *,
        start: bool = True,
        host_version: str | None = None,
        runtimes: Iterable[Any] = (),
        trust_store: TrustStore | None = None,
        grant_policy: GrantPolicy = grant_declared,
        allow_private_urls: bool | Iterable[str] = False,
        allow_http_urls: bool = False,
        download_timeout: float = 120.0,
        archive_limits: ArchiveLimits | None = None,
        host_options: Mapping[str, Any] | None = None,
        refresh_interval: float | None = None,
        plugin_services: bool = True,
        reconcile: bool = True,
        cluster: Mapping[str, Any] | None = None,
        run_plugins: bool = True,
    ) -> None:
        if start and not run_plugins:
            raise OperationRefused("start=True runs every enabled plugin; it cannot be combined "
                                   "with run_plugins=False", code="request.invalid")
        self.settings = settings or HostSettings.from_env()
        self._start_plugins = start
        self._run_plugins = run_plugins
        self._host_version = host_version
        self._runtimes = list(runtimes)
        self._trust_store = trust_store
        self._grant_policy = grant_policy
        self._fetch_policy = FetchPolicy(
            max_size=self.settings.max_plugin_size, timeout=download_timeout,
            allow_private=allow_private_urls is True, allow_http=allow_http_urls,
            allowed_addresses=frozenset(() if isinstance(allow_private_urls, bool)
                                        else allow_private_urls))
        self._archive_limits = archive_limits
        self._host_options = dict(host_options or {})
        self._refresh_interval = refresh_interval
        self._want_services = plugin_services
        self._reconcile = reconcile
        self._cluster_options = None if cluster is None else dict(cluster)
        self.services: PluginServices | None = None
        #: The cluster node (propagation, membership), when the server runs one.
        self.cluster: ClusterNode | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()  # audit writes of hot reloads
        self._database: Any = None
        self._repo: Any = None
        self._store: Any = None
        self._installer: Installer | None = None
        self._updater: Updater | None = None
        self._host: PluginHost | None = None
        #: Every installed plugin is registered in the host (see :meth:`_near`).
        self._whole = True
        self._ops: HostOps
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._touched: set[str] = set()
        #: Installed plugins whose lifecycle state changed and is not written yet.
        self._unwritten: set[str] = set()
        self._held_states: set[str] = set()  # changed while an operation held the plugin
        self._state_writer: asyncio.Task[None] | None = None
        self._unsubscribe_states: Callable[[], None] | None = None
        #: Written as the origin of this service's changes, so refresh skips them.
        self._origin = "service-" + secrets.token_hex(8)
        self._change_seq = 0
        self._opened = False
        self._closed = False
        self.reconcile_report: ReconcileReport | None = None
        self.load_report: Any = None

    # ================================================================== open / close

    @classmethod
    async def open(cls, settings: HostSettings | None = None, **options: Any) -> PluginService:
        """Create and open a service (see the class parameters)."""
        service = cls(settings, **options)
        await service.start()
        return service

    async def start(self) -> None:
        """Open storage (migrating it), reconcile after crashes, build and start the host.
        Idempotent."""
        if self._opened:
            return
        if self._closed:
            raise OperationRefused("this PluginService was closed; open a new one",
                                   code="service.closed")
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._open_storage)
            if self._reconcile:
                # Damage from outside (a version's files deleted by hand) is looked for where
                # plugins run; a service that runs none (a CLI command on one plugin) repairs
                # only what an interrupted operation left, which costs no read per plugin.
                self.reconcile_report = await asyncio.to_thread(
                    self.installer.reconcile, outside=self._run_plugins)
            await self._build_host()
        except BaseException:
            await self._close_storage()
            raise
        self._opened = True
        if self._cluster_options is not None:
            node = ClusterNode(self, poll_interval=self._refresh_interval or 2.0,
                               **self._cluster_options)
            await node.start()
            self.cluster = node
        elif self._refresh_interval:
            self._refresher = asyncio.create_task(self._refresh_forever(self._refresh_interval))

    def _open_storage(self) -> None:
        from plughost.storage.backends import open_storage

        storage = open_storage(self.settings)
        self._database = storage.database
        self._repo = storage.repository
        if self._repo.origin is None:
            self._repo.origin = self._origin
        self._store = storage.objects
        s = self.settings
        self._installer = Installer(
            s, self._repo, self._store, trust_store=self._trust_store,
            host_version=self._host_version, grant_policy=self._grant_policy,
            fetch_policy=self._fetch_policy,
            **({"archive_limits": self._archive_limits} if self._archive_limits else {}))
        self._updater = Updater(self._installer)

    async def _build_host(self) -> None:
        s = self.settings
        # The change log position first: whatever changes while the rows are read is applied
        # again by the next refresh (applying a change is idempotent).
        self._change_seq = await asyncio.to_thread(self.repository.last_change_seq)
        dirs = s.development_dirs()
        # Where no plugin runs (the CLI beside no server), an operation registers only the
        # installed plugins it touches (_near), so a command on one plugin costs its
        # neighbours, not the catalogue. Development folders are discovered whole, and their
        # plugins may use any installed one: then every installed plugin is registered.
        self._whole = self._run_plugins or bool(dirs)
        plugins, configs, prepared = (await asyncio.to_thread(self._read_installed)
                                      if self._whole else ([], {}, []))
        options: dict[str, Any] = {"home": s.home, "config": configs, "watch": s.watch,
                                   "debounce": s.reload_debounce,
                                   "load_timeout": s.load_timeout, **self._host_options}
        if self._host_version is not None:
            options["host_version"] = self._host_version
        with collector_paused():  # a record and its index entries per plugin (core._gc)
            host = PluginHost(dirs, runtimes=self._runtimes or None, **options)
            for stored, ready in zip(plugins, prepared, strict=True):
                self._register(host, stored, ready)
            host.registry.catch_up()  # its operations query the indexes: indexed at open
        self._host = host
        host.on_reload(self._audit_reload)
        self._ops = HostOps(host, self._on_loop, run_plugins=self._run_plugins,
                            near=self._near)
        if self._want_services:
            # One source of truth: installed plugins' grants, requests and config live in the
            # database next to their rows; the installer grants in its own transaction.
            services = PluginServices(
                s.home,
                policy=installed_aware_policy(_scope_policy(self._grant_policy),
                                              self.repository),
                permission_store=RepositoryPermissionStore(self.repository),
                config_store=home_config_store(self.repository, s.home),
                # Duck-typed AuditLog (record/query/close) over audit_events.
                audit=RepositoryAuditLog(self.repository),  # type: ignore[arg-type]
                kv=await asyncio.to_thread(self._plugin_storage))
            services.install(host)
            self.services = services
            if self._start_plugins:
                await services.start()
        if self._start_plugins:
            self.load_report = await host.start()
        else:
            host.discover()
            host.resolve()
        if self._start_plugins:
            await self._persist_states([p.id for p in plugins])
            # From now on every state change is written as it happens (batched per loop turn):
            # the list's state filter is a query, and the database says what runs.
            self._unsubscribe_states = host.lifecycle.subscribe(self._state_changed)

    def _plugin_storage(self) -> DatabaseKeyValueStore:
        """``ctx.storage`` in the database, so every server on it sees the same data. A
        ``storage.db`` left by an earlier version is imported once (renamed afterwards)."""
        store = DatabaseKeyValueStore(self._database)
        legacy = self.settings.home / "storage.db"
        if legacy.is_file():
            copied = import_sqlite_kv(legacy, store)
            legacy.rename(legacy.with_name("storage.db.imported"))
            log.info("imported %d plugin storage values from %s into the database",
                     copied, legacy)
        return store

    def _read_installed(self) -> tuple[list[StoredPlugin], dict[str, Any], list[_Prepared]]:
        """Every installed plugin, its config and what registering it needs, read in one
        transaction with one query each (not one per plugin)."""
        with collector_paused():  # rows, manifests and paths per plugin, all kept (core._gc)
            with self.repository.reading() as repo:
                rows = repo.installed_with_versions()
                configs = dict(repo.config_values())
            return [p for p, _ in rows], configs, [self._prepare(p, v) for p, v in rows]

    def _version_root(self, version: Any) -> Path | None:
        """A stored version's files on this node (fetched and unpacked when another node
        installed it), or ``None`` when there is no such version."""
        return None if version is None else self.installer.version_dir(version)

    def _prepare(self, stored: StoredPlugin, version: Any = False) -> _Prepared:
        """Read what registering an installed plugin needs (database and files: call it in a
        worker thread): its manifest and cache dir, or why it cannot run. ``version``: its
        current version record when already read (``None``: there is none)."""
        if version is False:
            version = self.repository.get_version(stored.id, stored.version)
        root: Path | None = None
        try:
            try:
                # Its directory on this node (Installer.local_dir), unpacked when missing.
                root = self._version_root(version)
            except PlughostError as exc:
                root = self.installer.local_dir(version)
                raise InstallError(
                    f"the files of {stored.id} {stored.version} are missing and its package "
                    f"cannot be read ({exc.message}); reinstall it",
                    code="install.files_missing", plugin_id=stored.id) from exc
            if version is None or root is None:
                raise InstallError(
                    f"the files of {stored.id} {stored.version} are missing; reinstall it",
                    code="install.files_missing", plugin_id=stored.id)
            try:
                # The manifest the install validated and recorded, read from the files of this
                # checksum: no need to read and parse the file again (a third of the time),
                # nor to validate it again (see _recorded_manifest).
                manifest = _recorded_manifest(version.manifest, str(root))
            except ManifestError:
                manifest = load_manifest(root)  # says what is wrong with the file itself
            return manifest, root, None
        except PlughostError as exc:
            log.error("installed plugin %s cannot be registered: %s", stored.id, exc)
            recorded = stored.manifest
            if not recorded:  # read without its JSON columns (_read_installed)
                row = self.repository.get_plugin(stored.id)
                recorded = row.manifest if row is not None else {}
            return (manifest_from_dict(recorded, source=f"database:{stored.id}"), root, exc)

    def _read_near(self, ids: tuple[str, ...], uses: tuple[str, ...],
                   known: frozenset[str]) -> tuple[list[StoredPlugin], list[_Prepared]]:
        """What registering the installed plugins an operation on ``ids`` touches needs (see
        :meth:`_near`), but the ``known`` ones: read by id, in one transaction, through the
        requirements index, so it costs those plugins, not the plugins installed."""
        rows: dict[str, StoredPlugin] = {}
        with self.repository.reading() as repo:
            frontier = list(ids)
            while frontier:  # what requires them, transitively, enabled or not
                for row in repo.plugins_requiring(frontier.pop()):
                    if row.id not in rows:
                        rows[row.id] = row
                        frontier.append(row.id)
            rows.update(repo.get_plugins(i for i in ids if i not in rows))
            pending = [*uses, *(d for row in rows.values() for d in _uses(row))]
            absent: set[str] = set()
            while wanted := {d for d in pending if d not in rows and d not in absent}:
                found = repo.get_plugins(wanted)  # what they use, transitively
                absent |= wanted - found.keys()
                rows.update(found)
                pending = [d for row in found.values() for d in _uses(row)]
            pairs = repo.installed_with_versions(sorted(rows.keys() - known))
        return [p for p, _ in pairs], [self._prepare(p, v) for p, v in pairs]

    async def _near(self, *ids: str, uses: Iterable[str] = ()) -> PluginHost:
        """The host, with what an operation on ``ids`` reads registered and resolved: those
        plugins, the installed plugins that require them (transitively) and everything these
        use (``uses``: what a new version of one of them uses). Every rule the host applies
        to them (resolution, "enabled plugins need it", the dependents of the detail) reads
        no other plugin. Where every installed plugin is registered (a service that runs
        plugins), that is the host as it is."""
        host = self._h
        if self._whole:
            return host
        plugins, prepared = await asyncio.to_thread(
            self._read_near, ids, tuple(uses), frozenset(host.registry.ids()))
        added = self._register_missing(host, plugins, prepared)
        if added:
            host.resolve(only=added)
        return host

    def _register_all(self) -> None:
        """Register every installed plugin not registered yet (see :meth:`_near`) and resolve
        the whole order."""
        host = self._h
        plugins, _, prepared = self._read_installed()
        self._register_missing(host, plugins, prepared)
        host.registry.catch_up()
        host.resolve()
        self._whole = True

    def _register_missing(self, host: PluginHost, plugins: list[StoredPlugin],
                          prepared: list[_Prepared]) -> list[str]:
        """Register those of ``plugins`` the host does not have (one registered meanwhile is
        kept); their ids."""
        added = []
        for stored, ready in zip(plugins, prepared, strict=True):
            if host.registry.find(stored.id) is None:
                self._register(host, stored, ready)
                added.append(stored.id)
        return added

    @staticmethod
    def _register(host: PluginHost, stored: StoredPlugin, prepared: _Prepared) -> None:
        """Register one installed plugin in the host (see :meth:`_prepare`)."""
        manifest, root, failure = prepared
        if failure is not None:
            host.add(manifest, root, source="installed", failure=failure, phase="install")
        else:
            host.add(manifest, root, source="installed", enabled=stored.enabled)

    async def close(self) -> None:
        """Stop every plugin and release the database and object store. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe_states is not None:
            self._unsubscribe_states()
        if self._state_writer is not None:
            with contextlib.suppress(Exception):
                await self._state_writer
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.cluster is not None:
            await self.cluster.aclose()
        try:
            if self._host is not None:
                await self._host.aclose()
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            if self.services is not None:
                await self.services.aclose()
        finally:
            await self._close_storage()

    async def _close_storage(self) -> None:
        if self._repo is not None:
            await asyncio.to_thread(self._repo.close)  # its owner lease
        if self._database is not None:
            await asyncio.to_thread(self._database.close)
            self._database = None

    async def __aenter__(self) -> PluginService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ================================================================== other processes

    async def refresh(self) -> list[str]:
        """Bring the running host in line with storage changed by another process (the CLI
        beside a server, a second server on the same database): newly installed plugins are
        registered (and activated when this service starts plugins), updated or rolled-back
        ones switched with their state handed over, enable/disable applied, uninstalled ones
        unloaded, grants and config re-read. Returns the ids that changed. A plugin that fails
        to switch keeps running its old version and is logged (the other process already
        proved the new one).

        Costs what changed, not what is installed: it reads the change log from the last
        position it applied (see :meth:`Repository.changes_since`), then only those plugins.
        Database and file reads run in worker threads, never on the event loop."""
        self._check_open()
        try:
            seq, plugins, configs, grants = await asyncio.to_thread(self._changes_to_apply)
        except ChangesPruned:
            return await self._refresh_all()
        if seq == self._change_seq:
            return []
        rows = await asyncio.to_thread(
            lambda: {pid: self.repository.get_plugin(pid) for pid in plugins})
        changed = await self._apply_rows(rows)
        for pid in sorted(configs | grants | plugins):
            if await self._reread_services(pid, grants=pid in grants or pid in plugins):
                await self._start_if_waiting(pid)
                if pid not in changed:
                    changed.append(pid)
        self._change_seq = max(self._change_seq, seq)
        return changed

    def _changes_to_apply(self) -> tuple[int, set[str], set[str], set[str]]:
        """From the change log after our position: (newest seq, plugin ids whose row or
        versions changed, ids whose config changed, ids whose grants changed)."""
        seq = self._change_seq
        plugins: set[str] = set()
        configs: set[str] = set()
        grants: set[str] = set()
        while changes := self.repository.changes_since(seq, limit=10_000):
            for change in changes:
                if change.origin == self.repository.origin:
                    continue  # made through this service's host: already applied
                target = {"plugin": plugins, "version": plugins, "config": configs,
                          "grant": grants, "permission_request": grants}.get(change.kind)
                if target is not None:
                    target.add(change.key)
            seq = changes[-1].seq
        return seq, plugins, configs, grants

    async def _refresh_all(self) -> list[str]:
        """Compare every installed plugin (when the change log no longer reaches back to our
        position)."""
        seq = await asyncio.to_thread(self.repository.last_change_seq)
        rows: dict[str, StoredPlugin | None] = {
            p.id: p for p in await asyncio.to_thread(
                lambda: list(self.repository.iter_plugins()))}
        for record in list(self._h.registry):
            if record.source == "installed" and record.id not in rows:
                rows[record.id] = None
        changed = await self._apply_rows(rows)
        if self.services is not None:
            self.services.permissions.refresh()
        for pid in sorted(p for p, row in rows.items() if row is not None):
            if await self._reread_services(pid, grants=False):
                await self._start_if_waiting(pid)
                if pid not in changed:
                    changed.append(pid)
        self._change_seq = max(self._change_seq, seq)
        return changed

    async def _apply_rows(self, rows: Mapping[str, StoredPlugin | None]) -> list[str]:
        """Make the host match these plugin rows (``None``: uninstalled)."""
        changed: list[str] = []
        for pid in sorted(rows):
            async with self._serialised(pid):
                try:
                    # Read again under the lock: an operation of this service that held it
                    # may have changed the row since (applying the older row would undo it).
                    row = await asyncio.to_thread(self.repository.get_plugin, pid)
                    if row is None:
                        record = self._h.registry.find(pid)
                        if record is not None and record.source == "installed":
                            await self._ops.remove(pid)
                            changed.append(pid)
                    elif await self._refresh_one(pid, row):
                        changed.append(pid)
                except PlughostError as exc:
                    log.error("refreshing %s from storage failed: %s", pid, exc)
        return changed

    async def _reread_services(self, pid: str, *, grants: bool) -> bool:
        """Grants and config another process changed: drop the compiled grants, re-read the
        config version. True when the config changed."""
        services = self.services
        if services is None or not self._h.registry.find(pid):
            return False
        if grants:
            services.permissions.refresh(pid)
        with contextlib.suppress(PlughostError):
            if await asyncio.to_thread(services.config.knows, pid):
                return await services.config.refresh(pid)
        return False

    async def _start_if_waiting(self, pid: str) -> None:
        """Start an enabled plugin waiting in ``needs-config`` now that its config changed,
        wherever the change was made: what a node runs follows from the database (enabled,
        and a config that is valid), not from which node saw which request first."""
        if not (self._start_plugins and self._run_plugins) or self._host is None:
            return
        record = self._host.registry.find(pid)
        if record is None or record.state is not State.NEEDS_CONFIG:
            return
        async with self._serialised(pid):
            row = await asyncio.to_thread(self.repository.get_plugin, pid)
            if row is None or not row.enabled or record.state is not State.NEEDS_CONFIG:
                return
            await self._host.activate(pid)  # still invalid: it stays in needs-config
            await self._persist_states([pid])

    async def _refresh_one(self, pid: str, row: StoredPlugin) -> bool:
        host = self._h
        record = host.registry.find(pid)
        if record is None:
            self._register(host, row, await asyncio.to_thread(self._prepare, row))
            host.resolve(only=[pid])
            new = host.registry.get(pid)
            if row.enabled and self._start_plugins and not new.manifest.is_lazy:
                await host.activate(pid)
            await self._persist_states([pid])
            return True
        version = await asyncio.to_thread(self.repository.get_version, pid, row.version)
        root = await asyncio.to_thread(self._version_root, version)
        changed = False
        if not row.enabled and record.state is not State.DISABLED:
            await host.disable(pid)
            changed = True
        if record.source == "installed" and root is not None and _moved(record.root, root):
            # A disabled plugin only gets the new files; a running one is switched with its
            # state handed over.
            manifest = await asyncio.to_thread(load_manifest, root)
            await host.replace(manifest, root, source="installed")
            changed = True
        if row.enabled and record.state is State.DISABLED:
            await host.enable(pid, activate=self._start_plugins)
            changed = True
        if changed:
            await self._persist_states([pid])
        return changed

    async def _refresh_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except PlughostError:
                log.exception("periodic refresh from storage failed")

    # ================================================================== components

    @property
    def host(self) -> PluginHost:
        """The running host (plugins, calls, lifecycle events). Where no plugin runs
        (``run_plugins=False``), the operations register only the installed plugins they
        touch; asking for the host registers every one of them first (reading them all)."""
        host = self._h
        if not self._whole:
            self._register_all()
        return host

    @property
    def host_version(self) -> Version:
        """The plughost version manifests' ``host`` ranges are checked against (read without
        registering every installed plugin, unlike :attr:`host`)."""
        return self._h.host_version

    def runtime_availability(self) -> dict[str, str | None]:
        """Each runtime the host knows → ``None`` when it can run here, else why not
        (:meth:`PluginHost.runtime_availability`, without registering every plugin)."""
        return self._h.runtime_availability()

    @property
    def _h(self) -> PluginHost:
        """The host as it is: what the operations use once :meth:`_near` registered what
        they touch."""
        self._check_open()
        assert self._host is not None
        return self._host

    @property
    def repository(self) -> Any:
        """The :class:`~plughost.storage.repository.Repository`."""
        if self._repo is None:
            raise OperationRefused("the service is not open; call start() or use "
                                   "`async with`", code="service.closed")
        return self._repo

    @property
    def store(self) -> Any:
        """The object store."""
        self.repository  # noqa: B018 - raises when not open
        return self._store

    @property
    def installer(self) -> Installer:
        self.repository  # noqa: B018
        assert self._installer is not None
        return self._installer

    @property
    def updater(self) -> Updater:
        self.repository  # noqa: B018
        assert self._updater is not None
        return self._updater

    def _check_open(self) -> None:
        if self._closed or self._host is None:
            raise OperationRefused(
                "the PluginService is not open (or was closed); use `async with "
                "PluginService(settings)` or `await PluginService.open(settings)`",
                code="service.closed")

    def _require_running(self, plugin_id: str, verb: str, instead: str) -> None:
        """Refuse an operation on running plugins where none may run (``run_plugins=False``)."""
        if not self._run_plugins:
            raise OperationRefused(
                f"cannot {verb} {plugin_id}: no server is running on {self.settings.home}, so "
                f"no plugin runs; {instead}", code="server.not_running", plugin_id=plugin_id)

    # ================================================================== queries

    def _shown(self, plugin_id: str, state: str, enabled: bool, failure_reason: str | None,
               failure_phase: str | None) -> tuple[str, Any, tuple[str, ...], bool]:
        """``(state, error, warnings, live)`` an installed plugin shows, given its row's
        values: the live record of a plugin this service runs; else the stored state (on a
        home where nothing runs, what the next start begins from), unless registering it
        here failed, which is a live fact about it too."""
        record = self._host.registry.find(plugin_id) if self._host is not None else None
        if record is not None:
            if self._run_plugins and (self._start_plugins or plugin_id in self._touched):
                return record.state.value, error_of(record), tuple(record.warnings), True
            if record.state is State.FAILED:
                return record.state.value, error_of(record), tuple(record.warnings), False
        rule = stored_state if self._run_plugins else idle_state
        shown, error = rule(plugin_id, state, enabled, failure_reason, failure_phase)
        return shown, error, (), False

    def _info(self, stored: StoredPlugin, *, signed: bool | None = None) -> PluginInfo:
        state, error, warnings, live = self._shown(
            stored.id, stored.state, stored.enabled, stored.failure_reason,
            stored.failure_phase)
        return PluginInfo(
            id=stored.id, name=stored.name, version=stored.version,
            description=stored.description, author=stored.author, type=stored.type,
            runtime=stored.runtime, state=state, enabled=stored.enabled,
            source=stored.source, source_uri=stored.source_uri, sha256=stored.checksum,
            installed_at=stored.installed_at, updated_at=stored.updated_at, error=error,
            warnings=warnings, signed=signed, live=live)

    def _row_info(self, row: tuple[Any, ...]) -> PluginInfo:
        """A :data:`~plughost.storage.repository.SUMMARY_FIELDS` row as a PluginInfo."""
        (pid, name, version, description, author, type_, runtime, state, enabled, source,
         source_uri, checksum, reason, phase, installed, updated, signed) = row
        shown, error, warnings, live = self._shown(pid, state, enabled, reason, phase)
        return PluginInfo(
            id=pid, name=name, version=version, description=description, author=author,
            type=type_, runtime=runtime, state=shown, enabled=enabled, source=source,
            source_uri=source_uri, sha256=checksum, installed_at=installed,
            updated_at=updated, error=error, warnings=warnings, signed=signed, live=live)

    def _row_resource(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """The same row as its plugin resource (``_row_info(row).to_dict()``), built
        straight from the row: the list page's hot path."""
        (pid, name, version, description, author, type_, runtime, state, enabled, source,
         source_uri, checksum, reason, phase, installed, updated, signed) = row
        shown, error, warnings, live = self._shown(pid, state, enabled, reason, phase)
        installed_at = resources.iso(installed)
        # Never updated since installed (most plugins): the same time, formatted once.
        updated_at = installed_at if updated == installed else resources.iso(updated)
        return plugin_resource(pid, name, version, description, author, type_, runtime,
                               shown, enabled, source, source_uri, checksum, installed_at,
                               updated_at, error, warnings, signed, live)

    async def list_plugins(
        self,
        *,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
        status: int | None = None,
        runtime: str | None = None,
        source: str | None = None,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
    ) -> PluginList:
        """Installed plugins by id, filtered by type, state, enabled flag, Arcade ``status``
        (2 failed, 1 enabled, 0 disabled), runtime, source and a text ``q`` (id, name,
        description): one page of at most ``limit``, after ``cursor`` (the previous page's
        ``next_cursor``).

        Every filter and the page are one indexed query in the database (the state filter
        reads the states this service writes as they change), so a page costs its size, not
        what is installed; development folders are merged in by id. ``offset`` (instead of
        a cursor) still works and costs the plugins skipped."""
        filters = _filters(type, state, enabled, q, status, runtime, source)
        items, total, offset, following = await self._page(
            False, filters, limit=limit, offset=offset, cursor=cursor)
        return PluginList(tuple(items), total, limit, offset, next_cursor=following)

    async def plugin_page(
        self,
        *,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
        status: int | None = None,
        runtime: str | None = None,
        source: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`list_plugins` as the API's page of plugin resources (``items``,
        ``next_cursor``, ``total``; each item ``PluginInfo.to_dict()``), built straight from
        the database rows."""
        filters = _filters(type, state, enabled, q, status, runtime, source)
        items, total, _, following = await self._page(
            True, filters, limit=limit, offset=0, cursor=cursor)
        return {"items": items, "next_cursor": following, "total": total}

    async def plugin_counts(
        self,
        *,
        type: str | None = None,
        state: str | None = None,
        enabled: bool | None = None,
        q: str | None = None,
        status: int | None = None,
        runtime: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """How many plugins :meth:`list_plugins` finds with these filters (``total``), and for
        each of type, state, runtime and source how many plugins have each value among those
        matching every *other* filter (``by``): what a list's filter menus show beside each
        choice. Grouped counts in the database, kept until the next change, with the
        development folders' plugins added: it costs the values, not the plugins."""
        self._check_open()
        filters = _filters(type, state, enabled, q, status, runtime, source)
        if not self._run_plugins:  # the states shown are not the stored ones: count those
            every = (await self.list_plugins(limit=1 << 62)).items
            return _tally(every, filters)
        await self._states_written()  # the counts by state are the stored states
        counts = await asyncio.to_thread(self.repository.plugin_counts, **filters)
        dev = _tally(self._development_infos(), filters)
        by = {facet: dict(values) for facet, values in counts.by.items()}
        for facet, values in dev["by"].items():
            mine = by.setdefault(facet, {})
            for value, n in values.items():
                mine[value] = mine.get(value, 0) + n
        return {"total": counts.total + dev["total"], "by": by}

    async def _page(self, dicts: bool, filters: Mapping[str, Any], *, limit: int,
                    offset: int, cursor: str | None) -> tuple[list[Any], int, int, str | None]:
        """``(items, total, offset, next_cursor)`` of :meth:`list_plugins`: PluginInfo
        items, or with ``dicts`` their plugin resources (``to_dict()``)."""
        self._check_open()
        if limit < 1 or offset < 0:
            raise OperationRefused(
                f"limit must be >= 1 and offset >= 0, got {limit} and {offset}",
                code="request.invalid")
        item = self._row_resource if dicts else self._row_info
        after: str | None = None
        position = resources.decode_cursor(cursor)
        if position is not None:
            if isinstance(position.get("after"), str):
                after = position["after"]
            else:  # a cursor of an older server: {"offset": n}
                offset = resources.offset_of(cursor)
        live_state = filters["state"] is not None or filters["status"] is not None
        if not self._run_plugins and live_state:
            # Nothing runs here, so the states shown are not the stored ones (the last
            # server's): filter what is shown.
            every = (await self.list_plugins(
                **{**filters, "state": None, "status": None}, limit=1 << 62)).items
            shown = [i for i in every if i.id > (after or "") and _matches(i, filters)]
            page = shown[offset:offset + limit]
            more = len(shown) > offset + limit and bool(page)
            return ([i.to_dict() for i in page] if dicts else page), len(shown), offset, (
                resources.encode_cursor({"after": page[-1].id}) if more else None)
        if live_state:
            await self._states_written()
        every_dev = [i for i in self._development_infos() if _matches(i, filters)]
        dev = [i for i in every_dev if after is None or i.id > after]
        wanted = offset + limit
        # Only the read in a worker thread: building the items there too costs more under
        # concurrent requests (the two threads take the interpreter lock from each other).
        found = await asyncio.to_thread(self.repository.summary_page, after=after,
                                        limit=wanted, stored_times=dicts, **filters)
        rows: list[tuple[str, Any]] = [(r[0], item(r)) for r in found.rows]
        if dev:
            rows.extend((i.id, i.to_dict() if dicts else i) for i in dev)
            rows.sort(key=lambda pair: pair[0])
        more = found.more or len(rows) > wanted
        page_rows = rows[offset:wanted]
        following = (resources.encode_cursor({"after": page_rows[-1][0]})
                     if more and page_rows else None)
        return [i for _, i in page_rows], found.total + len(every_dev), offset, following

    def _development_infos(self) -> list[PluginInfo]:
        """Plugins of development folders under plugins_dir (run beside installed plugins,
        always enabled, not managed by install/update/uninstall), by id."""
        if self._host is None:
            return []
        return sorted((info_from_record(record, live=self._start_plugins)
                       for record in self._host.registry.not_from("installed")),
                      key=lambda i: i.id)

    def storage_problem(self) -> str:
        """Why this service cannot serve ("" when it can): the database or the object store
        (shared by every node of a cluster) does not answer. Blocking: run it in a thread."""
        return self.database_problem() or self.object_store_problem()

    def database_problem(self) -> str:
        """Why the database cannot serve ("" when it can). Blocking: run it in a thread."""
        try:
            self.repository.database.ping()
        except PlughostError as exc:
            return exc.message
        return ""

    def object_store_problem(self) -> str:
        """Why the object store cannot serve ("" when it can), naming it. Blocking: run it
        in a thread."""
        try:
            self.store.exists(_READINESS_PROBE)
        except PlughostError as exc:
            return f"the object store {self.object_store_name} is unreachable: {exc.message}"
        return ""

    @property
    def object_store_name(self) -> str:
        """The object store as an operator configured it (an S3 bucket with its endpoint, or
        a directory), for messages; no credentials."""
        store = self.store
        bucket = getattr(store, "bucket", None)
        if bucket is not None:
            endpoint = getattr(getattr(getattr(store, "client", None), "meta", None),
                               "endpoint_url", None)
            where = f"s3://{bucket}/{getattr(store, 'prefix', '')}"
            return f"{where} at {endpoint}" if endpoint else where
        root = getattr(store, "root", None)
        return str(root) if root is not None else repr(store)

    def nodes(self, plugin_id: str | None = None) -> list[NodeInfo]:
        """The servers sharing this database, with every plugin's state on each or
        ``plugin_id``'s alone (blocking: run it in a thread)."""
        from plughost.services.cluster import list_nodes

        if self.cluster is not None:
            return self.cluster.nodes(plugin_id)
        return list_nodes(self.repository, plugin_id=plugin_id)

    async def check_manifest(self, data: Mapping[str, Any]) -> ManifestCheck:
        """What install would refuse about this manifest (see
        :mod:`plughost.services.preflight`)."""
        self._check_open()
        return check_manifest(data, installer=self.installer, host=self._h)

    async def get(self, plugin_id: str) -> PluginDetail:
        """Everything about one installed plugin. :raises PluginNotFound:"""
        self._check_open()
        host = await self._near(plugin_id)
        record = host.registry.find(plugin_id)
        services = self.services
        live_config = services is not None and services.config.loaded(plugin_id)

        def load() -> tuple[Any, ...]:
            with self.repository.reading() as repo:  # one transaction for the whole detail
                stored = repo.require_plugin(plugin_id)
                config = None if live_config else repo.get_config(plugin_id)
                grants = ([str(s) for s in services.permissions.grants(plugin_id)]
                          if services is not None
                          else [g.scope for g in repo.list_grants(plugin_id)])
                return (stored, self.updater.versions(plugin_id, current=stored.version),
                        config, grants)

        try:
            stored, versions, config, grants = await asyncio.to_thread(load)
        except PluginNotFound:
            if record is not None and record.source != "installed":
                return _detail_from_record(record, host,  # a development folder
                                           live=self._start_plugins)
            raise
        values = {**(stored.default_config or {}), **(config.config if config else {})}
        revision = config.revision if config else 0
        if services is not None:
            # The live managers are the source of truth once attached (in memory once the
            # plugin's config is registered; the first read registers it).
            with contextlib.suppress(PlughostError):
                if live_config:
                    values = services.config.get(plugin_id)
                    revision = services.config.version(plugin_id)
                else:
                    live = await self.config(plugin_id)
                    values, revision = live["config"], live["version"]
        record = host.registry.find(plugin_id)
        stats = dict(record.instance.stats()) if record and record.instance else {}
        manifest = dict(stored.manifest)
        deps = {k: str(v) for k, v in (manifest.get("dependencies") or {}).items()}
        current = next((v for v in versions if v.current), None)
        info = replace(self._info(stored),
                       signed=None if current is None else current.signed_by is not None)
        return PluginDetail(
            info=info, manifest=manifest,
            path=str(record.root) if record and record.root else None,
            versions=tuple(versions), dependencies=deps,
            dependents=tuple(host.dependents(plugin_id)),
            config=values, config_revision=revision, grants=tuple(grants),
            stats=stats)

    async def versions(self, plugin_id: str) -> list[VersionInfo]:
        """Kept versions, newest install first. :raises PluginNotFound:"""
        self._check_open()
        return await asyncio.to_thread(self.updater.versions, plugin_id)

    async def metrics(self, plugin_id: str | None = None, *,
                      among: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Per-plugin counters (calls, errors, busy seconds...) of every plugin the host has,
        of those of ``among`` it has (a page of the list: costs the page), or of
        ``plugin_id`` alone. :raises PluginNotFound: the host does not have ``plugin_id``."""
        self._check_open()
        if plugin_id is not None:
            return {plugin_id: (await self._near(plugin_id)).metrics(plugin_id)}
        host = self.host
        if among is not None:
            return {pid: host.metrics(pid) for pid in among if pid in host.registry}
        with collector_paused():  # a nested dict per plugin, all kept (see core._gc)
            return {record.id: host.metrics(record.id) for record in host.registry}

    async def health(self, plugin_id: str) -> HealthReport:
        """Ask a plugin whether it is healthy (one that is not active is not).
        :raises PluginNotFound:"""
        self._check_open()
        host = await self._near(plugin_id)
        state = host.get(plugin_id).state.value
        result = await host.health(plugin_id)
        return HealthReport(plugin_id, result.ok, state, result.detail, dict(result.data))

    def plugin_states(self) -> dict[str, int]:
        """How many plugins the running host has in each lifecycle state (the states it has
        none in are left out), from the registry's counts: no plugin is looked at, since a
        readiness probe asks every few seconds."""
        self._check_open()
        return {state.value: n for state, n in self.host.registry.state_counts().items() if n}

    def command_names(self) -> list[str]:
        """The commands active plugins registered, sorted."""
        return sorted(self.host.commands.names())

    async def execute_command(self, name: str, args: Mapping[str, Any] | None = None, *,
                              timeout: float | None = None) -> Any:
        """Run a plugin command (activating a lazy plugin that declares it); its result."""
        return await self.host.commands.execute(name, args, timeout=timeout)

    def on_lifecycle(self, listener: Callable[[LifecycleEvent], None]) -> Callable[[], None]:
        """Call ``listener`` on every lifecycle change of every plugin; returns the undo."""
        return self.host.lifecycle.subscribe(listener)

    def on_event(self, pattern: str, listener: Callable[[Event], Any]) -> Callable[[], None]:
        """Subscribe ``listener`` to the plugins' events matching ``pattern`` (as the host,
        not as a plugin); returns the undo."""
        return self.host.bus.subscribe(pattern, listener)

    async def audit(self, *, plugin_id: str | None = None, action: str | None = None,
                    limit: int = 100, before_id: int | None = None, kind: str | None = None,
                    outcome: str | None = None, since: datetime | None = None,
                    until: datetime | None = None) -> list[dict[str, Any]]:
        """The one audit view, newest first: operations (install, update, rollback, uninstall,
        enable...) and security decisions (grants, revocations, denials, requests), as
        ``audit_entry`` resources. ``kind`` is ``operation`` or ``security``; a page is
        full (``limit`` entries) unless the log has no more matching ones."""
        self._check_open()
        if kind not in (None, "operation", "security"):
            raise OperationRefused(f"kind must be operation or security, not {kind!r}",
                                   code="request.invalid")

        # The kind is the action's prefix (resources.SECURITY_ACTIONS), asked of the query:
        # a page of security entries reads that page, not the operations between them.
        security = resources.SECURITY_ACTIONS

        def query() -> list[dict[str, Any]]:
            events = self.repository.query_audit(
                plugin_id=plugin_id, action=action, outcome=outcome, since=since,
                until=until, limit=limit, before_id=before_id,
                action_prefixes=security if kind == "security" else (),
                other_than=security if kind == "operation" else ())
            return [resources.audit_entry({
                "id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
                "plugin_id": e.plugin_id, "outcome": e.outcome, "details": dict(e.details)})
                for e in events]

        return await asyncio.to_thread(query)

    # ================================================================== config and permissions

    def _require_services(self) -> PluginServices:
        self._check_open()
        if self.services is None:
            raise OperationRefused(
                "this PluginService was opened with plugin_services=False; config and "
                "permissions are managed by the embedding application",
                code="service.unavailable")
        return self.services

    async def _registered(self, plugin_id: str) -> PluginServices:
        """The services, with ``plugin_id``'s config registered (it is at activation; a plugin
        that is not running in this process is registered from its stored manifest)."""
        services = self._require_services()
        if not await asyncio.to_thread(services.config.knows, plugin_id):
            record = (await self._near(plugin_id)).registry.find(plugin_id)
            if record is None:
                await asyncio.to_thread(self.repository.require_plugin, plugin_id)
                raise PluginUnavailable(f"{plugin_id} is not registered in the host",
                                        plugin_id=plugin_id)
            m = record.manifest
            services.config.register(plugin_id, m.config_schema, m.config_defaults, strict=False)
        return services

    async def config(self, plugin_id: str, *, redact: bool = True) -> dict[str, Any]:
        """The plugin's effective configuration (secrets as ``"***"`` unless ``redact=False``)
        with its version: ``{"plugin_id", "version", "config", "settings", "schema"}``."""
        services = await self._registered(plugin_id)
        cm = services.config
        return {"plugin_id": plugin_id, "version": cm.version(plugin_id),
                "config": cm.get(plugin_id, redact=redact),
                "settings": cm.settings(plugin_id, redact=redact),
                "schema": cm.schema(plugin_id)}

    async def set_config(self, plugin_id: str, values: Mapping[str, Any], *,
                         replace: bool = False, actor: str = "") -> dict[str, Any]:
        """Merge ``values`` into the operator settings (RFC 7386: ``None`` removes a key), or
        replace them with ``replace=True``. Validated against the schema; a running plugin may
        refuse the change (``config.rejected``); nothing changes then."""
        services = await self._registered(plugin_id)
        cm = services.config
        if replace:
            await cm.replace(plugin_id, values, actor=actor or "operator")
        else:
            await cm.set(plugin_id, values, actor=actor or "operator")
        await self._note_config(plugin_id)
        await self._start_if_waiting(plugin_id)
        return await self.config(plugin_id)

    async def config_history(self, plugin_id: str) -> list[dict[str, Any]]:
        """Every accepted configuration change, oldest first, secrets redacted."""
        services = await self._registered(plugin_id)
        return [{"version": r.version, "settings": dict(r.settings), "action": r.action,
                 "actor": r.actor, "time": r.time}
                for r in services.config.history(plugin_id)]

    async def restore_config(self, plugin_id: str, version: int, *,
                             actor: str = "") -> dict[str, Any]:
        """Make the settings of an earlier version current again (as a new version)."""
        services = await self._registered(plugin_id)
        await services.config.restore(plugin_id, version, actor=actor or "operator")
        await self._note_config(plugin_id)
        await self._start_if_waiting(plugin_id)
        return await self.config(plugin_id)

    async def grants(self, plugin_id: str) -> list[str]:
        """The permission scopes granted to a plugin (deny rules start with ``!``)."""
        services = self._require_services()
        await asyncio.to_thread(self.repository.require_plugin, plugin_id)
        return [str(s) for s in services.permissions.grants(plugin_id)]

    async def grant(self, plugin_id: str, scope: str, *, actor: str = "",
                    reason: str = "") -> list[str]:
        """Grant a scope (audited; effective at once). Returns the plugin's grants."""
        services = self._require_services()
        await asyncio.to_thread(self.repository.require_plugin, plugin_id)
        services.permissions.grant(plugin_id, scope, actor=actor or "operator", reason=reason)
        return await self.grants(plugin_id)

    async def revoke(self, plugin_id: str, scope: str, *, actor: str = "",
                     reason: str = "") -> list[str]:
        """Revoke a granted scope (audited; effective at once). Returns the remaining grants.
        :raises OperationRefused: when the scope was not granted."""
        services = self._require_services()
        await asyncio.to_thread(self.repository.require_plugin, plugin_id)
        services.permissions.revoke(plugin_id, scope, actor=actor or "operator", reason=reason)
        return await self.grants(plugin_id)

    async def permission_requests(self, *, plugin_id: str | None = None,
                                  status: str | None = "pending") -> list[dict[str, Any]]:
        """Scopes plugins asked for at run time (``status=None``: every status)."""
        services = self._require_services()
        return [_request_dict(r) for r in
                services.permissions.requests(plugin_id, status=status)]

    async def decide_request(self, request_id: int, *, approve: bool,
                             actor: str = "") -> dict[str, Any]:
        """Approve (granting the scope) or refuse a pending permission request."""
        services = self._require_services()
        return _request_dict(services.permissions.resolve(request_id, approve=approve,
                                                          actor=actor or "operator"))

    # ================================================================== helpers

    @contextlib.asynccontextmanager
    async def _serialised(self, plugin_id: str) -> Any:
        # One operation per plugin id per process on the event loop, so worker threads never
        # pile up waiting for the cross-process repository lock the installer takes.
        lock = self._locks.setdefault(plugin_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if plugin_id in self._held_states:  # changed during the operation: written now
                self._held_states.discard(plugin_id)
                self._note_state(plugin_id)

    async def _complete(self, fn: Callable[..., T], /, *args: Any,
                        abandon: Callable[[T], None] | None = None, **kwargs: Any) -> T:
        """Run blocking install work in a worker thread and see it through even when the
        caller is cancelled (an HTTP client that hangs up): a thread cannot be stopped, and an
        operation abandoned half-way would still hold its lock and staging. The cancellation
        is re-raised once the work has finished; ``abandon(result)`` releases what a finished
        but unwanted step returned."""
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            while not task.done():  # further cancellations must not cut the wait short either
                with contextlib.suppress(BaseException):
                    await asyncio.shield(task)
            if abandon is not None and not task.cancelled() and task.exception() is None:
                abandon(task.result())
            raise

    def _on_loop(self, coro: Awaitable[T]) -> T:
        """Run a host coroutine on the service loop from a worker thread and wait for it."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]

    def _audit_reload(self, result: ReloadResult) -> None:
        """One audit entry per hot reload (done or rolled back), written off the loop."""
        details = result.to_dict()
        actor = _reload_actor.get()  # read here: the listener runs in the reloading task

        def write() -> None:
            try:
                self.repository.append_audit(
                    "plugin.reload", actor=actor, plugin_id=result.plugin_id,
                    outcome="ok" if result.ok else "error", details=details)
            except PlughostError:
                log.exception("could not record the reload of %s in the audit log",
                              result.plugin_id)

        task = asyncio.get_running_loop().create_task(asyncio.to_thread(write))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _audit_failure(self, action: str, plugin_id: str | None, exc: PlughostError,
                             actor: str) -> None:
        outcome = "denied" if exc.code.startswith(("signature.", "integrity.", "archive.",
                                                   "package.", "download.address")) else "error"
        try:
            await asyncio.to_thread(self.repository.append_audit, action, actor=actor,
                                    plugin_id=plugin_id or exc.plugin_id, outcome=outcome,
                                    details={"error": exc.to_dict()})
        except PlughostError:
            log.exception("could not record the failed %s in the audit log", action)

    def _state_changed(self, event: LifecycleEvent) -> None:
        """A lifecycle listener: note the change; a task writes the changes of a loop turn."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._note_state(event.plugin_id)
        else:
            loop.call_soon_threadsafe(self._note_state, event.plugin_id)

    def _note_state(self, plugin_id: str) -> None:
        record = self._host.registry.find(plugin_id) if self._host is not None else None
        if record is None or record.source != "installed" or self._closed:
            return
        lock = self._locks.get(plugin_id)
        if lock is not None and lock.locked():
            # An operation on it is under way: it records the outcome itself, or is refused and
            # puts things back — what it passes through on the way is never written.
            self._held_states.add(plugin_id)
            return
        self._unwritten.add(plugin_id)
        if self._state_writer is None or self._state_writer.done():
            self._state_writer = asyncio.get_running_loop().create_task(self._write_states())

    async def _write_states(self) -> None:
        await asyncio.sleep(0)  # the other changes of this turn join the same write
        while self._unwritten:
            ids, self._unwritten = sorted(self._unwritten), set()
            try:
                await self._persist_states(ids)
            except PlughostError:
                log.exception("could not record the state of %s", ", ".join(ids))

    async def _states_written(self) -> None:
        """Wait until the state changes seen so far are in the database."""
        writer = self._state_writer
        if writer is not None and not writer.done():
            await asyncio.shield(writer)

    async def _note_config(self, plugin_id: str) -> None:
        """Where no plugin runs (no server on the home): record whether the plugin's config
        lacks what its schema requires, as the next start would find it — ``needs-config``
        with what to set, or no longer — so `list`, `status` and `info` say so now, and not
        that it will be activated. A server judges it itself when it starts the plugin."""
        if self._run_plugins or self.services is None:
            return
        try:
            services = await self._registered(plugin_id)
        except PlughostError:
            return  # a development folder, or a plugin whose config is not known here
        problems = await asyncio.to_thread(services.config.problems, plugin_id)
        await asyncio.to_thread(record_config_state, self.repository, plugin_id, problems)

    async def _persist_states(self, ids: Iterable[str]) -> None:
        """Write the host's current state of these plugins to the database (when changed).
        Not where no plugin runs: the stored state stays the one the last server saw."""
        if not self._run_plugins:
            return
        wanted: list[tuple[str, str, str | None, str | None]] = []
        ids = list(ids)
        self._touched.update(ids)
        for pid in ids:
            record = self._host.registry.find(pid) if self._host is not None else None
            if record is None:
                continue
            reason = phase = None
            if record.state in (State.FAILED, State.NEEDS_CONFIG):
                reason = getattr(record.error, "message", str(record.error))
                phase = record.phase
            wanted.append((pid, record.state.value, reason, phase))
        if not wanted:
            return

        def write() -> None:
            with self.repository.unit_of_work() as repo:
                stored = repo.plugin_states(pid for pid, *_ in wanted)
                for pid, state, reason, phase in wanted:
                    if pid in stored and stored[pid] != (state, reason):
                        repo.set_state(pid, state, failure_reason=reason, failure_phase=phase)

        await asyncio.to_thread(write)

    async def _resync(self, plugin_id: str, *, installed_now: bool = False) -> None:
        """After the installer's transaction: the permission and config managers re-read what it
        wrote (grants, config version). During an install's activation the plugin had no row
        yet, so its state lived in the fallback stores; that is dropped now."""
        services = self.services
        if services is None:
            return
        store = services.permissions.store
        if installed_now and isinstance(store, RepositoryPermissionStore):
            store.fallback.forget(plugin_id)
        services.permissions.refresh(plugin_id)
        await self._reread_services(plugin_id, grants=False)

    async def info(self, plugin_id: str) -> PluginInfo:
        """One installed plugin's resource: the same fields, read the same way, as the list
        and the detail show (its signature too), and what an operation on it answers.
        :raises PluginNotFound:"""

        def read() -> tuple[StoredPlugin, bool | None]:
            stored = self.repository.require_plugin(plugin_id)
            return stored, self.repository.signed_plugins([plugin_id]).get(plugin_id)

        stored, signed = await asyncio.to_thread(read)
        return self._info(stored, signed=signed)

    # ================================================================== operations

    async def install(
        self,
        source: str | Path,
        *,
        sha256: str | None = None,
        enable: bool = True,
        activate: bool = True,
        progress: Progress | None = None,
        actor: str = "",
        allow_unsigned: bool = False,
        origin: str | None = None,
    ) -> InstallResult:
        """Install a package from a file path or an https URL (see the installer doc).

        :param allow_unsigned: accept it without a signature even when the policy requires
            one (for a plugin in development; recorded in the audit entry).

        :param sha256: the SHA-256 the package must have (compared in constant time).
        :param enable: record it enabled (loaded at start); ``False`` installs it disabled.
        :param activate: activate it now (when enabled); an activation failure undoes the
            install. ``False`` leaves it resolved.
        :param progress: ``progress(stage, done, total)`` for download / extract / store.
        :param origin: the marketplace a local ``source`` was fetched from (recorded as the
            plugin's source, ``market``).
        :raises InstallError: ``install.exists`` (use update) and other refusals.
        """
        self._check_open()
        activate = activate and self._run_plugins
        installer = self.installer
        plugin_id: str | None = None
        try:
            staged = await self._complete(installer.stage, source, sha256=sha256,
                                          progress=progress, origin=origin,
                                          allow_unsigned=allow_unsigned,
                                          abandon=Staged.cleanup)
        except PlughostError as exc:
            await self._audit_failure("plugin.install", None, exc, actor)
            raise
        try:
            plugin_id = staged.plugin_id
            async with self._serialised(plugin_id):
                existing = self._h.registry.find(plugin_id)
                if existing is not None and existing.source != "installed":
                    where = existing.root or existing.source
                    raise InstallError(
                        f"a plugin {plugin_id} is already loaded from {where} (a development "
                        "folder under plugins_dir?); remove it before installing",
                        code="install.conflict", plugin_id=plugin_id)

                def hook(manifest: Manifest, root: Path) -> Undo:
                    return self._on_loop(self._ops.add(manifest, root, activate))

                result = await self._complete(
                    installer.install, staged, enabled=enable, actor=actor,
                    activate=hook, progress=progress)
                await self._resync(plugin_id, installed_now=True)
                if not enable:  # the installer activates nothing disabled: register it now
                    root = Path(result.cache_path)
                    self._h.add(load_manifest(root), root, source="installed", enabled=False)
                await self._persist_states([plugin_id])
                await self._note_config(plugin_id)
        except PlughostError as exc:
            await self._audit_failure("plugin.install", plugin_id, exc, actor)
            raise
        finally:
            staged.cleanup()  # quick (close + remove staging); must run even when cancelled
        record = self._h.registry.find(plugin_id)
        return replace(result, state=record.state.value if record else result.state)

    async def update(
        self,
        plugin_id: str,
        source: str | Path,
        *,
        sha256: str | None = None,
        progress: Progress | None = None,
        actor: str = "",
        force: bool = False,
        origin: str | None = None,
        allow_unsigned: bool = False,
    ) -> UpdateResult:
        """Install a new version beside the current one, hand the running plugin's state
        over, activate and health-check it; on any failure the old version keeps running and
        nothing changes. Versions beyond ``settings.keep_versions`` are pruned. ``force``
        reinstalls a version that is already kept (see :meth:`Updater.update`);
        ``allow_unsigned`` accepts the new package without a signature as :meth:`install`
        does (the installer's one rule; recorded in the audit entry)."""
        self._check_open()
        await asyncio.to_thread(self.repository.require_plugin, plugin_id)
        try:
            staged = await self._complete(self.installer.stage, source, sha256=sha256,
                                          progress=progress, origin=origin,
                                          allow_unsigned=allow_unsigned,
                                          abandon=Staged.cleanup)
        except PlughostError as exc:
            await self._audit_failure("plugin.update", plugin_id, exc, actor)
            raise
        try:
            async with self._serialised(plugin_id):

                def hook(manifest: Manifest, root: Path, from_version: str) -> Undo:
                    return self._on_loop(self._ops.switch(manifest, root))

                result = await self._complete(
                    self.updater.update, plugin_id, staged, actor=actor, switch=hook,
                    progress=progress, force=force)
                await self._resync(plugin_id)
                await self._refresh_disabled(plugin_id)
                await self._persist_states([plugin_id])
        except PlughostError as exc:
            await self._audit_failure("plugin.update", plugin_id, exc, actor)
            raise
        finally:
            staged.cleanup()  # quick (close + remove staging); must run even when cancelled
        return replace(result, state=self._h.registry.get(plugin_id).state.value)

    async def rollback(self, plugin_id: str, to: str | None = None, *,
                       actor: str = "") -> UpdateResult:
        """Switch back to a kept version (``to``, or the most recently installed other one),
        handing the state over as an update does."""
        self._check_open()
        try:
            async with self._serialised(plugin_id):

                def hook(manifest: Manifest, root: Path, from_version: str) -> Undo:
                    return self._on_loop(self._ops.switch(manifest, root))

                result = await self._complete(self.updater.rollback, plugin_id, to,
                                                 actor=actor, switch=hook)
                await self._resync(plugin_id)
                await self._refresh_disabled(plugin_id)
                await self._persist_states([plugin_id])
        except PlughostError as exc:
            await self._audit_failure("plugin.rollback", plugin_id, exc, actor)
            raise
        return replace(result, state=self._h.registry.get(plugin_id).state.value)

    async def _refresh_disabled(self, plugin_id: str) -> None:
        """A disabled plugin is not switched in the host; point it at the new files."""
        stored = await asyncio.to_thread(self.repository.require_plugin, plugin_id)
        if stored.enabled:
            return
        version = await asyncio.to_thread(self.repository.get_version, plugin_id,
                                          stored.version)
        root = await asyncio.to_thread(self.installer.version_dir, version)
        manifest = load_manifest(root)
        host = await self._near(plugin_id, uses=(*manifest.dependencies,
                                                 *manifest.optional_dependencies))
        await host.replace(manifest, root, source="installed")

    async def uninstall(self, plugin_id: str, *, cascade: bool = False,
                        keep_data: bool = False, actor: str = "") -> UninstallResult:
        """Deactivate, unload and remove a plugin: rows (plugin, versions, config, grants),
        blobs, cached files and its private data directory (unless ``keep_data``). Refused
        while enabled plugins require it unless ``cascade`` (which uninstalls them first,
        dependents before what they depend on)."""
        self._check_open()
        installer = self.installer
        try:
            await asyncio.to_thread(self.repository.require_plugin, plugin_id)
            order = [plugin_id]
            if cascade:
                dependents = await asyncio.to_thread(installer.dependents, plugin_id,
                                                     transitive=True)
                order = [*dependents, plugin_id]
            removed: list[str] = []
            versions: dict[str, tuple[str, ...]] = {}
            for pid in order:
                async with self._serialised(pid):

                    def hook(target: str) -> Undo:
                        return self._on_loop(self._ops.remove(target))

                    versions[pid] = await self._complete(installer.uninstall, pid,
                                                            actor=actor, remove=hook,
                                                            keep_data=keep_data)
                    removed.append(pid)
                    if self.services is not None:
                        self.services.permissions.forget(pid)
                        if not keep_data:  # its key-value namespace is its data too
                            self.services.kv.clear(pid)
        except PlughostError as exc:
            await self._audit_failure("plugin.uninstall", plugin_id, exc, actor)
            raise
        return UninstallResult(tuple(removed), versions)

    async def _development(self, plugin_id: str) -> PluginRecord | None:
        """The host's record of a plugin from a development folder (no database row), or
        ``None`` for an installed one. Neither: :class:`PluginNotFound`."""
        if await asyncio.to_thread(self.repository.get_plugin, plugin_id) is not None:
            return None
        record = self._h.registry.find(plugin_id)
        if record is None:
            raise PluginNotFound(
                f"no plugin {plugin_id!r} is installed or in a development folder; "
                "`plughost list` shows them", plugin_id=plugin_id)
        return record

    async def _toggle_development(self, record: PluginRecord, enable: bool, activate: bool,
                                  actor: str) -> PluginInfo:
        """Enable or disable a development plugin in the running host (it has no database row:
        the change lasts until the service restarts), with an audit entry."""
        if enable:
            await self._h.enable(record.id, activate=activate)
        else:
            await self._h.disable(record.id)
        await asyncio.to_thread(
            self.repository.append_audit, "plugin.enable" if enable else "plugin.disable",
            actor=actor, plugin_id=record.id, details={"development": True})
        return info_from_record(record, live=self._start_plugins)

    async def reload(self, plugin_id: str, *, actor: str = "") -> ReloadResult:
        """Hot reload a plugin from its files (a watched development folder: its current
        contents, as a save would), handing its state over; on failure the running version
        keeps serving and the error is raised. Audited like every reload."""
        self._check_open()
        self._require_running(plugin_id, "reload",
                              "the server loads its current files when it starts "
                              "(`plughost serve`)")
        async with self._serialised(plugin_id), _reloading_for(actor or "operator"):
            installed = await self._development(plugin_id) is None
            host = self._h
            host.registry.get(plugin_id)  # installed but not registered: PluginNotFound
            if host.source_of(plugin_id) is not None:
                result = await host.reload_source(plugin_id)
                if result is None:  # the files did not change: reload them anyway
                    result = await host.reload(plugin_id)
            else:
                result = await host.reload(plugin_id)
            if installed:
                await self._persist_states([plugin_id])
        return result

    async def rollback_build(self, plugin_id: str, ref: str | None = None, *,
                             actor: str = "") -> ReloadResult:
        """Reload a watched development plugin to one of its kept good builds (``ref``: a
        digest prefix or a version; default: the one before the current)."""
        self._check_open()
        self._require_running(plugin_id, "roll back a build of",
                              "the server loads its current files when it starts "
                              "(`plughost serve`)")
        async with self._serialised(plugin_id), _reloading_for(actor or "operator"):
            await self._development(plugin_id)
            if self._h.source_of(plugin_id) is None:
                raise ReloadError(
                    f"{plugin_id} is not a watched development plugin, so it has no builds; "
                    "an installed plugin rolls back to a kept version (--to)",
                    plugin_id=plugin_id, code="reload.no_build")
            return await self._h.rollback_build(plugin_id, ref)

    async def enable(self, plugin_id: str, *, activate: bool = True,
                     actor: str = "") -> PluginInfo:
        """Persistently enable a plugin and (unless ``activate=False``) activate it now.

        A plugin that cannot be resolved or activated is refused with that error and stays
        disabled (nothing is recorded). A development plugin is enabled in the running host."""
        self._check_open()
        activate = activate and self._run_plugins
        development = await self._development(plugin_id)
        if development is not None:
            async with self._serialised(plugin_id):
                return await self._toggle_development(development, True, activate, actor)
        async with self._serialised(plugin_id):
            stored = await asyncio.to_thread(self.repository.require_plugin, plugin_id)
            host = await self._near(plugin_id)
            record = host.registry.find(plugin_id)
            if record is not None and record.state in (State.DISABLED, State.FAILED,
                                                       State.NEEDS_CONFIG):
                was_disabled = record.state is State.DISABLED
                await host.enable(plugin_id, activate=activate)
                now: State = record.state  # enable() moved it on (mypy cannot see that)
                if now is State.FAILED and not stored.enabled:
                    error = record_error(record, record.phase or "enable")
                    if was_disabled:
                        await host.disable(plugin_id)
                    raise error
            elif record is not None and activate and record.state is not State.ACTIVE:
                await host.activate(plugin_id)
            if not stored.enabled:
                def write() -> None:
                    with self.repository.unit_of_work() as repo:
                        repo.set_enabled(plugin_id, True)
                        repo.append_audit("plugin.enable", actor=actor, plugin_id=plugin_id)

                try:
                    await asyncio.to_thread(write)
                except BaseException:
                    if record is not None:
                        await host.disable(plugin_id)
                    raise
            await self._persist_states([plugin_id])
        await self._note_config(plugin_id)
        return await self.info(plugin_id)

    async def disable(self, plugin_id: str, *, actor: str = "") -> PluginInfo:
        """Persistently disable a plugin: deactivated and unloaded now, not loaded at start,
        still installed. Refused while enabled plugins require it (naming them). A development
        plugin is disabled in the running host."""
        self._check_open()
        development = await self._development(plugin_id)
        if development is not None:
            async with self._serialised(plugin_id):
                return await self._toggle_development(development, False, False, actor)
        async with self._serialised(plugin_id):
            stored = await asyncio.to_thread(self.repository.require_plugin, plugin_id)
            host = await self._near(plugin_id)
            record = host.registry.find(plugin_id)
            was_active = record is not None and record.state is State.ACTIVE
            if record is not None and record.state is not State.DISABLED:
                await host.disable(plugin_id)
            if stored.enabled:
                def write() -> None:
                    with self.repository.unit_of_work() as repo:
                        repo.set_enabled(plugin_id, False)
                        repo.set_state(plugin_id, State.DISABLED.value)
                        repo.append_audit("plugin.disable", actor=actor, plugin_id=plugin_id)

                try:
                    await asyncio.to_thread(write)
                except BaseException:
                    if record is not None:
                        await host.enable(plugin_id, activate=was_active)
                    raise
            await self._persist_states([plugin_id])
        return await self.info(plugin_id)

    async def activate(self, plugin_id: str) -> PluginInfo:
        """Activate an installed, enabled plugin now (its dependencies first)."""
        self._check_open()
        self._require_running(plugin_id, "activate",
                              "`plughost serve` activates every enabled plugin when it starts")
        async with self._serialised(plugin_id):
            stored = await asyncio.to_thread(self.repository.require_plugin, plugin_id)
            if not stored.enabled:
                raise PluginUnavailable(
                    f"{plugin_id} is disabled; enable it first (`plughost enable {plugin_id}`)",
                    plugin_id=plugin_id)
            record = await self._h.activate(plugin_id)
            await self._persist_states([plugin_id])
            if record.state is not State.ACTIVE:
                raise record_error(record, "activate")
        return await self.info(plugin_id)

    async def deactivate(self, plugin_id: str, *, cascade: bool = False) -> PluginInfo:
        """Deactivate a running plugin (refused while active plugins need it, unless
        ``cascade``). It stays enabled: it is activated again at the next start."""
        self._check_open()
        self._require_running(plugin_id, "deactivate",
                              f"it runs when the server starts (`plughost serve`); to keep it "
                              f"off, `plughost disable {plugin_id}`")
        async with self._serialised(plugin_id):
            await asyncio.to_thread(self.repository.require_plugin, plugin_id)
            await self._h.deactivate(plugin_id, cascade=cascade)
            await self._persist_states([plugin_id, *self._h.dependents(plugin_id)])
        return await self.info(plugin_id)


def _filters(type: str | None, state: str | None, enabled: bool | None, q: str | None,
             status: int | None, runtime: str | None, source: str | None) -> dict[str, Any]:
    """The plugin list's filters by name, the state and Arcade status checked."""
    if state is not None:
        try:
            state = State(state).value
        except ValueError:
            raise OperationRefused(
                f"{state!r} is not a plugin state; use one of "
                + ", ".join(s.value for s in State), code="request.invalid") from None
    if status not in (None, 0, 1, 2):
        raise OperationRefused(f"status must be 0, 1 or 2, got {status!r}",
                               code="request.invalid")
    return {"type": type, "state": state, "enabled": enabled, "q": q, "status": status,
            "runtime": runtime, "source": source}


def _matches(info: PluginInfo, filters: Mapping[str, Any], skip: str = "") -> bool:
    """Whether ``info`` passes every filter of the list but ``skip``: the rule the database
    applies to the stored rows (``Repository._plugin_filter``), for the plugins it does not
    hold (development folders) or whose state it does not know (nothing runs)."""
    for name in ("type", "state", "enabled", "runtime", "source"):
        wanted = filters[name]
        if name != skip and wanted is not None and getattr(info, name) != wanted:
            return False
    if filters["status"] is not None and (
            arcade_status(info.state, info.enabled) != filters["status"]):
        return False
    needle = filters["q"].lower() if filters["q"] else ""
    return not needle or any(needle in t.lower() for t in (info.id, info.name,
                                                           info.description))


def _tally(infos: Iterable[PluginInfo], filters: Mapping[str, Any]) -> dict[str, Any]:
    """:meth:`PluginService.plugin_counts` of these plugins, counted one by one."""
    infos = list(infos)
    by: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
    for info in infos:
        for facet, values in by.items():
            if _matches(info, filters, skip=facet):
                value = str(getattr(info, facet))
                values[value] = values.get(value, 0) + 1
    return {"total": sum(1 for i in infos if _matches(i, filters)), "by": by}


def _detail_from_record(record: PluginRecord, host: PluginHost, *,
                        live: bool) -> PluginDetail:
    m = record.manifest
    return PluginDetail(
        info=info_from_record(record, live=live), manifest=m.to_dict(),
        path=str(record.root) if record.root else None, versions=(),
        dependencies={k: str(v) for k, v in m.dependencies.items()},
        dependents=tuple(host.dependents(record.id)), config=dict(m.config_defaults),
        config_revision=0, grants=(),
        stats=dict(record.instance.stats()) if record.instance is not None else {})


def _request_dict(request: Any) -> dict[str, Any]:
    return {"id": request.id, "plugin_id": request.plugin, "scope": request.scope,
            "reason": request.reason, "status": request.status,
            "created": resources.iso(request.created),
            "resolved_by": request.resolved_by}


def _recorded_manifest(data: Any, source: str) -> Manifest:
    """The manifest an install recorded (``plugin_versions.manifest``), rebuilt without
    validating it again: the installer wrote it with :meth:`Manifest.to_dict` from the manifest
    it validated, into plughost's own database (whoever can rewrite that can rewrite grants and
    states too, so validating it again protects nothing), and at 10,000 plugins checking every
    field again was a tenth of a start. What :func:`manifest_from_own_dict` cannot rebuild (a
    shape another version wrote, a wrong value) is validated field by field, which names what
    is wrong.

    :raises ManifestError: when the recorded manifest is not valid.
    """
    if type(data) is dict:
        try:
            return manifest_from_own_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError, PlughostError):
            return manifest_from_plain(data, source=source)
    return manifest_from_dict(data, source=source)


def _scope_policy(policy: GrantPolicy) -> Any:
    """Adapt a grant policy over scope strings to the permission manager's (over Scopes)."""

    def apply(plugin_id: str, declared: Any) -> list[Any]:
        wanted = {str(s) for s in policy(plugin_id, [str(d) for d in declared])}
        return [d for d in declared if str(d) in wanted]

    apply.__name__ = getattr(policy, "__name__", "policy")
    return apply


def _uses(row: StoredPlugin) -> list[str]:
    """The ids an installed plugin's stored manifest names among its dependencies, required
    or optional (none when it no longer validates, as the installer reads it)."""
    manifest = stored_manifest(row)
    return [] if manifest is None else [*manifest.dependencies, *manifest.optional_dependencies]


def _moved(current: Any, root: Path) -> bool:
    """Whether a plugin registered from ``current`` must switch to ``root`` (compared once
    resolved: the same directory spelled two ways is not a new version)."""
    return current is None or Path(current).resolve() != root.resolve()
