"""Observability routes through the real app: plugin logs with query, filters and live tail."""

from __future__ import annotations

import asyncio
import json

from tests.interfaces.http.conftest import Api, MakePackage

CHATTY = """
from plughost.sdk import Plugin, command

class Main(Plugin):
    def activate(self, ctx):
        ctx.logger.info("chatty is ready")

    @command("say")
    def say(self, text, level="info", times=1):
        for i in range(times):
            getattr(self.ctx.logger, level)("%s #%d", text, i)
        return times
"""


async def _install_chatty(api: Api, make_package: MakePackage) -> None:
    r = await api.install(make_package("chatty", code=CHATTY))
    assert r.status_code == 201, r.text


async def test_plugin_log_lines_carry_plugin_level_time_and_the_request_id(
    api: Api, make_package: MakePackage
) -> None:
    await _install_chatty(api, make_package)
    r = await api.client.post("/api/v1/commands/chatty.say",
                              json={"args": {"text": "disk nearly full", "level": "warning"}},
                              headers={"X-Request-ID": "req-42"})
    assert r.status_code == 200, r.text
    await api.client.post("/api/v1/commands/chatty.say", json={"args": {"text": "all good"}})

    items = (await api.client.get("/api/v1/logs", params={"plugin_id": "chatty"})).json()["items"]
    messages = [i["message"] for i in items]
    assert messages[:3] == ["all good #0", "disk nearly full #0", "chatty is ready"]
    warning = items[1]
    assert warning["plugin_id"] == "chatty" and warning["level"] == "warning"
    assert warning["correlation_id"] == "req-42"
    assert warning["time"].endswith("Z")

    only_warnings = (await api.client.get("/api/v1/logs", params={"level": "warning"})).json()
    assert [i["message"] for i in only_warnings["items"]] == ["disk nearly full #0"]
    grep = (await api.client.get("/api/v1/logs", params={"grep": "DISK"})).json()["items"]
    assert [i["message"] for i in grep] == ["disk nearly full #0"]
    by_request = (await api.client.get("/api/v1/logs",
                                       params={"correlation_id": "req-42"})).json()["items"]
    assert [i["message"] for i in by_request] == ["disk nearly full #0"]
    recent = (await api.client.get("/api/v1/logs", params={"since": "5m"})).json()["items"]
    assert len(recent) >= 3
    future = (await api.client.get("/api/v1/logs",
                                   params={"since": "2999-01-01T00:00:00Z"})).json()["items"]
    assert future == []


async def test_bad_log_filters_are_refused_with_what_to_use(api: Api) -> None:
    r = await api.client.get("/api/v1/logs", params={"level": "loud"})
    assert r.status_code == 400
    body = r.json()["error"]
    assert body["code"] == "request.invalid" and "debug, info, warning" in body["message"]
    r = await api.client.get("/api/v1/logs", params={"since": "yesterday-ish"})
    assert r.status_code == 400 and "15m" in r.json()["error"]["message"]


async def test_log_routes_need_a_viewer_token_once_tokens_exist(api: Api) -> None:
    api.auth("admin")  # tokens exist from now on
    assert (await api.client.get("/api/v1/logs")).status_code == 401
    r = await api.client.get("/api/v1/logs", headers=api.auth("viewer"))
    assert r.status_code == 200


async def test_live_tail_streams_new_lines_matching_the_filter(
    api: Api, make_package: MakePackage
) -> None:
    await _install_chatty(api, make_package)
    received: list[dict[str, object]] = []

    async def read() -> None:
        params = {"plugin_id": "chatty", "grep": "tail-me", "max_events": "2"}
        async with api.client.stream("GET", "/api/v1/logs/stream", params=params) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "log":
                    received.append(json.loads(line[6:]))

    reader = asyncio.create_task(read())
    hub = api.app.state.api.observer.logs
    for _ in range(200):  # wait until the stream is subscribed
        if hub.stats()["tails"]:
            break
        await asyncio.sleep(0.01)
    await api.client.post("/api/v1/commands/chatty.say", json={"args": {"text": "ignored"}})
    await api.client.post("/api/v1/commands/chatty.say",
                          json={"args": {"text": "tail-me", "times": 2}})
    await asyncio.wait_for(reader, 10)
    assert [e["message"] for e in received] == ["tail-me #0", "tail-me #1"]
    assert all(e["plugin_id"] == "chatty" for e in received)


