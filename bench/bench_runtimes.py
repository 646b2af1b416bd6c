"""Isolated runtimes, side by side in one run; prints ratios against the named peers.

    python bench/bench_runtimes.py            # every section
    python bench/bench_runtimes.py process    # one section: process | wasm | grpc | native
                                              # (--quick: fewer rounds)
    python bench/bench_runtimes.py calls      # the process section's call rows alone (~1 min)

Process section: a ``plugin.call`` round trip through the process runtime against a bare
length-prefixed echo over a pipe to a child driven by asyncio (the floor): wall time and CPU per
call (host and child together, the child's from ``/proc/<pid>/task/*/schedstat``); calls/s with
64 in flight against the same echo with 64 frames in flight; memory per Python plugin (RSS and
PSS from ``/proc/<pid>/smaps_rollup``) started cold, from the warm spare and from the fork
server; spawn-to-ready against ``python -c pass`` (cold, warm spare, fork server, and confined:
the pids cgroup, Landlock and seccomp a process plugin runs under by default). Every figure is
the median of 5 runs (``--quick``: 3), each floor measured in the same run. The wasm section comes
from ``bench/bench_runtimes_wasm.py`` (the WebAssembly runtime's half) when it is present; the
grpc and native sections from ``bench/bench_runtimes_grpc_native.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from plughost.runtimes.process.runtime import ProcessOptions, ProcessRuntime  # noqa: E402

PLUGINS = ROOT / "bench" / "plugins"
PYECHO = ROOT / "tests" / "runtimes" / "process" / "plugins" / "pyecho"
NODE_EXAMPLE = ROOT / "examples" / "node-greeter"


@dataclass
class Row:
    section: str
    what: str
    value: float
    unit: str
    peer: str = ""
    peer_value: float | None = None
    goal: str = ""
    ratio_text: str = ""

    @property
    def ratio(self) -> str:
        if self.ratio_text:
            return self.ratio_text
        if self.peer_value in (None, 0):
            return ""
        return f"{self.value / self.peer_value:.2f}x"


def median_of(fn: Callable[[], float], n: int) -> float:
    return statistics.median(fn() for _ in range(n))


# --- floor: bare length-prefixed echo over a pipe ---------------------------------------------
_ECHO_CHILD = r"""
import os, struct
r, w = 0, 1
read, write, unpack = os.read, os.write, struct.unpack
while True:
    h = read(r, 4)
    if len(h) < 4:
        break
    n = unpack("<I", h)[0]
    body = b""
    while len(body) < n:
        body += read(r, n - len(body))
    write(w, h + body)
"""

PAYLOAD = b'{"jsonrpc":"2.0","id":1,"method":"plugin.call","params":{"target":"echo","args":{"x":1}}}'


def bare_pipe_echo(n: int) -> float:
    """Seconds per round trip, blocking reads/writes on both sides: nothing between the pipes."""
    proc = subprocess.Popen([sys.executable, "-S", "-c", _ECHO_CHILD],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdin and proc.stdout
    wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()
    frame = struct.pack("<I", len(PAYLOAD)) + PAYLOAD
    size = len(frame)
    for _ in range(200):
        os.write(wfd, frame)
        os.read(rfd, size)
    start = time.perf_counter()
    for _ in range(n):
        os.write(wfd, frame)
        got = os.read(rfd, size)
        while len(got) < size:
            got += os.read(rfd, size - len(got))
    elapsed = (time.perf_counter() - start) / n
    proc.stdin.close()
    proc.wait()
    return elapsed


_READ_LOOP = """
import os, sys, time
size, n = int(sys.argv[1]), 20000
r, w = os.pipe()
msg = b"x" * 100
start = time.perf_counter()
for _ in range(n):
    os.write(w, msg)
    os.read(r, size)
print((time.perf_counter() - start) / n)
"""


def read_cost(size: int) -> float:
    """Seconds per write + ``os.read(fd, size)`` of a 100-byte message through a pipe, in a
    fresh ``python -S`` process as a plugin runner is (the heap's state decides whether a big
    read buffer is mapped and faulted in on every read)."""
    out = subprocess.run([sys.executable, "-S", "-c", _READ_LOOP, str(size)], check=True,
                         capture_output=True, text=True)
    return float(out.stdout)


def task_cpu(pid: int) -> float:
    """CPU seconds used so far by every thread of process ``pid`` (nanosecond resolution)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError):
            total += int(stat.read_text().split()[0])
    return total / 1e9


