"""The host allocates wasm linear memories itself (runtimes/wasm/memory.py): the cap is enforced
per memory, every refusal is seen, and every memory is released with its store."""

from __future__ import annotations

import pytest

from plughost.errors import PluginActivationError, PluginCrashed
from plughost.runtimes.wasm import WasmBindings, WasmLimits

from . import wat_modules


async def test_memories_are_released_with_their_stores(runtime, tmp_path) -> None:
    path = wat_modules.write(tmp_path, "echo", wat_modules.ECHO)
    instances = [runtime.load_file(f"echo{i}", path) for i in range(3)]
    for inst in instances:
        await inst.start(WasmBindings())
    assert runtime.memories.live == 3
    await instances[0].stop()
    assert runtime.memories.live == 2
    for inst in instances:
        await inst.close()
    assert runtime.memories.live == 0


async def test_a_module_whose_initial_memory_exceeds_the_cap_is_refused(runtime, tmp_path) -> None:
    path = wat_modules.write(tmp_path, "big", wat_modules.BIG_GROW)  # 7 MiB to start with
    inst = runtime.load_file("big", path, limits=WasmLimits(memory=4 << 20))
    with pytest.raises(PluginActivationError, match=r"memory limit is 4 MiB"):
        await inst.start(WasmBindings())
    assert runtime.memories.live == 0


async def test_growth_within_the_cap_works_and_the_memory_stays_usable(load) -> None:
    bomb = load("bomb", wat_modules.MEMORY_BOMB, limits=WasmLimits(memory=2 << 20))
    with pytest.raises(PluginCrashed, match=r"memory limit 2 MiB exceeded"):
        await bomb.call("run", {})
    # the trapped store was replaced: a fresh one, back at its initial size, serves calls
    assert bomb.export_function("pages")() == 1
    echo = load("echo", wat_modules.ECHO, limits=WasmLimits(memory=2 << 20))
    big = {"blob": "x" * (400 << 10)}  # request + answer: the memory grows past 1 MiB
    assert await echo.call("echo", big) == big
