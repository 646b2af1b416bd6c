"""GET /api/v1/whoami: who is calling, and the operations their role may call — checked
against what the API really does for that role."""

from __future__ import annotations

import pytest

from plughost.interfaces.http.app import openapi_document
from plughost.interfaces.tokens import ROLES
from tests.interfaces.http.conftest import Api, MakePackage

NO_TOKEN = {"GET /api/v1/whoami", "GET /healthz", "GET /readyz", "GET /healthz/plugins",
            "GET /healthz/plugins/{plugin_id}"}


def documented() -> set[str]:
    return {f"{method.upper()} {path}" for path, ops in openapi_document()["paths"].items()
            for method in ops}


async def test_an_open_local_server_says_no_token_is_needed(api: Api) -> None:
    me = (await api.client.get("/api/v1/whoami")).json()
    assert me["signed_in"] is False and me["token_required"] is False
    assert me["role"] == "admin" and me["name"] is None
    assert me["roles"] == list(ROLES)
    # every documented operation, and nothing else
    assert set(me["operations"]) == documented()


async def test_without_a_token_a_secured_server_says_one_is_needed(
        api: Api, make_package: MakePackage) -> None:
    api.auth("viewer")
    r = await api.client.get("/api/v1/whoami")
    assert r.status_code == 200
    me = r.json()
    assert me == {"signed_in": False, "token_required": True, "name": None, "role": None,
                  "roles": list(ROLES), "operations": sorted(NO_TOKEN & documented())}


async def test_a_bad_token_is_refused(api: Api) -> None:
    api.auth("viewer")
    for header in ("Bearer ph_not-a-real-token", "Basic abc"):
        r = await api.client.get("/api/v1/whoami", headers={"Authorization": header})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "auth.invalid"


@pytest.mark.parametrize("role", ROLES)
async def test_the_operations_listed_are_exactly_those_the_role_may_call(
        api: Api, make_package: MakePackage, role: str) -> None:
    assert (await api.install(make_package("p"))).status_code == 201
    headers = api.auth(role)
    me = (await api.client.get("/api/v1/whoami", headers=headers)).json()
    assert me["signed_in"] is True and me["token_required"] is True
    assert (me["name"], me["role"]) == (f"test-{role}", role)
    allowed = set(me["operations"])
    assert allowed <= documented()
    # a sample of each kind: the answer for what is listed is not 403, for the rest it is
    probes = [("GET", "/api/v1/plugins"), ("POST", "/api/v1/plugins/{plugin_id}/enable"),
              ("POST", "/api/v1/plugins/{plugin_id}/deactivate"),
              ("PUT", "/api/v1/plugins/{plugin_id}/config"),
              ("POST", "/api/v1/plugins/{plugin_id}/rollback"),
              ("DELETE", "/api/v1/tokens/{name}"), ("GET", "/api/v1/tokens")]
    for method, template in probes:
        path = template.replace("{plugin_id}", "p").replace("{name}", "nobody")
        r = await api.client.request(method, path, headers=headers,
                                     **({"json": {"values": {}}} if method == "PUT" else {}))
        listed = f"{method} {template}" in allowed
        assert (r.status_code != 403) == listed, (role, method, path, r.status_code, r.text)


async def test_a_server_with_the_marketplace_off_does_not_offer_its_operations(
        tmp_path) -> None:
    """With ``enable_market = false`` every marketplace operation answers ``market.disabled``,
    so whoami does not list them (the dashboard then shows no Marketplace page)."""
    from dataclasses import replace

    from plughost.settings import HostSettings
    from tests.interfaces.http.conftest import open_api

    settings = replace(HostSettings(home=tmp_path / "home"), enable_market=False)
    async for api in open_api(settings):
        me = (await api.client.get("/api/v1/whoami")).json()
        market = [op for op in documented() if op.split(" ", 1)[1].startswith("/api/v1/market/")]
        assert market and not set(market) & set(me["operations"])
        assert set(me["operations"]) == documented() - set(market)
        refused = await api.client.get("/api/v1/market/search", params={"q": "x"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "market.disabled"
