"""Alert rules over the host's own figures, evaluated in the server, with notifications.

A rule is a figure (:data:`~plughost.observability.figures.FIGURES`), a comparison, a threshold,
a ``for`` duration, a severity and labels. Per-plugin figures are evaluated for every plugin (or
the one the rule names); each (rule, plugin) pair is one alert::

    rule = AlertRule("errors", "error_rate", ">", 0.05, for_=60, severity="warning")
    evaluator = AlertEvaluator([rule])
    for change in evaluator.evaluate(window, now):   # window: a FigureWindow
        ...                                          # AlertChange: firing or resolved

An alert is *pending* while its condition holds for less than ``for``, *firing* once it has held
that long, and *resolved* when it stops holding. :class:`AlertManager` runs the evaluation loop
and sends each change to the history store, the event bus (``alert.firing`` /
``alert.resolved``), the server's event stream and every webhook (:class:`WebhookNotifier`:
retries with exponential backoff and jitter, honouring ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from plughost.errors import ConfigurationError, RequestInvalid
from plughost.observability.figures import FIGURES, HOST_FIGURES, FigureWindow

__all__ = [
    "DEFAULT_RULES",
    "SEVERITIES",
    "AlertChange",
    "AlertEvaluator",
    "AlertManager",
    "AlertRule",
    "WebhookNotifier",
    "parse_rule",
    "parse_rules",
]

log = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")
_OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_RULE_KEYS = {"name", "expr", "op", "threshold", "for", "severity", "labels", "plugin",
              "description"}


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One rule (see the module doc).

    :ivar expr: a figure name from :data:`FIGURES`.
    :ivar for_: seconds the condition must hold before the alert fires.
    :ivar plugin: only this plugin (per-plugin figures); ``None``: every plugin.
    :ivar source: ``default``, ``file`` or ``api`` (where the rule comes from).
    """

    name: str
    expr: str
    op: str = ">"
    threshold: float = 0.0
    for_: float = 0.0
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    plugin: str | None = None
    description: str = ""
    source: str = "file"

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "expr": self.expr, "op": self.op,
                "threshold": self.threshold, "for": self.for_, "severity": self.severity,
                "labels": dict(self.labels), "plugin": self.plugin,
                "description": self.description, "source": self.source}


def parse_rule(data: Mapping[str, Any], *, source: str = "file") -> AlertRule:
    """A rule from its table / JSON form; ``ValueError`` lists every problem."""
    from plughost.observability.settings import parse_duration

    problems: list[str] = []
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"name: expected lower-case letters, digits, '.', '_' or '-' "
                        f"(up to 100), got {name!r}")
        name = "?"
    unknown = sorted(set(data) - _RULE_KEYS)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}; allowed: "
                        + ", ".join(sorted(_RULE_KEYS)))
    expr = data.get("expr")
    if expr not in FIGURES:
        problems.append(f"expr: unknown figure {expr!r}; use one of {', '.join(FIGURES)}")
    op = data.get("op", ">")
    if op not in _OPS:
        problems.append(f"op: unknown comparison {op!r}; use one of {', '.join(_OPS)}")
    threshold = data.get("threshold")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool):
        problems.append(f"threshold: expected a number, got {threshold!r}")
        threshold = 0.0
    try:
        for_ = parse_duration(data.get("for", 0), "for")
    except ValueError as exc:
        problems.append(str(exc))
        for_ = 0.0
    severity = data.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.append(f"severity: use one of {', '.join(SEVERITIES)}, got {severity!r}")
    labels = data.get("labels", {})
    if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        problems.append("labels: expected a table of text values")
        labels = {}
    plugin = data.get("plugin")
    if plugin is not None and (not isinstance(plugin, str) or expr in HOST_FIGURES):
        problems.append("plugin: a plugin id, only for per-plugin figures")
        plugin = None
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append("description: expected text")
        description = ""
    if problems:
        raise ValueError(f"alert rule {name!r}: " + "; ".join(problems))
    return AlertRule(str(name), str(expr), str(op), float(threshold), for_, str(severity),
                     dict(labels), plugin, description, source)


def parse_rules(rules: Iterable[Mapping[str, Any]], *, source: str = "settings"
                ) -> list[AlertRule]:
    """Every rule of ``[[alerts.rules]]``; :class:`ConfigurationError` lists every problem."""
    parsed: list[AlertRule] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, data in enumerate(rules):
        try:
            rule = parse_rule(data)
        except ValueError as exc:
            problems.append(f"alerts.rules[{i}]: {exc}")
            continue
        if rule.name in seen:
            problems.append(f"alerts.rules[{i}]: the name {rule.name!r} is used twice")
        seen.add(rule.name)
        parsed.append(rule)
    if problems:
        raise ConfigurationError(f"{len(problems)} problem(s) in {source}:\n"
                                 + "\n".join(f"  - {p}" for p in problems))
    return parsed


