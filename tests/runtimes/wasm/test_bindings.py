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


def _context(config=None, data_dir=None, **services) -> PluginContext:
    context = PluginContext(load_manifest(EXAMPLE), config=config, data_dir=data_dir)
    for name, service in services.items():
        context.attach(name, service)
    return context


class Storage:
    """A key-value store shaped like ``ctx.storage`` (core.context.StorageService)."""

    def __init__(self, data, namespace="kv"):
        self.data, self.namespace = data, namespace

    def with_namespace(self, name):
        return Storage(self.data, name)

    def get(self, key, default=None):
        return self.data.get((self.namespace, key), default)

    def set(self, key, value):
        self.data[(self.namespace, key)] = value

    def delete(self, key):
        return self.data.pop((self.namespace, key), None) is not None

    def keys(self, prefix=""):
        return [k for ns, k in self.data if ns == self.namespace and k.startswith(prefix)]


class Http:
    """An HTTP service shaped like ``ctx.http``: ``await request(method, url, ...)``."""

    def __init__(self, wait=None):
        self.seen, self.wait = [], wait

    async def request(self, method, url, **kwargs):
        self.seen.append(threading.get_ident())
        await (self.wait.wait() if self.wait is not None else asyncio.sleep(0))
        return SimpleNamespace(status_code=204, headers={}, text="")


async def test_storage_and_config_host_functions_round_trip(load):
    kv: dict[tuple[str, str], object] = {}
    context = _context({"greeting": "hej"}, storage=Storage(kv))
    inst = load("kv", wat_modules.STORAGE_CONFIG,
                bindings=WasmBindings(context=context, check=_allow_all))
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
        bindings=WasmBindings(context=_context(storage=Storage(kv)), check=check),
    )
    with pytest.raises(PermissionDenied, match=r"storage 'kv' is not granted"):
        await inst.call("kv")
    assert kv == {}


async def test_async_service_runs_on_the_event_loop_and_calls_go_off_loop(load):
    loop_thread = threading.get_ident()
    http = Http()
    inst = load(
        "http",
        wat_modules.FORBIDDEN_HTTP,
        bindings=WasmBindings(context=_context(http=http), check=_allow_all),
    )
    assert inst.local_callable("run") is None  # a sync call could not wait for the service
    assert await inst.call("run") == {"status": 204, "headers": {}, "body": ""}
    assert http.seen == [loop_thread]


async def test_slow_async_service_times_the_call_out(runtime, tmp_path):
    from plughost.runtimes.wasm import WasmLimits

    release = asyncio.Event()
    path = wat_modules.write(tmp_path, "http", wat_modules.FORBIDDEN_HTTP)
    inst = runtime.load_file("http", path, limits=WasmLimits(timeout=0.1))
    await inst.start(WasmBindings(context=_context(http=Http(release)), check=_allow_all))
    with pytest.raises(PluginTimeout, match=r"did not answer before the call's deadline"):
        await inst.call("run")
    release.set()


async def test_async_service_reached_from_a_sync_call_is_a_clear_error(load):
    inst = load(
        "http",
        wat_modules.FORBIDDEN_HTTP,
        bindings=WasmBindings(context=_context(http=Http()), check=_allow_all),
    )
    with pytest.raises(PluginError, match=r"asynchronous host service was reached from a sync"):
        inst.call_sync("run")


async def test_host_service_bug_is_an_error_for_the_guest_not_a_crash(load, caplog):
    def broken(plugin_id, params):
        raise RuntimeError("bus exploded")

    inst = load(
        "emit",
        wat_modules.FORBIDDEN_EMIT,
        bindings=WasmBindings(check=_allow_all, handlers={"host.emit": broken}),
    )
    with pytest.raises(PluginError, match=r"RuntimeError: bus exploded"):
        await inst.call("run")
    assert inst.stats()["crashes"] == 0 and inst.stats()["restarts"] == 0
    assert "host service emit failed" in caplog.text


def test_bindings_from_a_plugin_context(runtime, tmp_path):
    granted_dir = tmp_path / "music"
    granted_dir.mkdir()

    class Permissions:
        def check(self, kind, target=""):
            return None

        def granted(self):
            return [
                SimpleNamespace(kind="fs:read", pattern=str(granted_dir), deny=False),
                SimpleNamespace(kind="fs:write", pattern=str(tmp_path / "gone"), deny=False),
                SimpleNamespace(kind="net", pattern="api.example.com", deny=False),
            ]

    context = _context({"a": 1}, tmp_path / "data", permissions=Permissions())
    path = wat_modules.write(tmp_path, "files", wat_modules.WASI_FILES)
    inst = runtime.load_file("files", path)
    bindings = bindings_from_context(context, inst)
    assert bindings.context is context and bindings.config() == {"a": 1}
    assert bindings.fs == (
        FsGrant(str(granted_dir), str(granted_dir), read_only=True),  # missing dirs skipped
        FsGrant(tmp_path / "data", "/data", read_only=False),
    )


async def test_bare_context_denies_everything_checked(load):
    inst = load("emit", wat_modules.FORBIDDEN_EMIT,
                bindings=WasmBindings(context=_context(bus=SimpleNamespace())))
    with pytest.raises(PermissionDenied, match="no permission checker configured"):
        await inst.call("run")
    assert inst.stats()["denied"] == 1


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


async def test_host_functions_are_the_host_operations_table(load, tmp_path):
    """Same parameters, same permission rule, same refusals as a process plugin's host.*."""
    from plughost.runtimes.hostcalls import HostParamsError, required_permission

    kv: dict[tuple[str, str], object] = {}
    asked = []
    context = _context(storage=Storage(kv), data_dir=tmp_path)
    inst = load(
        "relay",
        wat_modules.relay("storage_get", "storage_set", "storage_keys", "files_read"),
        bindings=WasmBindings(context=context, check=lambda kind, target: asked.append(target)),
    )
    # a namespace that is not a string: both runtimes used to answer differently
    bad = {"key": "k", "namespace": 5}
    with pytest.raises(HostParamsError) as table:
        required_permission("host.storage.get", bad, "relay")
    with pytest.raises(PluginError) as wasm:
        await inst.call("storage_get", bad)
    assert wasm.value.details["guest_code"] == "host.error"
    assert str(table.value) in wasm.value.message
    assert asked == []  # refused before the permission check and the service
    await inst.call("storage_set", {"key": "a", "value": 1, "namespace": "shared"})
    assert kv == {("shared", "a"): 1} and asked == ["shared"]
    assert await inst.call("storage_keys", {"namespace": "shared"}) == ["a"]
    # every row of the table is a host function: files too, with the same relative-path rule
    with pytest.raises(PluginError, match=r"no 'files' service"):
        await inst.call("files_read", {"path": "notes.txt"})
    assert asked[-1] == str(tmp_path / "notes.txt")
