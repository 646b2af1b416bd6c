"""PluginHost wired to the communication layer: exports, context shortcuts, cleanup, checker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from plughost import PermissionDenied, PluginHost, State
from plughost.core.bus import Event
from plughost.core.manifest import manifest_from_dict
from plughost.errors import CommandNotFound
from plughost.runtimes.base import Export
from plughost.runtimes.fake import FakePlugin, FakeRuntime

CHATTY = """
import asyncio
from plughost.sdk import Plugin, on, command, channel, hookimpl

class Chatty(Plugin):
    def activate(self, ctx):
        self.heard = []
        self.release = asyncio.Event()
        ctx.subscribe("news.#", self.heard.append)          # owner-scoped subscription
        ctx.commands.register("shout", lambda text: text.upper())
        ctx.spawn(self.release.wait(), name="waiting")        # background work it owns

    @command("relay")
    async def relay(self, name: str):
        # a plugin executing another plugin's command and emitting an event as itself
        greeting = await self.ctx.execute("greeter.greet", {"name": name})
        self.ctx.emit("chatty.relayed", {"greeting": greeting})
        return greeting

    @command("ask")
    async def ask(self, prompt: str):
        ch = await self.ctx.open_channel("greeter.echo")
        await ch.send(prompt)
        answer = await ch.receive()
        ch.close()
        return answer

    @hookimpl("app.startup_message")
    def startup(self):
        return "chatty is up"
"""

GREETER = """
from plughost.sdk import Plugin, command, channel

class Greeter(Plugin):
    @command("greet")
    def greet(self, name: str):
        return f"Hello, {name}!"

    @channel("echo")
    async def echo(self, ch):
        async for message in ch:
            await ch.send(f"echo: {message}")
"""


def host_for(write_plugin: Any, tmp_path: Path, **options: Any) -> PluginHost:
    write_plugin("chatty", code=CHATTY, entry="chatty:Chatty", dependencies={"greeter": "*"})
    write_plugin("greeter", code=GREETER, entry="greeter:Greeter")
    host = PluginHost([tmp_path / "plugins"], on_plugin_error="fail", **options)

    def startup_message() -> str: ...

    host.hooks.add_spec(startup_message, name="app.startup_message")
    return host


async def test_plugins_talk_through_context_shortcuts(write_plugin: Any, tmp_path: Path) -> None:
    async with host_for(write_plugin, tmp_path) as host:
        report = await host.start()
        assert report.ok, report
        relayed: list[Event] = []
        host.bus.subscribe("chatty.relayed", relayed.append)
        assert await host.commands.execute("chatty.relay", {"name": "Ada"}) == "Hello, Ada!"
        assert relayed[0].source == "chatty"
        assert await host.commands.execute("chatty.shout", {"text": "hey"}) == "HEY"
        assert await host.commands.execute("chatty.ask", {"prompt": "hi"}) == "echo: hi"
        assert host.hooks.call("app.startup_message") == ["chatty is up"]
        host.bus.emit("news.today", "rain")
        plugin = host.get("chatty").instance.plugin_object
        assert [e.payload for e in plugin.heard] == ["rain"]


async def test_deactivation_removes_what_the_plugin_registered_itself(write_plugin: Any,
                                                                       tmp_path: Path) -> None:
    async with host_for(write_plugin, tmp_path) as host:
        await host.start()
        assert host.comms.tasks.of("chatty")  # the spawned background task
        await host.deactivate("chatty")
        leftovers = host.comms.owned_by("chatty")
        assert not any(leftovers.values()), leftovers
        assert host.hooks.call("app.startup_message") == []
        with pytest.raises(CommandNotFound):
            await host.commands.execute("chatty.shout", {"text": "x"})
        await host.activate("chatty")
        assert await host.commands.execute("chatty.shout", {"text": "x"}) == "X"


async def test_host_permission_checker_applies_to_plugins(write_plugin: Any,
                                                          tmp_path: Path) -> None:
    def checker(plugin_id: str | None, action: str, target: str) -> None:
        if plugin_id == "chatty" and action == "commands:execute":
            raise PermissionDenied(f"{plugin_id} may not execute {target}", plugin_id=plugin_id)

    async with host_for(write_plugin, tmp_path, permission_checker=checker) as host:
        await host.start()
        with pytest.raises(PermissionDenied):
            await host.commands.execute("chatty.relay", {"name": "Ada"})
        assert await host.commands.execute("greeter.greet", {"name": "Ada"}) == "Hello, Ada!"


async def test_exports_of_an_out_of_process_plugin_are_called_through_the_runtime() -> None:
    async def before_send(message: str) -> str:
        await asyncio.sleep(0)
        return message + " (via runtime)"

    runtime = FakeRuntime(serves="python")
    runtime.define(FakePlugin(
        "remote-filter",
        handlers={"before_send": before_send, "ping": lambda: "pong"},
        exports=[Export("hook", "chat.before_send", "before_send", {"args": ["message"]}),
                 Export("command", "ping", "ping")],
    ))
    host = PluginHost(runtimes=[runtime], on_plugin_error="fail")
    host.add(manifest_from_dict({"id": "remote-filter", "name": "R", "version": "1.0.0",
                                        "entry": "x:y"}))

    def before_send_spec(message: str) -> str: ...

    host.hooks.add_spec(before_send_spec, name="chat.before_send", policy="pipeline")
    async with host:
        await host.start()
        assert host.get("remote-filter").state is State.ACTIVE
        assert await host.hooks.acall("chat.before_send", message="hi") == "hi (via runtime)"
        assert await host.commands.execute("remote-filter.ping") == "pong"
        calls = [entry for kind, entry in runtime.instances["remote-filter"].log
                 if kind == "call"]
        assert calls == [("before_send", {"message": "hi"}), ("ping", {})]


async def test_a_plugin_whose_exports_are_refused_fails_activation_cleanly(
        write_plugin: Any, tmp_path: Path) -> None:
    write_plugin("bad", entry="bad:Bad", code="""
