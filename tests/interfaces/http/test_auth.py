"""Bearer tokens and roles: every route checks the caller's role; open mode only without tokens."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from plughost.interfaces.http import ApiOptions
from plughost.settings import HostSettings
from tests.interfaces.http.conftest import Api, MakePackage, open_api

# (method, path, required role). "p" is installed; "nobody" is not (for destructive routes).
ROUTES = [
    ("GET", "/api/v1/plugins", "viewer"),
    ("GET", "/api/v1/plugins/metrics", "viewer"),
    ("GET", "/api/v1/plugins/p", "viewer"),
    ("GET", "/api/v1/plugins/p/versions", "viewer"),
    ("GET", "/api/v1/plugins/p/info", "viewer"),
    ("GET", "/api/v1/plugins/p/health", "viewer"),
    ("GET", "/api/v1/commands", "viewer"),
    ("POST", "/api/v1/plugins/validate-manifest", "viewer"),
    ("GET", "/api/v1/operations", "viewer"),
    ("GET", "/api/v1/operations/none", "viewer"),
    ("GET", "/api/v1/audit", "viewer"),
    ("POST", "/api/v1/plugins/p/disable", "operator"),
    ("POST", "/api/v1/plugins/p/enable", "operator"),
    ("POST", "/api/v1/plugins/p/deactivate", "operator"),
    ("POST", "/api/v1/plugins/p/activate", "operator"),
    ("POST", "/api/v1/plugins/p/stop", "operator"),
    ("POST", "/api/v1/plugins/p/start", "operator"),
    ("POST", "/api/v1/commands/none.here", "operator"),
    ("POST", "/api/v1/plugins/install", "admin"),
    ("PUT", "/api/v1/plugins/nobody", "admin"),
    ("DELETE", "/api/v1/plugins/nobody", "admin"),
    ("POST", "/api/v1/plugins/nobody/rollback", "admin"),
    ("GET", "/api/v1/tokens", "admin"),
    ("POST", "/api/v1/tokens", "admin"),
    ("DELETE", "/api/v1/tokens/nobody", "admin"),
    # config and permissions
    ("GET", "/api/v1/plugins/p/config", "viewer"),
    ("GET", "/api/v1/plugins/p/config/history", "viewer"),
    ("GET", "/api/v1/plugins/p/permissions", "viewer"),
    ("GET", "/api/v1/permissions/requests", "viewer"),
    ("GET", "/api/v1/security/audit", "viewer"),
    ("PUT", "/api/v1/plugins/p/config", "operator"),
    ("POST", "/api/v1/plugins/p/config/reset", "operator"),
    ("POST", "/api/v1/plugins/p/config/restore", "operator"),
    ("POST", "/api/v1/plugins/nobody/permissions/grant", "admin"),
    ("POST", "/api/v1/plugins/nobody/permissions/revoke", "admin"),
    ("POST", "/api/v1/permissions/requests/1/approve", "admin"),
]
ROLES = ["viewer", "operator", "admin"]


@pytest.fixture
async def secured(api: Api, make_package: MakePackage) -> Api:
    assert (await api.install(make_package("p"))).status_code == 201
    for role in ROLES:
        api.auth(role)
    return api


@pytest.mark.parametrize(("method", "path", "required"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_each_route_requires_its_role(
    secured: Api, method: str, path: str, required: str
) -> None:
    body = {"json": {}} if method in ("POST", "PUT") else {}
    r = await secured.client.request(method, path, **body)
    assert r.status_code == 401, "a request without a token must be refused"
    assert r.json()["error"]["code"] == "auth.required"
    assert r.headers["www-authenticate"] == "Bearer"
    for role in ROLES:
        r = await secured.client.request(method, path, headers=secured.auth(role), **body)
        if ROLES.index(role) < ROLES.index(required):
            assert r.status_code == 403, (role, r.text)
            error = r.json()["error"]
            assert error["code"] == "auth.forbidden"
            assert required in error["message"]
        else:
            assert r.status_code not in (401, 403), (role, r.text)


async def test_malformed_or_unknown_tokens_are_401(secured: Api) -> None:
    for header in ("Basic abc", "Bearer", "Bearer ph_not-a-real-token"):
        r = await secured.client.get("/api/v1/plugins", headers={"Authorization": header})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "auth.invalid"


async def test_probes_and_dashboard_need_no_token(secured: Api) -> None:
    assert (await secured.client.get("/healthz")).json() == {"status": "ok"}
    ready = (await secured.client.get("/readyz")).json()
    assert (ready["ready"], ready["plugins"], ready["active"]) == (True, 1, 1)
    page = await secured.client.get("/")
    assert page.status_code == 200 and "plughost" in page.text
    assert (await secured.client.get("/dashboard/app.js")).status_code == 200


async def test_open_mode_only_until_a_token_exists(api: Api) -> None:
    assert (await api.client.get("/api/v1/plugins")).status_code == 200
    r = await api.client.post("/api/v1/tokens", json={"role": "viewer", "name": "first"})
    assert r.status_code == 201
    secret = r.json()["secret"]
    assert secret.startswith("ph_")
    assert (await api.client.get("/api/v1/plugins")).status_code == 401
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/api/v1/plugins", headers=headers)).status_code == 200


async def test_tokens_are_listed_without_secrets_and_revocation_takes_effect(
    secured: Api,
) -> None:
    admin = secured.auth("admin")
    r = await secured.client.post("/api/v1/tokens", json={"role": "operator", "name": "ci"},
                                  headers=admin)
    secret = r.json()["secret"]
    listed = (await secured.client.get("/api/v1/tokens", headers=admin)).json()["items"]
    assert {t["name"] for t in listed} == {"test-viewer", "test-operator", "test-admin", "ci"}
    assert all("secret" not in t for t in listed)
    ci = {"Authorization": f"Bearer {secret}"}
    assert (await secured.client.post("/api/v1/plugins/p/disable", headers=ci)).status_code == 200
    assert (await secured.client.delete("/api/v1/tokens/ci", headers=admin)).status_code == 204
    r = await secured.client.post("/api/v1/plugins/p/enable", headers=ci)
    assert r.status_code == 401
    r = await secured.client.delete("/api/v1/tokens/ci", headers=admin)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "token.not_found")
    r = await secured.client.post("/api/v1/tokens", json={"role": "root"}, headers=admin)
    assert r.status_code == 422


async def test_audit_names_the_token_that_acted(secured: Api) -> None:
    r = await secured.client.post("/api/v1/plugins/p/disable", headers=secured.auth("operator"))
    assert r.status_code == 200
    events = (await secured.client.get("/api/v1/audit?action=plugin.disable",
                                       headers=secured.auth("viewer"))).json()["items"]
    assert [(e["actor"], e["plugin_id"]) for e in events] == [("token:test-operator", "p")]


@pytest.fixture
async def closed_api(settings: HostSettings) -> AsyncIterator[Api]:
    async for value in open_api(settings, ApiOptions(allow_anonymous=False)):
        yield value


async def test_without_anonymous_access_even_a_tokenless_server_needs_a_token(
    closed_api: Api,
) -> None:
    r = await closed_api.client.get("/api/v1/plugins")
    assert r.status_code == 401
    assert "plughost token create" in r.json()["error"]["message"]


async def test_event_stream_needs_a_token_once_tokens_exist(secured: Api) -> None:
    r = await secured.client.get("/api/v1/events?max_events=1")
    assert r.status_code == 401
    r = await secured.client.get("/api/v1/events?max_events=1",
                                 headers={"Authorization": "Bearer ph_bad"})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "auth.invalid")


async def test_an_open_event_stream_ends_when_its_token_is_revoked(settings: HostSettings) -> None:
    async for api in open_api(settings, ApiOptions(heartbeat=0.1)):
        headers = api.auth("viewer")
        api.auth("admin")  # another token stays, so the server keeps requiring tokens
        broker = api.app.state.api.broker
        reader = asyncio.create_task(api.client.get("/api/v1/events", headers=headers))
        for _ in range(200):  # wait until the stream is subscribed
            if broker.subscribers:
                break
            await asyncio.sleep(0.01)
        broker.publish("plugin", {"plugin_id": "p", "topic": "before"})
        await asyncio.sleep(0.2)
        api.app.state.api.authority.revoke("test-viewer")
        broker.publish("plugin", {"plugin_id": "p", "topic": "after"})
        response = await asyncio.wait_for(reader, 10)  # on its own: the stream ended
        assert response.status_code == 200
        assert '"topic": "before"' in response.text
        assert '"topic": "after"' not in response.text
        assert response.text.rstrip().splitlines()[-2:][0] == "event: closed"
        assert "revoked" in response.text
        assert broker.subscribers == 0


def _every_api_operation(app: object) -> list[tuple[str, str]]:
    """(method, path) of every operation the app documents, path parameters filled in."""
    out = []
    for path, item in app.openapi()["paths"].items():  # type: ignore[attr-defined]
        if path.startswith("/api/"):
            filled = re.sub(r"\{[^}]+\}", "p", path)
            out.extend((method.upper(), filled) for method in item)
    return out


async def test_authentication_comes_before_reading_the_body_on_every_route(
    secured: Api,
) -> None:
    # Whatever is wrong with the body or the query, a caller without a valid token learns
    # only that: 401 first, on every route the app serves.
    operations = _every_api_operation(secured.app)
    assert len(operations) >= 35
    bad_inputs = [
        {"content": b"{", "headers": {"Content-Type": "application/json"}},
        {"content": b"[" * 5000 + b"]" * 5000, "headers": {"Content-Type": "application/json"}},
        {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; "
                                                                 "boundary=x"}},
        {"params": {"limit": "-5", "async": "maybe", "cascade": "perhaps"}},
    ]
    for method, path in operations:
        for bad in bad_inputs:
            extra = dict(bad)
            for header in (None, "Bearer ph_not-a-real-token"):
                if header is None and path == "/api/v1/whoami":
                    continue  # answers without a token by design: "not signed in, one needed"
                headers = dict(extra.get("headers", {}))  # type: ignore[arg-type]
                if header:
                    headers["Authorization"] = header
                r = await secured.client.request(
                    method, path, params=extra.get("params"),  # type: ignore[arg-type]
                    content=extra.get("content"), headers=headers)  # type: ignore[arg-type]
                assert r.status_code == 401, (method, path, bad, r.status_code, r.text[:200])
                assert r.json()["error"]["code"] in ("auth.required", "auth.invalid")


async def test_a_weak_role_is_refused_before_the_body_is_read(secured: Api) -> None:
    r = await secured.client.post("/api/v1/tokens", content=b"{",
                                  headers={**secured.auth("viewer"),
                                           "Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "auth.forbidden")


def test_every_api_route_authenticates_through_the_route_class() -> None:
    from plughost.interfaces.http._routes_access import router as access
    from plughost.interfaces.http._routes_observability import router as observability
    from plughost.interfaces.http._routes_plugins import router as plugins
    from plughost.interfaces.http._routes_session import router as session
    from plughost.interfaces.http._routes_system import router as system
    from plughost.interfaces.http._routing import ApiRoute, required_role

    routes = [*access.routes, *plugins.routes, *system.routes, *observability.routes]
    assert len(routes) >= 35
    for route in routes:
        assert isinstance(route, ApiRoute), route
        assert required_role(route.dependant) in ROLES, route.path
    # whoami answers every caller (it says who they are, or that a token is needed)
    assert [isinstance(r, ApiRoute) and required_role(r.dependant) for r in session.routes] == [
        None]


def test_an_api_router_without_the_route_class_is_refused_when_the_app_is_built() -> None:
    from pathlib import Path

    from fastapi import APIRouter

    from plughost.interfaces.http import app as app_module

    stray = APIRouter()

    @stray.get("/stray")
    async def stray_route() -> dict[str, str]:
        return {}

    app = app_module.create_app(None, HostSettings(home=Path("/nonexistent/plughost")))
    with pytest.raises(TypeError, match="route_class=ApiRoute"):
        app_module._include(app, stray, "/api/v1")


async def test_the_local_token_is_an_admin_named_local_cli(settings: HostSettings) -> None:
    secret = "phl_" + "x" * 43
    async for api in open_api(settings, ApiOptions(allow_anonymous=False, local_token=secret)):
        who = await api.client.get("/api/v1/whoami",
                                   headers={"Authorization": f"Bearer {secret}"})
        assert (who.json()["name"], who.json()["role"]) == ("local-cli", "admin")
        near = await api.client.get("/api/v1/tokens",
                                    headers={"Authorization": f"Bearer {secret[:-1]}y"})
        assert near.status_code == 401
