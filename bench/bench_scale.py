"""The service at scale: what 10 / 100 / 1,000 / 10,000 installed plugins cost, beside floors.

    python bench/bench_scale.py [--sizes 10,100,1000,10000] [--repeat 5] [--duration 3]
        [--parts serve,cli,install,changes,discovery] [--keep DIR]

One home grows through the sizes: each size adds installed, lazy (``activation =
["command:..."]``) in-process plugins, written straight through the repository as an install
writes them (package blob, unpacked cache directory, plugin and version rows, config, audit;
see :func:`populate`) instead of N real installs. ``--keep DIR`` keeps that home, so a later
run (``--sizes 10000``) only adds what is missing. Then, medians of ``--repeat`` runs, each
beside its floor measured in the same run:

  serve start -> /readyz       goal <= 3 s at 10,000            floor: bare uvicorn + Starlette
                               (wall time, and the server's CPU time until ready: steadier
                               when other work shares the machine)
  idle CPU of the server       goal <= 2 %  (refresh every 2 s)
  GET /api/v1/plugins req/s    goal >= 50 % of a Starlette endpoint returning the same bytes
  GET /api/v1/plugins/{id}     (read cache off: --cache-ttl 0)
  GET /metrics (a scrape)      goal: flat within 20 % from the smallest size
  `plughost list` wall time    goal <= 2x `plughost --help`
  `plughost info ID`, `disable  goal: flat within 20 % from the smallest size (no server: the
  ID`, `enable ID` wall time   command reads the plugin and its neighbours, not every one)
  install one package          goal: flat within 20 % from the smallest size
  uninstall it again           goal: flat within 20 % from the smallest size
                               (in a service just opened, its heap collected before timing:
                               see :func:`install_once`)
  update, disable, enable one  goal: flat within 20 % from the smallest size
  plugin in a started service  (the live host has every installed plugin registered)
  discover + resolve N folders goal <= 1.5x stat + read + tomllib (cached <= 0.5x)
                               (rounds of floor, cold, cached go on past --repeat for 3 s:
                               a round of 10 plugins takes a millisecond; in an interpreter
                               of its own that imports plughost's core alone, as an
                               application embedding the host does)

The load generator is an httpx/asyncio process (20 connections); the server and it share the
machine, so req/s are comparable only within one run.

plughost is measured as installed: a wheel install compiles its modules to ``.pyc``, while a
source checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (as CI and the development machines set)
would compile every plughost module again at every start (the floor's Starlette and uvicorn
have their ``.pyc`` from site-packages). So the bench runs ``python -m compileall -q src`` once
before measuring and says so; the variable only stops Python writing ``.pyc``, it still reads
them. ``--from-source`` skips that step, to see what a start costs without them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
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


def package_bytes(i: int) -> bytes:
    """The package a plugin of this bench is installed from (a real zip: manifest + code)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("plugin.toml", manifest_text(i)), ("main.py", CODE)):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            zf.writestr(info, text)
    return out.getvalue()


def populate(home: Path, start: int, stop: int) -> None:
    """Plugins ``start..stop-1`` installed into ``home``, written through the repository as an
    install writes them (``Installer._commit_install``): the package blob under its key, the
    package unpacked into its checksum-named cache directory, the plugin and version rows,
    config version 1 and the audit entry. Much faster than real installs, and the same rows
    and files; a home grows from one size to the next."""
    import hashlib

    from plughost.core.manifest import load_manifest
    from plughost.services.installer import Installer
    from plughost.settings import HostSettings
    from plughost.storage.backends import open_storage
    from plughost.storage.objects import package_key
    from plughost.storage.records import StoredPlugin, StoredVersion

    home.mkdir(parents=True, exist_ok=True)
    # Alerts evaluated every 2 s (default 15 s), so each idle window sees evaluations too.
    (home / "plughost.toml").write_text('require_signature = "never"\n\n'
                                        '[alerts]\ninterval = "2s"\n')
    settings = HostSettings.from_env({"PLUGHOST_HOME": str(home)})
    with open_storage(settings) as storage:
        repo = storage.repository
        installer = Installer(settings, repo, storage.objects)
        for first in range(start, stop, 500):
            with repo.unit_of_work():
                for i in range(first, min(stop, first + 500)):
                    pid = f"scale-{i:05d}"
                    blob = package_bytes(i)
                    sha = hashlib.sha256(blob).hexdigest()
                    root = installer.cache_path(pid, "1.0.0", sha)
                    root.mkdir(parents=True)
                    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                        zf.extractall(root)
                    data = load_manifest(root).to_dict()
                    key = package_key(pid, "1.0.0")
                    storage.objects.put(key, blob)
                    source_uri = f"/packages/{pid}-1.0.0.zip"
                    repo.add_plugin(StoredPlugin.from_manifest(
                        data, checksum=sha, object_key=key, source="local",
                        source_uri=source_uri))
                    repo.add_version(StoredVersion(
                        plugin_id=pid, version="1.0.0", checksum=sha, object_key=key,
                        manifest=data, size=len(blob), cache_path=str(root), source="local",
                        source_uri=source_uri))
                    repo.set_config(pid, {}, changed_by="bench|install")
                    repo.append_audit("plugin.install", actor="bench", plugin_id=pid,
                                      details={"version": "1.0.0", "sha256": sha,
                                               "source": source_uri, "signed_by": None,
                                               "signed": False, "allow_unsigned": True,
                                               "granted": []})


