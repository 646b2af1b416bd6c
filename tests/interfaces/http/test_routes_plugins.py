"""Arcade's /api/v1/plugins endpoints and the lifecycle additions, through the ASGI app."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plughost.settings import HostSettings
from tests.interfaces.http.conftest import Api, MakePackage, open_api

FAILING_CODE = """
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        raise RuntimeError("cannot reach the notification service")
"""


async def test_list_is_empty_on_a_fresh_home(api: Api) -> None:
    r = await api.client.get("/api/v1/plugins")
    assert r.status_code == 200
    assert r.json() == {"items": [], "next_cursor": None, "total": 0}


async def test_install_local_package_is_listed_with_arcade_fields(
    api: Api, make_package: MakePackage
) -> None:
    r = await api.install(make_package("notify-mail", "1.2.0", type="notify"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["plugin_id"] == body["pluginId"] == "notify-mail"
    assert body["version"] == "1.2.0"
    assert body["state"] == "active"
    assert body["message"] == "plugin installed successfully: notify-mail (v1.2.0)"
    listed = (await api.client.get("/api/v1/plugins")).json()
    assert listed["total"] == 1
    item = listed["items"][0]
    assert (item["id"], item["pluginType"], item["status"], item["enabled"]) == (
        "notify-mail", "notify", 1, True)
    detail = (await api.client.get("/api/v1/plugins/notify-mail")).json()
    assert detail["manifest"]["id"] == "notify-mail"
    assert detail["versions"][0]["version"] == "1.2.0"
    assert detail["path"] and Path(detail["path"]).is_dir()


async def test_list_filters_by_type_status_state_and_text_and_pages(
    api: Api, make_package: MakePackage
) -> None:
    for pid, kind in (("alpha", "notify"), ("bravo", "notify"), ("charlie", "demo")):
        assert (await api.install(make_package(pid, type=kind))).status_code == 201
    assert (await api.client.post("/api/v1/plugins/bravo/disable")).status_code == 200

    async def ids(query: str) -> list[str]:
        r = await api.client.get(f"/api/v1/plugins?{query}")
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert await ids("pluginType=notify") == ["alpha", "bravo"]
    assert await ids("status=0") == ["bravo"]
    assert await ids("status=1") == ["alpha", "charlie"]
    assert await ids("state=disabled") == ["bravo"]
    assert await ids("state=active&pluginType=demo") == ["charlie"]
    assert await ids("q=CHAR") == ["charlie"]
    first = (await api.client.get("/api/v1/plugins?limit=1")).json()
    page = (await api.client.get("/api/v1/plugins", params={
        "limit": 1, "cursor": first["next_cursor"]})).json()
    assert [p["id"] for p in page["items"]] == ["bravo"] and page["total"] == 3
    last = (await api.client.get("/api/v1/plugins", params={
        "limit": 5, "cursor": page["next_cursor"]})).json()
    assert ([p["id"] for p in last["items"]], last["next_cursor"]) == (["charlie"], None)
    first = (await api.client.get("/api/v1/plugins?status=1&limit=1")).json()
    page = (await api.client.get("/api/v1/plugins", params={
        "status": 1, "limit": 1, "cursor": first["next_cursor"]})).json()
    assert ([p["id"] for p in page["items"]], page["total"]) == (["charlie"], 2)
    bad = await api.client.get("/api/v1/plugins", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "request.invalid"


@pytest.fixture
async def dev_api(settings: HostSettings) -> AsyncIterator[Api]:
    """The API of a home with the plugin ``devplug`` in a development folder."""
    dev = settings.plugins_dir / "devplug"
    dev.mkdir(parents=True)
    (dev / "plugin.toml").write_text('id = "devplug"\nversion = "1.0.0"\nentry = "m:P"\n')
    (dev / "m.py").write_text("from plughost.sdk import Plugin\n\n\nclass P(Plugin):\n"
                              "    pass\n")
    async for value in open_api(settings):
        yield value


async def test_counts_tally_each_filter_menu_and_the_list_takes_the_same_filters(
    dev_api: Api, make_package: MakePackage
) -> None:
    # a plugin of a development folder is counted and listed beside the installed ones
    api = dev_api
    for pid, kind in (("alpha", "notify"), ("bravo", "notify"), ("charlie", "demo")):
        assert (await api.install(make_package(pid, type=kind))).status_code == 201
    assert (await api.client.post("/api/v1/plugins/bravo/disable")).status_code == 200

    async def counts(**query: Any) -> dict[str, Any]:
        r = await api.client.get("/api/v1/plugin-counts", params=query)
        assert r.status_code == 200, r.text
        return r.json()

    async def ids(**query: Any) -> list[str]:
        r = await api.client.get("/api/v1/plugins", params=query)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert await counts() == {"total": 4, "by": {
        "type": {"notify": 2, "demo": 1, "": 1},
        "state": {"active": 3, "disabled": 1},
        "runtime": {"python": 4},
        "source": {"local": 3, "directory": 1}}}
    notify = await counts(pluginType="notify")
    assert notify["total"] == 2 == len(await ids(pluginType="notify"))
    assert notify["by"]["type"] == {"notify": 2, "demo": 1, "": 1}  # not its own filter
    assert notify["by"]["state"] == {"active": 1, "disabled": 1}
    assert notify["by"]["source"] == {"local": 2}
    # each count is what the list finds with that value added
    for facet, param in (("state", "state"), ("source", "source"), ("runtime", "runtime")):
        for value, n in notify["by"][facet].items():
            assert len(await ids(pluginType="notify", **{param: value})) == n
    assert await ids(source="directory") == ["devplug"]
    assert await ids(runtime="python", source="local", q="a") == ["alpha", "bravo",
                                                                  "charlie"]
    assert (await counts(source="directory", q="DEV"))["total"] == 1
    assert (await counts(runtime="wasm"))["total"] == 0
    bad = await api.client.get("/api/v1/plugin-counts", params={"state": "sleeping"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "request.invalid"
    assert "state" in bad.text


async def test_failed_activation_shows_status_2_and_names_the_error(
    api: Api, make_package: MakePackage
) -> None:
    r = await api.install(make_package("flaky", code=FAILING_CODE), activate="false")
    assert r.status_code == 201, r.text
    r = await api.client.post("/api/v1/plugins/flaky/activate")
    assert r.status_code == 422
    assert "cannot reach the notification service" in r.json()["error"]["message"]
    failed = (await api.client.get("/api/v1/plugins?status=2")).json()["items"]
    assert [p["id"] for p in failed] == ["flaky"]
    assert failed[0]["state"] == "failed"


async def test_install_of_an_installed_plugin_is_409_and_changes_nothing(
    api: Api, make_package: MakePackage
) -> None:
    package = make_package("solo")
    assert (await api.install(package)).status_code == 201
    before = (await api.client.get("/api/v1/plugins/solo")).json()
    r = await api.install(package)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "install.exists"
    after = (await api.client.get("/api/v1/plugins/solo")).json()
    assert after["versions"] == before["versions"]


async def test_install_requires_source_and_file(api: Api) -> None:
    r = await api.client.post("/api/v1/plugins/install", data={"nothing": "here"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "request.invalid"
    assert "source" in r.json()["error"]["message"]
    r = await api.client.post("/api/v1/plugins/install", data={"source": "local"})
    assert r.status_code == 400
    assert "file" in r.json()["error"]["message"]
    r = await api.client.post("/api/v1/plugins/install", data={"source": "ftp"})
    assert r.status_code == 400
    assert "unknown source 'ftp'" in r.json()["error"]["message"]
    r = await api.client.post("/api/v1/plugins/install", content=b"raw",
                              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400
    assert "multipart/form-data" in r.json()["error"]["message"]


async def test_install_from_market_says_no_marketplace_is_configured(api: Api) -> None:
    r = await api.client.post("/api/v1/plugins/install",
                              data={"source": "market", "marketId": "plugin-notify-slack"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "marketplace.unavailable"
    assert "no marketplace is configured" in error["message"]
    assert error["details"]["marketId"] == "plugin-notify-slack"


async def test_install_single_file_with_arcade_manifest_part(api: Api, tmp_path: Path) -> None:
    source = tmp_path / "plugin.py"
    source.write_text("from plughost.sdk import Plugin\n\nclass Main(Plugin):\n    pass\n")
    manifest = {"name": "my-plugin", "version": "1.0.0", "pluginType": "notify",
                "entryPoint": "plugin:Main", "description": "My custom plugin"}
    with source.open("rb") as fh:
        r = await api.client.post(
            "/api/v1/plugins/install",
            data={"source": "local", "manifest": json.dumps(manifest)},
            files={"file": ("plugin.py", fh, "text/x-python")})
    assert r.status_code == 201, r.text
    detail = (await api.client.get("/api/v1/plugins/my-plugin")).json()
    assert (detail["type"], detail["state"], detail["description"]) == (
        "notify", "active", "My custom plugin")


async def test_manifest_part_that_disagrees_with_the_package_is_refused(
    api: Api, make_package: MakePackage
) -> None:
    package = make_package("agree")
    manifest = {"name": "agree", "version": "9.9.9", "entryPoint": "main:Main"}
    r = await api.install(package, manifest=json.dumps(manifest))
    assert r.status_code == 400
    assert "9.9.9" in r.json()["error"]["message"]
    assert (await api.client.get("/api/v1/plugins")).json()["total"] == 0


async def test_invalid_manifest_part_lists_its_problems(
    api: Api, make_package: MakePackage
) -> None:
    r = await api.install(make_package("bad"), manifest=json.dumps({"name": "bad"}))
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "manifest.invalid"
    assert {p["path"] for p in error["details"]["problems"]} >= {"version", "entry"}
    r = await api.install(make_package("bad2"), manifest="{not json")
    assert r.status_code == 400
    assert "not JSON" in r.json()["error"]["message"]


async def test_install_checks_the_given_sha256(api: Api, make_package: MakePackage) -> None:
    package = make_package("checked")
    r = await api.install(package, sha256="0" * 64)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "integrity.checksum"
    good = hashlib.sha256(package.read_bytes()).hexdigest()
    assert (await api.install(package, sha256=good)).status_code == 201


async def test_update_with_put_then_versions_and_rollback(
    api: Api, make_package: MakePackage
) -> None:
    assert (await api.install(make_package("evolving", "1.0.0"))).status_code == 201
    v2 = make_package("evolving", "2.0.0")
    with v2.open("rb") as fh:
        r = await api.client.put("/api/v1/plugins/evolving", data={"source": "local"},
                                 files={"file": (v2.name, fh, "application/zip")})
    assert r.status_code == 200, r.text
    assert (r.json()["from_version"], r.json()["to_version"]) == ("1.0.0", "2.0.0")
    versions = (await api.client.get("/api/v1/plugins/evolving/versions")).json()["items"]
    assert [(v["version"], v["current"]) for v in versions] == [("2.0.0", True),
                                                                ("1.0.0", False)]
    r = await api.client.post("/api/v1/plugins/evolving/rollback", json={"to": "1.0.0"})
    assert r.status_code == 200, r.text
    assert r.json()["to_version"] == "1.0.0"
    assert (await api.client.get("/api/v1/plugins/evolving")).json()["version"] == "1.0.0"
    r = await api.client.post("/api/v1/plugins/evolving/rollback", json={"to": "7.0.0"})
    assert r.status_code == 404


async def test_update_of_an_unknown_plugin_is_404(api: Api, make_package: MakePackage) -> None:
    package = make_package("ghost")
    with package.open("rb") as fh:
        r = await api.client.put("/api/v1/plugins/ghost", data={"source": "local"},
                                 files={"file": (package.name, fh, "application/zip")})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "plugin.not_found"


async def test_enable_disable_activate_deactivate(api: Api, make_package: MakePackage) -> None:
    assert (await api.install(make_package("switch"))).status_code == 201
    r = await api.client.post("/api/v1/plugins/switch/disable")
    assert (r.status_code, r.json()["state"], r.json()["status"]) == (200, "disabled", 0)
    r = await api.client.post("/api/v1/plugins/switch/activate")
    assert r.status_code == 409
    assert "enable it first" in r.json()["error"]["message"]
    r = await api.client.post("/api/v1/plugins/switch/enable")
    assert (r.status_code, r.json()["state"], r.json()["status"]) == (200, "active", 1)
    r = await api.client.post("/api/v1/plugins/switch/deactivate")
    assert (r.status_code, r.json()["state"], r.json()["enabled"]) == (200, "deactivated", True)
    r = await api.client.post("/api/v1/plugins/switch/activate")
    assert (r.status_code, r.json()["state"]) == (200, "active")
    actions = [e["action"] for e in (await api.client.get("/api/v1/audit")).json()["items"]]
    assert actions[:2] == ["plugin.enable", "plugin.disable"]


async def test_uninstall_removes_the_plugin(api: Api, make_package: MakePackage) -> None:
    assert (await api.install(make_package("gone"))).status_code == 201
    r = await api.client.delete("/api/v1/plugins/gone")
    assert r.status_code == 200
    assert r.json()["removed"] == ["gone"]
    assert (await api.client.get("/api/v1/plugins/gone")).status_code == 404
    r = await api.client.delete("/api/v1/plugins/gone")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "plugin.not_found"


async def test_uninstall_refused_while_required_unless_cascade(
    api: Api, make_package: MakePackage
) -> None:
    assert (await api.install(make_package("base"))).status_code == 201
    assert (await api.install(make_package("top", dependencies={"base": "^1.0"}))
            ).status_code == 201
    r = await api.client.delete("/api/v1/plugins/base")
    assert r.status_code == 409
    assert "top" in r.json()["error"]["message"]
    r = await api.client.delete("/api/v1/plugins/base?cascade=true")
    assert r.status_code == 200
    assert r.json()["removed"] == ["top", "base"]


async def test_metrics_have_the_seed_fields_and_counters(
    api: Api, make_package: MakePackage
) -> None:
    assert (await api.install(make_package("counted", type="notify",
                                           description="Counts"))).status_code == 201
    await api.service.host.call("counted", "ping", value=1)
    r = await api.client.get("/api/v1/plugins/metrics")
    assert r.status_code == 200
    [entry] = r.json()
    assert {k: entry[k] for k in ("name", "type", "version", "description", "state")} == {
        "name": "Counted", "type": "notify", "version": "1.0.0", "description": "Counts",
        "state": "active"}
    assert Path(entry["path"]).is_dir()
    assert (entry["calls"], entry["errors"]) == (1, 0)



async def test_metrics_of_one_plugin_are_its_entry_of_the_list_read_alone(
    api: Api, make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for pid in ("first", "second"):
        assert (await api.install(make_package(pid))).status_code == 201
    await api.service.host.call("second", "ping", value=1)
    every = (await api.client.get("/api/v1/plugins/metrics")).json()

    async def listed(*args: object, **kwargs: object) -> None:
        raise AssertionError("read every installed plugin for one")

    monkeypatch.setattr(api.service, "list_plugins", listed)
    r = await api.client.get("/api/v1/plugins/metrics", params={"plugin_id": "second"})
    assert r.status_code == 200
    assert r.json() == [entry for entry in every if entry["id"] == "second"]
    assert r.json()[0]["calls"] == 1
    r = await api.client.get("/api/v1/plugins/metrics", params={"plugin_id": "nobody"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "plugin.not_found"

COUNTED_PLUGIN = """
from plughost.sdk import Plugin, command, hookimpl, on

