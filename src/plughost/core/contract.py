"""The runtime contract: what the host asks of every runtime, whatever runs the plugin.

A *runtime* turns a manifest plus files into a :class:`PluginInstance`; the host drives every
instance the same way and never asks which runtime it is talking to::

    runtime.check_entry(manifest.entry, root)        # the runtime validates its own entry
    instance = await runtime.load(manifest, root)    # LOADED: imported / spawned / compiled
    exports = await instance.start(context)          # ACTIVE: activate ran; what it provides
    result = await instance.call(target, kwargs, timeout=5.0)
    await instance.deliver_event(target, event)      # an event for one of its subscriptions
    await instance.serve_channel(target, channel)    # one end of a channel opened to it
    state = await old.export_state()                 # update / rollback: hand the state over
    await new.import_state(state, from_version="1.2.0")
    await instance.config_changed(old_config, new_config)   # may raise to refuse the change
    await instance.enabled_changed(True)             # the operator enabled / disabled it
    health = await instance.health()
    await instance.stop()                            # DEACTIVATED: deactivate ran
    await instance.close()                           # unloaded: every resource released

What a runtime can do is a declared set of :class:`Capability` (``Runtime.capabilities``, a
class attribute). The host checks it before it relies on one: a plugin that needs a capability
its runtime lacks is refused at load (or at activation, for what only its exports reveal) with an
error naming the runtime and the capability — never silently skipped. Each optional capability
is a small Protocol (:class:`EventDelivery`, :class:`StateHandover`, :class:`ChannelService`,
:class:`ConfigListener`, :class:`EnableListener`); declaring one promises the instance implements
it, which :func:`check_instance` verifies when an instance is loaded.

``close`` is idempotent; any call after it raises :class:`~plughost.errors.PluginUnavailable`.
A runtime declares in ``enforces`` which manifest limits it can really enforce; the host reports
the others at load time instead of pretending (in-process Python cannot be pre-empted).

How the classic plugin callbacks map onto this contract, and where a new runtime plugs in, is in
``docs/runtimes.md``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

from plughost.errors import PluginUnavailable

if TYPE_CHECKING:
    from plughost.core.bus import Event
    from plughost.core.channels import Channel
    from plughost.core.context import PluginContext
    from plughost.core.manifest import Manifest

__all__ = [
    "LIMIT_NAMES",
    "REQUIRED",
    "Capability",
    "ChannelService",
    "ConfigListener",
    "EnableListener",
    "EventDelivery",
    "Export",
    "ExportKind",
    "Health",
    "PluginInstance",
    "Runtime",
    "StateHandover",
    "check_instance",
    "missing_capabilities",
    "needed_by_exports",
    "needed_by_manifest",
    "refuse",
]

LIMIT_NAMES: frozenset[str] = frozenset(
    {"timeout", "memory", "cpu", "fuel", "open_files", "output", "processes"}
)
"""Limit names a manifest may set and a runtime may claim to enforce."""

ExportKind = Literal["hook", "command", "event", "channel"]


class Capability(enum.StrEnum):
    """What a runtime can do for its plugins. The values are stable (shown in errors, docs)."""

    CALL = "call"
    """:meth:`PluginInstance.call`: commands, extension points, ``host.call``."""
    HEALTH = "health"
    """:meth:`PluginInstance.health`: a liveness probe."""
    EVENTS = "events"
    """:meth:`EventDelivery.deliver_event`: events reach the plugin's subscriptions."""
    STATE = "state"
    """:meth:`StateHandover.export_state` / :meth:`~StateHandover.import_state`: update and
    rollback carry the plugin's state over."""
    CHANNELS = "channels"
    """:meth:`ChannelService.serve_channel`: the plugin serves channels."""
    CONFIG = "config"
    """:meth:`ConfigListener.config_changed`: the plugin sees (and may refuse) config changes."""
    ENABLE = "enable"
    """:meth:`EnableListener.enabled_changed`: the plugin is told when it is enabled or
    disabled."""


REQUIRED: Final[frozenset[Capability]] = frozenset({Capability.CALL, Capability.HEALTH})
"""What every plugin needs, whatever it declares."""