@dataclass
class Cost:
    """Per round trip: wall seconds, host CPU seconds, child CPU seconds."""

    wall: float
    host: float
    child: float

    @property
    def cpu(self) -> float:
        return self.host + self.child


async def measured(n: int, child_pid: int, one: Callable[[], Any]) -> Cost:
    """Run ``await one()`` ``n`` times; the cost of one."""
    c0, h0, t0 = task_cpu(child_pid), time.process_time(), time.perf_counter()
    for _ in range(n):
        await one()
    t1, h1, c1 = time.perf_counter(), time.process_time(), task_cpu(child_pid)
    return Cost((t1 - t0) / n, (h1 - h0) / n, (c1 - c0) / n)


async def bare_pipe_echo_asyncio(n: int) -> Cost:
    """The same echo with the host side on asyncio pipes (the event loop's own floor)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-S", "-c", _ECHO_CHILD,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin and proc.stdout
    stdin, stdout = proc.stdin, proc.stdout
    frame = struct.pack("<I", len(PAYLOAD)) + PAYLOAD

    async def one() -> None:
        stdin.write(frame)
        await stdout.readexactly(len(frame))

    for _ in range(200):
        await one()
    cost = await measured(n, proc.pid, one)
    stdin.close()
    await proc.wait()
    return cost


async def bare_pipe_echo_in_flight(total: int, in_flight: int = 64) -> float:
    """Frames/s through the asyncio echo with ``in_flight`` frames outstanding: each answer
    sends the next frame (the floor of calls/s with 64 in flight)."""
    loop = asyncio.get_running_loop()
    frame = struct.pack("<I", len(PAYLOAD)) + PAYLOAD
    size = len(frame)
    done = loop.create_future()

    class Echo(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.buf = b""
            self.left = total
            self.sent = 0
            self.stdin: Any = None

        def pipe_data_received(self, fd: int, data: bytes) -> None:
            self.buf += data
            answered, rest = divmod(len(self.buf), size)
            self.buf = self.buf[len(self.buf) - rest:]
            self.left -= answered
            more = min(answered, total - self.sent)
            if more > 0:
                self.sent += more
                self.stdin.write(frame * more)
            if self.left <= 0 and not done.done():
                done.set_result(None)

    transport, echo = await loop.subprocess_exec(
        Echo, sys.executable, "-S", "-c", _ECHO_CHILD, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=None)
    echo.stdin = transport.get_pipe_transport(0)
    start = time.perf_counter()
    echo.sent = in_flight
    echo.stdin.write(frame * in_flight)
    await done
    rate = total / (time.perf_counter() - start)
    echo.stdin.close()
    transport.close()
    return rate


# --- the process runtime ------------------------------------------------------------------------
def manifest(plugin_id: str, entry: str) -> SimpleNamespace:
    return SimpleNamespace(id=plugin_id, entry=entry, limits={})


CTX = SimpleNamespace(config=MappingProxyType({}), data_dir=None)


async def runtime_round_trip(n: int, *, metrics: bool = False) -> Cost:
    """The cost of one ``plugin.call``; ``metrics``: through the host's dispatch counters (what
    ``host.call`` counts for ``/metrics``: calls, latency histogram, errors by code)."""
    from plughost.core.monitoring import DispatchCounters

    rt = ProcessRuntime(options=ProcessOptions(warm_spare=False))
    inst = await rt.load(manifest("pyecho", "pyecho_plugin:Echo"), PYECHO)
    await inst.start(CTX)
    call = DispatchCounters().counted("pyecho", "direct_calls", inst.call) if metrics else inst.call
    args = {"text": "x"}

    async def one() -> None:
        await call("say", args)

    for _ in range(500):
        await one()
    assert inst.pid is not None
    cost = await measured(n, inst.pid, one)
    await rt.aclose()
    return cost


async def runtime_throughput(total: int, in_flight: int = 64) -> float:
    rt = ProcessRuntime(options=ProcessOptions(warm_spare=False))
    inst = await rt.load(manifest("pyecho", "pyecho_plugin:Echo"), PYECHO)
    await inst.start(CTX)
    call = inst.call

    async def worker(k: int) -> None:
        for _ in range(k):
            await call("say", {"text": "x"})

    await asyncio.gather(*(worker(50) for _ in range(in_flight)))
    start = time.perf_counter()
    await asyncio.gather(*(worker(total // in_flight) for _ in range(in_flight)))
    rate = (total // in_flight * in_flight) / (time.perf_counter() - start)
    await rt.aclose()
    return rate


def smaps(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of process ``pid`` in MiB, from /proc/<pid>/smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key] = int(rest.split()[0]) / 1024
    return values["Rss"], values["Pss"]


async def memory_per_plugin(mode: str, count: int) -> tuple[float, float, float]:
    """Median (RSS, PSS) in MiB of ``count`` Python plugins started ``mode`` (cold, spare,
    forked), each after one call; plus the fork server's own PSS (0 unless forked)."""
    options = {
        "cold": ProcessOptions(warm_spare=False),
        "spare": ProcessOptions(warm_spare=True),
        "forked": ProcessOptions(fork_server=True),
    }[mode]
    rt = ProcessRuntime(options=options)
    insts = []
    for i in range(count):
        if mode == "spare":  # each plugin takes a spare that has finished its imports
            while i and rt._spare is None:  # noqa: ASYNC110 - untimed
                await asyncio.sleep(0.005)
        inst = await rt.load(manifest(f"pyecho{i}", "pyecho_plugin:Echo"), PYECHO)
        await inst.start(CTX)
        await inst.call("say", {"text": "x"})
        assert inst.stats()["started"] == (mode if i or mode != "spare" else "cold")
        insts.append(inst)
    sizes = [smaps(i.pid) for i in insts if i.pid is not None]
    server = rt._forkserver
    server_pss = smaps(server.pid)[1] if server is not None and server.pid is not None else 0.0
    await rt.aclose()
    return (statistics.median(r for r, _ in sizes), statistics.median(p for _, p in sizes),
            server_pss)


