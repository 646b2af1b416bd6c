"""Conformance, gRPC runtime: hostile gRPC plugins are contained, the host and a neighbour live.

The hostile service (tests/conformance/plugins/grpc_hostile.py) is started by the host like any
gRPC plugin — handshake, Unix socket, health check — next to a well-behaved neighbour (a process
plugin) in a real PluginHost. Each case checks the failure is the one its limit promises, that
nothing it was refused happened, and that the neighbour still answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from plughost import PluginHost, State
from plughost.errors import (
    PluginCrashed,
    PluginTimeout,
    ProtocolError,
)
from plughost.observability.health import RestartPolicy
from plughost.runtimes.grpc import GrpcOptions, GrpcRuntime
from plughost.runtimes.process.runtime import ProcessOptions

from . import shared
from .conftest import CASES, Services, write_plugin
from .shared import eventually, host_beside_a_neighbour

HERE = Path(__file__).parent


@asynccontextmanager
async def hostile_host(
    tmp_path: Path,
    services: Services,
    *,
    limits: Mapping[str, Any] | None = None,
    options: GrpcOptions | None = None,
) -> AsyncIterator[tuple[PluginHost, list[str]]]:
    def write(plugins: Path) -> None:
        write_plugin(plugins, "hostile", runtime="grpc", entry="python grpc_hostile.py",
                     limits=limits,
                     files={"grpc_hostile.py": (HERE / "plugins" / "grpc_hostile.py").read_text()})

    def runtime(on_event: Any) -> GrpcRuntime:
        return GrpcRuntime(
            options=options or GrpcOptions(stop_grace=1.0),
            policy=RestartPolicy(initial_delay=0.01, max_delay=0.1),
            on_event=on_event,
        )

    async with host_beside_a_neighbour(tmp_path, services, write, runtime) as pair:
        yield pair


def test_every_conformance_case_is_covered_here() -> None:
    tests = [name for name in globals() if name.startswith("test_")]
    missing = [c for c in CASES if not any(t.startswith(f"test_{c}_") for t in tests)]
    assert missing == []


async def test_infinite_loop_is_stopped_at_its_deadline(tmp_path, services) -> None:
    async with hostile_host(tmp_path, services, limits={"timeout": 0.5}) as (host, _events):
        assert host.get("hostile").state is State.ACTIVE
        with pytest.raises(PluginTimeout):
            await host.call("hostile", "infinite_loop")
        assert await host.call("hostile", "ping") == "pong"  # its other workers still answer
        assert host.get("hostile").instance.stats()["timeouts"] == 1


async def test_infinite_loop_under_a_long_deadline_hits_the_cpu_limit(tmp_path, services):
    async with hostile_host(tmp_path, services, limits={"cpu": 2, "timeout": 30}) as (host, ev):
        with pytest.raises(PluginCrashed):
            await host.call("hostile", "infinite_loop")
        await eventually(lambda: "restarted" in ev)
        assert await host.call("hostile", "ping") == "pong"


async def test_memory_bomb_is_stopped_by_the_memory_limit(tmp_path, services) -> None:
    limits = {"memory": "1Gi", "timeout": 5}
    async with hostile_host(tmp_path, services, limits=limits) as (host, ev):
        assert await host.call("hostile", "ping", timeout=30) == "pong"
        # out of memory, the plugin exits, or is found hung after the deadline and killed
        with pytest.raises((PluginCrashed, PluginTimeout)):
            await host.call("hostile", "memory_bomb")
        await eventually(lambda: "restarted" in ev, timeout=30)
        assert await host.call("hostile", "ping", timeout=30) == "pong"


async def test_crash_mid_call_fails_the_call_and_restarts(tmp_path, services) -> None:
    await shared.crash_mid_call(hostile_host, tmp_path, services)


async def test_output_flood_is_rate_limited_and_the_neighbour_keeps_answering(
    tmp_path, services, caplog
) -> None:
    await shared.output_flood(hostile_host, tmp_path, services, caplog)


async def test_oversized_message_is_refused_with_a_protocol_error(tmp_path, services):
    options = GrpcOptions(process=ProcessOptions(max_frame=1 << 20))
    async with hostile_host(tmp_path, services, options=options) as (host, _events):
        with pytest.raises(ProtocolError) as info:
            await host.call("hostile", "oversized_message", size=4 << 20)
        assert info.value.code == "protocol.frame"
        assert await host.call("hostile", "ping") == "pong"


async def test_a_reply_that_is_not_json_is_a_protocol_json_error(tmp_path, services) -> None:
    async with hostile_host(tmp_path, services) as (host, _events):
        with pytest.raises(ProtocolError) as info:
            await host.call("hostile", "bad_json")
        error = info.value
        assert error.code == "protocol.json" and error.plugin_id == "hostile"
        assert "result_json of call 'bad_json'" in error.message
        assert "not valid JSON" in error.message and "'{\"half\": '" in error.message
        assert await host.call("hostile", "ping") == "pong"  # the service goes on
        assert (await host.call("pyecho", "say", text="hi"))["text"] == "hi"


@pytest.mark.parametrize("kind", ["garbage", "version"])
async def test_bad_handshake_fails_that_plugin_alone(tmp_path, services, monkeypatch, kind):
    monkeypatch.setenv("HOSTILE_HANDSHAKE", kind)
    options = GrpcOptions(process=ProcessOptions(
        env_passthrough=(*ProcessOptions().env_passthrough, "HOSTILE_HANDSHAKE")))
    async with hostile_host(tmp_path, services, options=options) as (host, _events):
        record = host.get("hostile")
        assert record.state is State.FAILED
        assert record.error is not None
        if kind == "garbage":
            assert record.error.code == "protocol.handshake"
            assert "not a handshake" in record.error.message
        else:
            assert record.error.code == "protocol.version"
            assert "app protocol 7" in record.error.message
            assert "app protocol 1" in record.error.message


async def test_forbidden_file_read_is_refused_at_the_boundary(tmp_path, services) -> None:
    await shared.forbidden_file_read(hostile_host, tmp_path, services)


async def test_forbidden_http_request_is_refused_at_the_boundary(tmp_path, services) -> None:
    await shared.forbidden_http_request(hostile_host, tmp_path, services)


async def test_forbidden_event_emit_is_refused_and_a_granted_one_goes_through(
    tmp_path, services
) -> None:
    await shared.forbidden_event_emit(hostile_host, tmp_path, services)


async def test_going_around_the_host_is_stopped_by_the_kernel(tmp_path, services) -> None:
    # the same confinement as a process plugin: the package (read-only), what the
    # interpreter needs, a private temporary directory, and nothing else
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    async with hostile_host(tmp_path, services) as (host, _events):
        assert await host.call("hostile", "ping") == "pong"
        stats = host.get("hostile").instance.stats()
        assert stats["confinement"] == "cgroup+landlock+seccomp"
        package = tmp_path / "plugins" / "hostile"
        assert await host.call("hostile", "open_directly", path=str(package / "plugin.toml"))
        assert not await host.call("hostile", "open_directly", path=str(secret))
        assert not await host.call("hostile", "open_directly", path="/etc/shadow")
        assert not await host.call("hostile", "open_directly",
                                   path=str(package / "planted.txt"), mode="w")
        assert not await host.call("hostile", "spawn")  # no process:spawn grant
    assert not (tmp_path / "plugins" / "hostile" / "planted.txt").exists()
