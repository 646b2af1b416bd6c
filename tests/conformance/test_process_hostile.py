"""Conformance, process runtime: hostile plugins are contained, the host and a neighbour live.

Every case runs one hostile ``runtime = "process"`` plugin (tests/conformance/plugins/hostile.py)
next to a well-behaved neighbour in a real PluginHost, checks the failure is the one its limit
promises (and that nothing it was refused happened), then checks that the neighbour still answers
and that the hostile plugin is back in service (its process was replaced).

What the plugin does on its own, around the host, is confined by the kernel (Landlock, seccomp, a
pids cgroup, an empty network namespace): tests/runtimes/process/test_confine.py tries each way
out; the last case here tries its own socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from plughost import PluginHost, State
from plughost.errors import PluginCrashed, PluginTimeout, ProtocolError
from plughost.observability.health import RestartPolicy
from plughost.runtimes.process.launch import _libc
from plughost.runtimes.process.runtime import ProcessOptions, ProcessRuntime

from . import shared
from .conftest import CASES, Services, write_plugin
from .shared import back_in_service, eventually, host_beside_a_neighbour

HERE = Path(__file__).parent


def network_namespaces_work() -> bool:
    """Whether this machine lets a child leave the network namespace (root or user namespaces)."""
    import subprocess
    import sys

    code = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "ok = libc.unshare(0x40000000) == 0 or libc.unshare(0x50000000) == 0\n"
        "sys.exit(0 if ok else 1)\n"
    )
    return _libc() is not None and subprocess.run([sys.executable, "-c", code]).returncode == 0


@asynccontextmanager
async def hostile_host(
    tmp_path: Path,
    services: Services,
    *,
    limits: Mapping[str, Any] | None = None,
    options: ProcessOptions | None = None,
) -> AsyncIterator[tuple[PluginHost, list[str]]]:
    def write(plugins: Path) -> None:
        write_plugin(plugins, "hostile", runtime="process", entry="hostile:Hostile",
                     limits=limits,
                     files={"hostile.py": (HERE / "plugins" / "hostile.py").read_text()})

    def runtime(on_event: Any) -> ProcessRuntime:
        return ProcessRuntime(
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
        # It cannot answer even the cancellation: SIGTERM after the grace, then a fresh process.
        await back_in_service(host, events)
        assert host.get("hostile").instance.stats()["timeouts"] == 1


async def test_infinite_loop_under_a_long_deadline_hits_the_cpu_limit(tmp_path, services) -> None:
    async with hostile_host(tmp_path, services, limits={"cpu": 1, "timeout": 30}) as (host, ev):
        with pytest.raises(PluginCrashed, match="cpu limit 1s exceeded"):
            await host.call("hostile", "infinite_loop")
        await back_in_service(host, ev)


async def test_memory_bomb_is_stopped_by_the_memory_limit(tmp_path, services) -> None:
    async with hostile_host(tmp_path, services, limits={"memory": "256Mi"}) as (host, events):
        with pytest.raises(PluginCrashed, match="memory limit 256 MiB exceeded"):
            await host.call("hostile", "memory_bomb")
        await back_in_service(host, events)


async def test_crash_mid_call_fails_the_call_quickly_and_restarts(tmp_path, services) -> None:
    await shared.crash_mid_call(hostile_host, tmp_path, services, match="killed by SIGKILL")


async def test_output_flood_is_rate_limited_and_the_neighbour_keeps_answering(
    tmp_path, services, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="plughost.plugin.hostile")
    async with hostile_host(tmp_path, services) as (host, _events):
        flood = asyncio.ensure_future(host.call("hostile", "output_flood", lines=200_000))
        while not flood.done():  # the neighbour answers all through the flood
            assert (await host.call("pyecho", "say", text="hi"))["text"] == "hi"
            await asyncio.sleep(0.01)
        assert await flood == 200_000
        instance = host.get("hostile").instance
        await eventually(lambda: instance.sink.dropped_lines + 100 >= 200_000 - 400)
        kept = [r for r in caplog.records if r.getMessage().startswith("flood")]
        summaries = [r for r in caplog.records if "dropped by the output limit" in r.getMessage()]
        elapsed_windows = len(summaries) + 1
        assert len(kept) <= 100 * (elapsed_windows + 1)
        assert instance.sink.dropped_lines > 150_000


async def test_oversized_message_ends_the_session_with_a_protocol_error(tmp_path, services):
    options = ProcessOptions(max_frame=1 << 20, cancel_grace=0.3, term_grace=0.5)
    async with hostile_host(tmp_path, services, options=options) as (host, events):
        with pytest.raises(ProtocolError) as info:
            await host.call("hostile", "oversized_message", size=4 << 20)
        assert info.value.code == "protocol.frame"
        assert "exceeds the limit of 1048576 bytes" in info.value.message
        await back_in_service(host, events)


async def test_forbidden_file_read_is_refused_at_the_boundary(tmp_path, services) -> None:
    await shared.forbidden_file_read(hostile_host, tmp_path, services)


async def test_forbidden_http_request_is_refused_at_the_boundary(tmp_path, services) -> None:
    await shared.forbidden_http_request(hostile_host, tmp_path, services)


@pytest.mark.skipif(not network_namespaces_work(), reason="cannot create network namespaces here")
async def test_forbidden_http_request_by_its_own_socket_reaches_nothing(tmp_path, services):
    # The same request without the host: the plugin declares no net: permission, so it runs in
    # an empty network namespace where even the host's loopback listener is unreachable.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        async with hostile_host(tmp_path, services) as (host, _events):
            assert host.get("hostile").instance.stats()["network_isolated"] is True
            answer = await host.call("hostile", "direct_socket", host="127.0.0.1", port=port)
            assert answer.startswith("refused: ")
            assert await host.call("pyecho", "say", text="x")


async def test_forbidden_event_emit_is_refused_and_a_granted_one_goes_through(
    tmp_path, services
) -> None:
    await shared.forbidden_event_emit(hostile_host, tmp_path, services, unknown_op=False)
