"""Dispatch monitoring: one place where metrics and tracing hook into every call path.

Each communication mechanism (extension points, events, commands, channels) sends its calls
through one *dispatch function* held in an attribute (pluggy's ``_inner_hookexec`` shape). With
no monitor installed that attribute is the raw function, so the hot path pays nothing. Installing a
monitor swaps in a wrapper around the raw function; the undo callable swaps it back.

A monitor is a function called when a dispatch starts::

    def monitor(kind: str, name: str, payload: object) -> Finish | None: ...

``kind`` is ``"hook"``, ``"event"``, ``"command"``, ``"channel"`` or ``"call"`` (a direct
``host.call``: name ``<plugin id>:<target>``, payload ``{"plugin_id", "version", "target",
"args"}``); ``name`` is the extension
point, topic, command or channel name; ``payload`` is the call's keyword arguments, the
:class:`~plughost.core.bus.Event`, the command arguments or ``None``. It may return a *finish*
callback, called once the dispatch is over (after the ``await`` for async paths) with
``(error, result)``: ``error`` is the exception that escaped, or ``None``. This start/finish shape
works the same for sync and async dispatch, the way a tracing span does.

A monitor that raises is logged and ignored: observation never breaks the call it observes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

__all__ = [
    "COUNTED_KINDS",
    "LATENCY_BUCKETS",
    "DispatchCounters",
    "Finish",
    "Monitor",
    "MonitorSet",
    "step_monitors",
]

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

    def begin(self, kind: str, name: str, payload: Any) -> Finish:
        """Monitor one dispatch made outside the registries (a direct ``host.call``): calls the
        monitors now and returns the finish callback to call once the dispatch is over."""
        finishes = self._start(kind, name, payload)
        return lambda error, result: self._finish(finishes, error, result)

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


COUNTED_KINDS: tuple[str, ...] = ("direct_calls", "commands", "hooks", "events", "channels")
"""What :class:`DispatchCounters` counts per plugin: direct calls (``host.call``), commands run,
extension-point implementations run, events delivered and channels served. ``calls`` in a
snapshot is their sum."""


#: Upper bounds (seconds) of the latency histogram buckets, the last one implicit (+Inf).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
_HIST = {kind: f"latency:{kind}" for kind in COUNTED_KINDS}
_SUM = {kind: f"seconds:{kind}" for kind in COUNTED_KINDS}
#: Result types that are never awaitable (the common results of sync implementations).
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})


def _zero_counts() -> dict[str, Any]:
    counts: dict[str, Any] = dict.fromkeys((*COUNTED_KINDS, "errors"), 0)
    for key in _SUM.values():
        counts[key] = 0.0
    for key in _HIST.values():
        counts[key] = [0] * (len(LATENCY_BUCKETS) + 1)
    counts["codes"] = {}
    counts["limits"] = {}
    return counts


class DispatchCounters:
    """Per-plugin counts of everything the host dispatches to plugins, whatever the runtime.

    One instance per host. Counts survive a plugin's deactivation and reload (they describe the
    plugin, not one load of it); :meth:`forget` drops them when the plugin is removed. Besides
    counts, each kind keeps a latency histogram (:data:`LATENCY_BUCKETS`), and failures are
    counted by error code and, for a limit the plugin hit, by limit — labels cost nothing on
    the hot path: they are read from the exception only when a dispatch fails.
    """

    __slots__ = ("_counts", "_sources")

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, Any]] = {}
        self._sources: list[Callable[[], None]] = []

    def add_source(self, flush: Callable[[], None]) -> None:
        """Register ``flush()``, called before every read: a dispatcher that keeps its counts
        in its own loop (the extension-point caller, see :mod:`plughost.core.hookcall`) adds
        them here with :meth:`add` when asked."""
        self._sources.append(flush)

    def add(self, owner: str, kind: str, n: int) -> None:
        """Count ``n`` dispatches of ``kind`` to ``owner`` (no timing)."""
        if n:
            counts = self._counts.get(owner) or self._of(owner)
            counts[kind] += n

    def observe(self, owner: str, kind: str, seconds: float) -> None:
        """Add one latency observation of ``kind`` for ``owner`` (not a count)."""
        counts = self._counts.get(owner) or self._of(owner)
        counts[_SUM[kind]] += seconds
        counts[_HIST[kind]][bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def failure(self, owner: str, exc: BaseException | None) -> None:
        """Count one failed dispatch to ``owner``, by the error's code and the limit it hit."""
        counts = self._counts.get(owner) or self._of(owner)
        counts["errors"] += 1
        code = str(getattr(exc, "code", None) or (type(exc).__name__ if exc else "error"))
        codes = counts["codes"]
        codes[code] = codes.get(code, 0) + 1
        details = getattr(exc, "details", None)
        limit = details.get("limit") if isinstance(details, Mapping) else None
        if limit is None and code == "plugin.timeout":
            limit = "timeout"
        if limit is not None:
            counts["limits"][str(limit)] = counts["limits"].get(str(limit), 0) + 1

    def _of(self, owner: str) -> dict[str, Any]:
        counts = self._counts.get(owner)
        if counts is None:
            counts = self._counts[owner] = _zero_counts()
        return counts

    def record(self, owner: str, kind: str, seconds: float, failed: bool) -> None:
        """Count one finished dispatch of ``kind`` (one of :data:`COUNTED_KINDS`).

        Called while a failure propagates (a ``finally`` block), it reads the error's code
        and limit from the exception being raised."""
        counts = self._counts.get(owner) or self._of(owner)
        counts[kind] += 1
        counts[_SUM[kind]] += seconds
        counts[_HIST[kind]][bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if failed:
            self.failure(owner, sys.exc_info()[1])

    def snapshot(self, owner: str) -> dict[str, Any]:
        """``calls`` (every dispatch), each of :data:`COUNTED_KINDS`, ``errors`` and
        ``busy_seconds``; ``errors_by_code`` and ``limit_hits`` (mappings); ``latency``, the
        histogram of every kind together, and ``latency_by_kind``, each
        ``{"buckets": [[upper_bound, cumulative_count], ...], "sum": s, "count": n}`` (the last
        bound is ``inf``). All zero for a plugin never dispatched to.

        Extension-point latency is sampled (see :data:`plughost.core.hookcall.SAMPLE`), so
        ``latency_by_kind["hooks"]["count"]`` may be lower than ``hooks``; counts are exact."""
        for flush in self._sources:
            flush()
        # Reading creates nothing: an owner never dispatched to stays out of owners().
        counts = self._counts.get(owner) or _zero_counts()
        out: dict[str, Any] = {"calls": int(sum(counts[k] for k in COUNTED_KINDS))}
        out.update({k: int(counts[k]) for k in (*COUNTED_KINDS, "errors")})
        busy = sum(counts[k] for k in _SUM.values())
        out["busy_seconds"] = busy
        out["errors_by_code"] = dict(counts["codes"])
        out["limit_hits"] = dict(counts["limits"])
        bounds = (*LATENCY_BUCKETS, float("inf"))
        total = [0] * len(bounds)
        by_kind: dict[str, Any] = {}
        for kind, key in _HIST.items():
            cells = counts[key]
            running = 0
            cumulative = []
            for i, n in enumerate(cells):
                running += n
                total[i] += n
                cumulative.append([bounds[i], running])
            by_kind[kind] = {"buckets": cumulative, "sum": counts[_SUM[kind]],
                             "count": running}
        running = 0
        merged = []
        for i, n in enumerate(total):
            running += n
            merged.append([bounds[i], running])
        out["latency"] = {"buckets": merged, "sum": busy, "count": running}
        out["latency_by_kind"] = by_kind
        return out

    def forget(self, owner: str) -> None:
        self._counts.pop(owner, None)

    def owners(self) -> set[str]:
        """The owners anything was ever counted for (:meth:`snapshot` of any other is all
        zeros): what a sample that leaves out idle plugins asks, once."""
        for flush in self._sources:
            flush()
        return set(self._counts)

    def counted(self, owner: str, kind: str, fn: F) -> F:
        """``fn`` wrapped so that each call is counted as ``kind`` for ``owner``.

        The wrapper keeps what the registries read from a handler: it is a coroutine function
        exactly when ``fn`` is one, and ``inspect.signature`` sees ``fn``'s signature.
        """
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            return fn  # a hook wrapper runs around the implementations, which are counted
        record = self.record
        perf = time.perf_counter
        if inspect.iscoroutinefunction(fn):

            async def acounted(*args: Any, **kwargs: Any) -> Any:
                started = perf()
                failed = True
                try:
                    result = await fn(*args, **kwargs)
                    failed = False
                    return result
                finally:
                    record(owner, kind, perf() - started, failed)

            return functools.wraps(fn)(acounted)  # type: ignore[return-value]

        # The sync path is the hot one (a hook with five implementations runs it five times):
        # the success case is counted inline, and plain results skip inspect.isawaitable
        # (which costs more than the rest of the bookkeeping together).
        counts_of = self._counts.get
        make = self._of
        hist_key = _HIST[kind]
        sum_key = _SUM[kind]
        bounds = LATENCY_BUCKETS

        def counted(*args: Any, **kwargs: Any) -> Any:
            started = perf()
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                record(owner, kind, perf() - started, True)
                raise
            if type(result) not in _PLAIN and inspect.isawaitable(result):
                return _finish_later(result, record, owner, kind, started)
            seconds = perf() - started
            counts = counts_of(owner) or make(owner)
            counts[kind] += 1
            counts[sum_key] += seconds
            counts[hist_key][bisect_left(bounds, seconds)] += 1
            return result

        return functools.wraps(fn)(counted)  # type: ignore[return-value]


async def _finish_later(awaitable: Awaitable[Any], record: Callable[[str, str, float, bool], None],
                        owner: str, kind: str, started: float) -> Any:
    failed = True
    try:
        result = await awaitable
        failed = False
        return result
    finally:
        record(owner, kind, time.perf_counter() - started, failed)


step_monitors = MonitorSet()
"""Monitors of every install, update, rollback and uninstall step in this process (the
dispatch monitor shape of :mod:`plughost.core.monitoring`): ``kind`` is the operation
(``stage`` for fetching and verifying a package, ``install``, ``update``, ``rollback``,
``uninstall``), ``name`` the step, ``payload`` ``{"plugin_id", "version"}`` (``None`` while
the package is not opened yet). The tracing extra turns each step into a span."""
