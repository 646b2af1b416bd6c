from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plughost.core.lifecycle import State
from plughost.errors import ConfigRejected, PermissionDenied
from plughost.host import PluginHost
from plughost.services.plugin_services import PluginServices

PLUGIN = """
from plughost.sdk import Plugin


class Recorder(Plugin):
    def activate(self, ctx):
        self.changes = []

    def on_config_change(self, old, new):
        if new.get("level") == "forbidden":
            raise ValueError("level 'forbidden' is not supported")
        self.changes.append((old.get("level"), new.get("level")))

    def level(self):
        return self.ctx.config["level"]

    def remember(self, key, value):
        self.ctx.storage.set(key, value)
        return self.ctx.storage.get(key)

    def write_note(self, text):
        self.ctx.files.write_text("note.txt", text)
        return self.ctx.files.read_text("note.txt")

    def read(self, path):
        return self.ctx.files.read_text(path)
"""


def make_plugin(root: Path, plugin_id: str, permissions: list[str]) -> Path:
    folder = root / plugin_id
    folder.mkdir(parents=True)
    (folder / "recorder.py").write_text(PLUGIN)
    perms = ", ".join(f'"{p}"' for p in permissions)
    (folder / "plugin.toml").write_text(
        textwrap.dedent(f'''
        id = "{plugin_id}"
        name = "Recorder"
        version = "1.0.0"
        entry = "recorder:Recorder"
        permissions = [{perms}]

        [config.schema]
        type = "object"
        [config.schema.properties.level]
        type = "string"
        enum = ["low", "high", "forbidden"]
        [config.schema.properties.token]
        type = "string"
        x-secret = true

        [config.defaults]
        level = "low"
    ''')
    )
    return folder


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[PluginHost, PluginServices, Path]]:
    plugins = tmp_path / "plugins"
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("shared data")
    make_plugin(plugins, "rec", [f"fs:read:{shared}", "storage"])
    make_plugin(plugins, "bad", ["fs:read:relative/path"])
    host = PluginHost([plugins], home=tmp_path / "home", on_plugin_error="isolate")
    services = PluginServices(tmp_path / "home", environ={})
    services.install(host)
    yield host, services, shared
    await host.aclose()
    await services.aclose()


async def test_plugin_gets_live_config_storage_files_and_permissions(setup) -> None:
    host, services, shared = setup
    report = await host.start()
    assert report["rec"].ok, report
    assert await host.call("rec", "level") == "low"
    await services.config.set("rec", {"level": "high"})
    assert await host.call("rec", "level") == "high"  # ctx.config is live
    assert host.get("rec").instance.plugin_object.changes == [("low", "high")]
    assert await host.call("rec", "remember", key="k", value=[1]) == [1]
    assert await host.call("rec", "write_note", text="hi") == "hi"
    assert (services.home / "data" / "rec" / "note.txt").read_text() == "hi"
    assert await host.call("rec", "read", path=str(shared / "in.txt")) == "shared data"
    with pytest.raises(PermissionDenied):
        await host.call("rec", "read", path="/etc/hostname")
    assert services.permissions.audit.query(plugin="rec", decision="deny")


async def test_a_plugin_that_never_writes_leaves_no_data_directory(setup) -> None:
    host, services, _ = setup
    report = await host.start()
    assert report["rec"].ok and not report["bad"].ok
    data = services.home / "data"
    # Neither the active plugin (it has not written yet) nor the refused one has a directory.
    assert not (data / "rec").exists() and not (data / "bad").exists()
    assert await host.call("rec", "write_note", text="hi") == "hi"
    assert sorted(p.name for p in data.iterdir()) == ["rec"]


async def test_plugin_refusal_of_a_config_change_rolls_it_back(setup) -> None:
    host, services, _ = setup
    await host.start()
    with pytest.raises(ConfigRejected, match="level 'forbidden' is not supported"):
        await services.config.set("rec", {"level": "forbidden"})
    assert await host.call("rec", "level") == "low"
    assert services.config.version("rec") == 0


