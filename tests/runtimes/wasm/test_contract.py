"""What the host asks of a wasm plugin beyond calls, as docs/wasm-abi.md documents it: events
delivered, state handed over across an update or rollback, configuration changes (which it may
refuse), enable/disable notifications."""

from __future__ import annotations

import pytest

from plughost.core.bus import Event, EventBus
from plughost.errors import PluginActivationError, PluginError, PluginUnavailable
from plughost.runtimes.wasm import WasmBindings

from . import wat_modules


async def test_state_is_handed_from_one_version_to_the_next(runtime, tmp_path) -> None:
    path = wat_modules.write(tmp_path, "stateful", wat_modules.STATEFUL)
    old = runtime.load_file("stateful", path)
    await old.start(WasmBindings())
    assert await old.export_state() is None  # nothing to hand over yet
    await old.import_state({"count": 41}, "0.9.0")  # a running instance takes it at once
    state = await old.export_state()
    assert state == {"state": {"count": 41}, "from_version": "0.9.0"}
    # the update: a new instance, loaded, given the state before it starts
    new = runtime.load_file("stateful", path)
    await new.import_state(state, "1.0.0")
    await new.start(WasmBindings())
    assert await new.export_state() == {"state": state, "from_version": "1.0.0"}
    # and back (rollback): the old version's instance gets the newer one's state
    back = runtime.load_file("stateful", path)
    await back.import_state(await new.export_state(), "1.1.0")
    await back.start(WasmBindings())
    assert (await back.export_state())["from_version"] == "1.1.0"


async def test_a_plugin_without_state_exports_none_and_ignores_an_import(load) -> None:
    inst = load("echo", wat_modules.ECHO)
    assert await inst.export_state() is None
    await inst.import_state({"x": 1}, "0.1.0")  # nothing to give it to: not an error
    assert await inst.call("echo", {"still": "fine"}) == {"still": "fine"}


async def test_a_refused_state_fails_activation_naming_the_version(runtime, tmp_path) -> None:
    path = wat_modules.write(
        tmp_path,
        "guard",
        wat_modules.CONFIG_GUARD.replace('"on_config_change"', '"plughost_import_state"'),
    )
    inst = runtime.load_file("guard", path)
    await inst.import_state({"x": 1}, "0.1.0")
    with pytest.raises(PluginActivationError, match=r"refused the state of 0\.1\.0"):
        await inst.start(WasmBindings())


async def test_events_are_delivered_in_their_wire_shape(load) -> None:
    inst = load("stateful", wat_modules.STATEFUL)
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe("music.*", seen.append)
    bus.emit("music.played", {"title": "x"}, source="player")
    await inst.deliver_event("on_event", seen[0])
    got = await inst.call("last_event")
    assert got["event"]["topic"] == "music.played"
    assert got["event"]["payload"] == {"title": "x"}
    assert got["event"]["pluginId"] == "player"


async def test_config_changes_reach_the_plugin_which_may_refuse_them(load) -> None:
    inst = load("stateful", wat_modules.STATEFUL)
    await inst.config_changed({"a": 1}, {"a": 2})
    assert await inst.call("last_config") == {"old": {"a": 1}, "new": {"a": 2}}
    guard = load("guard", wat_modules.CONFIG_GUARD)
    with pytest.raises(PluginError, match=r"this plugin takes no configuration"):
        await guard.config_changed({}, {"a": 1})
    echo = load("echo", wat_modules.ECHO)
    await echo.config_changed({}, {"a": 1})  # no handler: nothing to refuse with


async def test_enable_and_disable_are_told_to_the_plugin(load) -> None:
    inst = load("stateful", wat_modules.STATEFUL)
    await inst.enabled_changed(False)
    assert await inst.call("last_enabled") == {"enabled": False}
    await inst.enabled_changed(True)
    assert await inst.call("last_enabled") == {"enabled": True}


async def test_state_for_a_closed_instance_is_refused(runtime, tmp_path) -> None:
    path = wat_modules.write(tmp_path, "stateful", wat_modules.STATEFUL)
    inst = runtime.load_file("stateful", path)
    await inst.close()
    with pytest.raises(PluginUnavailable, match="closed"):
        await inst.import_state({}, "1.0.0")


# -- through the host: install, update, rollback; a capability the runtime lacks -------------


def _wasm_plugin(folder, plugin_id, version, wat, extra=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.wat").write_text(wat)
    (folder / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nname = "{plugin_id}"\nversion = "{version}"\n'
        f'runtime = "wasm"\nentry = "plugin.wat"\n{extra}'
    )
    return folder


async def test_state_survives_update_and_rollback_through_the_service(tmp_path) -> None:
    from plughost.security.package import pack
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    def package(version):
        folder = _wasm_plugin(tmp_path / "src" / version, "keeper", version, wat_modules.HANDOVER)
        return pack(folder, tmp_path / "packages")

    settings = HostSettings(home=tmp_path / "home", require_signature="never")
    async with PluginService(settings, start=True) as service:
        await service.install(package("1.0.0"))
        host = service.host
        assert await host.call("keeper", "remember", note="from 1.0.0") is None
        await service.update("keeper", package("2.0.0"))
        # the service used to send plugin.call target=export_state: "no target", state lost
        assert await host.call("keeper", "imported") == {
            "state": {"note": "from 1.0.0"},
            "from_version": "1.0.0",
        }
        await host.call("keeper", "remember", note="from 2.0.0")
        await service.rollback("keeper")
        assert str(host.get("keeper").manifest.version) == "1.0.0"
        assert await host.call("keeper", "imported") == {
            "state": {"note": "from 2.0.0"},
            "from_version": "2.0.0",
        }


async def test_a_wasm_plugin_serves_channels_one_call_per_step(tmp_path) -> None:
    from plughost.errors import ChannelClosed
    from plughost.host import PluginHost

    _wasm_plugin(tmp_path / "plugins" / "streamer", "streamer", "1.0.0", wat_modules.CHANNELS,
                 '[provides]\nchannels = ["streamer.steps", "streamer.ends", '
                 '"streamer.garbled"]\n')
    async with PluginHost([tmp_path / "plugins"]) as host:
        assert (await host.start()).ok
        steps = await host.channels.open("streamer.steps")
        opened = await steps.receive()
        assert opened == {"channel": opened["channel"], "event": "open"}
        await steps.send({"text": "hi"})
        assert await steps.receive() == {"channel": opened["channel"], "event": "message",
                                         "data": {"text": "hi"}}
        other = await host.channels.open("streamer.steps")
        assert (await other.receive())["channel"] != opened["channel"]  # numbered apart
        steps.close()
        other.close()
        # the plugin's answer can end the channel: the opener reads what it sent, then the end
        ends = await host.channels.open("streamer.ends")
        assert [m async for m in ends] == ["done"]
        # an answer of another shape aborts the channel, naming the shape to use
        garbled = await host.channels.open("streamer.garbled")
        with pytest.raises(ChannelClosed, match=r'null or \{"send"'):
            await garbled.receive()
        assert host.get("streamer").instance.active  # the plugin itself is fine
