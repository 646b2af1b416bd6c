"""The signature-specialised fast path gives the same answers as wasmtime's Func.__call__."""

from __future__ import annotations

import math

import pytest
import wasmtime

from plughost.errors import PluginCrashed, PluginError, PluginUnavailable

from . import wat_modules


def test_fast_caller_matches_func_call_for_every_supported_type(load, runtime):
    inst = load("echo", wat_modules.ECHO)
    store = wasmtime.Store(runtime.engine)
    store.set_fuel(10**9)
    store.set_epoch_deadline(1 << 40)
    reference = (
        wasmtime.Linker(runtime.engine).instantiate(store, inst._compiled.module).exports(store)
    )
    cases = {
        "add": [(2, 3), (-1, 1), (0x7FFFFFFF, 1), (0xFFFFFFFF, 1), (-(1 << 31), -1)],
        "add64": [(1 << 40, 5), (-(1 << 63), -1), ((1 << 64) - 1, 1)],
        "noop": [()],
    }
    for name, arglists in cases.items():
        fast = inst.export_function(name)
        for args in arglists:
            want = reference[name](store, *args)
            assert fast(*args) == want, (name, args)
    assert inst.export_function("mulf")(1.5, 2.0) == 3.0
    assert math.isnan(inst.export_function("mulf")(float("nan"), 1.0))
    assert inst.export_function("pair")(-5) == (-5, -5)
    store.close()


def test_fast_caller_rejects_wrong_types_and_ranges_before_calling(load):
    inst = load("echo", wat_modules.ECHO)
    add = inst.export_function("add")
    for bad in [(1 << 32, 0), (-(1 << 31) - 1, 0), ("1", 2), (1.0, 2), (True, 2)]:
        with pytest.raises(TypeError, match=r"argument 0 of wasm export 'add' must be an i32"):
            add(*bad)
    with pytest.raises(TypeError):
        add(1)
    assert inst.stats()["errors"] == 0
    assert add(1, 2) == 3


def test_fast_caller_keeps_module_state_between_calls(load):
    bump = load("echo", wat_modules.ECHO).export_function("bump")
    assert [bump(), bump(), bump()] == [1, 2, 3]


def test_export_function_names_the_exports_when_one_is_missing(load):
    inst = load("echo", wat_modules.ECHO)
    with pytest.raises(PluginError, match=r"no exported function 'nope'.*add"):
        inst.export_function("nope")


def test_trap_through_fast_caller_is_crash_and_next_call_runs_in_fresh_store(load):
    inst = load("crash", wat_modules.CRASH)
    div = inst.export_function("div")
    assert div(7, 2) == 3
    with pytest.raises(PluginCrashed, match=r"crash:div trapped: .*divide by zero"):
        div(1, 0)
    assert div(9, 3) == 3
    assert inst.stats()["restarts"] == 1


def test_fast_caller_after_close_raises_unavailable(load):
    inst = load("echo", wat_modules.ECHO)
    add = inst.export_function("add")
    inst.close_sync()
    with pytest.raises(PluginUnavailable, match=r"closed"):
        add(1, 2)


def test_concurrent_callers_are_serialised_on_one_store(load):
    import threading

    bump = load("echo", wat_modules.ECHO).export_function("bump")
    results: list[int] = []

    def worker() -> None:
        results.extend(bump() for _ in range(500))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 2001))  # every increment seen exactly once
