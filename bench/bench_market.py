"""The marketplace: search, metadata refresh, install with dependencies; against floors and pip.

Run: python bench/bench_market.py [--repeat 5] [--sizes 10,100,1000,10000] [--no-pip]
     [--only search|api|refresh|install|pip ...]

1. **Search in-process** over generated indexes of 10 / 100 / 1,000 / 10,000 plugins
   (:func:`plughost.services.market.index.search`, ranked, paginated, compatibility filter):
   p50 and p99 over a mix of queries. Floor: a bare substring scan of the same plugins
   (no ranking, no filters) in the same run. Goal: p99 <= 20 ms at 10,000.
2. **Search through the API**: ``GET /api/v1/market/search`` on the app (httpx over ASGI,
   ratings, downloads and installed versions joined from SQLite) with the 10,000-plugin index
   published to a real repository. Goal: p99 <= 50 ms.
3. **Metadata refresh with nothing changed** (TUF: root N+1 probe, timestamp; snapshot and
   targets verified from the local copy) against a repository served over HTTP on loopback,
   counting round trips. Floor: one plain GET of ``timestamp.json`` on a kept-alive
   connection. Goal: <= 10 ms + 1 round trip.
4. **Install of a plugin with 5 dependencies** from a loopback repository, all six resolved,
   fetched through TUF, verified and installed (``Market.install``). Floor: the six packages
   installed from local files by ``PluginService.install`` (no marketplace). Peer: ``pip
   download`` of six comparable wheels (same dependency shape) from a local simple index
   served over HTTP. Goal: <= 1 s.

Each figure is the median of ``--repeat`` runs (>= 5).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from plughost.core.version import Version, VersionRange
from plughost.services.market.client import MarketClient
from plughost.services.market.index import (
    Index,
    IndexPlugin,
    IndexVersion,
    SearchQuery,
    _with_haystack,
    package_target,
    search,
)
from plughost.services.market.repo import MarketRepository
from plughost.services.market.serve import RepositoryServer

WORDS = ("lyrics", "notify", "slack", "music", "weather", "audio", "metrics", "export", "sync",
         "search", "cache", "auth", "mail", "chat", "video", "image", "calendar", "backup")
TYPES = ("notify", "music-source", "exporter", "auth", "storage")
QUERIES = [SearchQuery("lyrics"), SearchQuery("slack notify"), SearchQuery(tag="audio"),
           SearchQuery(type="exporter", compatible=True), SearchQuery("plugin-42"),
           SearchQuery(""), SearchQuery("weather sync", runtime="python"),
           SearchQuery("zzz-nothing")]


def gen_index(n: int, seed: int = 7) -> Index:
    rng = random.Random(seed)
    plugins = {}
    for i in range(n):
        pid = f"plugin-{i}"
        versions = []
        for v in range(rng.randint(1, 4)):
            ver = f"1.{v}.0"
            versions.append(IndexVersion(
                id=pid, version=Version.parse(ver), target=package_target(pid, ver),
                sha256=f"{i:064x}"[-64:], size=rng.randint(1000, 10**6),
                host=VersionRange(">=0.1.0" if rng.random() > 0.1 else ">=9.0.0"),
                runtime=rng.choice(("python", "python", "process", "wasm")),
                dependencies={f"plugin-{rng.randrange(n)}": VersionRange("^1.0")}
                if i and rng.random() < 0.3 else {},
                published="2026-12-01T00:00:00Z"))
        versions.sort(key=lambda x: x.version, reverse=True)
        words = rng.sample(WORDS, 3)
        plugins[pid] = _with_haystack(IndexPlugin(
            id=pid, name=f"{words[0].title()} {words[1]}",
            description=f"A plugin for {' and '.join(words)} ({i})",
            type=rng.choice(TYPES), tags=tuple(words[:2]), author="bench", homepage="",
            license="MIT", versions=tuple(versions), downloads=rng.randint(0, 10**5)))
    return Index(plugins, "2026-12-01T00:00:00Z")


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def bench_search(sizes: list[int], repeat: int) -> None:
    print("\n== search in-process (ms; p99 over the query mix; median of runs) ==")
    print(f"{'plugins':>8} {'p50':>8} {'p99':>8} {'floor p99':>10} {'ratio':>7}  goal p99<=20")
    host = Version.parse("0.1.0")
    for n in sizes:
        index = gen_index(n)
        sources = [("main", index)]
        p50s, p99s, floors = [], [], []
        for _ in range(repeat):
            samples, floor = [], []
            for _round in range(10):
                for q in QUERIES:
                    t0 = time.perf_counter()
                    search(sources, q, host_version=host, limit=20)
                    samples.append((time.perf_counter() - t0) * 1000)
                    terms = q.text.lower().split()
                    t0 = time.perf_counter()
                    _ = [p for p in index.plugins.values()
                         if all(t in p.haystack for t in terms)][:20]
                    floor.append((time.perf_counter() - t0) * 1000)
            p50s.append(pct(samples, 50))
            p99s.append(pct(samples, 99))
            floors.append(pct(floor, 99))
        p99, fl = statistics.median(p99s), statistics.median(floors)
        print(f"{n:>8} {statistics.median(p50s):>8.2f} {p99:>8.2f} {fl:>10.2f} "
              f"{p99 / fl if fl else 0:>6.1f}x")


def publish_index(repo: MarketRepository, index: Index) -> None:
    with repo._locked():
        _, _, targets_md = repo.current()
        repo._commit(targets_md, index)


async def bench_api_search(tmp: Path, repeat: int) -> None:
    import httpx

    from plughost.interfaces.http import create_app
    from plughost.services.manager import PluginService
    from plughost.settings import HostSettings

    print("\n== search through the API, 10,000 plugins (ms) ==")
    repo = MarketRepository.init(tmp / "api-repo")
    publish_index(repo, gen_index(10_000))
    settings = HostSettings(home=tmp / "api-home", require_signature="never")
    with RepositoryServer(repo.public) as server:
        client = MarketClient(settings.home)
        client.add("main", server.url, (repo.path / "root.json").read_bytes())
        client.refresh("main")
        service = PluginService(settings, start=True)
        app = create_app(service, settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                params = [{"q": "lyrics"}, {"q": "slack notify"}, {"tag": "audio"},
                          {"type": "exporter"}, {"q": "plugin-42"}, {}]
                await c.get("/api/v1/market/search", params={"q": "warm"})
                p50s, p99s, floors = [], [], []
                for _ in range(repeat):
                    samples, floor = [], []
                    for _round in range(8):
                        for p in params:
                            t0 = time.perf_counter()
                            r = await c.get("/api/v1/market/search", params=p)
                            samples.append((time.perf_counter() - t0) * 1000)
                            assert r.status_code == 200, r.text
                        t0 = time.perf_counter()
                        await c.get("/healthz")
                        floor.append((time.perf_counter() - t0) * 1000)
                    p50s.append(pct(samples, 50))
                    p99s.append(pct(samples, 99))
                    floors.append(statistics.median(floor))
    p99, fl = statistics.median(p99s), statistics.median(floors)
    print(f"p50 {statistics.median(p50s):.2f}  p99 {p99:.2f}  floor (GET /healthz, same "
          f"app) {fl:.2f}  ratio {p99 / fl:.1f}x  goal p99<=50")


class CountingFetcher:
    """ngclient's default fetcher, counting requests (round trips)."""

    def __init__(self) -> None:
        from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

        self.inner = Urllib3Fetcher()
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _fetch(self, url: str) -> Any:
        self.count += 1
        return self.inner._fetch(url)

    def fetch(self, url: str) -> Any:
        self.count += 1
        return self.inner.fetch(url)

    def download_bytes(self, url: str, max_length: int) -> bytes:
        self.count += 1
        return self.inner.download_bytes(url, max_length)

    def download_file(self, url: str, max_length: int) -> Any:
        self.count += 1
        return self.inner.download_file(url, max_length)