async def test_invalid_permission_scope_refuses_the_plugin_with_a_clear_message(setup) -> None:
    host, services, _ = setup
    report = await host.start()
    outcome = report["bad"]
    assert not outcome.ok and host.get("bad").state is State.FAILED
    assert "absolute path" in str(outcome.error)
    assert services.permissions.grants("bad") == []


async def test_declared_permissions_are_granted_by_the_default_policy(setup) -> None:
    host, services, shared = setup
    await host.start()
    assert {str(s) for s in services.permissions.grants("rec")} == {
        f"fs:read:{shared}",
        "storage:rec",
    }


async def test_embedder_config_sits_between_manifest_defaults_and_operator_settings(
    tmp_path: Path,
) -> None:
    plugins = tmp_path / "plugins"
    make_plugin(plugins, "rec", [])
    host = PluginHost([plugins], home=tmp_path / "home", config={"rec": {"level": "high"}})
    services = PluginServices(tmp_path / "home", environ={})
    services.install(host)
    try:
        await host.start()
        assert await host.call("rec", "level") == "high"
        await services.config.set("rec", {"level": "low"})
        assert await host.call("rec", "level") == "low"
    finally:
        await host.aclose()
        await services.aclose()


async def test_settings_file_edit_reaches_the_running_plugin(tmp_path: Path) -> None:
    import asyncio
    import time

    plugins = tmp_path / "plugins"
    make_plugin(plugins, "rec", [])
    settings = tmp_path / "plughost.toml"
    settings.write_text('[plugins.rec.config]\nlevel = "high"\n')
    host = PluginHost([plugins], home=tmp_path / "home")
    services = PluginServices(tmp_path / "home", environ={}, settings_file=settings)
    services.install(host)
    try:
        await host.start()
        await services.start()
        assert await host.call("rec", "level") == "high"  # applied on activation
        deadline = time.monotonic() + 10
        while await host.call("rec", "level") != "low":  # repeat while the watcher arms
            assert time.monotonic() < deadline, "edit never applied"
            settings.write_text('[plugins.rec.config]\nlevel = "low"\n')
            await asyncio.sleep(0.1)
        assert host.get("rec").instance.plugin_object.changes[-1] == ("high", "low")
    finally:
        await host.aclose()
        await services.aclose()


EMITTER = """
from plughost.sdk import Plugin


class Emitter(Plugin):
    def announce(self, topic):
        return self.ctx.emit(topic, {"from": self.ctx.plugin_id})

    async def run(self, name):
        return await self.ctx.execute(name, {})
"""


async def test_events_and_commands_go_through_the_permission_checker(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    folder = plugins / "emitter"
    folder.mkdir(parents=True)
    (folder / "emitter.py").write_text(EMITTER)
    (folder / "plugin.toml").write_text(
        'id = "emitter"\nname = "Emitter"\nversion = "1.0.0"\nentry = "emitter:Emitter"\n'
        'permissions = ["events:emit:music.#"]\n'
    )
    host = PluginHost([plugins], home=tmp_path / "home")
    services = PluginServices(tmp_path / "home", environ={})
    services.install(host)
    received: list[str] = []
    host.bus.subscribe("#", lambda event: received.append(event.topic))
    host.commands.register("admin", "reset", lambda: "reset")
    try:
        await host.start()
        await host.call("emitter", "announce", topic="music.track.changed")  # declared: granted
        with pytest.raises(PermissionDenied, match=r"events:emit admin\.shutdown"):
            await host.call("emitter", "announce", topic="admin.shutdown")
        with pytest.raises(PermissionDenied, match=r"commands:execute admin\.reset"):
            await host.call("emitter", "run", name="admin.reset")
        services.permissions.grant("emitter", "commands:execute:admin.*")
        assert await host.call("emitter", "run", name="admin.reset") == "reset"
        assert "music.track.changed" in received and "admin.shutdown" not in received
        denials = services.permissions.audit.query(plugin="emitter", decision="deny")
        assert [(d.kind, d.target) for d in denials] == [
            ("events:emit", "admin.shutdown"),
            ("commands:execute", "admin.reset"),
        ]
    finally:
        await host.aclose()
        await services.aclose()
