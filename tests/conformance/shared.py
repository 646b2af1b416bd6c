"""What the hostile suites of the runtimes that start processes have in common: the host they
run in (the hostile plugin beside a well-behaved neighbour) and the cases whose expectations are
the same on every such runtime. Each runtime's module keeps its own test per case (the
conformance coverage check reads their names) and states only what differs."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from plughost import PluginHost, State
from plughost.core.contract import Runtime
from plughost.errors import PermissionDenied, PluginCrashed, PluginError

from .conftest import Services

NEIGHBOUR = Path(__file__).parent.parent / "runtimes" / "process" / "plugins" / "pyecho"

HostPair = tuple[PluginHost, list[str]]
HostileHost = Callable[..., AbstractAsyncContextManager[HostPair]]
"""``hostile_host(tmp_path, services, **options)`` of one runtime's module."""


async def eventually(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def host_beside_a_neighbour(
    tmp_path: Path,
    services: Services,
    write_hostile: Callable[[Path], object],
    make_runtime: Callable[[Callable[[Any], None]], Runtime],
) -> AsyncIterator[HostPair]:
    """A real host with the hostile plugin (``write_hostile(plugins_dir)``, on the runtime
    ``make_runtime(on_supervisor_event)``) and the neighbour; the neighbour must still answer
    at the end of the case. Yields the host and the supervisor events seen so far."""
    plugins = tmp_path / "plugins"
    write_hostile(plugins)
    shutil.copytree(NEIGHBOUR, plugins / "pyecho")
    host = PluginHost([plugins])
    events: list[str] = []

    def on_event(event: Any) -> None:
        events.append(event.kind)
        host._on_supervisor_event(event)

    host.add_runtime(make_runtime(on_event))
    host.add_extension(services)
    async with host:
        await host.start()
        assert host.get("pyecho").state is State.ACTIVE
        yield host, events
        result = await host.call("pyecho", "say", text="still fine")  # it never noticed
        assert result["text"] == "still fine"


async def back_in_service(host: PluginHost, events: list[str], timeout: float = 10.0) -> None:
    await eventually(lambda: "restarted" in events, timeout)
    assert await host.call("hostile", "ping") == "pong"


# ------------------------------------------------------------------------------- the cases


async def crash_mid_call(hostile_host: HostileHost, tmp_path: Path, services: Services,
                         match: str | None = None) -> None:
    async with hostile_host(tmp_path, services) as (host, events):
        neighbour_calls = [host.call("pyecho", "nap", seconds=0.2) for _ in range(5)]
        with pytest.raises(PluginCrashed, match=match):
            await host.call("hostile", "crash_mid_call")
        assert await asyncio.gather(*neighbour_calls) == [0.2] * 5
        await back_in_service(host, events)
        stats = host.get("hostile").instance.stats()
        assert stats["crashes"] == 1 and stats["restarts"] == 1


async def output_flood(hostile_host: HostileHost, tmp_path: Path, services: Services,
                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plughost.plugin.hostile")
    async with hostile_host(tmp_path, services) as (host, _events):
        flood = asyncio.ensure_future(host.call("hostile", "output_flood", lines=100_000))
        while not flood.done():  # the neighbour answers all through the flood
            assert (await host.call("pyecho", "say", text="hi"))["text"] == "hi"
            await asyncio.sleep(0.01)
        assert await flood == 100_000
        instance = host.get("hostile").instance
        await eventually(lambda: instance.sink.dropped_lines > 50_000)
        kept = [r for r in caplog.records if r.getMessage().startswith("flood")]
        assert len(kept) < 10_000


async def forbidden_file_read(hostile_host: HostileHost, tmp_path: Path,
                              services: Services) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    async with hostile_host(tmp_path, services) as (host, _events):
        with pytest.raises(PermissionDenied, match="fs:read"):
            await host.call("hostile", "forbidden_file_read", path=str(secret))
    assert services.reads == []
    assert services.grants.denied == [("fs:read", str(secret))]


async def forbidden_http_request(hostile_host: HostileHost, tmp_path: Path,
                                 services: Services) -> None:
    async with hostile_host(tmp_path, services) as (host, _events):
        with pytest.raises(PermissionDenied, match=r"net:evil\.example:443"):
            await host.call("hostile", "forbidden_http_request", url="https://evil.example/x")
    assert services.requests == []


async def forbidden_event_emit(hostile_host: HostileHost, tmp_path: Path, services: Services,
                               *, unknown_op: bool = True) -> None:
    services.grants.pairs.add(("events:emit", "hostile.allowed"))
    async with hostile_host(tmp_path, services) as (host, _events):
        with pytest.raises(PermissionDenied, match=r"events:emit:admin\.shutdown"):
            await host.call("hostile", "forbidden_event_emit", topic="admin.shutdown")
        assert await host.call("hostile", "forbidden_event_emit", topic="hostile.allowed") == 1
        if unknown_op:
            with pytest.raises(PluginError, match=r"host\.shell\.run"):
                await host.call("hostile", "unknown_host_op")
    assert services.events == [("hostile.allowed", {"evil": True})]
