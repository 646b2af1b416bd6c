"""Background asyncio tasks grouped by the plugin that owns them, so they can be cancelled.

Event queue workers, channel handlers and historic-call replays run as tasks on behalf of a
plugin. Each is spawned through one :class:`OwnerTasks`, which remembers the owner; deactivating
the plugin cancels exactly its tasks (and nothing relies on garbage collection to stop them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["OwnerTasks"]

logger = logging.getLogger(__name__)

HOST = ""
"""Owner key used for work that belongs to the host rather than to a plugin."""


class OwnerTasks:
    """A set of running tasks per owner. Finished tasks remove themselves."""

    __slots__ = ("_by_owner",)

    def __init__(self) -> None:
        self._by_owner: dict[str, set[asyncio.Task[Any]]] = {}

    def spawn(
        self, owner: str | None, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Start ``coro`` as a task owned by ``owner`` (``None``: the host).

        Must be called with an event loop running. An exception that escapes the task is logged
        (the mechanisms that spawn tasks catch and report their own errors first).
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        key = owner or HOST
        bucket = self._by_owner.setdefault(key, set())
        bucket.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            group = self._by_owner.get(key)
            if group is not None:
                group.discard(t)
                if not group:
                    del self._by_owner[key]
            if not t.cancelled() and t.exception() is not None:
                logger.error(
                    "background task %s of %s failed", t.get_name(), key or "the host",
                    exc_info=t.exception(),
                )

        task.add_done_callback(done)
        return task

    def of(self, owner: str | None) -> list[asyncio.Task[Any]]:
        """The tasks still running for ``owner``."""
        return list(self._by_owner.get(owner or HOST, ()))

    def cancel_owner(self, owner: str | None) -> list[asyncio.Task[Any]]:
        """Cancel every task of ``owner``; returns them so the caller can await their end."""
        tasks = self.of(owner)
        for task in tasks:
            task.cancel()
        return tasks

    def cancel_all(self) -> list[asyncio.Task[Any]]:
        """Cancel every task of every owner; returns them."""
        tasks = [t for group in self._by_owner.values() for t in group]
        for task in tasks:
            task.cancel()
        return tasks

    def __len__(self) -> int:
        return sum(len(g) for g in self._by_owner.values())

    def owners(self) -> list[str]:
        """Owners that still have running tasks (``""`` is the host)."""
        return sorted(self._by_owner)
