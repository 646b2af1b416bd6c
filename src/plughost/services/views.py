"""What the management API returns — plain frozen records with ``to_dict()`` (JSON-ready) — and
:class:`PluginManagement`, the one typed facade the local CLI, the HTTP API and the remote CLI
share (:class:`~plughost.services.manager.PluginService` locally, the CLI's ``RemoteBackend``
over HTTP). mypy checks both against it, so an interface never reaches past it into the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from plughost.services.resources import iso

if TYPE_CHECKING:
    from plughost.core.registry import PluginRecord
    from plughost.errors import Problem
    from plughost.host import ReloadResult
    from plughost.services.installer import InstallResult, UninstallResult
    from plughost.services.sources import Progress
    from plughost.services.updater import UpdateResult, VersionInfo
    from plughost.storage.catalog import PluginReads
    from plughost.storage.records import StoredPlugin
    from plughost.storage.repository import Repository

__all__ = [
    "HealthReport",
    "PluginDetail",
    "PluginInfo",
    "PluginList",
    "PluginManagement",
    "arcade_status",
    "error_of",
    "idle_info",
    "idle_state",
    "info_from_record",
    "list_stored",
    "plugin_resource",
    "record_config_state",
    "stored_info",
    "stored_state",
]


def arcade_status(state: str, enabled: bool) -> int:
    """The Arcade-compatible status (``isEnabled``, ``status``): 2 error, 1 enabled,
    0 disabled."""
    if state == "failed":
        return 2
    return 1 if enabled else 0


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed plugin: its stored record merged with its live state in the host."""

    id: str
    name: str
    version: str
    description: str
    author: str
    type: str
    runtime: str
    state: str
    """Live lifecycle state (``active``, ``resolved``, ``disabled``, ``failed``...)."""
    enabled: bool
    source: str
    source_uri: str
    sha256: str
    installed_at: datetime | None
    updated_at: datetime | None
    error: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    signed: bool | None = None
    """Installed with a signature by a trusted key (``False``: without one, e.g.
    ``--allow-unsigned``); ``None`` when not known (a development folder, or a list that does
    not read versions)."""
    live: bool = False
    """``state`` is what a running host runs now (a server, or a host started in this
    process); ``False``: no host runs it here, ``state`` is what the next start begins from."""

    def to_dict(self) -> dict[str, Any]:
        """The plugin resource (:func:`plughost.services.resources.plugin`'s shape, times
        already ISO UTC), plus Arcade's ``status`` and ``isBuiltin``."""
        return plugin_resource(
            self.id, self.name, self.version, self.description, self.author, self.type,
            self.runtime, self.state, self.enabled, self.source, self.source_uri, self.sha256,
            iso(self.installed_at), iso(self.updated_at), self.error, self.warnings,
            self.signed, self.live)


def plugin_resource(id: str, name: str, version: str, description: str, author: str,
                    type: str, runtime: str, state: str, enabled: bool, source: str,
                    source_uri: str, sha256: str, installed_at: str | None,
                    updated_at: str | None, error: Mapping[str, Any] | None,
                    warnings: Iterable[str], signed: bool | None,
                    live: bool) -> dict[str, Any]:
    """The plugin resource of :meth:`PluginInfo.to_dict` from its values (times already ISO
    UTC strings). Built in one step: a list page builds a hundred of these per request
    (:meth:`~plughost.services.manager.PluginService.plugin_page` straight from database
    rows, without a :class:`PluginInfo` each)."""
    status = arcade_status(state, enabled)
    return {
        "id": id, "name": name, "version": version, "description": description,
        "author": author, "type": type, "runtime": runtime, "state": state,
        "enabled": enabled, "source": source, "source_uri": source_uri, "sha256": sha256,
        "installed_at": installed_at, "updated_at": updated_at,
        "error": dict(error) if error else None, "warnings": list(warnings),
        "signed": signed, "live": live,
        # The Arcade-compatible names, beside plughost's own (same values).
        "pluginId": id, "pluginType": type, "checksum": sha256, "installTime": installed_at,
        "updateTime": updated_at, "isEnabled": status, "status": status, "isBuiltin": 0,
    }