def compile_sources() -> None:
    """``.pyc`` for plughost's modules, as a wheel install writes them (see the module doc)."""
    done = subprocess.run([sys.executable, "-m", "compileall", "-q", str(SRC)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"python -m compileall {SRC} failed: {done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")


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


def install_once(home: Path, package: Path) -> tuple[float, float]:
    """Seconds to install the package, then to uninstall it again (the home as it was), in a
    service just opened over the home.

    The heap is collected once the service is open, outside the timing, as the discovery
    part does before each run. Opening a service over N installed plugins makes about a dozen
    objects a plugin (117,000 at 10,000), still in the collector's young generations when the
    open returns: the next collections, which would otherwise fall inside the install, walk
    them all until they are moved to the oldest generation (4-6 ms more at 10,000, now and
    then a collection of the whole heap, 100 ms). That is the open's cost, paid once (a
    running server paid it long before an operator installs), not the install's."""
    import gc

    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    async def go() -> tuple[float, float]:
        settings = HostSettings.from_env({"PLUGHOST_HOME": str(home)})
        async with PluginService(settings, start=False) as svc:
            gc.collect()
            t0 = time.perf_counter()
            await svc.install(package, actor="bench")
            t1 = time.perf_counter()
            await svc.uninstall("bench-extra", actor="bench")
            return t1 - t0, time.perf_counter() - t1

    return asyncio.run(go())


def changes(home: Path, packages: tuple[Path, Path], repeat: int) -> dict[str, float]:
    """Seconds to update one plugin to a new version, disable it and enable it again, in a
    service started over the home (medians of ``repeat`` rounds; each round installs the
    first version before and uninstalls the plugin after, untimed)."""
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    async def go() -> dict[str, float]:
        settings = HostSettings.from_env({"PLUGHOST_HOME": str(home)})
        times: dict[str, list[float]] = {"update": [], "disable": [], "enable": []}
        async with PluginService(settings, start=True) as svc:
            for _ in range(repeat):
                await svc.install(packages[0], actor="bench")
                for key, step in (
                        ("update", lambda: svc.update("bench-change", packages[1], actor="bench")),
                        ("disable", lambda: svc.disable("bench-change", actor="bench")),
                        ("enable", lambda: svc.enable("bench-change", actor="bench"))):
                    t0 = time.perf_counter()
                    await step()
                    times[key].append(time.perf_counter() - t0)
                await svc.uninstall("bench-change", actor="bench")
        return {key: statistics.median(values) for key, values in times.items()}

    return asyncio.run(go())


def discovery(folder: Path, home: Path, repeat: int) -> tuple[float, float, float, int]:
    """Discovery + resolve of the N folders, cold and cached, beside the floor (interleaved).

    Each timed run starts from a collected heap (``gc.collect()`` first, outside the timing,
    for the floor too): the previous run's host is garbage with cycles, and collecting it
    inside the next run would charge that run for it. The cache is filled once the manifests
    are older than the discovery cache's settling time, so the cached figure is what an
    unchanged plugin costs (a manifest written moments ago is read and checked against its
    digest until then)."""
    import gc

    from plughost import PluginHost
    from plughost.core.discovery import _SETTLE_NS

    def floor() -> float:
        gc.collect()
        t0 = time.perf_counter()
        for entry in os.scandir(folder):
            path = Path(entry.path, "plugin.toml")
            path.stat()
            tomllib.loads(path.read_text())
        return time.perf_counter() - t0

    def run(cache: bool) -> float:
        gc.collect()
        t0 = time.perf_counter()
        host = PluginHost([folder], home=home, discovery_cache=cache)
        host.discover()
        host.resolve()
        return time.perf_counter() - t0

    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in (
        Path(entry.path, "plugin.toml").stat() for entry in os.scandir(folder)))
    time.sleep(max(0.0, (newest + _SETTLE_NS - time.time_ns()) / 1e9 + 0.1))
    run(True)  # fill the discovery cache
    # Interleaved, floor / cold / cached in each round, so that a slow moment of the machine
    # falls on all three alike rather than on one of them. A round of a few plugins takes
    # milliseconds, and one of them the machine slows shifts a median of five: rounds go on
    # past ``repeat`` until they have taken DISCOVERY_SECONDS (at most DISCOVERY_ROUNDS).
    rounds = []
    started = time.perf_counter()
    while len(rounds) < repeat or (time.perf_counter() - started < DISCOVERY_SECONDS
                                   and len(rounds) < DISCOVERY_ROUNDS):
        rounds.append((floor(), run(False), run(True)))
    floors, colds, cached = zip(*rounds, strict=True)
    return (statistics.median(floors), statistics.median(colds), statistics.median(cached),
            len(rounds))


