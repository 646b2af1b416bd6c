"""What persisting one install costs, per backend (input for the 150 ms install budget).

Run: ``python bench/bench_storage.py [--rounds 20]``. Prints the median of each step and its
ratio against the raw equivalent (the "peer"):

- object put of a 1 MiB package: FilesystemObjectStore (hash + fsync + atomic rename + index)
  vs ``Path.write_bytes``; S3ObjectStore on moto's server vs a raw boto3 ``put_object``;
- install rows (plugin + version + config + audit in ONE unit of work, under the plugin lock)
  on SQLite / PostgreSQL / MariaDB vs a bare SQLAlchemy Core insert of one row.

Servers: PostgreSQL and MariaDB on 127.0.0.1 (skipped when absent); moto runs in-process.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from plughost.storage.db import Database
from plughost.storage.migrations import upgrade
from plughost.storage.objects import (
    FilesystemObjectStore,
    S3ObjectStore,
    package_key,
)
from plughost.storage.records import StoredPlugin, StoredVersion
from plughost.storage.repository import Repository

SERVERS = {
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/",
}


def median_ms(fn: Callable[[int], object], rounds: int) -> float:
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench_objects(rounds: int, rows: list[tuple[str, float, float]]) -> None:
    data = os.urandom(1024 * 1024)
    with tempfile.TemporaryDirectory() as tmp:
        store = FilesystemObjectStore(Path(tmp) / "objects")
        ours = median_ms(lambda i: store.put(package_key(f"p{i}", "1.0.0"), data), rounds)
        raw_dir = Path(tmp) / "raw"
        raw_dir.mkdir()
        raw = median_ms(lambda i: (raw_dir / f"p{i}.zip").write_bytes(data), rounds)
        rows.append(("put 1 MiB: filesystem store vs write_bytes", ours, raw))

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request access log

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = S3ObjectStore("bench", endpoint_url=f"http://{host}:{port}",
                           region_name="us-east-1", create_bucket=True)
        ours = median_ms(lambda i: s3.put(package_key(f"p{i}", "1.0.0"), data), rounds)
        raw = median_ms(lambda i: s3.client.put_object(Bucket="bench", Key=f"raw/{i}",
                                                       Body=data), rounds)
        rows.append(("put 1 MiB: S3 store (moto) vs boto3 put_object", ours, raw))
    finally:
        server.stop()


def bench_rows(name: str, url: str, rounds: int, rows: list[tuple[str, float, float]],
               lock_dir: Path) -> None:
    upgrade(url)
    with Database(url) as db:
        repo = Repository(db, lock_dir=lock_dir)

        def install(i: int) -> None:
            pid = f"bench-{i}"
            m = {"id": pid, "name": pid, "version": "1.0.0", "config": {"defaults": {"a": 1}}}
            key = package_key(pid, "1.0.0")
            with repo.lock_plugin(pid), repo.unit_of_work():
                repo.add_plugin(StoredPlugin.from_manifest(m, checksum="0" * 64, object_key=key))
                repo.add_version(StoredVersion(pid, "1.0.0", "0" * 64, key, m, size=1))
                repo.set_config(pid, {"a": 1}, changed_by="bench")
                repo.append_audit("install", plugin_id=pid)

        from datetime import UTC, datetime

        from plughost.storage.models import PluginLockRow

        def raw(i: int) -> None:
            with db.engine.begin() as conn:
                conn.execute(PluginLockRow.__table__.insert(),
                             {"plugin_id": f"raw-{i}", "created_at": datetime.now(UTC)})

        ours = median_ms(install, rounds)
        bare = median_ms(raw, rounds)
        rows.append((f"install rows: {name} unit of work vs one bare insert", ours, bare))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    bench_objects(args.rounds, rows)
    import sqlalchemy as sa

    with tempfile.TemporaryDirectory() as tmp:
        bench_rows("sqlite", f"sqlite:///{tmp}/bench.db", args.rounds, rows, Path(tmp) / "locks")
        for name, admin in SERVERS.items():
            dbname = f"plughost_bench_{secrets.token_hex(3)}"
            try:
                engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
                with engine.connect() as conn:
                    conn.exec_driver_sql(f"CREATE DATABASE {dbname}")
            except Exception as exc:
                print(f"skipping {name}: {exc.__class__.__name__}: {exc}".splitlines()[0])
                continue
            try:
                bench_rows(name, str(engine.url.set(database=dbname).render_as_string(False)),
                           args.rounds, rows, Path(tmp) / "locks")
            finally:
                with engine.connect() as conn:
                    force = " WITH (FORCE)" if name == "postgres" else ""
                    conn.exec_driver_sql(f"DROP DATABASE {dbname}{force}")
                engine.dispose()

    print(f"{'step (median of ' + str(args.rounds) + ')':<58} {'plughost':>10} {'peer':>10} "
          f"{'ratio':>7}")
    for label, ours, peer in rows:
        print(f"{label:<58} {ours:>8.2f}ms {peer:>8.2f}ms {ours / peer:>6.1f}x")


if __name__ == "__main__":
    main()
