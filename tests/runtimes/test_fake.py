from __future__ import annotations

import asyncio

import pytest

from plughost.core.context import PluginContext
from plughost.core.manifest import manifest_from_dict
from plughost.errors import PluginActivationError, PluginLoadError, PluginTimeout
from plughost.runtimes.base import Export, PluginInstance, Runtime
from plughost.runtimes.fake import FakePlugin, FakeRuntime

M = manifest_from_dict({"id": "fake-one", "name": "F", "version": "1.0.0", "entry": "m:P"})


async def test_fake_runtime_drives_a_scripted_plugin() -> None:
    runtime = FakeRuntime()
    assert isinstance(runtime, Runtime)

    async def slow() -> None:
        await asyncio.sleep(5)

    runtime.define(FakePlugin("fake-one", handlers={"add": lambda a, b: a + b, "slow": slow},
                              exports=[Export("command", "fake.add", "add")]))
    instance = await runtime.load(M, None)
    assert isinstance(instance, PluginInstance)
    exports = await instance.start(PluginContext(M))
    assert exports == (Export("command", "fake.add", "add"),)
    assert await instance.call("add", {"a": 2, "b": 3}) == 5
    assert instance.local_callable("add") is None  # behaves like an out-of-process plugin
    with pytest.raises(PluginTimeout):
        await instance.call("slow", timeout=0.01)
    await instance.stop()
    await instance.close()
    assert [entry[0] for entry in instance.log] == ["start", "call", "call", "stop", "close"]


async def test_fake_failures_map_to_the_right_errors() -> None:
    runtime = FakeRuntime()
    runtime.define(FakePlugin("fake-one", fail_on={"load": RuntimeError("no")}))
    with pytest.raises(PluginLoadError):
        await runtime.load(M, None)
    runtime.define(FakePlugin("fake-one", fail_on={"start": RuntimeError("no")}))
    instance = await runtime.load(M, None)
    with pytest.raises(PluginActivationError):
        await instance.start(PluginContext(M))