async def crash_detection(n: int) -> float:
    """Median seconds from SIGKILL of a busy plugin to PluginCrashed on its in-flight call."""
    import signal

    from plughost.errors import PluginCrashed

    rt = ProcessRuntime(options=ProcessOptions(warm_spare=False))
    times = []
    for _ in range(n):
        inst = await rt.load(manifest("pyecho", "pyecho_plugin:Echo"), PYECHO)
        await inst.start(CTX)
        call = asyncio.ensure_future(inst.call("nap", {"seconds": 30}, timeout=60))
        await asyncio.sleep(0.05)
        assert inst.pid is not None
        start = time.perf_counter()
        os.kill(inst.pid, signal.SIGKILL)
        try:
            await call
        except PluginCrashed:
            times.append(time.perf_counter() - start)
        await inst.close()
    await rt.aclose()
    return statistics.median(times)


def spawn_pass(flags: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *flags, "-c", "pass"], check=True)
    return time.perf_counter() - start


async def spawn_to_ready(
    plugin_id: str, entry: str, root: Path, n: int, *, mode: str = "cold"
) -> tuple[float, float]:
    """Median seconds from ``runtime.load`` to a completed handshake (ready to activate),
    unconfined and confined (pids cgroup, Landlock, seccomp: the default), the two measured
    alternately so that both see the same machine load.

    ``mode``: ``spare``, a spare runner is waiting (primed by one untimed load), as after the
    first Python plugin of a host (a confined spare joins the plugin's cgroup and confines itself
    when it is assigned); ``forked``, forked from the fork server (started by the untimed load);
    ``cold``, interpreter + imports + handshake every time.
    """
    warm = mode != "cold"  # the fork server forks the next runner ahead of need, as a spare
    runtimes = [ProcessRuntime(options=ProcessOptions(warm_spare=warm, confine=c,
                                                      fork_server=mode == "forked"))
                for c in (False, True)]
    # One untimed load each: primes the spare, the kernel probe and the page cache alike.
    for rt in runtimes:
        await (await rt.load(manifest(plugin_id, entry), root)).close()
    times: list[list[float]] = [[], []]
    for _ in range(n):
        for rt, out in zip(runtimes, times, strict=True):
            # Both spares ready: no spare is starting (and taking CPU) during a timed load.
            while warm and any(r._spare is None for r in runtimes):  # noqa: ASYNC110 - untimed
                await asyncio.sleep(0.005)
            start = time.perf_counter()
            inst = await rt.load(manifest(plugin_id, entry), root)
            out.append(time.perf_counter() - start)
            await inst.close()
    for rt in runtimes:
        await rt.aclose()
    return statistics.median(times[0]), statistics.median(times[1])


