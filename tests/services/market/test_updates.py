"""Scheduled update checks: each plugin's policy (manual, notify, auto with cooldown and
maintenance window) and forced security advisories, through the host's update path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plughost.errors import MarketError
from plughost.services.market.client import MarketClient
from plughost.services.market.service import Market
from plughost.services.market.updates import UpdateScheduler, in_window
from tests.services.market.conftest import publish


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def market(service: Any, market_repo: Any, served: Any) -> Market:
    client = MarketClient(service.settings.home)
    client.add("main", served.url, (market_repo.path / "root.json").read_bytes())
    return Market(service, client)


async def _installed(market: Market, market_repo: Any, make_package: Any) -> None:
    for pid in ("man", "note", "auto"):
        publish(market_repo, make_package, pid, "1.0.0")
    market.client.refresh("main")
    for pid in ("man", "note", "auto"):
        await market.install(pid)
    for pid in ("man", "note", "auto"):
        publish(market_repo, make_package, pid, "1.1.0")


async def test_each_policy_is_applied(service, market, market_repo, make_package):
    await _installed(market, market_repo, make_package)
    clock = Clock()
    scheduler = UpdateScheduler(market, clock=clock)
    await scheduler.set_policy("man", "manual")
    await scheduler.set_policy("auto", "auto", cooldown_seconds=3600)
    decisions = {d.plugin_id: d.action for d in await scheduler.run_once()}
    assert decisions == {"man": "none", "note": "notified", "auto": "waiting"}
    audit = await service.audit(plugin_id="note", action="plugin.update_available")
    assert len(audit) == 1
    clock.now += timedelta(hours=2)
    decisions = {d.plugin_id: d.action for d in await scheduler.run_once()}
    assert decisions == {"man": "none", "note": "none", "auto": "updated"}
    assert service.repository.require_plugin("auto").version == "1.1.0"
    assert service.repository.require_plugin("man").version == "1.0.0"
    assert len(await service.audit(plugin_id="note", action="plugin.update_available")) == 1


async def test_the_maintenance_window_and_a_forced_advisory(service, market, market_repo,
                                                            make_package):
    await _installed(market, market_repo, make_package)
    clock = Clock()
    clock.now = (clock.now + timedelta(days=1)).replace(hour=12, minute=0)
    scheduler = UpdateScheduler(market, clock=clock)
    await scheduler.set_policy("auto", "auto", window="02:00-04:00")
    await scheduler.set_policy("man", "manual")
    market_repo.advise("man", "PHSA-7", "<1.1.0", severity="critical", fixed="1.1.0",
                       force=True)
    decisions = {d.plugin_id: (d.action, d.reason) for d in await scheduler.run_once()}
    assert decisions["auto"][0] == "waiting" and "window" in decisions["auto"][1]
    assert decisions["man"] == ("updated", "forced by an advisory")
    clock.now = clock.now.replace(hour=3)
    decisions = {d.plugin_id: d.action for d in await scheduler.run_once()}
    assert decisions["auto"] == "updated"


async def test_a_failing_automatic_update_keeps_the_old_version(service, market, market_repo,
                                                                make_package):
    publish(market_repo, make_package, "auto", "1.0.0")
    market.client.refresh("main")
    await market.install("auto")
    publish(market_repo, make_package, "auto", "1.1.0", code="""
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        raise RuntimeError("broken release")
""")
    scheduler = UpdateScheduler(market)
    await scheduler.set_policy("auto", "auto")
    [decision] = await scheduler.run_once()
    assert decision.action == "failed" and decision.error
    assert service.repository.require_plugin("auto").version == "1.0.0"
    assert await service.host.call("auto", "ping") == ["1.0.0", 1]
    # the same broken release is not tried at every check; a newer one is
    [again] = await scheduler.run_once()
    assert again.action == "none" and "failed at an earlier check" in again.reason, again
    assert await service.host.call("auto", "ping") == ["1.0.0", 2]
    publish(market_repo, make_package, "auto", "1.2.0")
    [fixed] = await scheduler.run_once()
    assert (fixed.action, fixed.available) == ("updated", "1.2.0"), fixed
    assert service.repository.require_plugin("auto").version == "1.2.0"


async def test_bad_policies_are_refused(service, market, market_repo, make_package):
    publish(market_repo, make_package, "hello", "1.0.0")
    market.client.refresh("main")
    await market.install("hello")
    scheduler = UpdateScheduler(market)
    for kwargs in ({"policy": "sometimes"}, {"policy": "auto", "window": "2-4"},
                   {"policy": "auto", "cooldown_seconds": -1}):
        with pytest.raises(MarketError) as info:
            await scheduler.set_policy("hello", **kwargs)
        assert info.value.code == "market.invalid"
    assert (await scheduler.policy("hello")).policy == "notify"


@pytest.mark.parametrize(("window", "hour", "inside"), [
    ("", 12, True), ("02:00-04:00", 3, True), ("02:00-04:00", 4, False),
    ("23:00-01:00", 0, True), ("23:00-01:00", 22, False)])
def test_windows_may_wrap_midnight(window, hour, inside):
    assert in_window(window, datetime(2026, 12, 3, hour, 0, tzinfo=UTC)) is inside
