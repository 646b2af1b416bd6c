"""WasmRuntime: loading from a manifest, ABI checks at load, ticker and close ownership."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from plughost.core.manifest import Limits, Manifest, manifest_from_dict
from plughost.errors import PluginActivationError, PluginLoadError, PluginUnavailable
from plughost.runtimes.base import Runtime
from plughost.runtimes.wasm import WasmBindings, WasmLimits, WasmRuntime, limits_from_manifest

from . import wat_modules

EXAMPLE = Path(__file__).parents[3] / "examples" / "wasm-hello"


def _ticker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "plughost-wasm-epoch"]


def test_runtime_satisfies_the_runtime_protocol(runtime):
    assert isinstance(runtime, Runtime)
    assert runtime.name == "wasm"
    assert runtime.enforces == {"timeout", "memory", "fuel", "output"}


def test_module_importing_an_unknown_host_function_is_refused_at_load(runtime, tmp_path):
    path = wat_modules.write(tmp_path, "bad", wat_modules.BAD_IMPORT)
    with pytest.raises(PluginLoadError, match=r"imports env\.system, which the host does not"):
        runtime.load_file("bad", path)


def test_module_without_the_abi_exports_lists_every_problem(runtime, tmp_path):
    path = wat_modules.write(tmp_path, "main", wat_modules.NOT_A_PLUGIN)
    with pytest.raises(PluginLoadError) as info:
        runtime.load_file("main", path)
    problems = info.value.details["problems"]
    assert any("memory" in p for p in problems)
    assert any("alloc(i32) -> (i32)" in p for p in problems)
    assert any("dealloc(i32, i32) -> ()" in p for p in problems)


def test_wrong_host_import_signature_is_refused(runtime, tmp_path):
    text = wat_modules.module("", imports='  (import "plughost" "emit" (func (param i32)))')
    path = wat_modules.write(tmp_path, "sig", text)
    with pytest.raises(PluginLoadError, match=r"plughost\.emit with signature \(i32\)"):
        runtime.load_file("sig", path)


def test_text_that_does_not_assemble_names_the_file(runtime, tmp_path):
    path = wat_modules.write(tmp_path, "broken", "(module (func (export ")
    with pytest.raises(PluginLoadError, match=r"broken.wat' does not compile"):
        runtime.load_file("broken", path)


def test_binary_without_wasm_header_is_refused(runtime, tmp_path):
    path = tmp_path / "fake.wasm"
    path.write_bytes(b"MZ\x90\x00 not wasm")
    with pytest.raises(PluginLoadError, match=r"not a WebAssembly binary"):
        runtime.load_file("fake", path)


def _manifest(plugin_id: str, entry: str, **more: object) -> Manifest:
    return manifest_from_dict(
        {
            "id": plugin_id,
            "name": plugin_id,
            "version": "1.0.0",
            "runtime": "wasm",
            "entry": entry,
            **more,
        }
    )


async def test_load_from_manifest_applies_its_limits(runtime):
    manifest = _manifest("wasm-hello", "hello.wat", limits={"timeout": 0.5, "fuel": 1000})
    inst = await runtime.load(manifest, EXAMPLE)
    assert inst.limits.timeout == 0.5 and inst.limits.fuel == 1000
    assert inst.limits.memory == runtime.defaults.memory  # unset -> runtime default


async def test_entry_escaping_the_plugin_folder_through_a_symlink_is_refused(runtime, tmp_path):
    outside = wat_modules.write(tmp_path, "outside", wat_modules.ECHO)
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "echo.wat").symlink_to(outside)
    with pytest.raises(PluginLoadError, match=r"points outside the plugin folder"):
        await runtime.load(_manifest("x", "echo.wat"), folder)


async def test_declared_command_without_handler_fails_activation(runtime, tmp_path):
    wat_modules.write(tmp_path, "echo", wat_modules.ECHO)
    manifest = _manifest("echo", "echo.wat", provides={"commands": ["echo", "missing"]})
    inst = await runtime.load(manifest, tmp_path)
    with pytest.raises(PluginActivationError, match=r"declares command 'missing'"):
        await inst.start(WasmBindings())


async def test_declared_commands_map_to_same_named_handlers(runtime, tmp_path):
    wat_modules.write(tmp_path, "echo", wat_modules.ECHO)
    manifest = _manifest("echo", "echo.wat", provides={"commands": ["echo"]})
    inst = await runtime.load(manifest, tmp_path)
    exports = await inst.start(WasmBindings())
    assert [(e.kind, e.name, e.target) for e in exports] == [("command", "echo", "echo")]


def test_limits_from_manifest_fills_unset_limits_from_defaults():
    defaults = WasmLimits(timeout=3, memory=1 << 20, fuel=None, output=100)
    got = limits_from_manifest(Limits(memory=2 << 20, fuel=5), defaults)
    assert got == WasmLimits(timeout=3, memory=2 << 20, fuel=5, output=100)
    assert limits_from_manifest(None, defaults) is defaults


def test_invalid_limits_are_refused_with_the_value():
    with pytest.raises(ValueError, match=r"timeout must be positive"):
        WasmLimits(timeout=0)
    with pytest.raises(ValueError, match=r"at least one 64 KiB page"):
        WasmLimits(memory=100)


async def test_ticker_starts_lazily_and_stops_on_aclose(tmp_path):
    before = len(_ticker_threads())
    rt = WasmRuntime(cache_dir=None)
    path = wat_modules.write(tmp_path, "echo", wat_modules.ECHO)
    inst = rt.load_file("echo", path)
    assert not rt.ticker.running  # loading alone starts nothing
    await inst.start(WasmBindings())
    assert rt.ticker.running and len(_ticker_threads()) == before + 1
    await rt.aclose()
    await rt.aclose()  # idempotent
    assert not rt.ticker.running and len(_ticker_threads()) == before
    with pytest.raises(PluginUnavailable, match=r"closed"):
        await inst.call("echo", {})
    with pytest.raises(PluginUnavailable, match=r"runtime is closed"):
        rt.load_file("echo", path)


async def test_aclose_deactivates_every_instance(tmp_path):
    rt = WasmRuntime()
    path = wat_modules.write(tmp_path, "echo", wat_modules.ECHO)
    instances = [rt.load_file(f"p{i}", path) for i in range(3)]
    for inst in instances:
        await inst.start(WasmBindings())
    assert rt.stats()["stores"] == 3
    await rt.aclose()
    assert rt.stats()["stores"] == 0 and rt.stats()["instances"] == 0
    assert all(not inst.active for inst in instances)


async def test_declared_full_command_ids_map_to_short_handler_names(runtime, tmp_path):
    wat_modules.write(tmp_path, "echo", wat_modules.ECHO)
    manifest = _manifest("echo-plugin", "echo.wat", provides={"commands": ["echo-plugin.echo"]})
    exports = await (await runtime.load(manifest, tmp_path)).start(WasmBindings())
    assert [(e.name, e.target) for e in exports] == [("echo-plugin.echo", "echo")]
