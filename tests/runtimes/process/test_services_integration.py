"""A process plugin with the real host services (PluginServices): the same grants, checked at
the process boundary and again by the services, with the same answers as in process."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plughost.errors import ConfigRejected, PermissionDenied
from plughost.host import PluginHost
from plughost.services.plugin_services import PluginServices

PLUGIN = """
from plughost.sdk import Plugin


class Recorder(Plugin):
    def remember(self, key, value):
        self.ctx.storage.set(key, value)
        return self.ctx.storage.get(key)

    def write_note(self, text):
        self.ctx.files.write_text("note.txt", text)
        return self.ctx.files.read_text("note.txt")

    def read(self, path):
        return self.ctx.files.read_text(path)

    def level(self):
        return self.ctx.config["level"]

    def on_config_change(self, old, new):
        if new.get("level") == "forbidden":
            raise ValueError("level 'forbidden' is not supported")
"""


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[PluginHost, PluginServices, Path]]:
    plugins = tmp_path / "plugins"
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("shared data")
    folder = plugins / "rec"
    folder.mkdir(parents=True)
    (folder / "recorder.py").write_text(PLUGIN)
    (folder / "plugin.toml").write_text(
        textwrap.dedent(f"""
        id = "rec"
        name = "Recorder"
        version = "1.0.0"
        runtime = "process"
        entry = "recorder:Recorder"
        permissions = ["fs:read:{shared}", "storage"]
        [config.schema]
        type = "object"
        [config.schema.properties.level]
        type = "string"
        enum = ["low", "high", "forbidden"]
        [config.defaults]
        level = "low"
    """)
    )
    host = PluginHost([plugins], home=tmp_path / "home", on_plugin_error="isolate")
    services = PluginServices(tmp_path / "home", environ={})
    services.install(host)
    yield host, services, shared
    await host.aclose()
    await services.aclose()


async def test_process_plugin_uses_config_storage_files_under_its_grants(setup) -> None:
    host, services, shared = setup
    report = await host.start()
    assert report["rec"].ok, report
    assert await host.call("rec", "level") == "low"
    assert await host.call("rec", "remember", key="k", value=[1]) == [1]
    assert await host.call("rec", "write_note", text="hi") == "hi"
    assert (services.home / "data" / "rec" / "note.txt").read_text() == "hi"
    assert await host.call("rec", "read", path=str(shared / "in.txt")) == "shared data"
    with pytest.raises(PermissionDenied):
        await host.call("rec", "read", path="/etc/hostname")
    assert services.permissions.audit.query(plugin="rec", decision="deny")


async def test_config_changes_reach_the_process_plugin_which_may_refuse_them(setup) -> None:
    host, services, _ = setup
    await host.start()
    await services.config.set("rec", {"level": "high"})
    assert await host.call("rec", "level") == "high"  # ctx.config stays live out of process
    with pytest.raises(ConfigRejected, match="level 'forbidden' is not supported"):
        await services.config.set("rec", {"level": "forbidden"})
    assert await host.call("rec", "level") == "high"
