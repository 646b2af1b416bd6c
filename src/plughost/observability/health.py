"""Supervisor policies shared by the isolated runtimes (restart backoff and quarantine), and the
health poller of the server (each plugin's ``health()`` on an interval, with a policy).

A runtime owns one :class:`Supervisor` per plugin instance and asks it, each time the plugin's
process or sandbox dies, what to do next::

    decision = supervisor.record_crash("cpu limit 2s exceeded")
    if decision.quarantine:
        ...  # state failed, decision.reason recorded, no more restarts until reenable()
    else:
        await asyncio.sleep(decision.delay)   # exponential backoff with jitter
        ...  # restart

The policy is a frozen option bag; clock and randomness are injected so tests are exact.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CrashDecision",
    "HealthPoller",
    "PluginHealth",
    "RestartPolicy",
    "Supervisor",
    "SupervisorEvent",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When and how fast a crashed plugin is restarted.

    :param initial_delay: seconds before the first restart.
    :param multiplier: each further crash in the window multiplies the delay by this.
    :param max_delay: the delay never exceeds this.
    :param jitter: ± fraction of the delay drawn at random, so plugins that crashed together
        do not restart in lock-step (0.2 = ±20 %).
    :param max_crashes: this many crashes within ``window`` seconds quarantine the plugin.
    :param window: the sliding window, in seconds, for ``max_crashes``.
    """

    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    max_crashes: int = 3
    window: float = 300.0

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ValueError("need 0 <= initial_delay <= max_delay")
        if self.multiplier < 1 or not 0 <= self.jitter < 1 or self.max_crashes < 1:
            raise ValueError("need multiplier >= 1, 0 <= jitter < 1, max_crashes >= 1")


@dataclass(frozen=True, slots=True)
class CrashDecision:
    """What to do after one crash."""

    quarantine: bool
    delay: float
    """Seconds to wait before restarting (0 when quarantined)."""
    crashes_in_window: int
    reason: str


@dataclass(frozen=True, slots=True)
class SupervisorEvent:
    """What a runtime's supervisor did, reported to the host's listener (``on_event``).

    ``kind`` is ``crashed``, ``restarted``, ``quarantined``, ``reenabled``, or for a service
    the host attaches to, ``disconnected`` and ``reconnected`` (activated again); the host marks a
    quarantined plugin FAILED with ``reason``. Every isolated runtime reports this one shape.
    """

    plugin_id: str
    kind: str
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


