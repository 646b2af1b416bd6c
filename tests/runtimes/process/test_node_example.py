"""examples/node-greeter: a plugin written in Node.js, driven through the process runtime."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from plughost.core.manifest import load_manifest
from plughost.errors import PluginTimeout
from plughost.runtimes.process.runtime import ProcessRuntime
from tests._tools import require_tool

from .conftest import Context

EXAMPLE = Path(__file__).parents[3] / "examples" / "node-greeter"



@pytest.fixture(autouse=True)
def _node() -> None:
    require_tool("node", "the Node example plugin runs on it")


async def start(runtime: ProcessRuntime):
    inst = await runtime.load(load_manifest(EXAMPLE), EXAMPLE)
    exports = await inst.start(Context({"greeting": "Howdy"}))
    return inst, exports


async def test_node_plugin_handshakes_and_declares_its_exports(runtime) -> None:
    inst, exports = await start(runtime)
    assert {(e.kind, e.name) for e in exports} >= {
        ("command", "greeter.greet"),
        ("hook", "greeting.format"),
    }
    assert inst.limits["timeout"] == 5
    assert (await inst.health()).data == {"greeted": 0}


async def test_node_command_calls_back_into_the_host_with_permission(runtime) -> None:
    runtime.handlers["host.emit"] = lambda pid, params: f"{pid} emitted {params['topic']}"
    inst, _ = await start(runtime)
    # conftest grants only allowed.topic/async.topic: greeter.greeted is refused at the boundary
    result = await inst.call("greet", {"name": "Ada"})
    assert result["text"] == "Howdy, Ada!"
    assert result["emitted"] == {"error": "permission.denied"}
    # many calls in flight at once, each one waiting on its own host call
    many = await asyncio.gather(*(inst.call("greet", {"name": str(i)}) for i in range(20)))
    assert sorted(r["greeted"] for r in many) == list(range(2, 22))
    assert [r["text"] for r in many] == [f"Howdy, {i}!" for i in range(20)]


async def test_node_extension_point_and_state(runtime) -> None:
    inst, _ = await start(runtime)
    assert (await inst.call("format", {"name": "Bo"})).startswith("Hi Bo, from Node v")
    await inst.import_state({"greeted": 41}, from_version="0.1.0")
    assert await inst.export_state() == {"greeted": 41}


async def test_node_call_is_cancelled_at_its_deadline_and_the_plugin_lives_on(runtime) -> None:
    inst, _ = await start(runtime)
    pid = inst.pid
    with pytest.raises(PluginTimeout):
        await inst.call("slow", {"ms": 2000}, timeout=0.1)
    await asyncio.sleep(0.5)  # past the cancel grace: it answered "cancelled", so not killed
    assert inst.pid == pid
    assert await inst.call("slow", {"ms": 1}) == 1


async def test_node_logs_arrive_in_the_plugin_logger(runtime, caplog) -> None:
    caplog.set_level(logging.INFO, logger="plughost.plugin.node-greeter")
    inst, _ = await start(runtime)
    await inst.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert 'activated with config {"greeting":"Howdy"}' in messages
    assert "deactivating" in messages
