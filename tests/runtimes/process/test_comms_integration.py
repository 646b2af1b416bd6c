"""A process plugin's exports reach the communications layer like an in-process plugin's."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from plughost import PluginHost

from .conftest import PLUGINS


class AllowAll:
    def check(self, kind: str, target: str) -> None:
        return None


class Services:
    def prepare_context(self, record: Any, context: Any) -> None:
        context.attach("permissions", AllowAll())


async def test_commands_hooks_and_events_of_a_process_plugin_are_served(tmp_path: Path) -> None:
    shutil.copytree(PLUGINS / "pyecho", tmp_path / "pyecho")
    async with PluginHost([tmp_path]) as host:
        host.add_extension(Services())

        def format(name: str) -> str:  # the extension point the plugin implements
            raise NotImplementedError

        host.comms.hooks.add_spec(format, name="greeting.format")
        await host.start()
        comms = host.comms
        result = await comms.commands.execute("pyecho.echo.say", {"text": "via comms"})
        assert result["text"] == "via comms" and result["pid"] == host.get("pyecho").instance.pid
        greetings = await comms.hooks.acall("greeting.format", name="Ada")
        assert greetings == ["Hello, Ada!"]
        comms.bus.emit("order.created", {"id": 7})
        await comms.bus.drain()
        assert await host.call("pyecho", "seen_users") == ["order.created:7"]
        ch = await comms.channels.open("pyecho.echo.chat")
        await ch.send("shout")
        await ch.send("louder")
        assert [await ch.receive(), await ch.receive()] == ["SHOUT", "LOUDER"]
        ch.close()
        await host.deactivate("pyecho")
        assert "pyecho.echo.say" not in comms.commands