async def calls_section(quick: bool) -> list[Row]:
    """The cost of a call: round trip CPU and wall against the asyncio pipe echo, and calls/s
    with 64 in flight against the same echo with 64 frames in flight (the two floors), each
    the median of 5 runs (``--quick``: 3) interleaved with its floor's."""
    n = 2000 if quick else 10000
    runs = 3 if quick else 5
    rows: list[Row] = []
    blocking, floor, call = [], [], []
    for _ in range(runs):  # interleaved: the machine's load moves all three alike
        blocking.append(bare_pipe_echo(n))
        floor.append(await bare_pipe_echo_asyncio(n))
        call.append(await runtime_round_trip(n))
    b = statistics.median(blocking)
    f = Cost(*(statistics.median(getattr(c, k) for c in floor) for k in ("wall", "host", "child")))
    c = Cost(*(statistics.median(getattr(x, k) for x in call) for k in ("wall", "host", "child")))
    f_cpu = statistics.median(x.cpu for x in floor)
    c_cpu = statistics.median(x.cpu for x in call)
    reads = {size: statistics.median(read_cost(size) for _ in range(runs))
             for size in (64 * 1024, 256 * 1024)}
    rows.append(Row("process", "pipe write + os.read, 256 KiB read buffer",
                    reads[256 * 1024] * 1e6, "µs", "64 KiB buffer", reads[64 * 1024] * 1e6))
    rows.append(Row("process", "bare pipe echo round trip (blocking, floor)", b * 1e6, "µs"))
    rows.append(Row("process", "asyncio pipe echo round trip, wall", f.wall * 1e6, "µs",
                    "blocking floor", b * 1e6))
    rows.append(Row("process", "asyncio pipe echo round trip, CPU host+child (floor)",
                    f_cpu * 1e6, "µs", ratio_text=f"host {f.host * 1e6:.1f} + child "
                    f"{f.child * 1e6:.1f}"))
    rows.append(Row("process", "plugin.call round trip, wall", c.wall * 1e6, "µs",
                    "asyncio echo", f.wall * 1e6))
    rows.append(Row("process", "plugin.call round trip, CPU host+child", c_cpu * 1e6, "µs",
                    "asyncio echo CPU", f_cpu * 1e6, "≤ 2x floor"))
    rows.append(Row("process", "  of which host", c.host * 1e6, "µs", "echo host", f.host * 1e6))
    rows.append(Row("process", "  of which child", c.child * 1e6, "µs", "echo child",
                    f.child * 1e6))
    off, on = [], []
    for _ in range(runs):  # interleaved: the machine's load moves both alike
        off.append((await runtime_round_trip(n)).wall)
        on.append((await runtime_round_trip(n, metrics=True)).wall)
    rows.append(Row("process", "plugin.call round trip, metrics on", statistics.median(on) * 1e6,
                    "µs", "metrics off", statistics.median(off) * 1e6, "≤ 1.10x"))
    total = 50_000 if quick else 200_000
    echo_rates, rates = [], []
    for _ in range(runs):
        echo_rates.append(await bare_pipe_echo_in_flight(total))
        rates.append(await runtime_throughput(total))
    rows.append(Row("process", "asyncio pipe echo, 64 in flight (floor)",
                    statistics.median(echo_rates), "frames/s"))
    rows.append(Row("process", "plugin.call with 64 in flight", statistics.median(rates),
                    "calls/s", "echo, 64 in flight", statistics.median(echo_rates),
                    "≥ 100,000/s"))
    return rows


