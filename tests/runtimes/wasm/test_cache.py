"""ModuleCache: compiled modules on disk by digest + wasmtime version + engine config."""

from __future__ import annotations

import logging

import wasmtime

from plughost.runtimes.wasm import ModuleCache, WasmBindings, WasmRuntime
from plughost.runtimes.wasm.cache import wasmtime_version

from . import wat_modules


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    return wasmtime.Engine(config)


def test_cold_load_compiles_and_writes_warm_load_deserialises(tmp_path):
    engine = _engine()
    source = wat_modules.ECHO.encode()
    cold = ModuleCache(tmp_path, engine, "tag").load(source, is_text=True)
    assert cold.source == "miss"
    assert cold.path is not None and cold.path.exists()
    assert cold.path.name == f"{cold.digest}-{wasmtime_version()}-tag.cwasm"
    warm_cache = ModuleCache(tmp_path, engine, "tag")
    warm = warm_cache.load(source, is_text=True)
    assert warm.source == "hit" and warm_cache.hits == 1 and warm_cache.misses == 0
    assert [e.name for e in warm.module.exports] == [e.name for e in cold.module.exports]


def test_changed_source_gets_a_new_artefact(tmp_path):
    cache = ModuleCache(tmp_path, _engine(), "tag")
    a = cache.load(wat_modules.ECHO.encode(), is_text=True)
    b = cache.load(wat_modules.CRASH.encode(), is_text=True)
    assert a.digest != b.digest and b.source == "miss"
    assert len(list(tmp_path.glob("*.cwasm"))) == 2


def test_artefact_from_another_engine_config_is_never_used(tmp_path, caplog):
    source = wat_modules.ECHO.encode()
    first = ModuleCache(tmp_path, _engine(), "tag").load(source, is_text=True)
    # same file name, but written by an engine WITHOUT fuel: wasmtime's own header check refuses
    plain = ModuleCache(tmp_path, wasmtime.Engine(), "tag")
    caplog.set_level(logging.WARNING)
    result = plain.load(source, is_text=True)
    assert result.source == "miss"
    assert "not usable by this engine" in caplog.text
    assert first.path is not None and first.path.exists()  # rewritten for the new engine


def test_config_tag_is_part_of_the_key(tmp_path):
    source = wat_modules.ECHO.encode()
    ModuleCache(tmp_path, _engine(), "tag-a").load(source, is_text=True)
    other = ModuleCache(tmp_path, _engine(), "tag-b").load(source, is_text=True)
    assert other.source == "miss"


def test_corrupt_artefact_is_detected_deleted_and_rebuilt(tmp_path, caplog):
    engine = _engine()
    source = wat_modules.ECHO.encode()
    path = ModuleCache(tmp_path, engine, "tag").load(source, is_text=True).path
    assert path is not None
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING)
    again = ModuleCache(tmp_path, engine, "tag").load(source, is_text=True)
    assert again.source == "miss" and "checksum mismatch" in caplog.text
    assert ModuleCache(tmp_path, engine, "tag").load(source, is_text=True).source == "hit"


def test_truncated_artefact_is_rebuilt(tmp_path):
    engine = _engine()
    source = wat_modules.ECHO.encode()
    path = ModuleCache(tmp_path, engine, "tag").load(source, is_text=True).path
    assert path is not None
    path.write_bytes(path.read_bytes()[:10])
    assert ModuleCache(tmp_path, engine, "tag").load(source, is_text=True).source == "miss"


def test_unwritable_cache_still_loads(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    caplog.set_level(logging.WARNING)
    result = ModuleCache(blocker / "sub", _engine(), "tag").load(
        wat_modules.ECHO.encode(), is_text=True
    )
    assert result.source == "miss" and "cannot cache compiled module" in caplog.text


async def test_runtime_warm_load_uses_the_disk_cache(tmp_path):
    path = wat_modules.write(tmp_path, "echo", wat_modules.ECHO)
    first = WasmRuntime(cache_dir=tmp_path / "cache")
    try:
        assert first.load_file("echo", path).stats()["cache"] == "miss"
    finally:
        await first.aclose()
    second = WasmRuntime(cache_dir=tmp_path / "cache")
    try:
        inst = second.load_file("echo", path)
        assert inst.stats()["cache"] == "hit"
        await inst.start(WasmBindings())
        assert await inst.call("echo", {"warm": True}) == {"warm": True}
    finally:
        await second.aclose()