DISCOVERY_SECONDS = 3.0
DISCOVERY_ROUNDS = 201


def measure(size: int, tmp: Path, args: argparse.Namespace) -> dict[str, float]:
    home = tmp / "home"
    log = tmp / f"server-{size}.log"
    have = len(list((home / "cache" / "plugins").glob("*"))) if home.is_dir() else 0
    if have > size:
        raise SystemExit(f"{home} already holds {have} plugins, more than {size}: use a new "
                         "--keep directory, or sizes in increasing order")
    t0 = time.perf_counter()
    populate(home, have, size)
    # The plugins just written are still being flushed to disk; installs and uninstalls
    # (which fsync) would wait behind that writeback. It is setup, not what is measured.
    os.sync()
    print(f"  {size - have} plugins added in {time.perf_counter() - t0:.1f} s", flush=True)
    out: dict[str, float] = {}
    if "serve" in args.parts:
        out.update(measure_server(home, tmp, log, args))
    if "cli" in args.parts:
        out["cli_list"] = median(lambda: cli_wall(["list", "--home", str(home)]), args.repeat)
        out["cli_help"] = median(lambda: cli_wall(["--help"]), args.repeat)
        one = ["scale-00001", "--home", str(home)]
        out["cli_info"] = median(lambda: cli_wall(["info", *one]), args.repeat)
        # Each round disables the plugin and enables it again (the home as it was).
        out["cli_switch"] = median(lambda: (cli_wall(["disable", *one])
                                            + cli_wall(["enable", *one])) / 2, args.repeat)
    if "install" in args.parts:
        runs = [install_once(home, args.package) for _ in range(args.repeat)]
        out["install"] = statistics.median(install for install, _ in runs)
        out["uninstall"] = statistics.median(uninstall for _, uninstall in runs)
    if "changes" in args.parts:
        out.update(changes(home, args.changes, args.repeat))
    if "discovery" in args.parts:
        folder = plugin_folders(home, tmp / f"folders-{size}")
        out["floor_disc"], out["disc"], out["disc_cached"], out["disc_rounds"] = (
            discovery_apart(folder, tmp / f"discovery-home-{size}", args.repeat))
    return out


def discovery_apart(folder: Path, home: Path, repeat: int) -> tuple[float, float, float, int]:
    """:func:`discovery` in a new interpreter, which imports what an application embedding the
    host imports (``plughost``'s core), not the service stack this one imported for the other
    parts. Each timed run starts from a full collection (see :func:`discovery`): here it would
    walk that stack's 111,000 objects before every run, which left the processor's caches
    cold and added the same 0.44 ms to the floor and to the host at 10 plugins (a bare
    ``os.stat`` took 54 us instead of 2), the harness's cost, not discovery's, and enough on
    its own to put a discovery that costs nothing at 0.42 of the floor."""
    done = subprocess.run(
        [sys.executable, __file__, DISCOVERY_CHILD, str(folder), str(home), str(repeat)],
        env=ENV, check=True, stdout=subprocess.PIPE, text=True)
    floor, cold, cached, rounds = json.loads(done.stdout)
    return floor, cold, cached, rounds


DISCOVERY_CHILD = "--discovery-apart"


