"""After a trap the instance asks its supervisor: restart now, after a backoff, or quarantine."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from plughost.errors import PluginCrashed, PluginUnavailable
from plughost.observability.health import RestartPolicy, Supervisor, SupervisorEvent
from plughost.runtimes.wasm import WasmBindings, WasmRuntime

from . import wat_modules


@dataclass(frozen=True)
class _Decision:
    quarantine: bool
    delay: float
    crashes_in_window: int
    reason: str


class _CountingSupervisor:
    """Quarantine at the ``limit``-th crash; back off ``delay`` seconds before that."""

    def __init__(self, limit: int = 3, delay: float = 0.0) -> None:
        self.limit, self.delay, self.crashes, self.reasons = limit, delay, 0, []

    def record_crash(self, reason: str) -> _Decision:
        self.crashes += 1
        self.reasons.append(reason)
        if self.crashes >= self.limit:
            return _Decision(True, 0.0, self.crashes, f"{self.crashes} crashes; last: {reason}")
        return _Decision(False, self.delay, self.crashes, reason)

    def reenable(self) -> None:
        self.crashes = 0


def _crash_instance(tmp_path, supervisor, events=None):
    on_event = events.append if events is not None else None
    rt = WasmRuntime(supervisor=lambda: supervisor, on_event=on_event)
    inst = rt.load_file("crash", wat_modules.write(tmp_path, "crash", wat_modules.CRASH))
    inst.start_sync(WasmBindings())
    return rt, inst


async def test_repeated_crashes_quarantine_the_plugin(tmp_path):
    supervisor = _CountingSupervisor(limit=3)
    events = []
    rt, inst = _crash_instance(tmp_path, supervisor, events)
    try:
        for _ in range(3):
            with pytest.raises(PluginCrashed, match=r"unreachable"):
                await inst.call("run", {})
        assert supervisor.crashes == 3 and "unreachable" in supervisor.reasons[-1]
        kinds = [e.kind for e in events]
        assert kinds == ["crashed", "restarted", "crashed", "restarted", "crashed", "quarantined"]
        assert events[-1].plugin_id == "crash" and events[-1].details == {"crashes": 3}
        with pytest.raises(PluginUnavailable, match=r"is quarantined: 3 crashes") as info:
            inst.export_function("calls")()
        assert info.value.details["quarantined"] is True
        health = await inst.health()
        assert not health.ok and "quarantined" in health.detail
        assert inst.stats()["quarantined"] is True
        # Clearing a quarantine is the host's enable(): a fresh instance is loaded.
    finally:
        rt.close()


async def test_backoff_refuses_calls_until_the_delay_has_passed(tmp_path):
    rt, inst = _crash_instance(tmp_path, _CountingSupervisor(limit=10, delay=0.05))
    calls = inst.export_function("calls")
    try:
        with pytest.raises(PluginCrashed):
            await inst.call("run", {})
        with pytest.raises(PluginUnavailable, match=r"restarts in 0\.\d+ s \(backoff\)") as info:
            calls()
        assert 0 < info.value.details["retry_after"] <= 0.05
        assert not (await inst.health()).ok
        deadline = time.monotonic() + 5
        while True:
            try:
                assert calls() == 0
                break
            except PluginUnavailable:
                assert time.monotonic() < deadline, "the sandbox never restarted"
        assert inst.stats()["restarts"] == 1
    finally:
        rt.close()


async def test_without_a_supervisor_the_sandbox_restarts_immediately(tmp_path):
    rt = WasmRuntime(supervisor=None)
    try:
        inst = rt.load_file("crash", wat_modules.write(tmp_path, "crash", wat_modules.CRASH))
        inst.start_sync(WasmBindings())
        for _ in range(5):
            with pytest.raises(PluginCrashed):
                await inst.call("run", {})
        assert inst.export_function("calls")() == 0
        assert inst.stats()["restarts"] == 5
    finally:
        rt.close()


async def test_the_shared_supervisor_backs_off_then_quarantines(tmp_path):
    policy = RestartPolicy(initial_delay=0.05, multiplier=1.0, jitter=0.0, max_crashes=3)
    events: list[SupervisorEvent] = []
    rt = WasmRuntime(supervisor=lambda: Supervisor(policy), on_event=events.append)
    try:
        inst = rt.load_file("crash", wat_modules.write(tmp_path, "crash", wat_modules.CRASH))
        await inst.start(WasmBindings())
        calls = inst.export_function("calls")
        for _ in range(2):
            with pytest.raises(PluginCrashed):
                await inst.call("run", {})
            with pytest.raises(PluginUnavailable, match=r"backoff"):
                calls()
            deadline = time.monotonic() + 5
            while True:
                try:
                    assert calls() == 0
                    break
                except PluginUnavailable:
                    assert time.monotonic() < deadline
        with pytest.raises(PluginCrashed):
            await inst.call("run", {})
        with pytest.raises(PluginUnavailable, match=r"quarantined"):
            calls()
        assert [e.kind for e in events].count("quarantined") == 1
    finally:
        rt.close()


async def test_a_health_probe_after_the_backoff_brings_the_sandbox_back(tmp_path):
    rt, inst = _crash_instance(tmp_path, _CountingSupervisor(limit=10, delay=0.02))
    try:
        with pytest.raises(PluginCrashed):
            await inst.call("run", {})
        deadline = time.monotonic() + 5
        while not (await inst.health()).ok:
            assert time.monotonic() < deadline, "the sandbox never came back"
            await asyncio.sleep(0.005)
        assert inst.active and inst.stats()["restarts"] == 1
    finally:
        rt.close()
