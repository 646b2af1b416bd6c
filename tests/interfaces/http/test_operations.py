"""?async=true: 202 with an operation id, progress and result at /operations/{id}; the event
stream carries lifecycle changes and operation progress."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from plughost.settings import HostSettings
from tests.interfaces.http.conftest import Api, MakePackage, open_api


@pytest.fixture
def package_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over ``tmp_path/served``; yields (base URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def url_api(settings: HostSettings) -> AsyncIterator[Api]:
    async for value in open_api(settings, allow_private_urls=True, allow_http_urls=True):
        yield value


async def _wait_operation(api: Api, op_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        op = (await api.client.get(f"/api/v1/operations/{op_id}")).json()
        if op["status"] in ("succeeded", "failed", "cancelled"):
            return op
        await asyncio.sleep(0.02)
    raise AssertionError(f"operation {op_id} did not finish")


async def test_async_install_from_url_returns_202_and_finishes(
    url_api: Api, make_package: MakePackage, package_server: tuple[str, Path]
) -> None:
    base, folder = package_server
    package = make_package("remote", "1.0.0")
    (folder / package.name).write_bytes(package.read_bytes())
    r = await url_api.client.post("/api/v1/plugins/install?async=true",
                                  json={"source": "url", "url": f"{base}/{package.name}"})
    assert r.status_code == 202, r.text
    op = r.json()
    assert r.headers["location"] == f"/api/v1/operations/{op['id']}"
    assert op["status"] in ("pending", "running")
    done = await _wait_operation(url_api, op["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0
    assert done["result"]["plugin_id"] == "remote"
    assert (await url_api.client.get("/api/v1/plugins/remote")).json()["state"] == "active"
    listed = (await url_api.client.get("/api/v1/operations")).json()
    assert listed == {"items": [listed["items"][0]], "next_cursor": None}
    assert listed["items"][0]["id"] == op["id"]


async def test_async_install_failure_is_recorded_on_the_operation(
    url_api: Api, package_server: tuple[str, Path]
) -> None:
    base, _ = package_server
    r = await url_api.client.post("/api/v1/plugins/install?async=true",
                                  data={"source": "url", "url": f"{base}/missing.zip"})
    assert r.status_code == 202
    done = await _wait_operation(url_api, r.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"].startswith("download.")
    assert (await url_api.client.get("/api/v1/plugins")).json()["total"] == 0


async def test_async_update_with_put(api: Api, make_package: MakePackage) -> None:
    assert (await api.install(make_package("bg", "1.0.0"))).status_code == 201
    v2 = make_package("bg", "1.1.0")
    with v2.open("rb") as fh:
        r = await api.client.put("/api/v1/plugins/bg?async=true", data={"source": "local"},
                                 files={"file": (v2.name, fh, "application/zip")})
    assert r.status_code == 202
    done = await _wait_operation(api, r.json()["id"])
    assert (done["status"], done["plugin_id"], done["result"]["to_version"]) == (
        "succeeded", "bg", "1.1.0")


async def test_unknown_operation_is_404(api: Api) -> None:
    r = await api.client.get("/api/v1/operations/0123456789abcdef")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "operation.not_found"


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        kind = data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if kind and data is not None:
            out.append((kind, data))
    return out


async def _subscribed(api: Api, count: int) -> None:
    broker = api.app.state.api.broker
    deadline = time.monotonic() + 10
    while broker.subscribers < count:
        assert time.monotonic() < deadline, "the stream did not subscribe"
        await asyncio.sleep(0.01)


async def test_event_stream_carries_lifecycle_changes(
    api: Api, make_package: MakePackage
) -> None:
    assert (await api.install(make_package("watched"))).status_code == 201
    reader = asyncio.create_task(api.client.get(
        "/api/v1/events?kinds=lifecycle&plugin_id=watched&max_events=2"))
    await _subscribed(api, 1)
    assert (await api.client.post("/api/v1/plugins/watched/deactivate")).status_code == 200
    assert (await api.client.post("/api/v1/plugins/watched/activate")).status_code == 200
    r = await asyncio.wait_for(reader, 10)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    assert [(k, d["plugin_id"], d["old"], d["new"]) for k, d in events] == [
        ("lifecycle", "watched", "active", "deactivated"),
        ("lifecycle", "watched", "deactivated", "active"),
    ]


async def test_event_stream_carries_operation_progress(
    api: Api, make_package: MakePackage
) -> None:
    reader = asyncio.create_task(api.client.get("/api/v1/events?kinds=operation&max_events=3"))
    await _subscribed(api, 1)
    package = make_package("streamed")
    with package.open("rb") as fh:
        r = await api.client.post("/api/v1/plugins/install?async=true",
                                  data={"source": "local"},
                                  files={"file": (package.name, fh, "application/zip")})
    assert r.status_code == 202
    events = _events((await asyncio.wait_for(reader, 20)).text)
    assert [d["status"] for _, d in events][:2] == ["pending", "running"]
    assert {d["id"] for _, d in events} == {r.json()["id"]}


async def test_unknown_event_kind_is_400(api: Api) -> None:
    r = await api.client.get("/api/v1/events?kinds=gossip")
    assert r.status_code == 400
    assert "gossip" in r.json()["error"]["message"]


async def test_event_stream_carries_plugin_bus_events(api: Api) -> None:
    bus = getattr(api.service.host, "bus", None)
    assert bus is not None, "the host has an event bus"
    reader = asyncio.create_task(api.client.get("/api/v1/events?kinds=plugin&max_events=2"))
    await _subscribed(api, 1)
    bus.emit("orders.created", {"order": 42})  # the host emits (plugins need a grant)
    bus.emit("orders.shipped.express", {"order": 42})
    events = _events((await asyncio.wait_for(reader, 10)).text)
    assert [(k, d["topic"], d["plugin_id"], d["payload"]) for k, d in events] == [
        ("plugin", "orders.created", None, {"order": 42}),
        ("plugin", "orders.shipped.express", None, {"order": 42}),
    ]


async def test_a_payload_too_deep_to_encode_does_not_break_the_stream(api: Api) -> None:
    bus = api.service.host.bus
    reader = asyncio.create_task(api.client.get("/api/v1/events?kinds=plugin&max_events=2"))
    await _subscribed(api, 1)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    bus.emit("orders.deep", {"order": deep})
    bus.emit("orders.after", {"order": 1})
    events = _events((await asyncio.wait_for(reader, 10)).text)
    assert [(d["topic"], d["payload"]) for _, d in events] == [
        ("orders.deep", None), ("orders.after", {"order": 1})]
    assert "could not be encoded" in events[0][1]["error"]


async def test_operations_list_is_a_page_like_every_other_list(
    api: Api, make_package: MakePackage
) -> None:
    import jsonschema

    from plughost.services.resources import page_schema

    ids = []
    for pid in ("op-a", "op-b", "op-c"):
        package = make_package(pid)
        with package.open("rb") as fh:
            r = await api.client.post("/api/v1/plugins/install?async=true",
                                      data={"source": "local"},
                                      files={"file": (package.name, fh, "application/zip")})
        assert r.status_code == 202, r.text
        ids.append((await _wait_operation(api, r.json()["id"]))["id"])
    first = (await api.client.get("/api/v1/operations?limit=2")).json()
    jsonschema.validate(first, page_schema("operation"))
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (await api.client.get(
        f"/api/v1/operations?limit=2&cursor={first['next_cursor']}")).json()
    assert rest["next_cursor"] is None
    assert sorted(o["id"] for o in first["items"] + rest["items"]) == sorted(ids)
