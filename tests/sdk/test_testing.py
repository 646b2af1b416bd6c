"""The plugin author's test harness gives the service's answers: config, events, state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plughost.core.lifecycle import State
from plughost.errors import ConfigInvalid
from plughost.sdk.testing import (
    collect_events,
    config_problems,
    make_test_host,
    simulate_reload,
    state_roundtrip,
)

THERMO_TOML = """
id = "thermo"
version = "1.0.0"
entry = "main:Main"

[config.schema]
type = "object"
required = ["unit"]

[config.schema.properties.unit]
type = "string"
enum = ["C", "F"]
"""

THERMO_PY = """
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        self.unit = ctx.config["unit"]

    def unit_of(self):
        return self.unit
"""


@pytest.fixture
def thermo(tmp_path: Path) -> Path:
    root = tmp_path / "thermo"
    root.mkdir()
    (root / "plugin.toml").write_text(THERMO_TOML)
    (root / "main.py").write_text(THERMO_PY)
    return root


async def test_test_host_refuses_the_config_the_service_refuses(thermo: Path) -> None:
    from plughost.services.config import ConfigManager

    service = ConfigManager()
    service.register("thermo", {"type": "object", "required": ["unit"],
                                "properties": {"unit": {"type": "string",
                                                        "enum": ["C", "F"]}}}, strict=False)
    with pytest.raises(ConfigInvalid) as by_service:
        await service.set("thermo", {"unit": "K"})
    service.close()
    with pytest.raises(ConfigInvalid) as by_harness:
        async with make_test_host(thermo, config={"thermo": {"unit": "K"}}) as host:
            await host.start()
    assert by_harness.value.problems == by_service.value.problems
    async with make_test_host(thermo, config={"thermo": {"unit": "K"}},
                              strict_config=False) as host:
        report = await host.start()  # as the service does: the plugin waits for its config
        assert report["thermo"].state is State.NEEDS_CONFIG
    assert config_problems(thermo, {"unit": "K"}) == by_service.value.problems
    assert [p.code for p in config_problems(thermo, {})] == ["config.required"]
    async with make_test_host(thermo, config={"thermo": {"unit": "F"}}) as host:
        await host.start()
        assert await host.call("thermo", "unit_of") == "F"
    assert config_problems(thermo, {"unit": "C"}) == []


COUNTER_PY = """
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        self.n = getattr(self, "n", 0)

    def ping(self):
        self.n += 1
        return self.n

    def export_state(self):
        return {"state_version": 1, "n": self.n}

    def import_state(self, state, from_version):
        self.n = state["n"]
"""


async def test_state_roundtrip_and_events_of_a_simulated_reload(tmp_path: Path) -> None:
    root = tmp_path / "counter"
    root.mkdir()
    (root / "plugin.toml").write_text('id = "counter"\nversion = "1.0.0"\nentry = "main:Main"\n')
    (root / "main.py").write_text(COUNTER_PY)
    async with make_test_host(root) as host:
        await host.start()
        seen = collect_events(host, "plugin.lifecycle.#")
        assert await host.call("counter", "ping") == 1
        assert await state_roundtrip(host, "counter") == {"state_version": 1, "n": 1}
        (root / "plugin.toml").write_text(
            'id = "counter"\nversion = "1.1.0"\nentry = "main:Main"\n')
        result = await simulate_reload(host, "counter")
        assert (result.ok, result.from_version, result.to_version) == (True, "1.0.0", "1.1.0")
        assert await host.call("counter", "ping") == 2  # the state came across
        for _ in range(10):
            if seen:
                break
            await asyncio.sleep(0)
        assert [e.topic for e in seen] == ["plugin.lifecycle.reloaded"]
