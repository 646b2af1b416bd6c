"""Cluster benchmark: propagation latency and read throughput of three ``plughost serve``.

Starts three real servers on loopback against one PostgreSQL database (created here, dropped
at the end), an S3 bucket on a moto server and Redis, then measures:

1. **propagation** — 200 changes (disable / enable of one plugin, alternating, through a
   random node): the time from the API's answer (the change is committed) until *every* node
   reports the new state, p50 and p99; with Redis, and again with announcements off
   (``--no-redis``: PostgreSQL ``LISTEN/NOTIFY``), beside the floor: the same read on the
   node that made the change (already applied there).
2. **throughput** — ``GET /api/v1/plugins`` (20 plugins installed) from 16 client threads
   for 5 s against one node, then spread over three; median of 5 runs each; ratio 3 vs 1.

Run: ``PYTHONPATH=src python bench/bench_cluster.py [--changes 200] [--no-redis]``.
Goals: p99 <= 100 ms with Redis, <= 1 s without.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.cluster.conftest import PLUGIN_CODE, Cluster, eventually  # noqa: E402

PG_ADMIN = os.environ.get("PLUGHOST_TEST_POSTGRES",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _package(tmp: Path, plugin_id: str) -> Path:
    from plughost.security.package import pack

    root = tmp / "src" / plugin_id
    root.mkdir(parents=True)
    (root / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nname = "{plugin_id}"\nversion = "1.0.0"\nentry = "main:Main"\n')
    (root / "main.py").write_text(PLUGIN_CODE)
    out = tmp / "packages"
    out.mkdir(exist_ok=True)
    return pack(root, out)


def _state(client: httpx.Client, plugin_id: str) -> str:
    return str(client.get(f"/api/v1/plugins/{plugin_id}").json()["state"])


def propagation(cluster: Cluster, changes: int) -> tuple[list[float], list[float]]:
    """Seconds from commit to applied on every node, and the floor (the writer's own read)."""
    rng = random.Random(7)
    latencies, floor = [], []
    for n in range(changes):
        writer = rng.choice(cluster.up())
        action, target = ("disable", "disabled") if n % 2 == 0 else ("enable", "active")
        r = cluster.node(writer).post(f"/api/v1/plugins/bench/{action}")
        assert r.status_code == 200, r.text
        start = time.perf_counter()
        assert _state(cluster.node(writer), "bench") == target
        floor.append(time.perf_counter() - start)
        pending = set(cluster.up()) - {writer}
        while pending:
            pending = {i for i in pending if _state(cluster.node(i), "bench") != target}
        latencies.append(time.perf_counter() - start)
    return latencies, floor


def throughput(urls: list[str], seconds: float = 5.0, threads: int = 16) -> float:
    """Requests per second of GET /api/v1/plugins spread round-robin over ``urls``."""
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def work(k: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = k
            while time.perf_counter() < stop:
                r = client.get(f"{urls[i % len(urls)]}/api/v1/plugins")
                assert r.status_code == 200
                done[k] += 1
                i += 1

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done) / seconds


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args()
    import sqlalchemy as sa
    from moto.server import ThreadedMotoServer

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"plughost_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="plughost-bench-"))
    env = {"PLUGHOST_DATABASE_URL": admin.url.set(database=name).render_as_string(False),
           "PLUGHOST_OBJECT_STORE": f"s3://bench/store?endpoint_url={endpoint}"
                                    "&region=us-east-1&create_bucket=1",
           "PLUGHOST_REQUIRE_SIGNATURE": "never",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    if not args.no_redis:
        env["PLUGHOST_REDIS_URL"] = os.environ.get("PLUGHOST_TEST_REDIS",
                                                   "redis://127.0.0.1:6379/0")
    cluster = Cluster(tmp, env, ["--refresh-interval", "2", "--heartbeat", "2",
                                 "--log-level", "info", "--no-access-log",
                                 "--cache-ttl", "0"])
    try:
        cluster.start(3)
        for k in range(20):
            plugin_id = "bench" if k == 0 else f"p{k:02d}"
            assert cluster.install(k % 3, _package(tmp, plugin_id)).status_code == 201
        cluster.everywhere(lambda i: _state(cluster.node(i), "bench") == "active")
        eventually(lambda: all(cluster.node(i).get("/api/v1/plugins").json()["total"] == 20
                               for i in cluster.up()), timeout=30)
        transport = "Redis" if not args.no_redis else "PostgreSQL NOTIFY"
        lat, floor = propagation(cluster, args.changes)
        print(f"propagation over {transport}, {args.changes} changes, 3 nodes:")
        print(f"  commit -> applied on every node: p50 {_pct(lat, 50) * 1000:7.1f} ms   "
              f"p99 {_pct(lat, 99) * 1000:7.1f} ms   max {max(lat) * 1000:7.1f} ms")
        print(f"  floor (read on the writer):      p50 {_pct(floor, 50) * 1000:7.1f} ms   "
              f"p99 {_pct(floor, 99) * 1000:7.1f} ms")
        print(f"  ratio p50 / floor p50: {_pct(lat, 50) / _pct(floor, 50):.1f}x")
        urls = [s.base_url for s in cluster.nodes if s is not None]
        one = [throughput(urls[:1]) for _ in range(5)]
        three = [throughput(urls) for _ in range(5)]
        print("GET /api/v1/plugins, 20 plugins, 16 client threads, 5 s, median of 5 runs:")
        print(f"  one node:    {statistics.median(one):8.0f} req/s  (runs: "
              + ", ".join(f"{v:.0f}" for v in one) + ")")
        print(f"  three nodes: {statistics.median(three):8.0f} req/s  (runs: "
              + ", ".join(f"{v:.0f}" for v in three) + ")")
        print(f"  ratio three / one: {statistics.median(three) / statistics.median(one):.2f}x "
              f"(on {os.cpu_count()} cores shared by the servers and the client)")
    finally:
        cluster.close()
        moto.stop()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


if __name__ == "__main__":
    main()
