"""Development plugins through the API: enable, disable and hot reload without a restart, with
an audit entry per reload; a broken reload keeps the running version and says why."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plughost.settings import HostSettings
from tests.interfaces.http.conftest import Api, open_api

CODE = """
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        self.n = getattr(self, "n", 0)
        ctx.commands.register("ping", self.ping)

    def ping(self):
        self.n += 1
        return ["{tag}", self.n]

    def export_state(self):
        return {{"n": self.n}}

    def import_state(self, state, from_version):
        self.n = state["n"]
"""


def write(folder: Path, version: str, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text(
        f'id = "devplug"\nversion = "{version}"\nentry = "main:Main"\n')
    (folder / "main.py").write_text(CODE.format(tag=tag))


def watched(tmp_path: Path) -> tuple[HostSettings, Path]:
    """Settings of a server that watches its plugin folders, with devplug 1.0.0 in one."""
    settings = HostSettings(home=tmp_path / "home", require_signature="never", watch=True,
                            reload_debounce=0.05)
    folder = settings.plugins_dir / "devplug"
    write(folder, "1.0.0", "v1")
    return settings, folder


@pytest.fixture
def settings(tmp_path: Path) -> HostSettings:
    settings = HostSettings(home=tmp_path / "home", require_signature="never")
    write(settings.plugins_dir / "devplug", "1.0.0", "v1")
    return settings


async def test_development_plugin_is_reloaded_enabled_and_disabled_through_the_api(
        api: Api, settings: HostSettings) -> None:
    folder = settings.plugins_dir / "devplug"
    ping = "/api/v1/commands/devplug.ping"
    assert (await api.client.post(ping)).json()["result"] == ["v1", 1]
    write(folder, "1.1.0", "v2")
    r = await api.client.post("/api/v1/plugins/devplug/reload")
    assert r.status_code == 200, r.text
    assert (r.json()["from_version"], r.json()["to_version"]) == ("1.0.0", "1.1.0")
    assert (await api.client.post(ping)).json()["result"] == ["v2", 2]
    (folder / "main.py").write_text("def broken(:\n")
    r = await api.client.post("/api/v1/plugins/devplug/reload")
    assert r.status_code >= 400, r.text
    assert "devplug" in r.text and "SyntaxError" in r.text
    assert (await api.client.post(ping)).json()["result"] == ["v2", 3]
    r = await api.client.post("/api/v1/plugins/devplug/disable")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "disabled"
    assert (await api.client.post(ping)).status_code == 404
    write(folder, "1.1.0", "v2")
    r = await api.client.post("/api/v1/plugins/devplug/enable")
    assert r.status_code == 200 and r.json()["state"] == "active", r.text
    audit = (await api.client.get("/api/v1/audit",
                                  params={"plugin_id": "devplug"})).json()["items"]
    actions = [(e["action"], e["outcome"]) for e in audit]
    assert ("plugin.reload", "ok") in actions and ("plugin.reload", "error") in actions
    assert ("plugin.disable", "ok") in actions and ("plugin.enable", "ok") in actions
    missing = await api.client.post("/api/v1/plugins/nobody/reload")
    assert missing.status_code == 404


async def test_a_watched_development_plugin_rolls_back_to_a_kept_build(tmp_path: Path) -> None:
    settings, folder = watched(tmp_path)
    apis = open_api(settings)
    api = await anext(apis)
    try:
        ping = "/api/v1/commands/devplug.ping"
        assert (await api.client.post(ping)).json()["result"] == ["v1", 1]
        write(folder, "1.1.0", "v2")
        r = await api.client.post("/api/v1/plugins/devplug/reload")
        assert r.status_code == 200, r.text
        assert (await api.client.post(ping)).json()["result"] == ["v2", 2]
        r = await api.client.post("/api/v1/plugins/devplug/rollback",
                                  json={"build": "previous"})
        assert r.status_code == 200, r.text
        assert (r.json()["from_version"], r.json()["to_version"]) == ("1.1.0", "1.0.0")
        assert (await api.client.post(ping)).json()["result"] == ["v1", 3]
        r = await api.client.post("/api/v1/plugins/devplug/rollback", json={"build": "9.9.9"})
        assert r.status_code == 400 and "reload.no_build" in r.text
    finally:
        await apis.aclose()



async def reload_audit(api: Api, count: int) -> list[tuple[str, str]]:
    """The ``(actor, outcome)`` of the plugin's reload audit entries, newest first, once there
    are ``count`` of them (each is written by a task after the reload returns)."""
    for _ in range(250):
        r = await api.client.get("/api/v1/audit", params={"plugin_id": "devplug"},
                                 headers=api.auth("admin"))
        assert r.status_code == 200, r.text
        found = [(e["actor"], e["outcome"]) for e in r.json()["items"]
                 if e["action"] == "plugin.reload"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    return found


async def test_a_reload_asked_for_through_the_api_is_audited_under_the_caller(
        tmp_path: Path) -> None:
    """A reload or a build rollback through the API (done or refused) is audited under the
    token that asked, not as the file watcher's."""
    # watched (so builds are kept), but with a debounce the test never reaches: only the API
    # reloads here
    settings = HostSettings(home=tmp_path / "home", require_signature="never", watch=True,
                            reload_debounce=60)
    folder = settings.plugins_dir / "devplug"
    write(folder, "1.0.0", "v1")
    apis = open_api(settings)
    api = await anext(apis)
    try:
        operator = api.auth("operator")
        write(folder, "1.1.0", "v2")
        r = await api.client.post("/api/v1/plugins/devplug/reload", headers=operator)
        assert r.status_code == 200, r.text
        (folder / "main.py").write_text("def broken(:\n")
        r = await api.client.post("/api/v1/plugins/devplug/reload", headers=operator)
        assert r.status_code == 422 and "SyntaxError" in r.text, r.text
        r = await api.client.post("/api/v1/plugins/devplug/rollback",
                                  json={"build": "previous"}, headers=api.auth("admin"))
        assert r.status_code == 200, r.text
        assert await reload_audit(api, 3) == [
            ("token:test-admin", "ok"), ("token:test-operator", "error"),
            ("token:test-operator", "ok")]
    finally:
        await apis.aclose()


async def test_a_reload_the_file_watcher_makes_is_audited_as_watch(tmp_path: Path) -> None:
    settings, folder = watched(tmp_path)
    apis = open_api(settings)
    api = await anext(apis)
    try:
        api.auth("admin")
        write(folder, "1.1.0", "v2")  # a save: the watcher reloads the plugin
        assert await reload_audit(api, 1) == [("watch", "ok")]
        r = await api.client.post("/api/v1/commands/devplug.ping", headers=api.auth("operator"))
        assert r.json()["result"] == ["v2", 1], r.text
    finally:
        await apis.aclose()


async def test_a_reload_whose_module_raises_names_the_file_and_line(
        api: Api, settings: HostSettings) -> None:
    folder = settings.plugins_dir / "devplug"
    (folder / "main.py").write_text("import os\n\nraise RuntimeError('no config yet')\n")
    r = await api.client.post("/api/v1/plugins/devplug/reload")
    assert r.status_code >= 400, r.text
    assert "no config yet" in r.text and "main.py:3" in r.text, r.text
    assert "see the cause below" not in r.text
    ping = await api.client.post("/api/v1/commands/devplug.ping")
    assert ping.json()["result"] == ["v1", 1], ping.text