from plughost.sdk import Plugin, command

class Bad(Plugin):
    @command("one")
    def one(self):
        return 1

    @command("one")
    def again(self):
        return 2
""")
    host = PluginHost([tmp_path / "plugins"])
    async with host:
        await host.start()
        record = host.get("bad")
        assert record.state is State.FAILED
        assert record.error.code == "command.exists"
        assert host.comms.owned_by("bad")["commands"] == []


LAZY_LISTENER = """
from plughost.sdk import Plugin, on

class Listener(Plugin):
    def activate(self, ctx):
        self.got = []

    @on("chat.opened")
    def opened(self, event):
        self.got.append(event.payload)
"""

LAZY_EXTENSION = """
from plughost.sdk import Plugin, hookimpl

class Greeting(Plugin):
    @hookimpl("app.greeting")
    async def greeting(self, name):
        return f"Welcome, {name}"
"""


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.001)


async def test_event_activation_wakes_the_plugin_and_delivers_the_event(
        write_plugin: Any, tmp_path: Path) -> None:
    write_plugin("listener", code=LAZY_LISTENER, entry="listener:Listener",
                 activation=["event:chat.opened"])
    async with PluginHost([tmp_path / "plugins"], on_plugin_error="fail") as host:
        await host.start()
        assert host.get("listener").state is State.RESOLVED
        host.bus.emit("chat.other", 0)  # not its trigger: stays asleep
        host.bus.emit("chat.opened", 1)
        await wait_until(lambda: host.get("listener").state is State.ACTIVE
                         and host.get("listener").instance.plugin_object.got == [1])
        host.bus.emit("chat.opened", 2)  # now an ordinary subscriber
        assert host.get("listener").instance.plugin_object.got == [1, 2]


async def test_the_hub_is_made_at_first_use_and_then_hears_first_and_watches_triggers(
        write_plugin: Any, tmp_path: Path) -> None:
    # A host that only discovers and resolves makes no hub (events, commands, channels); one
    # asked for afterwards watches the event triggers indexed before it and hears lifecycle
    # changes before the listeners subscribed earlier, as when it was made with the host.
    write_plugin("listener", code=LAZY_LISTENER, entry="listener:Listener",
                 activation=["event:chat.opened"])
    heard: list[tuple[str, str]] = []
    async with PluginHost([tmp_path / "plugins"], on_plugin_error="fail") as host:
        host.lifecycle.subscribe(lambda e: heard.append(("earlier listener", e.new.value)))
        await host.start()
        assert host._comms is None
        assert host.get("listener").state is State.RESOLVED
        host.bus.subscribe("plugin.lifecycle.active", lambda e: heard.append(("bus", "active")))
        host.bus.emit("chat.opened", 1)
        await wait_until(lambda: host.get("listener").state is State.ACTIVE
                         and host.get("listener").instance.plugin_object.got == [1])
    assert heard[heard.index(("bus", "active")) + 1] == ("earlier listener", "active")


async def test_added_plugins_watch_their_event_triggers_without_resubscribing_the_others(
        write_plugin: Any, tmp_path: Path) -> None:
    from plughost.core.manifest import load_manifest

    write_plugin("first", code=LAZY_LISTENER, entry="listener:Listener",
                 activation=["event:chat.opened"])
    extra = tmp_path / "extra"
    second = write_plugin("second", code=LAZY_LISTENER, entry="listener:Listener",
                          activation=["event:chat.closed"], directory=extra)
    async with PluginHost([tmp_path / "plugins"], on_plugin_error="fail") as host:
        await host.start()
        subscribed: list[str] = []
        subscribe = host.bus.subscribe

        def counting(pattern: str, *args: Any, **kwargs: Any) -> Any:
            subscribed.append(pattern)
            return subscribe(pattern, *args, **kwargs)

        host.bus.subscribe = counting  # type: ignore[method-assign]
        host.add(load_manifest(second), second, source="installed")
        host.resolve(only=["second"])
        assert subscribed == ["chat.closed"]  # what was added, not every trigger again
        host.bus.emit("chat.closed", 1)  # its trigger (it listens to chat.opened only)
        await wait_until(lambda: host.get("second").state is State.ACTIVE)
        assert host.get("first").state is State.RESOLVED
        await host.remove("second")  # its trigger is no longer watched
        subscribed.clear()
        host.add(load_manifest(second), second, source="installed")
        host.resolve(only=["second"])
        assert subscribed == ["chat.closed"]
        host.bus.emit("chat.opened", 2)
        await wait_until(lambda: host.get("first").state is State.ACTIVE
                         and host.get("first").instance.plugin_object.got == [2])


async def test_extension_activation_on_first_acall(write_plugin: Any, tmp_path: Path) -> None:
    write_plugin("greeting", code=LAZY_EXTENSION, entry="greeting:Greeting",
                 activation=["extension:app.greeting"])
    async with PluginHost([tmp_path / "plugins"], on_plugin_error="fail") as host:

        def greeting(name: str) -> str: ...

        host.hooks.add_spec(greeting, name="app.greeting")
        await host.start()
        assert host.get("greeting").state is State.RESOLVED
        assert await host.hooks.acall("app.greeting", name="Ada") == ["Welcome, Ada"]
        assert host.get("greeting").state is State.ACTIVE


async def test_extension_points_a_plugin_declares_leave_with_it(write_plugin: Any,
                                                                tmp_path: Path) -> None:
    write_plugin("jit", entry="jit:Jit", code="""