SHOWS_ERROR = frozenset({"failed", "needs-config"})
"""States whose record carries an error to show (why it is not running)."""


def error_of(record: PluginRecord) -> dict[str, Any] | None:
    """Why a failed (or ``needs-config``) plugin is not running: code, message, phase, hint."""
    if record.error is None or record.state.value not in SHOWS_ERROR:
        return None
    return {"code": getattr(record.error, "code", type(record.error).__name__),
            "message": getattr(record.error, "message", str(record.error)),
            "phase": record.phase, "hint": record.hint}


def info_from_record(record: PluginRecord, *, live: bool = False) -> PluginInfo:
    """A plugin the host found in a development folder (not installed: no database row);
    ``live`` when that host runs (a server), not one that only discovered the folder."""
    m = record.manifest
    return PluginInfo(
        id=m.id, name=m.name, version=str(m.version), description=m.description,
        author=m.author, type=m.type, runtime=m.runtime, state=record.state.value,
        enabled=record.state.value != "disabled", source=record.source,
        source_uri=str(record.root) if record.root else "", sha256="", installed_at=None,
        updated_at=None, error=error_of(record), warnings=tuple(record.warnings), live=live)


def stored_state(plugin_id: str, state: str, enabled: bool, failure_reason: str | None,
                 failure_phase: str | None) -> tuple[str, dict[str, Any] | None]:
    """The state and error an installed plugin's row shows (:func:`stored_info`): the state a
    running service last observed (``disabled`` when switched off), and why it failed or
    waits for configuration."""
    error = None
    if state in SHOWS_ERROR and failure_reason:
        from plughost.core.lifecycle import CONFIG_HINT

        waiting = state == "needs-config"
        error = {"code": "config.invalid" if waiting else "plugin.failed",
                 "message": failure_reason, "phase": failure_phase,
                 "hint": CONFIG_HINT.format(id=plugin_id) if waiting else
                 _stored_hint(failure_reason)}
    return (state if enabled else "disabled"), error


def _stored_hint(reason: str) -> str | None:
    """The hint of a stored failure: the extra to install when the runtime was missing (its
    message names it, as the live record's hint does), else none."""
    if "pip install 'plughost[" not in reason:
        return None
    import re

    from plughost.errors import extra_hint

    found = re.findall(r"pip install 'plughost\[([a-z0-9,_-]+)\]'", reason)
    return extra_hint(*(e for group in found for e in group.split(","))) if found else None


def record_config_state(repository: Repository, plugin_id: str,
                        problems: Sequence[Problem]) -> None:
    """Where no server runs: record what the next start will find about an installed
    plugin's config — ``needs-config`` with what to set when it lacks what its schema
    requires (unless the plugin is disabled or failed for another reason), back to waiting
    for the start once it is complete — so `list`, `status` and `info` say so before any
    start. A server judges it itself when it starts the plugin."""
    from plughost.core.lifecycle import State
    from plughost.errors import ConfigInvalid

    with repository.unit_of_work() as repo:
        stored = repo.require_plugin(plugin_id)
        if problems and stored.state not in (State.FAILED.value, State.DISABLED.value):
            reason = ConfigInvalid(
                list(problems), plugin_id=plugin_id, what=f"current config of {plugin_id}",
                advice=f"Set them with `plughost config set {plugin_id} KEY=VALUE`.").message
            if (stored.state, stored.failure_reason) != (State.NEEDS_CONFIG.value, reason):
                repo.set_state(plugin_id, State.NEEDS_CONFIG.value, failure_reason=reason,
                               failure_phase="config")
        elif not problems and stored.state == State.NEEDS_CONFIG.value:
            repo.set_state(plugin_id, State.RESOLVED.value)


