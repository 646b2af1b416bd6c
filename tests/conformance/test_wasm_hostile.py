"""Conformance, WebAssembly runtime: hostile plugins are contained, the host and a neighbour live.

Each case installs one hostile ``runtime = "wasm"`` plugin next to the well-behaved
``examples/wasm-hello`` plugin in a real :class:`PluginHost`, calls the hostile plugin, checks
that the failure is the one its limit promises (and that nothing it was refused happened), then
checks that the neighbour still answers and that the hostile plugin itself is back in service
(its sandbox was replaced) unless the case is one the runtime merely refuses.

The same hostile behaviours run against the process runtime in ``test_process_*``.
"""

from __future__ import annotations

import logging
import shutil
import textwrap
import threading
from dataclasses import dataclass, field
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
from plughost.runtimes.wasm import WasmRuntime
from tests.runtimes.wasm import wat_modules

EXAMPLE = Path(__file__).parents[2] / "examples" / "wasm-hello"


class Grants:
    """The permission service: exact (kind, target) pairs; everything else is denied."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = set(pairs)
        self.denied: list[tuple[str, str]] = []

    def check(self, kind: str, target: str) -> None:
        if (kind, target) not in self.pairs:
            self.denied.append((kind, target))
            raise PermissionDenied(f"{kind} {target!r} is not granted")


@dataclass
class Services:
    """Host services the plugins may reach; records every use so a test can prove none leaked."""

    grants: Grants = field(
        default_factory=lambda: Grants(("events:emit", "hello.greeted"), ("net", "api.ok:443"))
    )
    events: list[tuple[str, Any]] = field(default_factory=list)
    fetched: list[Any] = field(default_factory=list)

    def emit(self, topic: str, payload: Any) -> None:
        self.events.append((topic, payload))

    def request_json(self, request: Any) -> Any:
        self.fetched.append(request)
        return {"status": 200}

    # HostExtension: attach the services to every plugin context
    def prepare_context(self, record: Any, context: Any) -> None:
        context.attach("permissions", self.grants)
        context.attach("bus", self)
        context.attach("http", self)


@dataclass(frozen=True)
class Case:
    name: str
    wat: str
    limits: str
    error: type[PlughostError] | None
    match: str
    handler: str = "run"
    detail: tuple[str, Any] | None = None

    @property
    def plugin_id(self) -> str:
        return self.name.replace("_", "-")  # plugin ids allow no underscores


CASES = [
    Case(
        "infinite_loop",
        wat_modules.SPIN,
        "timeout = 0.1",
        PluginTimeout,
        r"ran past its 0.1 s deadline",
        detail=("limit", "timeout"),
    ),
    Case(
        "infinite_loop_fuel",
        wat_modules.SPIN,
        "timeout = 30\nfuel = 200000",
        PluginTimeout,
        r"used all of its 200000 fuel units",
        detail=("limit", "fuel"),
    ),
    Case(
        "memory_bomb",
        wat_modules.MEMORY_BOMB,
        'memory = "2Mi"',
        PluginCrashed,
        r"memory limit 2 MiB exceeded",
        detail=("limit", "memory"),
    ),
    Case("crash_mid_call", wat_modules.CRASH, "", PluginCrashed, r"unreachable"),
    Case(
        "crash_mid_call_stack_overflow",
        wat_modules.CRASH,
        "",
        PluginCrashed,
        r"call stack exhausted",
        handler="recurse",
    ),
    Case("output_flood", wat_modules.LOG_FLOOD, "output = 8192", None, ""),
    Case("output_flood_stdout", wat_modules.STDOUT_FLOOD, "output = 8192", None, ""),
    Case(
        "oversized_message",
        wat_modules.OVERSIZED,
        "",
        ProtocolError,
        r"returned a 64 MiB message",
        detail=None,
    ),
    Case("forbidden_file_read", wat_modules.WASI_FILES, "", None, "", handler="steal"),
    Case(
        "forbidden_http_request",
        wat_modules.FORBIDDEN_HTTP,
        "",
        PermissionDenied,
        r"net 'evil\.example\.com:80' is not granted",
    ),
    Case(
        "forbidden_event_emit",
        wat_modules.FORBIDDEN_EMIT,
        "",
        PermissionDenied,
        r"events:emit 'system\.shutdown' is not granted",
    ),
]


def _write_plugin(root: Path, case: Case) -> None:
    folder = root / case.plugin_id
    folder.mkdir(parents=True)
    wat_modules.write(folder, "plugin", case.wat)
    (folder / "plugin.toml").write_text(
        textwrap.dedent(
            f"""\
            id = "{case.plugin_id}"
            name = "hostile {case.plugin_id}"
            version = "1.0.0"
            runtime = "wasm"
            entry = "plugin.wat"

            [provides]
            commands = ["{case.handler}"]

            [limits]
            """
        )
        + case.limits
        + "\n"
    )


@pytest.fixture
async def world(tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLE, plugins / "wasm-hello")
    services = Services()
    host = PluginHost([plugins], home=tmp_path / "home", runtimes=[WasmRuntime(supervisor=None)])
    host.add_extension(services)
    yield host, services, plugins
    await host.aclose()
    assert not any(t.name == "plughost-wasm-epoch" for t in threading.enumerate())


async def _neighbour_answers(host: PluginHost) -> None:
    assert await host.call("wasm-hello", "greet", name="neighbour") == {
        "greeting": "hello from wasm",
        "request": {"name": "neighbour"},
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
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
        result = await host.call(case.plugin_id, case.handler)
        if case.name == "forbidden_file_read":
            assert result == "denied"  # neither /etc/passwd nor ../outside.txt opened
        if case.name.startswith("output_flood"):
            stats = host.get(case.plugin_id).instance.stats()
            lines = [r for r in caplog.records if r.name == f"plughost.plugin.{case.plugin_id}"]
            assert len(lines) <= 10 and stats["log_dropped_bytes"] > 4_000_000

    # nothing the plugin was refused happened
    assert services.fetched == []
    assert all(topic == "hello.greeted" for topic, _ in services.events)
    # the host and the neighbour keep working
    await _neighbour_answers(host)
    assert host.get("wasm-hello").state is State.ACTIVE
    # the hostile plugin is still registered and active: a trapped sandbox was replaced
    record = host.get(case.plugin_id)
    assert record.state is State.ACTIVE
    assert (await record.instance.health()).ok


async def test_every_hostile_plugin_at_once_leaves_the_neighbour_working(world) -> None:
    host, services, plugins = world
    for case in CASES:
        _write_plugin(plugins, case)
    assert (await host.start()).ok
    for case in CASES:
        if case.error is None:
            await host.call(case.plugin_id, case.handler)
        else:
            with pytest.raises(case.error):
                await host.call(case.plugin_id, case.handler)
        await _neighbour_answers(host)
    assert services.fetched == []
    assert host.get("wasm-hello").instance.stats()["errors"] == 0
