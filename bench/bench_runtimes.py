"""Isolated runtimes, side by side in one run; prints ratios against the named peers.

    python bench/bench_runtimes.py            # every section
    python bench/bench_runtimes.py process    # one section: process | wasm (--quick: fewer rounds)

Process section (issue 6): a ``plugin.call`` round trip through the process runtime against a
bare length-prefixed echo over a pipe to a child (the floor), calls/s with 64 in flight, and
spawn-to-ready against ``python -c pass`` (cold, with the warm spare, and confined: the pids
cgroup, Landlock and seccomp a process plugin runs under by default). The wasm section comes
from ``bench/bench_runtimes_wasm.py`` (the WebAssembly runtime's half) when it is present.
"""

from __future__ import annotations

import asyncio
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


async def bare_pipe_echo_asyncio(n: int) -> float:
    """The same echo with the host side on asyncio pipes (the event loop's own floor)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-S", "-c", _ECHO_CHILD,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin and proc.stdout
    frame = struct.pack("<I", len(PAYLOAD)) + PAYLOAD
    for _ in range(200):
        proc.stdin.write(frame)
        await proc.stdout.readexactly(len(frame))
    start = time.perf_counter()
    for _ in range(n):
        proc.stdin.write(frame)
        await proc.stdout.readexactly(len(frame))
    elapsed = (time.perf_counter() - start) / n
    proc.stdin.close()
    await proc.wait()
    return elapsed


# --- the process runtime ------------------------------------------------------------------------
def manifest(plugin_id: str, entry: str) -> SimpleNamespace:
    return SimpleNamespace(id=plugin_id, entry=entry, limits={})


CTX = SimpleNamespace(config=MappingProxyType({}), data_dir=None)


async def runtime_round_trip(n: int, *, metrics: bool = False) -> float:
    """Seconds per ``plugin.call``; ``metrics``: through the host's dispatch counters (what
    ``host.call`` counts for ``/metrics``: calls, latency histogram, errors by code)."""
    from plughost.core.monitoring import DispatchCounters

    rt = ProcessRuntime()
    inst = await rt.load(manifest("pyecho", "pyecho_plugin:Echo"), PYECHO)
    await inst.start(CTX)
    call = DispatchCounters().counted("pyecho", "direct_calls", inst.call) if metrics else inst.call
    for _ in range(500):
        await call("say", {"text": "x"})
    start = time.perf_counter()
    for _ in range(n):
        await call("say", {"text": "x"})
    elapsed = (time.perf_counter() - start) / n
    await rt.aclose()
    return elapsed


async def runtime_throughput(total: int, in_flight: int = 64) -> float:
    rt = ProcessRuntime()
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
    plugin_id: str, entry: str, root: Path, n: int, *, warm: bool
) -> tuple[float, float]:
    """Median seconds from ``runtime.load`` to a completed handshake (ready to activate),
    unconfined and confined (pids cgroup, Landlock, seccomp: the default), the two measured
    alternately so that both see the same machine load.

    ``warm``: a spare runner is waiting (primed by one untimed load), as after the first Python
    plugin of a host (a confined spare joins the plugin's cgroup and confines itself when it is
    assigned); otherwise every start is cold (interpreter + imports + handshake).
    """
    runtimes = [ProcessRuntime(options=ProcessOptions(warm_spare=warm, confine=c))
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


async def process_section(quick: bool) -> list[Row]:
    n = 2000 if quick else 10000
    rows: list[Row] = []
    floor = min(bare_pipe_echo(n) for _ in range(3))
    floor_async = min([await bare_pipe_echo_asyncio(n) for _ in range(3)])
    rt = min([await runtime_round_trip(n) for _ in range(3)])
    rows.append(Row("process", "bare pipe echo round trip (blocking, floor)", floor * 1e6, "µs"))
    rows.append(Row("process", "bare pipe echo round trip (asyncio host)", floor_async * 1e6, "µs",
                    "blocking floor", floor * 1e6))
    rows.append(Row("process", "plugin.call round trip (process runtime)", rt * 1e6, "µs",
                    "blocking floor", floor * 1e6, "≤ 1.5x floor"))
    rows.append(Row("process", "plugin.call round trip vs asyncio echo", rt * 1e6, "µs",
                    "asyncio echo", floor_async * 1e6))
    off, on = [], []
    for _ in range(3):  # interleaved: the machine's load moves both alike
        off.append(await runtime_round_trip(n))
        on.append(await runtime_round_trip(n, metrics=True))
    rows.append(Row("process", "plugin.call round trip, metrics on", min(on) * 1e6, "µs",
                    "metrics off", min(off) * 1e6, "≤ 1.10x"))
    total = 50_000 if quick else 200_000
    rate = max([await runtime_throughput(total) for _ in range(3)])
    rows.append(Row("process", "plugin.call with 64 in flight", rate, "calls/s",
                    "goal 100,000", 100_000, "≥ 100,000/s"))
    crash = await crash_detection(5 if quick else 15)
    rows.append(Row("process", "crash (SIGKILL) to PluginCrashed on in-flight call", crash * 1e3,
                    "ms", "goal 1 s", 1000.0, "≤ 1000 ms"))
    reps = 9 if quick else 21
    py_pass = median_of(lambda: spawn_pass([]), reps)
    py_pass_s = median_of(lambda: spawn_pass(["-S"]), reps)
    rows.append(Row("process", "python -c pass", py_pass * 1e3, "ms"))
    rows.append(Row("process", "python -S -c pass", py_pass_s * 1e3, "ms"))
    for label, plugin_id, entry, root in (
        ("plain Python class", "lean", "lean_plugin:Lean", PLUGINS / "lean"),
        ("plughost.sdk.Plugin subclass", "pyecho", "pyecho_plugin:Echo", PYECHO),
    ):
        for warm in (False, True):
            mode = "warm spare" if warm else "cold"
            bare, confined = await spawn_to_ready(plugin_id, entry, root, reps, warm=warm)
            rows.append(Row("process", f"spawn-to-ready: {label}, {mode}, unconfined",
                            bare * 1e3, "ms", "python -c pass", py_pass * 1e3, "≤ 30 ms"))
            rows.append(Row("process", f"spawn-to-ready: {label}, {mode}, confined",
                            confined * 1e3, "ms", "unconfined", bare * 1e3))
    if shutil.which("node"):
        bare, confined = await spawn_to_ready(
            "node-greeter", "node main.js", NODE_EXAMPLE, reps, warm=False
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


SECTIONS = {"process": process_section, "wasm": wasm_section}


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
    wanted = [a for a in sys.argv[1:] if not a.startswith("-")] or list(SECTIONS)
    rows: list[Row] = []
    for name in wanted:
        rows += await SECTIONS[name](quick)
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    print_table(rows)


if __name__ == "__main__":
    asyncio.run(main())