def bench_refresh(tmp: Path, repeat: int) -> None:
    import urllib3

    print("\n== metadata refresh, nothing changed (ms) ==")
    repo = MarketRepository.init(tmp / "refresh-repo")
    publish_index(repo, gen_index(1000))
    with RepositoryServer(repo.public) as server:
        fetcher = CountingFetcher()
        client = MarketClient(tmp / "refresh-home", fetcher=fetcher)
        client.add("main", server.url, (repo.path / "root.json").read_bytes())
        client.refresh("main")
        pool = urllib3.PoolManager()
        pool.request("GET", f"{server.url}/metadata/timestamp.json")
        runs, floors, trips = [], [], []
        for _ in range(repeat):
            samples, floor = [], []
            for _i in range(20):
                before = fetcher.count
                t0 = time.perf_counter()
                result = client.refresh("main")
                samples.append((time.perf_counter() - t0) * 1000)
                trips.append(fetcher.count - before)
                assert not result.changed
                t0 = time.perf_counter()
                pool.request("GET", f"{server.url}/metadata/timestamp.json")
                floor.append((time.perf_counter() - t0) * 1000)
            runs.append(statistics.median(samples))
            floors.append(statistics.median(floor))
    rt, fl = statistics.median(runs), statistics.median(floors)
    print(f"refresh {rt:.2f}  round trips {statistics.median(trips):.0f}  floor (one GET) "
          f"{fl:.2f}  ratio {rt / fl:.1f}x  goal <= 10 + 1 round trip "
          f"(= {10 + fl:.2f} here)")