class Main(Plugin):
    @command("greet")
    def greet(self, name):
        return f"hi {name}"

    @command("boom")
    async def boom(self):
        raise ValueError("no")

    @hookimpl("counted.format")
    def format(self, text):
        return text.upper()

    @on("counted.tick")
    def tick(self, event):
        pass
"""


async def test_metrics_count_every_command_hook_and_event_of_an_in_process_plugin(
    api: Api, make_package: MakePackage
) -> None:
    assert (await api.install(make_package("counted", code=COUNTED_PLUGIN))).status_code == 201
    host = api.service.host
    assert await host.commands.execute("counted.greet", {"name": "Ada"}) == "hi Ada"
    assert await host.commands.execute("counted.greet", {"name": "Bob"}) == "hi Bob"
    with pytest.raises(Exception, match="no"):
        await host.commands.execute("counted.boom")
    host.hooks.add_spec(lambda text: None, name="counted.format")
    assert host.hooks.call("counted.format", text="a") == ["A"]
    host.bus.emit("counted.tick", {})
    r = await api.client.get("/api/v1/plugins/metrics")
    [entry] = r.json()
    assert {k: entry[k] for k in ("runtime", "calls", "commands", "hooks", "events",
                                  "direct_calls", "errors")} == {
        "runtime": "python", "calls": 5, "commands": 3, "hooks": 1, "events": 1,
        "direct_calls": 0, "errors": 1}


async def test_validate_manifest_accepts_the_arcade_example_and_lists_problems(
    api: Api,
) -> None:
    example = json.loads(
        (Path(__file__).parents[3] / "examples" / "notify-slack" / "manifest.json").read_text())
    r = await api.client.post("/api/v1/plugins/validate-manifest", json=example)
    assert r.status_code == 200
    assert r.json()["valid"] is True
    assert r.json()["manifest"]["id"] == "notify-slack"
    r = await api.client.post("/api/v1/plugins/validate-manifest",
                              json={"name": "Not An Id!", "version": "one"})
    body = r.json()
    assert (r.status_code, body["valid"]) == (200, False)
    assert {p["path"] for p in body["problems"]} >= {"version", "entry"}
    r = await api.client.post("/api/v1/plugins/validate-manifest", json=["not", "an", "object"])
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "request.invalid"


async def test_plain_zip_as_in_the_seed_is_repacked_and_installed(
    api: Api, tmp_path: Path
) -> None:
    import zipfile

    package = tmp_path / "my-notify-plugin.zip"
    with zipfile.ZipFile(package, "w") as zf:  # seed 003: zip plugin.so manifest.json
        zf.writestr("manifest.json", json.dumps({
            "name": "my-notify-plugin", "version": "1.0.0", "pluginType": "notify",
            "entryPoint": "plugin:Main", "author": "Your Name"}))
        zf.writestr("plugin.py", "from plughost.sdk import Plugin\n\nclass Main(Plugin):\n"
                                 "    pass\n")
    r = await api.install(package)
    assert r.status_code == 201, r.text
    assert (r.json()["plugin_id"], r.json()["state"]) == ("my-notify-plugin", "active")


async def test_zip_with_a_traversal_entry_is_refused_and_nothing_installed(
    api: Api, tmp_path: Path
) -> None:
    import zipfile

    package = tmp_path / "evil.zip"
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"name": "evil", "version": "1.0.0",
                                                 "entryPoint": "plugin:Main"}))
        zf.writestr("../escape.py", "print('owned')")
    r = await api.install(package)
    assert r.status_code == 422
    assert r.json()["error"]["code"].startswith("archive.")
    assert (await api.client.get("/api/v1/plugins")).json()["total"] == 0
    assert not (tmp_path / "escape.py").exists()


HEALTH_CODE = """
from plughost.sdk import Plugin, Health

