"""Fixtures for the wasm runtime tests: a runtime with a per-test compile cache."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plughost.runtimes.wasm import WasmBindings, WasmInstance, WasmLimits, WasmRuntime

from . import wat_modules


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[WasmRuntime]:
    """A runtime that restarts a trapped sandbox at once (backoff and quarantine are the
    supervisor's business, tested in test_supervision.py)."""
    rt = WasmRuntime(cache_dir=tmp_path / "cache", supervisor=None)
    yield rt
    rt.close()
    assert not any(t.name == "plughost-wasm-epoch" and t.is_alive() for t in threading.enumerate())


LoadFn = Callable[..., WasmInstance]


@pytest.fixture
def load(runtime: WasmRuntime, tmp_path: Path) -> LoadFn:
    """``load(name, wat, limits=None, bindings=None)`` -> a started instance."""

    def _load(
        name: str,
        wat: str,
        limits: WasmLimits | None = None,
        bindings: WasmBindings | None = None,
    ) -> WasmInstance:
        path = wat_modules.write(tmp_path, name, wat)
        instance = runtime.load_file(name, path, limits=limits)
        instance.start_sync(bindings or WasmBindings())
        return instance

    return _load
