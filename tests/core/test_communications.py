from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plughost.core.bus import Event
from plughost.core.channels import Channel
from plughost.core.communications import Communications
from plughost.errors import (
    HookOrderCycle,
    InvalidExport,
    PermissionDenied,
    PluginTimeout,
)
from plughost.runtimes.base import Export
from plughost.runtimes.fake import FakeInstance, FakePlugin
from plughost.sdk import channel, collect_exports, command, hookimpl, on


def remote_instance(plugin_id: str, handlers: dict[str, Any]) -> FakeInstance:
    """An instance of the fake runtime in out-of-process mode: reachable only via ``call``."""
    return FakeInstance(FakePlugin(plugin_id, handlers=handlers, local=False))


def calls_of(instance: FakeInstance) -> list[tuple[str, dict[str, Any]]]:
    return [entry for kind, entry in instance.log if kind == "call"]



class Chatty:
    """An in-process plugin object exporting one of each kind."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.release = asyncio.Event()

    @hookimpl("chat.before_send")
    def shout(self, message: str) -> str:
        return message.upper()

    @on("chat.#")
    async def watch(self, event: Event) -> None:
        self.seen.append(event.topic)
        await self.release.wait()

    @command("greet")
    async def greet(self, name: str) -> str:
        return f"hi {name}"

    @channel("stream")
    async def stream(self, ch: Channel) -> None:
        async for word in ch:
            await ch.send(word[::-1])


class LocalInstance:
    """Just enough of PluginInstance for register_exports: the in-process fast path."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def local_callable(self, target: str) -> Any:
        return getattr(self.obj, target)


def comms_with_spec() -> Communications:
    comms = Communications()

    def before_send(message: str) -> str: ...

    comms.hooks.add_spec(before_send, name="chat.before_send", policy="pipeline")
    return comms


async def test_exports_of_an_in_process_plugin_work_through_every_mechanism() -> None:
    comms = comms_with_spec()
    plugin = Chatty()
    comms.register_exports("chatty", collect_exports(plugin), LocalInstance(plugin))
    assert comms.hooks.call("chat.before_send", message="hi") == "HI"
    assert await comms.commands.execute("chatty.greet", {"name": "ann"}) == "hi ann"
    ch = await comms.channels.open("chatty.stream")
    await ch.send("abc")
    assert await ch.receive() == "cba"
    ch.close()
    comms.bus.emit("chat.message")
    plugin.release.set()
    await comms.bus.drain()
    assert plugin.seen == ["chat.message"]
    await comms.aclose()


async def test_exports_of_a_remote_plugin_go_through_instance_call() -> None:
    async def before_send(message: str) -> str:
        return message + " [remote]"

    async def greet(name: str) -> str:
        return f"remote hi {name}"

    got: list[dict] = []

    async def watch(event: dict) -> None:
        got.append(event)

    remote = remote_instance("far", {"before_send": before_send, "greet": greet, "watch": watch})
    exports = [
        Export("hook", "chat.before_send", "before_send", {"args": ["message"]}),
        Export("command", "greet", "greet", {"timeout": 1.0}),
        Export("event", "chat.*", "watch", {"queue": 4}),
    ]
    comms = comms_with_spec()
    comms.register_exports("far", exports, remote)
    assert await comms.hooks.acall("chat.before_send", message="m") == "m [remote]"
    assert await comms.commands.execute("far.greet", {"name": "bo"}) == "remote hi bo"
    comms.bus.emit("chat.message", {"text": "x"}, source="ui")
    await comms.bus.drain()
    assert got[0]["topic"] == "chat.message" and got[0]["payload"] == {"text": "x"}
    assert [c[0] for c in calls_of(remote)] == ["before_send", "greet", "watch"]
    await comms.aclose()


async def test_remote_command_timeout_comes_from_the_export_options() -> None:
    async def slow() -> None:
        await asyncio.Event().wait()

    comms = Communications()
    comms.register_exports("far", [Export("command", "slow", "slow", {"timeout": 0.01})],
                           remote_instance("far", {"slow": slow}))
    with pytest.raises(PluginTimeout):
        await comms.commands.execute("far.slow")


async def test_register_exports_is_all_or_nothing() -> None:
    comms = comms_with_spec()
    comms.hooks.register("b", "chat.before_send", lambda message: message, before=["a"])
    plugin = Chatty()
    exports = [
        Export("command", "greet", "greet"),
        Export("hook", "chat.before_send", "shout", {"before": ["b"]}),  # closes a cycle
    ]
    with pytest.raises(HookOrderCycle):
        comms.register_exports("a", exports, LocalInstance(plugin))
    assert comms.owned_by("a") == {"hooks": [], "specs": [], "subscriptions": [], "commands": [],
                                   "channels": [], "tasks": []}


