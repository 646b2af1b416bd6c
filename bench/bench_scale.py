"""The service at scale: what 10 / 100 / 1,000 / 10,000 installed plugins cost, beside floors.

    python bench/bench_scale.py [--sizes 10,100,1000,10000] [--repeat 5] [--duration 3]

For each size a fresh home gets that many installed, lazy (``activation = ["command:..."]``)
in-process plugins, written straight through the repository (rows, an unpacked cache directory
and a package blob each, as an install leaves them) instead of N real installs. Then, medians
of ``--repeat`` runs, each beside its floor measured in the same run:

  serve start -> /readyz       goal <= 3 s at 10,000            floor: bare uvicorn + Starlette
  idle CPU of the server       goal <= 2 %  (refresh every 2 s)
  GET /api/v1/plugins req/s    goal >= 50 % of a Starlette endpoint returning the same bytes
  GET /api/v1/plugins/{id}     (read cache off: --cache-ttl 0)
  `plughost list` wall time    goal <= 2x `plughost --help`
  install one package          goal: flat within 20 % from the smallest size
  discover + resolve N folders goal <= 1.5x stat + read + tomllib (cached <= 0.5x)

The load generator is an httpx/asyncio process (20 connections); the server and it share the
machine, so req/s are comparable only within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import LOADGEN, free_port, stop_server, wait_ready  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(SRC)}
CODE = "from plughost.sdk import Plugin\n\n\nclass Main(Plugin):\n    pass\n"


def manifest_text(i: int) -> str:
    pid = f"scale-{i:05d}"
    return (f'id = "{pid}"\nname = "Scale plugin {i}"\nversion = "1.0.0"\n'
            f'type = "{"notify" if i % 2 else "demo"}"\nentry = "main:Main"\n'
            f'description = "Generated plugin number {i}"\n'
            f'activation = ["command:{pid}.run"]\n')


def populate(home: Path, count: int) -> None:
    """``count`` installed plugins, as installs leave them, written through the repository."""
    from plughost.core.manifest import load_manifest
    from plughost.settings import HostSettings
    from plughost.storage.backends import open_storage
    from plughost.storage.objects import package_key
    from plughost.storage.records import StoredPlugin, StoredVersion

    home.mkdir(parents=True)
    (home / "plughost.toml").write_text('require_signature = "never"\n')
    settings = HostSettings.from_env({"PLUGHOST_HOME": str(home)})
    with open_storage(settings) as storage:
        repo = storage.repository
        for start in range(0, count, 500):
            with repo.unit_of_work():
                for i in range(start, min(count, start + 500)):
                    pid = f"scale-{i:05d}"
                    root = settings.cache_dir / "plugins" / pid / "1.0.0-000000000000"
                    root.mkdir(parents=True)
                    (root / "plugin.toml").write_text(manifest_text(i))
                    (root / "main.py").write_text(CODE)
                    manifest = load_manifest(root).to_dict()
                    key = package_key(pid, "1.0.0")
                    storage.objects.put(key, b"PK\x05\x06" + b"\0" * 18)
                    repo.add_plugin(StoredPlugin.from_manifest(manifest, checksum="0" * 64,
                                                               object_key=key,
                                                               state="resolved"))
                    repo.add_version(StoredVersion(pid, "1.0.0", "0" * 64, key, manifest,
                                                   size=22, cache_path=str(root)))


def median(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "plughost", "serve", "--port", str(port), "--home", str(home),
           "--no-access-log", "--log-level", "warning", "--cache-ttl", "0"]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=ENV, stdout=out, stderr=out)


BARE = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
bodies = {p: open(f, "rb").read() for p, f in zip(sys.argv[2::2], sys.argv[3::2])}
async def answer(request):
    return Response(bodies.get(request.url.path, b"{}"), media_type="application/json")
async def ready(request):
    return Response(b'{"status":"ready"}', media_type="application/json")
routes = [Route("/readyz", ready)] + [Route(p, answer) for p in bodies]
uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", access_log=False)
"""


def bare(port: int, bodies: dict[str, Path], log: Path) -> subprocess.Popen[bytes]:
    args = [a for path, file in bodies.items() for a in (path, str(file))]
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", BARE, str(port), *args], env=ENV,
                                stdout=out, stderr=out)


def load(url: str, duration: float) -> float:
    done = subprocess.run([sys.executable, "-c", LOADGEN, url, "20", str(duration)],
                          capture_output=True, text=True, env=ENV)
    if done.returncode:
        raise SystemExit(f"load generator failed: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rps"])


def timed_start(start: Callable[[int], subprocess.Popen[bytes]]) -> tuple[float, Any]:
    port = free_port()
    t0 = time.perf_counter()
    proc = start(port)
    wait_ready(f"http://127.0.0.1:{port}", proc, timeout=600)
    return time.perf_counter() - t0, (proc, port)


def cli_wall(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "plughost", *args], env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def install_once(home: Path, package: Path) -> float:
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    async def go() -> float:
        settings = HostSettings.from_env({"PLUGHOST_HOME": str(home)})
        async with PluginService(settings, start=False) as svc:
            t0 = time.perf_counter()
            await svc.install(package, actor="bench")
            took = time.perf_counter() - t0
            await svc.uninstall("bench-extra", actor="bench")
            return took

    return asyncio.run(go())


