"""Wire configuration, permissions and the host services into a :class:`~plughost.host.PluginHost`.

:class:`PluginServices` is a host extension. For every plugin it

* parses the manifest's ``permissions`` (a malformed scope refuses the plugin with
  :class:`~plughost.errors.ScopeError`) and applies the grant policy;
* registers the config schema and defaults, validates the stored operator settings and hands the
  plugin a **live** :class:`~plughost.services.config.ConfigView` as ``ctx.config``;
* attaches ``ctx.files``, ``ctx.http``, ``ctx.storage`` and ``ctx.permissions``;
* subscribes the plugin's ``on_config_change(old, new)`` (if it has one) so it can refuse changes;
* routes the communication layer's permission hook (events, commands, channels) to the
  :class:`~plughost.security.permissions.PermissionManager`, when the host has one.

Embedded (a bare host), everything persists under the plughost home: ``security.db`` (grants,
requests, audit), ``config.db`` (config history; or Redis), ``storage.db`` (plugin key-value
data) and ``data/<plugin-id>/`` (private directories). The management service passes stores
over its database instead (grants, config, audit and ``ctx.storage`` alike), so several
servers on one database share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from plughost.core.contract import ConfigListener
from plughost.security.audit import AuditLog
from plughost.security.grant_store import PermissionStore
from plughost.security.permissions import (
    GrantPolicy,
    PermissionManager,
    PermissionRequest,
    grant_declared_at_install,
)
from plughost.security.scopes import Scope
from plughost.services.config import ConfigManager
from plughost.services.config_file import PluginSettings, SettingsFile
from plughost.services.hostapi import HostServices, make_services
from plughost.storage.config_store import ConfigStore, SQLiteConfigStore
from plughost.storage.kv import KeyValueBackend, KeyValueStore

__all__ = ["PluginPermissions", "PluginServices"]

logger = logging.getLogger(__name__)


class PluginPermissions:
    """``ctx.permissions``: what a plugin may ask about its own permissions."""

    __slots__ = ("_manager", "plugin_id")

    def __init__(self, plugin_id: str, manager: PermissionManager) -> None:
        self.plugin_id = plugin_id
        self._manager = manager

    def allowed(self, kind: str, target: str = "") -> bool:
        """Whether an access would be allowed (no audit row)."""
        return self._manager.allowed(self.plugin_id, kind, target)

    def check(self, kind: str, target: str = "") -> None:
        """Raise (and audit) :class:`~plughost.errors.PermissionDenied` if not allowed."""
        self._manager.check(self.plugin_id, kind, target)

    def granted(self) -> list[Scope]:
        """The scopes granted to this plugin."""
        return self._manager.grants(self.plugin_id)

    def request(self, scope: str, reason: str) -> PermissionRequest:
        """Ask the operator (or the request policy) for a scope; recorded and audited."""
        return self._manager.request(self.plugin_id, scope, reason)


class PluginServices:
    """Host extension providing config, permissions, files, HTTP and storage to plugins.

    :param home: the plughost home directory.
    :param policy: the grant policy for declared permissions.
    :param config_store: where config history lives (default: ``<home>/config.db``).
    :param settings_file: a ``plughost.toml`` to apply (and watch with :meth:`start`).
    :param environ: environment for ``${VAR}`` substitution (default ``os.environ``).
    :param permission_store: where grants, declarations and requests persist (default:
        ``<home>/security.db``; the management service passes one over its database).
    :param audit: where permission decisions are audited (default: ``<home>/security.db``).
    :param kv: plugin key-value storage behind ``ctx.storage`` (default: ``<home>/storage.db``;
        the management service passes the database-backed store). Closed by :meth:`aclose`.
    """

    def __init__(
        self,
        home: str | Path,
        *,
        policy: GrantPolicy = grant_declared_at_install,
        config_store: ConfigStore | None = None,
        settings_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        permission_store: PermissionStore | None = None,
        audit: AuditLog | None = None,
        kv: KeyValueBackend | None = None,
    ) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.permissions = PermissionManager(self.home / "security.db", policy=policy,
                                             store=permission_store, audit=audit)
        self.config = ConfigManager(
            config_store or SQLiteConfigStore(self.home / "config.db"), environ=environ
        )
        self.kv: KeyValueBackend = kv if kv is not None else KeyValueStore(
            self.home / "storage.db")
        self.settings = (
            SettingsFile(settings_file, self.config, on_plugin_settings=self._on_plugin_settings)
            if settings_file is not None
            else None
        )
        self._services: dict[str, HostServices] = {}
        self._listeners: dict[str, Callable[[], None]] = {}
        self._host: Any = None
        self._follow: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def install(self, host: Any, *, communications: Any = None) -> Callable[[], None]:
        """Attach to ``host``; returns the undo.

        The communication layer's permission hook (``set_permission_checker``) is pointed at
        :meth:`PermissionManager.host_checker` — on ``communications`` if given, else on the
        host's hub (``host.comms``) when it has one.
        """
        self._host = host
        undo_ext = host.add_extension(self)
        comms = communications
        if comms is None:  # the host's communication hub, whichever name it has
            comms = getattr(host, "comms", None) or getattr(host, "communications", None)
        setter = getattr(comms, "set_permission_checker", None)
        if setter is not None:
            setter(self.permissions.host_checker())

        def undo() -> None:
            undo_ext()
            if setter is not None:
                setter(None)
            self._host = None

        return undo

    # ---- HostExtension hooks

    def prepare_context(self, record: Any, context: Any) -> None:
        """Check permissions, register config and attach the services before ``activate``."""
        manifest = record.manifest
        plugin_id = manifest.id
        scopes = [
            f"{s}:{plugin_id}" if s.strip() in ("storage", "!storage") else s
            for s in manifest.permissions
        ]
        self.permissions.declare(plugin_id, scopes)
        # The context arrives holding the manifest defaults updated with the embedder's
        # PluginHost(config=...) values; both sit below the operator settings.
        defaults = dict(context.config)
        view = self.config.register(plugin_id, manifest.config_schema, defaults, strict=False)
        if self.settings is not None:
            self.settings.apply_plugin_config_now(plugin_id)
        # Strict now: a config that is still invalid (a required setting nobody provided) refuses
        # the plugin, naming what to set.
        self.config.register(plugin_id, manifest.config_schema, defaults, strict=True)
        # The context keeps whatever Mapping it is given; the view reads the current version on
        # every access, so ctx.config is live.
        context._config = view
        data_dir = self.home / "data" / plugin_id
        old = self._services.pop(plugin_id, None)
        if old is not None:  # prepared again without a deactivation: close the old HTTP pool
            task = asyncio.get_running_loop().create_task(old.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        services = make_services(plugin_id, self.permissions, data_dir=data_dir, kv=self.kv)
        self._services[plugin_id] = services
        context.attach("files", services.files)
        context.attach("http", services.http)
        context.attach("storage", services.storage)
        context.attach("permissions", PluginPermissions(plugin_id, self.permissions))

    async def on_activated(self, record: Any, exports: Any) -> None:
        """Subscribe the plugin's ``on_config_change`` and apply its settings-file table."""
        plugin_id = record.manifest.id
        instance = record.instance
        if isinstance(instance, ConfigListener):  # the host refused a runtime without it
            self._listeners[plugin_id] = self.config.on_change(plugin_id,
                                                               instance.config_changed)
        if self.settings is not None:
            await self.settings.apply_plugin(plugin_id)

    async def on_deactivated(self, record: Any) -> None:
        """Drop the listener and close the plugin's HTTP pool."""
        plugin_id = record.manifest.id
        undo = self._listeners.pop(plugin_id, None)
        if undo is not None:
            undo()
        services = self._services.pop(plugin_id, None)
        if services is not None:
            await services.aclose()

    # ---- settings file

    async def start(self) -> None:
        """Start the background work: watch the settings file (if any) and follow config changes
        other hosts publish (Redis store). :meth:`aclose` stops both."""
        if self.settings is not None:
            self.settings.start()
        if self._follow is None:
            self._follow = asyncio.get_running_loop().create_task(
                self.config.follow(), name="plughost config follow"
            )

    async def _on_plugin_settings(self, plugin_id: str, settings: PluginSettings) -> None:
        host = self._host
        if host is None:
            return
        try:
            record = host.get(plugin_id)
        except Exception:  # not discovered (yet): nothing to enable or disable
            return
        state = str(getattr(record.state, "value", record.state))
        if not settings.enabled and state != "disabled":
            await host.disable(plugin_id)
        elif settings.enabled and state == "disabled":
            await host.enable(plugin_id)

    async def aclose(self) -> None:
        """Stop watching, close HTTP pools and databases; idempotent."""
        if self.settings is not None:
            await self.settings.stop()
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
            self._follow = None
        for services in list(self._services.values()):
            await services.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._services.clear()
        self.kv.close()
        self.config.close()
        self.permissions.close()
