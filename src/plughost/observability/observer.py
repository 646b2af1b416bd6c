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
from plughost.errors import ConfigurationError, OperationRefused, RecordExists
from plughost.observability.alerts import (
    DEFAULT_RULES,
    AlertChange,
    AlertManager,
    AlertRule,
    WebhookNotifier,
    parse_rule,
    parse_rules,
)
from plughost.observability.figures import Sample, read_sample
from plughost.observability.health import HealthPoller, PluginHealth
from plughost.observability.logs import LogHub
from plughost.observability.metrics import ApiRequestMetrics, metrics_registry
from plughost.observability.settings import ObservabilitySettings

__all__ = ["Observer", "correlation_monitor"]

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]


def rule_from_stored(spec: dict[str, Any]) -> AlertRule:
    """A rule stored by the API (its ``for`` in seconds)."""
    return parse_rule(spec, source="api")


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
        at = self.settings.alerts
        self.file_rules = parse_rules(at.rules, source="[alerts] rules")
        self.webhooks = WebhookNotifier(at.webhooks, timeout=at.webhook_timeout,
                                        retries=at.webhook_retries)
        self.service: Any = None
        self.publish: Publish | None = None
        self.health: HealthPoller | None = None
        self.alerts: AlertManager | None = None
        self.api_rules: list[AlertRule] = []
        self.api_metrics = ApiRequestMetrics()
        self.registry = metrics_registry(self)
        self.public_metrics: tuple[str, int] | None = None
        self._public_server: Any = None
        self._undo: list[Callable[[], None]] = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def capture(self) -> None:
        """Start capturing plugin logs into the ring (idempotent)."""
        if not self._undo:
            self._undo.append(self.logs.install(level=self.settings.logs.level))

    async def start(self, service: Any, publish: Publish | None = None) -> None:
        """Persist logs in the service's database and start health checks and alerts."""
        if self._started:
            return
        self._started = True
        self.capture()
        self.service = service
        self.publish = publish
        self.logs.store = service.repository
        self.logs.output_drops = self._output_drops
        self.logs.start()
        host = service.host
        comms = getattr(host, "comms", None)
        if comms is not None and hasattr(comms, "add_monitor"):
            self._undo.append(comms.add_monitor(correlation_monitor))
        hs = self.settings.health
        self.health = HealthPoller(host, interval=hs.interval, timeout=hs.timeout,
                                   failures=hs.failures, policy=hs.policy,
                                   on_change=self._on_health)
        self.health.start()
        at = self.settings.alerts
        stored = await asyncio.to_thread(service.repository.list_alert_rules)
        self.api_rules = [rule_from_stored(r["spec"]) for r in stored]
        self.alerts = AlertManager(self._all_rules(), self._alert_sample, interval=at.interval,
                                   window=at.window,
                                   sinks=[self._record_alert, self._announce_alert,
                                          self._send_webhooks])
        self.alerts.start()
        if self.settings.metrics.public_bind:
            self._serve_public(self.settings.metrics.public_bind)

    def _serve_public(self, bind: str) -> None:
        """``/metrics`` without a token on its own address (``[metrics] public_bind``)."""
        from prometheus_client import start_http_server

        address, _, port = bind.rpartition(":")
        try:
            server, _thread = start_http_server(int(port), address.strip("[]"),
                                                registry=self.registry)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"[metrics] public_bind = {bind!r}: cannot listen there ({exc}); choose a free "
                "HOST:PORT or remove the setting") from None
        self._public_server = server
        self.public_metrics = (str(server.server_address[0]), int(server.server_address[1]))
        log.info("metrics without a token on http://%s:%s/metrics", self.public_metrics[0],
                 self.public_metrics[1])

    async def aclose(self) -> None:
        """Stop everything; the last log lines are written. Idempotent."""
        server, self._public_server = self._public_server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        if self.alerts is not None:
            await self.alerts.aclose()
        if self.health is not None:
            await self.health.aclose()
        await self.webhooks.aclose()
        await asyncio.to_thread(self.logs.close)
        for undo in reversed(self._undo):
            with contextlib.suppress(Exception):
                undo()
        self._undo.clear()

    # -- figures ---------------------------------------------------------------------------

    def sample(self, *, idle: bool = True) -> Sample:
        """A snapshot of the host's figures (alerts and metrics read the same one). The alert
        evaluation, every interval, passes ``idle=False``: plugins that never ran have no
        figure a rule could fire on, and leaving them out keeps an idle server idle."""
        drops = self.logs.stats()["dropped_by_plugin"]
        return read_sample(self.service.host,
                           health=self.health.verdict if self.health is not None else None,
                           log_drops={pid: d["store_queue"] + d["output_limit"]
                                      for pid, d in drops.items()}, idle=idle)

    def _alert_sample(self) -> Sample:
        return self.sample(idle=False)

    def _output_drops(self) -> dict[str, int]:
        """Lines each plugin's runtime dropped by its output limit (its own counter): the
        plugins awake, the only ones that hold a runtime's instance (an alert evaluation and a
        scrape ask, so this must not walk every registered plugin)."""
        out: dict[str, int] = {}
        for record in self.service.host.registry.awake():
            if record.instance is not None:
                value = record.instance.stats().get("log_lines_dropped", 0)
                if isinstance(value, int) and value:
                    out[record.id] = value
        return out

    # -- health ----------------------------------------------------------------------------

    def _on_health(self, health: PluginHealth) -> None:
        if self.publish is not None:
            self.publish("health", health.to_dict())

    # -- alerts ----------------------------------------------------------------------------

    def _all_rules(self) -> list[AlertRule]:
        defaults = list(DEFAULT_RULES) if self.settings.alerts.default_rules else []
        return [*defaults, *self.file_rules, *self.api_rules]

    def rules(self) -> list[AlertRule]:
        """Every rule in force: built-in, from the settings file, added through the API."""
        return self._all_rules()

    async def add_rule(self, rule: AlertRule, *, actor: str = "") -> AlertRule:
        """Add a rule through the API (stored; in force at once)."""
        if any(r.name == rule.name for r in self._all_rules()):
            raise RecordExists(f"an alert rule named {rule.name!r} exists; choose another "
                               "name", details={"name": rule.name})
        spec = {k: v for k, v in rule.to_dict().items() if k != "source" and v is not None}
        await asyncio.to_thread(self.service.repository.add_alert_rule, rule.name, spec,
                                actor=actor)
        self.api_rules.append(rule)
        if self.alerts is not None:
            await self.alerts.set_rules(self._all_rules())
        return rule

    async def remove_rule(self, name: str) -> None:
        """Remove a rule added through the API (rules from the file or built in cannot be)."""
        rule = next((r for r in self._all_rules() if r.name == name), None)
        if rule is not None and rule.source != "api":
            where = ("is built in; set [alerts] default_rules = false to turn the built-in "
                     "rules off" if rule.source == "default" else
                     "comes from the settings file; remove it there")
            raise OperationRefused(f"the alert rule {name!r} {where}",
                                   code="alert.rule_readonly", details={"name": name})
        await asyncio.to_thread(self.service.repository.delete_alert_rule, name)
        self.api_rules = [r for r in self.api_rules if r.name != name]
        if self.alerts is not None:
            await self.alerts.set_rules(self._all_rules())

    async def _record_alert(self, change: AlertChange) -> None:
        body = change.to_dict()
        await asyncio.to_thread(
            self.service.repository.append_alert_event, rule=change.rule.name,
            state=change.status, severity=change.rule.severity,
            threshold=change.rule.threshold, value=change.value, plugin_id=change.plugin_id,
            labels=body["labels"], message=body["message"])

    def _announce_alert(self, change: AlertChange) -> None:
        body = change.to_dict()
        if self.publish is not None:
            self.publish("alert", body)
        bus = getattr(self.service.host, "bus", None)
        if bus is not None:
            bus.emit(f"alert.{change.status}", body)

    def _send_webhooks(self, change: AlertChange) -> None:
        if self.webhooks.urls:
            self.webhooks.send(change.to_dict())
