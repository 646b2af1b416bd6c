"""App-level behaviour: readiness before start-up, CORS, request ids, the read cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from plughost.interfaces.http import ApiOptions, create_app
from plughost.services.manager import PluginService
from plughost.settings import HostSettings
from tests.interfaces.http.conftest import Api, MakePackage, open_api


async def test_readyz_is_503_until_plugins_are_loaded_and_after_shutdown(
    settings: HostSettings,
) -> None:
    app = create_app(PluginService(settings, start=True), settings)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["ready"] is False and "starting" in r.json()["reason"]
        assert (await client.get("/healthz")).status_code == 200
        async with app.router.lifespan_context(app):
            assert (await client.get("/readyz")).status_code == 200
        r = await client.get("/readyz")
        assert (r.status_code, r.json()["reason"]) == (503, "shutting down")



async def test_readyz_counts_the_plugins_without_walking_every_one(
    api: Api, make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plughost.core.registry import Registry

    assert (await api.install(make_package("awake"))).status_code == 201
    assert (await api.install(make_package("lazy", activation=["command:lazy.go"]))
            ).status_code == 201
    assert (await api.install(make_package("off"))).status_code == 201
    await api.service.disable("off")

    def walked(self: Registry) -> None:
        raise AssertionError("a readiness probe walked every registered plugin")

    monkeypatch.setattr(Registry, "__iter__", walked)
    r = await api.client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"ready": True, "reason": "", "plugins": 3, "active": 1, "failed": 0}

async def test_what_start_up_built_is_kept_out_of_the_collectors_walks_while_serving(
    settings: HostSettings,
) -> None:
    import gc

    app = create_app(PluginService(settings, start=True), settings)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # collectable again once the service is closed


@pytest.fixture
async def cors_api(settings: HostSettings) -> AsyncIterator[Api]:
    async for value in open_api(settings, ApiOptions(cors_origins=("https://ops.example",))):
        yield value


async def test_cors_allows_only_configured_origins(cors_api: Api) -> None:
    preflight = {"Origin": "https://ops.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    r = await cors_api.client.options("/api/v1/plugins/x/enable", headers=preflight)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://ops.example"
    r = await cors_api.client.get("/api/v1/plugins", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_request_id_is_echoed_or_generated(api: Api) -> None:
    r = await api.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = (await api.client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32


async def test_cached_list_follows_changes_made_through_the_service(
    api: Api, make_package: MakePackage
) -> None:
    assert (await api.install(make_package("cached"))).status_code == 201
    first = (await api.client.get("/api/v1/plugins")).json()["items"][0]["state"]
    assert first == "active"
    # not through the API: the lifecycle event alone must invalidate the cached answer
    await api.service.deactivate("cached")
    again = (await api.client.get("/api/v1/plugins")).json()["items"][0]["state"]
    assert again == "deactivated"


async def test_commands_execute_through_the_host_registry(api: Api) -> None:
    registry = getattr(api.service.host, "commands", None)
    if registry is None:  # a host without the communication layer has no commands
        assert (await api.client.get("/api/v1/commands")).json() == {
            "items": [], "next_cursor": None, "total": 0}
        r = await api.client.post("/api/v1/commands/demo.echo", json={})
        assert (r.status_code, r.json()["error"]["code"]) == (404, "command.not_found")
        return
    registry.register(None, "demo.echo", lambda text: {"echo": text})
    assert "demo.echo" in (await api.client.get("/api/v1/commands")).json()["items"]
    r = await api.client.post("/api/v1/commands/demo.echo", json={"args": {"text": "hi"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"command": "demo.echo", "result": {"echo": "hi"}}
    r = await api.client.post("/api/v1/commands/nope.nothing", json={})
    assert r.status_code == 404
    r = await api.client.post("/api/v1/commands/demo.echo", json={"args": {"wrong": 1}})
    assert r.status_code == 422


GREETER = """
from plughost.sdk import Plugin, command

class Main(Plugin):
    @command("greet")
    def greet(self, name):
        if not name:
            raise ValueError("a name is needed")
        return {"greeting": "hello " + name}
"""


async def test_a_lazy_plugin_command_runs_through_the_api(
    api: Api, make_package: MakePackage
) -> None:
    package = make_package("greeter", code=GREETER, activation=["command:greeter.greet"])
    assert (await api.install(package)).status_code == 201
    assert (await api.client.get("/api/v1/plugins/greeter")).json()["state"] != "active"
    r = await api.client.post("/api/v1/commands/greeter.greet", json={"args": {"name": "Ada"}})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {"greeting": "hello Ada"}
    assert (await api.client.get("/api/v1/plugins/greeter")).json()["state"] == "active"
    r = await api.client.post("/api/v1/commands/greeter.greet", json={"args": {"name": ""}})
    assert 400 <= r.status_code < 500
    assert "a name is needed" in r.json()["error"]["message"]
    audit = (await api.client.get("/api/v1/audit?action=command.execute")).json()["items"]
    assert len(audit) == 1  # the refused call is not recorded as executed


async def test_streams_end_after_max_seconds(api: Api) -> None:
    import time

    for path in ("/api/v1/events?max_seconds=0.3", "/api/v1/logs/stream?max_seconds=0.3"):
        started = time.monotonic()
        r = await api.client.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        assert time.monotonic() - started < 10, "the stream ended on its own"
        r = await api.client.get(path.replace("0.3", "0"))
        assert r.status_code == 422


EMITTER = """
from plughost.sdk import Plugin, command

class Main(Plugin):
    @command("ping")
    def ping(self, text):
        return {"reached": self.ctx.bus.emit("emitter.pinged", {"text": text})}
"""


async def test_process_plugin_command_that_emits_answers_over_the_api(
    api: Api, make_package: MakePackage
) -> None:
    # A process plugin's host.emit went through a bridge passing arguments the host's bus does
    # not take: every such command answered 422.
    package = make_package(
        "emitter", code=EMITTER, runtime="process", permissions=["events:emit:emitter.*"]
    )
    assert (await api.install(package)).status_code == 201
    seen: list[object] = []
    api.service.host.comms.bus.subscribe("emitter.*", seen.append)
    r = await api.client.post("/api/v1/commands/emitter.ping", json={"args": {"text": "hi"}})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["reached"] >= 1
    assert [(e.topic, e.source) for e in seen] == [("emitter.pinged", "emitter")]