from plughost.sdk import Plugin

class Jit(Plugin):
    def activate(self, ctx):
        def optimize(ir: list) -> list: ...
        ctx.hooks.add_spec(optimize, name="vm.jit.pass", policy="pipeline")

    def compile(self, ir):
        return self.ctx.hooks.call("vm.jit.pass", ir=ir)
""")
    write_plugin("fold", entry="fold:Fold", dependencies={"jit": "*"}, code="""
from plughost.sdk import Plugin, hookimpl

class Fold(Plugin):
    @hookimpl("vm.jit.pass")
    def fold(self, ir):
        return [x for x in ir if x != "nop"]
""")
    async with PluginHost([tmp_path / "plugins"], on_plugin_error="fail") as host:
        await host.start()
        assert await host.call("jit", "compile", ir=["a", "nop", "b"]) == ["a", "b"]
        assert host.comms.owned_by("jit")["specs"] == ["vm.jit.pass"]
        await host.deactivate("jit", cascade=True)
        assert "vm.jit.pass" not in host.hooks
        assert host.comms.owned_by("jit")["specs"] == []


def test_threads_asking_for_the_hub_at_once_get_the_same_one(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    import threading
    import time

    import plughost.host as host_module

    made = []
    real = host_module.Communications

    def slow_hub(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)  # both threads are past the first look meanwhile
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(host_module, "Communications", slow_hub)
    host = PluginHost([tmp_path])
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(host.comms)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and all(hub is made[0] for hub in got)
    assert host._extensions.count(made[0]) == 1