def measure_server(home: Path, tmp: Path, log: Path,
                   args: argparse.Namespace) -> dict[str, float]:
    """Start to ready, idle CPU, list and detail req/s — each run beside a bare Starlette
    serving the same bytes — and the time of a Prometheus scrape of ``/metrics``."""
    import httpx

    starts, bare_starts, idle, lists, details, bare_lists, bare_details, cpus, bare_cpus = (
        [] for _ in range(9))
    scrapes: list[float] = []
    detail_path = "/api/v1/plugins/scale-00000"
    list_body, detail_body = tmp / "list.json", tmp / "detail.json"
    bodies = {"/api/v1/plugins": list_body, detail_path: detail_body}
    for _ in range(args.repeat):
        took, (proc, port) = timed_start(lambda p: serve(home, p, log))
        url = f"http://127.0.0.1:{port}"
        try:
            starts.append(took)
            cpus.append(cpu_seconds(proc.pid))
            list_body.write_bytes(httpx.get(f"{url}/api/v1/plugins").content)
            detail_body.write_bytes(httpx.get(url + detail_path).content)
            time.sleep(1.0)
            c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(args.idle)
            idle.append(100 * (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0))
            lists.append(load(f"{url}/api/v1/plugins", args.duration))
            details.append(load(url + detail_path, args.duration))
            httpx.get(f"{url}/metrics", timeout=600).raise_for_status()  # imports, untimed
            t0 = time.perf_counter()
            httpx.get(f"{url}/metrics", timeout=600).raise_for_status()
            scrapes.append(time.perf_counter() - t0)
        finally:
            stop_server(proc, 60)
        took, (proc, port) = timed_start(lambda p: bare(p, bodies, log))
        try:
            bare_starts.append(took)
            bare_cpus.append(cpu_seconds(proc.pid))
            url = f"http://127.0.0.1:{port}"
            bare_lists.append(load(f"{url}/api/v1/plugins", args.duration))
            bare_details.append(load(url + detail_path, args.duration))
        finally:
            stop_server(proc, 60)
    med = statistics.median
    return {"start": med(starts), "bare_start": med(bare_starts), "start_cpu": med(cpus),
            "bare_start_cpu": med(bare_cpus), "idle": med(idle),
            "list": med(lists), "bare_list": med(bare_lists), "detail": med(details),
            "bare_detail": med(bare_details), "scrape": med(scrapes)}


def plugin_folders(home: Path, folder: Path) -> Path:
    """A folder of N plugin folders (links to the unpacked versions) for discovery."""
    if not folder.is_dir():
        folder.mkdir()
        for root in sorted((home / "cache" / "plugins").glob("*/*")):
            (folder / root.parent.name).symlink_to(root)
    return folder


def make_package(tmp: Path, pid: str = "bench-extra", version: str = "1.0.0") -> Path:
    """A 1 MiB package of an in-process plugin (its code padded with random bytes)."""
    from plughost.security.package import pack

    src = tmp / f"{pid}-{version}" / pid
    src.mkdir(parents=True)
    (src / "plugin.toml").write_text(f'id = "{pid}"\nversion = "{version}"\n'
                                     'entry = "main:Main"\n')
    (src / "main.py").write_text(CODE + "\nPAD = " + repr(os.urandom(512 * 1024).hex()) + "\n")
    return pack(src, src.parent)


