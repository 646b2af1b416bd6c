"""Dispatch monitoring: one place where metrics and tracing hook into every call path.

Each communication mechanism (extension points, events, commands, channels) sends its calls
through one *dispatch function* held in an attribute (pluggy's ``_inner_hookexec`` shape). With
no monitor installed that attribute is the raw function, so the hot path pays nothing. Installing a
monitor swaps in a wrapper around the raw function; the undo callable swaps it back.

A monitor is a function called when a dispatch starts::

    def monitor(kind: str, name: str, payload: object) -> Finish | None: ...

``kind`` is ``"hook"``, ``"event"``, ``"command"`` or ``"channel"``; ``name`` is the extension
point, topic, command or channel name; ``payload`` is the call's keyword arguments, the
:class:`~plughost.core.bus.Event`, the command arguments or ``None``. It may return a *finish*
callback, called once the dispatch is over (after the ``await`` for async paths) with
``(error, result)``: ``error`` is the exception that escaped, or ``None``. This start/finish shape
works the same for sync and async dispatch, the way a tracing span does.

A monitor that raises is logged and ignored: observation never breaks the call it observes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["Finish", "Monitor", "MonitorSet"]

logger = logging.getLogger(__name__)

Finish = Callable[[BaseException | None, Any], None]
Monitor = Callable[[str, str, Any], Finish | None]

F = TypeVar("F", bound=Callable[..., Any])


class MonitorSet:
    """The monitors installed on a set of dispatchers; tells them to rebuild when it changes.

    Shared by the registries of one :class:`~plughost.core.communications.Communications`, so
    ``add_monitor`` on the facade observes every mechanism at once.
    """

    __slots__ = ("_listeners", "_monitors")

    def __init__(self) -> None:
        self._monitors: tuple[Monitor, ...] = ()
        self._listeners: list[Callable[[], None]] = []

    def __bool__(self) -> bool:
        return bool(self._monitors)

    def __len__(self) -> int:
        return len(self._monitors)

    def add(self, monitor: Monitor) -> Callable[[], None]:
        """Install ``monitor`` on every dispatcher sharing this set; returns the undo."""
        if not callable(monitor):
            raise TypeError(f"monitor must be callable, got {type(monitor).__name__}")
        self._monitors = (*self._monitors, monitor)
        self._changed()

        def undo() -> None:
            if monitor in self._monitors:
                items = list(self._monitors)
                items.remove(monitor)
                self._monitors = tuple(items)
                self._changed()

        return undo

    def on_change(self, listener: Callable[[], None]) -> None:
        """Register a dispatcher's rebuild function (called now and on every change)."""
        self._listeners.append(listener)
        listener()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def _start(self, kind: str, name: str, payload: Any) -> list[Finish]:
        finishes: list[Finish] = []
        for monitor in self._monitors:
            try:
                fin = monitor(kind, name, payload)
            except Exception:
                logger.exception("monitor %r failed at the start of %s %r", monitor, kind, name)
                continue
            if fin is not None:
                finishes.append(fin)
        return finishes

    @staticmethod
    def _finish(finishes: list[Finish], error: BaseException | None, result: Any) -> None:
        for fin in reversed(finishes):
            try:
                fin(error, result)
            except Exception:
                logger.exception("monitor finish callback %r failed", fin)

    def wrap_sync(self, kind: str, inner: F, name_of: Callable[..., tuple[str, Any]]) -> F:
        """Return ``inner`` itself when no monitor is installed, else a monitoring wrapper.

        ``name_of(*args)`` extracts ``(name, payload)`` from the dispatch arguments.
        """
        if not self._monitors:
            return inner

        def monitored(*args: Any) -> Any:
            name, payload = name_of(*args)
            finishes = self._start(kind, name, payload)
            try:
                result = inner(*args)
            except BaseException as exc:
                self._finish(finishes, exc, None)
                raise
            self._finish(finishes, None, result)
            return result

        return monitored  # type: ignore[return-value]

    def wrap_async(
        self,
        kind: str,
        inner: Callable[..., Awaitable[Any]],
        name_of: Callable[..., tuple[str, Any]],
    ) -> Callable[..., Awaitable[Any]]:
        """Async twin of :meth:`wrap_sync`: finish runs after the awaited dispatch completes."""
        if not self._monitors:
            return inner

        async def monitored(*args: Any) -> Any:
            name, payload = name_of(*args)
            finishes = self._start(kind, name, payload)
            try:
                result = await inner(*args)
            except BaseException as exc:
                self._finish(finishes, exc, None)
                raise
            self._finish(finishes, None, result)
            return result

        return monitored

    def clear(self) -> None:
        """Remove every monitor (used when the owning facade closes)."""
        with contextlib.suppress(Exception):
            self._monitors = ()
            self._changed()