PLUGIN_CODE = "from plughost.sdk import Plugin\n\nclass Main(Plugin):\n    pass\n"


def make_set(tmp: Path) -> tuple[list[Path], Path]:
    """app -> d1..d5 (d2 -> d1, d4 -> d3): six signed packages of ~100 KiB each."""
    from plughost.security.package import pack
    from plughost.security.signing import keygen, sign

    private, public = keygen(tmp / "keys", "bench")
    rng = random.Random(3)
    shape = {"d1": {}, "d2": {"d1": "^1.0"}, "d3": {}, "d4": {"d3": "^1.0"}, "d5": {},
             "app": {f"d{i}": "^1.0" for i in range(1, 6)}}
    out = []
    for pid, deps in shape.items():
        src = tmp / "src" / pid
        src.mkdir(parents=True)
        lines = [f'id = "bench-{pid}"', f'name = "{pid}"', 'version = "1.0.0"',
                 'entry = "main:Main"']
        if deps:
            lines.append("[dependencies]")
            lines += [f'"bench-{k}" = "{v}"' for k, v in deps.items()]
        (src / "plugin.toml").write_text("\n".join(lines) + "\n")
        (src / "main.py").write_text(PLUGIN_CODE)
        (src / "data.bin").write_bytes(rng.randbytes(100 * 1024))
        out.append(sign(pack(src, tmp / f"bench-{pid}-1.0.0.zip"), private))
    return out, public


async def bench_install(tmp: Path, repeat: int) -> None:
    from plughost.security.signing import TrustStore
    from plughost.services.manager import PluginService
    from plughost.services.market.service import Market
    from plughost.settings import HostSettings

    print("\n== install of a plugin with 5 dependencies (ms) ==")
    packages, public = make_set(tmp)
    repo = MarketRepository.init(tmp / "install-repo")
    for p in packages:
        repo.publish(p)
    settings = HostSettings(home=tmp / "install-home")
    TrustStore.for_home(settings.home).add(public, "bench")
    ids = [f"bench-{x}" for x in ("app", "d5", "d4", "d3", "d2", "d1")]
    with RepositoryServer(repo.public) as server:
        async with PluginService(settings, start=False) as svc:
            market = Market(svc)
            market.client.add("main", server.url, (repo.path / "root.json").read_bytes())
            market.client.refresh("main")
            runs, floors = [], []
            for i in range(repeat + 1):
                shutil.rmtree(settings.home / "market" / "main" / "targets",
                              ignore_errors=True)  # fetch the packages every time
                t0 = time.perf_counter()
                result = await market.install("bench-app")
                elapsed = (time.perf_counter() - t0) * 1000
                assert len(result.installed) == 6
                for pid in ids:
                    await svc.uninstall(pid)
                t0 = time.perf_counter()
                for p in (packages[0], packages[1], packages[2], packages[3], packages[4],
                          packages[5]):
                    await svc.install(p)
                floor = (time.perf_counter() - t0) * 1000
                for pid in ids:
                    await svc.uninstall(pid)
                if i:  # the first run is a warm-up
                    runs.append(elapsed)
                    floors.append(floor)
    m, fl = statistics.median(runs), statistics.median(floors)
    print(f"market install {m:.1f}  floor (same six from local files) {fl:.1f}  ratio "
          f"{m / fl:.2f}x  goal <= 1000")