def discovery(folder: Path, home: Path, repeat: int) -> tuple[float, float, float]:
    from plughost import PluginHost

    def floor() -> float:
        t0 = time.perf_counter()
        for entry in os.scandir(folder):
            path = Path(entry.path, "plugin.toml")
            path.stat()
            tomllib.loads(path.read_text())
        return time.perf_counter() - t0

    def run(cache: bool) -> float:
        t0 = time.perf_counter()
        host = PluginHost([folder], home=home, discovery_cache=cache)
        host.discover()
        host.resolve()
        return time.perf_counter() - t0

    run(True)  # fill the discovery cache
    return median(floor, repeat), median(lambda: run(False), repeat), \
        median(lambda: run(True), repeat)


def measure(size: int, tmp: Path, args: argparse.Namespace) -> dict[str, float]:
    home = tmp / f"home-{size}"
    log = tmp / f"server-{size}.log"
    t0 = time.perf_counter()
    populate(home, size)
    print(f"  {size} plugins written in {time.perf_counter() - t0:.1f} s", flush=True)
    out: dict[str, float] = {}
    starts, bare_starts, idle, lists, details, bare_lists, bare_details = ([] for _ in range(7))
    detail_path = "/api/v1/plugins/scale-00000"
    list_body, detail_body = tmp / "list.json", tmp / "detail.json"
    bodies = {"/api/v1/plugins": list_body, detail_path: detail_body}
    for _ in range(args.repeat):
        took, (proc, port) = timed_start(lambda p: serve(home, p, log))
        url = f"http://127.0.0.1:{port}"
        try:
            starts.append(took)
            import httpx

            list_body.write_bytes(httpx.get(f"{url}/api/v1/plugins").content)
            detail_body.write_bytes(httpx.get(url + detail_path).content)
            time.sleep(1.0)
            c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(args.idle)
            idle.append(100 * (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0))
            lists.append(load(f"{url}/api/v1/plugins", args.duration))
            details.append(load(url + detail_path, args.duration))
        finally:
            stop_server(proc, 60)
        took, (proc, port) = timed_start(
            lambda p: bare(p, bodies, log))
        try:
            bare_starts.append(took)
            url = f"http://127.0.0.1:{port}"
            bare_lists.append(load(f"{url}/api/v1/plugins", args.duration))
            bare_details.append(load(url + detail_path, args.duration))
        finally:
            stop_server(proc, 60)
    med = statistics.median
    out.update(start=med(starts), bare_start=med(bare_starts), idle=med(idle),
               list=med(lists), bare_list=med(bare_lists), detail=med(details),
               bare_detail=med(bare_details))
    out["cli_list"] = median(lambda: cli_wall(["list", "--home", str(home)]), args.repeat)
    out["cli_help"] = median(lambda: cli_wall(["--help"]), args.repeat)
    out["install"] = median(lambda: install_once(home, args.package), args.repeat)
    folder = settings_cache(home)
    out["floor_disc"], out["disc"], out["disc_cached"] = discovery(folder, tmp / "dh", args.repeat)
    return out


def settings_cache(home: Path) -> Path:
    """A folder of N plugin folders (links to the unpacked versions) for discovery."""
    folder = home.parent / f"folders-{home.name}"
    folder.mkdir()
    for root in sorted((home / "cache" / "plugins").glob("*/*")):
        (folder / root.parent.name).symlink_to(root)
    return folder


def make_package(tmp: Path) -> Path:
    from plughost.security.package import pack

    src = tmp / "bench-extra"
    src.mkdir()
    (src / "plugin.toml").write_text('id = "bench-extra"\nversion = "1.0.0"\n'
                                     'entry = "main:Main"\n')
    (src / "main.py").write_text(CODE + "\nPAD = " + repr(os.urandom(512 * 1024).hex()) + "\n")
    return pack(src, tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="plughost-bench-scale-") as name:
        tmp = Path(name)
        args.package = make_package(tmp)
        results = {}
        for size in sizes:
            print(f"size {size}", flush=True)
            results[size] = measure(size, tmp, args)
        first = results[sizes[0]]["install"]
        print(f"\nmedians of {args.repeat} runs; floors from the same run")
        print(f"{'installed':>10} {'start s':>8} {'floor':>6} {'idle %':>7} "
              f"{'list r/s':>9} {'bare':>7} {'ratio':>6} {'detail r/s':>10} {'bare':>7} "
              f"{'ratio':>6} {'list s':>7} {'help s':>7} {'x':>5} {'install ms':>10} "
              f"{'vs first':>8} {'disc ms':>8} {'cached':>7} {'floor':>7} {'x':>5} {'xc':>5}")
        for size, r in results.items():
            print(f"{size:>10} {r['start']:8.2f} {r['bare_start']:6.2f} {r['idle']:7.1f} "
                  f"{r['list']:9.0f} {r['bare_list']:7.0f} {r['list'] / r['bare_list']:6.2f} "
                  f"{r['detail']:10.0f} {r['bare_detail']:7.0f} "
                  f"{r['detail'] / r['bare_detail']:6.2f} {r['cli_list']:7.2f} "
                  f"{r['cli_help']:7.2f} {r['cli_list'] / r['cli_help']:5.1f} "
                  f"{r['install'] * 1000:10.1f} {r['install'] / first:8.2f} "
                  f"{r['disc'] * 1000:8.1f} {r['disc_cached'] * 1000:7.1f} "
                  f"{r['floor_disc'] * 1000:7.1f} {r['disc'] / r['floor_disc']:5.2f} "
                  f"{r['disc_cached'] / r['floor_disc']:5.2f}")
        print("goals: start <= 3 s at 10,000; idle <= 2 %; list/detail ratio >= 0.5; "
              "list <= 2x help; install within 1.2x of the first size; discovery x <= 1.5, "
              "xc <= 0.5")


if __name__ == "__main__":
    main()
