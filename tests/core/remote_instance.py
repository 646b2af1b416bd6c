"""A PluginInstance whose code lives "elsewhere": only reachable through ``call``.

It stands where the process / WebAssembly runtimes will: arguments and results cross a JSON
boundary, ``local_callable`` returns ``None``, and the runtime enforces the deadline itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from plughost.errors import PluginCrashed, PluginTimeout, PluginUnavailable
from plughost.runtimes.base import Export, Health


class RemoteInstance:
    def __init__(self, plugin_id: str,
                 handlers: Mapping[str, Callable[..., Awaitable[Any]]],
                 exports: Sequence[Export] = ()) -> None:
        self._id = plugin_id
        self._handlers = dict(handlers)
        self._exports = list(exports)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False

    @property
    def plugin_id(self) -> str:
        return self._id

    async def start(self, context: Any) -> Sequence[Export]:
        return list(self._exports)

    async def call(self, target: str, kwargs: Mapping[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        if self.closed:
            raise PluginUnavailable("instance closed", plugin_id=self._id)
        wire = json.loads(json.dumps(dict(kwargs or {})))  # the process boundary
        self.calls.append((target, wire))
        handler = self._handlers[target]
        try:
            result = await asyncio.wait_for(handler(**wire), timeout)
        except TimeoutError:
            raise PluginTimeout(f"{target} timed out after {timeout}s",
                                plugin_id=self._id) from None
        except Exception as exc:
            raise PluginCrashed(f"{target} failed: {exc}", plugin_id=self._id) from exc
        return json.loads(json.dumps(result))

    async def health(self) -> Health:
        return Health(ok=not self.closed)

    async def stop(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True

    def stats(self) -> Mapping[str, Any]:
        return {"calls": len(self.calls)}

    def local_callable(self, target: str) -> Callable[..., Any] | None:
        return None
