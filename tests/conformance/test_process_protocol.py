"""docs/protocol.md, conformed to through the real host flows, by two Node.js plugins.

``examples/node-greeter`` speaks the protocol by hand; ``examples/node-jsonrpc-counter`` was
written on the ``vscode-jsonrpc`` npm package from the doc alone. Both are installed from signed
packages into a :class:`~plughost.services.manager.PluginService` (database, grants, config) and
driven as an operator and other plugins drive them: events in from the host's bus, events out
(``host.emit``), commands both ways, channels, configuration changes, enable/disable, and update
and rollback with the state carried over.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plughost.core.bus import Event
from plughost.errors import ChannelClosed, ConfigRejected, PermissionDenied

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GREETER = "node-greeter"
COUNTER = "node-jsonrpc-counter"


def _require_node() -> None:
    # Missing test dependencies fail, never skip: install Node.js, and `npm ci` in the example.
    assert shutil.which("node"), "node is not installed: the Node.js examples cannot run"
    assert (EXAMPLES / COUNTER / "node_modules" / "vscode-jsonrpc").is_dir(), (
        f"run `npm ci` in examples/{COUNTER} (its vscode-jsonrpc dependency is not installed)"
    )


class Kit:
    """A PluginService with both Node plugins installed, and what is needed to update them."""

    def __init__(self, service: Any, tmp: Path, private_key: Path) -> None:
        self.service = service
        self.tmp = tmp
        self.private_key = private_key

    def package(self, plugin_id: str, version: str = "1.0.0") -> Path:
        """A signed package of the example, at ``version``."""
        from plughost.security.package import pack
        from plughost.security.signing import sign

        folder = self.tmp / "src" / f"{plugin_id}-{version}"
        shutil.copytree(EXAMPLES / plugin_id, folder)
        toml = folder / "plugin.toml"
        toml.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', toml.read_text()))
        out = self.tmp / "packages"
        out.mkdir(exist_ok=True)
        package = pack(folder, out / f"{plugin_id}-{version}.zip")
        sign(package, self.private_key)
        return package

    @property
    def host(self) -> Any:
        return self.service.host

    async def command(self, name: str, **args: Any) -> Any:
        return await self.host.commands.execute(name, args)


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    _require_node()
    from plughost.security.signing import TrustStore, keygen
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    settings = HostSettings(home=tmp_path / "home")
    private, public = keygen(tmp_path / "keys", "publisher")
    TrustStore.for_home(settings.home).add(public, "publisher")
    async with PluginService(settings) as service:
        kit = Kit(service, tmp_path, private)
        for plugin_id in (GREETER, COUNTER):
            result = await service.install(kit.package(plugin_id))
            assert result.state == "active", result
        yield kit


def _seen(host: Any, pattern: str) -> list[Event]:
    got: list[Event] = []
    host.bus.subscribe(pattern, got.append)
    return got


async def test_events_from_the_bus_reach_both_plugins_as_plugin_event(kit: Kit) -> None:
    kit.host.bus.emit("greeter.ping", {"n": 1})
    kit.host.bus.emit("counter.reset", {"to": 5})
    await kit.host.bus.drain()
    heard = await kit.command("node-greeter.greeter.heard")
    assert {"topic": "greeter.ping", "payload": {"n": 1}} in heard
    assert await kit.command("node-jsonrpc-counter.counter.value") == 5
    notices = await kit.command("node-jsonrpc-counter.counter.notices")
    assert "reset by counter.reset from null to 5" in notices


async def test_commands_both_ways_and_events_out_pass_through_the_host(kit: Kit) -> None:
    changed = _seen(kit.host, "counter.changed")
    greeted = _seen(kit.host, "greeter.greeted")
    # host -> plugin command; the plugin emits counter.changed (granted at install)
    assert await kit.command("node-jsonrpc-counter.counter.add", by=2) == 2
    # plugin -> host command: the counter runs the greeter's command through host.execute
    answer = await kit.command("node-jsonrpc-counter.counter.ask",
                               command="node-greeter.greeter.greet", args={"name": "Ada"})
    assert answer["text"] == "Hello, Ada!"
    assert answer["emitted"] >= 1  # delivered (to the subscription below at least)
    await kit.host.bus.drain()
    assert [e.payload for e in changed] == [{"value": 2}]
    assert [(e.payload, e.source) for e in greeted] == [({"name": "Ada"}, GREETER)]
    # a command the counter was not granted is refused at the boundary, as in process
    with pytest.raises(PermissionDenied):
        await kit.command("node-jsonrpc-counter.counter.ask",
                          command="node-greeter.greeter.sneak", args={})


async def test_channels_served_by_process_plugins_stream_both_ways(kit: Kit) -> None:
    await kit.service.set_config(GREETER, {"greeting": "Howdy"})
    chat = await kit.host.channels.open("node-greeter.greeter.chat")
    await chat.send("Ada")
    await chat.send("Bo")
    assert [await chat.receive(), await chat.receive()] == ["Howdy, Ada!", "Howdy, Bo!"]
    await chat.send("bye")  # the plugin closes its end: the opener's iteration ends
    assert [m async for m in chat] == []

    live = await kit.host.channels.open("node-jsonrpc-counter.counter.live")
    assert await live.receive() == {"value": 0}  # the plugin speaks first, on open
    await live.send({"add": 3})
    assert await live.receive() == {"value": 3}
    await live.send("nonsense")  # the plugin ends the stream with a reason
    with pytest.raises(ChannelClosed, match="cannot understand"):
        await live.receive()

    # the opener closing ends the plugin's side too; a new stream starts afresh
    again = await kit.host.channels.open("node-jsonrpc-counter.counter.live")
    assert await again.receive() == {"value": 3}
    again.close()
    assert await kit.command("node-jsonrpc-counter.counter.value") == 3


async def test_config_changes_reach_the_plugin_which_may_refuse_them(kit: Kit) -> None:
    await kit.service.set_config(COUNTER, {"step": 5})
    assert await kit.command("node-jsonrpc-counter.counter.add") == 5
    with pytest.raises(ConfigRejected, match="step must be a whole number of at least 1"):
        await kit.service.set_config(COUNTER, {"step": 0})
    assert (await kit.service.config(COUNTER))["config"]["step"] == 5
    assert await kit.command("node-jsonrpc-counter.counter.add") == 10
    assert "step 1 -> 5" in await kit.command("node-jsonrpc-counter.counter.notices")


async def test_the_operator_enabling_and_disabling_is_told_to_the_plugin(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=f"plughost.plugin.{COUNTER}")
    await kit.service.disable(COUNTER)
    assert "disabled by the operator" in caplog.text  # told before it was deactivated
    await kit.service.enable(COUNTER)
    assert "enabled" in await kit.command("node-jsonrpc-counter.counter.notices")


@pytest.mark.parametrize(("plugin_id", "bump", "state_of"), [
    (COUNTER, "node-jsonrpc-counter.counter.add", "node-jsonrpc-counter.counter.value"),
    (GREETER, "node-greeter.greeter.greet", None),
])
async def test_update_and_rollback_carry_the_state_over(
    kit: Kit, plugin_id: str, bump: str, state_of: str | None
) -> None:
    async def state() -> Any:
        if state_of is not None:
            return await kit.command(state_of)
        return dict((await kit.host.get(plugin_id).instance.health()).data)["greeted"]

    for _ in range(3):
        await kit.command(bump)
    before = await state()
    old_pid = kit.host.get(plugin_id).instance.pid
    result = await kit.service.update(plugin_id, kit.package(plugin_id, "1.1.0"))
    assert (result.from_version, result.to_version, result.state) == ("1.0.0", "1.1.0", "active")
    assert kit.host.get(plugin_id).instance.pid != old_pid  # a new process, same state
    assert await state() == before == 3
    await kit.command(bump)
    back = await kit.service.rollback(plugin_id)
    assert (back.from_version, back.to_version) == ("1.1.0", "1.0.0")
    assert await state() == 4  # what 1.1.0 had, handed back to 1.0.0
    if plugin_id == COUNTER:
        notices = await kit.command("node-jsonrpc-counter.counter.notices")
        assert "imported 4 from 1.1.0" in notices