def make_wheels(folder: Path) -> None:
    """Six wheels with the same dependency shape and size as the plughost set."""
    rng = random.Random(3)
    shape = {"d1": [], "d2": ["d1"], "d3": [], "d4": ["d3"], "d5": [],
             "app": ["d1", "d2", "d3", "d4", "d5"]}
    for name, deps in shape.items():
        dist = f"benchpkg_{name}"
        whl = folder / f"{dist}-1.0.0-py3-none-any.whl"
        info = f"{dist}-1.0.0.dist-info"
        meta = f"Metadata-Version: 2.1\nName: benchpkg-{name}\nVersion: 1.0.0\n" + "".join(
            f"Requires-Dist: benchpkg-{d}>=1.0,<2\n" for d in deps)
        with zipfile.ZipFile(whl, "w") as z:
            z.writestr(f"{dist}/__init__.py", "")
            z.writestr(f"{dist}/data.bin", rng.randbytes(100 * 1024))
            z.writestr(f"{info}/METADATA", meta)
            z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n")
            z.writestr(f"{info}/RECORD", "")
        project = folder / "simple" / f"benchpkg-{name}"
        project.mkdir(parents=True, exist_ok=True)
        (project / "index.html").write_text(
            f'<html><body><a href="../../{whl.name}">{whl.name}</a></body></html>')


class _QuietHandler(SimpleHTTPRequestHandler):
    """The local index's file server, without a stderr line per request (pip makes ~60)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def bench_pip(tmp: Path, repeat: int) -> None:
    print("\n== peer: pip download of six comparable wheels from a local simple index (ms) ==")
    index = tmp / "pypi"
    index.mkdir()
    make_wheels(index)
    handler = partial(_QuietHandler, directory=str(index))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    runs, floors = [], []
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    try:
        for _ in range(repeat):
            dest = tmp / f"pipdl-{time.monotonic_ns()}"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pip", "download", "--index-url", url,
                            "--only-binary=:all:", "-d", str(dest),
                            "benchpkg-app"], check=True, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            runs.append((time.perf_counter() - t0) * 1000)
            assert len(list(dest.glob("*.whl"))) == 6
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pip", "--version"], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            floors.append((time.perf_counter() - t0) * 1000)
    finally:
        server.shutdown()
        server.server_close()
    m, fl = statistics.median(runs), statistics.median(floors)
    print(f"pip download {m:.1f} (download only: no install, no signature checks)  pip "
          f"start-up (pip --version) {fl:.1f}  without start-up {m - fl:.1f}")


SECTIONS = ("search", "api", "refresh", "install", "pip")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--no-pip", action="store_true")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="run only this section (repeat the option for several)")
    args = parser.parse_args()
    repeat = max(5, args.repeat)
    sizes = [int(s) for s in args.sizes.split(",")]
    only = set(args.only or SECTIONS) - ({"pip"} if args.no_pip else set())
    with tempfile.TemporaryDirectory(prefix="bench-market-") as d:
        tmp = Path(d)
        if "search" in only:
            bench_search(sizes, repeat)
        if "api" in only:
            asyncio.run(bench_api_search(tmp, repeat))
        if "refresh" in only:
            bench_refresh(tmp, repeat)
        if "install" in only:
            asyncio.run(bench_install(tmp, repeat))
        if "pip" in only:
            bench_pip(tmp, repeat)


if __name__ == "__main__":
    main()
