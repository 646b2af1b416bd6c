"""The server's observability, wired once: log capture, health checks, alerts, metrics.

The management server owns one :class:`Observer`::

    observer = Observer(ObservabilitySettings.for_home(settings.home))
    observer.capture()                       # before plugins start: their first lines count
    await service.start()
    await observer.start(service, publish)   # store, health poller, alert evaluator
    ...
    await observer.aclose()

``publish(kind, data)`` sends to the server's event stream (``alert`` and ``health`` events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from plughost.core.correlation import correlation_id, new_correlation_id
from plughost.observability.logs import LogHub
from plughost.observability.settings import ObservabilitySettings

__all__ = ["Observer", "correlation_monitor"]

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]


def correlation_monitor(kind: str, name: str, payload: Any) -> Any:
    """A dispatch monitor giving a hook call, event delivery or command started outside any
    request its own correlation id (nested dispatches keep the outer one)."""
    if correlation_id.get() is not None:
        return None
    token = correlation_id.set(new_correlation_id())

    def finish(error: BaseException | None, result: Any) -> None:
        with contextlib.suppress(ValueError):  # finished in another context: nothing to undo
            correlation_id.reset(token)

    return finish


class Observer:
    """Owns the log hub, the health poller, the alert manager and the metrics collector."""

    def __init__(self, settings: ObservabilitySettings | None = None) -> None:
        self.settings = settings or ObservabilitySettings()
        ls = self.settings.logs
        self.logs = LogHub(ring_size=ls.ring_size, persist_rate=ls.persist_rate,
                           retention=ls.retention_delta, max_rows=ls.max_rows,
                           store_later=True)
        self.service: Any = None
        self.publish: Publish | None = None
        self._undo: list[Callable[[], None]] = []
        self._started = False

    def capture(self) -> None:
        """Start capturing plugin logs into the ring (idempotent)."""
        if not self._undo:
            self._undo.append(self.logs.install(level=self.settings.logs.level))

    async def start(self, service: Any, publish: Publish | None = None) -> None:
        """Persist logs in the service's database and start the background work."""
        if self._started:
            return
        self._started = True
        self.capture()
        self.service = service
        self.publish = publish
        self.logs.store = service.repository
        self.logs.start()
        comms = getattr(service.host, "comms", None)
        if comms is not None and hasattr(comms, "add_monitor"):
            self._undo.append(comms.add_monitor(correlation_monitor))

    async def aclose(self) -> None:
        """Stop everything; the last log lines are written. Idempotent."""
        await asyncio.to_thread(self.logs.close)
        for undo in reversed(self._undo):
            with contextlib.suppress(Exception):
                undo()
        self._undo.clear()
