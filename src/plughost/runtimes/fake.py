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

from plughost.errors import (
    PluginActivationError,
    PluginLoadError,
    PluginTimeout,
    PluginUnavailable,
)
from plughost.runtimes.base import Export, Health

if TYPE_CHECKING:
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
        self._calls = 0
        self._errors = 0

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
        self._calls += 1
        try:
            result = handler(**(kwargs or {}))
            if inspect.isawaitable(result):
                try:
                    result = await asyncio.wait_for(result, timeout)
                except TimeoutError:
                    raise PluginTimeout(
                        f"{target!r} took longer than {timeout}s", plugin_id=self.plugin_id
                    ) from None
            return result
        except BaseException:
            self._errors += 1
            raise

    async def deliver_event(self, target: str, event: Any) -> None:
        """Hand the event object to the handler ``target`` (logged as ``event``)."""
        self._check_open()
        self.log.append(("event", (target, event.topic)))
        result = self._handler(target)(event)
        if inspect.isawaitable(result):
            await result

    async def serve_channel(self, target: str, channel: Any) -> None:
        """Serve one opened channel with the async handler ``target``."""
        self._check_open()
        self.log.append(("channel", (target, channel.name)))
        await self._handler(target)(channel)

    def _handler(self, target: str) -> Callable[..., Any]:
        handler = self.spec.handlers.get(target)
        if handler is None:
            raise PluginUnavailable(
                f"fake plugin has no handler {target!r}",
                plugin_id=self.plugin_id,
                code="plugin.no_target",
            )
        return handler

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
        return {"calls": self._calls, "errors": self._errors}


class FakeRuntime:
    """A runtime whose plugins are :class:`FakePlugin` scripts.

    :param serves: the manifest ``runtime`` value this fake answers for (default ``python``).
    :param enforces: which limits it claims to enforce (to test the host's reporting).
    """

    def __init__(self, serves: str = "python", *, enforces: frozenset[str] = frozenset()):
        self.name = serves
        self.enforces = enforces
        self.specs: dict[str, FakePlugin] = {}
        self.instances: dict[str, FakeInstance] = {}
        self.closed = False

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
