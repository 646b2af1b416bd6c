"""The host's own figures, read in one place for alerts and metrics.

:func:`read_sample` takes a snapshot of what the host already counts — per plugin: state, the
dispatch counters (calls, errors, ...), the runtime's own counters (timeouts, crashes, restarts,
memory), RSS and CPU seconds of a process plugin (``/proc``), the health poller's verdict, the
log hub's drops; host-wide: event queue depth and drops. Nothing here counts anything itself.

:class:`FigureWindow` keeps the samples of the last ``window`` seconds and derives the figures
alert rules are written in (see :data:`FIGURES`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FIGURES", "HOST_FIGURES", "FigureWindow", "Sample", "proc_usage", "read_sample"]

#: Figure name -> what it is. Per plugin unless listed in :data:`HOST_FIGURES`.
FIGURES: Mapping[str, str] = {
    "error_rate": "errors / calls over the window (0..1)",
    "call_rate": "calls per second over the window",
    "p99_latency": "99th percentile call latency over the window, seconds",
    "memory": "memory in bytes (RSS of a process plugin, linear memory of a wasm plugin)",
    "cpu": "CPU seconds per second over the window (1.0 = one core)",
    "restarts": "restarts within the window",
    "crashes": "crashes within the window",
    "health": "1 when the last health checks failed (degraded) or the plugin failed, else 0",
    "log_drops": "plugin log lines dropped within the window",
    "queue_drops": "events dropped by full subscriber queues within the window (host-wide)",
    "queue_depth": "events waiting in subscriber queues (host-wide)",
}
HOST_FIGURES = frozenset({"queue_drops", "queue_depth"})

try:
    _TICKS = os.sysconf("SC_CLK_TCK")
    _PAGE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux
    _TICKS, _PAGE = 100, 4096


def proc_usage(pid: int) -> tuple[int, float] | None:
    """``(rss_bytes, cpu_seconds)`` of a live process from ``/proc``, or ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        with open(f"/proc/{pid}/statm", "rb") as fh:
            statm = fh.read().split()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
    return int(statm[1]) * _PAGE, cpu


@dataclass(frozen=True, slots=True)
class Sample:
    """One snapshot: ``plugins[id]`` is a flat mapping of that plugin's figures."""

    at: float
    plugins: Mapping[str, Mapping[str, Any]]
    host: Mapping[str, float] = field(default_factory=dict)


#: States in which a plugin that was never called has nothing to report.
_QUIET_STATES = frozenset({"discovered", "installed", "resolved", "disabled", "uninstalled"})


def _counted(host: Any) -> set[str] | None:
    """The plugins the host ever dispatched to (``None``: it cannot tell)."""
    owners = getattr(getattr(getattr(host, "comms", None), "counters", None), "owners", None)
    return owners() if callable(owners) else None


def _candidates(registry: Any, counted: set[str] | None) -> list[Any]:
    """The records :func:`plugin_counters` may report: every one, or (``counted`` given) only
    the awake ones and the ones ever called, from the registry's index when it keeps one —
    so an idle sample of 10,000 lazy plugins does not look at each of them."""
    awake = getattr(registry, "awake", None)
    if counted is None or not callable(awake):
        return list(registry)
    records: list[Any] = list(awake())
    seen = {r.id for r in records}
    for pid in sorted(counted - seen):
        record = registry.find(pid)
        if record is not None:
            records.append(record)
    return records


def plugin_counters(host: Any, *, idle: bool = True) -> dict[str, dict[str, Any]]:
    """Per plugin: state, runtime, the host's dispatch counters and the runtime's counters.
    ``idle=False`` leaves out the plugins that were never loaded nor called (their figures are
    all zero), so a sample of 10,000 lazy plugins costs the few that run."""
    reader = getattr(host, "metrics", None)
    out: dict[str, dict[str, Any]] = {}
    counted = None if idle else _counted(host)
    for record in _candidates(host.registry, counted):
        if counted is not None and record.instance is None \
                and record.state.value in _QUIET_STATES and record.id not in counted:
            continue
        if callable(reader):
            data = dict(reader(record.id))
        else:
            data = {"state": record.state.value}
            if record.instance is not None:
                data.update(record.instance.stats())
        data.setdefault("state", record.state.value)
        data["runtime"] = record.manifest.runtime
        out[record.id] = data
    return out


