"""Wasm plugins on a host with the real host services (PluginServices): permissions declared in
the manifest and granted by the policy are what the wasm host functions and WASI see."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plughost.errors import ConfigRejected, PermissionDenied
from plughost.host import PluginHost
from plughost.services.plugin_services import PluginServices

from . import wat_modules

EXAMPLE = Path(__file__).parents[3] / "examples" / "wasm-hello"


def _plugin(root: Path, plugin_id: str, wat: str, permissions: list[str], **extra: str) -> None:
    folder = root / plugin_id
    folder.mkdir()
    wat_modules.write(folder, "p", wat)
    lines = [
        f'id = "{plugin_id}"', f'name = "{plugin_id}"', 'version = "1.0.0"', 'runtime = "wasm"',
        'entry = "p.wat"', f"permissions = {json.dumps(permissions)}",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    (folder / "plugin.toml").write_text("\n".join(lines) + "\n")


@pytest.fixture
async def world(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copytree(EXAMPLE, plugins / "wasm-hello")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("shared-data")
    (tmp_path / "outside.txt").write_text("secret")
    _plugin(plugins, "files", wat_modules.WASI_FILES, [f"fs:read:{shared}"])
    _plugin(plugins, "kv", wat_modules.STORAGE_CONFIG, ["storage"])
    _plugin(plugins, "http", wat_modules.FORBIDDEN_HTTP, ["net:api.example.com"])
    _plugin(plugins, "guard", wat_modules.CONFIG_GUARD, [])
    host = PluginHost([plugins], home=tmp_path / "home")
    services = PluginServices(tmp_path / "home", environ={})
    services.install(host)
    report = await host.start()
    assert report.ok, str(report)
    yield host, services
    await host.aclose()
    await services.aclose()


async def test_declared_and_granted_emit_goes_out(world) -> None:
    host, _ = world
    seen = []
    host.bus.subscribe("hello.*", lambda ev: seen.append(ev.payload))
    assert await host.call("wasm-hello", "announce", who="Ada") == 1
    await host.bus.drain()
    assert seen == [{"who": "Ada"}]


async def test_granted_directory_is_the_only_filesystem_the_plugin_sees(world) -> None:
    host, _ = world
    assert await host.call("files", "run") == "shared-data"
    assert await host.call("files", "steal") == "denied"


async def test_storage_is_the_plugins_own_namespace(world) -> None:
    host, services = world
    assert await host.call("kv", "kv") == 42
    assert services.kv.get("kv", "k") == 42


async def test_undeclared_http_is_denied_and_audited(world) -> None:
    host, services = world
    with pytest.raises(PermissionDenied, match=r"evil\.example\.com"):
        await host.call("http", "run")
    denials = services.permissions.audit.query(plugin="http", decision="deny")
    assert any("evil.example.com" in str(row) for row in denials)


async def test_config_change_for_a_wasm_plugin_without_a_listener_is_accepted(world) -> None:
    host, services = world
    # "http" reaches an async service, so its calls go through instance.call (no local callable)
    assert host.get("http").instance.local_callable("run") is None
    await services.config.set("http", {"anything": 1})
    assert services.config.version("http") == 1


async def test_a_wasm_plugin_can_refuse_a_config_change(world) -> None:
    host, services = world
    assert host.get("guard").instance.local_callable("on_config_change") is None  # via call()
    with pytest.raises(ConfigRejected, match=r"this plugin takes no configuration"):
        await services.config.set("guard", {"x": 1})
    assert services.config.version("guard") == 0
