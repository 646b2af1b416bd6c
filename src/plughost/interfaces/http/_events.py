"""The server's event fan-out for the Server-Sent Events stream (``GET /api/v1/events``).

Sources publish plain dicts (lifecycle changes from the host, operation progress, plugin events
from the bus); every connected stream gets its own bounded queue. A slow client loses its oldest
events (and is told how many with a ``dropped`` event) instead of holding memory or slowing the
host. Publishing is thread-safe: worker threads hand events to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AUTH_RECHECK", "EventBroker", "ServerEvent"]

_CLOSED = object()

#: Seconds at most between two checks that a stream's reader may still read (a revoked token
#: ends its stream within this, plus the token cache's few seconds).
AUTH_RECHECK = 5.0


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One event: ``kind`` (the SSE event name) and a JSON-ready ``data`` mapping."""

    id: int
    kind: str
    data: dict[str, Any]
    time: float = field(default_factory=time.time)

    def encode(self) -> bytes:
        """The SSE wire form."""
        try:
            payload = json.dumps({**self.data, "time": self.time}, default=str)
        except (RecursionError, ValueError):
            # A plugin's event payload nested too deeply (or circular): the stream must go on.
            payload = json.dumps({
                **{k: v for k, v in self.data.items() if isinstance(v, str | int | None)},
                "payload": None, "error": "the event's payload could not be encoded as JSON",
                "time": self.time,
            })
        return f"id: {self.id}\nevent: {self.kind}\ndata: {payload}\n\n".encode()


class EventBroker:
    """Fan-out of :class:`ServerEvent` to subscribers (see the module doc).

    :param queue_size: events buffered per subscriber before the oldest are dropped.
    """

    def __init__(self, *, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Any]] = set()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop that owns the queues (publishing from other threads goes there)."""
        self._loop = loop

    @property
    def subscribers(self) -> int:
        """How many streams are connected."""
        return len(self._subscribers)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Send an event to every subscriber; callable from any thread."""
        if self._closed:
            return
        with self._lock:
            event = ServerEvent(next(self._ids), kind, data)
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(self._deliver, event)
            return
        self._deliver(event)

    def _deliver(self, event: Any) -> None:
        for queue in tuple(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    dropped = queue.get_nowait()
                    if dropped is not _CLOSED:
                        queue._dropped = getattr(queue, "_dropped", 0) + 1  # type: ignore[attr-defined]
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    def close(self) -> None:
        """End every stream (server shutdown); later publishes are ignored. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        for queue in tuple(self._subscribers):
            if loop is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_force_put, queue, _CLOSED)
            else:
                _force_put(queue, _CLOSED)

    async def stream(
        self, *, kinds: frozenset[str] | None = None, plugin_id: str | None = None,
        heartbeat: float = 15.0, max_events: int | None = None,
        allowed: Callable[[], str | None] | None = None, recheck: float = AUTH_RECHECK,
        max_seconds: float | None = None,
    ) -> AsyncIterator[bytes]:
        """SSE chunks for one subscriber until the broker closes (or ``max_events`` were sent,
        or ``max_seconds`` passed).

        :param kinds: only these event kinds; ``None``: all.
        :param plugin_id: only events about this plugin.
        :param heartbeat: seconds between keep-alive comments when nothing happens.
        :param allowed: ``None`` while the subscriber may still read, else why not (its token
            was revoked or expired). Asked before every event and at least every ``recheck``
            seconds; a refusal sends a final ``closed`` event and ends the stream.
        """
        queue: asyncio.Queue[Any] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        sent = 0
        loop = asyncio.get_running_loop()
        wait = min(heartbeat, recheck) if allowed is not None else heartbeat
        quiet_since = loop.time()
        deadline = loop.time() + max_seconds if max_seconds is not None else None
        try:
            yield b": plughost event stream\nretry: 3000\n\n"
            while not self._closed:
                timeout = wait
                if deadline is not None:
                    timeout = min(wait, deadline - loop.time())
                    if timeout <= 0:
                        break
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    item = None
                refused = allowed() if allowed is not None else None
                if refused is not None:
                    yield ServerEvent(0, "closed", {"reason": refused}).encode()
                    break
                if item is None:
                    if loop.time() - quiet_since >= heartbeat:
                        quiet_since = loop.time()
                        yield b": keep-alive\n\n"
                    continue
                if item is _CLOSED:
                    break
                dropped = getattr(queue, "_dropped", 0)
                if dropped:
                    queue._dropped = 0  # type: ignore[attr-defined]
                    yield ServerEvent(0, "dropped", {"count": dropped}).encode()
                if kinds is not None and item.kind not in kinds:
                    continue
                if plugin_id is not None and item.data.get("plugin_id") != plugin_id:
                    continue
                yield item.encode()
                quiet_since = loop.time()
                sent += 1
                if max_events is not None and sent >= max_events:
                    break
        finally:
            self._subscribers.discard(queue)


def _force_put(queue: asyncio.Queue[Any], item: Any) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(item)