def main() -> None:
    if sys.argv[1:2] == [DISCOVERY_CHILD]:  # see discovery_apart
        folder, home, repeat = sys.argv[2:5]
        print(json.dumps(discovery(Path(folder), Path(home), int(repeat))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--parts", default="serve,cli,install,changes,discovery",
                        help="what to measure (comma-separated)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the home here and reuse it: a later run with bigger sizes "
                             "adds plugins to it instead of writing them all again")
    parser.add_argument("--from-source", action="store_true",
                        help="do not compile plughost's modules to .pyc first (.pyc already there "
                             "are still read; with none and PYTHONDONTWRITEBYTECODE=1 every "
                             "start compiles them again)")
    args = parser.parse_args()
    if args.from_source:
        print("plughost's modules: as they are (not compiled first)", flush=True)
    else:
        compile_sources()
        print(f"plughost's modules compiled to .pyc first (python -m compileall -q {SRC}), "
              "as a wheel install does", flush=True)
    args.parts = set(args.parts.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="plughost-bench-scale-") as name:
        tmp = args.keep or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        args.package = make_package(Path(name))
        args.changes = (make_package(Path(name), "bench-change", "1.0.0"),
                        make_package(Path(name), "bench-change", "1.1.0"))
        results = {}
        for size in sizes:
            print(f"size {size}", flush=True)
            results[size] = measure(size, tmp, args)
        report(results, sizes, args.repeat)


def report(results: dict[int, dict[str, float]], sizes: list[int], repeat: int) -> None:
    def cell(r: dict[str, float], fmt: str, key: str, scale: float = 1.0) -> str:
        return format(r[key] * scale, fmt) if key in r else "-"

    def ratio(r: dict[str, float], a: str, b: str) -> str:
        return f"{r[a] / r[b]:.2f}" if a in r and b in r else "-"

    first = {key: next((results[s][key] for s in sizes if key in results[s]), None)
             for key in ("install", "uninstall", "update", "disable", "enable", "scrape",
                         "cli_info", "cli_switch")}

    def versus_first(r: dict[str, float], key: str) -> str:
        base = first[key]
        return f"{r[key] / base:.2f}" if base and key in r else "-"

    print(f"\nmedians of {repeat} runs; floors from the same run")
    head = ("installed", "start s", "floor", "cpu s", "floor", "idle %", "list r/s", "bare", "ratio",
            "detail r/s", "bare", "ratio", "list s", "help s", "x", "install ms", "vs first",
            "uninst ms", "vs first", "disc ms", "cached", "floor", "x", "xc")
    widths = (10, 8, 6, 6, 6, 7, 9, 7, 6, 10, 7, 6, 7, 7, 5, 10, 8, 9, 8, 8, 7, 7, 5, 5)
    print(" ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for size in sizes:
        r = results[size]
        row = (str(size), cell(r, ".2f", "start"), cell(r, ".2f", "bare_start"),
               cell(r, ".2f", "start_cpu"), cell(r, ".2f", "bare_start_cpu"),
               cell(r, ".1f", "idle"), cell(r, ".0f", "list"), cell(r, ".0f", "bare_list"),
               ratio(r, "list", "bare_list"), cell(r, ".0f", "detail"),
               cell(r, ".0f", "bare_detail"), ratio(r, "detail", "bare_detail"),
               cell(r, ".2f", "cli_list"), cell(r, ".2f", "cli_help"),
               ratio(r, "cli_list", "cli_help"), cell(r, ".1f", "install", 1000),
               versus_first(r, "install"), cell(r, ".1f", "uninstall", 1000),
               versus_first(r, "uninstall"), cell(r, ".1f", "disc", 1000),
               cell(r, ".1f", "disc_cached", 1000), cell(r, ".1f", "floor_disc", 1000),
               ratio(r, "disc", "floor_disc"),
               ratio(r, "disc_cached", "floor_disc"))
        print(" ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    if any("update" in results[size] or "scrape" in results[size] for size in sizes):
        print("\nin a started service: update, disable, enable one plugin; GET /metrics")
        head = ("installed", "update ms", "vs first", "disable ms", "vs first", "enable ms",
                "vs first", "scrape ms", "vs first")
        widths = (10, 10, 8, 10, 8, 10, 8, 10, 8)
        print(" ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        for size in sizes:
            r = results[size]
            row = (str(size), *(c for key in ("update", "disable", "enable", "scrape")
                                for c in (cell(r, ".1f", key, 1000), versus_first(r, key))))
            print(" ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    if any("cli_info" in results[size] for size in sizes):
        print("\n`plughost info ID`, and `disable ID` / `enable ID` (per command), "
              "beside no server")
        head = ("installed", "info s", "vs first", "switch s", "vs first", "help s")
        widths = (10, 8, 8, 9, 8, 7)
        print(" ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        for size in sizes:
            r = results[size]
            row = (str(size), cell(r, ".2f", "cli_info"), versus_first(r, "cli_info"),
                   cell(r, ".2f", "cli_switch"), versus_first(r, "cli_switch"),
                   cell(r, ".2f", "cli_help"))
            print(" ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    if any("disc" in results[size] for size in sizes):
        from plughost.core import manifest

        parser = manifest.toml_parser()[0].__module__.partition(".")[0]
        version = "" if parser == "tomllib" else " " + sys.modules[parser].__version__
        print(f"\nmanifests parsed by {parser}{version} (compiled tomli comes with the `fast` "
              "extra; the floor parses with tomllib)")
        rounds = [f"{results[size]['disc_rounds']:.0f}" for size in sizes
                  if "disc_rounds" in results[size]]
        print(f"discovery: medians of {' / '.join(rounds)} rounds (at least {repeat}, and "
              f"as many more as fit in {DISCOVERY_SECONDS:g} s, up to {DISCOVERY_ROUNDS})")
    print("goals: start <= 3 s at 10,000; idle <= 2 %; list/detail ratio >= 0.5; "
          "list <= 2x help; install, uninstall, update, disable, enable, a scrape and the CLI "
          "on one plugin within 1.2x of the first size; discovery x <= 1.5, xc <= 0.5")


if __name__ == "__main__":
    main()
