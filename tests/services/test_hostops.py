"""HostOps: the install pipeline's steps on the host, each after ``near`` registered what it
reads (where the host does not have every installed plugin)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from plughost.core.lifecycle import State
from plughost.core.manifest import load_manifest
from plughost.host import PluginHost
from plughost.services.hostops import HostOps
from tests.conftest import WritePlugin


async def test_each_operation_first_registers_what_it_reads(write_plugin: WritePlugin,
                                                            tmp_path: Path) -> None:
    lib = write_plugin("lib", directory=tmp_path / "v1")
    app = write_plugin("app", dependencies={"lib": "^1.0"}, optional={"extra": "*"},
                       directory=tmp_path / "v1")
    app2 = write_plugin("app", "2.0.0", dependencies={"lib": "^1.0"},
                        directory=tmp_path / "v2")
    host = PluginHost([], home=tmp_path / "home")
    asked: list[tuple[str, tuple[str, ...]]] = []

    async def near(plugin_id: str, *, uses: Any = ()) -> PluginHost:
        asked.append((plugin_id, tuple(uses)))
        if plugin_id == "app" and host.registry.find("lib") is None:
            host.add(load_manifest(lib), lib, source="installed")  # what app needs
            host.resolve(only=["lib"])
        return host

    loop = asyncio.get_running_loop()

    def run(coro: Any) -> Any:  # the undo callables run from worker threads
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    ops = HostOps(host, run, run_plugins=False, near=near)
    try:
        await ops.add(load_manifest(app), app, activate=False)
        assert host.get("app").state is State.RESOLVED  # lib was there when it resolved
        await ops.switch(load_manifest(app2), app2)
        assert str(host.get("app").manifest.version) == "2.0.0"
        await ops.remove("app")
        assert host.registry.find("app") is None
        assert asked == [("app", ("lib", "extra")), ("app", ("lib",)), ("app", ())]
    finally:
        await host.aclose()


async def test_without_near_the_host_is_used_as_it_is(write_plugin: WritePlugin,
                                                       tmp_path: Path) -> None:
    solo = write_plugin("solo", directory=tmp_path / "v1")
    host = PluginHost([], home=tmp_path / "home")
    ops = HostOps(host, lambda coro: None, run_plugins=False)
    try:
        await ops.add(load_manifest(solo), solo, activate=False)
        assert host.get("solo").state is State.RESOLVED
        assert await ops.remove("missing") is None  # nothing registered: nothing to undo
    finally:
        await host.aclose()
