"""PluginContext: the capability-scoped handle a plugin receives on activation.

A plugin reaches the host only through its context. The foundation fills the identity, the logger,
the (read-only) configuration and a private data directory; the communication layer and the host
services (files, HTTP, storage) attach themselves through :meth:`PluginContext.attach`. Asking for
a service that is not attached raises :class:`~plughost.errors.PluginUnavailable` naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from plughost.errors import PluginUnavailable

if TYPE_CHECKING:
    import asyncio
    import os

    from plughost.core.bus import Event, Subscription, WhenFull
    from plughost.core.channels import Channel, ChannelHandler
    from plughost.core.manifest import Manifest

__all__ = [
    "BusService",
    "ChannelService",
    "CommandService",
    "FileService",
    "GrantedScope",
    "HookService",
    "HttpResponse",
    "HttpService",
    "PermissionService",
    "PluginContext",
    "StorageService",
    "TaskService",
    "plugin_logger",
]


# -- the services a context carries, as the plugin (and a sandboxed runtime) sees them ----------
# Structural types: the host's implementations (core.scoped, services.hostapi, ...) satisfy them
# without importing this module, and a test may attach any object of the same shape.


class BusService(Protocol):
    """``ctx.bus``: events, stamped with the plugin's id as their source."""

    def emit(self, topic: str, payload: Any = None, *, reply_to: str | None = None) -> int:
        """Publish an event; returns how many subscribers it reached."""
        ...

    async def aemit(self, topic: str, payload: Any = None, *, reply_to: str | None = None
                    ) -> int:
        """Publish, waiting for queue space instead of failing."""
        ...

    def subscribe(self, pattern: str, fn: Callable[[Event], Any], *, queue: int | None = None,
                  when_full: WhenFull = "block") -> Subscription:
        """Subscribe (removed when the plugin is deactivated)."""
        ...


class CommandService(Protocol):
    """``ctx.commands``: execute commands as the plugin, serve its own."""

    async def execute(self, name: str, args: Mapping[str, Any] | None = None, *,
                      timeout: float | None = None) -> Any:
        """Run command ``name`` with ``args``; the plugin is the caller."""
        ...

    def register(self, name: str, fn: Callable[..., Any], *, timeout: float | None = None
                 ) -> Callable[[], None]:
        """Serve ``<plugin id>.<name>``; returns the undo."""
        ...


class ChannelService(Protocol):
    """``ctx.channels``: two-way streams."""

    async def open(self, name: str, *, buffer: int | None = None) -> Channel:
        """Open channel ``name`` as the plugin."""
        ...

    def register(self, name: str, handler: ChannelHandler, *, buffer: int | None = None
                 ) -> Callable[[], None]:
        """Serve channel ``<plugin id>.<name>``; returns the undo."""
        ...


class HookService(Protocol):
    """``ctx.hooks``: call and implement extension points."""

    def call(self, name: str, /, **kwargs: Any) -> Any:
        """Call extension point ``name``."""
        ...

    async def acall(self, name: str, /, **kwargs: Any) -> Any:
        """Call extension point ``name`` from async code."""
        ...

    def register(self, name: str, fn: Callable[..., Any], *, priority: float = 0,
                 tryfirst: bool = False, trylast: bool = False,
                 before: Iterable[str] | str = (), after: Iterable[str] | str = (),
                 wrapper: bool = False, timeout: float | None = None) -> Callable[[], None]:
        """Implement extension point ``name``; returns the undo."""
        ...


