"""The runtime contract: every runtime turns a manifest + files into a :class:`PluginInstance`.

The host drives every instance the same way and never asks which runtime it is talking to::

    instance = await runtime.load(manifest, root)     # LOADED: imported / spawned / compiled
    exports = await instance.start(context)           # ACTIVE: activate ran; what it provides
    result = await instance.call(target, kwargs, timeout=5.0)
    health = await instance.health()
    await instance.stop()                             # DEACTIVATED: deactivate ran
    await instance.close()                            # unloaded: every resource released

``close`` is idempotent; any call after it raises :class:`~plughost.errors.PluginUnavailable`.
A runtime declares in ``enforces`` which manifest limits it can really enforce; the host reports
the others at load time instead of pretending (in-process Python cannot be pre-empted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from plughost.core.context import PluginContext
    from plughost.core.manifest import Manifest

__all__ = [
    "LIMIT_NAMES",
    "Export",
    "ExportKind",
    "Health",
    "PluginInstance",
    "Runtime",
]

LIMIT_NAMES: frozenset[str] = frozenset(
    {"timeout", "memory", "cpu", "fuel", "open_files", "output", "processes"}
)
"""Limit names a manifest may set and a runtime may claim to enforce."""

ExportKind = Literal["hook", "command", "event", "channel"]


@dataclass(frozen=True, slots=True)
class Export:
    """One thing an active plugin provides to the host.

    :param kind: ``hook`` (an extension-point implementation), ``command``, ``event``
        (a subscription) or ``channel`` (a channel handler).
    :param name: the extension point name, command id, topic pattern or channel name.
    :param target: what to pass to :meth:`PluginInstance.call` to invoke it.
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
    """A loaded plugin, whatever runs it."""

    @property
    def plugin_id(self) -> str: ...

    async def start(self, context: PluginContext) -> Sequence[Export]:
        """Activate the plugin; return what it provides."""
        ...

    async def call(
        self,
        target: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Invoke ``target`` (from an :class:`Export`) with keyword arguments."""
        ...

    async def health(self) -> Health: ...

    async def stop(self) -> None:
        """Deactivate; idempotent."""
        ...

    async def close(self) -> None:
        """Release everything (modules, process, store); idempotent."""
        ...

    def stats(self) -> Mapping[str, Any]:
        """Counters for metrics: calls, errors, restarts, memory, ..."""
        ...

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        """A direct in-interpreter callable for ``target`` when there is one (fast path).

        Out-of-process runtimes return ``None`` and the host goes through :meth:`call`.
        """
        ...


@runtime_checkable
class Runtime(Protocol):
    """Something that can load plugins of one ``runtime`` kind."""

    name: str
    """The manifest ``runtime`` value this runtime serves (``python``, ``process``, ``wasm``...)."""

    enforces: frozenset[str]
    """The subset of :data:`LIMIT_NAMES` this runtime really enforces."""

    async def load(self, manifest: Manifest, root: Path | None) -> PluginInstance:
        """Import / spawn / compile the plugin at ``root``; raise PluginLoadError on failure."""
        ...

    async def aclose(self) -> None:
        """Release runtime-wide resources (tickers, caches, pools); idempotent."""
        ...
