"""Figures sampled from a running host: what alerts read every interval, and metrics on demand."""

from __future__ import annotations

from pathlib import Path

import pytest

from plughost.host import PluginHost
from plughost.observability.figures import plugin_counters, read_sample
from tests.conftest import WritePlugin


async def test_an_alert_sample_leaves_out_plugins_that_never_ran(
        write_plugin: WritePlugin, plugins_dir: Path) -> None:
    write_plugin("eager")
    write_plugin("lazy", activation=["command:lazy.go"])
    write_plugin("broken", code="raise RuntimeError('cannot import')\n")
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        everything = read_sample(host)
        assert sorted(everything.plugins) == ["broken", "eager", "lazy"]
        assert everything.plugins["lazy"]["calls"] == 0
        busy = read_sample(host, idle=False)
        # The lazy plugin has nothing a rule could fire on; a failure is always reported.
        assert sorted(busy.plugins) == ["broken", "eager"]
        assert busy.plugins["broken"]["unhealthy"] == 1.0
        await host.call("eager", "ping")
        assert plugin_counters(host, idle=False)["eager"]["calls"] == 1
        await host.activate("lazy")
        await host.deactivate("lazy")  # ran once: its figures count from now on
        assert "lazy" in plugin_counters(host, idle=False)


async def test_an_alert_sample_and_a_health_round_do_not_look_at_every_plugin(
        write_plugin: WritePlugin, plugins_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plughost.core.registry import Registry
    from plughost.observability.health import HealthPoller

    write_plugin("eager")
    for i in range(5):
        write_plugin(f"lazy-{i}", activation=[f"command:lazy{i}.go"])
    async with PluginHost([plugins_dir]) as host:
        await host.start()
        await host.call("eager", "ping")
        poller = HealthPoller(host)
        await poller.check_all()
        assert poller.plugins["eager"].status == "healthy"
        expected = plugin_counters(host, idle=False)

        def no_walk(self: Registry) -> None:
            raise AssertionError("walked every registered plugin")

        monkeypatch.setattr(Registry, "__iter__", no_walk)
        assert plugin_counters(host, idle=False) == expected
        assert sorted(expected) == ["eager"]
        await poller.check_all()  # only what runs, or ran since the last round
        assert poller.plugins["eager"].checks == 2
        await host.deactivate("eager")
        await poller.check_all()
        assert poller.plugins["eager"].status == "unknown"  # no longer active
        monkeypatch.undo()
        # Answers that list every plugin still do, the ones never checked as unknown.
        overall = poller.overall()
        assert [p["plugin_id"] for p in overall["plugins"]] == [
            "eager", "lazy-0", "lazy-1", "lazy-2", "lazy-3", "lazy-4"]
        assert {p["status"] for p in overall["plugins"]} == {"unknown"}