def idle_state(plugin_id: str, state: str, enabled: bool, failure_reason: str | None,
               failure_phase: str | None) -> tuple[str, dict[str, Any] | None]:
    """:func:`stored_state` where no server runs (:func:`idle_info`): an enabled plugin that
    did not fail shows ``installed``."""
    shown, error = stored_state(plugin_id, state, enabled, failure_reason, failure_phase)
    if not enabled or shown in SHOWS_ERROR:
        return shown, error
    return "installed", error  # also when switched back on since the last start


def stored_info(stored: StoredPlugin, *, signed: bool | None = None,
                live: PluginRecord | None = None) -> PluginInfo:
    """An installed plugin as its database row records it (:func:`stored_state`). A service
    with plugins running passes the ``live`` record of one it runs: its state, error and
    warnings are shown instead (``PluginService._info``)."""
    if live is not None:
        state, error, warnings = live.state.value, error_of(live), tuple(live.warnings)
    else:
        state, error = stored_state(stored.id, stored.state, stored.enabled,
                                    stored.failure_reason, stored.failure_phase)
        warnings = ()
    return PluginInfo(
        id=stored.id, name=stored.name, version=stored.version,
        description=stored.description, author=stored.author, type=stored.type,
        runtime=stored.runtime, state=state, enabled=stored.enabled, source=stored.source,
        source_uri=stored.source_uri, sha256=stored.checksum,
        installed_at=stored.installed_at, updated_at=stored.updated_at, error=error,
        warnings=warnings, signed=signed, live=live is not None)


def idle_info(stored: StoredPlugin, *, signed: bool | None = None) -> PluginInfo:
    """An installed plugin on a home where no server runs (:func:`idle_state`): nothing runs,
    so its state is what the next start begins from — ``installed`` (it will be activated),
    ``disabled``, or why it failed or waited for configuration at the last start — never the
    last server's ``active``; ``live`` is false (the CLI shows ``enabled (not running)``)."""
    info = stored_info(stored, signed=signed)
    state, _ = idle_state(stored.id, stored.state, stored.enabled, stored.failure_reason,
                          stored.failure_phase)
    return info if state == info.state else replace(info, state=state)


def list_stored(repository: PluginReads, *, type: str | None = None, state: str | None = None,
                enabled: bool | None = None, q: str | None = None,
                runtime: str | None = None, source: str | None = None, limit: int = 100,
                offset: int = 0,
                info: Callable[..., PluginInfo] = stored_info) -> PluginList:
    """A page of installed plugins from the database, by id, with the total: one read
    transaction of three queries (page, count, signatures), whatever is installed.

    ``state`` filters on the recorded state as :func:`stored_info` shows it (``disabled``:
    switched off). ``info(stored, signed=...)`` makes each item; a service passes its own to
    overlay the live state of the plugins it runs. Blocking: run it in a thread on a loop."""
    if state == "disabled":  # every switched-off plugin, whatever state it last had
        if enabled is True:
            return PluginList((), 0, limit, offset)
        state, enabled = None, False
    elif state is not None:  # a recorded state shows only while the plugin is switched on
        if enabled is False:
            return PluginList((), 0, limit, offset)
        enabled = True
    with repository.reading() as repo:
        found = repo.list_plugins(type=type, state=state, enabled=enabled, q=q,
                                  runtime=runtime, source=source, limit=limit, offset=offset)
        total = repo.count_plugins(type=type, state=state, enabled=enabled, q=q,
                                   runtime=runtime, source=source)
        signed = repo.signed_plugins([p.id for p in found])
    return PluginList(tuple(info(p, signed=signed.get(p.id)) for p in found), total, limit,
                      offset)


@dataclass(frozen=True, slots=True)
class PluginList:
    """A page of :class:`PluginInfo` and the total number matching the filters."""

    items: tuple[PluginInfo, ...]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = None
    """Where the next page starts (pass it as ``cursor``); ``None`` on the last page."""

    def __iter__(self) -> Iterator[PluginInfo]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"items": [p.to_dict() for p in self.items], "total": self.total,
                "limit": self.limit, "offset": self.offset, "next_cursor": self.next_cursor}


