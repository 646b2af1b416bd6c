"""Prometheus metrics: one custom collector over the host's own counters.

Nothing here counts on the hot path. The host already counts every dispatch to every plugin
(:class:`~plughost.core.monitoring.DispatchCounters`: calls by kind, a latency histogram,
errors by code, limit hits), the runtimes count restarts, crashes and memory, the log hub its
drops, the health poller its checks; :class:`HostCollector` reads all of them when Prometheus
scrapes, and only then builds labelled samples::

    registry = CollectorRegistry(auto_describe=False)
    registry.register(HostCollector(observer))
    text = generate_latest(registry)         # what GET /metrics answers

API requests are the one thing this module counts itself (:class:`ApiRequestMetrics`, fed by
the server's request middleware with the matched route template, never the raw path).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from plughost.errors import ExtraNotInstalled

    raise ExtraNotInstalled("Prometheus metrics", "server", "prometheus-client") from exc

from plughost.core.lifecycle import State
from plughost.core.monitoring import COUNTED_KINDS, LATENCY_BUCKETS
from plughost.observability.figures import plugin_counters, proc_usage

__all__ = ["CONTENT_TYPE", "ApiRequestMetrics", "HostCollector", "metrics_registry", "render"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_KIND_LABEL = {"direct_calls": "call", "commands": "command", "hooks": "hook",
               "events": "event", "channels": "channel"}
_OPERATIONS = ("plugin.install", "plugin.update", "plugin.rollback", "plugin.uninstall")
_WASM_PAGE = 65536


def _bucket_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class ApiRequestMetrics:
    """Counts API requests by method, route template and status, with a latency histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """One finished request (called by the server's middleware)."""
        from bisect import bisect_left

        with self._lock:
            key = (method, route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            cells = self.latency.get((method, route))
            if cells is None:
                cells = self.latency[(method, route)] = [0.0] * (len(LATENCY_BUCKETS) + 2)
            cells[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            cells[-1] += seconds

    def snapshot(self) -> tuple[dict[tuple[str, str, str], int],
                                dict[tuple[str, str], list[float]]]:
        with self._lock:
            return dict(self.requests), {k: list(v) for k, v in self.latency.items()}


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


class HostCollector:
    """Reads the host's figures at scrape time (see the module doc).

    :param observer: the server's :class:`~plughost.observability.observer.Observer` (its
        service's host and repository, log hub, health poller, alerts, API request counts).
    """

    def __init__(self, observer: Any) -> None:
        self.observer = observer

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception:  # a scrape must not fail on one bad figure: log it, serve the rest
            log.exception("collecting metrics failed")

    def _collect(self) -> Iterator[Metric]:
        observer = self.observer
        service = observer.service
        host = service.host
        # Per plugin, the plugins that run or ran (loaded, called, failed): a lazy plugin never
        # used has nothing to count, and ten thousand of them would be seventy thousand
        # series of zeros; plughost_plugins counts them by state.
        plugins = plugin_counters(host, idle=False)
        yield from self._dispatch(plugins)
        yield from self._runtime(plugins)
        yield from self._states(plugins, host.registry.state_counts())
        yield from self._health()
        yield from self._logs()
        yield from self._events(host)
        yield from self._alerts()
        yield from self._operations(service.repository)
        yield from self._api()
        yield from self._packages(service)

    # -- per plugin ------------------------------------------------------------------------

    def _dispatch(self, plugins: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
        labels = ["plugin", "runtime"]
        calls = CounterMetricFamily("plughost_plugin_dispatches", (
            "Dispatches to a plugin by kind: call (host.call), command, hook implementation, "
            "event delivery, channel."), labels=[*labels, "kind"])
        errors = CounterMetricFamily("plughost_plugin_errors",
                                     "Failed dispatches by error code.",
                                     labels=[*labels, "code"])
        timeouts = CounterMetricFamily("plughost_plugin_timeouts",
                                       "Dispatches that ran out of time.", labels=labels)
        limits = CounterMetricFamily("plughost_plugin_limit_hits",
                                     "Dispatches stopped by a limit, by limit.",
                                     labels=[*labels, "limit"])
        latency = _histogram("plughost_plugin_dispatch_duration_seconds",
                             "How long dispatches to a plugin took, by kind.",
                             [*labels, "kind"])
        for pid, data in plugins.items():
            base = [pid, str(data.get("runtime", ""))]
            for kind in COUNTED_KINDS:
                calls.add_metric([*base, _KIND_LABEL[kind]], float(data.get(kind, 0) or 0))
            codes = data.get("errors_by_code") or {}
            for code, n in sorted(codes.items()):
                errors.add_metric([*base, str(code)], float(n))
            timeouts.add_metric(base, float(codes.get("plugin.timeout", 0)))
            for limit, n in sorted((data.get("limit_hits") or {}).items()):
                limits.add_metric([*base, str(limit)], float(n))
            for kind, hist in (data.get("latency_by_kind") or {}).items():
                if not hist.get("count"):
                    continue
                latency.add_metric(
                    [*base, _KIND_LABEL.get(kind, kind)],
                    [(_bucket_text(le), float(n)) for le, n in hist["buckets"]],
                    float(hist.get("sum", 0.0)))
        yield from (calls, errors, timeouts, limits, latency)

    def _runtime(self, plugins: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
        labels = ["plugin", "runtime"]
        restarts = CounterMetricFamily("plughost_plugin_restarts",
                                       "Restarts after a crash (isolated runtimes).", labels=labels)
        crashes = CounterMetricFamily("plughost_plugin_crashes",
                                      "Crashes of the plugin's process or sandbox.", labels=labels)
        quarantined = GaugeMetricFamily("plughost_plugin_quarantined",
                                        "1 while the plugin is quarantined after crashes.",
                                        labels=labels)
        rss = GaugeMetricFamily("plughost_process_resident_memory_bytes",
                                "Resident memory of a process plugin.", labels=["plugin"])
        cpu = CounterMetricFamily("plughost_process_cpu_seconds",
                                  "CPU time (user + system) of a process plugin's process.",
                                  labels=["plugin"])
        pages = GaugeMetricFamily("plughost_wasm_memory_pages",
                                  "Linear memory of a WebAssembly plugin, in 64 KiB pages.",
                                  labels=["plugin"])
        fuel = GaugeMetricFamily("plughost_wasm_fuel_limit",
                                 "Fuel a WebAssembly plugin's call may use (its limit).",
                                 labels=["plugin"])
        fuel_used = CounterMetricFamily("plughost_wasm_fuel_used",
                                        "Fuel a WebAssembly plugin's calls have used.",
                                        labels=["plugin"])
        for pid, data in plugins.items():
            base = [pid, str(data.get("runtime", ""))]
            if "restarts" in data:
                restarts.add_metric(base, float(data["restarts"]))
            if "crashes" in data:
                crashes.add_metric(base, float(data["crashes"]))
            if "quarantined" in data:
                quarantined.add_metric(base, 1.0 if data["quarantined"] else 0.0)
            process_id = data.get("pid")
            if isinstance(process_id, int) and process_id > 0:
                usage = proc_usage(process_id)
                if usage is not None:
                    rss.add_metric([pid], float(usage[0]))
                    cpu.add_metric([pid], usage[1])
            if data.get("runtime") == "wasm" and "memory_bytes" in data:
                pages.add_metric([pid], float(data["memory_bytes"] or 0) / _WASM_PAGE)
                record = self.observer.service.host.registry.find(pid)
                limits = getattr(getattr(record, "manifest", None), "limits", None)
                limit = getattr(limits, "fuel", None)
                if limit:
                    fuel.add_metric([pid], float(limit))
                if "fuel_used" in data:
                    fuel_used.add_metric([pid], float(data["fuel_used"]))
        yield from (restarts, crashes, quarantined, rss, cpu, pages, fuel, fuel_used)

    def _states(self, plugins: Mapping[str, Mapping[str, Any]],
                counts: Mapping[State, int]) -> Iterator[Metric]:
        state = GaugeMetricFamily("plughost_plugin_state", (
            "1 for the plugin's current lifecycle state (plugins that run or ran; the others "
            "are counted in plughost_plugins)."), labels=["plugin", "runtime", "state"])
        by_state = GaugeMetricFamily("plughost_plugins", "Plugins by lifecycle state.",
                                     labels=["state"])
        for pid, data in plugins.items():
            state.add_metric([pid, str(data.get("runtime", "")), str(data.get("state", ""))],
                             1.0)
        for current in State:
            by_state.add_metric([current.value], float(counts.get(current, 0)))
        yield from (state, by_state)

    def _health(self) -> Iterator[Metric]:
        poller = self.observer.health
        healthy = GaugeMetricFamily("plughost_plugin_healthy", (
            "1 when the plugin's last health check passed, 0 when it is degraded (absent "
            "before its first check)."), labels=["plugin"])
        failed = CounterMetricFamily("plughost_plugin_health_check_failures",
                                     "Failed health checks.", labels=["plugin"])
        if poller is not None:  # the plugins checked: one never active has nothing to say
            for pid, item in sorted(poller.plugins.items()):
                if item.status in ("healthy", "degraded"):
                    healthy.add_metric([pid], 1.0 if item.status == "healthy" else 0.0)
                failed.add_metric([pid], float(item.failures))
        yield from (healthy, failed)

    def _logs(self) -> Iterator[Metric]:
        stats = self.observer.logs.stats()
        captured = CounterMetricFamily("plughost_log_lines_captured",
                                       "Plugin log lines captured.")
        captured.add_metric([], float(stats["captured"]))
        dropped = CounterMetricFamily("plughost_log_lines_dropped", (
            "Plugin log lines dropped: by the plugin's output limit, or because the store could "
            "not keep up."), labels=["plugin", "reason"])
        for pid, reasons in stats["dropped_by_plugin"].items():
            for reason, n in reasons.items():
                dropped.add_metric([pid, reason], float(n))
        yield from (captured, dropped)

    def _events(self, host: Any) -> Iterator[Metric]:
        bus = getattr(host, "bus", None)
        stats = getattr(bus, "stats", None)
        if not callable(stats):
            return
        data = stats()
        depth = GaugeMetricFamily("plughost_event_queue_depth",
                                  "Events waiting in subscriber queues.")
        depth.add_metric([], float(data.get("pending", 0)))
        dropped = CounterMetricFamily("plughost_events_dropped",
                                      "Events dropped because a subscriber's queue was full.")
        dropped.add_metric([], float(data.get("dropped", 0)))
        yield from (depth, dropped)

    def _alerts(self) -> Iterator[Metric]:
        manager = self.observer.alerts
        firing = GaugeMetricFamily("plughost_alerts_firing", "Alerts firing now.",
                                   labels=["severity"])
        counts = {"info": 0, "warning": 0, "critical": 0}
        if manager is not None:
            for alert in manager.evaluator.active():
                if alert["state"] == "firing":
                    counts[alert["severity"]] = counts.get(alert["severity"], 0) + 1
        for severity, n in counts.items():
            firing.add_metric([severity], float(n))
        yield firing

    def _operations(self, repository: Any) -> Iterator[Metric]:
        outcomes = CounterMetricFamily(
            "plughost_plugin_operations",
            "Installs, updates, rollbacks and uninstalls by outcome (from the audit log).",
            labels=["operation", "outcome"])
        for action, outcome, n in repository.count_audit(_OPERATIONS):
            outcomes.add_metric([action.removeprefix("plugin."), outcome], float(n))
        durations = SummaryMetricFamily("plughost_operation_duration_seconds",
                                        "Background operations by kind and final status.",
                                        labels=["kind", "status"])
        for kind, status, count, seconds in repository.operation_totals():
            durations.add_metric([kind, status], count, seconds)
        yield from (outcomes, durations)

    def _packages(self, service: Any) -> Iterator[Metric]:
        installer = getattr(service, "installer", None)
        figures = installer.packages.figures() if installer is not None else {}
        requests = CounterMetricFamily(
            "plughost_package_cache_requests",
            "Package look-ups by cache tier (memory, disk, store) and result (hit, miss).",
            labels=["tier", "result"])
        for tier, counts in figures.items():
            for result in ("hit", "miss"):
                requests.add_metric([tier, result], float(counts[result]))
        held = GaugeMetricFamily("plughost_package_cache_memory_bytes",
                                 "Bytes of packages held by the memory tier.")
        held.add_metric([], float(figures.get("memory", {}).get("bytes", 0)))
        yield from (requests, held)

    def _api(self) -> Iterator[Metric]:
        requests, latency = self.observer.api_metrics.snapshot()
        count = CounterMetricFamily("plughost_api_requests",
                                    "API requests by method, route and status.",
                                    labels=["method", "route", "status"])
        for (method, route, status), n in sorted(requests.items()):
            count.add_metric([method, route, status], float(n))
        hist = _histogram("plughost_api_request_duration_seconds",
                          "API request latency by method and route.", ["method", "route"])
        bounds = (*LATENCY_BUCKETS, float("inf"))
        for (method, route), cells in sorted(latency.items()):
            running = 0.0
            buckets = []
            for i, bound in enumerate(bounds):
                running += cells[i]
                buckets.append((_bucket_text(bound), running))
            hist.add_metric([method, route], buckets, cells[-1])
        yield from (count, hist)


def metrics_registry(observer: Any) -> CollectorRegistry:
    """A registry holding only the host's collector (no process-wide default metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HostCollector(observer))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return bytes(generate_latest(registry))
