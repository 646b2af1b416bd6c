"""Supervisor policies shared by the isolated runtimes: restart backoff and quarantine.

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

import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CrashDecision", "RestartPolicy", "Supervisor", "SupervisorEvent"]


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

    ``kind`` is ``crashed``, ``restarted``, ``quarantined`` or ``reenabled``; the host marks a
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
