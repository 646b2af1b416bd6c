"""The host's communication hub: extension points, events, commands and channels together.

The host owns one :class:`Communications`. It gives the four registries one permission checker,
one monitor set (``add_monitor`` observes every dispatch) and one per-owner task set, and it
knows how to turn what a plugin exports (:class:`~plughost.core.contract.Export`) into
registrations — a direct callable when the runtime offers one
(:meth:`PluginInstance.local_callable`), otherwise an async proxy to the runtime contract
(:meth:`PluginInstance.call`, ``deliver_event``, ``serve_channel``) — and how to remove
everything a plugin registered (:meth:`unregister_owner`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from plughost.core.bus import Event, EventBus, PermissionChecker, Subscription
from plughost.core.channels import Channel, ChannelRegistry
from plughost.core.commands import CommandRegistry, LazyResolver
from plughost.core.context import PluginContext
from plughost.core.contract import ChannelService, EventDelivery, Export, PluginInstance
from plughost.core.hooks import HookRegistry
from plughost.core.lifecycle import LifecycleEvent, State
from plughost.core.monitoring import DispatchCounters, Monitor, MonitorSet
from plughost.core.scoped import ScopedBus, ScopedChannels, ScopedCommands, ScopedHooks, ScopedTasks
from plughost.core.tasks import OwnerTasks
from plughost.errors import InvalidExport, PlughostError

__all__ = ["EXPORT_OPTIONS", "Communications"]

logger = logging.getLogger(__name__)

EXPORT_OPTIONS: Mapping[str, frozenset[str]] = {
    "hook": frozenset(
        {"priority", "tryfirst", "trylast", "before", "after", "wrapper", "timeout", "args"}
    ),
    "event": frozenset({"queue", "when_full"}),
    "command": frozenset({"timeout"}),
    "channel": frozenset({"buffer"}),
}
"""The options each kind of :class:`Export` may carry."""

_COUNTED: Mapping[str, str] = {
    "hook": "hooks", "event": "events", "command": "commands", "channel": "channels"}


class Communications:
    """Extension points, events, commands and channels of one host.

    :param checker: permission checker for emitting, executing and opening (``None``: allow).
    :param lazy_resolver: activates the plugin declaring ``command:<name>`` on first use.
    :param default_queue: queue size of async event subscribers that do not choose one.
    :param default_buffer: per-direction buffer of channels that do not choose one.
    :param command_timeout: default deadline of commands that do not set one.
    """

    def __init__(
        self,
        *,
        checker: PermissionChecker | None = None,
        lazy_resolver: LazyResolver | None = None,
        default_queue: int = 1024,
        default_buffer: int = 64,
        command_timeout: float | None = None,
        on_event_error: Callable[[Subscription, Event, BaseException], None] | None = None,
    ) -> None:
        self.monitors = MonitorSet()
        self.counters = DispatchCounters()
        self.tasks = OwnerTasks()
        self.hooks = HookRegistry(monitors=self.monitors, tasks=self.tasks)
        self.hooks.count_into(self.counters)  # hooks are counted in the dispatch loops
        self.bus = EventBus(checker=checker, on_error=on_event_error, default_queue=default_queue,
                            monitors=self.monitors, tasks=self.tasks)
        self.commands = CommandRegistry(checker=checker, default_timeout=command_timeout,
                                        monitors=self.monitors)
        self.channels = ChannelRegistry(checker=checker, default_buffer=default_buffer,
                                        monitors=self.monitors, tasks=self.tasks)
        if lazy_resolver is not None:
            self.commands.set_lazy_resolver(lazy_resolver)
        #: Event activation triggers: pattern -> how to unsubscribe it.
        self._triggers: dict[str, Callable[[], None]] = {}
        self._trigger_needed: Callable[[str], bool] = lambda pattern: False
        self._trigger_activate: Callable[[str, Event], Awaitable[Any]] | None = None

    def set_permission_checker(self, checker: PermissionChecker | None) -> None:
        """Route emitting, executing and opening through ``checker`` (``None``: allow all)."""
        self.bus.checker = checker
        self.commands.checker = checker
        self.channels.checker = checker

    def set_lazy_resolver(self, resolver: LazyResolver | None) -> None:
        """See :meth:`CommandRegistry.set_lazy_resolver`."""
        self.commands.set_lazy_resolver(resolver)

    def add_monitor(self, monitor: Monitor) -> Callable[[], None]:
        """Observe every hook call, event delivery, command and channel opening; the undo."""
        return self.monitors.add(monitor)

    # -- exports ----------------------------------------------------------------------------

    def register_exports(
        self,
        plugin_id: str,
        exports: Iterable[Export],
        instance: PluginInstance | None = None,
        *,
        local: Mapping[str, Callable[..., Any]] | None = None,
    ) -> Callable[[], None]:
        """Register what a plugin provides; all or nothing. Returns the undo.

        Each export's ``target`` is resolved to a direct callable through ``local`` (a mapping
        target → callable) or ``instance.local_callable(target)``; when neither has one, the
        registration is a proxy awaiting ``instance.call(target, kwargs, timeout=...)``.
        If any export is refused, those registered before it are removed again and the error
        (naming the export) propagates.
        """
        undos: list[Callable[[], None]] = []
        try:
            for export in exports:
                undos.append(self._register_export(plugin_id, export, instance, local))
        except BaseException:
            for undo in reversed(undos):
                undo()
            raise

        def undo_all() -> None:
            for undo in reversed(undos):
                undo()

        return undo_all

    def _register_export(self, plugin_id: str, export: Export, instance: PluginInstance | None,
                         local: Mapping[str, Callable[..., Any]] | None) -> Callable[[], None]:
        kind, name, target = export.kind, export.name, export.target
        allowed = EXPORT_OPTIONS.get(kind)
        if allowed is None:
            raise InvalidExport(
                f"Plugin {plugin_id!r} exports {name!r} of unknown kind {kind!r}; "
                "kinds are hook, event, command, channel.",
                plugin_id=plugin_id,
            )
        opts = dict(export.options)
        unknown = sorted(set(opts) - allowed)
        if unknown:
            raise InvalidExport(
                f"Plugin {plugin_id!r}: {kind} export {name!r} has unknown option(s) "
                f"{', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}.",
                plugin_id=plugin_id,
            )
        fn = local.get(target) if local is not None else None
        if fn is None and instance is not None:
            fn = instance.local_callable(target)
        if fn is None and instance is None:
            raise InvalidExport(
                f"Plugin {plugin_id!r}: nothing to call for {kind} export {name!r} (target "
                f"{target!r}); pass the plugin instance or a local callable.",
                plugin_id=plugin_id,
            )
        label = f"{target}"
        # Every dispatch to a plugin's export is counted here, once, for every runtime.
        count = self.counters.counted
        if fn is not None and kind != "hook":  # hooks: counted by the registry's loops
            fn = count(plugin_id, _COUNTED[kind], fn)
        if kind == "hook":
            args = opts.pop("args", None)
            if fn is not None:
                return self.hooks.register(plugin_id, name, fn, label=label, **opts)
            assert instance is not None
            return self.hooks.register_remote(
                plugin_id, name, _proxy(instance, target), args=args, label=label, **opts
            )
        if kind == "event":
            if fn is None:
                if not isinstance(instance, EventDelivery):
                    raise InvalidExport(
                        f"Plugin {plugin_id!r}: its runtime cannot deliver events, so it cannot "
                        f"subscribe to {name!r}.",
                        plugin_id=plugin_id,
                    )
                fn = count(plugin_id, "events", _event_proxy(instance, target))
            return self.bus.subscribe(name, fn, owner=plugin_id, **opts)
        if kind == "command":
            if fn is not None:
                return self.commands.register(plugin_id, name, fn, **opts)
            assert instance is not None
            return self.commands.register_remote(
                plugin_id, name, count(plugin_id, "commands", _proxy(instance, target)), **opts)
        if fn is None:
            if not isinstance(instance, ChannelService):
                raise InvalidExport(
                    f"Plugin {plugin_id!r}: its runtime cannot serve channels, so it cannot "
                    f"serve {name!r}.",
                    plugin_id=plugin_id,
                )
            fn = count(plugin_id, "channels", _channel_proxy(instance, target))
        return self.channels.register(plugin_id, name, fn, **opts)

    # -- lazy activation by events ------------------------------------------------------------

    def set_event_triggers(
        self,
        patterns: Iterable[str],
        *,
        needed: Callable[[str], bool],
        activate: Callable[[str, Event], Awaitable[Any]],
    ) -> None:
        """Watch topic ``patterns`` on behalf of lazy plugins (``activation = ["event:<p>"]``).

        When an event matches one and ``needed(pattern)`` says a plugin is still asleep,
        ``activate(pattern, event)`` runs as a host task (it activates the plugins and
        redelivers the event to them, see :meth:`EventBus.redeliver`). Replaces the previous set
        (patterns watched already stay subscribed); :meth:`add_event_triggers` and
        :meth:`remove_event_triggers` change it by what changed.
        """
        wanted = dict.fromkeys(patterns)
        self.remove_event_triggers([p for p in self._triggers if p not in wanted])
        self.add_event_triggers(wanted, needed=needed, activate=activate)

    def add_event_triggers(
        self,
        patterns: Iterable[str],
        *,
        needed: Callable[[str], bool],
        activate: Callable[[str, Event], Awaitable[Any]],
    ) -> None:
        """Watch these topic patterns too (see :meth:`set_event_triggers`); costs the patterns
        given, not the ones watched. ``needed`` and ``activate`` replace the previous ones for
        every pattern."""
        self._trigger_needed, self._trigger_activate = needed, activate
        for pattern in dict.fromkeys(patterns):
            if pattern in self._triggers:
                continue

            def on_event(event: Event, pattern: str = pattern) -> None:
                activate = self._trigger_activate
                if activate is not None and self._trigger_needed(pattern):
                    self.tasks.spawn(None, activate(pattern, event),  # type: ignore[arg-type]
                                     name=f"activate:event:{pattern}")

            try:
                self._triggers[pattern] = self.bus.subscribe(pattern, on_event)
            except PlughostError as exc:
                logger.warning("activation trigger event:%s ignored: %s", pattern, exc.message)

    def remove_event_triggers(self, patterns: Iterable[str]) -> None:
        """Stop watching these topic patterns (unknown ones are ignored)."""
        for pattern in list(patterns):
            undo = self._triggers.pop(pattern, None)
            if undo is not None:
                undo()

    # -- host extension (see plughost.host.HostExtension) -------------------------------------

    def prepare_context(self, record: Any, context: PluginContext) -> None:
        """Give the plugin owner-scoped views: ``ctx.bus``, ``ctx.commands``, ``ctx.channels``,
        ``ctx.hooks`` and ``ctx.tasks`` (everything it registers through them is its own)."""
        pid = context.plugin_id
        count = self.counters.counted  # what the plugin registers is counted like its exports
        context.attach("bus", ScopedBus(self.bus, pid, count))
        context.attach("commands", ScopedCommands(self.commands, pid, count))
        context.attach("channels", ScopedChannels(self.channels, pid, count))
        context.attach("hooks", ScopedHooks(self.hooks, pid, count))
        context.attach("tasks", ScopedTasks(self.tasks, pid))

    async def on_activated(self, record: Any, exports: Iterable[Export]) -> None:
        """Register what the plugin's ``start`` returned (all or nothing)."""
        self.register_exports(record.id, exports, record.instance)

    async def on_deactivated(self, record: Any) -> None:
        """Remove everything the plugin registered; cancel its background work."""
        await self.unregister_owner(record.id)

    def publish_lifecycle(self, event: LifecycleEvent) -> None:
        """Publish a lifecycle change as ``plugin.lifecycle.<new state>``.

        ``source`` is ``None`` (the host says it, not the plugin); the payload is
        :meth:`LifecycleEvent.to_dict` (``plugin_id``, ``old``, ``new``, ``timestamp``,
        ``reason``, ``phase``).
        """
        if self.lifecycle_wanted(event.new):  # nobody listens (discovering thousands): no payload
            self.bus.emit(f"plugin.lifecycle.{event.new.value}", event.to_dict())

    def lifecycle_wanted(self, new: State) -> bool:
        """Whether anyone subscribes to ``plugin.lifecycle.<new>`` (the ``wants`` of
        :meth:`publish_lifecycle` as a lifecycle listener: with no subscriber, no event is
        even built)."""
        return bool(self.bus.subscribers(f"plugin.lifecycle.{new.value}"))

    # -- cleanup ----------------------------------------------------------------------------

    async def unregister_owner(self, plugin_id: str) -> dict[str, int]:
        """Remove everything ``plugin_id`` registered and cancel its background work.

        Returns how many hooks, subscriptions, commands and channels (handlers plus open
        channels) were removed, and how many tasks were cancelled; waits for those tasks to end.
        """
        tasks = self.tasks.of(plugin_id)
        removed = {
            "hooks": self.hooks.unregister_owner(plugin_id),
            "subscriptions": self.bus.unregister_owner(plugin_id),
            "commands": self.commands.unregister_owner(plugin_id),
            "channels": self.channels.unregister_owner(plugin_id),
        }
        tasks += [t for t in self.tasks.cancel_owner(plugin_id) if t not in tasks]
        for t in tasks:
            t.cancel()
        current = asyncio.current_task()
        waiting = [t for t in tasks if t is not current]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        removed["tasks"] = len(tasks)
        return removed

    def owned_by(self, plugin_id: str) -> dict[str, list[str]]:
        """What ``plugin_id`` still has registered or running (empty lists when nothing)."""
        return {
            "hooks": [i.hook for i in self.hooks.implementations(plugin_id)],
            "specs": self.hooks.specs_of(plugin_id),
            "subscriptions": [s.pattern for s in self.bus.subscriptions(plugin_id)],
            "commands": self.commands.names(plugin_id),
            "channels": [
                *self.channels.names(plugin_id),
                *(c.name for c in self.channels.open_channels(plugin_id)),
            ],
            "tasks": [t.get_name() for t in self.tasks.of(plugin_id)],
        }

    async def aclose(self) -> None:
        """Stop everything: channels, subscribers, background tasks."""
        await self.channels.aclose()
        await self.bus.aclose()
        tasks = self.tasks.cancel_all()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _proxy(instance: PluginInstance, target: str) -> Callable[[Mapping[str, Any], float | None],
                                                              Any]:
    def call(kwargs: Mapping[str, Any], timeout: float | None) -> Any:
        return instance.call(target, kwargs, timeout=timeout)

    return call


def _event_proxy(instance: EventDelivery, target: str) -> Callable[[Event], Any]:
    async def deliver(event: Event) -> None:
        await instance.deliver_event(target, event)

    return deliver


def _channel_proxy(instance: ChannelService, target: str) -> Callable[[Channel], Any]:
    async def serve(channel: Channel) -> None:
        await instance.serve_channel(target, channel)

    return serve
