"""Conformance, native runtime: hostile C libraries are contained, the host and a neighbour live.

The library (tests/conformance/plugins/hostile.c, compiled here with ``cc``) runs with the
default isolation — a supervised child process speaking the process protocol — next to a
well-behaved neighbour in a real PluginHost. Each case checks the failure is the one its limit
promises (and that nothing it was refused happened), that the neighbour still answers, and that
the hostile plugin is back in service (its child was replaced).

A trusted, in-process library is not contained (docs/native.md says so); its host operations
still pass the same permission checks, tested at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from plughost import PluginHost, State
from plughost.errors import (
    PermissionDenied,
    PluginCrashed,
    PluginError,
    PluginTimeout,
    ProtocolError,
)
from plughost.observability.health import RestartPolicy
from plughost.runtimes.native import NativeRuntime
from plughost.runtimes.process.runtime import ProcessOptions
from tests.fixtures.native import build_library

from . import shared
from .conftest import CASES, Services, write_plugin
from .shared import back_in_service, host_beside_a_neighbour

HERE = Path(__file__).parent


@asynccontextmanager
async def hostile_host(
    tmp_path: Path,
    services: Services,
    *,
    limits: Mapping[str, Any] | None = None,
    options: ProcessOptions | None = None,
    inprocess: bool = False,
) -> AsyncIterator[tuple[PluginHost, list[str]]]:
    def write(plugins: Path) -> None:
        folder = write_plugin(plugins, "hostile", runtime="native", entry="hostile.so",
                              limits=limits)
        build_library(HERE / "plugins" / "hostile.c", folder / "hostile.so")

    def runtime(on_event: Any) -> NativeRuntime:
        return NativeRuntime(
            inprocess={"hostile"} if inprocess else (),
            options=options or ProcessOptions(cancel_grace=0.3, term_grace=0.5, stop_grace=1.0),
            policy=RestartPolicy(initial_delay=0.01, max_delay=0.1),
            on_event=on_event,
        )

    async with host_beside_a_neighbour(tmp_path, services, write, runtime) as (host, events):
        assert host.get("hostile").state is State.ACTIVE
        yield host, events


def test_every_conformance_case_is_covered_here() -> None:
    tests = [name for name in globals() if name.startswith("test_")]
    missing = [c for c in CASES if not any(t.startswith(f"test_{c}_") for t in tests)]
    assert missing == []


async def test_infinite_loop_is_stopped_at_its_deadline(tmp_path, services) -> None:
    async with hostile_host(tmp_path, services, limits={"timeout": 0.5}) as (host, events):
        with pytest.raises(PluginTimeout):
            await host.call("hostile", "infinite_loop")
        await back_in_service(host, events)
        assert host.get("hostile").instance.stats()["timeouts"] == 1


async def test_memory_bomb_is_stopped_by_the_memory_limit(tmp_path, services) -> None:
    async with hostile_host(tmp_path, services, limits={"memory": "256Mi"}) as (host, events):
        with pytest.raises(PluginCrashed):
            await host.call("hostile", "memory_bomb")
        await back_in_service(host, events)


async def test_crash_mid_call_fails_the_call_and_restarts(tmp_path, services) -> None:
    await shared.crash_mid_call(hostile_host, tmp_path, services, match="SIGSEGV")


async def test_output_flood_is_rate_limited_and_the_neighbour_keeps_answering(
    tmp_path, services, caplog
) -> None:
    await shared.output_flood(hostile_host, tmp_path, services, caplog)


async def test_oversized_message_ends_the_session_with_a_protocol_error(tmp_path, services):
    options = ProcessOptions(max_frame=1 << 20, cancel_grace=0.3, term_grace=0.5)
    async with hostile_host(tmp_path, services, options=options) as (host, events):
        with pytest.raises(ProtocolError) as info:
            await host.call("hostile", "oversized_message", size=4 << 20)
        assert info.value.code == "protocol.frame"
        await back_in_service(host, events)


@pytest.mark.parametrize("inprocess", [False, True], ids=["process", "inprocess"])
async def test_bad_frames_from_the_library_fail_only_that_call(tmp_path, services,
                                                               inprocess) -> None:
    async with hostile_host(tmp_path, services, inprocess=inprocess) as (host, _events):
        with pytest.raises(PluginError) as info:  # the library answered badly, not the wire
            await host.call("hostile", "bad_json")
        assert info.value.code == "protocol.json" and info.value.plugin_id == "hostile"
        assert "result for 'bad_json' is not valid JSON" in info.value.message
        assert await host.call("hostile", "ping") == "pong"


async def test_forbidden_file_read_is_refused_at_the_boundary(tmp_path, services) -> None:
    await shared.forbidden_file_read(hostile_host, tmp_path, services)


async def test_forbidden_http_request_is_refused_at_the_boundary(tmp_path, services) -> None:
    await shared.forbidden_http_request(hostile_host, tmp_path, services)


async def test_forbidden_event_emit_is_refused_and_a_granted_one_goes_through(
    tmp_path, services
) -> None:
    await shared.forbidden_event_emit(hostile_host, tmp_path, services)


@pytest.mark.parametrize("case", ["file", "emit"])
async def test_trusted_inprocess_library_passes_the_same_permission_checks(
    tmp_path, services, case
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    async with hostile_host(tmp_path, services, inprocess=True) as (host, _events):
        assert host.get("hostile").instance.stats()["isolation"] == "inprocess"
        with pytest.raises(PermissionDenied):
            if case == "file":
                await host.call("hostile", "forbidden_file_read", path=str(secret))
            else:
                await host.call("hostile", "forbidden_event_emit", topic="admin.shutdown")
        assert await host.call("hostile", "ping") == "pong"
    assert services.reads == [] and services.events == []