@dataclass(frozen=True, slots=True)
class Export:
    """One thing an active plugin provides to the host.

    :param kind: ``hook`` (an extension-point implementation), ``command``, ``event``
        (a subscription) or ``channel`` (a channel handler).
    :param name: the extension point name, command id, topic pattern or channel name.
    :param target: the plugin's own name for the handler, passed back to
        :meth:`PluginInstance.call`, :meth:`EventDelivery.deliver_event` or
        :meth:`ChannelService.serve_channel`.
    :param options: kind-specific options (priority, tryfirst, before/after, wrapper, ...).
    """

    kind: ExportKind
    name: str
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Health:
    """Result of a health probe."""

    ok: bool
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class PluginInstance(Protocol):
    """A loaded plugin, whatever runs it: the part every runtime implements."""

    @property
    def plugin_id(self) -> str: ...

    async def start(self, context: PluginContext) -> Sequence[Export]:
        """Activate the plugin (its ``activate``); return what it provides."""
        ...

    async def call(
        self,
        target: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Invoke ``target`` (from an :class:`Export`, or any public name) with keyword
        arguments. An unknown target raises ``PluginUnavailable`` with code
        ``plugin.no_target``."""
        ...

    async def health(self) -> Health:
        """Probe liveness; never raises (a failure is ``Health(False, why)``)."""
        ...

    async def stop(self) -> None:
        """Deactivate (the plugin's ``deactivate``); idempotent."""
        ...

    async def close(self) -> None:
        """Release everything (modules, process, store); idempotent."""
        ...

    def stats(self) -> Mapping[str, Any]:
        """What only the runtime can count: restarts, crashes, memory, timeouts, ...

        Calls, commands, hooks and event deliveries are counted by the host, the same way for
        every runtime; a runtime does not count them again.
        """
        ...

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        """A direct in-interpreter callable for ``target`` when there is one (fast path).

        Out-of-process runtimes return ``None`` and the host goes through :meth:`call`,
        :meth:`EventDelivery.deliver_event` or :meth:`ChannelService.serve_channel`.
        """
        ...


@runtime_checkable
class EventDelivery(Protocol):
    """:attr:`Capability.EVENTS`."""

    async def deliver_event(self, target: str, event: Event) -> None:
        """Hand ``event`` to the subscription the plugin exported as ``target``."""
        ...


@runtime_checkable
class StateHandover(Protocol):
    """:attr:`Capability.STATE`. State is JSON only (never pickled); ``None`` means none."""

    async def export_state(self) -> Any:
        """The running plugin's state (its ``export_state``), or ``None`` when it keeps none."""
        ...

    async def import_state(self, state: Any, from_version: str) -> None:
        """Give a freshly loaded, not yet active plugin the state ``from_version`` exported.
        A plugin that keeps no state ignores it."""
        ...


@runtime_checkable
class ChannelService(Protocol):
    """:attr:`Capability.CHANNELS`."""

    async def serve_channel(self, target: str, channel: Channel) -> None:
        """Serve one opened channel with the handler exported as ``target``; return when the
        plugin's end is done (returning closes it)."""
        ...


@runtime_checkable
class ConfigListener(Protocol):
    """:attr:`Capability.CONFIG`."""

    async def config_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """The operator changed the plugin's configuration (its ``on_config_change``).
        Raising refuses the change; nothing is stored then."""
        ...


@runtime_checkable
class EnableListener(Protocol):
    """:attr:`Capability.ENABLE`."""

    async def enabled_changed(self, enabled: bool) -> None:
        """``True`` once the plugin is active again after the operator enabled it (its
        ``on_enable``); ``False`` just before an operator's disable deactivates it (its
        ``on_disable``)."""
        ...


_PROTOCOLS: Final[Mapping[Capability, type]] = {
    Capability.CALL: PluginInstance,
    Capability.HEALTH: PluginInstance,
    Capability.EVENTS: EventDelivery,
    Capability.STATE: StateHandover,
    Capability.CHANNELS: ChannelService,
    Capability.CONFIG: ConfigListener,
    Capability.ENABLE: EnableListener,
}


@runtime_checkable
class Runtime(Protocol):
    """Something that can load plugins of one ``runtime`` kind."""

    name: str
    """The manifest ``runtime`` value this runtime serves (``python``, ``process``, ``wasm``...)."""

    enforces: frozenset[str]
    """The subset of :data:`LIMIT_NAMES` this runtime really enforces."""

    capabilities: frozenset[Capability]
    """What this runtime's instances can do (see :class:`Capability`)."""

    def check_entry(self, entry: str, root: Path | None) -> str | None:
        """What is wrong with ``entry`` for this runtime (``None``: nothing). ``root`` is the
        plugin folder when there is one, so files ``entry`` names can be looked for."""
        ...

    async def load(self, manifest: Manifest, root: Path | None) -> PluginInstance:
        """Import / spawn / compile the plugin at ``root``; raise PluginLoadError on failure."""
        ...

    async def aclose(self) -> None:
        """Release runtime-wide resources (tickers, caches, pools); idempotent."""
        ...


def needed_by_manifest(manifest: Manifest) -> dict[Capability, str]:
    """The capabilities ``manifest`` needs, each with the reason (shown when refused)."""
    needs = {cap: "every plugin needs it" for cap in REQUIRED}
    events = [t for t in manifest.activation if t.startswith("event:")]
    if events:
        needs[Capability.EVENTS] = f"it is activated by {', '.join(events)}"
    if manifest.provides.channels:
        needs[Capability.CHANNELS] = f"it provides channels {', '.join(manifest.provides.channels)}"
    if manifest.config_schema or manifest.config_defaults:
        needs[Capability.CONFIG] = "it has a configuration the operator can change"
    return needs


def needed_by_exports(exports: Iterable[Export]) -> dict[Capability, str]:
    """The capabilities the exports of an activated plugin need, each with the reason."""
    needs: dict[Capability, str] = {}
    for export in exports:
        if export.kind == "event":
            needs.setdefault(Capability.EVENTS, f"it subscribes to {export.name!r}")
        elif export.kind == "channel":
            needs.setdefault(Capability.CHANNELS, f"it serves channel {export.name!r}")
    return needs


def missing_capabilities(runtime: Runtime, needs: Mapping[Capability, str]
                         ) -> dict[Capability, str]:
    """The part of ``needs`` that ``runtime`` does not declare."""
    have = runtime.capabilities
    return {cap: why for cap, why in needs.items() if cap not in have}


def refuse(runtime: Runtime, plugin_id: str, missing: Mapping[Capability, str], *,
           phase: str) -> PluginUnavailable:
    """The error for a plugin whose runtime lacks capabilities it needs."""
    what = "; ".join(f"{cap.value} ({why})" for cap, why in sorted(missing.items()))
    have = ", ".join(sorted(c.value for c in runtime.capabilities)) or "none"
    return PluginUnavailable(
        f"The {runtime.name!r} runtime cannot give plugin {plugin_id!r} what it needs: {what}. "
        f"That runtime supports: {have}. Run the plugin on a runtime that supports it "
        "(see docs/runtimes.md), or remove what needs it from the plugin.",
        plugin_id=plugin_id,
        phase=phase,
        code="runtime.capability",
        details={"runtime": runtime.name, "missing": sorted(c.value for c in missing)},
    )


def check_instance(runtime: Runtime, instance: object) -> list[str]:
    """Capabilities ``runtime`` declares that ``instance`` does not implement (a runtime bug:
    the host refuses the plugin rather than fail later)."""
    return sorted(
        cap.value for cap in runtime.capabilities
        if cap in _PROTOCOLS and not _implements(instance, _PROTOCOLS[cap])
    )


def _implements(instance: object, protocol: type) -> bool:
    """``isinstance(instance, protocol)``, answered from the class where it can be: a class
    that has every member of the protocol (a method, a property) gives it to each of its
    instances, so one look at the class serves every plugin a runtime loads, where
    ``isinstance`` on a runtime-checkable protocol walks the protocol's members each time
    (a third of loading an in-process plugin). An instance that has them otherwise (set on
    the instance) is asked as before."""
    cls = type(instance)
    if (cls, protocol) in _CLASSES_WITH:
        return True
    if all(getattr(cls, name, None) is not None for name in _members(protocol)):
        if len(_CLASSES_WITH) < 1024:  # runtimes' instance classes: a handful
            _CLASSES_WITH.add((cls, protocol))
        return True
    return isinstance(instance, protocol)


#: (class, protocol) pairs whose class has every member of the protocol (see _implements).
_CLASSES_WITH: set[tuple[type, type]] = set()


@functools.cache
def _members(protocol: type) -> frozenset[str]:
    """The members a protocol of this module declares: what its body defines or annotates,
    in it and the protocols it extends (``Protocol``'s own machinery left out)."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base is Protocol or not getattr(base, "_is_protocol", False):
            continue
        names.update(name for name in (*vars(base), *getattr(base, "__annotations__", {}))
                     if not name.startswith("_"))
    return frozenset(names)
