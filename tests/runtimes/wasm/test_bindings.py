"""Host services for wasm plugins: permission checks, async services, context adapter, log limit."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from plughost.core.context import PluginContext
from plughost.core.manifest import load_manifest
from plughost.errors import PermissionDenied, PluginError, PluginTimeout
from plughost.runtimes.wasm import FsGrant, WasmBindings, bindings_from_context
from plughost.runtimes.wasm.bindings import LogLimiter

from . import wat_modules

EXAMPLE = Path(__file__).parents[3] / "examples" / "wasm-hello"


def _allow_all(kind: str, target: str) -> None:
    return None


async def test_storage_and_config_host_functions_round_trip(load):
    kv: dict[tuple[str, str], object] = {}
    bindings = WasmBindings(
        config={"greeting": "hej"},
        check=_allow_all,
        storage_get=lambda ns, key: kv.get((ns, key)),
        storage_set=lambda ns, key, value: kv.__setitem__((ns, key), value),
    )
    inst = load("kv", wat_modules.STORAGE_CONFIG, bindings=bindings)
    assert await inst.call("kv") == 42
    assert kv == {("kv", "k"): 42}  # the namespace defaults to the plugin id
    assert await inst.call("cfg") == "hej"


async def test_storage_namespace_is_permission_checked(load):
    kv: dict[tuple[str, str], object] = {}

    def check(kind, target):
        raise PermissionDenied(f"{kind} {target!r} is not granted")

    inst = load(
        "kv",
        wat_modules.STORAGE_CONFIG,
        bindings=WasmBindings(check=check, storage_set=lambda ns, k, v: kv.__setitem__((ns, k), v)),
    )
    with pytest.raises(PermissionDenied, match=r"storage 'kv' is not granted"):
        await inst.call("kv")
    assert kv == {}


async def test_async_service_runs_on_the_event_loop_and_calls_go_off_loop(load):
    loop_thread = threading.get_ident()
    seen = []

    async def http(request):
        seen.append(threading.get_ident())
        await asyncio.sleep(0)
        return {"status": 204}

    inst = load(
        "http",
        wat_modules.FORBIDDEN_HTTP,
        bindings=WasmBindings(check=_allow_all, http_request=http),
    )
    assert inst.local_callable("run") is None  # a sync call could not wait for the service
    assert await inst.call("run") == {"status": 204}
    assert seen == [loop_thread]


async def test_slow_async_service_times_the_call_out(runtime, tmp_path):
    from plughost.runtimes.wasm import WasmLimits

    release = asyncio.Event()

    async def http(request):
        await release.wait()
        return {"status": 200}

    path = wat_modules.write(tmp_path, "http", wat_modules.FORBIDDEN_HTTP)
    inst = runtime.load_file("http", path, limits=WasmLimits(timeout=0.1))
    await inst.start(WasmBindings(check=_allow_all, http_request=http))
    with pytest.raises(PluginTimeout, match=r"did not answer before the call's deadline"):
        await inst.call("run")
    release.set()


async def test_async_service_reached_from_a_sync_call_is_a_clear_error(load):
    async def http(request):
        return {"status": 200}

    inst = load(
        "http",
        wat_modules.FORBIDDEN_HTTP,
        bindings=WasmBindings(check=_allow_all, http_request=http),
    )
    with pytest.raises(PluginError, match=r"asynchronous host service was reached from a sync"):
        inst.call_sync("run")


async def test_host_service_bug_is_an_error_for_the_guest_not_a_crash(load, caplog):
    def broken(topic, payload):
        raise RuntimeError("bus exploded")

    inst = load(
        "emit", wat_modules.FORBIDDEN_EMIT, bindings=WasmBindings(check=_allow_all, emit=broken)
    )
    with pytest.raises(PluginError, match=r"RuntimeError: bus exploded"):
        await inst.call("run")
    assert inst.stats()["crashes"] == 0 and inst.stats()["restarts"] == 0
    assert "host service emit failed" in caplog.text


def test_bindings_from_a_plugin_context(runtime, tmp_path):
    granted_dir = tmp_path / "music"
    granted_dir.mkdir()
    checks = []

    class Permissions:
        def check(self, kind, target=""):
            checks.append((kind, target))

        def granted(self):
            return [
                SimpleNamespace(kind="fs:read", pattern=str(granted_dir), deny=False),
                SimpleNamespace(kind="fs:write", pattern=str(tmp_path / "gone"), deny=False),
                SimpleNamespace(kind="net", pattern="api.example.com", deny=False),
            ]

    bus = SimpleNamespace(emit=lambda topic, payload: None)
    manifest = load_manifest(EXAMPLE)
    context = PluginContext(manifest, config={"a": 1}, data_dir=tmp_path / "data")
    context.attach("permissions", Permissions())
    context.attach("bus", bus)
    path = wat_modules.write(tmp_path, "files", wat_modules.WASI_FILES)
    inst = runtime.load_file("files", path)
    bindings = bindings_from_context(context, inst)
    assert bindings.config == {"a": 1}
    assert bindings.emit is bus.emit and bindings.http_request is None
    bindings.check("net", "x:1")
    assert checks == [("net", "x:1")]
    assert bindings.fs == (
        FsGrant(str(granted_dir), str(granted_dir), read_only=True),  # missing dirs skipped
        FsGrant(tmp_path / "data", "/data", read_only=False),
    )


def test_bindings_from_a_bare_context_deny_everything(runtime):
    manifest = load_manifest(EXAMPLE)
    inst = runtime.load_file("wasm-hello", EXAMPLE / "hello.wat")
    bindings = bindings_from_context(PluginContext(manifest), inst)
    assert bindings.check is None and bindings.emit is None and bindings.fs == ()


def test_log_limiter_drops_past_the_budget_and_reports_the_drop(caplog):
    logger = logging.getLogger("plughost.plugin.limiter-test")
    caplog.set_level(logging.INFO, logger=logger.name)
    limiter = LogLimiter(logger, rate=100)
    for _ in range(10):
        limiter.emit(logging.INFO, "x" * 30)
    kept = [r for r in caplog.records if r.getMessage() == "x" * 30]
    assert len(kept) == 3  # 100 bytes of budget / 31 bytes per line
    assert limiter.dropped_lines == 7 and limiter.dropped_bytes == 7 * 31
    limiter._tokens = 100.0  # budget back (as after a second)
    limiter.emit(logging.INFO, "after")
    assert "dropped 217 bytes of plugin log output" in caplog.text


def test_log_limiter_truncates_long_lines(caplog):
    logger = logging.getLogger("plughost.plugin.limiter-test2")
    caplog.set_level(logging.INFO, logger=logger.name)
    LogLimiter(logger, rate=1 << 20).emit(logging.INFO, "y" * 20000)
    (record,) = [r for r in caplog.records if r.name == logger.name]
    assert record.getMessage().endswith("[truncated 11808 chars]")


def test_fs_grants_accept_plain_tuples_and_need_absolute_guest_paths(tmp_path):
    bindings = WasmBindings(fs=[(tmp_path, "/music", False)])
    assert bindings.fs == (FsGrant(tmp_path, "/music", read_only=False),)
    with pytest.raises(ValueError, match=r"guest path 'music' must be absolute"):
        WasmBindings(fs=[(tmp_path, "music", True)])


async def test_plain_tuple_grant_is_preopened(load, tmp_path):
    (tmp_path / "data.txt").write_text("from-a-tuple")
    inst = load("files", wat_modules.WASI_FILES, bindings=WasmBindings(fs=[(tmp_path, "/d", True)]))
    assert await inst.call("run") == "from-a-tuple"
