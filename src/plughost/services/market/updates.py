"""Scheduled update checks and per-plugin update policies.

Every ``update_check_interval`` seconds (``auto_check_update = true``, while ``plughost serve``
runs) the marketplaces are refreshed and each installed plugin with a newer compatible version
is handled by its policy (``plughost market policy ID ...``; default ``notify``):

``manual``  nothing happens (``plughost outdated`` still lists it).
``notify``  an audit event ``plugin.update_available`` is written, once per new version.
``auto``    the plugin is updated through the host's update path (state handed over, health
            checked, the old version kept running when the new one fails) — once the new
            version has been published for ``cooldown_seconds`` and only inside the
            ``maintenance_window`` (``"HH:MM-HH:MM"`` UTC; may wrap midnight), if one is set.

A security advisory marked ``force`` against the installed version updates it whatever the
policy, cooldown and window say: the publisher has said the installed version is dangerous.

A scheduled update that fails (the old version keeps running) is not tried again by the
schedule for the same version: the next check waits for a newer one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from plughost.errors import MarketError, PlughostError
from plughost.storage.records import UPDATE_POLICIES, UpdatePolicy

if TYPE_CHECKING:
    from plughost.services.market.service import Market

__all__ = ["UpdateDecision", "UpdateScheduler", "check_window", "in_window"]

log = logging.getLogger(__name__)

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def check_window(text: str) -> str:
    """``text`` if it is ``""`` or ``HH:MM-HH:MM``. :raises MarketError: otherwise."""
    if text and not _WINDOW.match(text):
        raise MarketError(f"{text!r} is not a maintenance window; write HH:MM-HH:MM in UTC, "
                          "e.g. 02:00-04:00 (it may wrap midnight: 23:00-01:00)",
                          code="market.invalid", details={"field": "window"})
    return text


def in_window(window: str, now: datetime) -> bool:
    """Whether ``now`` (UTC) is inside ``window`` (always, when it is empty)."""
    if not window:
        return True
    m = _WINDOW.match(window)
    if m is None:
        return False
    start = time(int(m.group(1)), int(m.group(2)))
    end = time(int(m.group(3)), int(m.group(4)))
    t = now.astimezone(UTC).time()
    return start <= t < end if start <= end else (t >= start or t < end)


@dataclass(frozen=True, slots=True)
class UpdateDecision:
    """What a scheduled check did for one plugin."""

    plugin_id: str
    installed: str
    available: str | None
    policy: str
    action: str
    """``notified``, ``updated``, ``failed``, ``waiting`` or ``none``."""
    reason: str = ""
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.plugin_id, "installed_version": self.installed,
                "available_version": self.available, "policy": self.policy,
                "action": self.action, "reason": self.reason, "error": self.error}


class UpdateScheduler:
    """Runs update checks for a :class:`Market` (see the module doc).

    :param clock: "now" as an aware UTC datetime (tests move it).
    """

    def __init__(self, market: Market, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.market = market
        self._clock = clock
        # plugin id -> the version whose scheduled update failed here: not tried again by the
        # schedule (a broken release would fail at every check) until a newer one is
        # published; `plughost update` still installs it when asked.
        self._failed: dict[str, str] = {}

    async def set_policy(self, plugin_id: str, policy: str, *, cooldown_seconds: int = 0,
                         window: str = "") -> UpdatePolicy:
        """Set an installed plugin's update policy."""
        if policy not in UPDATE_POLICIES:
            raise MarketError(f"{policy!r} is not an update policy; use one of "
                              f"{', '.join(UPDATE_POLICIES)}", code="market.invalid",
                              details={"field": "policy"})
        if isinstance(cooldown_seconds, bool) or not 0 <= cooldown_seconds <= 365 * 86400:
            raise MarketError("cooldown is 0 to 31536000 seconds", code="market.invalid",
                              details={"field": "cooldown"})
        check_window(window)
        repo = self.market.service.repository
        await asyncio.to_thread(repo.require_plugin, plugin_id)
        return await asyncio.to_thread(repo.set_update_policy, plugin_id, policy=policy,
                                       cooldown_seconds=cooldown_seconds,
                                       maintenance_window=window)

    async def policy(self, plugin_id: str) -> UpdatePolicy:
        repo = self.market.service.repository
        found = await asyncio.to_thread(repo.get_update_policy, plugin_id)
        return found or UpdatePolicy(plugin_id)

    async def run_once(self) -> list[UpdateDecision]:
        """One check of every installed plugin (see the module doc)."""
        now = self._clock()
        repo = self.market.service.repository
        decisions = []
        for item in await self.market.outdated(refresh=True):
            policy = await self.policy(item.plugin_id)
            decision = await self._decide(item, policy, now)
            decisions.append(decision)
            await asyncio.to_thread(
                repo.set_update_policy, item.plugin_id, last_checked_at=now,
                last_update_at=now if decision.action == "updated" else None,
                notified_version=(item.latest or "") if decision.action == "notified" else None)
        return decisions

    async def _decide(self, item: Any, policy: UpdatePolicy, now: datetime) -> UpdateDecision:
        def decision(action: str, reason: str = "", error: Any = None) -> UpdateDecision:
            return UpdateDecision(item.plugin_id, item.installed, item.latest, policy.policy,
                                  action, reason, error)

        newer = item.latest is not None and item.latest != item.installed
        if not newer:
            return decision("none", "an advisory applies but no fixed version is published")
        if not item.forced:
            if policy.policy == "manual":
                return decision("none", "policy manual")
            if policy.policy == "notify":
                if policy.notified_version == item.latest:
                    return decision("none", "already notified")
                await asyncio.to_thread(
                    self.market.service.repository.append_audit, "plugin.update_available",
                    actor="scheduler", plugin_id=item.plugin_id,
                    details={"installed": item.installed, "available": item.latest,
                             "advisories": list(item.advisories)})
                return decision("notified")
            published = await self._published(item) if policy.cooldown_seconds else None
            if published is not None and now - published < timedelta(
                    seconds=policy.cooldown_seconds):
                return decision("waiting", f"published {published:%Y-%m-%dT%H:%M:%SZ}; "
                                           f"cooldown {policy.cooldown_seconds} s")
            if not in_window(policy.maintenance_window, now):
                return decision("waiting", f"outside the window {policy.maintenance_window}")
        if self._failed.get(item.plugin_id) == item.latest:
            return decision("none", f"the update to {item.latest} failed at an earlier check; "
                                    "it is tried again when a newer version is published, or "
                                    f"now with `plughost update {item.plugin_id}`")
        try:
            await self.market.update(item.plugin_id, actor="scheduler")
        except PlughostError as exc:
            log.warning("scheduled update of %s failed: %s", item.plugin_id, exc)
            if item.latest is not None:
                self._failed[item.plugin_id] = item.latest
            return decision("failed", exc.message, exc.to_dict())
        self._failed.pop(item.plugin_id, None)
        return decision("updated", "forced by an advisory" if item.forced else "policy auto")

    async def _published(self, item: Any) -> datetime | None:
        _, plugin = await self.market.details(item.plugin_id)
        version = plugin.version(item.latest)
        if version is None or not version.published:
            return None
        try:
            return datetime.strptime(version.published, "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC)
        except ValueError:
            return None

    async def run_forever(self, interval: float) -> None:
        """Check every ``interval`` seconds until cancelled; a failed check is logged and
        retried at the next interval."""
        while True:
            try:
                decisions = await self.run_once()
                for d in decisions:
                    if d.action != "none":
                        log.info("update check: %s %s -> %s: %s %s", d.plugin_id,
                                 d.installed, d.available, d.action, d.reason)
            except PlughostError as exc:
                log.warning("scheduled update check failed: %s", exc)
            await asyncio.sleep(interval)
