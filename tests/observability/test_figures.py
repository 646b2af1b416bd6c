"""Figures sampled from a running host: what alerts read every interval, and metrics on demand."""

from __future__ import annotations

from pathlib import Path

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
