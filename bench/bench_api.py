"""Benchmark the management API: ``GET /api/v1/plugins`` with 50 installed plugins.

Setup: a fresh home with 50 installed (active) in-process plugins; ``plughost serve`` in a
subprocess (access log off), pinned to core 0 with ``taskset`` where available; the load
generator on core 1: ``wrk`` when installed (50 connections, 10 s, ``--latency``), otherwise an
httpx/asyncio generator in another process with the same shape. Also reports the idle server's
resident memory with the 50 plugins loaded.

Goals (issue 7): >= 1,000 req/s and p99 <= 50 ms on this machine.

    python bench/bench_api.py [--plugins 50] [--connections 50] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))

GOAL_RPS = 1000.0
GOAL_P99_MS = 50.0

CODE = """from plughost.sdk import Plugin


class Main(Plugin):
    def activate(self, ctx):
        self.ready = True
"""


def make_home(home: Path, count: int) -> None:
    """Install ``count`` packaged plugins into ``home`` through the service facade."""
    from plughost.security.package import pack
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    home.mkdir(parents=True)
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    work = home.parent / "packages"
    work.mkdir()
    packages = []
    for i in range(count):
        pid = f"bench-plugin-{i:02d}"
        folder = work / pid
        folder.mkdir()
        (folder / "plugin.toml").write_text(
            f'id = "{pid}"\nname = "Bench plugin {i}"\nversion = "1.0.{i}"\n'
            f'type = "{"notify" if i % 2 else "demo"}"\nentry = "main:Main"\n'
            f'description = "Benchmark plugin number {i}"\n')
        (folder / "main.py").write_text(CODE)
        packages.append(pack(folder, work))

    async def install() -> None:
        settings = HostSettings.from_env({"PLUGHOST_HOME": str(home)})
        async with PluginService(settings, start=False) as svc:
            for package in packages:
                await svc.install(package, actor="bench")

    asyncio.run(install())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def start_server(home: Path, port: int, cache_ttl: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [*pinned(0), sys.executable, "-m", "plughost", "serve", "--port", str(port),
           "--home", str(home), "--no-access-log", "--log-level", "warning",
           "--cache-ttl", str(cache_ttl)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited: " + (proc.stderr.read().decode()
                                                  if proc.stderr else ""))
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise SystemExit(f"cannot read wrk's latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/s, p50/p99 (ms) and non-2xx count from ``wrk --latency`` output. wrk pads a
    one-letter unit with a trailing space ("  99%    1.23s "), so allow trailing blanks."""
    def grab(pattern: str) -> str:
        match = re.search(pattern, out, re.M)
        if match is None:
            raise SystemExit(f"cannot find {pattern!r} in wrk's output:\n{out}")
        return match.group(1)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(grab(r"Requests/sec:\s+([\d.]+)")),
            "p50": _ms(grab(r"^\s+50%\s+(\S+)\s*$")),
            "p99": _ms(grab(r"^\s+99%\s+(\S+)\s*$")),
            "errors": float(errors.group(1)) if errors else 0.0}


def run_wrk(url: str, connections: int, duration: int, path: str = "/api/v1/plugins",
            ) -> dict[str, float]:
    cmd = [*pinned(1), "wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s",
           "--latency", f"{url}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if os.environ.get("BENCH_VERBOSE"):
        print(out)
    return parse_wrk(out)


LOADGEN = r"""
import asyncio, json, sys, time
import httpx

async def main(url, connections, duration):
    latencies, errors = [], 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker():
            nonlocal errors
            while True:  # at least one request each, however short the duration
                t = time.perf_counter()
                r = await client.get(url)
                latencies.append(time.perf_counter() - t)
                errors += r.status_code != 200
                if time.monotonic() >= stop:
                    return
        # The clock starts once the client is made (which can take longer than a short
        # duration on a loaded machine, and left no request measured at all).
        start = time.monotonic()
        stop = start + duration
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(json.dumps({"rps": len(latencies) / elapsed, "p50": pick(0.5), "p99": pick(0.99),
                      "errors": errors}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


def run_httpx(url: str, connections: int, duration: int) -> dict[str, float]:
    cmd = [*pinned(1), sys.executable, "-c", LOADGEN, f"{url}/api/v1/plugins",
           str(connections), str(duration)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(home: Path, args: argparse.Namespace, cache_ttl: float) -> dict[str, Any]:
    """Start a server on ``home``, load it, stop it; returns the figures."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(home, port, cache_ttl)
    try:
        wait_ready(url, proc)
        body = httpx.get(f"{url}/api/v1/plugins").json()
        assert body["total"] == args.plugins, body["total"]
        active = sum(p["state"] == "active" for p in body["items"])
        time.sleep(1.0)
        idle_rss = rss_mib(proc.pid)
        use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk"))
        run = run_wrk if use_wrk else run_httpx
        run(url, args.connections, 2)  # warm-up
        result: dict[str, Any] = dict(run(url, args.connections, args.duration))
        result.update(tool="wrk" if use_wrk else "httpx/asyncio", active=active,
                      idle_rss=idle_rss, loaded_rss=rss_mib(proc.pid))
        return result
    finally:
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=50)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--loadgen", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--cache-ttl", type=float, default=1.0,
                        help="the server's --cache-ttl for the main run (0: no read cache)")
    parser.add_argument("--skip-uncached", action="store_true",
                        help="do not also measure with the read cache off")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="plughost-bench-api-") as tmp:
        home = Path(tmp) / "home"
        t0 = time.perf_counter()
        make_home(home, args.plugins)
        print(f"installed {args.plugins} plugins in {time.perf_counter() - t0:.1f} s")
        runs = [(f"read cache {args.cache_ttl:g} s", measure(home, args, args.cache_ttl))]
        if not args.skip_uncached and args.cache_ttl > 0:
            runs.append(("no read cache", measure(home, args, 0.0)))

    first = runs[0][1]
    pin = "server on cpu 0, load on cpu 1" if pinned(0) else "not pinned (one core)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nGET /api/v1/plugins, {args.plugins} installed ({first['active']} active), "
          f"{args.connections} connections, {args.duration} s, load: {first['tool']}, {pin}; "
          f"machine load average {load:.1f} on {os.cpu_count()} cores\n")
    print(f"{'run':<22}{'req/s':>9}{'vs 1000':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs 50ms':>9}"
          f"{'non-2xx':>9}")
    for name, r in runs:
        print(f"{name:<22}{r['rps']:>9.0f}{r['rps'] / GOAL_RPS:>8.2f}x{r['p50']:>9.2f}"
              f"{r['p99']:>9.2f}{GOAL_P99_MS / r['p99']:>8.2f}x{r['errors']:>9.0f}")
    print(f"\nidle server RSS with {args.plugins} plugins loaded: {first['idle_rss']:.1f} MiB "
          f"(after the run: {first['loaded_rss']:.1f} MiB)")
    print("(a ratio above 1.00x meets the goal: >= 1,000 req/s, p99 <= 50 ms)")


if __name__ == "__main__":
    main()
