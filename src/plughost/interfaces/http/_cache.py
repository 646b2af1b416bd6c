"""A tiny read cache for hot list endpoints (``GET /api/v1/plugins``).

An entry is served only while (a) nothing changed through this server since it was stored — any
lifecycle event, any finished operation and any non-GET API request bumps a generation counter —
and (b) it is younger than ``ttl`` seconds, which bounds how stale it can be when another
process (a local CLI on the same home, another host on the same database) changes things.
``ttl = 0`` turns it off. Concurrent misses of one key share one computation (single flight),
so an expiry under load costs one database read, not one per waiting client.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

__all__ = ["ReadCache"]


class ReadCache:
    """Serialized responses by key, invalidated by :meth:`bump` and by age."""

    def __init__(self, ttl: float, *, max_entries: int = 256) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.generation = 0
        self._entries: OrderedDict[str, tuple[int, float, bytes]] = OrderedDict()
        self._inflight: dict[tuple[str, int], asyncio.Future[bytes]] = {}

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached body for ``key``, or ``compute()``'s (shared by concurrent callers)."""
        body = self.get(key)
        if body is not None:
            return body
        if self.ttl <= 0:
            return await compute()
        flight = (key, self.generation)
        pending = self._inflight.get(flight)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        try:
            body = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            future.set_result(body)
            self.put(key, body, flight[1])
            return body
        finally:
            self._inflight.pop(flight, None)

    def bump(self) -> None:
        """Something changed: every entry is stale."""
        self.generation += 1
        self._entries.clear()

    def get(self, key: str) -> bytes | None:
        if self.ttl <= 0:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        generation, stored, body = entry
        if generation != self.generation or time.monotonic() - stored > self.ttl:
            self._entries.pop(key, None)
            return None
        return body

    def put(self, key: str, body: bytes, generation: int) -> None:
        """Store ``body`` computed while the generation was ``generation`` (if still current)."""
        if self.ttl <= 0 or generation != self.generation:
            return
        self._entries[key] = (generation, time.monotonic(), body)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