class Main(Plugin):
    def health(self):
        return Health(False, "queue backlog 500", {"backlog": 500})
"""


async def test_seed_002_info_health_start_stop(api: Api, make_package: MakePackage) -> None:
    assert (await api.install(make_package("svc", code=HEALTH_CODE))).status_code == 201
    info = (await api.client.get("/api/v1/plugins/svc/info")).json()
    assert (info["id"], info["state"]) == ("svc", "active")
    health = (await api.client.get("/api/v1/plugins/svc/health")).json()
    assert health == {"plugin_id": "svc", "healthy": False, "state": "active",
                      "detail": "queue backlog 500", "data": {"backlog": 500}}
    r = await api.client.post("/api/v1/plugins/svc/stop")
    assert (r.status_code, r.json()["state"]) == (200, "deactivated")
    health = (await api.client.get("/api/v1/plugins/svc/health")).json()
    assert (health["healthy"], health["detail"]) == (False, "not active (deactivated)")
    r = await api.client.post("/api/v1/plugins/svc/start")
    assert (r.status_code, r.json()["state"]) == (200, "active")
    assert (await api.client.get("/api/v1/plugins/nope/health")).status_code == 404


# -- every archive in an upload goes through the archive limits --------------------------------

async def _upload_peak(api: Api, path: Path, manifest: str | None) -> tuple[Any, int]:
    """POST ``path`` (with a ``manifest`` part); return the response and the peak memory
    allocated while the server handled it."""
    import tracemalloc

    data = {"source": "local"} | ({"manifest": manifest} if manifest is not None else {})
    body = path.read_bytes()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        r = await api.client.post("/api/v1/plugins/install", data=data,
                                  files={"file": (path.name, body, "application/zip")})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return r, peak


ARCADE = json.dumps({"name": "bomb", "version": "1.0.0", "entryPoint": "main:Main"})
MiB = 1 << 20


async def test_a_manifest_bomb_beside_a_manifest_part_is_refused_in_bounded_memory(
    api: Api, tmp_path: Path
) -> None:
    from tests.security.zipcraft import Raw, bomb, build

    upload = tmp_path / "bomb.zip"   # 64 KiB on the wire, a 64 MiB manifest.json inside
    upload.write_bytes(build([bomb("manifest.json", 64 * MiB), Raw("main.py", b"x = 1\n")]))
    r, peak = await _upload_peak(api, upload, ARCADE)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "archive.too_large" and error["details"]["entry"] == "manifest.json"
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while refusing a 64 KiB upload"
    assert (await api.client.get("/api/v1/plugins")).json()["total"] == 0


async def test_a_bomb_entry_in_a_plain_zip_with_a_manifest_part_stops_at_the_ratio(
    api: Api, tmp_path: Path
) -> None:
    from tests.security.zipcraft import Raw, bomb, build

    upload = tmp_path / "bomb.zip"
    upload.write_bytes(build([Raw("main.py", b"x = 1\n"), bomb("data.bin", 64 * MiB)]))
    r, peak = await _upload_peak(api, upload, ARCADE)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "archive.ratio"
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert not list((api.service.settings.staging_dir).rglob("data.bin"))


async def test_a_manifest_part_nested_too_deeply_is_a_400(api: Api, tmp_path: Path) -> None:
    upload = tmp_path / "plugin.py"
    upload.write_text("x = 1\n")
    r, _ = await _upload_peak(api, upload, "[" * 50_000)
    assert r.status_code == 400, r.text
    assert "nested too deeply" in r.json()["error"]["message"]


def test_hot_bodies_mean_the_same_with_either_json_codec() -> None:
    """The list and detail bodies are encoded by the wire codec's rule: orjson (the ``fast``
    extra) or the standard library, the same values; what is not plain JSON (a datetime in a
    plugin's stats) is written as its string, as before."""
    from datetime import UTC, datetime

    from plughost.core import wire
    from plughost.interfaces.http._routes_plugins import json_bytes

    data = {"items": [{"id": "é-1", "n": 2**40, "x": 1.5, "e": None, "w": []}],
            "next_cursor": None, "total": 1}
    fast = json_bytes(data)
    assert wire.fast_json()  # orjson is a test dependency: the fast codec is the one used
    wire.disable_fast_json()
    try:
        assert json.loads(fast) == json.loads(wire.dumps(data)) == data
    finally:
        wire.enable_fast_json()
    at = datetime(2026, 12, 3, tzinfo=UTC)
    assert json.loads(json_bytes({"stats": {"since": at}})) == {"stats": {"since": str(at)}}


@pytest.mark.parametrize("settings", ["unless-allowlisted"], indirect=True)
async def test_update_honours_allow_unsigned_as_install_does(
    api: Api, make_package: MakePackage
) -> None:
    """One rule for install and update: an unsigned package is refused under a policy that
    requires signatures, unless the request says ``allow_unsigned``; the audit entry says so
    and the plugin resource shows it unsigned."""
    refused = await api.install(make_package("own", "1.0.0"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "signature.missing"
    assert (await api.install(make_package("own", "1.0.0"),
                              allow_unsigned="true")).status_code == 201

    async def put(version: str, **fields: str) -> Any:
        package = make_package("own", version)
        with package.open("rb") as fh:
            return await api.client.put("/api/v1/plugins/own",
                                        data={"source": "local", **fields},
                                        files={"file": (package.name, fh, "application/zip")})

    r = await put("1.1.0")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "signature.missing"
    assert "--allow-unsigned" in r.json()["error"]["hint"]
    r = await put("1.1.0", allow_unsigned="true")
    assert r.status_code == 200, r.text
    assert (r.json()["from_version"], r.json()["to_version"]) == ("1.0.0", "1.1.0")
    detail = (await api.client.get("/api/v1/plugins/own")).json()
    assert (detail["version"], detail["signed"]) == ("1.1.0", False)
    audit = (await api.client.get("/api/v1/audit?plugin_id=own")).json()["items"]
    update = next(e for e in audit if e["action"] == "plugin.update" and e["outcome"] == "ok")
    assert update["details"]["allow_unsigned"] is True
    assert update["details"]["signed"] is False


async def test_the_plugin_resource_has_one_shape_from_list_detail_and_every_action(
    api: Api, make_package: MakePackage
) -> None:
    """The same fields, and the real signature status (an unsigned package here: ``false``,
    never ``null``), from the list, the detail and each action."""
    assert (await api.install(make_package("shape"))).status_code == 201
    shapes = {"list": (await api.client.get("/api/v1/plugins")).json()["items"][0],
              "detail": (await api.client.get("/api/v1/plugins/shape")).json()}
    for action in ("disable", "enable", "deactivate", "activate", "stop", "start"):
        r = await api.client.post(f"/api/v1/plugins/shape/{action}")
        assert r.status_code == 200, (action, r.text)
        shapes[action] = r.json()
    for name, item in shapes.items():
        assert set(item) >= set(shapes["list"]), (name, set(shapes["list"]) - set(item))
        assert item["signed"] is False, name


async def test_metrics_pages_are_the_list_cut_with_the_next_page_in_the_link_header(
    api: Api, make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for pid in ("m-a", "m-b", "m-c"):
        assert (await api.install(make_package(pid))).status_code == 201
    await api.service.host.call("m-b", "ping", value=1)
    every = (await api.client.get("/api/v1/plugins/metrics")).json()
    assert [e["id"] for e in every] == ["m-a", "m-b", "m-c"]

    host = api.service.host
    asked: list[str] = []
    counted = host.metrics

    def metrics(plugin_id: str) -> Any:
        asked.append(plugin_id)
        return counted(plugin_id)

    monkeypatch.setattr(host, "metrics", metrics)
    pages: list[list[dict[str, Any]]] = []
    url: str | None = "/api/v1/plugins/metrics?limit=2"
    while url is not None:
        r = await api.client.get(url)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        url = r.links.get("next", {}).get("url")
    assert [[e["id"] for e in page] for page in pages] == [["m-a", "m-b"], ["m-c"]]
    assert [e for page in pages for e in page] == every  # the same entries, cut
    assert pages[0][1]["calls"] == 1
    assert sorted(asked) == ["m-a", "m-b", "m-c"]  # each page counted its own plugins only

    r = await api.client.get("/api/v1/plugins/metrics", params={"cursor": "abc"})
    assert r.status_code == 400 and "limit" in r.json()["error"]["message"]
    r = await api.client.get("/api/v1/plugins/metrics", params={"limit": 0})
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