async def process_section(quick: bool) -> list[Row]:
    runs = 3 if quick else 5
    rows = await calls_section(quick)
    reps = 9 if quick else 21
    count = 10
    for mode in ("cold", "spare", "forked"):
        mem = [await memory_per_plugin(mode, count) for _ in range(runs)]
        rss = statistics.median(m[0] for m in mem)
        pss = statistics.median(m[1] for m in mem)
        rows.append(Row("process", f"memory per Python plugin ({count} running), {mode}: RSS",
                        rss, "MiB"))
        server = statistics.median(m[2] for m in mem)
        note = f"+ fork server PSS {server:.1f} MiB / {count}" if mode == "forked" else ""
        rows.append(Row("process", f"memory per Python plugin ({count} running), {mode}: PSS",
                        pss, "MiB", ratio_text=note))
    crash = await crash_detection(5 if quick else 15)
    rows.append(Row("process", "crash (SIGKILL) to PluginCrashed on in-flight call", crash * 1e3,
                    "ms", "goal 1 s", 1000.0, "≤ 1000 ms"))
    py_pass = median_of(lambda: spawn_pass([]), reps)
    py_pass_s = median_of(lambda: spawn_pass(["-S"]), reps)
    rows.append(Row("process", "python -c pass", py_pass * 1e3, "ms"))
    rows.append(Row("process", "python -S -c pass", py_pass_s * 1e3, "ms"))
    for label, plugin_id, entry, root in (
        ("plain Python class", "lean", "lean_plugin:Lean", PLUGINS / "lean"),
        ("plughost.sdk.Plugin subclass", "pyecho", "pyecho_plugin:Echo", PYECHO),
    ):
        for mode in ("cold", "spare", "forked"):
            text = {"cold": "cold", "spare": "warm spare", "forked": "fork server"}[mode]
            bare, confined = await spawn_to_ready(plugin_id, entry, root, reps, mode=mode)
            rows.append(Row("process", f"spawn-to-ready: {label}, {text}, unconfined",
                            bare * 1e3, "ms", "python -c pass", py_pass * 1e3, "≤ 30 ms"))
            rows.append(Row("process", f"spawn-to-ready: {label}, {text}, confined",
                            confined * 1e3, "ms", "unconfined", bare * 1e3))
    if shutil.which("node"):
        bare, confined = await spawn_to_ready(
            "node-greeter", "node main.js", NODE_EXAMPLE, reps
        )
        rows.append(Row("process", "spawn-to-ready: Node example, unconfined", bare * 1e3, "ms",
                        "python -c pass", py_pass * 1e3))
        rows.append(Row("process", "spawn-to-ready: Node example, confined", confined * 1e3,
                        "ms", "unconfined", bare * 1e3))
    return rows


async def wasm_section(quick: bool) -> list[Row]:
    """The WebAssembly rows, from bench/bench_runtimes_wasm.py (the wasm runtime's half)."""
    try:
        import bench_runtimes_wasm as wasm  # type: ignore[import-not-found]
    except ImportError as exc:  # the wasm half or wasmtime is not installed
        print(f"(wasm section skipped: {exc})")
        return []
    # It runs its own event loops: keep it off this one.
    return [Row(**r) for r in await asyncio.to_thread(wasm.section_rows, quick)]


async def grpc_section(quick: bool) -> list[Row]:
    """The gRPC rows, from bench/bench_runtimes_grpc_native.py."""
    import bench_runtimes_grpc_native as other

    return [Row(**r) for r in await asyncio.to_thread(other.section_rows, "grpc", quick)]


async def native_section(quick: bool) -> list[Row]:
    """The native-library rows, from bench/bench_runtimes_grpc_native.py."""
    import bench_runtimes_grpc_native as other

    return [Row(**r) for r in await asyncio.to_thread(other.section_rows, "native", quick)]


SECTIONS = {"calls": calls_section, "process": process_section, "wasm": wasm_section, "grpc": grpc_section,
            "native": native_section}


def print_table(rows: list[Row]) -> None:
    header = ("section", "measurement", "value", "unit", "peer", "ratio", "goal")
    table = [header] + [
        (r.section, r.what, f"{r.value:,.1f}", r.unit, r.peer, r.ratio, r.goal) for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


async def main() -> None:
    # The crash measurement kills plugins on purpose; their error logs are expected noise here.
    logging.getLogger("plughost").setLevel(logging.CRITICAL)
    quick = "--quick" in sys.argv
    # "calls" is part of "process": every section, by default, runs it once.
    wanted = [a for a in sys.argv[1:] if not a.startswith("-")] or [
        name for name in SECTIONS if name != "calls"]
    rows: list[Row] = []
    for name in wanted:
        rows += await SECTIONS[name](quick)
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    print_table(rows)


if __name__ == "__main__":
    asyncio.run(main())
