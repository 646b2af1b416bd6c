"""Configuration and permissions through the API (served when the facade provides them)."""

from __future__ import annotations

from plughost.interfaces.http.app import _facade_has_access_methods
from tests.interfaces.http.conftest import Api, MakePackage


def test_the_service_facade_provides_the_access_routes() -> None:
    # they are served only when the facade has them; plughost's own facade must
    assert _facade_has_access_methods(None)

CONFIGURABLE = """
[config.schema]
type = "object"
required = ["channel"]
[config.schema.properties.channel]
type = "string"
[config.schema.properties.token]
type = "string"
x-secret = true
[config.defaults]
channel = "#general"
"""


async def test_config_get_change_history_restore_reset_with_secrets_redacted(
    api: Api, make_package: MakePackage
) -> None:
    package = make_package("chatty", extra=CONFIGURABLE, permissions=["net:api.example.com"])
    assert (await api.install(package)).status_code == 201
    r = await api.client.get("/api/v1/plugins/chatty/config")
    assert r.status_code == 200, r.text
    assert r.json()["config"]["channel"] == "#general"
    assert r.json()["schema"]["required"] == ["channel"]
    r = await api.client.put("/api/v1/plugins/chatty/config",
                             json={"values": {"channel": "#ops", "token": "s3cr3t"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["config"]["channel"] == "#ops"
    assert body["config"]["token"] == "***" and "s3cr3t" not in r.text
    version = body["version"]
    r = await api.client.put("/api/v1/plugins/chatty/config", json={"values": {"channel": 5}})
    assert r.status_code == 422, "a value the schema refuses changes nothing"
    assert (await api.client.get("/api/v1/plugins/chatty/config")).json()["version"] == version
    history = (await api.client.get("/api/v1/plugins/chatty/config/history")).json()
    assert history["items"] and "s3cr3t" not in str(history)
    assert history["items"][0]["time"].endswith("Z")
    r = await api.client.post("/api/v1/plugins/chatty/config/reset")
    assert (r.status_code, r.json()["config"]["channel"]) == (200, "#general")
    r = await api.client.post("/api/v1/plugins/chatty/config/restore", json={"version": version})
    assert (r.status_code, r.json()["config"]["channel"]) == (200, "#ops")
    r = await api.client.post("/api/v1/plugins/chatty/config/restore", json={"version": 999})
    assert r.status_code == 404


async def test_permissions_grant_revoke_and_roles(api: Api, make_package: MakePackage) -> None:
    package = make_package("reach", permissions=["net:api.example.com"])
    assert (await api.install(package)).status_code == 201
    r = await api.client.get("/api/v1/plugins/reach/permissions")
    assert r.status_code == 200, r.text
    assert r.json()["declared"] == ["net:api.example.com"]
    r = await api.client.post("/api/v1/plugins/reach/permissions/grant",
                              json={"scope": "fs:read:/data", "reason": "reports"})
    assert r.status_code == 200, r.text
    assert "fs:read:/data" in r.json()["granted"]
    r = await api.client.post("/api/v1/plugins/reach/permissions/revoke",
                              json={"scope": "fs:read:/data"})
    assert r.status_code == 200
    assert "fs:read:/data" not in r.json()["granted"]
    r = await api.client.post("/api/v1/plugins/reach/permissions/grant", json={"scope": "bogus"})
    assert 400 <= r.status_code < 500
    assert (await api.client.get("/api/v1/permissions/requests")).json() == {
        "items": [], "next_cursor": None, "total": 0}
    r = await api.client.post("/api/v1/permissions/requests/12345/approve")
    assert r.status_code in (404, 409)  # the permission manager calls it a refusal
    assert "12345" in r.json()["error"]["message"]
    operator = api.auth("operator")
    r = await api.client.post("/api/v1/plugins/reach/permissions/grant",
                              json={"scope": "fs:read:/tmp"}, headers=operator)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "auth.forbidden")
    r = await api.client.put("/api/v1/plugins/reach/config", json={"values": {}},
                             headers=api.auth("viewer"))
    assert r.status_code == 403


async def test_plugin_details_show_the_live_config_with_secrets_redacted(
    api: Api, make_package: MakePackage
) -> None:
    assert (await api.install(make_package("detailed", extra=CONFIGURABLE))).status_code == 201
    r = await api.client.put("/api/v1/plugins/detailed/config",
                             json={"values": {"channel": "#alerts", "token": "hunter2"}})
    assert r.status_code == 200
    for path in ("/api/v1/plugins/detailed", "/api/v1/plugins/detailed/info"):
        detail = await api.client.get(path)
        assert detail.json()["config"] == {"channel": "#alerts", "token": "***"}
        assert detail.json()["config_revision"] == r.json()["version"]
        assert "hunter2" not in detail.text


async def test_security_audit_entries_have_the_one_audit_entry_shape(
    api: Api, make_package: MakePackage
) -> None:
    """/security/audit filters the security decisions of the one audit log: the same
    entries, in the same audit_entry shape, as /audit?kind=security."""
    import jsonschema

    from plughost.services.resources import page_schema

    assert (await api.install(make_package("reach"))).status_code == 201
    for verb in ("grant", "revoke"):
        r = await api.client.post(f"/api/v1/plugins/reach/permissions/{verb}",
                                  json={"scope": "fs:read:/data"})
        assert r.status_code == 200, r.text
    security = (await api.client.get("/api/v1/security/audit?plugin_id=reach")).json()
    one_log = (await api.client.get("/api/v1/audit?plugin_id=reach&kind=security")).json()
    jsonschema.validate(security, page_schema("audit_entry"))
    assert [e["action"] for e in security["items"]] == ["permission.revoke",
                                                        "permission.grant"]
    assert security["items"] == one_log["items"]
    entry = security["items"][0]
    assert (entry["kind"], entry["plugin_id"], entry["details"]["scope"]) == (
        "security", "reach", "fs:read:/data")
    assert entry["at"].endswith("Z")
    since = (await api.client.get("/api/v1/security/audit",
                                  params={"since": entry["at"]})).json()["items"]
    assert entry["id"] in [e["id"] for e in since]
    assert (await api.client.get("/api/v1/security/audit?decision=granted")).json()[
        "items"] == [security["items"][1]]



async def test_security_audit_pages_past_the_operations_between_its_entries(
    api: Api, make_package: MakePackage
) -> None:
    """Pages of security entries (both routes) follow each other through the log with
    operations (installs, config changes) between them, as a page of the whole log does."""
    assert (await api.install(make_package("reach"))).status_code == 201
    for i in range(5):
        r = await api.client.post("/api/v1/plugins/reach/permissions/grant",
                                  json={"scope": f"fs:read:/data/{i}"})
        assert r.status_code == 200, r.text
        assert (await api.install(make_package(f"filler-{i}"))).status_code == 201
    for path in ("/api/v1/security/audit?limit=2", "/api/v1/audit?kind=security&limit=2"):
        seen: list[str] = []
        url: str | None = path
        while url is not None:
            page = (await api.client.get(url)).json()
            assert len(page["items"]) <= 2
            seen += [e["details"].get("scope", "") for e in page["items"]]
            url = page["next_cursor"] and f"{path}&cursor={page['next_cursor']}"
        assert seen == [f"fs:read:/data/{i}" for i in reversed(range(5))], path
    operations = (await api.client.get("/api/v1/audit?kind=operation&limit=3")).json()
    assert [e["action"] for e in operations["items"]] == ["plugin.install"] * 3