def test_unknown_export_kind_or_option_is_refused_by_name() -> None:
    comms = Communications()
    plugin = Chatty()
    with pytest.raises(InvalidExport, match="unknown kind 'widget'"):
        comms.register_exports("p", [Export("widget", "x", "greet")],  # type: ignore[arg-type]
                               LocalInstance(plugin))
    with pytest.raises(InvalidExport, match="unknown option"):
        comms.register_exports("p", [Export("command", "g", "greet", {"retries": 3})],
                               LocalInstance(plugin))


async def test_remote_channel_export_is_served_through_the_runtime_contract() -> None:
    async def echo(channel: Channel) -> None:
        async for word in channel:
            await channel.send(word[::-1])

    comms = Communications()
    far = remote_instance("far", {"s": echo})
    comms.register_exports("far", [Export("channel", "s", "s")], far)
    ch = await comms.channels.open("far.s")
    await ch.send("abc")
    assert await ch.receive() == "cba"
    ch.close()
    assert ("channel", ("s", "far.s")) in far.log


async def test_channel_export_of_a_runtime_that_cannot_serve_channels_is_refused() -> None:
    class CallOnly:
        async def call(self, target: str, kwargs: Any = None, *, timeout: Any = None) -> Any:
            return None

        def local_callable(self, target: str) -> Any:
            return None

    comms = Communications()
    with pytest.raises(InvalidExport, match="cannot serve channels"):
        comms.register_exports("far", [Export("channel", "s", "s")],
                               CallOnly())  # type: ignore[arg-type]


async def test_unregister_owner_leaves_nothing_behind() -> None:
    comms = comms_with_spec()
    plugin = Chatty()
    comms.register_exports("chatty", collect_exports(plugin), LocalInstance(plugin))
    comms.register_exports("other", [Export("command", "greet", "greet")],
                           LocalInstance(Chatty()))
    ch = await comms.channels.open("chatty.stream")
    comms.bus.emit("chat.started")  # the async subscriber is now busy (waits on release)
    await asyncio.sleep(0)
    assert comms.tasks.of("chatty")  # worker + channel handler are running
    owned = comms.owned_by("chatty")
    assert owned["hooks"] and owned["subscriptions"] and owned["commands"] and owned["channels"]

    removed = await comms.unregister_owner("chatty")

    assert removed["hooks"] == 1 and removed["subscriptions"] == 1
    assert removed["commands"] == 1 and removed["channels"] == 2 and removed["tasks"] == 2
    assert comms.owned_by("chatty") == {"hooks": [], "specs": [], "subscriptions": [],
                                        "commands": [], "channels": [], "tasks": []}
    assert comms.hooks.call("chat.before_send", message="m") == "m"
    assert comms.commands.names() == ["other.greet"]
    assert comms.bus.subscribers("chat.started") == ()
    assert ch.closed
    await comms.aclose()


async def test_one_denying_checker_guards_emit_execute_and_open() -> None:
    comms = comms_with_spec()
    plugin = Chatty()
    comms.register_exports("chatty", collect_exports(plugin), LocalInstance(plugin))
    asked: list[tuple[str | None, str, str]] = []

    def deny(plugin_id: str | None, action: str, target: str) -> None:
        asked.append((plugin_id, action, target))
        raise PermissionDenied(f"{plugin_id} may not {action} {target}", plugin_id=plugin_id)

    comms.set_permission_checker(deny)
    with pytest.raises(PermissionDenied):
        comms.bus.emit("chat.message", source="mallory")
    with pytest.raises(PermissionDenied):
        await comms.commands.execute("chatty.greet", {"name": "x"}, caller="mallory")
    with pytest.raises(PermissionDenied):
        await comms.channels.open("chatty.stream", caller="mallory")
    assert asked == [
        ("mallory", "events:emit", "chat.message"),
        ("mallory", "commands:execute", "chatty.greet"),
        ("mallory", "channels:open", "chatty.stream"),
    ]
    assert plugin.seen == []
    comms.set_permission_checker(None)
    assert await comms.commands.execute("chatty.greet", {"name": "x"}) == "hi x"
    await comms.aclose()


async def test_one_monitor_observes_every_mechanism_until_undone() -> None:
    comms = comms_with_spec()
    plugin = Chatty()
    plugin.release.set()
    comms.register_exports("chatty", collect_exports(plugin), LocalInstance(plugin))
    seen: list[tuple[str, str]] = []
    undo = comms.add_monitor(lambda kind, name, payload: seen.append((kind, name)))
    comms.hooks.call("chat.before_send", message="m")
    await comms.hooks.acall("chat.before_send", message="m")
    comms.bus.emit("chat.x")
    await comms.commands.execute("chatty.greet", {"name": "a"})
    (await comms.channels.open("chatty.stream")).close()
    undo()
    comms.hooks.call("chat.before_send", message="m")
    comms.bus.emit("chat.x")
    await comms.commands.execute("chatty.greet", {"name": "a"})
    assert seen == [("hook", "chat.before_send"), ("hook", "chat.before_send"),
                    ("event", "chat.x"), ("command", "chatty.greet"),
                    ("channel", "chatty.stream")]
    await comms.aclose()
