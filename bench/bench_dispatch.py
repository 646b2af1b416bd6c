"""Dispatch cost of plughost's extension points, events and commands against their peers.

Run: ``python bench/bench_dispatch.py`` (needs the ``bench`` extra: pluggy, blinker, pyee).
``hook all x5 metrics`` is the same hook call with the registry counting into the host's
dispatch counters (what ``/metrics`` reads: exact counts, one call in 64 timed) against a
registry without counters.
Prints per-call cost (µs, best of several repeats) and the ratio ``peer / plughost`` (above 1:
plughost is faster) or ``plughost / floor`` for the plain-loop and direct-call floors. Two
floors for extension points: a loop calling each function with ``**kwargs`` (how a call's
arguments arrive) and one calling with a ready tuple of positional arguments (the absolute
floor; plughost's fast path calls positionally, so it can beat the first one).

The machine is shared; figures move by ±20% between runs, so read the ratios, which are
measured side by side in one run.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import blinker
import pluggy
import pyee
import pyee.asyncio

from plughost.core.bus import EventBus
from plughost.core.commands import CommandRegistry
from plughost.core.hooks import HookRegistry, hookspec

NUMBER = 20_000
REPEAT = 7


def best(fn: Any, number: int = NUMBER, repeat: int = REPEAT) -> float:
    """Best per-call time in microseconds."""
    gc.collect()
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return min(times) / number * 1e6


# ------------------------------------------------------------------ extension points vs pluggy


def make_funcs(n: int, policy: str) -> list[Any]:
    funcs = []
    for i in range(n):
        if policy == "first" and i < n - 1:
            def f(message: str, user: str) -> Any:
                return None
        else:
            def f(message: str, user: str, _i: int = i) -> Any:
                return _i
        funcs.append(f)
    return funcs


def bench_hooks(n: int, policy: str) -> dict[str, float]:
    funcs = make_funcs(n, policy)

    # plughost
    @hookspec(policy=policy)  # type: ignore[arg-type]
    def before_send(message: str, user: str) -> Any: ...

    reg = HookRegistry()
    reg.add_spec(before_send, name="chat.before_send")
    for i, f in enumerate(funcs):
        reg.register(f"p{i}", "chat.before_send", f)
    caller = reg["chat.before_send"]
    ours = best(lambda: caller(message="hi", user="ann"))

    # pluggy
    spec = pluggy.HookspecMarker("bench")
    impl = pluggy.HookimplMarker("bench")

    class Spec:
        @spec(firstresult=(policy == "first"))
        def before_send(self, message: str, user: str) -> Any: ...

    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(Spec)
    # pluggy calls the last registered first: register in reverse so both call the same order.
    for i, f in reversed(list(enumerate(funcs))):
        ns = type(f"P{i}", (), {"before_send": staticmethod(impl(f))})
        pm.register(ns, name=f"p{i}")
    hook = pm.hook.before_send
    peer = best(lambda: hook(message="hi", user="ann"))

    # plain loop (the floor)
    kw = {"message": "hi", "user": "ann"}
    if policy == "all":
        def loop() -> Any:
            out = []
            for f in funcs:
                r = f(**kw)
                if r is not None:
                    out.append(r)
            return out
    else:
        def loop() -> Any:
            for f in funcs:
                r = f(**kw)
                if r is not None:
                    return r
            return None
    floor = best(loop)
    assert caller(message="hi", user="ann") == loop() == hook(message="hi", user="ann")

    # the absolute floor: the values already in a tuple, passed positionally
    args = ("hi", "ann")
    if policy == "all":
        def loop_pos() -> Any:
            out = []
            for f in funcs:
                r = f(*args)
                if r is not None:
                    out.append(r)
            return out
    else:
        def loop_pos() -> Any:
            for f in funcs:
                r = f(*args)
                if r is not None:
                    return r
            return None
    pos_floor = best(loop_pos)
    return {"ours": ours, "pluggy": peer, "loop": floor, "loop_pos": pos_floor}


# ------------------------------------------------------------------ metrics on / off


def bench_metrics_hook(n: int = 5) -> dict[str, float]:
    """A hook call with ``n`` implementations, counted into the host's dispatch counters
    (metrics on: calls, sampled latency histogram, errors by code — what every plugin
    implementation gets in a host) or not (metrics off). Interleaved, best of many rounds."""
    from plughost.core.monitoring import DispatchCounters

    def caller(counters: DispatchCounters | None) -> Any:
        @hookspec(policy="all")
        def before_send(message: str, user: str) -> Any: ...

        reg = HookRegistry()
        if counters is not None:
            reg.count_into(counters)
        reg.add_spec(before_send, name="chat.before_send")
        for i, f in enumerate(make_funcs(n, "all")):
            reg.register(f"p{i}", "chat.before_send", f)
        return reg["chat.before_send"]

    off, on = caller(None), caller(DispatchCounters())
    best_off = best_on = float("inf")
    for _ in range(REPEAT * 4):
        best_off = min(best_off, best(lambda: off(message="hi", user="ann"), NUMBER // 4, 1))
        best_on = min(best_on, best(lambda: on(message="hi", user="ann"), NUMBER // 4, 1))
    return {"off": best_off, "on": best_on}


# ----------------------------------------------------------------------------- events, sync


def bench_emit_sync(n: int) -> dict[str, float]:
    sink: list[Any] = []

    def handler(event: Any) -> None:
        sink.append(event)

    def handler_kw(sender: Any, **kw: Any) -> None:
        sink.append(sender)

    def handler_payload(payload: Any) -> None:
        sink.append(payload)

    bus = EventBus()
    for _ in range(n):
        bus.subscribe("chat.message.sent", lambda e: sink.append(e))
    ours = best(lambda: bus.emit("chat.message.sent", 1))
    sink.clear()

    sig = blinker.Signal()
    receivers = [lambda sender, **kw: sink.append(sender) for _ in range(n)]
    for r in receivers:
        sig.connect(r, weak=False)
    bl = best(lambda: sig.send("x", payload=1))
    sink.clear()

    ee = pyee.EventEmitter()
    for _ in range(n):
        ee.on("chat.message.sent", lambda payload: sink.append(payload))
    py = best(lambda: ee.emit("chat.message.sent", 1))
    sink.clear()

    wild = EventBus()
    for _ in range(n):
        wild.subscribe("chat.#", lambda e: sink.append(e))
    wc = best(lambda: wild.emit("chat.message.sent", 1))
    sink.clear()
    return {"ours": ours, "blinker": bl, "pyee": py, "wildcard": wc}


# ---------------------------------------------------------------------------- events, async


EVENTS = 2_000


async def _ours_async(n: int) -> float:
    bus = EventBus(default_queue=EVENTS + 1)
    done = asyncio.Event()
    count = 0
    target = n * EVENTS

    def make_handler() -> Any:
        async def handler(event: Any) -> None:
            nonlocal count
            count += 1
            if count == target:
                done.set()

        return handler

    for _ in range(n):
        bus.subscribe("chat.token", make_handler())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(EVENTS):
        bus.emit("chat.token", i)
    await done.wait()
    elapsed = loop.time() - t0
    await bus.aclose()
    return elapsed / EVENTS * 1e6


async def _pyee_async(n: int) -> float:
    ee = pyee.asyncio.AsyncIOEventEmitter()
    done = asyncio.Event()
    count = 0
    target = n * EVENTS

    def make_handler() -> Any:
        # pyee keys handlers by function: each subscriber needs its own function object.
        async def handler(payload: Any) -> None:
            nonlocal count
            count += 1
            if count == target:
                done.set()

        return handler

    for _ in range(n):
        ee.on("chat.token", make_handler())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(EVENTS):
        ee.emit("chat.token", i)
    await done.wait()
    return (loop.time() - t0) / EVENTS * 1e6


def bench_emit_async(n: int) -> dict[str, float]:
    ours = min(asyncio.run(_ours_async(n)) for _ in range(REPEAT))
    peer = min(asyncio.run(_pyee_async(n)) for _ in range(REPEAT))
    return {"ours": ours, "pyee": peer}


# -------------------------------------------------------------------------------- commands


async def _commands() -> dict[str, float]:
    async def greet(name: str) -> str:
        return "hi " + name

    reg = CommandRegistry()
    reg.register("hello", "greet", greet)
    args = {"name": "ann"}
    loop = asyncio.get_running_loop()
    n = NUMBER
    results = {}
    for label, coro_fn in (
        ("ours", lambda: reg.execute("hello.greet", args)),
        ("timeout", lambda: reg.execute("hello.greet", args, timeout=5.0)),
        ("direct", lambda: greet(**args)),
    ):
        best_t = float("inf")
        for _ in range(REPEAT):
            t0 = loop.time()
            for _ in range(n):
                await coro_fn()
            best_t = min(best_t, (loop.time() - t0) / n * 1e6)
        results[label] = best_t
    return results


def main() -> None:
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, ours: float, peer_name: str, peer: float, goal: str = "") -> None:
        rows.append((what, f"{ours:8.3f}", f"{peer_name} {peer:8.3f}", f"{peer / ours:6.2f}x {goal}"))

    from importlib.metadata import version

    print(f"python {sys.version.split()[0]}, pluggy {version('pluggy')}, "
          f"pyee {version('pyee')}, blinker {version('blinker')}")
    for policy in ("all", "first"):
        for n in (1, 5, 20):
            r = bench_hooks(n, policy)
            goal = "(goal >= 2x)" if (n, policy) == (5, "all") else ""
            row(f"hook {policy:5} x{n:<2}", r["ours"], "pluggy", r["pluggy"], goal)
            floor_goal = "(goal <= 3x)" if (n, policy) == (5, "all") else ""
            rows.append((f"hook {policy:5} x{n:<2}", f"{r['ours']:8.3f}",
                         f"loop(**kw) {r['loop']:8.3f}", f"{r['ours'] / r['loop']:6.2f}x of floor {floor_goal}"))
            rows.append((f"hook {policy:5} x{n:<2}", f"{r['ours']:8.3f}",
                         f"loop(*args) {r['loop_pos']:8.3f}", f"{r['ours'] / r['loop_pos']:6.2f}x of floor"))
    for n in (1, 5, 20):
        r = bench_emit_sync(n)
        row(f"emit sync x{n:<2}", r["ours"], "blinker", r["blinker"],
            "(goal >= 3x)" if n == 5 else "")
        row(f"emit sync x{n:<2}", r["ours"], "pyee", r["pyee"], "(goal >= 1x)" if n == 5 else "")
        rows.append((f"emit '#' x{n:<2}", f"{r['wildcard']:8.3f}", "", "(wildcard subscribers)"))
    r = bench_emit_async(5)
    row("emit async x5", r["ours"], "pyee-aio", r["pyee"], "(goal >= 1x)")
    c = asyncio.run(_commands())
    rows.append(("command", f"{c['ours']:8.3f}", f"direct {c['direct']:8.3f}",
                 f"{c['ours'] / c['direct']:6.2f}x of floor"))
    rows.append(("command +timeout", f"{c['timeout']:8.3f}", f"direct {c['direct']:8.3f}",
                 f"{c['timeout'] / c['direct']:6.2f}x of floor"))

    m = bench_metrics_hook(5)
    rows.append(("hook all x5 metrics", f"{m['on']:8.3f}", f"metrics off {m['off']:8.3f}",
                 f"{m['on'] / m['off']:6.2f}x of off (goal <= 1.10x)"))

    print(f"{'case':18} {'plughost µs':>11}  {'peer µs':>20}  ratio (peer/plughost, or plughost/floor)")
    for what, ours, peer, ratio in rows:
        print(f"{what:18} {ours:>11}  {peer:>20}  {ratio}")


if __name__ == "__main__":
    main()
