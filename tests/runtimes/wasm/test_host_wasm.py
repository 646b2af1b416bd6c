"""``runtime = "wasm"`` through PluginHost: discovered, loaded, activated, called, closed."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from plughost.core.lifecycle import State
from plughost.errors import PermissionDenied, PluginCrashed, PluginUnavailable
from plughost.host import PluginHost
from plughost.observability.health import RestartPolicy, Supervisor
from plughost.runtimes.wasm import WasmRuntime

from . import wat_modules

EXAMPLE = Path(__file__).parents[3] / "examples" / "wasm-hello"


class _Grants:
    """A permissions service granting exact (kind, target) pairs."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = set(pairs)

    def check(self, kind: str, target: str) -> None:
        if (kind, target) not in self.pairs:
            raise PermissionDenied(f"{kind} {target!r} is not granted")


class _Services:
    """A host extension attaching services to every context, as the service layers will."""

    def __init__(self, **services: object) -> None:
        self.services = services

    def prepare_context(self, record, context) -> None:
        for name, service in self.services.items():
            context.attach(name, service)


async def test_wasm_plugin_runs_through_the_host(tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLE, plugins / "wasm-hello")
    host = PluginHost([plugins], home=tmp_path / "home")
    report = await host.start()
    assert report.ok, str(report)
    record = host.get("wasm-hello")
    assert record.state is State.ACTIVE
    assert [e.name for e in record.exports] == ["wasm-hello.greet", "wasm-hello.announce"]
    assert await host.call("wasm-hello", "greet", name="Ada") == {
        "greeting": "hello from wasm",
        "request": {"name": "Ada"},
    }
    # no permissions service attached: deny by default
    with pytest.raises(PermissionDenied):
        await host.call("wasm-hello", "announce", who="Ada")
    assert host.status("wasm-hello")
    await host.aclose()
    assert record.state is not State.ACTIVE
    assert not any(t.name == "plughost-wasm-epoch" for t in threading.enumerate())
    assert list((tmp_path / "home" / "cache" / "wasm").glob("*.cwasm"))


async def test_granted_services_reach_the_wasm_plugin(tmp_path):
    host = PluginHost([EXAMPLE])
    host.add_extension(_Services(permissions=_Grants(("events:emit", "hello.greeted"))))
    events: list = []
    host.comms.bus.subscribe("hello.*", events.append)
    try:
        assert (await host.start()).ok
        assert await host.call("wasm-hello", "announce", who="Ada") == 1  # subscribers reached
        assert [(e.topic, e.payload, e.source) for e in events] == [
            ("hello.greeted", {"who": "Ada"}, "wasm-hello")
        ]
    finally:
        await host.aclose()


async def test_wasm_limits_from_the_manifest_are_reported_as_enforced(tmp_path):
    host = PluginHost([EXAMPLE])
    try:
        await host.start()
        record = host.get("wasm-hello")
        assert not record.warnings  # timeout, memory and fuel are all enforced by wasm
        limits = record.instance.limits
        assert (limits.timeout, limits.memory, limits.fuel) == (1.0, 16 << 20, 10_000_000)
    finally:
        await host.aclose()


async def test_a_crash_looping_wasm_plugin_is_quarantined_as_failed(tmp_path):
    folder = tmp_path / "crasher"
    folder.mkdir()
    wat_modules.write(folder, "crash", wat_modules.CRASH)
    (folder / "plugin.toml").write_text(
        'id = "crasher"\nname = "crasher"\nversion = "1.0.0"\nruntime = "wasm"\n'
        'entry = "crash.wat"\n[provides]\ncommands = ["run"]\n'
    )
    host = PluginHost([tmp_path])
    policy = RestartPolicy(initial_delay=0.0, jitter=0.0, max_crashes=3)
    host.add_runtime(
        WasmRuntime(supervisor=lambda: Supervisor(policy), on_event=host._on_supervisor_event)
    )
    try:
        assert (await host.start()).ok
        for _ in range(3):
            with pytest.raises(PluginCrashed):
                await host.call("crasher", "run")
        record = host.get("crasher")
        assert record.state is State.FAILED and record.phase == "supervise"
        assert "quarantined after 3 crashes" in record.error.message
        with pytest.raises(PluginUnavailable):
            await host.call("crasher", "run")
    finally:
        await host.aclose()


async def test_wasm_exports_reach_the_communication_layer(tmp_path):
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    wat_modules.write(events_dir, "p", wat_modules.EVENTS)
    (events_dir / "plugin.toml").write_text(
        'id = "events"\nname = "events"\nversion = "1.0.0"\nruntime = "wasm"\nentry = "p.wat"\n'
    )
    host = PluginHost([tmp_path, EXAMPLE])
    # the ScopedBus the communication layer attaches is what the wasm emit goes through
    host.add_extension(_Services(permissions=_Grants(("events:emit", "hello.greeted"))))
    seen: list[tuple[str, object, str | None]] = []
    host.bus.subscribe("hello.*", lambda ev: seen.append((ev.topic, ev.payload, ev.source)))
    try:
        assert (await host.start()).ok
        # a wasm command, executed by name through the command registry
        assert await host.commands.execute("wasm-hello.greet", {"name": "Ada"}) == {
            "greeting": "hello from wasm",
            "request": {"name": "Ada"},
        }
        assert await host.commands.execute("events.echo.say", {"x": 1}) == {"x": 1}
        # a wasm event subscription receives the bus's events
        events = host.get("events").instance
        before = events.stats()["calls"]
        host.bus.emit("music.play", {"id": 7})
        await host.bus.drain()
        assert events.stats()["calls"] == before + 1 and events.stats()["errors"] == 0
        # a wasm plugin's emit goes out on the host bus, stamped with its id
        assert await host.commands.execute("wasm-hello.announce", {"who": "Ada"}) == 1  # delivered
        await host.bus.drain()
        assert seen == [("hello.greeted", {"who": "Ada"}, "wasm-hello")]
        # deactivating removes the plugin's registrations
        await host.deactivate("events")
        assert "events.echo.say" not in host.commands.names()
    finally:
        await host.aclose()


async def test_wasm_plugin_executes_another_plugins_command_through_the_host(tmp_path):
    caller = tmp_path / "caller"
    caller.mkdir()
    wat_modules.write(caller, "p", wat_modules.EXECUTE)
    (caller / "plugin.toml").write_text(
        'id = "caller"\nname = "caller"\nversion = "1.0.0"\nruntime = "wasm"\nentry = "p.wat"\n'
        '[provides]\ncommands = ["caller.run"]\n'
    )
    host = PluginHost([tmp_path, EXAMPLE])
    grants = _Grants(("commands:execute", "wasm-hello.greet"))
    host.add_extension(_Services(permissions=grants))
    try:
        assert (await host.start()).ok
        # ctx.commands.execute is async: the caller's calls run off the event loop
        assert host.get("caller").instance.local_callable("run") is None
        assert await host.call("caller", "run") == {
            "greeting": "hello from wasm",
            "request": {"name": "Bob"},
        }
        grants.pairs.clear()
        with pytest.raises(PermissionDenied, match=r"commands:execute 'wasm-hello.greet'"):
            await host.call("caller", "run")
    finally:
        await host.aclose()
