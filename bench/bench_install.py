"""Install of a 1 MiB signed package through PluginService, broken down by step.

Run: python bench/bench_install.py [--repeat 20] [--no-postgres]

Storage configurations:

* ``default``       SQLite file + filesystem object store under the home (no settings at all)
* ``postgres+s3``   PostgreSQL on 127.0.0.1:5432 (a throwaway database, dropped at the end)
                    + S3 on moto's standalone server (a real HTTP endpoint, in this process)

Each sample is one full ``PluginService.install(path)`` — stage (copy + hash), verify (archive
structure, manifest, Ed25519 signature), resolve, extract (integrity checked while streaming),
store the blob, activate in the host, commit the one transaction — followed by an untimed
uninstall. Reported: the median of each step and of the whole call, in milliseconds. Peer:
plain ``zipfile.ZipFile.extractall`` of the same package (no checks, no storage) — the floor;
and the issue's goal of 150 ms on the default storage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from plughost.security.package import pack
from plughost.security.signing import TrustStore, keygen, sign
from plughost.services.manager import PluginService
from plughost.settings import HostSettings

GOAL_MS = 150.0
STEPS = ("fetch", "verify", "resolve", "extract", "store", "activate", "commit")


def make_package(root: Path) -> tuple[Path, Path]:
    """A signed package of about 1 MiB: 60 incompressible 16 KiB assets + 40 source files."""
    rng = random.Random(7)
    src = root / "src"
    (src / "assets").mkdir(parents=True)
    (src / "plugin.toml").write_text('id = "bench-install"\nname = "Bench"\nversion = "1.0.0"\n'
                                     'entry = "main:Main"\n')
    (src / "main.py").write_text("from plughost.sdk import Plugin\n\nclass Main(Plugin):\n"
                                 "    def ping(self):\n        return 'pong'\n")
    for i in range(60):
        (src / "assets" / f"blob_{i}.bin").write_bytes(rng.randbytes(16 * 1024))
    words = [f"name_{i}" for i in range(300)] + ["def", "return", "self", "class"]
    for i in range(40):
        text = " ".join(rng.choice(words) for _ in range(1400))
        (src / f"mod_{i}.py").write_text(f"TEXT = {text!r}\n")
    private, public = keygen(root / "keys", "bench")
    package = sign(pack(src, root / "bench-install-1.0.0.zip"), private)
    return package, public


async def bench_config(name: str, settings: HostSettings, package: Path, public: Path,
                       repeat: int) -> dict[str, float]:
    TrustStore.for_home(settings.home).add(public, "bench")
    samples: dict[str, list[float]] = {s: [] for s in (*STEPS, "total")}
    async with PluginService(settings) as svc:
        await svc.install(package)  # warm-up: imports, connection pool, first migration check
        await svc.uninstall("bench-install")
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = await svc.install(package)
            samples["total"].append((time.perf_counter() - t0) * 1000)
            for step in STEPS:
                samples[step].append(result.timings.get(step, 0.0) * 1000)
            await svc.uninstall("bench-install")
    return {k: statistics.median(v) for k, v in samples.items()}


def bench_extractall(package: Path, repeat: int) -> float:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            t0 = time.perf_counter()
            with zipfile.ZipFile(package) as z:
                z.extractall(Path(tmp) / str(i))
            out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def postgres_url() -> tuple[str, Any] | None:
    try:
        import sqlalchemy as sa

        admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                                 isolation_level="AUTOCOMMIT")
        name = f"plughost_bench_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", (admin, name)
    except Exception as exc:  # server absent: say so and skip that configuration
        print(f"postgres+s3: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        package, public = make_package(tmp)
        size = package.stat().st_size
        print(f"package: {size / 1024 / 1024:.2f} MiB, signed; median of {args.repeat}")
        results: dict[str, dict[str, float]] = {}
        results["default"] = asyncio.run(bench_config(
            "default", HostSettings(home=tmp / "home-default"), package, public, args.repeat))
        if not args.no_postgres:
            pg = postgres_url()
            if pg is not None:
                url, (admin, dbname) = pg
                import logging

                from moto.server import ThreadedMotoServer

                logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines

                os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
                os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                try:
                    host, port = server.get_host_and_port()
                    store = (f"s3://bench-{secrets.token_hex(4)}/p?endpoint_url="
                             f"http://{host}:{port}&region=us-east-1&create_bucket=1")
                    settings = HostSettings(home=tmp / "home-pg", database_url=url,
                                            object_store=store)
                    results["postgres+s3"] = asyncio.run(
                        bench_config("postgres+s3", settings, package, public, args.repeat))
                finally:
                    server.stop()
                    with admin.connect() as conn:
                        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
                    admin.dispose()
        floor = bench_extractall(package, args.repeat)

    header = f"{'step (ms)':<12}" + "".join(f"{name:>14}" for name in results)
    print(header)
    print("-" * len(header))
    for step in (*STEPS, "total"):
        print(f"{step:<12}" + "".join(f"{r[step]:>14.1f}" for r in results.values()))
    print()
    default = results["default"]["total"]
    print(f"zipfile.extractall (no checks, no storage): {floor:.1f} ms")
    for name, r in results.items():
        print(f"{name:<12} total {r['total']:7.1f} ms = {r['total'] / floor:5.1f}x extractall, "
              f"{r['total'] / GOAL_MS:4.2f}x the {GOAL_MS:.0f} ms goal")
    verdict = "meets" if default < GOAL_MS else "MISSES"
    print(f"default storage {verdict} the goal (< {GOAL_MS:.0f} ms): {default:.1f} ms")


if __name__ == "__main__":
    main()