@dataclass(frozen=True, slots=True)
class PluginDetail:
    """Everything about one installed plugin."""

    info: PluginInfo
    manifest: Mapping[str, Any]
    path: str | None
    versions: tuple[VersionInfo, ...]
    dependencies: Mapping[str, str]
    dependents: tuple[str, ...]
    config: Mapping[str, Any]
    config_revision: int
    grants: tuple[str, ...]
    stats: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from plughost.storage.objects import package_key

        m = self.manifest
        config = m.get("config") or {}
        return {**self.info.to_dict(), "manifest": dict(self.manifest), "path": self.path,
                "versions": [v.to_dict() for v in self.versions],
                "dependencies": dict(self.dependencies), "dependents": list(self.dependents),
                "config": dict(self.config), "config_revision": self.config_revision,
                "grants": list(self.grants), "stats": dict(self.stats),
                # The Arcade-compatible names of the manifest's fields.
                "entryPoint": m.get("entry", ""), "configSchema": config.get("schema"),
                "paramsSchema": m.get("params-schema"),
                "defaultConfig": dict(config.get("defaults") or {}),
                "icon": m.get("icon", ""), "repository": m.get("repository", ""),
                "documentation": m.get("documentation") or m.get("homepage", ""),
                "s3Path": package_key(self.info.id, self.info.version)}


@dataclass(frozen=True, slots=True)
class HealthReport:
    """A plugin's answer to a health check (a plugin that is not active is not healthy)."""

    plugin_id: str
    healthy: bool
    state: str
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"plugin_id": self.plugin_id, "healthy": self.healthy, "state": self.state,
                "detail": self.detail, "data": dict(self.data)}


class PluginManagement(Protocol):
    """What an interface may ask of plughost's management, locally or over HTTP."""

    async def list_plugins(self, *, type: str | None = None, state: str | None = None,
                           enabled: bool | None = None, q: str | None = None,
                           status: int | None = None, runtime: str | None = None,
                           source: str | None = None, limit: int = 100, offset: int = 0,
                           cursor: str | None = None) -> PluginList: ...

    async def get(self, plugin_id: str) -> PluginDetail: ...

    async def versions(self, plugin_id: str) -> list[VersionInfo]: ...

    async def health(self, plugin_id: str) -> HealthReport: ...

    async def metrics(self, plugin_id: str | None = None, *,
                      among: Iterable[str] | None = None) -> dict[str, dict[str, Any]]: ...

    async def audit(self, *, plugin_id: str | None = None, action: str | None = None,
                    limit: int = 100, before_id: int | None = None, kind: str | None = None,
                    outcome: str | None = None, since: datetime | None = None,
                    until: datetime | None = None) -> list[dict[str, Any]]: ...

    async def install(self, source: str | Path, *, sha256: str | None = None,
                      enable: bool = True, activate: bool = True,
                      progress: Progress | None = None, actor: str = "",
                      allow_unsigned: bool = False) -> InstallResult: ...

    async def update(self, plugin_id: str, source: str | Path, *, sha256: str | None = None,
                     progress: Progress | None = None, actor: str = "",
                     force: bool = False, allow_unsigned: bool = False) -> UpdateResult: ...

    async def rollback(self, plugin_id: str, to: str | None = None, *,
                       actor: str = "") -> UpdateResult: ...

    async def reload(self, plugin_id: str, *, actor: str = "") -> ReloadResult: ...

    async def rollback_build(self, plugin_id: str, ref: str | None = None, *,
                             actor: str = "") -> ReloadResult: ...

    async def uninstall(self, plugin_id: str, *, cascade: bool = False,
                        keep_data: bool = False, actor: str = "") -> UninstallResult: ...

    async def enable(self, plugin_id: str, *, activate: bool = True,
                     actor: str = "") -> PluginInfo: ...

    async def disable(self, plugin_id: str, *, actor: str = "") -> PluginInfo: ...

    async def activate(self, plugin_id: str) -> PluginInfo: ...

    async def deactivate(self, plugin_id: str, *, cascade: bool = False) -> PluginInfo: ...