class TaskService(Protocol):
    """``ctx.tasks``: background work owned by the plugin."""

    def spawn(self, coro: Coroutine[Any, Any, Any] | Awaitable[Any], *,
              name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; cancelled when the plugin is deactivated."""
        ...


class FileService(Protocol):
    """``ctx.files``: file access checked against ``fs:read`` / ``fs:write`` grants.

    A relative path is relative to the plugin's data directory.
    """

    def read_text(self, path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
        """The file's text."""
        ...

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """The file's content."""
        ...

    def write_text(self, path: str | os.PathLike[str], text: str, encoding: str = "utf-8"
                   ) -> int:
        """Write text; returns the number of bytes written."""
        ...

    def write_bytes(self, path: str | os.PathLike[str], data: bytes) -> int:
        """Write bytes; returns how many."""
        ...

    def list(self, path: str | os.PathLike[str] = ".") -> list[str]:
        """Entry names of a directory."""
        ...

    def stat(self, path: str | os.PathLike[str]) -> Any:
        """Metadata (a dataclass with ``path``, ``size``, ``is_dir``, ``modified``...)."""
        ...

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """Whether the path exists."""
        ...

    def mkdir(self, path: str | os.PathLike[str], *, parents: bool = True) -> None:
        """Create a directory."""
        ...

    def remove(self, path: str | os.PathLike[str], *, recursive: bool = False) -> None:
        """Delete a file (or a tree with ``recursive``)."""
        ...


class HttpResponse(Protocol):
    """What ``ctx.http.request`` returns (an ``httpx.Response`` satisfies it)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...


class HttpService(Protocol):
    """``ctx.http``: outbound HTTP checked against ``net:`` grants."""

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        """Send a request and read the whole body."""
        ...


class StorageService(Protocol):
    """``ctx.storage``: key-value storage in a namespace (default: the plugin's id)."""

    @property
    def namespace(self) -> str: ...

    def with_namespace(self, name: str) -> StorageService:
        """The same service on namespace ``name`` (needs a ``storage:<name>`` grant)."""
        ...

    def get(self, key: str, default: Any = None) -> Any:
        """The value at ``key`` or ``default``."""
        ...

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it existed."""
        ...

    def keys(self, prefix: str = "") -> list[str]:
        """Keys of the namespace, optionally only those starting with ``prefix``."""
        ...


class GrantedScope(Protocol):
    """One granted permission scope, as ``ctx.permissions.granted()`` lists it."""

    @property
    def kind(self) -> str: ...

    @property
    def pattern(self) -> str: ...

    @property
    def deny(self) -> bool: ...


class PermissionService(Protocol):
    """``ctx.permissions``: the plugin's own grants."""

    def check(self, kind: str, target: str = "") -> Any:
        """Raise :class:`~plughost.errors.PermissionDenied` (and audit) unless allowed."""
        ...

    def allowed(self, kind: str, target: str = "") -> bool:
        """Whether an access would be allowed (no audit row)."""
        ...

    def granted(self) -> Sequence[GrantedScope]:
        """The scopes granted to this plugin."""
        ...

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

    def service(self, name: str) -> Any:
        """The attached service ``name``; :class:`PluginUnavailable` naming it if there is none."""
        try:
            return self._services[name]
        except KeyError:
            if name not in _SERVICES:
                raise AttributeError(
                    f"{type(self).__name__!s} has no service {name!r}; known: {sorted(_SERVICES)}"
                ) from None
            raise PluginUnavailable(
                f"ctx.{name} is not available in this host: the {name!r} service was not "
                "configured. Check the host's settings (and installed extras).",
                plugin_id=self.plugin_id,
            ) from None

    # -- the services, typed (each raises PluginUnavailable when the host attached none) -------

    @property
    def bus(self) -> BusService:
        """Events (``emit``, ``aemit``, ``subscribe``)."""
        return self.service("bus")  # type: ignore[no-any-return]

    @property
    def commands(self) -> CommandService:
        """Commands (``execute``, ``register``)."""
        return self.service("commands")  # type: ignore[no-any-return]

    @property
    def channels(self) -> ChannelService:
        """Channels (``open``, ``register``)."""
        return self.service("channels")  # type: ignore[no-any-return]

    @property
    def hooks(self) -> HookService:
        """Extension points (``call``, ``acall``, ``register``)."""
        return self.service("hooks")  # type: ignore[no-any-return]

    @property
    def tasks(self) -> TaskService:
        """Background work (``spawn``)."""
        return self.service("tasks")  # type: ignore[no-any-return]

    @property
    def files(self) -> FileService:
        """Files under the plugin's ``fs:`` grants."""
        return self.service("files")  # type: ignore[no-any-return]

    @property
    def http(self) -> HttpService:
        """Outbound HTTP under the plugin's ``net:`` grants."""
        return self.service("http")  # type: ignore[no-any-return]

    @property
    def storage(self) -> StorageService:
        """Key-value storage."""
        return self.service("storage")  # type: ignore[no-any-return]

    @property
    def permissions(self) -> PermissionService:
        """The plugin's own grants."""
        return self.service("permissions")  # type: ignore[no-any-return]

    @property
    def host(self) -> Any:
        """Whatever the embedding application attached as ``host`` (untyped by design)."""
        return self.service("host")

    # -- communication shortcuts (owner-scoped: the host stamps this plugin's id) -------------

    def emit(self, topic: str, payload: Any = None, *, reply_to: str | None = None) -> int:
        """Publish an event from this plugin; ``ctx.bus.emit``."""
        return self.bus.emit(topic, payload, reply_to=reply_to)

    def subscribe(self, pattern: str, fn: Any, *, queue: int | None = None,
                  when_full: WhenFull = "block") -> Subscription:
        """Subscribe to events (removed on deactivation); ``ctx.bus.subscribe``."""
        return self.bus.subscribe(pattern, fn, queue=queue, when_full=when_full)

    async def execute(self, name: str, args: Mapping[str, Any] | None = None, *,
                      timeout: float | None = None) -> Any:
        """Execute a command as this plugin; ``ctx.commands.execute``."""
        return await self.commands.execute(name, args, timeout=timeout)

    async def open_channel(self, name: str, *, buffer: int | None = None) -> Channel:
        """Open a channel as this plugin; ``ctx.channels.open``."""
        return await self.channels.open(name, buffer=buffer)

    def spawn(self, coro: Coroutine[Any, Any, Any] | Awaitable[Any], *,
              name: str | None = None) -> asyncio.Task[Any]:
        """Run background work owned by this plugin (cancelled on deactivation)."""
        return self.tasks.spawn(coro, name=name)

    def __repr__(self) -> str:
        return f"<PluginContext {self.plugin_id} {self.manifest.version}>"