#: The built-in rules (``[alerts] default_rules = false`` turns them off): the performance
#: monitor's thresholds of the reference design — 5 % errors, 5 s responses, 100 MB memory,
#: 80 % CPU, 1000 calls/s — plus restarts, health and dropped events.
DEFAULT_RULES: tuple[AlertRule, ...] = tuple(
    AlertRule(name, expr, op, threshold, for_, severity, {}, None, description, "default")
    for name, expr, op, threshold, for_, severity, description in (
        ("plugin-error-rate", "error_rate", ">", 0.05, 60.0, "warning",
         "more than 5% of a plugin's calls fail"),
        ("plugin-slow", "p99_latency", ">", 5.0, 60.0, "warning",
         "a plugin's 99th percentile latency is over 5 s"),
        ("plugin-memory", "memory", ">", 100 * 1024 * 1024, 120.0, "warning",
         "a plugin uses more than 100 MB"),
        ("plugin-cpu", "cpu", ">", 0.8, 120.0, "warning",
         "a plugin uses more than 80% of a core"),
        ("plugin-call-rate", "call_rate", ">", 1000.0, 60.0, "info",
         "a plugin is called more than 1000 times a second"),
        ("plugin-restarts", "restarts", ">=", 3.0, 0.0, "warning",
         "a plugin restarted 3 times within 5 minutes"),
        ("plugin-unhealthy", "health", ">", 0.0, 60.0, "critical",
         "a plugin fails its health checks or has failed"),
        ("event-queue-drops", "queue_drops", ">", 0.0, 0.0, "warning",
         "events were dropped because a subscriber's queue was full"),
    )
)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert started firing or resolved."""

    rule: AlertRule
    plugin_id: str | None
    status: str  # "firing" | "resolved"
    value: float | None
    started_at: float
    at: float

    def to_dict(self) -> dict[str, Any]:
        """The notification body (webhooks, event bus, event stream)."""
        rule = self.rule
        who = f"{self.plugin_id}: " if self.plugin_id else ""
        shown = "unknown" if self.value is None else f"{self.value:g}"
        condition = f"{rule.op} {rule.threshold:g}"
        message = (f"{who}{rule.expr} is {shown} ({condition} for {rule.for_:g}s)"
                   if self.status == "firing" else
                   f"{who}{rule.expr} is {shown}, no longer {condition}")
        return {
            "status": self.status, "rule": rule.name, "plugin_id": self.plugin_id,
            "severity": rule.severity, "expr": rule.expr, "op": rule.op,
            "threshold": rule.threshold, "value": self.value,
            "labels": {**rule.labels, "rule": rule.name, "severity": rule.severity,
                       **({"plugin_id": self.plugin_id} if self.plugin_id else {})},
            "description": rule.description, "message": message,
            "started_at": _iso(self.started_at),
            "resolved_at": _iso(self.at) if self.status == "resolved" else None,
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class _State:
    since: float
    started_wall: float
    firing: bool = False
    value: float | None = None


class AlertEvaluator:
    """Pending / firing / resolved bookkeeping for a set of rules (pure; time is passed in)."""

    def __init__(self, rules: Sequence[AlertRule] = ()) -> None:
        self.rules: list[AlertRule] = list(rules)
        self._states: dict[tuple[str, str | None], _State] = {}

    def set_rules(self, rules: Sequence[AlertRule]) -> list[AlertChange]:
        """Replace the rules; alerts of removed rules resolve (returned)."""
        names = {r.name for r in rules}
        gone: list[AlertChange] = []
        wall = time.time()
        for key, state in list(self._states.items()):
            if key[0] not in names:
                old = next((r for r in self.rules if r.name == key[0]), None)
                if state.firing and old is not None:
                    gone.append(AlertChange(old, key[1], "resolved", state.value,
                                            state.started_wall, wall))
                del self._states[key]
        self.rules = list(rules)
        return gone

    def evaluate(self, window: FigureWindow, now: float,
                 wall: float | None = None) -> list[AlertChange]:
        """Check every rule against ``window`` at monotonic time ``now``."""
        wall = time.time() if wall is None else wall
        changes: list[AlertChange] = []
        seen: set[tuple[str, str | None]] = set()
        for rule in self.rules:
            if rule.expr in HOST_FIGURES:
                targets: list[str | None] = [None]
            elif rule.plugin is not None:
                targets = [rule.plugin]
            else:
                targets = list(window.plugins())
            for pid in targets:
                key = (rule.name, pid)
                seen.add(key)
                value = window.value(rule.expr, pid)
                state = self._states.get(key)
                if value is not None and rule.holds(value):
                    if state is None:
                        state = self._states[key] = _State(now, wall)
                    state.value = value
                    if not state.firing and now - state.since >= rule.for_:
                        state.firing = True
                        changes.append(AlertChange(rule, pid, "firing", value,
                                                   state.started_wall, wall))
                elif state is not None:
                    if state.firing:
                        changes.append(AlertChange(rule, pid, "resolved", value,
                                                   state.started_wall, wall))
                    del self._states[key]
        for key in set(self._states) - seen:  # the plugin went away: its alerts resolve
            state = self._states.pop(key)
            rule = next(r for r in self.rules if r.name == key[0])
            if state.firing:
                changes.append(AlertChange(rule, key[1], "resolved", None,
                                           state.started_wall, wall))
        return changes

    def active(self) -> list[dict[str, Any]]:
        """Alerts pending or firing now."""
        rules = {r.name: r for r in self.rules}
        out = []
        for (name, pid), state in sorted(self._states.items(),
                                         key=lambda kv: (kv[0][0], kv[0][1] or "")):
            rule = rules[name]
            out.append({"rule": name, "plugin_id": pid,
                        "state": "firing" if state.firing else "pending",
                        "severity": rule.severity, "expr": rule.expr, "op": rule.op,
                        "threshold": rule.threshold, "value": state.value,
                        "labels": dict(rule.labels), "since": _iso(state.started_wall)})
        return out


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class WebhookNotifier:
    """POSTs each change as JSON to every URL, retrying failures in the background.

    A 5xx answer, a 429, or a transport error is retried up to ``retries`` times, after
    ``base_delay * 2**attempt`` seconds ± ``jitter`` (capped at ``max_delay``), or after the
    ``Retry-After`` the server asked for (capped the same way). Other 4xx answers are final.
    """

    def __init__(self, urls: Sequence[str], *, timeout: float = 5.0, retries: int = 4,
                 base_delay: float = 0.5, max_delay: float = 60.0, jitter: float = 0.2,
                 rng: Callable[[], float] = random.random,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.urls = list(urls)
        self.timeout = timeout
        self.retries = retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self._rng = rng
        self._sleep = sleep
        self._tasks: set[asyncio.Task[bool]] = set()
        self._client: Any = None
        self.delivered = 0
        self.failed = 0

    def send(self, body: Mapping[str, Any]) -> None:
        """Deliver ``body`` to every URL in the background (the evaluation never waits)."""
        for url in self.urls:
            task = asyncio.get_running_loop().create_task(self.deliver(url, dict(body)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        delay = min(self.max_delay, self.base_delay * 2.0 ** attempt)
        return max(0.0, delay * (1.0 + self.jitter * (2.0 * self._rng() - 1.0)))

    async def deliver(self, url: str, body: Mapping[str, Any]) -> bool:
        """POST ``body`` to ``url`` with retries; True once accepted (2xx)."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                             headers={"User-Agent": "plughost-alerts"})
        for attempt in range(self.retries + 1):
            retry_after: float | None = None
            try:
                response = await self._client.post(url, json=body)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    self.delivered += 1
                    return True
                reason = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt < self.retries:
                await self._sleep(self._delay(attempt, retry_after))
        self.failed += 1
        log.error("alert %s (%s) not delivered to %s: %s", body.get("rule"),
                  body.get("status"), url, reason)
        return False

    async def aclose(self) -> None:
        """Finish deliveries under way (bounded by their retries), then close."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


Sink = Callable[[AlertChange], Any]


class AlertManager:
    """Runs the evaluation every ``interval`` seconds and sends each change to the sinks.

    :param sample: returns a fresh :class:`~plughost.observability.figures.Sample`.
    :param sinks: called with each :class:`AlertChange` (history, bus, stream, webhooks); a
        sink that raises is logged and the others still run.
    """

    def __init__(self, rules: Sequence[AlertRule], sample: Callable[[], Any], *,
                 interval: float = 15.0, window: float = 300.0,
                 sinks: Sequence[Sink] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.evaluator = AlertEvaluator(rules)
        self.window = FigureWindow(window)
        self.interval = interval
        self.sinks = list(sinks)
        self._sample = sample
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.evaluations = 0

    @property
    def rules(self) -> list[AlertRule]:
        return list(self.evaluator.rules)

    async def evaluate_once(self) -> list[AlertChange]:
        """Take a sample, evaluate every rule, send the changes."""
        self.window.add(self._sample())
        changes = self.evaluator.evaluate(self.window, self._clock())
        self.evaluations += 1
        await self._send(changes)
        return changes

    async def set_rules(self, rules: Sequence[AlertRule]) -> None:
        await self._send(self.evaluator.set_rules(rules))

    async def _send(self, changes: Sequence[AlertChange]) -> None:
        for change in changes:
            log.log(logging.WARNING if change.status == "firing" else logging.INFO,
                    "alert %s %s%s", change.rule.name, change.status,
                    f" for {change.plugin_id}" if change.plugin_id else "")
            for sink in self.sinks:
                try:
                    result = sink(change)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("alert sink %r failed", sink)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.evaluate_once()
            except Exception:  # the next evaluation may well work
                log.exception("alert evaluation failed")
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def rule_from_request(data: Mapping[str, Any]) -> AlertRule:
    """A rule sent to the API; :class:`RequestInvalid` names every problem."""
    try:
        return parse_rule(data, source="api")
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from None
