"""Conformance, WebAssembly runtime: hostile plugins are contained, the host and a neighbour live.

Each case installs one hostile ``runtime = "wasm"`` plugin (tests/runtimes/wasm/wat_modules.py,
WebAssembly text compiled by the runtime) next to the well-behaved ``examples/wasm-hello`` plugin
in a real :class:`PluginHost` with the shared recording services (conftest), calls the hostile
plugin, checks that the failure is the one its limit promises (and that nothing it was refused
happened), then checks that the neighbour still answers and that the hostile plugin is back in
service: a trapped sandbox is replaced after the supervisor's backoff.

Nothing in the suite is out of reach for wasm: the guest has no system calls of its own, so a
file outside its grants is not reachable at all (WASI sees only the preopened directories), and
the network exists only through the permission-checked ``http_request`` host function.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plughost.core.lifecycle import State
from plughost.errors import (
    PermissionDenied,
    PlughostError,
    PluginCrashed,
    PluginTimeout,
    ProtocolError,
)
from plughost.host import PluginHost
from plughost.observability.health import RestartPolicy, Supervisor
from plughost.runtimes.wasm import WasmRuntime
from tests.runtimes.wasm import wat_modules

from .conftest import CASES, Services, write_plugin

EXAMPLE = Path(__file__).parents[2] / "examples" / "wasm-hello"


@dataclass(frozen=True)
class Case:
    name: str
    wat: str
    limits: dict[str, Any]
    error: type[PlughostError] | None
    match: str
    handler: str = "run"
    detail: tuple[str, Any] | None = None

    @property
    def plugin_id(self) -> str:
        return self.name.replace("_", "-")  # plugin ids allow no underscores


WASM_CASES = [
    Case(
        "infinite_loop",
        wat_modules.SPIN,
        {"timeout": 0.1},
        PluginTimeout,
        r"ran past its 0.1 s deadline",
        detail=("limit", "timeout"),
    ),
    Case(
        "infinite_loop_fuel",
        wat_modules.SPIN,
        {"timeout": 30, "fuel": 200_000},
        PluginTimeout,
        r"used all of its 200000 fuel units",
        detail=("limit", "fuel"),
    ),
    Case(
        "memory_bomb",
        wat_modules.MEMORY_BOMB,
        {"memory": "2Mi"},
        PluginCrashed,
        r"memory limit 2 MiB exceeded",
        detail=("limit", "memory"),
    ),
    Case(
        # one grow from 7 MiB past a 16 MiB cap, then a trap: was reported as a generic trap
        "memory_one_big_grow",
        wat_modules.BIG_GROW,
        {"memory": "16Mi"},
        PluginCrashed,
        r"memory limit 16 MiB exceeded \(linear memory is 7 MiB; growing it to 17 MiB was refused",
        detail=("limit", "memory"),
    ),
    Case("crash_mid_call", wat_modules.CRASH, {}, PluginCrashed, r"unreachable"),
    Case(
        "crash_mid_call_stack_overflow",
        wat_modules.CRASH,
        {},
        PluginCrashed,
        r"call stack exhausted",
        handler="recurse",
    ),
    Case("output_flood", wat_modules.LOG_FLOOD, {"output": 8192}, None, ""),
    Case("output_flood_stdout", wat_modules.STDOUT_FLOOD, {"output": 8192}, None, ""),
    Case(
        "oversized_message",
        wat_modules.OVERSIZED,
        {},
        ProtocolError,
        r"returned a 64 MiB message",
        detail=None,
    ),
    Case("forbidden_file_read", wat_modules.WASI_FILES, {}, None, "", handler="steal"),
    Case(
        "forbidden_http_request",
        wat_modules.FORBIDDEN_HTTP,
        {},
        PermissionDenied,
        r"net:evil\.example\.com:80 is not granted",
    ),
    Case(
        "forbidden_event_emit",
        wat_modules.FORBIDDEN_EMIT,
        {},
        PermissionDenied,
        r"events:emit:system\.shutdown is not granted",
    ),
]


def _write_plugin(root: Path, case: Case) -> None:
    write_plugin(
        root,
        case.plugin_id,
        runtime="wasm",
        entry="plugin.wat",
        limits=case.limits,
        files={"plugin.wat": case.wat},
    )


@pytest.fixture
async def world(tmp_path, services: Services):
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLE, plugins / "wasm-hello")
    host = PluginHost([plugins], home=tmp_path / "home")
    policy = RestartPolicy(initial_delay=0.01, max_delay=0.1)
    host.add_runtime(
        WasmRuntime(supervisor=lambda: Supervisor(policy), on_event=host._on_supervisor_event)
    )
    host.add_extension(services)
    yield host, services, plugins
    await host.aclose()
    assert not any(t.name == "plughost-wasm-epoch" for t in threading.enumerate())


async def _back_in_service(instance: Any) -> None:
    deadline = time.monotonic() + 10
    while not (await instance.health()).ok:
        assert time.monotonic() < deadline, "the hostile plugin never came back"
        await asyncio.sleep(0.01)


async def _neighbour_answers(host: PluginHost) -> None:
    assert await host.call("wasm-hello", "greet", name="neighbour") == {
        "greeting": "hello from wasm",
        "request": {"name": "neighbour"},
    }


@pytest.mark.parametrize("case", WASM_CASES, ids=lambda c: c.name)
async def test_hostile_wasm_plugin_is_contained(world, case: Case, caplog) -> None:
    host, services, plugins = world
    _write_plugin(plugins, case)
    caplog.set_level(logging.INFO, logger=f"plughost.plugin.{case.plugin_id}")
    report = await host.start()
    assert report.ok, str(report)
    await _neighbour_answers(host)

    if case.error is not None:
        with pytest.raises(case.error, match=case.match) as info:
            await host.call(case.plugin_id, case.handler)
        if case.detail is not None:
            key, value = case.detail
            assert info.value.details[key] == value
    else:
        started = time.monotonic()
        result = await host.call(case.plugin_id, case.handler)
        elapsed = time.monotonic() - started
        if case.name == "forbidden_file_read":
            assert result == "denied"  # neither /etc/passwd nor ../outside.txt opened
        if case.name.startswith("output_flood"):
            stats = host.get(case.plugin_id).instance.stats()
            lines = [r for r in caplog.records if r.name == f"plughost.plugin.{case.plugin_id}"]
            # 8 KiB/s of 1 KiB lines: the one-second burst, then a line (and the warning that
            # reports the drop) per 1/8 s the flood lasted, not 5000 lines
            assert len(lines) <= 10 + 2 * int(elapsed * 8)
            assert stats["log_dropped_bytes"] > 4_000_000

    # nothing the plugin was refused happened
    assert services.requests == [] and services.events == [] and services.reads == []
    # the host and the neighbour keep working
    await _neighbour_answers(host)
    assert host.get("wasm-hello").state is State.ACTIVE
    # the hostile plugin is still registered and active: a trapped sandbox was replaced
    record = host.get(case.plugin_id)
    assert record.state is State.ACTIVE
    await _back_in_service(record.instance)


async def test_every_hostile_plugin_at_once_leaves_the_neighbour_working(world) -> None:
    host, services, plugins = world
    for case in WASM_CASES:
        _write_plugin(plugins, case)
    assert (await host.start()).ok
    for case in WASM_CASES:
        if case.error is None:
            await host.call(case.plugin_id, case.handler)
        else:
            with pytest.raises(case.error):
                await host.call(case.plugin_id, case.handler)
        await _neighbour_answers(host)
    assert services.requests == [] and services.events == []
    assert host.get("wasm-hello").instance.stats()["errors"] == 0


def test_every_conformance_case_is_covered_here() -> None:
    names = [case.name for case in WASM_CASES]
    missing = [c for c in CASES if not any(n == c or n.startswith(f"{c}_") for n in names)]
    assert missing == []