async def test_a_flooding_plugin_does_not_block_the_host_and_drops_are_counted(
    api: Api, make_package: MakePackage
) -> None:
    await _install_chatty(api, make_package)
    r = await api.client.post("/api/v1/commands/chatty.say",
                              json={"args": {"text": "flood", "times": 100_000}})
    assert r.status_code == 200 and r.json()["result"] == 100_000
    # the host still answers, and what it could not store is a visible figure
    stats = (await api.client.get("/api/v1/logs/stats")).json()
    assert stats["captured"] >= 100_000
    dropped = stats["dropped_by_plugin"]["chatty"]["store_queue"]
    assert dropped > 0 and stats["dropped"]["store_queue"] == dropped
    await asyncio.to_thread(api.app.state.api.observer.logs.flush)
    after = (await api.client.get("/api/v1/logs/stats")).json()
    # every line is accounted for: stored, or dropped and counted
    assert after["pending"] == 0
    assert after["persisted"] + after["dropped"]["store_queue"] == after["captured"]


async def test_every_api_path_the_dashboard_calls_exists(api: Api) -> None:
    import re
    from pathlib import Path

    import plughost.interfaces.dashboard as dashboard

    script = "\n".join(p.read_text() for p in Path(dashboard.__file__).parent.glob("*.js"))
    called = set(re.findall(r'(?:api\("GET", |list\()"(/[a-z/]+)"', script))
    called.discard("/market/search")  # shown only when the server has a catalog
    assert {"/health", "/alerts", "/plugins"} <= called
    for path in called:
        r = await api.client.get("/api/v1" + path)
        assert r.status_code == 200, (path, r.text)


async def test_health_pages_are_the_whole_list_cut_by_id(
    api: Api, make_package: MakePackage
) -> None:
    for pid in ("h-a", "h-b", "h-c"):
        assert (await api.install(make_package(pid))).status_code == 201
    r = await api.client.post("/api/v1/health/h-b/check")
    assert r.status_code == 200, r.text
    every = (await api.client.get("/api/v1/health")).json()
    assert every["next_cursor"] is None
    assert [p["plugin_id"] for p in every["plugins"]] == ["h-a", "h-b", "h-c"]

    pages = []
    params: dict[str, object] = {"limit": 2}
    while True:
        r = await api.client.get("/api/v1/health", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["degraded"]) == (every["status"], every["degraded"])
        pages.append([p["plugin_id"] for p in body["plugins"]])
        if body["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": body["next_cursor"]}
    assert pages == [["h-a", "h-b"], ["h-c"]]
    r = await api.client.get("/api/v1/health", params={"limit": 1, "cursor": params["cursor"]})
    assert [p["plugin_id"] for p in r.json()["plugins"]] == ["h-c"]
    assert r.json()["plugins"][0] == every["plugins"][2]  # the same entries, cut

    for pid, entry in zip(("h-a", "h-b"), every["plugins"], strict=False):
        r = await api.client.get("/api/v1/health", params={"plugin_id": pid})
        assert r.status_code == 200, r.text
        assert r.json() == {**every, "plugins": [entry]}  # the same entry, the same status
    r = await api.client.get("/api/v1/health", params={"plugin_id": "h-nobody"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "plugin.not_found"
    # several plugins (the rows of a page): their entries by id, each as in the list
    r = await api.client.get("/api/v1/health", params=[("plugin_id", "h-c"),
                                                       ("plugin_id", "h-a"),
                                                       ("plugin_id", "h-c")])
    assert r.json() == {**every, "plugins": [every["plugins"][0], every["plugins"][2]]}
    r = await api.client.get("/api/v1/health", params=[("plugin_id", "h-a"),
                                                       ("plugin_id", "h-nobody")])
    assert r.status_code == 404 and "h-nobody" in r.json()["error"]["message"]
    r = await api.client.get("/api/v1/health",
                             params=[("plugin_id", f"p{i}") for i in range(101)])
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "plugin_id"
    r = await api.client.get("/api/v1/health", params={"plugin_id": "x" * 65})
    assert r.status_code == 400 and "64" in r.json()["error"]["message"]

    r = await api.client.get("/api/v1/health", params={"cursor": params["cursor"]})
    assert r.status_code == 400 and "limit" in r.json()["error"]["message"]
    for bad in ("abc", "eyJhZnRlciI6IDF9"):  # not a cursor; {"after": 1}
        r = await api.client.get("/api/v1/health", params={"limit": 2, "cursor": bad})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "request.invalid"
    r = await api.client.get("/api/v1/health", params={"limit": 1001})
    assert r.status_code == 422
