"""WasmInstance: JSON calls, limits that fire, explicit store ownership, isolation."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from plughost.core.bus import EventBus
from plughost.core.context import PluginContext
from plughost.core.manifest import manifest_from_dict
from plughost.core.scoped import ScopedBus
from plughost.errors import (
    PermissionDenied,
    PluginActivationError,
    PluginCrashed,
    PluginError,
    PluginTimeout,
    PluginUnavailable,
    ProtocolError,
)
from plughost.runtimes.wasm import FsGrant, WasmBindings, WasmLimits

from . import wat_modules

HELLO = Path(__file__).parents[3] / "examples" / "wasm-hello" / "hello.wat"


async def test_json_handler_round_trips_arguments(load):
    inst = load("echo", wat_modules.ECHO)
    args = {"text": "héllo", "n": [1, 2.5, None], "nested": {"ok": True}}
    assert await inst.call("echo", args) == args
    assert await inst.call("echo") == {}
    assert inst.local_callable("echo")(a=1) == {"a": 1}
    assert inst.local_callable("add") is None  # not a JSON handler


async def test_calling_a_missing_handler_names_the_handlers(load):
    inst = load("echo", wat_modules.ECHO)
    with pytest.raises(PluginUnavailable, match=r"no handler export 'nope'.*handlers: echo") as e:
        await inst.call("nope", {})
    assert e.value.code == "plugin.no_target"  # what every runtime answers for a missing target


async def test_unserialisable_arguments_are_refused_before_the_call(load):
    inst = load("echo", wat_modules.ECHO)
    with pytest.raises(PluginError, match=r"not JSON-serialisable"):
        await inst.call("echo", {"x": object()})
    assert inst.stats()["calls"] == 0


async def test_hello_example_activates_and_lists_its_commands(runtime, caplog):
    caplog.set_level(logging.INFO, logger="plughost.plugin.wasm-hello")
    inst = runtime.load_file("wasm-hello", HELLO)
    exports = await inst.start(WasmBindings())
    assert [(e.kind, e.name, e.target) for e in exports] == [
        ("command", "wasm-hello.greet", "greet"),
        ("command", "wasm-hello.announce", "announce"),
    ]
    assert "wasm-hello activated" in caplog.text
    assert await inst.call("greet", {"name": "Ada"}) == {
        "greeting": "hello from wasm",
        "request": {"name": "Ada"},
    }


async def test_fuel_exhaustion_is_a_timeout_and_the_plugin_keeps_serving(load):
    inst = load("spin", wat_modules.SPIN, limits=WasmLimits(fuel=100_000, timeout=30))
    with pytest.raises(PluginTimeout, match=r"used all of its 100000 fuel units") as info:
        await inst.call("run", {})
    assert info.value.details["limit"] == "fuel"
    stats = inst.stats()
    assert stats["timeouts"] == 1 and stats["restarts"] == 1
    with pytest.raises(PluginTimeout):
        inst.export_function("spin")()
    assert (await inst.health()).ok


async def test_epoch_deadline_is_a_timeout_without_fuel_limit(load):
    inst = load("spin", wat_modules.SPIN, limits=WasmLimits(timeout=0.05, fuel=None))
    with pytest.raises(PluginTimeout, match=r"ran past its 0.05 s deadline") as info:
        await inst.call("run", {})
    assert info.value.details["limit"] == "timeout"


async def test_per_call_timeout_shortens_the_deadline(load):
    inst = load("spin", wat_modules.SPIN, limits=WasmLimits(timeout=30))
    with pytest.raises(PluginTimeout, match=r"0.02 s deadline"):
        await inst.call("run", {}, timeout=0.02)


async def test_memory_cap_refuses_growth_with_a_clear_reason(load):
    inst = load("bomb", wat_modules.MEMORY_BOMB, limits=WasmLimits(memory=1 << 20))
    with pytest.raises(PluginCrashed, match=r"memory limit 1 MiB exceeded") as info:
        await inst.call("run", {})
    assert info.value.details == {
        "limit": "memory", "memory": 1 << 20, "size": 1 << 20, "asked": (1 << 20) + 65536
    }
    # the sandbox was reset: memory is back to its initial single page
    assert inst.export_function("pages")() == 1


async def test_initial_memory_above_the_cap_fails_activation(runtime, tmp_path):
    path = wat_modules.write(tmp_path, "big", wat_modules.module("", pages=4))
    inst = runtime.load_file("big", path, limits=WasmLimits(memory=2 * 65536))
    with pytest.raises(PluginActivationError, match=r"memory limit is 128 KiB"):
        await inst.start(WasmBindings())
    assert not inst.active


async def test_trap_mid_call_is_a_crash_and_the_store_is_replaced(load):
    inst = load("crash", wat_modules.CRASH)
    for _ in range(2):
        with pytest.raises(PluginCrashed, match=r"crash:run trapped: .*unreachable"):
            await inst.call("run", {})
    # every trap threw its store away: the counter inside the module starts over each time
    assert inst.export_function("calls")() == 0
    assert inst.stats()["crashes"] == 2


async def test_start_function_that_never_returns_fails_activation(runtime, tmp_path):
    path = wat_modules.write(tmp_path, "startspin", wat_modules.SPIN_AT_START)
    inst = runtime.load_file("startspin", path, limits=WasmLimits(timeout=0.05))
    with pytest.raises(PluginActivationError, match=r"start function trapped"):
        await inst.start(WasmBindings())


async def test_log_flood_is_rate_limited_and_counted(load, caplog):
    caplog.set_level(logging.INFO, logger="plughost.plugin.flood")
    inst = load("flood", wat_modules.LOG_FLOOD, limits=WasmLimits(output=16 * 1024))
    started = time.monotonic()
    assert await inst.call("run", {}) is None
    elapsed = time.monotonic() - started
    stats = inst.stats()
    logged = [r for r in caplog.records if r.name == "plughost.plugin.flood"]
    # a 16 KiB budget of 1 KiB lines, plus what refills while the flood runs: not 5000 lines
    assert len(logged) <= 20 + 2 * int(elapsed * 16)
    # every line that was not logged is counted as dropped (the refill, on a slow machine, lets
    # a few more through: those are the ones logged)
    assert stats["log_dropped_bytes"] >= (5000 - len(logged)) * 1000


async def test_oversized_and_wild_results_are_protocol_errors(load):
    inst = load("big", wat_modules.OVERSIZED, limits=WasmLimits(max_message=1 << 20))
    with pytest.raises(ProtocolError, match=r"returned a 64 MiB message; the limit is 1 MiB") as e:
        await inst.call("run", {})
    assert e.value.code == "protocol.size"
    with pytest.raises(ProtocolError, match=r"outside its 65536-byte linear memory") as e:
        await inst.call("wild", {})
    assert e.value.code == "protocol.abi"
    with pytest.raises(ProtocolError, match=r"invalid JSON") as e:
        await inst.call("garbage", {})
    assert e.value.code == "protocol.json"


async def test_oversized_request_is_refused_before_entering_the_guest(load):
    inst = load("echo", wat_modules.ECHO, limits=WasmLimits(max_message=1024))
    with pytest.raises(ProtocolError, match=r"limit is 1024"):
        await inst.call("echo", {"blob": "x" * 2000})
    assert inst.stats()["calls"] == 0


async def test_forbidden_http_is_denied_and_never_reaches_the_service(load):
    fetched = []
    inst = load(
        "http",
        wat_modules.FORBIDDEN_HTTP,
        bindings=WasmBindings(
            check=_allow({"net": {"api.example.com:443"}}),
            handlers={"host.http.request": lambda pid, request: fetched.append(request)},
        ),
    )
    with pytest.raises(PermissionDenied, match=r"net 'evil.example.com:80'"):
        await inst.call("run", {})
    assert fetched == [] and inst.stats()["denied"] == 1


async def test_allowed_http_goes_through_the_injected_service(load):
    seen = []

    def http(plugin_id, request):
        seen.append(request)
        return {"status": 200, "body": "fine"}

    inst = load(
        "http",
        wat_modules.FORBIDDEN_HTTP,
        bindings=WasmBindings(
            check=_allow({"net": {"evil.example.com:80"}}), handlers={"host.http.request": http}
        ),
    )
    assert await inst.call("run", {}) == {"status": 200, "body": "fine"}
    assert seen == [{"method": "GET", "url": "http://evil.example.com/steal"}]


def _bus_context(plugin_id, bus):
    manifest = manifest_from_dict(
        {"id": plugin_id, "name": plugin_id, "version": "1.0.0", "runtime": "wasm",
         "entry": "x.wat"}
    )
    context = PluginContext(manifest)
    context.attach("bus", ScopedBus(bus, plugin_id))
    return context


async def test_forbidden_emit_is_denied_and_unset_checker_denies_everything(load):
    bus = EventBus()
    emitted = []
    bus.subscribe("#", emitted.append)
    inst = load(
        "emit",
        wat_modules.FORBIDDEN_EMIT,
        bindings=WasmBindings(
            context=_bus_context("emit", bus), check=_allow({"events:emit": {"hello.greeted"}})
        ),
    )
    with pytest.raises(PermissionDenied, match=r"system.shutdown"):
        await inst.call("run", {})
    deny_all = load(
        "emit2", wat_modules.FORBIDDEN_EMIT, bindings=WasmBindings(_bus_context("emit2", bus))
    )
    with pytest.raises(PermissionDenied, match=r"no permission checker configured"):
        await deny_all.call("run", {})
    assert emitted == []


async def test_granted_emit_reaches_the_bus(runtime):
    bus = EventBus()
    emitted = []
    bus.subscribe("hello.*", emitted.append)
    inst = runtime.load_file("wasm-hello", HELLO)
    await inst.start(
        WasmBindings(
            context=_bus_context("wasm-hello", bus),
            check=_allow({"events:emit": {"hello.greeted"}}),
        )
    )
    assert await inst.call("announce", {"who": "Ada"}) == 1  # the bus: subscribers reached
    assert [(e.topic, e.payload, e.source) for e in emitted] == [
        ("hello.greeted", {"who": "Ada"}, "wasm-hello")
    ]


async def test_missing_service_is_a_clear_error_for_the_guest(load):
    inst = load(
        "http", wat_modules.FORBIDDEN_HTTP, bindings=WasmBindings(check=lambda kind, target: None)
    )
    with pytest.raises(PluginError, match=r"no 'http' service is configured"):
        await inst.call("run", {})


async def test_wasi_sees_only_the_granted_directory(load, tmp_path):
    granted = tmp_path / "granted"
    granted.mkdir()
    (granted / "data.txt").write_text("hello-grant")
    (tmp_path / "outside.txt").write_text("secret")
    inst = load(
        "files",
        wat_modules.WASI_FILES,
        bindings=WasmBindings(fs=(FsGrant(granted, "/data", read_only=True),)),
    )
    try_open = inst.export_function("try_open")
    assert try_open(0) == 0  # data.txt inside the grant
    assert try_open(1) != 0  # ../outside.txt escapes the grant
    assert try_open(2) != 0  # absolute paths are not reachable
    assert try_open(3) != 0  # creating a file in a read-only grant
    assert not (granted / "new.txt").exists()
    assert await inst.call("run", {}) == "hello-grant"


async def test_wasi_without_grants_has_no_filesystem(load):
    inst = load("files", wat_modules.WASI_FILES)
    assert inst.export_function("try_open")(0) == 8  # EBADF: fd 3 does not exist


async def test_writable_grant_allows_creating_files(load, tmp_path):
    granted = tmp_path / "rw"
    granted.mkdir()
    inst = load(
        "files",
        wat_modules.WASI_FILES,
        bindings=WasmBindings(fs=(FsGrant(granted, "/rw", read_only=False),)),
    )
    assert inst.export_function("try_open")(3) == 0
    assert (granted / "new.txt").exists()


async def test_missing_granted_directory_fails_activation_with_the_path(runtime, tmp_path):
    path = wat_modules.write(tmp_path, "files", wat_modules.WASI_FILES)
    inst = runtime.load_file("files", path)
    with pytest.raises(PluginActivationError, match=r"does not exist"):
        await inst.start(WasmBindings(fs=(FsGrant(tmp_path / "nope", "/x"),)))


async def test_store_is_closed_explicitly_and_calls_after_close_fail(load, runtime):
    inst = load("echo", wat_modules.ECHO)
    store = inst._live.store
    await inst.close()
    await inst.close()  # idempotent
    with pytest.raises(ValueError, match=r"closed"):
        store._context()
    with pytest.raises(PluginUnavailable, match=r"echo is closed; load it again"):
        await inst.call("echo", {})
    with pytest.raises(PluginUnavailable, match=r"closed"):
        await inst.start(WasmBindings())
    assert runtime.stats()["stores"] == 0
    assert not (await inst.health()).ok


async def test_stop_then_start_runs_in_a_fresh_store(load):
    inst = load("echo", wat_modules.ECHO)
    bump = inst.export_function("bump")
    assert bump() == 1
    await inst.stop()
    await inst.stop()  # idempotent
    with pytest.raises(PluginUnavailable, match=r"not active; start it"):
        bump()
    await inst.start(WasmBindings())
    assert bump() == 1


async def test_two_instances_of_one_module_do_not_share_state(runtime, tmp_path):
    path = wat_modules.write(tmp_path, "echo", wat_modules.ECHO)
    a = runtime.load_file("a", path)
    b = runtime.load_file("b", path)
    assert a._compiled is b._compiled  # compiled and linked once
    await a.start(WasmBindings())
    await b.start(WasmBindings())
    bump_a, bump_b = a.export_function("bump"), b.export_function("bump")
    assert [bump_a(), bump_a(), bump_b()] == [1, 2, 1]


async def test_a_trapping_plugin_does_not_disturb_its_neighbour(load):
    neighbour = load("echo", wat_modules.ECHO)
    bomb = load("bomb", wat_modules.MEMORY_BOMB, limits=WasmLimits(memory=1 << 20))
    spin = load("spin", wat_modules.SPIN, limits=WasmLimits(timeout=0.05))
    with pytest.raises(PluginCrashed):
        await bomb.call("run", {})
    with pytest.raises(PluginTimeout):
        await spin.call("run", {})
    assert await neighbour.call("echo", {"still": "here"}) == {"still": "here"}
    assert neighbour.stats()["errors"] == 0


async def test_reentrant_call_from_a_host_function_is_refused(load):
    holder = {}

    def execute(command, args):
        return holder["inst"].call_sync("run", {})

    inst = load(
        "http",
        wat_modules.FORBIDDEN_HTTP,
        bindings=WasmBindings(
            check=lambda k, t: None,
            handlers={"host.http.request": lambda pid, r: execute("x", {})},
        ),
    )
    holder["inst"] = inst
    with pytest.raises(PluginError, match=r"re-entrant calls are refused"):
        await inst.call("run", {})
    assert await inst.health()


def _allow(grants):
    def check(kind, target):
        if target not in grants.get(kind, set()):
            raise PermissionDenied(f"{kind} {target!r} is not granted to this plugin")

    return check


async def test_any_mapping_is_accepted_as_arguments(load):
    from types import MappingProxyType

    inst = load("echo", wat_modules.ECHO)
    assert await inst.call("echo", MappingProxyType({"a": [1]})) == {"a": [1]}


async def test_stack_overflow_is_a_crash(load):
    inst = load("crash", wat_modules.CRASH)
    with pytest.raises(PluginCrashed, match=r"call stack exhausted"):
        await inst.call("recurse", {})
    assert (await inst.health()).ok


async def test_wasi_stdout_goes_to_the_rate_limited_log(load, caplog):
    caplog.set_level(logging.INFO, logger="plughost.plugin.stdout")
    started = time.monotonic()
    inst = load("stdout", wat_modules.STDOUT_FLOOD, limits=WasmLimits(output=8192))
    assert inst.export_function("flood")(2000) == 2000
    elapsed = time.monotonic() - started
    lines = [
        r
        for r in caplog.records
        if r.name == "plughost.plugin.stdout" and r.levelno == logging.INFO
    ]
    # The budget is 8 KiB/s with one second of burst: 8 lines of 1 KiB, plus 8 a second
    # refilled while the flood runs (a loaded machine runs it slower, so lets more through).
    allowed = int(8 * (1 + elapsed)) + 1
    assert 1 <= len(lines) <= allowed and lines[0].getMessage() == "o" * 1023
    assert inst.stats()["log_dropped_bytes"] >= (2000 - allowed) * 1024


async def test_plughost_exports_describes_commands_events_and_hooks(load):
    from types import SimpleNamespace

    inst = load("events", wat_modules.EVENTS)
    assert [(e.kind, e.name, e.target, dict(e.options)) for e in inst.exports] == [
        ("command", "echo.say", "echo", {}),
        ("hook", "app.filter", "echo", {"priority": 5}),
        ("event", "music.*", "echo", {}),
    ]
    fn = inst.local_callable("echo")
    assert fn(text="hi") == {"text": "hi"}  # as a command / hook: keyword arguments
    event = SimpleNamespace(to_dict=lambda: {"topic": "music.play", "payload": {"id": 1}})
    assert fn(event) == {"event": {"topic": "music.play", "payload": {"id": 1}}}
    with pytest.raises(TypeError, match=r"keyword arguments, or one event"):
        fn(event, extra=1)


async def test_invalid_plughost_exports_fails_activation_listing_every_problem(runtime, tmp_path):
    path = wat_modules.write(tmp_path, "bad", wat_modules.BAD_EXPORTS)
    inst = runtime.load_file("bad", path)
    with pytest.raises(PluginActivationError) as info:
        await inst.start(WasmBindings())
    problems = info.value.details["problems"]
    assert any("unknown key 'bogus'" in p for p in problems)
    assert any("names export 'nope', which is not a handler" in p for p in problems)
    assert not inst.active and runtime.stats()["stores"] == 0


async def test_plughost_health_export_is_the_health_probe(load):
    inst = load("sick", wat_modules.SICK)
    health = await inst.health()
    assert not health.ok and health.detail == "db down" and health.data["retries"] == 3
    assert (await load("echo", wat_modules.ECHO).health()).ok  # no probe: alive is healthy


async def test_any_refused_grow_is_the_memory_limit_and_a_tolerated_one_is_not(load, runtime):
    big = load("big", wat_modules.BIG_GROW, limits=WasmLimits(memory=16 << 20))
    await big.call("tolerant", {})  # refused, answered -1, handled: no error
    assert big.export_function("pages")() == 112
    with pytest.raises(PluginCrashed, match=r"growing it to 17 MiB was refused") as info:
        await big.call("run", {})
    assert info.value.details["limit"] == "memory" and info.value.details["size"] == 7 << 20
    crash = load("crash", wat_modules.CRASH, limits=WasmLimits(memory=16 << 20))
    with pytest.raises(PluginCrashed, match=r"unreachable") as plain:  # no grow refused: a crash
        await crash.call("run", {})
    assert "limit" not in plain.value.details
    assert runtime.memories is not None and runtime.memories.live == 2


async def test_fuel_used_counts_every_call_json_and_fast_path_and_an_exhausted_budget(load):
    inst = load("spin", wat_modules.SPIN, limits=WasmLimits(fuel=100_000, timeout=30))
    assert inst.stats()["fuel_used"] == 0
    with pytest.raises(PluginTimeout):
        await inst.call("run", {})
    used = inst.stats()["fuel_used"]
    assert 100_000 - 100 <= used <= 100_000  # the whole budget, read before the store was dropped
    echo = load("echo", wat_modules.ECHO)
    await echo.call("echo", {"a": 1})
    after_json = echo.stats()["fuel_used"]
    assert after_json > 0
    assert echo.export_function("add")(2, 3) == 5
    assert echo.stats()["fuel_used"] > after_json
