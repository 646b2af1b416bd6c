"""Owner-scoped views of the communication registries, as handed to one plugin.

A plugin never holds the host's registries themselves: through its context it gets views that
stamp its id on everything — the ``source`` of events it emits, the ``caller`` of commands it
executes and channels it opens, the owner of what it registers (so deactivation removes it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from plughost.core.bus import Event, EventBus, Subscription, WhenFull
from plughost.core.channels import Channel, ChannelHandler, ChannelRegistry
from plughost.core.commands import CommandRegistry
from plughost.core.hooks import HookRegistry
from plughost.core.tasks import OwnerTasks

if TYPE_CHECKING:
    import asyncio

__all__ = ["ScopedBus", "ScopedChannels", "ScopedCommands", "ScopedHooks", "ScopedTasks"]

Count = Callable[[str, str, Callable[..., Any]], Callable[..., Any]]
"""``count(owner, kind, fn)``: ``fn`` wrapped so the host counts its calls (see
:meth:`plughost.core.monitoring.DispatchCounters.counted`)."""


def _uncounted(owner: str, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


class ScopedBus:
    """The event bus as seen by plugin ``owner``."""

    __slots__ = ("_bus", "_count", "owner")

    def __init__(self, bus: EventBus, owner: str, count: Count = _uncounted) -> None:
        self._bus = bus
        self.owner = owner
        self._count = count

    def emit(self, topic: str, payload: Any = None, *, reply_to: str | None = None) -> int:
        """Publish an event from this plugin (see :meth:`EventBus.emit`)."""
        return self._bus.emit(topic, payload, source=self.owner, reply_to=reply_to)

    async def aemit(self, topic: str, payload: Any = None, *, reply_to: str | None = None
                    ) -> int:
        """Publish, waiting for queue space (see :meth:`EventBus.aemit`)."""
        return await self._bus.aemit(topic, payload, source=self.owner, reply_to=reply_to)

    def subscribe(self, pattern: str, fn: Callable[[Event], Any], *, queue: int | None = None,
                  when_full: WhenFull = "block") -> Subscription:
        """Subscribe on behalf of this plugin; removed when it is deactivated."""
        return self._bus.subscribe(pattern, self._count(self.owner, "events", fn),
                                   owner=self.owner, queue=queue, when_full=when_full)


class ScopedCommands:
    """The command registry as seen by plugin ``owner``."""

    __slots__ = ("_commands", "_count", "owner")

    def __init__(self, commands: CommandRegistry, owner: str, count: Count = _uncounted) -> None:
        self._commands = commands
        self.owner = owner
        self._count = count

    async def execute(self, name: str, args: Mapping[str, Any] | None = None, *,
                      timeout: float | None = None) -> Any:
        """Execute a command as this plugin (the permission checker sees it as the caller)."""
        return await self._commands.execute(name, args, caller=self.owner, timeout=timeout)

    def register(self, name: str, fn: Callable[..., Any], *, timeout: float | None = None
                 ) -> Callable[[], None]:
        """Serve ``<plugin id>.<name>``; returns the undo."""
        return self._commands.register(self.owner, name,
                                       self._count(self.owner, "commands", fn), timeout=timeout)


class ScopedChannels:
    """The channel registry as seen by plugin ``owner``."""

    __slots__ = ("_channels", "_count", "owner")

    def __init__(self, channels: ChannelRegistry, owner: str, count: Count = _uncounted) -> None:
        self._channels = channels
        self.owner = owner
        self._count = count

    async def open(self, name: str, *, buffer: int | None = None) -> Channel:
        """Open a channel as this plugin; it is closed when this plugin is deactivated."""
        return await self._channels.open(name, caller=self.owner, buffer=buffer)

    def register(self, name: str, handler: ChannelHandler, *, buffer: int | None = None
                 ) -> Callable[[], None]:
        """Serve channel ``<plugin id>.<name>``; returns the undo."""
        return self._channels.register(self.owner, name,
                                       self._count(self.owner, "channels", handler),
                                       buffer=buffer)


class ScopedHooks:
    """Extension points as seen by plugin ``owner``: call them, implement them."""

    __slots__ = ("_count", "_hooks", "owner")

    def __init__(self, hooks: HookRegistry, owner: str, count: Count = _uncounted) -> None:
        self._hooks = hooks
        self.owner = owner
        self._count = count

    def call(self, name: str, /, **kwargs: Any) -> Any:
        return self._hooks.call(name, **kwargs)

    async def acall(self, name: str, /, **kwargs: Any) -> Any:
        return await self._hooks.acall(name, **kwargs)

    def add_spec(self, spec: Any, *, name: str | None = None, prefix: str | None = None,
                 **options: Any) -> Callable[[], None]:
        """Declare an extension point other plugins implement (removed on deactivation)."""
        return self._hooks.add_spec(spec, name=name, prefix=prefix, owner=self.owner, **options)

    def register(self, name: str, fn: Callable[..., Any], *, priority: float = 0,
                 tryfirst: bool = False, trylast: bool = False,
                 before: Iterable[str] | str = (), after: Iterable[str] | str = (),
                 wrapper: bool = False, timeout: float | None = None) -> Callable[[], None]:
        """Implement extension point ``name`` as this plugin; returns the undo."""
        # Counted by the registry's dispatch loops (HookRegistry.count_into), not wrapped.
        return self._hooks.register(self.owner, name, fn,
                                    priority=priority, tryfirst=tryfirst,
                                    trylast=trylast, before=before, after=after,
                                    wrapper=wrapper, timeout=timeout)


class ScopedTasks:
    """Background tasks of plugin ``owner``; cancelled when it is deactivated."""

    __slots__ = ("_tasks", "owner")

    def __init__(self, tasks: OwnerTasks, owner: str) -> None:
        self._tasks = tasks
        self.owner = owner

    def spawn(self, coro: Coroutine[Any, Any, Any] | Awaitable[Any], *,
              name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` in the background on behalf of this plugin."""
        return self._tasks.spawn(self.owner, coro, name=name)  # type: ignore[arg-type]
