"""Observability settings: the ``[logs]``, ``[health]``, ``[metrics]`` and ``[alerts]`` tables.

They live in the host's settings file (``$PLUGHOST_SETTINGS``, else ``<home>/plughost.toml``)
beside ``[plughost]``::

    [logs]
    level = "info"          # plugin lines captured from this level up
    retention = "7d"        # stored lines older than this are removed
    max_rows = 1000000      # and never more than this many
    persist_rate = 1000     # lines a second each plugin may store (more: dropped, counted)

    [health]
    interval = "30s"        # each active plugin's health() this often
    timeout = "5s"
    failures = 3            # consecutive failed checks before the policy acts
    policy = "restart"      # restart | deactivate | none

    [metrics]
    public_bind = "127.0.0.1:9464"   # optional: /metrics without a token on its own port

    [alerts]
    interval = "15s"
    window = "5m"           # rates and counts are over this much time
    default_rules = true
    webhooks = ["https://alerts.example.com/plughost"]

    [[alerts.rules]]
    name = "slack-errors"
    expr = "error_rate"
    threshold = 0.1
    for = "2m"
    plugin = "notify-slack"
    severity = "critical"
    labels = { team = "ops" }

Every problem is reported at once, naming the key, as a ``settings.invalid`` error.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from plughost.errors import ConfigurationError

__all__ = [
    "AlertSettings",
    "HealthSettings",
    "LogSettings",
    "MetricsSettings",
    "ObservabilitySettings",
    "parse_duration",
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
HEALTH_POLICIES = ("restart", "deactivate", "none")


def parse_duration(value: Any, where: str) -> float:
    """Seconds from ``30``, ``"30s"``, ``"500ms"``, ``"2m"``, ``"1h"``, ``"7d"``.

    :raises ValueError: naming ``where`` and the accepted forms.
    """
    seconds = -1.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value.strip().lower())
        if match:
            seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{where}: expected a duration such as 30s, 2m, 1h, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class LogSettings:
    """``[logs]``: what is captured and how long it is kept."""

    level: str = "info"
    retention: float = 7 * 86400.0
    max_rows: int = 1_000_000
    ring_size: int = 10_000
    persist_rate: int = 1_000

    @property
    def retention_delta(self) -> timedelta:
        return timedelta(seconds=self.retention)


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """``[health]``: how often plugins are probed and what a failing one gets."""

    interval: float = 30.0
    timeout: float = 5.0
    failures: int = 3
    policy: str = "restart"


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``[metrics]``: ``public_bind`` serves ``/metrics`` without a token on its own port."""

    public_bind: str | None = None


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """``[alerts]``: evaluation interval, webhooks, and rules (as given; parsed by alerts)."""

    interval: float = 15.0
    window: float = 300.0
    default_rules: bool = True
    webhooks: tuple[str, ...] = ()
    webhook_timeout: float = 5.0
    webhook_retries: int = 4
    rules: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    """All four tables; the defaults are what a host without a settings file gets."""

    logs: LogSettings = field(default_factory=LogSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "settings"
                     ) -> ObservabilitySettings:
        """Read the tables from a parsed settings document (other tables are ignored)."""
        problems: list[str] = []

        def table(name: str, allowed: set[str]) -> dict[str, Any]:
            value = data.get(name, {})
            if not isinstance(value, Mapping):
                problems.append(f"[{name}] must be a table")
                return {}
            unknown = sorted(set(value) - allowed)
            if unknown:
                problems.append(f"[{name}]: unknown key(s) {', '.join(unknown)}; allowed: "
                                + ", ".join(sorted(allowed)))
            return {k: v for k, v in value.items() if k in allowed}

        def duration(tbl: dict[str, Any], key: str, where: str, default: float) -> float:
            if key not in tbl:
                return default
            try:
                return parse_duration(tbl[key], where)
            except ValueError as exc:
                problems.append(str(exc))
                return default

        def integer(tbl: dict[str, Any], key: str, where: str, default: int) -> int:
            value = tbl.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{where}: expected a whole number >= 1, got {value!r}")
                return default
            return value

        lt = table("logs", {"level", "retention", "max_rows", "ring_size", "persist_rate"})
        level = str(lt.get("level", "info")).lower()
        if level not in ("debug", "info", "warning", "error", "critical"):
            problems.append(f"logs.level: unknown level {level!r}; use debug, info, warning, "
                            "error or critical")
            level = "info"
        logs = LogSettings(level, duration(lt, "retention", "logs.retention", 7 * 86400.0),
                           integer(lt, "max_rows", "logs.max_rows", 1_000_000),
                           integer(lt, "ring_size", "logs.ring_size", 10_000),
                           integer(lt, "persist_rate", "logs.persist_rate", 1_000))

        ht = table("health", {"interval", "timeout", "failures", "policy"})
        policy = ht.get("policy", "restart")
        if policy not in HEALTH_POLICIES:
            problems.append(f"health.policy: unknown policy {policy!r}; use "
                            + ", ".join(HEALTH_POLICIES))
            policy = "restart"
        health = HealthSettings(duration(ht, "interval", "health.interval", 30.0),
                                duration(ht, "timeout", "health.timeout", 5.0),
                                integer(ht, "failures", "health.failures", 3), str(policy))

        mt = table("metrics", {"public_bind"})
        bind = mt.get("public_bind")
        if bind is not None and (not isinstance(bind, str) or ":" not in bind):
            problems.append(f"metrics.public_bind: expected 'HOST:PORT', got {bind!r}")
            bind = None
        metrics = MetricsSettings(bind)

        at = table("alerts", {"interval", "window", "default_rules", "webhooks", "webhook_timeout",
                              "webhook_retries", "rules"})
        hooks = at.get("webhooks", [])
        if not isinstance(hooks, list) or not all(
                isinstance(h, str) and h.startswith(("http://", "https://")) for h in hooks):
            problems.append("alerts.webhooks: expected a list of http:// or https:// URLs")
            hooks = []
        rules = at.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
            problems.append("alerts.rules: expected an array of tables ([[alerts.rules]])")
            rules = []
        default_rules = at.get("default_rules", True)
        if not isinstance(default_rules, bool):
            problems.append("alerts.default_rules: expected true or false")
            default_rules = True
        alerts = AlertSettings(duration(at, "interval", "alerts.interval", 15.0),
                               duration(at, "window", "alerts.window", 300.0),
                               default_rules, tuple(hooks),
                               duration(at, "webhook_timeout", "alerts.webhook_timeout", 5.0),
                               integer(at, "webhook_retries", "alerts.webhook_retries", 4),
                               tuple(dict(r) for r in rules))
        if alerts.interval <= 0 or health.interval <= 0 or health.timeout <= 0:
            problems.append("alerts.interval, health.interval and health.timeout must be > 0")
        if problems:
            raise ConfigurationError(
                f"{len(problems)} problem(s) in {source}:\n"
                + "\n".join(f"  - {p}" for p in problems))
        if rules:  # every rule checked now, so a bad one stops the start with its name
            from plughost.observability.alerts import parse_rules

            parse_rules(alerts.rules, source=source)
        return cls(logs, health, metrics, alerts)

    @classmethod
    def from_file(cls, path: str | Path | None) -> ObservabilitySettings:
        """Read ``path`` (a missing file gives the defaults)."""
        if path is None or not Path(path).is_file():
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read settings file {path}: {exc}") from None
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def for_home(cls, home: Path, environ: Mapping[str, str] | None = None
                 ) -> ObservabilitySettings:
        """The settings file the host reads (``$PLUGHOST_SETTINGS`` or ``<home>/plughost.toml``)."""
        env = os.environ if environ is None else environ
        named = env.get("PLUGHOST_SETTINGS")
        return cls.from_file(Path(named) if named else home / "plughost.toml")