class Supervisor:
    """Crash bookkeeping for one plugin instance under a :class:`RestartPolicy`."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._clock = clock
        self._rng = rng
        self._crashes: deque[float] = deque()
        self.total_crashes = 0
        self.restarts = 0
        self.quarantined = False
        self.quarantine_reason: str | None = None
        self.last_reason: str | None = None

    def _prune(self, now: float) -> None:
        while self._crashes and now - self._crashes[0] > self.policy.window:
            self._crashes.popleft()

    def record_crash(self, reason: str) -> CrashDecision:
        """Record a crash now; return whether to quarantine or how long to back off."""
        now = self._clock()
        self._prune(now)
        self._crashes.append(now)
        self.total_crashes += 1
        self.last_reason = reason
        n = len(self._crashes)
        p = self.policy
        if n >= p.max_crashes:
            self.quarantined = True
            self.quarantine_reason = (
                f"quarantined after {n} crashes within {p.window:g}s; last: {reason}. "
                "Fix the plugin, then re-enable it."
            )
            return CrashDecision(True, 0.0, n, self.quarantine_reason)
        delay = min(p.max_delay, p.initial_delay * p.multiplier ** (n - 1))
        delay *= 1.0 + p.jitter * (2.0 * self._rng() - 1.0)
        self.restarts += 1
        return CrashDecision(False, max(0.0, delay), n, reason)

    def crashes_in_window(self) -> int:
        """Crashes counted towards quarantine right now."""
        self._prune(self._clock())
        return len(self._crashes)

    def reenable(self) -> None:
        """An operator re-enabled the plugin: forget the crash history and allow restarts."""
        self._crashes.clear()
        self.quarantined = False
        self.quarantine_reason = None


# --------------------------------------------------------------------------- health checks


@dataclass(slots=True)
class PluginHealth:
    """What the poller knows of one plugin's health.

    ``status`` is ``healthy``, ``degraded`` (the last check failed or timed out) or
    ``unknown`` (not checked yet, or not active).
    """

    plugin_id: str
    status: str = "unknown"
    message: str = ""
    checked_at: float | None = None
    consecutive_failures: int = 0
    checks: int = 0
    failures: int = 0
    last_action: str | None = None

    def to_dict(self) -> dict[str, Any]:
        when = None
        if self.checked_at is not None:  # (imported here: not for a plugin never checked)
            from datetime import UTC, datetime

            when = datetime.fromtimestamp(self.checked_at, UTC).isoformat(timespec="seconds")
        return {"plugin_id": self.plugin_id, "status": self.status, "message": self.message,
                "checked_at": when, "consecutive_failures": self.consecutive_failures,
                "checks": self.checks, "failures": self.failures,
                "last_action": self.last_action}


def _entries(ids: list[str], checked: Mapping[str, PluginHealth]) -> list[dict[str, Any]]:
    """The health entries of ``ids``: a checked plugin's own, else one never checked
    (``unknown``; a copy of one made once: most of ten thousand lazy plugins)."""
    never = PluginHealth("").to_dict()
    return [checked[pid].to_dict() if pid in checked else {**never, "plugin_id": pid}
            for pid in ids]


class HealthPoller:
    """Calls every active plugin's ``health()`` each ``interval`` seconds (bounded by
    ``timeout``); a failed check marks the plugin degraded, and ``failures`` failed checks in
    a row apply the policy: ``restart`` (unload and activate again), ``deactivate``, or
    ``none``. ``on_change(health)`` hears every change of status and every action.

    :param host: the :class:`~plughost.host.PluginHost` (its registry and lifecycle methods).
    """

    def __init__(self, host: Any, *, interval: float = 30.0, timeout: float = 5.0,
                 failures: int = 3, policy: str = "restart",
                 on_change: Callable[[PluginHealth], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if policy not in ("restart", "deactivate", "none"):
            raise ValueError("policy must be restart, deactivate or none")
        self.host = host
        self.interval = interval
        self.timeout = timeout
        self.failures = failures
        self.policy = policy
        self.on_change = on_change
        self._clock = clock
        self.plugins: dict[str, PluginHealth] = {}
        self._task: Any = None

    def verdict(self, plugin_id: str) -> bool | None:
        """True healthy, False degraded, None not known."""
        health = self.plugins.get(plugin_id)
        if health is None or health.status == "unknown":
            return None
        return health.status == "healthy"

    def degraded(self) -> list[str]:
        """Ids of the plugins whose last check failed, sorted. From the plugins checked alone
        (one never checked is ``unknown``, never degraded), so a probe asking every few
        seconds costs those, not the plugins registered."""
        return sorted(pid for pid, h in self.plugins.items() if h.status == "degraded")

    def overall(self, *, limit: int | None = None, after: str | None = None) -> dict[str, Any]:
        """``{"status": healthy|degraded, "degraded": [...], "plugins": [...]}``: what is known
        of each plugin, by id: every registered one (one never checked, because it never ran,
        is ``unknown``, as it is after a round of checks) and any checked before it left. With
        ``limit``, ``plugins`` holds at most that many, the first ids after ``after`` (a page;
        the status and the degraded ones stay those of every plugin). The entries cost the
        page; choosing them costs a comparison of each id."""
        degraded = self.degraded()
        checked = dict(self.plugins)
        ids: Any = {*checked, *(record.id for record in list(self.host.registry))}
        if after is not None:
            ids = [pid for pid in ids if pid > after]
        chosen = sorted(ids) if limit is None else heapq.nsmallest(limit, ids)
        return {"status": "degraded" if degraded else "healthy", "degraded": degraded,
                "plugins": _entries(chosen, checked)}

    def entry(self, plugin_id: str) -> dict[str, Any] | None:
        """What :meth:`overall` lists for ``plugin_id`` (``None`` when it lists nothing for
        it: neither registered nor checked before it left), at the cost of that plugin."""
        if plugin_id not in self.plugins and self.host.registry.find(plugin_id) is None:
            return None
        return _entries([plugin_id], self.plugins)[0]

    def _notify(self, health: PluginHealth) -> None:
        if self.on_change is not None:
            try:
                self.on_change(health)
            except Exception:  # a listener must not stop the checks
                logger.exception("health listener failed")

    async def check(self, plugin_id: str) -> PluginHealth:
        """Check one plugin now (and apply the policy if it is due)."""
        import asyncio

        record = self.host.registry.get(plugin_id)
        health = self.plugins.setdefault(plugin_id, PluginHealth(plugin_id))
        if record.state.value != "active" or record.instance is None:
            if health.status != "unknown":
                health.status, health.message = "unknown", f"not active ({record.state.value})"
                health.consecutive_failures = 0
                self._notify(health)
            return health
        try:
            result = await asyncio.wait_for(record.instance.health(), self.timeout)
            ok, message = bool(result.ok), str(getattr(result, "detail", "") or "")
        except TimeoutError:
            ok, message = False, f"health() did not answer within {self.timeout:g}s"
        except Exception as exc:
            ok, message = False, f"health() raised {type(exc).__name__}: {exc}"
        before = health.status
        health.checks += 1
        health.checked_at = self._clock()
        health.message = message
        if ok:
            health.status, health.consecutive_failures = "healthy", 0
        else:
            health.status = "degraded"
            health.failures += 1
            health.consecutive_failures += 1
        if health.status != before:
            logger.log(logging.WARNING if not ok else logging.INFO,
                       "plugin %s is %s%s", plugin_id, health.status,
                       f": {message}" if message else "")
            self._notify(health)
        if not ok and health.consecutive_failures >= self.failures and self.policy != "none":
            await self._act(plugin_id, health)
        return health

    async def _act(self, plugin_id: str, health: PluginHealth) -> None:
        action = self.policy
        try:
            if action == "restart":
                await self.host.unload(plugin_id)
                await self.host.activate(plugin_id)
            else:
                await self.host.deactivate(plugin_id)
            health.last_action = f"{'restarted' if action == 'restart' else 'deactivated'} " \
                                 f"after {health.consecutive_failures} failed checks"
        except Exception as exc:
            health.last_action = f"{action} failed: {exc}"
        logger.warning("plugin %s: %s", plugin_id, health.last_action)
        health.consecutive_failures = 0
        health.status = "unknown" if action == "deactivate" else health.status
        self._notify(health)

    async def check_all(self) -> None:
        """One round: every active plugin is checked, and one known healthy or degraded that
        is no longer active goes back to ``unknown``. A plugin that never ran has nothing to
        check and is not looked at (from the registry's index of awake plugins, when it keeps
        one), so a round costs what runs, not what is registered."""
        for pid in self._due():
            try:
                await self.check(pid)
            except Exception:  # one plugin's trouble must not stop the round
                logger.exception("health check of %s failed", pid)

    def _due(self) -> list[str]:
        registry = self.host.registry
        awake = getattr(registry, "awake", None)
        if not callable(awake):
            return [record.id for record in list(registry)]
        due = dict.fromkeys(r.id for r in awake() if r.state.value == "active")
        for pid, health in list(self.plugins.items()):
            if health.status != "unknown" and pid not in due and pid in registry:
                due[pid] = None
        return list(due)

    def start(self) -> None:
        import asyncio

        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(self.interval)
            await self.check_all()

    async def aclose(self) -> None:
        import asyncio

        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
