"""An in-memory runtime for tests of the core and the services: no imports, no processes.

Describe a plugin's behaviour with :class:`FakePlugin`, hand it to :class:`FakeRuntime`, and the
host drives it through the same contract as any other runtime. Handlers are plain callables (sync
or async). By default a fake plugin behaves like an *out-of-process* one (``local_callable``
returns ``None``), so callers exercise the ``call`` path; set ``local=True`` for the fast path.

    runtime = FakeRuntime(serves="python")
    runtime.define(FakePlugin("hello", handlers={"greet": lambda name: f"hi {name}"}))
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plughost.core.contract import Capability, Export, Health
from plughost.errors import (
    PluginActivationError,
    PluginLoadError,
    PluginTimeout,
    PluginUnavailable,
)

if TYPE_CHECKING:
    from plughost.core.bus import Event
    from plughost.core.channels import Channel
    from plughost.core.context import PluginContext
    from plughost.core.manifest import Manifest

__all__ = ["FakeInstance", "FakePlugin", "FakeRuntime"]


@dataclass(slots=True)
class FakePlugin:
    """The scripted behaviour of one fake plugin."""

    plugin_id: str
    handlers: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    exports: Sequence[Export] = ()
    fail_on: Mapping[str, BaseException] = field(default_factory=dict)
    """Phase → exception to raise: ``load``, ``start``, ``stop``, ``health``."""
    healthy: bool = True
    local: bool = False
    """Whether ``local_callable`` exposes handlers directly (in-process behaviour)."""


class FakeInstance:
    """A loaded fake plugin; records what the host asked of it in ``log``."""

    def __init__(self, spec: FakePlugin) -> None:
        self.spec = spec
        self.log: list[tuple[str, Any]] = []
        self.context: PluginContext | None = None
        self.started = False
        self.closed = False

    @property
    def plugin_id(self) -> str:
        return self.spec.plugin_id

    def _check_open(self) -> None:
        if self.closed:
            raise PluginUnavailable("fake instance is closed", plugin_id=self.plugin_id)

    def _maybe_fail(self, phase: str) -> None:
        exc = self.spec.fail_on.get(phase)
        if exc is not None:
            raise exc

    async def start(self, context: PluginContext) -> Sequence[Export]:
        self._check_open()
        self.log.append(("start", context.plugin_id))
        try:
            self._maybe_fail("start")
        except Exception as exc:
            raise PluginActivationError(
                f"activate failed: {exc}", plugin_id=self.plugin_id, phase="activate"
            ) from exc
        self.context = context
        self.started = True
        return tuple(self.spec.exports)

    async def call(
        self,
        target: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        self._check_open()
        self.log.append(("call", (target, dict(kwargs or {}))))
        handler = self.spec.handlers.get(target)
        if handler is None:
            raise PluginUnavailable(
                f"fake plugin has no handler {target!r}",
                plugin_id=self.plugin_id,
                code="plugin.no_target",
            )
        result = handler(**(kwargs or {}))
        if inspect.isawaitable(result):
            try:
                result = await asyncio.wait_for(result, timeout)
            except TimeoutError:
                raise PluginTimeout(
                    f"{target!r} took longer than {timeout}s", plugin_id=self.plugin_id
                ) from None
        return result

    async def _optional(self, name: str, **kwargs: Any) -> Any:
        """Run the handler ``name`` if the script has one (lifecycle callbacks are optional)."""
        self._check_open()
        handler = self.spec.handlers.get(name)
        if handler is None:
            return None
        result = handler(**kwargs)
        return await result if inspect.isawaitable(result) else result

    async def deliver_event(self, target: str, event: Event) -> None:
        self.log.append(("event", (target, event.topic)))
        await self.call(target, {"event": event.to_dict()})

    async def serve_channel(self, target: str, channel: Channel) -> None:
        self.log.append(("channel", (target, channel.name)))
        await self.call(target, {"channel": channel})

    async def export_state(self) -> Any:
        self.log.append(("export_state", None))
        return await self._optional("export_state")

    async def import_state(self, state: Any, from_version: str) -> None:
        self.log.append(("import_state", (state, from_version)))
        await self._optional("import_state", state=state, from_version=from_version)

    async def config_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        self.log.append(("config_changed", (dict(old), dict(new))))
        await self._optional("on_config_change", old=old, new=new)

    async def enabled_changed(self, enabled: bool) -> None:
        self.log.append(("enabled" if enabled else "disabled", None))
        await self._optional("on_enable" if enabled else "on_disable")

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        self._check_open()
        return self.spec.handlers.get(target) if self.spec.local else None

    async def health(self) -> Health:
        self.log.append(("health", None))
        try:
            self._maybe_fail("health")
        except Exception as exc:
            return Health(False, str(exc))
        return Health(self.spec.healthy and not self.closed)

    async def stop(self) -> None:
        if not self.started:
            return
        self.log.append(("stop", None))
        self.started = False
        self._maybe_fail("stop")

    async def close(self) -> None:
        if self.closed:
            return
        self.log.append(("close", None))
        self.closed = True

    def stats(self) -> Mapping[str, Any]:
        return {}


class FakeRuntime:
    """A runtime whose plugins are :class:`FakePlugin` scripts.

    :param serves: the manifest ``runtime`` value this fake answers for (default ``python``).
    :param enforces: which limits it claims to enforce (to test the host's reporting).
    :param capabilities: what it declares it can do (default: everything), to test how the
        host treats a runtime that lacks a capability.
    """

    def __init__(self, serves: str = "python", *, enforces: frozenset[str] = frozenset(),
                 capabilities: frozenset[Capability] = frozenset(Capability)):
        self.name = serves
        self.enforces = enforces
        self.capabilities = capabilities
        self.specs: dict[str, FakePlugin] = {}
        self.instances: dict[str, FakeInstance] = {}
        self.closed = False

    def check_entry(self, entry: str, root: Path | None) -> str | None:
        return None  # a fake plugin is its script: any entry will do

    def define(self, spec: FakePlugin) -> FakePlugin:
        self.specs[spec.plugin_id] = spec
        return spec

    async def load(self, manifest: Manifest, root: Path | None) -> FakeInstance:
        spec = self.specs.get(manifest.id) or self.define(FakePlugin(manifest.id))
        exc = spec.fail_on.get("load")
        if exc is not None:
            raise PluginLoadError(
                f"load failed: {exc}", plugin_id=manifest.id, phase="import"
            ) from exc
        instance = FakeInstance(spec)
        self.instances[manifest.id] = instance
        return instance

    async def aclose(self) -> None:
        self.closed = True
