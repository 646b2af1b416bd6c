"""PluginContext: the capability-scoped handle a plugin receives on activation.

A plugin reaches the host only through its context. The foundation fills the identity, the logger,
the (read-only) configuration and a private data directory; the communication layer and the host
services (files, HTTP, storage) attach themselves through :meth:`PluginContext.attach`. Asking for
a service that is not attached raises :class:`~plughost.errors.PluginUnavailable` naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from plughost.errors import PluginUnavailable

if TYPE_CHECKING:
    from plughost.core.manifest import Manifest

__all__ = ["PluginContext", "plugin_logger"]

_SERVICES = frozenset(
    {"bus", "commands", "channels", "hooks", "tasks", "files", "http", "storage", "permissions",
     "host"}
)


def plugin_logger(plugin_id: str) -> logging.Logger:
    """The logger a plugin writes to: ``plughost.plugin.<id>`` (so operators can filter by id)."""
    return logging.getLogger(f"plughost.plugin.{plugin_id}")


class PluginContext:
    """What a plugin is handed. Attributes are read-only for the plugin.

    :param manifest: the plugin's validated manifest.
    :param config: the plugin's effective configuration; exposed read-only.
    :param data_dir: a private directory the plugin may write to (created on demand).
    """

    __slots__ = ("_config", "_data_dir", "_services", "logger", "manifest", "plugin_id")

    def __init__(
        self,
        manifest: Manifest,
        *,
        config: Mapping[str, Any] | None = None,
        data_dir: Path | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.manifest = manifest
        self.plugin_id: str = manifest.id
        self.logger = logger or plugin_logger(manifest.id)
        self._config: Mapping[str, Any] = MappingProxyType(dict(config or {}))
        self._data_dir = data_dir
        self._services: dict[str, Any] = {}

    @property
    def config(self) -> Mapping[str, Any]:
        """The effective configuration (read-only view)."""
        return self._config

    def _set_config(self, config: Mapping[str, Any]) -> None:
        """Host-side: replace the configuration view after an accepted change."""
        self._config = MappingProxyType(dict(config))

    @property
    def data_dir(self) -> Path:
        """The plugin's private data directory, created on first use."""
        if self._data_dir is None:
            raise PluginUnavailable(
                "This host was started without a data directory for plugins; "
                "give PluginHost a home directory (HostSettings(home=...)).",
                plugin_id=self.plugin_id,
            )
        self._data_dir.mkdir(parents=True, exist_ok=True)
        return self._data_dir

    def attach(self, name: str, service: Any) -> None:
        """Host-side: make ``service`` available as ``ctx.<name>``."""
        if name not in _SERVICES:
            raise ValueError(f"unknown context service {name!r}; known: {sorted(_SERVICES)}")
        self._services[name] = service

    def has(self, name: str) -> bool:
        """Whether the host attached the service ``name``."""
        return name in self._services

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not found normally, i.e. services.
        if name in _SERVICES:
            try:
                return self._services[name]
            except KeyError:
                raise PluginUnavailable(
                    f"ctx.{name} is not available in this host: the {name!r} service was not "
                    "configured. Check the host's settings (and installed extras).",
                    plugin_id=self.plugin_id,
                ) from None
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    # -- communication shortcuts (owner-scoped: the host stamps this plugin's id) -------------

    def emit(self, topic: str, payload: Any = None, *, reply_to: str | None = None) -> int:
        """Publish an event from this plugin; ``ctx.bus.emit``."""
        return self.bus.emit(topic, payload, reply_to=reply_to)  # type: ignore[no-any-return]

    def subscribe(self, pattern: str, fn: Any, *, queue: int | None = None,
                  when_full: str = "block") -> Any:
        """Subscribe to events (removed on deactivation); ``ctx.bus.subscribe``."""
        return self.bus.subscribe(pattern, fn, queue=queue, when_full=when_full)

    async def execute(self, name: str, args: Mapping[str, Any] | None = None, *,
                      timeout: float | None = None) -> Any:
        """Execute a command as this plugin; ``ctx.commands.execute``."""
        return await self.commands.execute(name, args, timeout=timeout)

    async def open_channel(self, name: str, *, buffer: int | None = None) -> Any:
        """Open a channel as this plugin; ``ctx.channels.open``."""
        return await self.channels.open(name, buffer=buffer)

    def spawn(self, coro: Any, *, name: str | None = None) -> Any:
        """Run background work owned by this plugin (cancelled on deactivation)."""
        return self.tasks.spawn(coro, name=name)

    def __repr__(self) -> str:
        return f"<PluginContext {self.plugin_id} {self.manifest.version}>"