def read_sample(host: Any, *, health: Callable[[str], bool | None] | None = None,
                log_drops: Mapping[str, int] | None = None,
                clock: Callable[[], float] = time.monotonic, idle: bool = True) -> Sample:
    """Snapshot the host's figures now (see the module doc); ``idle=False``: without the
    plugins that never ran (see :func:`plugin_counters`)."""
    plugins = plugin_counters(host, idle=idle)
    for pid, data in plugins.items():
        process_id = data.get("pid")
        if isinstance(process_id, int) and process_id > 0:
            usage = proc_usage(process_id)
            if usage is not None:
                data["rss_bytes"], data["cpu_seconds"] = usage
        verdict = health(pid) if health is not None else None
        data["unhealthy"] = 1.0 if (verdict is False or data.get("state") == "failed") else 0.0
        data["log_dropped"] = (log_drops or {}).get(pid, 0)
    host_figures: dict[str, float] = {}
    bus = getattr(host, "bus", None)
    stats = getattr(bus, "stats", None)
    if callable(stats):
        try:
            bus_stats = stats()
            host_figures["queue_dropped"] = float(bus_stats.get("dropped", 0))
            host_figures["queue_pending"] = float(bus_stats.get("pending", 0))
        except Exception:  # a bus without counters: no queue figures
            pass
    return Sample(clock(), plugins, host_figures)


def _num(data: Mapping[str, Any] | None, key: str) -> float:
    value = (data or {}).get(key, 0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _delta(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None, key: str) -> float:
    # Counters restart from zero when a plugin is reloaded: a negative delta counts from zero.
    d = _num(new, key) - _num(old, key)
    return d if d >= 0 else _num(new, key)


def _p99(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> float | None:
    """From a ``latency`` histogram ``{"buckets": [[le, cumulative], ...]}``, if counted."""
    hist = (new or {}).get("latency")
    if not isinstance(hist, Mapping) or not hist.get("buckets"):
        return None
    before = {le: n for le, n in ((old or {}).get("latency") or {}).get("buckets", [])}
    buckets = [(float(le), n - before.get(le, 0)) for le, n in hist["buckets"]]
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return 0.0
    rank = 0.99 * total
    for le, cumulative in buckets:
        if cumulative >= rank:
            return le
    return buckets[-1][0]


class FigureWindow:
    """The samples of the last ``window`` seconds and the figures derived from them."""

    def __init__(self, window: float = 300.0) -> None:
        self.window = window
        self._samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)
        while len(self._samples) > 2 and sample.at - self._samples[1].at >= self.window:
            self._samples.popleft()

    @property
    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def plugins(self) -> list[str]:
        latest = self.latest
        return sorted(latest.plugins) if latest is not None else []

    def value(self, figure: str, plugin_id: str | None = None) -> float | None:
        """The figure now (``None``: not known, e.g. no latency histogram, or one sample)."""
        if not self._samples:
            return None
        new, old = self._samples[-1], self._samples[0]
        span = new.at - old.at
        if figure == "queue_depth":
            return new.host.get("queue_pending")
        if figure == "queue_drops":
            if "queue_dropped" not in new.host:
                return None
            d = new.host["queue_dropped"] - old.host.get("queue_dropped", 0.0)
            return d if d >= 0 else new.host["queue_dropped"]
        if plugin_id is None or plugin_id not in new.plugins:
            return None
        n, o = new.plugins[plugin_id], old.plugins.get(plugin_id)
        if figure == "memory":
            if "rss_bytes" in n:
                return _num(n, "rss_bytes")
            return _num(n, "memory_bytes") if "memory_bytes" in n else None
        if figure == "health":
            return _num(n, "unhealthy")
        if figure == "error_rate":
            calls = _delta(n, o, "calls")
            return _delta(n, o, "errors") / calls if calls > 0 else 0.0
        if figure == "restarts":
            return _delta(n, o, "restarts")
        if figure == "crashes":
            return _delta(n, o, "crashes")
        if figure == "log_drops":
            return _delta(n, o, "log_dropped")
        if figure == "p99_latency":
            return _p99(n, o)
        if span <= 0:
            return None
        if figure == "call_rate":
            return _delta(n, o, "calls") / span
        if figure == "cpu":
            return _delta(n, o, "cpu_seconds") / span if "cpu_seconds" in n else None
        raise KeyError(figure)
