"""The Arcade-compatible API as an Arcade client uses it: the example manifest installs as
written (its required ``webhook_url`` has no default) and the first ``PUT …/config`` works;
plugin responses carry the Arcade names beside plughost's own; ``validate-manifest`` says
what install would refuse."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

from tests.core.test_manifest import ARCADE_SEED
from tests.interfaces.http.conftest import Api

#: The example manifest of the Arcade plugin design, as written (only ``entryPoint`` names a
#: Python class: Go shared objects cannot be loaded by any host but a Go one; and
#: ``minVersion`` is this plughost's version, see ``test_validate_reports_min_version``).
SEED_MANIFEST: dict[str, Any] = {
    **ARCADE_SEED,
    "entryPoint": "slack:Main",
    "minVersion": "0.1.0",
    "paramsSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
}

CODE = """
from plughost.sdk import Plugin

class Main(Plugin):
    def activate(self, ctx):
        self.url = ctx.config["webhook_url"]

    def where(self):
        return self.url
"""


def _zip(tmp_path: Path, manifest: dict[str, Any], name: str = "slack.zip") -> Path:
    package = tmp_path / name
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("slack.py", CODE)
    return package


async def test_the_example_manifest_installs_into_needs_config_and_runs_once_configured(
        api: Api, tmp_path: Path) -> None:
    r = await api.install(_zip(tmp_path, SEED_MANIFEST))
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "needs-config"
    item = (await api.client.get("/api/v1/plugins")).json()["items"][0]
    assert (item["pluginId"], item["pluginType"], item["isEnabled"], item["isBuiltin"]) == (
        "slack-notify", "notify", 1, 0)
    assert item["checksum"] == item["sha256"] and len(item["checksum"]) == 64
    assert item["installTime"] == item["installed_at"] and item["updateTime"]
    r = await api.client.put("/api/v1/plugins/slack-notify/config",
                             json={"values": {"webhook_url": "https://hooks.example/x"}})
    assert r.status_code == 200, r.text
    r = await api.client.post("/api/v1/plugins/slack-notify/enable")  # as an Arcade client does
    assert (r.status_code, r.json()["state"]) == (200, "active"), r.text
    detail = (await api.client.get("/api/v1/plugins/slack-notify")).json()
    assert detail["state"] == "active"
    assert detail["entryPoint"] == "slack:Main"
    assert detail["configSchema"]["required"] == ["webhook_url"]
    assert detail["defaultConfig"] == {"channel": "#general"}
    assert detail["paramsSchema"] == SEED_MANIFEST["paramsSchema"]
    assert detail["s3Path"] == "plugins/slack-notify/1.0.0/slack-notify_1.0.0.zip"
    assert (detail["icon"], detail["repository"]) == (SEED_MANIFEST["icon"],
                                                     SEED_MANIFEST["repository"])
    assert await api.service.host.call("slack-notify", "where") == "https://hooks.example/x"


async def test_the_first_config_put_after_a_refused_install_is_not_a_conflict(
        api: Api, tmp_path: Path) -> None:
    broken = copy.deepcopy(SEED_MANIFEST)
    broken["entryPoint"] = "missing:Main"  # activation fails: the install is undone
    r = await api.install(_zip(tmp_path, broken, "broken.zip"))
    assert r.status_code >= 400
    r = await api.install(_zip(tmp_path, SEED_MANIFEST))
    assert r.status_code == 201, r.text
    r = await api.client.put("/api/v1/plugins/slack-notify/config",
                             json={"values": {"webhook_url": "https://hooks.example/1"}})
    assert r.status_code == 200, r.text
    r = await api.client.put("/api/v1/plugins/slack-notify/config",
                             json={"values": {"webhook_url": "https://hooks.example/2"}})
    assert r.status_code == 200, r.text


async def test_validate_reports_min_version_and_the_rest_of_what_install_refuses(
        api: Api) -> None:
    too_new = {**SEED_MANIFEST, "minVersion": "1.0.0",
               "permissions": ["net:hooks.slack.com:443", "fs:write:relative/dir"]}
    body = (await api.client.post("/api/v1/plugins/validate-manifest", json=too_new)).json()
    assert body["valid"] is False
    paths = {p["path"]: p["code"] for p in body["problems"]}
    assert paths["host"].startswith("resolve.") and "permissions" in paths
    assert (await api.client.post("/api/v1/plugins/validate-manifest",
                                  json={**SEED_MANIFEST, "dependencies": ["nowhere@^1"]})
            ).json()["problems"][0]["path"] == "dependencies"
    ok = (await api.client.post("/api/v1/plugins/validate-manifest", json=SEED_MANIFEST)).json()
    assert ok["valid"] is True and ok["warnings"] == []
