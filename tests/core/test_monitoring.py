from __future__ import annotations

import logging
from typing import Any

import pytest

from plughost.core.monitoring import MonitorSet


def inner(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x * 2


def test_without_monitors_the_raw_function_is_used() -> None:
    monitors = MonitorSet()
    assert monitors.wrap_sync("hook", inner, lambda x: ("n", x)) is inner


def test_monitors_see_start_and_finish_in_order_and_undo_restores() -> None:
    monitors = MonitorSet()
    current: list[Any] = []
    monitors.on_change(lambda: current.__setitem__(slice(None), [
        monitors.wrap_sync("hook", inner, lambda x: ("double", x))]))
    trail: list[Any] = []

    def make(tag: str) -> Any:
        def monitor(kind: str, name: str, payload: Any) -> Any:
            trail.append((tag, "start", kind, name, payload))
            return lambda err, res: trail.append((tag, "end", err, res))
        return monitor

    undo_a = monitors.add(make("a"))
    monitors.add(make("b"))
    assert current[0](3) == 6
    with pytest.raises(ValueError):
        current[0](-1)
    assert trail[:4] == [("a", "start", "hook", "double", 3), ("b", "start", "hook", "double", 3),
                         ("b", "end", None, 6), ("a", "end", None, 6)]
    assert isinstance(trail[6][2], ValueError)
    undo_a()
    undo_a()  # idempotent
    assert len(monitors) == 1


async def test_async_wrapper_finishes_after_the_await() -> None:
    monitors = MonitorSet()
    order: list[str] = []

    async def work() -> str:
        order.append("work")
        return "done"

    monitors.add(lambda kind, name, payload: (order.append("start"),
                                              lambda e, r: order.append(f"end {r}"))[1])
    wrapped = monitors.wrap_async("command", work, lambda: ("w", None))
    assert await wrapped() == "done"
    assert order == ["start", "work", "end done"]


def test_a_failing_monitor_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    monitors = MonitorSet()
    monitors.add(lambda kind, name, payload: 1 / 0)
    monitors.add(lambda kind, name, payload: lambda e, r: 1 / 0)
    wrapped = monitors.wrap_sync("hook", inner, lambda x: ("n", x))
    with caplog.at_level(logging.ERROR):
        assert wrapped(2) == 4
    assert "monitor" in caplog.text


def test_monitor_must_be_callable() -> None:
    with pytest.raises(TypeError):
        MonitorSet().add("not callable")  # type: ignore[arg-type]


def test_counters_keep_a_latency_histogram_and_count_failures_by_code_and_limit() -> None:
    import asyncio

    from plughost.core.monitoring import LATENCY_BUCKETS, DispatchCounters
    from plughost.errors import PluginTimeout

    counters = DispatchCounters()

    def ok() -> str:
        return "ok"

    def too_slow() -> None:
        raise PluginTimeout("no answer in time", plugin_id="p")

    async def fails() -> None:
        raise KeyError("k")

    counted_ok = counters.counted("p", "hooks", ok)
    counted_slow = counters.counted("p", "commands", too_slow)
    counted_async = counters.counted("p", "events", fails)
    for _ in range(3):
        assert counted_ok() == "ok"
    with pytest.raises(PluginTimeout):
        counted_slow()
    with pytest.raises(KeyError):
        asyncio.run(counted_async())
    snap = counters.snapshot("p")
    assert (snap["calls"], snap["hooks"], snap["commands"], snap["events"], snap["errors"]) == (
        5, 3, 1, 1, 2)
    assert snap["errors_by_code"] == {"plugin.timeout": 1, "KeyError": 1}
    assert snap["limit_hits"] == {"timeout": 1}
    hooks = snap["latency_by_kind"]["hooks"]
    assert hooks["count"] == 3 and hooks["buckets"][-1] == [float("inf"), 3]
    assert len(hooks["buckets"]) == len(LATENCY_BUCKETS) + 1
    assert snap["latency"]["count"] == 5
    assert snap["busy_seconds"] == pytest.approx(snap["latency"]["sum"])


def test_hook_counts_are_exact_across_plugins_including_a_failing_one() -> None:
    """The dispatch loops count each implementation run exactly, on every path (plain, sampled
    for timing, ``first`` stopping early, failures, async), and time only a sample."""
    import asyncio

    from plughost.core.hookcall import SAMPLE
    from plughost.core.hooks import HookRegistry, hookspec
    from plughost.core.monitoring import DispatchCounters
    from plughost.errors import PluginTimeout

    counters = DispatchCounters()
    reg = HookRegistry()
    reg.count_into(counters)

    @hookspec(policy="all")
    def on_message(text: str) -> Any: ...

    @hookspec(policy="first")
    def answer(text: str) -> Any: ...

    reg.add_spec(on_message, name="msg")
    reg.add_spec(answer, name="answer")
    fail = {"now": False}

    def boom(text: str) -> Any:
        if fail["now"]:
            raise PluginTimeout("too slow", plugin_id="c")
        return None

    reg.register("a", "msg", lambda text: 1, tryfirst=True)
    reg.register("b", "msg", lambda text: None)
    reg.register("c", "msg", boom)
    reg.register("d", "msg", lambda text: 4, trylast=True)
    reg.register("a", "answer", lambda text: None, tryfirst=True)
    reg.register("b", "answer", lambda text: "b", trylast=True)

    calls = 3 * SAMPLE + 5  # crosses several timed samples
    for _ in range(calls):
        assert reg["msg"](text="hi") == [1, 4]
        assert reg["answer"](text="?") == "b"
    fail["now"] = True
    for _ in range(3):
        with pytest.raises(PluginTimeout):
            reg["msg"](text="hi")
    assert asyncio.run(reg["answer"].acall(text="?")) == "b"
    snaps = {p: counters.snapshot(p) for p in "abcd"}
    assert {p: s["hooks"] for p, s in snaps.items()} == {
        "a": 2 * calls + 3 + 1, "b": 2 * calls + 3 + 1, "c": calls + 3, "d": calls}
    assert {p: s["errors"] for p, s in snaps.items()} == {"a": 0, "b": 0, "c": 3, "d": 0}
    assert snaps["c"]["errors_by_code"] == {"plugin.timeout": 3}
    assert snaps["c"]["limit_hits"] == {"timeout": 3}
    for s in snaps.values():
        timed = s["latency_by_kind"]["hooks"]["count"]
        assert 0 < timed < s["hooks"]  # sampled, never more observations than calls
    # A registration change hands the pending counts over; nothing is counted twice.
    reg.register("e", "msg", lambda text: None)
    assert counters.snapshot("a")["hooks"] == 2 * calls + 4
